//! Push delivery to the core: the gateway POSTs the event log to `[core] push_url` in order, in
//! batches, each request signed, and keeps how far the core has taken it under the queue cursor
//! [`CURSOR`].
//!
//! One worker per gateway. It reads the batch after the cursor, POSTs it (the same body as
//! `GET /v1/events`: `{"events": [...], "next_after": SEQ}`), and moves the cursor to the batch's
//! last `seq` only after a 2xx answer, durably, before reading the next batch. Any other answer or
//! a connection error is retried with backoff, with the same start, for as long as it takes: a
//! batch is never skipped and batches never overlap or reorder. A restart resumes after the cursor.
//! Delivery is at least once: only a crash between the core's 2xx and the cursor write sends a
//! batch again, so the core keeps the last `seq` it took and ignores events at or below it.
//!
//! Signature: `X-Chatgate-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`
//! with `X-Chatgate-Timestamp: <unix seconds>` (the README has a verification snippet).
//!
//! Shutdown stops the worker at a batch boundary: a POST under way finishes (bounded by the
//! request timeout) and its cursor is stored; no new POST starts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatgate_adapter::Secret;
use chatgate_queue::StoredEvent;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::task::JoinHandle;

use crate::Shared;

/// The queue cursor push delivery keeps.
pub const CURSOR: &str = "push";
/// The header carrying the request's signature.
pub const SIGNATURE_HEADER: &str = "x-chatgate-signature";
/// The header carrying the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-chatgate-timestamp";
/// Most events in one POST.
pub const MAX_BATCH: usize = 1000;

/// Where and how to push (`[core]` in `channels.toml`).
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The core's endpoint (http or https).
    pub url: url::Url,
    /// The HMAC key of the signature.
    pub secret: Secret,
    /// Events per POST, 1..=[`MAX_BATCH`].
    pub batch: usize,
    /// How long one POST may take.
    pub timeout: Duration,
    /// The first retry delay; doubles with each failure in a row up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl PushSettings {
    pub fn new(url: url::Url, secret: impl Into<String>) -> PushSettings {
        PushSettings {
            url,
            secret: Secret::new(secret),
            batch: 100,
            timeout: Duration::from_secs(10),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// `sha256=<hex>`: HMAC-SHA256 keyed with `secret` over `"{timestamp}.{body}"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the push worker has done, for `/metrics` and `/readyz`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PushState {
    /// The last `seq` the core took (the stored cursor).
    pub cursor: u64,
    pub batches: u64,
    pub events: u64,
    pub failures: u64,
    /// Since when POSTs fail, and the last error; `None` while the last POST succeeded.
    pub failing: Option<(DateTime<Utc>, String)>,
}

/// The push worker's handle.
#[derive(Debug, Default)]
pub(crate) struct Push {
    pub settings: Option<PushSettings>,
    state: Mutex<PushState>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Push {
    pub(crate) fn new(settings: Option<PushSettings>) -> Push {
        Push { settings, ..Push::default() }
    }

    pub(crate) fn state(&self) -> PushState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut PushState)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Starts the worker when a push URL is configured.
    pub(crate) fn start(shared: &Arc<Shared>) {
        let Some(settings) = shared.push.settings.clone() else { return };
        let worker = tokio::spawn(run(shared.clone(), settings));
        *shared.push.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(worker);
    }

    /// Waits until the worker has stopped (after shutdown began: at a batch boundary).
    pub(crate) async fn drain(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(shared: Arc<Shared>, settings: PushSettings) {
    let client = match reqwest::Client::builder().timeout(settings.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e.without_url(), "push delivery could not start its HTTP client");
            return;
        }
    };
    let target = redacted(&settings.url);
    let mut failures = 0u32;
    let mut cursor = loop {
        match shared.queue.cursor(CURSOR).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(error = %e, "push delivery could not read its cursor; retrying");
                if !pause(&shared, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    };
    shared.push.update(|s| s.cursor = cursor);
    tracing::info!(%target, cursor, "push delivery started");
    let mut stopping = shared.shutdown.subscribe();
    loop {
        if *stopping.borrow() {
            return;
        }
        let events = match shared.queue.read_events(cursor, settings.batch).await {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(error = %e, "push delivery could not read the event log; retrying");
                if !pause(&shared, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let Some(last) = events.last().map(|e| e.seq) else {
            tokio::select! {
                _ = shared.queue.wait_events(cursor, Duration::from_secs(30)) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
            continue;
        };
        let started = Instant::now();
        match post(&client, &settings, &events, last).await {
            Ok(()) => {
                // The cursor is on disk before the next batch is read; a restart resumes after it.
                while let Err(e) = shared.queue.set_cursor(CURSOR, last).await {
                    tracing::error!(error = %e, cursor = last, "push delivery could not store its cursor; retrying");
                    if !pause(&shared, Duration::from_secs(1)).await {
                        return;
                    }
                }
                tracing::debug!(first = events[0].seq, last, took = ?started.elapsed(), "pushed a batch");
                failures = 0;
                cursor = last;
                shared.push.update(|s| {
                    s.cursor = last;
                    s.batches += 1;
                    s.events += events.len() as u64;
                    s.failing = None;
                });
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let wait = backoff(&settings, failures);
                tracing::warn!(%target, after = cursor, %error, retry_in = ?wait, "push to the core failed; will retry the same batch");
                shared.push.update(|s| {
                    s.failures += 1;
                    let since = s.failing.as_ref().map_or_else(Utc::now, |(t, _)| *t);
                    s.failing = Some((since, error));
                });
                if !pause(&shared, wait).await {
                    return;
                }
            }
        }
    }
}

/// One signed POST of a batch; `Err` with a printable reason unless the core answered 2xx.
async fn post(
    client: &reqwest::Client,
    settings: &PushSettings,
    events: &[StoredEvent],
    last: u64,
) -> Result<(), String> {
    let body = crate::api::events_body(events, last);
    let timestamp = Utc::now().timestamp();
    let signed = signature(settings.secret.expose().as_bytes(), timestamp, body.as_bytes());
    let answer = client
        .post(settings.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signed)
        .body(body)
        .send()
        .await
        // The URL may carry credentials of the core: never in a log line.
        .map_err(|e| with_causes(&e.without_url()))?;
    let status = answer.status();
    if status.is_success() { Ok(()) } else { Err(format!("the core answered {status}")) }
}

/// The delay before retry number `failures`: base × 2^(failures-1), at most the maximum, ±20 %.
fn backoff(settings: &PushSettings, failures: u32) -> Duration {
    let doubled = settings.base_backoff.saturating_mul(1 << failures.saturating_sub(1).min(20));
    let wait = doubled.min(settings.max_backoff);
    wait.mul_f64(rand::random_range(0.8..1.2))
}

/// Sleeps unless shutdown begins first; false when stopping.
async fn pause(shared: &Shared, time: Duration) -> bool {
    let mut stopping = shared.shutdown.subscribe();
    tokio::select! {
        () = tokio::time::sleep(time) => {}
        _ = stopping.wait_for(|stop| *stop) => return false,
    }
    !*shared.shutdown.borrow()
}

/// The URL without user info, query or fragment, for logs.
fn redacted(url: &url::Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}{}", url.scheme(), url.host_str().unwrap_or_default(), url.path())
}

/// An error with its causes ("error sending request: ... : Connection refused").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_raw_body() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently (Python's hmac module).
        let s = signature(b"secret", 1_700_000_000, b"{}");
        assert_eq!(s, "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163");
        assert_ne!(s, signature(b"secret", 1_700_000_001, b"{}"), "another time, another signature");
        assert_ne!(s, signature(b"secret", 1_700_000_000, b"{ }"), "other bytes, another signature");
        assert_ne!(s, signature(b"other", 1_700_000_000, b"{}"), "another key, another signature");
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut settings = PushSettings::new("http://127.0.0.1/".parse().unwrap(), "s");
        settings.base_backoff = Duration::from_secs(1);
        settings.max_backoff = Duration::from_secs(30);
        let around = |d: Duration, secs: f64| (d.as_secs_f64() - secs).abs() <= secs * 0.2 + 1e-9;
        assert!(around(backoff(&settings, 1), 1.0));
        assert!(around(backoff(&settings, 3), 4.0));
        assert!(around(backoff(&settings, 50), 30.0));
    }

    #[test]
    fn logged_urls_carry_no_credentials_or_query() {
        let url: url::Url = "https://user:pw@core.example:8443/in?token=abc#x".parse().unwrap();
        assert_eq!(redacted(&url), "https://core.example:8443/in");
    }
}
