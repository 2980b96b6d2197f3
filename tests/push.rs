//! Push delivery to the core, end to end: the real `chatgate` binary pushes to a real HTTP
//! receiver on 127.0.0.1 that checks every signature, through the receiver going away, the
//! receiver answering 503, and a restart of the gateway. Every event arrives once, in order,
//! and the push matches what `GET /v1/events` (pull, still working beside it) shows.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chatgate_testkit::process::{Serve, free_port};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const TG_SECRET: &str = "push-telegram-secret";
const PUSH_SECRET: &str = "push-secret-0123456789abcdef";

/// What the core's receiver saw.
#[derive(Debug, Default)]
struct Seen {
    /// Every event `seq` taken, in the order of arrival.
    seqs: Mutex<Vec<u64>>,
    /// Events at or below the last `seq` taken (a resent batch).
    doubled: Mutex<Vec<u64>>,
    /// Requests whose signature or timestamp did not verify.
    bad_signatures: AtomicU64,
    /// While true the receiver answers 503 and takes nothing.
    failing: AtomicBool,
    requests: AtomicU64,
}

/// Verifies a push the way the README tells a core to.
fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let (Some(timestamp), Some(signature)) = (
        headers.get("X-Chatgate-Timestamp").and_then(|v| v.to_str().ok()),
        headers.get("X-Chatgate-Signature").and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let Ok(at) = timestamp.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - at).abs() > 300 {
        return false;
    }
    let Some(given) = signature.strip_prefix("sha256=").and_then(|h| hex::decode(h).ok()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(PUSH_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

async fn take(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    seen.requests.fetch_add(1, Ordering::Relaxed);
    if !verify(&headers, &body) {
        seen.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED;
    }
    if seen.failing.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let batch: Value = serde_json::from_slice(&body).unwrap();
    let mut seqs = seen.seqs.lock().unwrap();
    let events = batch["events"].as_array().unwrap();
    assert_eq!(batch["next_after"], events.last().unwrap()["seq"], "next_after is the batch's last seq");
    for event in events {
        let seq = event["seq"].as_u64().unwrap();
        if seqs.last().is_some_and(|last| seq <= *last) {
            seen.doubled.lock().unwrap().push(seq);
        } else {
            seqs.push(seq);
        }
    }
    StatusCode::OK
}

/// The core's receiver on a fixed port; stopping it closes its listener and connections.
struct Receiver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start(port: u16, seen: Arc<Seen>) -> Receiver {
        let app = axum::Router::new().route("/core/events", axum::routing::post(take)).with_state(seen);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Receiver { stop: Some(stop), task: Some(task) }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

fn write_config(dir: &Path, receiver_port: u16) -> PathBuf {
    let path = dir.join("channels.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[core]
push_url = "http://127.0.0.1:{receiver_port}/core/events"
push_secret = "{PUSH_SECRET}"
push_batch = 7
push_timeout_seconds = 5
push_max_backoff_seconds = 0.3

[accounts.main]
kind = "telegram"
bot_token = "1:push"
secret_token = "{TG_SECRET}"
api_base_url = "http://127.0.0.1:9"
"#
        ),
    )
    .unwrap();
    path
}

async fn start_gateway(config: &Path, data: &Path) -> Serve {
    Serve::start(env!("CARGO_BIN_EXE_chatgate"), config, data, free_port(), &[], &[]).await
}

/// Posts Telegram webhooks `from..to`; each must be stored (200).
async fn post_webhooks(gateway: &Serve, from: u64, to: u64) {
    for n in from..to {
        let body = json!({"update_id": n, "message": {"message_id": n, "date": 1718000000, "text": format!("push {n}"),
            "from": {"id": 700 + n % 5, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": 700 + n % 5, "type": "private", "first_name": "Ann"}}});
        let answer = gateway
            .api
            .client
            .post(format!("{}/webhooks/telegram/main", gateway.api.base))
            .header("X-Telegram-Bot-Api-Secret-Token", TG_SECRET)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "webhook {n}");
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz(gateway: &Serve) -> (u16, Value) {
    let answer = gateway.api.client.get(format!("{}/readyz", gateway.api.base)).send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// Every event on the log through pull, paged.
async fn pulled(gateway: &Serve) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    loop {
        let page = gateway.api.events(out.last().copied().unwrap_or(0)).await;
        if page.is_empty() {
            return out;
        }
        out.extend(page.iter().map(|e| e["seq"].as_u64().unwrap()));
    }
}

fn sigterm(gateway: &mut Serve) {
    let status = Command::new("kill").args(["-TERM", &gateway.child.id().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -TERM failed");
    let started = Instant::now();
    loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            assert!(status.success(), "the gateway exited with {status}");
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the gateway did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_survives_the_core_going_away_and_a_gateway_restart_without_skips_or_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let data = dir.path().join("data");
    let seen = Arc::new(Seen::default());
    let count = |seen: &Seen| seen.seqs.lock().unwrap().len();

    // 1. The core is up: batches of 7 arrive in order.
    let receiver = Receiver::start(port, seen.clone()).await;
    let mut gateway = start_gateway(&config, &data).await;
    post_webhooks(&gateway, 1, 21).await;
    wait_for("the first 20 events", Duration::from_secs(20), || count(&seen) == 20).await;
    assert_eq!(readyz(&gateway).await.0, 200);

    // 2. The core goes away (connection refused): the gateway keeps retrying the same batch,
    //    is not ready, and delivers everything once the core is back on the same address.
    receiver.stop().await;
    post_webhooks(&gateway, 21, 41).await;
    let started = Instant::now();
    loop {
        let (status, body) = readyz(&gateway).await;
        if status == 503 {
            assert_eq!(body["checks"]["push"]["ok"], false, "{body}");
            assert_eq!(body["checks"]["queue"]["ok"], true, "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "readyz never reported the core unreachable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gateway.api.metric("chatgate_push_failures_total").await >= 1.0);
    assert_eq!(gateway.api.metric("chatgate_push_lag_events").await, 20.0);
    let receiver = Receiver::start(port, seen.clone()).await;
    wait_for("events 21..=40 after the core came back", Duration::from_secs(20), || count(&seen) == 40).await;

    // 3. The core answers 503 for a while: nothing is taken, nothing is skipped.
    seen.failing.store(true, Ordering::Relaxed);
    let before = seen.requests.load(Ordering::Relaxed);
    post_webhooks(&gateway, 41, 51).await;
    wait_for("refused pushes", Duration::from_secs(20), || seen.requests.load(Ordering::Relaxed) >= before + 3).await;
    assert_eq!(count(&seen), 40, "a refused batch is not taken");
    seen.failing.store(false, Ordering::Relaxed);
    wait_for("events 41..=50", Duration::from_secs(20), || count(&seen) == 50).await;

    // 4. Events stored while the core is away, then a gateway restart (SIGTERM): the new process
    //    resumes after the durable cursor; nothing taken before is sent again.
    receiver.stop().await;
    post_webhooks(&gateway, 51, 66).await;
    sigterm(&mut gateway);
    let receiver = Receiver::start(port, seen.clone()).await;
    let gateway = start_gateway(&config, &data).await;
    wait_for("events 51..=65 after the restart", Duration::from_secs(20), || count(&seen) == 65).await;
    // Room for a wrongly resent batch to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pushed = seen.seqs.lock().unwrap().clone();
    let doubled = seen.doubled.lock().unwrap().clone();
    let all = pulled(&gateway).await;
    println!(
        "pushed={} doubled={} bad_signatures={} requests={} pulled={}",
        pushed.len(),
        doubled.len(),
        seen.bad_signatures.load(Ordering::Relaxed),
        seen.requests.load(Ordering::Relaxed),
        all.len()
    );
    assert_eq!(all.len(), 65, "one event per webhook");
    assert_eq!(pushed, all, "push delivered exactly the log, in order, without gaps");
    assert!(doubled.is_empty(), "events pushed twice: {doubled:?}");
    assert_eq!(seen.bad_signatures.load(Ordering::Relaxed), 0, "every push verified");
    assert_eq!(gateway.api.metric("chatgate_push_lag_events").await, 0.0);
    assert_eq!(gateway.api.metric("chatgate_push_cursor").await, *all.last().unwrap() as f64);
    assert_eq!(readyz(&gateway).await.0, 200);
    receiver.stop().await;
}
