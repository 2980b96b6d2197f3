//! `/metrics`: the Prometheus / OpenMetrics exposition, encoded by `prometheus-client`.
//!
//! Three sources: the per-account [`Counters`] bumped on the hot paths (lock-free atomics), the
//! histograms of [`Metrics`] (webhook handling, commit and provider send times, and the time from
//! a provider's answer to its status being durable), and gauges read
//! at scrape time (queue and connection figures, outbox depth and age per account, how far behind
//! the core is, by pull or by push). Every family has HELP and TYPE lines.
//!
//! Labels are channel and account ids (and fixed words such as `reason` or `kind`) only: no
//! secrets, no customer data. Webhooks for accounts that are not configured are not timed, so a
//! client cannot grow the label sets by inventing URLs.
//!
//! `/metrics` is served on the main listener without a token by default; `[metrics] token`
//! requires `Authorization: Bearer <token>`, and `[metrics] listen` moves it to a listener of its
//! own ([`serve_separately`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chatgate_adapter::Secret;
use chatgate_adapter::verify::{bearer_token, constant_time_eq};
use chatgate_model::Channel;
use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Shared;

/// The content type of the OpenMetrics text format (Prometheus reads it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where `/metrics` is served and who may read it (`[metrics]` in `channels.toml`).
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// When true, `/metrics` is not on the main listener (the binary serves it on `[metrics] listen`).
    pub separate_listener: bool,
}

/// Why a provider's send is retried: the label `kind` of `chatgate_outbound_retries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// The provider said when to retry this message (HTTP 429 and the like).
    RetryAfter,
    /// The provider paused the whole account.
    AccountRetryAfter,
    /// A transient error (5xx, network, store): exponential backoff.
    Transient,
}

impl RetryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryKind::RetryAfter => "retry_after",
            RetryKind::AccountRetryAfter => "account_retry_after",
            RetryKind::Transient => "transient",
        }
    }
}

/// One account's counters; lock-free, bumped on the hot paths.
#[derive(Debug, Default)]
pub struct Counters {
    pub webhooks_accepted: AtomicU64,
    pub rejected_too_large: AtomicU64,
    pub rejected_unauthenticated: AtomicU64,
    pub rejected_malformed: AtomicU64,
    /// Answered 503 `overloaded`: too many webhooks were waiting for the store.
    pub rejected_overloaded: AtomicU64,
    pub events_stored: AtomicU64,
    pub inbound_duplicates: AtomicU64,
    pub inbound_blocked: AtomicU64,
    pub inbound_unsupported: AtomicU64,
    /// Items of an account this gateway does not serve (another Page or number of the same
    /// Meta app, without an account here sharing the app secret): logged and dropped.
    pub inbound_unrouted: AtomicU64,
    pub outbound_sent: AtomicU64,
    pub outbound_failed: AtomicU64,
    /// Retries, by [`RetryKind`] (in its order).
    pub outbound_retries: [AtomicU64; 3],
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts one retry of a send.
    pub fn retried(&self, kind: RetryKind) {
        Counters::add(&self.outbound_retries[kind as usize], 1);
    }

    /// Every per-account counter: name, help, extra label, value.
    fn rows(&self) -> [CounterRow; 15] {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let retries = |k: RetryKind| v(&self.outbound_retries[k as usize]);
        let retry_help = "Provider sends retried, by kind of error.";
        let rejected = "Webhooks refused, by reason.";
        [
            ("webhooks_accepted", "Webhooks stored and answered 2xx.", None, v(&self.webhooks_accepted)),
            ("webhooks_rejected", rejected, Some(("reason", "too_large")), v(&self.rejected_too_large)),
            ("webhooks_rejected", rejected, Some(("reason", "unauthenticated")), v(&self.rejected_unauthenticated)),
            ("webhooks_rejected", rejected, Some(("reason", "malformed")), v(&self.rejected_malformed)),
            ("webhooks_rejected", rejected, Some(("reason", "overloaded")), v(&self.rejected_overloaded)),
            ("events_stored", "Events appended to the log.", None, v(&self.events_stored)),
            ("inbound_duplicates", "Provider redeliveries stored once (dedup).", None, v(&self.inbound_duplicates)),
            ("inbound_blocked", "Inbound items of blocked customers, not forwarded.", None, v(&self.inbound_blocked)),
            (
                "inbound_unsupported",
                "Events of kinds chatgate does not model (kept raw).",
                None,
                v(&self.inbound_unsupported),
            ),
            ("inbound_unrouted", "Items of accounts not served here, dropped.", None, v(&self.inbound_unrouted)),
            ("outbound_sent", "Outbound messages whose every part the provider took.", None, v(&self.outbound_sent)),
            ("outbound_failed", "Outbound messages failed with a typed code.", None, v(&self.outbound_failed)),
            ("outbound_retries", retry_help, Some(("kind", "retry_after")), retries(RetryKind::RetryAfter)),
            (
                "outbound_retries",
                retry_help,
                Some(("kind", "account_retry_after")),
                retries(RetryKind::AccountRetryAfter),
            ),
            ("outbound_retries", retry_help, Some(("kind", "transient")), retries(RetryKind::Transient)),
        ]
    }
}

type Labels = Vec<(&'static str, String)>;

/// One per-account counter: family name, help, an extra label (key, value), value.
type CounterRow = (&'static str, &'static str, Option<(&'static str, &'static str)>, u64);
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Finer buckets for what should take about a millisecond: 50 µs × 1.5ⁿ, up to ≈ 20 s.
fn fine_seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 1.5, 32))
}

/// The histograms and the pull position, shared by handlers and workers.
///
/// The histograms of every configured account and channel are made at start, so observing one
/// on a hot path is a map lookup by borrowed ids, without allocating label sets.
#[derive(Debug)]
pub struct Metrics {
    webhook: Histograms,
    commit: Histograms,
    send: Histograms,
    recorded: Histograms,
    by_account: HashMap<Channel, HashMap<String, AccountHistograms>>,
    by_channel: HashMap<Channel, Histogram>,
    /// The highest `after` the core has asked `GET /v1/events` with (it has everything up to it).
    pulled: AtomicU64,
    pulled_seen: AtomicBool,
}

/// One account's histograms.
#[derive(Debug, Clone)]
struct AccountHistograms {
    webhook: Histogram,
    send: Histogram,
    recorded: Histogram,
}

fn labels(channel: Channel, account: &str) -> Labels {
    vec![("channel", channel.as_str().to_owned()), ("account", account.to_owned())]
}

impl Metrics {
    /// The histograms of these accounts and their channels.
    pub fn new(accounts: &crate::Accounts) -> Metrics {
        let family = || Histograms::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let (webhook, commit, send) = (family(), family(), family());
        let recorded = Histograms::new_with_constructor(fine_seconds_histogram as fn() -> Histogram);
        let mut by_account: HashMap<Channel, HashMap<String, AccountHistograms>> = HashMap::new();
        let mut by_channel = HashMap::new();
        for a in accounts.iter() {
            let (channel, account) = (a.adapter.channel(), a.adapter.account());
            let l = labels(channel, account);
            let histograms = AccountHistograms {
                webhook: webhook.get_or_create(&l).clone(),
                send: send.get_or_create(&l).clone(),
                recorded: recorded.get_or_create(&l).clone(),
            };
            by_account.entry(channel).or_default().insert(account.to_owned(), histograms);
            by_channel
                .entry(channel)
                .or_insert_with(|| commit.get_or_create(&vec![("channel", channel.as_str().to_owned())]).clone());
        }
        Metrics {
            webhook,
            commit,
            send,
            recorded,
            by_account,
            by_channel,
            pulled: AtomicU64::new(0),
            pulled_seen: AtomicBool::new(false),
        }
    }

    fn account(&self, channel: Channel, account: &str) -> Option<&AccountHistograms> {
        self.by_account.get(&channel)?.get(account)
    }

    /// A webhook of a configured account was answered after `took`.
    pub fn webhook_handled(&self, channel: Channel, account: &str, took: Duration) {
        if let Some(h) = self.account(channel, account) {
            h.webhook.observe(took.as_secs_f64());
        }
    }

    /// A webhook's events were committed (durable) after `took`.
    pub fn committed(&self, channel: Channel, took: Duration) {
        if let Some(h) = self.by_channel.get(&channel) {
            h.observe(took.as_secs_f64());
        }
    }

    /// One provider send call (one part) of a configured account took `took`, whatever its outcome.
    pub fn sent(&self, channel: Channel, account: &str, took: Duration) {
        if let Some(h) = self.account(channel, account) {
            h.send.observe(took.as_secs_f64());
        }
    }

    /// A provider's answer to one part of a configured account was recorded durably (`sent`,
    /// `delivered`…) `took` after the answer arrived.
    pub fn recorded(&self, channel: Channel, account: &str, took: Duration) {
        if let Some(h) = self.account(channel, account) {
            h.recorded.observe(took.as_secs_f64());
        }
    }

    /// The core asked for events after `after`.
    pub fn pulled(&self, after: u64) {
        self.pulled.fetch_max(after, Ordering::Relaxed);
        self.pulled_seen.store(true, Ordering::Relaxed);
    }
}

/// Times every webhook request of a configured account (`chatgate_webhook_duration_seconds`).
pub(crate) async fn time_webhooks(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let mut segments = request.uri().path().trim_start_matches('/').split('/').skip(1);
    let histogram = match (segments.next(), segments.next()) {
        (Some(channel), Some(account)) => {
            channel.parse::<Channel>().ok().and_then(|c| shared.metrics.account(c, account)).map(|h| h.webhook.clone())
        }
        _ => None,
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    if let Some(histogram) = histogram {
        histogram.observe(started.elapsed().as_secs_f64());
    }
    response
}

/// Requires the metrics token when one is configured.
pub(crate) async fn require_token(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let Some(token) = &shared.settings.metrics.token else { return next.run(request).await };
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.expose().as_bytes()) => next.run(request).await,
        _ => (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "unauthorized").into_response(),
    }
}

/// `GET /metrics`.
pub(crate) async fn render(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot = Snapshot::gather(&shared).await;
    let mut registry = Registry::with_prefix("chatgate");
    let m = &shared.metrics;
    registry.register(
        "webhook_duration_seconds",
        "Time from a webhook request to its answer, per account.",
        m.webhook.clone(),
    );
    registry.register(
        "commit_duration_seconds",
        "Time to make a webhook's events durable (group commit and fsync), per channel.",
        m.commit.clone(),
    );
    registry.register(
        "send_duration_seconds",
        "Time of one provider send call (one part), per account.",
        m.send.clone(),
    );
    registry.register(
        "send_recorded_duration_seconds",
        "Time from a provider's answer to one part to its status being durable, per account.",
        m.recorded.clone(),
    );
    registry.register_collector(Box::new(Scrape { shared: shared.clone(), snapshot }));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding /metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response()
}

/// The router serving only `/metrics` (behind its token when one is set), for a listener of its own.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(render))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), require_token))
        .with_state(shared)
}

/// Serves `/metrics` alone on `listener` until `signal` resolves: HTTP/1 with a header-read
/// timeout, at most 64 connections at once, each closed after 30 s.
pub async fn serve_separately(
    listener: tokio::net::TcpListener,
    gateway: crate::Gateway,
    signal: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;
    let router = router(gateway.shared.clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    tokio::pin!(signal);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut signal => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a metrics connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                router.clone().oneshot(request.map(axum::body::Body::new))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            drop(slot);
        });
    }
}

/// Outbound messages not finished, of one account.
#[derive(Debug, Clone, Copy, Default)]
struct Outbox {
    depth: u64,
    oldest: Option<DateTime<Utc>>,
}

/// What is read from the store at scrape time.
#[derive(Debug, Default)]
struct Snapshot {
    outbox: BTreeMap<(String, String), Outbox>,
    /// Events after the core's pull position, and the age of the first of them.
    unpulled: Option<(u64, f64)>,
    /// Events after the push cursor, and the age of the first of them.
    push_lag: Option<(u64, f64)>,
}

impl Snapshot {
    async fn gather(shared: &Shared) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for a in shared.accounts.iter() {
            let key = (a.adapter.channel().as_str().to_owned(), a.adapter.account().to_owned());
            snapshot.outbox.insert(key, Outbox::default());
        }
        match shared.queue.pending_messages().await {
            Ok(pending) => {
                for m in pending {
                    let key = (m.request.channel.as_str().to_owned(), m.request.account.clone());
                    let entry = snapshot.outbox.entry(key).or_default();
                    entry.depth += 1;
                    entry.oldest = Some(entry.oldest.map_or(m.created_at, |t| t.min(m.created_at)));
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: could not read the outbox"),
        }
        let durable = shared.queue.stats().durable_seq;
        if shared.metrics.pulled_seen.load(Ordering::Relaxed) {
            let after = shared.metrics.pulled.load(Ordering::Relaxed);
            snapshot.unpulled = Some(behind(shared, after, durable).await);
        }
        if shared.push.settings.is_some() {
            let cursor = shared.push.state().cursor;
            snapshot.push_lag = Some(behind(shared, cursor, durable).await);
        }
        snapshot
    }
}

/// How many durable events are after `after`, and the age in seconds of the first of them (0 when none).
async fn behind(shared: &Shared, after: u64, durable: u64) -> (u64, f64) {
    let count = durable.saturating_sub(after);
    if count == 0 {
        return (0, 0.0);
    }
    let first = shared.queue.read_events(after, 1).await.ok().and_then(|e| e.into_iter().next());
    let received = first
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.json).ok())
        .and_then(|v| v.get("received_at")?.as_str()?.parse::<DateTime<Utc>>().ok());
    let age = received.map_or(0.0, |t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
    (count, age)
}

/// Encodes the counters and the scrape-time gauges.
#[derive(Debug)]
struct Scrape {
    shared: Arc<Shared>,
    snapshot: Snapshot,
}

/// Encodes one family of constant values.
fn family<V: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        value.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Encodes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shared = &self.shared;
        let mut accounts: Vec<_> = shared.accounts.iter().collect();
        accounts.sort_by_key(|a| (a.adapter.channel(), a.adapter.account().to_owned()));
        let rows: Vec<_> =
            accounts.iter().map(|a| (labels(a.adapter.channel(), a.adapter.account()), a.counters.rows())).collect();
        let mut names: Vec<(&str, &str)> = Vec::new();
        for (name, help, _, _) in Counters::default().rows() {
            if !names.iter().any(|(n, _)| *n == name) {
                names.push((name, help));
            }
        }
        for (name, help) in names {
            let values = rows.iter().flat_map(|(labels, counters)| {
                counters.iter().filter(|row| row.0 == name).map(|(_, _, extra, value)| {
                    let mut labels = labels.clone();
                    if let Some((key, word)) = extra {
                        labels.push((key, (*word).to_owned()));
                    }
                    (labels, ConstCounter::new(*value))
                })
            });
            family(&mut encoder, name, help, MetricType::Counter, values)?;
        }

        let outbox = |pick: fn(&Outbox) -> i64| {
            self.snapshot.outbox.iter().map(move |((channel, account), o)| {
                (vec![("channel", channel.clone()), ("account", account.clone())], ConstGauge::new(pick(o)))
            })
        };
        family(
            &mut encoder,
            "outbox_depth",
            "Outbound messages queued and not finished, per account.",
            MetricType::Gauge,
            outbox(|o| o.depth as i64),
        )?;
        let now = Utc::now();
        let oldest = self.snapshot.outbox.iter().map(|((channel, account), o)| {
            let age = o.oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            (vec![("channel", channel.clone()), ("account", account.clone())], ConstGauge::new(age))
        });
        family(
            &mut encoder,
            "outbox_oldest_age_seconds",
            "Age of the oldest outbound message not finished, per account (0 when none).",
            MetricType::Gauge,
            oldest,
        )?;

        if let Some((count, age)) = self.snapshot.unpulled {
            single(
                &mut encoder,
                "events_unpulled",
                "Events after the highest `after` the core has pulled with (since this process started).",
                ConstGauge::new(count as i64),
            )?;
            single(
                &mut encoder,
                "events_oldest_unpulled_age_seconds",
                "Age of the oldest event the core has not pulled (0 when none).",
                ConstGauge::new(age),
            )?;
        }
        if let Some((count, age)) = self.snapshot.push_lag {
            let push = shared.push.state();
            let e = &mut encoder;
            single(
                e,
                "push_lag_events",
                "Events not yet taken by the core's push URL.",
                ConstGauge::new(count as i64),
            )?;
            single(
                e,
                "push_lag_seconds",
                "Age of the oldest event not yet taken by the core's push URL (0 when none).",
                ConstGauge::new(age),
            )?;
            single(
                e,
                "push_cursor",
                "The last sequence number the core took by push.",
                ConstGauge::new(push.cursor as i64),
            )?;
            single(e, "push_batches", "Batches the core took by push.", ConstCounter::new(push.batches))?;
            single(e, "push_events", "Events the core took by push.", ConstCounter::new(push.events))?;
            single(e, "push_failures", "Push requests that failed (retried).", ConstCounter::new(push.failures))?;
        }

        let q = shared.queue.stats();
        let e = &mut encoder;
        single(e, "queue_batches", "Store transactions committed (group commits).", ConstCounter::new(q.batches))?;
        single(e, "queue_commands", "Commands those transactions carried.", ConstCounter::new(q.commands))?;
        single(e, "queue_fsyncs", "WAL fsyncs.", ConstCounter::new(q.syncs))?;
        single(e, "queue_fsync_seconds", "Time spent in WAL fsyncs.", ConstCounter::new(q.sync_micros as f64 / 1e6))?;
        single(
            e,
            "queue_log_bytes",
            "Bytes written to the store's write-ahead log (SQLite WAL frames; 0 on NATS).",
            ConstCounter::new(q.log_bytes),
        )?;
        single(
            e,
            "queue_writer_checkpoints",
            "Checkpoints the store's writer ran between commits to keep the WAL short (0 on NATS).",
            ConstCounter::new(q.writer_checkpoints),
        )?;
        single(
            e,
            "queue_writer_checkpoint_seconds",
            "Time those checkpoints held the writer.",
            ConstCounter::new(q.writer_checkpoint_micros as f64 / 1e6),
        )?;
        single(
            e,
            "queue_durable_seq",
            "The last event sequence number on disk.",
            ConstGauge::new(q.durable_seq as i64),
        )?;
        single(
            e,
            "queue_dedup_repaired",
            "Dedup keys the NATS repair sweep restored (events stored without their key by a crash).",
            ConstCounter::new(q.dedup_repaired),
        )?;

        let c = &shared.connections;
        single(
            e,
            "connections_open",
            "Client connections open.",
            ConstGauge::new(c.open.load(Ordering::Relaxed) as i64),
        )?;
        for (name, help, value) in [
            ("connections_accepted", "Connections accepted.", &c.accepted),
            (
                "connections_refused",
                "Connections refused at a cap with none idle (answered 503 or closed).",
                &c.refused,
            ),
            (
                "connections_refused_unanswered",
                "Connections refused at a cap and closed unanswered: too many refusals at once.",
                &c.refused_unanswered,
            ),
            ("connections_shed", "Idle connections closed to make room at a cap.", &c.shed),
            ("connections_idle_closed", "Keep-alive connections closed after the idle timeout.", &c.idle_closed),
            ("connections_accept_errors", "Errors accepting a connection (EMFILE and the like).", &c.accept_errors),
            ("connections_body_timeouts", "Requests answered 408: the body did not arrive in time.", &c.body_timeouts),
        ] {
            single(e, name, help, ConstCounter::new(value.load(Ordering::Relaxed)))?;
        }
        if let Some(recorder) = &shared.recorder {
            let r = recorder.stats();
            for (name, help, value) in [
                ("record_written", "Authentic webhooks recorded by `serve --record`.", &r.written),
                ("record_failed", "Recordings that could not be written (or took too long).", &r.failed),
                ("record_dropped", "Recordings dropped because the writer was behind.", &r.dropped),
            ] {
                single(e, name, help, ConstCounter::new(value.load(Ordering::Relaxed)))?;
            }
        }
        Ok(())
    }
}
