//! `/healthz` (the process answers) and `/readyz` (it can take traffic).
//!
//! `/readyz` answers `200 {"ready": true, "checks": {...}}` or `503` with the same shape and the
//! failing check's `error`:
//! - `queue`: the store accepts a durable write (a cursor `readyz` moved through the same group
//!   commit and fsync as webhooks; the result is reused for one second, so probes cannot flood
//!   the disk);
//! - `accounts`: at least one account is configured and enabled;
//! - `push` (only with `[core] push_url`): the last push to the core succeeded, or none failed yet;
//! - `shutdown`: the process is not shutting down (a load balancer stops sending new requests).

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Shared;

/// The queue cursor `/readyz` writes to prove the store takes writes.
const PROBE_CURSOR: &str = "readyz";
/// How long one queue probe's result is reused.
const PROBE_REUSE: Duration = Duration::from_secs(1);

/// The last queue probe: when, and its error if it failed.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
    /// Serialises probes: one write at a time, the others reuse its result.
    running: tokio::sync::Mutex<()>,
}

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`.
pub(crate) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let mut ready = true;
    let mut checks = serde_json::Map::new();
    let mut check = |name: &str, result: Result<Value, String>| {
        let entry = match result {
            Ok(Value::Object(mut fields)) => {
                fields.insert("ok".into(), true.into());
                Value::Object(fields)
            }
            Ok(_) => json!({ "ok": true }),
            Err(error) => {
                ready = false;
                json!({ "ok": false, "error": error })
            }
        };
        checks.insert(name.to_owned(), entry);
    };

    check("queue", queue_takes_writes(&shared).await.map(|()| Value::Null));
    let accounts = shared.accounts.iter().count();
    check(
        "accounts",
        if accounts > 0 { Ok(json!({ "count": accounts })) } else { Err("no account is enabled".to_owned()) },
    );
    if shared.push.settings.is_some() {
        let state = shared.push.state();
        check(
            "push",
            match state.failing {
                None => Ok(json!({ "cursor": state.cursor })),
                Some((since, error)) => Err(format!("pushing to the core fails since {}: {error}", since.to_rfc3339())),
            },
        );
    }
    let stopping = *shared.shutdown.borrow();
    check("shutdown", if stopping { Err("shutting down".to_owned()) } else { Ok(Value::Null) });

    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(json!({ "ready": ready, "checks": checks }))).into_response()
}

/// A durable write through the queue, at most once per [`PROBE_REUSE`].
async fn queue_takes_writes(shared: &Shared) -> Result<(), String> {
    let probe = &shared.probe;
    let fresh = |probe: &Probe| {
        let last = probe.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref().filter(|(at, _)| at.elapsed() < PROBE_REUSE).map(|(_, r)| r.clone())
    };
    if let Some(result) = fresh(probe) {
        return result;
    }
    let _one = probe.running.lock().await;
    if let Some(result) = fresh(probe) {
        return result;
    }
    let now = chrono::Utc::now().timestamp_micros().max(0) as u64;
    let result = tokio::time::timeout(Duration::from_secs(5), shared.queue.set_cursor(PROBE_CURSOR, now))
        .await
        .map_err(|_| "the store did not commit within 5 s".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()));
    *probe.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), result.clone()));
    result
}
