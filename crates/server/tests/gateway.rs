//! The server against a scripted in-memory channel: webhook durability and errors, the core
//! API's validation, blocking, outbound order, retries, idempotency, windows, downloads, restarts.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use chatgate_adapter::verify::constant_time_eq;
use chatgate_adapter::{
    Adapter, Capabilities, ChannelFacts, Inbound, InboundEvent, OutboundPart, PartBody, RateLimits, Reply, SendError,
    SendReceipt, WebhookError, WebhookRequest,
};
use chatgate_model::ErrorCode;
use chatgate_model::limits::MB;
use chatgate_model::{Channel, Customer, Event, EventKind, Limits, Message, Status, StatusInfo};
use chatgate_testkit::gateway::{Harness, TOKEN};
use chatgate_testkit::mock::MockApi;
use serde_json::{Value, json};

const SECRET: &str = "s3cret";

/// The test channel's name.
const WEB: Channel = Channel::from_static("web");

/// Small limits, native replies and templates, no window, a 4 KiB body cap.
const FACTS: ChannelFacts = ChannelFacts {
    limits: Limits::mb(Some(1), Some(1), None, Some(2)),
    rate_limits: RateLimits { per_account: None, per_chat: None },
    capabilities: Capabilities { native_reply: true, templates: true, ..Capabilities::NONE },
    max_body_bytes: 4096,
};

/// A channel whose webhooks are `{"events":[...]}` and whose sends follow a script.
#[derive(Debug)]
struct Scripted {
    facts: ChannelFacts,
    sent: Mutex<Vec<OutboundPart>>,
    /// When each part of `sent` was tried.
    sent_at: Mutex<Vec<Instant>>,
    script: Mutex<VecDeque<Result<SendReceipt, SendError>>>,
}

impl Default for Scripted {
    fn default() -> Scripted {
        Scripted { facts: FACTS, sent: Mutex::default(), sent_at: Mutex::default(), script: Mutex::default() }
    }
}

#[async_trait]
impl Adapter for Scripted {
    fn channel(&self) -> Channel {
        WEB
    }
    fn account(&self) -> &str {
        "test"
    }
    fn facts(&self) -> &ChannelFacts {
        &self.facts
    }
    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        let given = request.header("x-test-secret").ok_or(WebhookError::MissingSignature)?;
        if constant_time_eq(given.as_bytes(), SECRET.as_bytes()) { Ok(()) } else { Err(WebhookError::BadSignature) }
    }
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
        let body: Value = serde_json::from_slice(request.body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let mut events = Vec::new();
        for e in body["events"].as_array().cloned().unwrap_or_default() {
            let chat = e["chat"].as_str().unwrap_or("c1");
            let event = match e["kind"].as_str() {
                Some("status") => {
                    let mut ev = Event::new(EventKind::Status, WEB, "test", chat);
                    ev.status = Some(StatusInfo {
                        message_id: None,
                        external_id: e["external"].as_str().map(str::to_owned),
                        status: Status::parse(e["status"].as_str().unwrap_or("")).unwrap_or(Status::Sent),
                        error: None,
                        up_to: None,
                    });
                    ev
                }
                _ => {
                    let mut ev = Event::new(EventKind::Message, WEB, "test", chat);
                    ev.customer =
                        Some(Customer { id: e["customer"].as_str().unwrap_or(chat).into(), ..Customer::default() });
                    ev.message = Some(Message {
                        external_id: "m".into(),
                        text: e["text"].as_str().map(str::to_owned),
                        ..Message::default()
                    });
                    ev
                }
            };
            events.push(InboundEvent::new(e["key"].as_str().map(str::to_owned), event));
        }
        Ok(Inbound { events, reply: Reply::Text("ok".into()) })
    }
    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        headers.insert("x-test-secret", SECRET.parse().unwrap());
        body
    }
    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        self.sent.lock().unwrap().push(part.clone());
        self.sent_at.lock().unwrap().push(Instant::now());
        let scripted = self.script.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| {
            Ok(SendReceipt {
                external_id: format!("ext-{}-{}", part.message_id, part.index),
                status: Status::Delivered,
            })
        })
    }
}

/// The shared harness, and the scripted adapter it serves (to read what was sent).
struct Server {
    harness: Harness,
    adapter: Arc<Scripted>,
}

impl std::ops::Deref for Server {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.harness
    }
}

async fn start_with(dir: &std::path::Path, adapter: Arc<Scripted>, allow_loopback: bool) -> Server {
    let harness = Harness::start_in(dir, vec![adapter.clone() as Arc<dyn Adapter>], |settings| {
        if allow_loopback {
            settings.fetch.allow = vec!["127.0.0.1".parse().unwrap()];
        }
    })
    .await;
    Server { harness, adapter }
}

async fn start(dir: &std::path::Path) -> Server {
    start_with(dir, Arc::new(Scripted::default()), true).await
}

/// Posts a webhook signed for the scripted account.
async fn webhook(h: &Harness, body: Value) -> (StatusCode, String) {
    h.webhook(&body.to_string(), &[]).await
}

fn text_msg(chat: &str, text: &str) -> Value {
    json!({"channel": "web", "account": "test", "chat_id": chat, "text": text})
}

#[tokio::test]
async fn webhook_events_are_stored_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let (status, body) =
        webhook(&h, json!({"events": [{"key": "1", "text": "hello"}, {"key": "2", "text": "again"}]})).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let events = h.events().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["v"], 1);
    assert_eq!(events[1]["message"]["text"], "again");
}

#[tokio::test]
async fn unauthenticated_or_malformed_webhooks_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let body = json!({"events": [{"key": "1"}]}).to_string();
    let (s, _) = h.request(Method::POST, "/webhooks/web/test", &[], body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h.request(Method::POST, "/webhooks/web/test", &[("x-test-secret", "S3CRET")], body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = h.request(Method::POST, "/webhooks/web/test", &[("x-test-secret", SECRET)], "{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h.request(Method::POST, "/webhooks/web/nope", &[("x-test-secret", SECRET)], body.clone()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h.request(Method::PUT, "/webhooks/web/test", &[("x-test-secret", SECRET)], body).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = h.request(Method::GET, "/webhooks/web/test?hub.challenge=1", &[], "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "a channel without a handshake refuses GET");
    let big = format!("{{\"events\":[],\"pad\":\"{}\"}}", "x".repeat(5000));
    let (s, _) = h.request(Method::POST, "/webhooks/web/test", &[("x-test-secret", SECRET)], big.clone()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Without Content-Length (streamed body) the cap still holds.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(big))]);
    let (s, _) =
        h.request(Method::POST, "/webhooks/web/test", &[("x-test-secret", SECRET)], Body::from_stream(stream)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.events().await.is_empty());
}

#[tokio::test]
async fn redelivered_events_are_stored_once_and_answered_alike() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    for _ in 0..3 {
        let (s, body) = webhook(&h, json!({"events": [{"key": "update:5", "text": "hi"}]})).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ok"));
    }
    assert_eq!(h.events().await.len(), 1);
    let (_, metrics) = h.request(Method::GET, "/metrics", &[], "").await;
    assert!(metrics.contains("chatgate_inbound_duplicates_total{channel=\"web\",account=\"test\"} 2"), "{metrics}");
    assert!(metrics.contains("chatgate_webhooks_accepted_total{channel=\"web\",account=\"test\"} 3"), "{metrics}");
    assert!(metrics.contains("chatgate_queue_durable_seq 1"), "{metrics}");
    assert!(metrics.contains("chatgate_queue_commands_total 3"), "{metrics}");
}

#[tokio::test]
async fn core_api_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let (s, body) = h.request(Method::GET, "/v1/events", &[], "").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let (s, _) = h.request(Method::GET, "/v1/events", &[("authorization", "Bearer wrong")], "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The scheme is case-insensitive (RFC 9110 §11.1).
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let value = format!("{scheme} {TOKEN}");
        let (s, body) = h.request(Method::GET, "/v1/events", &[("authorization", value.as_str())], "").await;
        assert_eq!(s, StatusCode::OK, "{value}: {body}");
    }
    let (s, _) = h.request(Method::GET, "/healthz", &[], "").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn outbound_validation_gives_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let (s, v) = h.send(text_msg("c1", &"é".repeat(2000))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, v) = h.send(text_msg("c1", &"é".repeat(2001))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["code"], "text_too_long");
    assert_eq!((v["error"]["limit"].as_u64(), v["error"]["actual"].as_u64()), (Some(2000), Some(2001)));

    let cases = [
        (json!({"channel": "web", "account": "test", "chat_id": "c1"}), "empty_message"),
        (json!({"channel": "web", "account": "test", "chat_id": "c1", "text": "  "}), "empty_message"),
        (json!({"channel": "fax", "account": "test", "chat_id": "c1", "text": "x"}), "unknown_channel"),
        (json!({"channel": "vk", "account": "test", "chat_id": "c1", "text": "x"}), "unknown_channel"),
        (json!({"channel": "web", "account": "other", "chat_id": "c1", "text": "x"}), "unknown_account"),
        (
            json!({"channel": "web", "account": "test", "chat_id": "c1", "attachments": [{"kind": "image", "url": "http://127.0.0.1/a.png", "size": MB + 1}]}),
            "attachment_too_large",
        ),
        (
            json!({"channel": "web", "account": "test", "chat_id": "c1", "attachments": [{"kind": "video", "url": "http://127.0.0.1/a.mp4"}]}),
            "attachment_kind_unsupported",
        ),
        (
            json!({"channel": "web", "account": "test", "chat_id": "c1", "attachments": [{"kind": "file", "url": "ftp://x/y"}]}),
            "invalid_request",
        ),
        (json!({"channel": "web", "account": "test", "chat_id": "c1", "text": "x", "surprise": 1}), "invalid_request"),
    ];
    for (body, code) in cases {
        let (s, v) = h.send(body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(v["error"]["code"], code, "{body} → {v}");
    }
    let (s, v) = h.send(json!({"channel": "web", "account": "test", "chat_id": "c1", "attachments": [{"kind": "image", "url": "http://127.0.0.1/a.png", "size": MB}]})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "exactly the limit is accepted: {v}");
    let (s, t) =
        h.request(Method::POST, "/v1/messages", &[("authorization", &format!("Bearer {TOKEN}"))], "{oops").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{t}");
}

#[tokio::test]
async fn messages_go_out_in_order_and_report_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = text_msg("chat-a", &format!("m{i}"));
        if i == 0 {
            body["reply_to"] = json!("earlier-1");
        }
        let (s, v) = h.send(body).await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::ACCEPTED, Some("queued")));
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        h.wait_status(id, "delivered").await;
    }
    let sent = h.adapter.sent.lock().unwrap().clone();
    let texts: Vec<_> = sent
        .iter()
        .map(|p| match &p.body {
            PartBody::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(sent[0].reply_to.as_deref(), Some("earlier-1"));
    let record = h.wait_status(&ids[0], "delivered").await;
    assert_eq!(record["external_ids"][0], format!("ext-{}-0", ids[0]));
    let history: Vec<_> =
        record["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(history, ["queued", "delivered"]);
    // Status changes are events on the same log.
    let statuses: Vec<_> = h
        .events()
        .await
        .into_iter()
        .filter(|e| e["type"] == "status" && e["status"]["message_id"] == ids[0].as_str())
        .map(|e| e["status"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["queued", "delivered"]);
}

#[tokio::test]
async fn retries_follow_the_error_kind() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = Arc::new(Scripted::default());
    adapter.script.lock().unwrap().extend([
        Err(SendError::transient("HTTP 502")),
        Err(SendError::retry_after(Duration::from_millis(30), "429")),
        Ok(SendReceipt { external_id: "x1".into(), status: Status::Sent }),
        Err(SendError::failed(ErrorCode::CustomerUnsubscribed, "bot was blocked by the user")),
    ]);
    let h = start_with(dir.path(), adapter, true).await;
    let (_, v) = h.send(text_msg("c1", "first")).await;
    let first = v["id"].as_str().unwrap().to_owned();
    let (_, v) = h.send(text_msg("c1", "second")).await;
    let second = v["id"].as_str().unwrap().to_owned();
    h.wait_status(&first, "sent").await;
    let failed = h.wait_status(&second, "failed").await;
    assert_eq!(failed["error"]["code"], "customer_unsubscribed");
    assert_eq!(h.adapter.sent.lock().unwrap().len(), 4, "three tries of the first, one of the second");
}

#[tokio::test]
async fn idempotency_key_sends_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let mut body = text_msg("c1", "once");
    body["idempotency_key"] = json!("op-1");
    let (s1, v1) = h.send(body.clone()).await;
    let (s2, v2) = h.send(body.clone()).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(v1["id"], v2["id"]);
    h.wait_status(v1["id"].as_str().unwrap(), "delivered").await;
    body["text"] = json!("changed");
    let (s3, v3) = h.send(body).await;
    assert_eq!((s3, v3["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_conflict")));
    assert_eq!(h.adapter.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn blocked_customers_neither_send_nor_receive() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let (s, v) = h.api(Method::PUT, "/v1/blocks/web/test/u1", None).await;
    assert_eq!((s, v["blocked"].as_bool()), (StatusCode::OK, Some(true)));
    let (s, _) =
        webhook(&h, json!({"events": [{"key": "1", "chat": "u1", "customer": "u1", "text": "let me in"}]})).await;
    assert_eq!(s, StatusCode::OK, "the provider is answered, but nothing is forwarded");
    assert!(h.events().await.is_empty());
    let (s, v) = h.send(text_msg("u1", "hello")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("customer_blocked")));
    let (_, metrics) = h.request(Method::GET, "/metrics", &[], "").await;
    assert!(metrics.contains("chatgate_inbound_blocked_total{channel=\"web\",account=\"test\"} 1"), "{metrics}");

    let (s, _) = h.api(Method::PUT, "/v1/blocks/fax/test/u1", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = h.api(Method::DELETE, "/v1/blocks/web/test/u1", None).await;
    assert_eq!((s, v["blocked"].as_bool()), (StatusCode::OK, Some(false)));
    webhook(&h, json!({"events": [{"key": "2", "chat": "u1", "customer": "u1", "text": "thanks"}]})).await;
    assert_eq!(h.events().await.len(), 1);
    let (s, _) = h.send(text_msg("u1", "hello")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn blocks_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let h = start(dir.path()).await;
        h.api(Method::PUT, "/v1/blocks/web/test/u9", None).await;
    }
    let h = start(dir.path()).await;
    let (_, v) = h.send(text_msg("u9", "hello")).await;
    assert_eq!(v["error"]["code"], "customer_blocked");
}

#[tokio::test]
async fn messaging_window_is_enforced_before_calling_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let windowed = Capabilities { messaging_window: Some(Duration::from_secs(24 * 3600)), ..FACTS.capabilities };
    let adapter = Arc::new(Scripted { facts: ChannelFacts { capabilities: windowed, ..FACTS }, ..Scripted::default() });
    let h = start_with(dir.path(), adapter, true).await;
    let (s, v) = h.send(text_msg("w1", "hi")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("window_closed")));
    let template =
        json!({"channel": "web", "account": "test", "chat_id": "w1", "template": {"name": "hello", "language": "en"}});
    let (s, v) = h.send(template).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    h.wait_status(v["id"].as_str().unwrap(), "delivered").await;
    let (_, conv) = h.api(Method::GET, "/v1/conversations/web/test/w1", None).await;
    assert_eq!(conv["window"]["open"], false);

    webhook(&h, json!({"events": [{"key": "k", "chat": "w1", "text": "hello"}]})).await;
    let (_, conv) = h.api(Method::GET, "/v1/conversations/web/test/w1", None).await;
    assert_eq!(conv["window"]["open"], true, "{conv}");
    let (s, _) = h.send(text_msg("w1", "now we can talk")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let sent = h.adapter.sent.lock().unwrap().clone();
    assert!(matches!(sent[0].body, PartBody::Template(_)));
}

#[tokio::test]
async fn receipts_from_webhooks_update_outbound_status() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let adapter = h.adapter.clone();
    adapter.script.lock().unwrap().push_back(Ok(SendReceipt { external_id: "prov-1".into(), status: Status::Sent }));
    let (_, v) = h.send(text_msg("r1", "hi")).await;
    let id = v["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, "sent").await;
    webhook(
        &h,
        json!({"events": [{"key": "s1", "kind": "status", "chat": "r1", "external": "prov-1", "status": "read"}]}),
    )
    .await;
    webhook(
        &h,
        json!({"events": [{"key": "s2", "kind": "status", "chat": "r1", "external": "prov-1", "status": "delivered"}]}),
    )
    .await;
    let record = h.wait_status(&id, "read").await;
    let history: Vec<_> =
        record["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(history, ["queued", "sent", "read"], "a late delivered changes nothing");
}

#[tokio::test]
async fn attachments_are_downloaded_within_limits_and_address_policy() {
    let dir = tempfile::tempdir().unwrap();
    let files = MockApi::start(|r| match r.path.as_str() {
        "/small.png" => (200, json!("tiny")),
        "/big.bin" => (200, json!("x".repeat((2 * MB) as usize + 10))),
        _ => (404, json!({})),
    })
    .await;
    let h = start(dir.path()).await;
    let attach = |kind: &str, path: &str| json!({"channel": "web", "account": "test", "chat_id": "f1", "attachments": [{"kind": kind, "url": format!("{}{path}", files.base_url), "name": "pic.png"}]});
    let (_, v) = h.send(attach("image", "/small.png")).await;
    h.wait_status(v["id"].as_str().unwrap(), "delivered").await;
    let sent = h.adapter.sent.lock().unwrap().clone();
    match &sent[0].body {
        PartBody::Media { media, .. } => {
            assert_eq!(&media.bytes[..], b"\"tiny\"");
            assert_eq!(media.name, "pic.png");
            assert_eq!(media.mime.as_deref(), Some("application/json"));
        }
        other => panic!("{other:?}"),
    }
    let (_, v) = h.send(attach("file", "/big.bin")).await;
    let failed = h.wait_status(v["id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["error"]["code"], "attachment_too_large");
    let (_, v) = h.send(attach("file", "/missing")).await;
    let failed = h.wait_status(v["id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["error"]["code"], "attachment_unavailable");

    // Without the allowlist, loopback is refused.
    let dir2 = tempfile::tempdir().unwrap();
    let strict = start_with(dir2.path(), Arc::new(Scripted::default()), false).await;
    let (_, v) = strict.send(attach("image", "/small.png")).await;
    let failed = strict.wait_status(v["id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["error"]["code"], "attachment_url_forbidden");
    assert!(strict.adapter.sent.lock().unwrap().is_empty());
}

/// Waits until the adapter was called `n` times; when the last of them happened.
async fn tried(adapter: &Scripted, n: usize) -> Instant {
    for _ in 0..500 {
        if let Some(at) = adapter.sent_at.lock().unwrap().get(n - 1) {
            return *at;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the adapter was not called {n} times");
}

#[tokio::test]
async fn a_redirect_to_a_file_url_is_forbidden_not_unavailable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A file server that redirects every request to `file:///etc/passwd`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = socket.read(&mut buf).await;
            let answer =
                "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let (_, v) = h
        .send(json!({"channel": "web", "account": "test", "chat_id": "f2",
                     "attachments": [{"kind": "image", "url": format!("http://{addr}/pic.png")}]}))
        .await;
    let failed = h.wait_status(v["id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["error"]["code"], "attachment_url_forbidden", "{failed}");
    assert!(h.adapter.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn queued_messages_survive_a_restart_and_the_providers_wait_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let wait = Duration::from_millis(1500);
    let (id, refused_at) = {
        let adapter = Arc::new(Scripted::default());
        // The provider asks for a wait longer than this gateway lives.
        adapter.script.lock().unwrap().push_back(Err(SendError::retry_after(wait, "429: retry after 1.5 s")));
        let h = start_with(dir.path(), adapter, true).await;
        let (_, v) = h.send(text_msg("r", "survive")).await;
        (v["id"].as_str().unwrap().to_owned(), tried(&h.adapter, 1).await)
    };
    let h = start(dir.path()).await;
    h.wait_status(&id, "delivered").await;
    assert_eq!(h.adapter.sent.lock().unwrap().len(), 1);
    let resent = h.adapter.sent_at.lock().unwrap()[0] - refused_at;
    println!("provider's wait {wait:?}, resent after the restart {resent:?} after the refusal");
    assert!(resent >= wait - Duration::from_millis(50), "sent again {resent:?} after a {wait:?} wait");
}

#[tokio::test]
async fn an_account_wide_wait_holds_every_chat_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let wait = Duration::from_millis(1500);
    let (first, other, refused_at) = {
        let adapter = Arc::new(Scripted::default());
        adapter.script.lock().unwrap().push_back(Err(SendError::account_retry_after(wait, "429 for the bot")));
        let h = start_with(dir.path(), adapter, true).await;
        let (_, v) = h.send(text_msg("a", "first")).await;
        let refused_at = tried(&h.adapter, 1).await;
        // Another chat, queued while the account is held: not sent by this gateway either.
        let (_, v2) = h.send(text_msg("b", "other chat")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.adapter.sent.lock().unwrap().len(), 1, "the other chat waits for the account");
        (v["id"].as_str().unwrap().to_owned(), v2["id"].as_str().unwrap().to_owned(), refused_at)
    };
    let h = start(dir.path()).await;
    h.wait_status(&first, "delivered").await;
    h.wait_status(&other, "delivered").await;
    let times = h.adapter.sent_at.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    for at in times {
        let after = at - refused_at;
        println!("account wait {wait:?}: a message went out {after:?} after the refusal");
        assert!(after >= wait - Duration::from_millis(50), "sent {after:?} into a {wait:?} account wait");
    }
}

#[tokio::test]
async fn the_first_transient_retry_after_a_providers_wait_uses_the_base_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = Arc::new(Scripted::default());
    adapter
        .script
        .lock()
        .unwrap()
        .extend([Err(SendError::retry_after(Duration::from_millis(10), "429")), Err(SendError::transient("HTTP 502"))]);
    let base = Duration::from_millis(400);
    let harness = Harness::start_in(dir.path(), vec![adapter.clone() as Arc<dyn Adapter>], |s| {
        s.base_backoff = base;
        s.max_backoff = Duration::from_secs(10);
    })
    .await;
    let (_, v) = harness.send(text_msg("b", "backoff")).await;
    harness.wait_status(v["id"].as_str().unwrap(), "delivered").await;
    let times = adapter.sent_at.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    let gap = times[2] - times[1];
    println!("first backoff after a 429: {gap:?} (base {base:?}, ±20 % jitter)");
    // The base with its jitter is 320–480 ms; counting the 429 as a step would make it 640–960 ms.
    assert!(gap >= base.mul_f64(0.8) - Duration::from_millis(20) && gap < base.mul_f64(1.5), "{gap:?}");
}

#[tokio::test]
async fn long_poll_returns_when_an_event_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let h = Arc::new(start(dir.path()).await);
    let poller = {
        let h = h.clone();
        tokio::spawn(async move { h.api(Method::GET, "/v1/events?after=0&wait=10", None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    webhook(&h, json!({"events": [{"key": "lp", "text": "wake up"}]})).await;
    let (s, v) = tokio::time::timeout(Duration::from_secs(5), poller).await.unwrap().unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    assert_eq!(v["next_after"], 1);
}

/// A webhook of the scripted channel, signed, as a request for the router.
fn signed_webhook(key: &str) -> axum::http::Request<Body> {
    let body = json!({"events": [{"key": key, "text": format!("message {key}")}]}).to_string();
    axum::http::Request::post("/webhooks/web/test")
        .header("content-type", "application/json")
        .header("x-test-secret", SECRET)
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn webhooks_past_the_pending_bound_are_shed_with_503_and_nothing_admitted_is_lost() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let adapter = Arc::new(Scripted::default());
    let h = Harness::start_in(dir.path(), vec![adapter as Arc<dyn Adapter>], |s| s.max_pending_webhooks = 2).await;
    let app = h.gateway().router();

    // Another connection holds SQLite's write lock: the gateway's writer waits for it (its busy
    // timeout is 5 s), so admitted webhooks stay waiting for the store.
    let lock = rusqlite::Connection::open(dir.path().join("chatgate.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let waiting: Vec<_> =
        ["a", "b"].into_iter().map(|key| tokio::spawn(app.clone().oneshot(signed_webhook(key)))).collect();

    let deadline = Instant::now() + Duration::from_secs(3);
    while h.gateway().pending_webhooks() < 2 {
        assert!(Instant::now() < deadline, "the two webhooks never reached the store");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Both are admitted and waiting: the next one is refused at once.
    let shed_key = "c";
    let shed = app.clone().oneshot(signed_webhook(shed_key)).await.unwrap();
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body = http_body_util::BodyExt::collect(shed.into_body()).await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], ErrorCode::Overloaded.as_str(), "{body}");

    lock.execute_batch("ROLLBACK").unwrap();
    for answer in waiting {
        assert_eq!(answer.await.unwrap().unwrap().status(), StatusCode::OK, "an admitted webhook was not stored");
    }
    // The shed webhook was not stored; its provider's retry is.
    let texts = |events: Vec<Value>| -> Vec<String> {
        let mut t: Vec<String> = events.iter().map(|e| e["message"]["text"].as_str().unwrap().to_owned()).collect();
        t.sort();
        t
    };
    assert_eq!(texts(h.events().await), ["message a", "message b"]);
    let retried = app.clone().oneshot(signed_webhook(shed_key)).await.unwrap();
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(
        texts(h.events().await),
        ["message a".to_owned(), "message b".to_owned(), format!("message {shed_key}")]
    );

    let (status, metrics) = h.request(Method::GET, "/metrics", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let line = metrics.lines().find(|l| l.starts_with("chatgate_webhooks_rejected_total") && l.contains("overloaded"));
    let count: u64 = line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0);
    assert!(count >= 1, "no shed webhook in /metrics: {line:?}");
}
