//! Counters per account, rendered in the Prometheus text format at `/metrics`.
//! Labels are channel and account ids only: no secrets, no customer data.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;

use crate::Shared;

/// One account's counters; lock-free, bumped on the hot paths.
#[derive(Debug, Default)]
pub struct Counters {
    pub webhooks_accepted: AtomicU64,
    pub rejected_too_large: AtomicU64,
    pub rejected_unauthenticated: AtomicU64,
    pub rejected_malformed: AtomicU64,
    pub events_stored: AtomicU64,
    pub inbound_duplicates: AtomicU64,
    pub inbound_blocked: AtomicU64,
    pub inbound_unsupported: AtomicU64,
    /// Items of an account this gateway does not serve (another Page or number of the same
    /// Meta app, without an account here sharing the app secret): logged and dropped.
    pub inbound_unrouted: AtomicU64,
    pub outbound_sent: AtomicU64,
    pub outbound_failed: AtomicU64,
    pub outbound_retries: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn rows(&self) -> [(&'static str, &'static str, &AtomicU64); 12] {
        [
            ("webhooks_accepted_total", "", &self.webhooks_accepted),
            ("webhooks_rejected_total", ",reason=\"too_large\"", &self.rejected_too_large),
            ("webhooks_rejected_total", ",reason=\"unauthenticated\"", &self.rejected_unauthenticated),
            ("webhooks_rejected_total", ",reason=\"malformed\"", &self.rejected_malformed),
            ("events_stored_total", "", &self.events_stored),
            ("inbound_duplicates_total", "", &self.inbound_duplicates),
            ("inbound_blocked_total", "", &self.inbound_blocked),
            ("inbound_unsupported_total", "", &self.inbound_unsupported),
            ("inbound_unrouted_total", "", &self.inbound_unrouted),
            ("outbound_sent_total", "", &self.outbound_sent),
            ("outbound_failed_total", "", &self.outbound_failed),
            ("outbound_retries_total", "", &self.outbound_retries),
        ]
    }
}

pub(crate) async fn render(State(shared): State<Arc<Shared>>) -> String {
    let mut accounts: Vec<_> = shared.accounts.iter().collect();
    accounts.sort_by_key(|a| (a.adapter.channel(), a.adapter.account().to_owned()));
    let mut out = String::new();
    let names = accounts.first().map(|a| a.counters.rows().map(|(name, _, _)| name)).unwrap_or_default();
    let mut seen = Vec::new();
    for name in names {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let _ = writeln!(out, "# TYPE chatgate_{name} counter");
        for a in &accounts {
            let account = a.adapter.account().replace(['"', '\\', '\n'], "_");
            for (row, extra, value) in a.counters.rows() {
                if row == name {
                    let _ = writeln!(
                        out,
                        "chatgate_{name}{{channel=\"{}\",account=\"{account}\"{extra}}} {}",
                        a.adapter.channel(),
                        value.load(Ordering::Relaxed)
                    );
                }
            }
        }
    }
    let q = shared.queue.stats();
    let _ = writeln!(out, "# TYPE chatgate_queue_batches_total counter\nchatgate_queue_batches_total {}", q.batches);
    let _ = writeln!(out, "# TYPE chatgate_queue_commands_total counter\nchatgate_queue_commands_total {}", q.commands);
    let _ = writeln!(out, "# TYPE chatgate_queue_fsyncs_total counter\nchatgate_queue_fsyncs_total {}", q.syncs);
    let _ = writeln!(
        out,
        "# TYPE chatgate_queue_fsync_seconds_total counter\nchatgate_queue_fsync_seconds_total {:.6}",
        q.sync_micros as f64 / 1e6
    );
    let _ = writeln!(out, "# TYPE chatgate_queue_durable_seq gauge\nchatgate_queue_durable_seq {}", q.durable_seq);
    shared.recorder.iter().for_each(|r| r.render_metrics(&mut out));
    let c = &shared.connections;
    let _ = writeln!(
        out,
        "# TYPE chatgate_connections_open gauge\nchatgate_connections_open {}",
        c.open.load(Ordering::Relaxed)
    );
    for (name, value) in [
        ("accepted", &c.accepted),
        ("refused", &c.refused),
        ("shed", &c.shed),
        ("idle_closed", &c.idle_closed),
        ("accept_errors", &c.accept_errors),
        ("body_timeouts", &c.body_timeouts),
    ] {
        let _ = writeln!(
            out,
            "# TYPE chatgate_connections_{name}_total counter\nchatgate_connections_{name}_total {}",
            value.load(Ordering::Relaxed)
        );
    }
    out
}
