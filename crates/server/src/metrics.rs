//! Counters, rendered in the Prometheus text format at `/metrics`. No secrets, no customer data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use axum::extract::State;

use crate::Shared;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    /// Adds `n` to the counter `name` with the label set `labels` (already rendered, e.g. `channel="vk"`).
    pub fn add(&self, name: &'static str, labels: String, n: u64) {
        if n == 0 {
            return;
        }
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((name, labels)).or_default() += n;
    }
}

pub(crate) fn labels(channel: impl std::fmt::Display, account: &str) -> String {
    format!("channel=\"{channel}\",account=\"{}\"", account.replace(['"', '\\', '\n'], "_"))
}

pub(crate) async fn render(State(shared): State<Arc<Shared>>) -> String {
    let c = shared.metrics.counters.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    let mut last = "";
    for ((name, labels), value) in c.iter() {
        if *name != last {
            out.push_str(&format!("# TYPE chatgate_{name} counter\n"));
            last = name;
        }
        out.push_str(&format!("chatgate_{name}{{{labels}}} {value}\n"));
    }
    out
}
