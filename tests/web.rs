//! The web widget's visitor protocol without a browser (`crates/channel-web/PROTOCOL.md`): every
//! route through the router — origin and CORS, token forgery, identity off/optional/required,
//! rate limits, idempotent messages, uploads by content, feedback validation, the resumable
//! stream (also across a gateway restart) and the status rules (sent, delivered, read, visitor_gone).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use chatgate_adapter::verify::hmac_sha256;
use chatgate_adapter::{Adapter, ChannelFactory};
use chatgate_model::limits::LimitOverrides;
use chatgate_testkit::gateway::Harness;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

const SITE: &str = "https://shop.example";
const PNG: &[u8] = include_bytes!("../crates/channel-web/assets/avatar-bot.png");

fn widget(extra: Value) -> Arc<dyn Adapter> {
    let mut settings = json!({
        "public_url": "http://127.0.0.1:8080",
        "allowed_origins": [SITE],
        "token_secret": "web-test-token-secret-000",
        "gone_after_seconds": 60,
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        settings[k] = v;
    }
    chatgate_channel_web::FACTORY.build("web", settings).unwrap()
}

async fn start(dir: &Path, adapter: Arc<dyn Adapter>, limits: LimitOverrides) -> Harness {
    Harness::start_accounts(dir, vec![(adapter, limits)], |_| {}).await
}

/// A visitor request from the allowed site; the body as JSON and the response headers.
async fn call(
    h: &Harness,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Body,
) -> (StatusCode, Value, http::HeaderMap) {
    let mut r =
        Request::builder().method(method).uri(uri).header("origin", SITE).header("content-type", "application/json");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    raw(h, r.body(body).unwrap()).await
}

async fn raw(h: &Harness, request: Request<Body>) -> (StatusCode, Value, http::HeaderMap) {
    let response = h.router().oneshot_response(request).await;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), parts.headers)
}

async fn post(h: &Harness, uri: &str, token: Option<&str>, body: Value) -> (StatusCode, Value, http::HeaderMap) {
    call(h, Method::POST, uri, token, Body::from(body.to_string())).await
}

async fn session(h: &Harness, body: Value) -> (String, String) {
    let (status, answer, _) = post(h, "/web/web/sessions", None, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    (answer["token"].as_str().unwrap().to_owned(), answer["visitor_id"].as_str().unwrap().to_owned())
}

/// Reads a visitor stream until it has `want` items (or 5 s pass): `(id, event, data)` each.
async fn read_stream(h: &Harness, token: &str, last_event_id: Option<u64>, want: usize) -> Vec<(u64, String, Value)> {
    let mut r =
        Request::get("/web/web/stream").header("origin", SITE).header("authorization", format!("Bearer {token}"));
    if let Some(n) = last_event_id {
        r = r.header("last-event-id", n.to_string());
    }
    let response = h.router().oneshot_response(r.body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while parse_sse(&text).len() < want {
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await else { break };
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    parse_sse(&text)
}

fn parse_sse(text: &str) -> Vec<(u64, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
            Some((
                field("id:")?.parse().ok()?,
                field("event:")?.to_owned(),
                serde_json::from_str(field("data:")?).ok()?,
            ))
        })
        .collect()
}

trait Oneshot {
    async fn oneshot_response(self, request: Request<Body>) -> axum::response::Response;
}

impl Oneshot for axum::Router {
    async fn oneshot_response(self, request: Request<Body>) -> axum::response::Response {
        tower::ServiceExt::oneshot(self, request).await.unwrap()
    }
}

trait RouterOf {
    fn router(&self) -> axum::Router;
}

impl RouterOf for Harness {
    fn router(&self) -> axum::Router {
        self.gateway().router()
    }
}

#[tokio::test]
async fn only_allowed_origins_are_served_and_answered_with_cors() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), widget(json!({})), LimitOverrides::default()).await;
    let (status, config, headers) = call(&h, Method::GET, "/web/web/config", None, Body::empty()).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(headers["access-control-allow-origin"], SITE);
    assert_eq!(headers["vary"], "origin");
    assert_eq!(config["limits"]["text_max_chars"], 2000);

    for origin in ["https://evil.example", "https://shop.example.evil.example", "null"] {
        let r = Request::get("/web/web/config").header("origin", origin).body(Body::empty()).unwrap();
        let (status, body, headers) = raw(&h, r).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("origin_not_allowed")));
        assert!(headers.get("access-control-allow-origin").is_none(), "{origin}");
    }
    // No Origin at all (not a browser on the allowed site): refused.
    let (status, _, _) = raw(&h, Request::get("/web/web/config").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/web/web/messages")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, headers) = raw(&h, preflight(SITE)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["access-control-allow-origin"], SITE);
    assert!(headers["access-control-allow-headers"].to_str().unwrap().contains("last-event-id"));
    let (status, _, headers) = raw(&h, preflight("https://evil.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get("access-control-allow-origin").is_none());

    // Unknown widget: 404. Static files: public.
    let (status, _, _) = call(&h, Method::GET, "/web/nope/config", None, Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, headers) = raw(&h, Request::get("/web/web/widget.js").body(Body::empty()).unwrap()).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "text/javascript; charset=utf-8"));
    let (status, _, headers) = raw(&h, Request::get("/web/web/avatars/bot").body(Body::empty()).unwrap()).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "image/png"));
    // Our own pages carry a strict CSP.
    let (status, _, headers) = raw(&h, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), widget(json!({})), LimitOverrides::default()).await;
    let (token, visitor) = session(&h, json!({})).await;
    let message = json!({ "client_id": "c1", "text": "hi" });
    let (status, _, _) = post(&h, "/web/web/messages", Some(&token), message.clone()).await;
    assert_eq!(status, StatusCode::OK);

    let other = widget(json!({ "token_secret": "another-secret-0000000000" }));
    let foreign = {
        let mut headers = http::HeaderMap::new();
        other.sign(&mut headers, vec![]);
        headers["authorization"].to_str().unwrap().trim_start_matches("Bearer ").to_owned()
    };
    let swapped = token.replace(&visitor, "v_aaaaaaaaaaaaaaaaaaaaaaaa");
    for bad in [None, Some("garbage"), Some(foreign.as_str()), Some(swapped.as_str())] {
        let (status, body, headers) = post(&h, "/web/web/messages", bad, message.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert_eq!(body["error"]["code"], "visitor_token_invalid");
        assert_eq!(headers["access-control-allow-origin"], SITE, "the widget can read the refusal");
    }
    // A forged token offered to open a session is refused too (no silent new visitor).
    let (status, body, _) = post(&h, "/web/web/sessions", None, json!({ "token": swapped })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("visitor_token_invalid")));
    // A valid token continues the same visitor.
    let (_, again) = session(&h, json!({ "token": token })).await;
    assert_eq!(again, visitor);
}

#[tokio::test]
async fn identity_off_optional_and_required() {
    let hash = |user: &str| hex::encode(hmac_sha256(b"site-identity-secret", user.as_bytes()));
    for (mode, anonymous, wrong, right) in [
        ("off", StatusCode::OK, StatusCode::OK, StatusCode::OK),
        ("optional", StatusCode::OK, StatusCode::FORBIDDEN, StatusCode::OK),
        ("required", StatusCode::FORBIDDEN, StatusCode::FORBIDDEN, StatusCode::OK),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let adapter = widget(json!({ "identity": mode, "identity_secret": "site-identity-secret" }));
        let h = start(dir.path(), adapter, LimitOverrides::default()).await;
        let (status, body, _) = post(&h, "/web/web/sessions", None, json!({})).await;
        assert_eq!(status, anonymous, "{mode}: {body}");
        if mode == "required" {
            assert_eq!(body["error"]["code"], "identity_required");
        }
        let (status, body, _) =
            post(&h, "/web/web/sessions", None, json!({ "user_id": "u-7", "user_hash": hash("u-8") })).await;
        assert_eq!(status, wrong, "{mode}: {body}");
        if wrong == StatusCode::FORBIDDEN {
            assert_eq!(body["error"]["code"], "identity_invalid");
        }
        let claim = json!({ "user_id": "u-7", "user_hash": hash("u-7") });
        let (status, first, _) = post(&h, "/web/web/sessions", None, claim.clone()).await;
        assert_eq!(status, right, "{mode}: {first}");
        let (_, second, _) = post(&h, "/web/web/sessions", None, claim).await;
        if mode == "off" {
            assert_eq!(first["identity"], "anonymous");
            assert_ne!(first["visitor_id"], second["visitor_id"], "off: a user id means nothing");
        } else {
            assert_eq!(first["identity"], "verified");
            assert_eq!(first["visitor_id"], second["visitor_id"], "{mode}: the same user on another device");
        }
    }
}

#[tokio::test]
async fn a_message_is_stored_once_per_client_id_with_page_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), widget(json!({})), LimitOverrides::default()).await;
    let opened = json!({
        "source": { "referrer": "https://search.example/?q=boots", "landing_url": "https://shop.example/boots?utm_source=ads",
                    "utm": { "source": "ads", "campaign": "spring" } },
        "page": { "url": "https://shop.example/boots", "title": "Boots" },
    });
    let (token, visitor) = session(&h, opened).await;
    let body = json!({ "client_id": "7d1c", "text": "Do you have size 42?", "page": { "url": "https://shop.example/boots/42", "title": "Boot 42" } });
    let (status, first, _) = post(&h, "/web/web/messages", Some(&token), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again, _) = post(&h, "/web/web/messages", Some(&token), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((again["id"].clone(), again["seq"].clone()), (first["id"].clone(), first["seq"].clone()));
    assert_eq!(again["duplicate"], true);

    let events = h.events().await;
    let messages: Vec<&Value> = events.iter().filter(|e| e["type"] == "message").collect();
    assert_eq!(messages.len(), 1, "a retried POST stores one message");
    let m = messages[0];
    assert_eq!((m["channel"].as_str(), m["chat_id"].as_str()), (Some("web"), Some(visitor.as_str())));
    assert_eq!(m["id"], first["id"]);
    assert_eq!(m["page"]["url"], "https://shop.example/boots/42");
    assert_eq!(m["source"]["kind"], "website");
    assert_eq!(m["source"]["referrer"], "https://search.example/?q=boots");
    assert_eq!(m["source"]["utm"]["campaign"], "spring");
    let opened: Vec<&Value> = events.iter().filter(|e| e["type"] == "page_view").collect();
    assert_eq!(opened.len(), 1, "the page the chat was opened on");

    // The echo is on the visitor's stream, with the widget's client id.
    let items = read_stream(&h, &token, None, 1).await;
    assert_eq!(items.len(), 1);
    assert_eq!((items[0].0, items[0].1.as_str()), (1, "message"));
    assert_eq!((items[0].2["from"].as_str(), items[0].2["client_id"].as_str()), (Some("visitor"), Some("7d1c")));

    let long = "ы".repeat(2001);
    let (status, body, _) =
        post(&h, "/web/web/messages", Some(&token), json!({ "client_id": "x", "text": long })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["limit"].as_u64(), body["error"]["actual"].as_u64()),
        (Some("text_too_long"), Some(2000), Some(2001))
    );
    let (status, body, _) =
        post(&h, "/web/web/messages", Some(&token), json!({ "client_id": "y", "text": "  " })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_message")));
    let (status, body, _) = call(&h, Method::POST, "/web/web/messages", Some(&token), Body::from("{not json")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = widget(json!({ "rate_limits": { "per_visitor_per_minute": 2 } }));
    let h = start(dir.path(), adapter, LimitOverrides::default()).await;
    let (token, _) = session(&h, json!({})).await; // the session counts for the visitor
    let (status, _, _) = post(&h, "/web/web/pageviews", Some(&token), json!({ "url": "https://shop.example/a" })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, headers) =
        post(&h, "/web/web/pageviews", Some(&token), json!({ "url": "https://shop.example/b" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another visitor is not held back by this one.
    let (other, _) = session(&h, json!({})).await;
    let (status, _, _) = post(&h, "/web/web/pageviews", Some(&other), json!({ "url": "https://shop.example/c" })).await;
    assert_eq!(status, StatusCode::OK);

    let dir = tempfile::tempdir().unwrap();
    let adapter = widget(json!({ "rate_limits": { "per_ip_per_minute": 3 } }));
    let h = start(dir.path(), adapter, LimitOverrides::default()).await;
    let mut refused = 0;
    for _ in 0..5 {
        let (status, _, _) = call(&h, Method::GET, "/web/web/config", None, Body::empty()).await;
        refused += usize::from(status == StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(refused, 2, "per IP: 3 of 5 pass");
}

#[tokio::test]
async fn uploads_are_checked_by_content_and_limited_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let limits: LimitOverrides = serde_json::from_value(json!({ "file_mb": 0.001 })).unwrap();
    let h = start(dir.path(), widget(json!({})), limits).await;
    let (token, _) = session(&h, json!({})).await;
    let upload = async |name: &str, bytes: Vec<u8>| {
        let uri = format!("/web/web/uploads?name={name}");
        call(&h, Method::POST, &uri, Some(&token), Body::from(bytes)).await
    };
    let (status, image, _) = upload("photo.png", PNG.to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{image}");
    assert_eq!((image["kind"].as_str(), image["mime"].as_str()), (Some("image"), Some("image/png")));
    // A script named like an image, and a page, are refused.
    let (status, body, _) = upload("cat.png", b"<script>alert(1)</script>".to_vec()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("upload_kind_unsupported"))
    );
    let (status, _, _) = upload("page.html", b"<html>".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Over the file limit (1 KB here).
    let (status, body, _) = upload("notes.txt", vec![b'a'; 4096]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("upload_too_large")));
    assert_eq!(body["error"]["limit"], 1049, "0.001 MiB, rounded up");

    // Attached to a message: the core gets it through /v1/media.
    let reference = image["ref"].as_str().unwrap();
    let (status, _, _) =
        post(&h, "/web/web/messages", Some(&token), json!({ "client_id": "p1", "attachments": [reference] })).await;
    assert_eq!(status, StatusCode::OK);
    let events = h.events().await;
    let media = events.iter().find(|e| e["type"] == "message").unwrap()["message"]["attachments"][0]["media"].clone();
    assert_eq!(media, format!("web:web:{reference}"));
    let (status, bytes) = h.get_authorized(&format!("/v1/media/{}", media.as_str().unwrap())).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, String::from_utf8_lossy(PNG).len()));
    // Another visitor cannot attach or read it.
    let (stranger, _) = session(&h, json!({})).await;
    let (status, _, _) =
        post(&h, "/web/web/messages", Some(&stranger), json!({ "client_id": "p2", "attachments": [reference] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, _) =
        call(&h, Method::GET, &format!("/web/web/files/{reference}"), Some(&stranger), Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn feedback_scores_are_validated_and_reach_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), widget(json!({})), LimitOverrides::default()).await;
    let (token, _) = session(&h, json!({})).await;
    for (score, scale) in [(6, 5), (0, 5), (3, 3), (11, 10), (-1, 2)] {
        let (status, body, _) =
            post(&h, "/web/web/feedback", Some(&token), json!({ "score": score, "scale": scale })).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")),
            "{score}/{scale}"
        );
    }
    let (status, _, _) =
        post(&h, "/web/web/feedback", Some(&token), json!({ "score": 5, "scale": 5, "request_id": "r1" })).await;
    assert_eq!(status, StatusCode::OK);
    let events = h.events().await;
    let f = events.iter().find(|e| e["type"] == "feedback").unwrap();
    assert_eq!(f["feedback"], json!({ "score": 5, "scale": 5, "request_id": "r1" }));
}

#[tokio::test]
async fn operator_messages_go_sent_delivered_read_and_the_stream_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (token, visitor, ids) = {
        let h = start(dir.path(), widget(json!({})), LimitOverrides::default()).await;
        let (token, visitor) = session(&h, json!({})).await;
        let first = read_stream(&h, &token, None, 0); // nothing yet; opens and closes a stream
        assert!(first.await.is_empty());
        // Connected while the core answers: each part becomes `sent` once it is on the stream.
        let mut ids = Vec::new();
        let stream = {
            let token = token.clone();
            let router = h.router();
            tokio::spawn(async move {
                let r = Request::get("/web/web/stream")
                    .header("origin", SITE)
                    .header("authorization", format!("Bearer {token}"));
                let response = router.oneshot_response(r.body(Body::empty()).unwrap()).await;
                let mut body = response.into_body();
                // Hold the stream open while the messages are sent.
                let _ = tokio::time::timeout(Duration::from_secs(10), async { while body.frame().await.is_some() {} })
                    .await;
            })
        };
        for text in ["one", "two", "three"] {
            let (status, sent) =
                h.send(json!({ "channel": "web", "account": "web", "chat_id": visitor, "text": text })).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
            let id = sent["id"].as_str().unwrap().to_owned();
            h.wait_status(&id, "sent").await;
            ids.push(id);
        }
        stream.abort();
        let items = read_stream(&h, &token, None, 3).await;
        assert_eq!(items.iter().map(|i| i.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(items[0].2["from"], "operator");
        assert_eq!(items[0].2["id"], format!("{}.0", ids[0]));

        // The widget acknowledges: delivered, then read; a stranger's receipt is ignored.
        let receipt = |status: &str| json!({ "items": [{ "id": format!("{}.0", ids[0]), "status": status }] });
        let (stranger, _) = session(&h, json!({})).await;
        let (_, ignored, _) = post(&h, "/web/web/receipts", Some(&stranger), receipt("read")).await;
        assert_eq!(ignored["ignored"], 1);
        assert_eq!(h.message(&ids[0]).await["status"], "sent");
        post(&h, "/web/web/receipts", Some(&token), receipt("delivered")).await;
        h.wait_status(&ids[0], "delivered").await;
        post(&h, "/web/web/receipts", Some(&token), receipt("read")).await;
        h.wait_status(&ids[0], "read").await;
        // Never backwards.
        post(&h, "/web/web/receipts", Some(&token), receipt("delivered")).await;
        assert_eq!(h.message(&ids[0]).await["status"], "read");
        (token, visitor, ids)
    };

    // A restarted gateway: the widget resumes after the last item it saw, and gets the rest once, in order.
    let h = start(dir.path(), widget(json!({})), LimitOverrides::default()).await;
    let (status, _) = h.send(json!({ "channel": "web", "account": "web", "chat_id": visitor, "text": "four" })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let items = read_stream(&h, &token, Some(1), 3).await;
    assert_eq!(items.iter().map(|i| i.0).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(
        items.iter().map(|i| i.2["text"].as_str().unwrap_or_default()).collect::<Vec<_>>(),
        ["two", "three", "four"]
    );
    assert_eq!(items[0].2["id"], format!("{}.0", ids[1]));
    let (status, items_after, _) = (StatusCode::OK, read_stream(&h, &token, Some(4), 1).await, ());
    assert_eq!((status, items_after.len()), (StatusCode::OK, 0), "nothing after the last item");
}

#[tokio::test]
async fn a_visitor_who_never_connects_makes_the_message_fail_with_visitor_gone() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), widget(json!({ "gone_after_seconds": 1 })), LimitOverrides::default()).await;
    let (token, visitor) = session(&h, json!({})).await;
    let (_, sent) =
        h.send(json!({ "channel": "web", "account": "web", "chat_id": visitor, "text": "are you there?" })).await;
    let id = sent["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let record = h.wait_status(id, "failed").await;
    assert_eq!(record["error"]["code"], "visitor_gone");
    // The message stays in the visitor's history.
    let items = read_stream(&h, &token, None, 1).await;
    assert_eq!(items[0].2["text"], "are you there?");
}

#[tokio::test]
async fn the_core_asks_for_feedback_and_offers_buttons_and_the_answers_come_back_typed() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path(), widget(json!({})), LimitOverrides::default()).await;
    let (token, visitor) = session(&h, json!({})).await;
    let ask = json!({ "channel": "web", "account": "web", "chat_id": visitor, "feedback": { "scale": 10, "prompt": "Rate us" } });
    let (status, asked) = h.send(ask).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let request_id = asked["id"].as_str().unwrap().to_owned();
    let items = read_stream(&h, &token, None, 1).await;
    assert_eq!(items[0].1, "feedback_request");
    assert_eq!((items[0].2["scale"].as_u64(), items[0].2["prompt"].as_str()), (Some(10), Some("Rate us")));
    assert_eq!(items[0].2["request_id"], request_id.as_str(), "the request id is the message id");
    let bad = json!({ "channel": "web", "account": "web", "chat_id": visitor, "feedback": { "scale": 7 } });
    let (status, body) = h.send(bad).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")));

    // Two answers to the request: the second is stored too, flagged `repeat`.
    for score in [9, 7] {
        let answer = json!({ "score": score, "scale": 10, "request_id": request_id });
        assert_eq!(post(&h, "/web/web/feedback", Some(&token), answer).await.0, StatusCode::OK);
    }
    let feedback: Vec<Value> =
        h.events().await.into_iter().filter(|e| e["type"] == "feedback").map(|e| e["feedback"].clone()).collect();
    assert_eq!(feedback[0], json!({ "score": 9, "scale": 10, "request_id": request_id }));
    assert_eq!(feedback[1], json!({ "score": 7, "scale": 10, "request_id": request_id, "repeat": true }));

    // Buttons go on the operator message; a press comes back as a postback.
    let offer = json!({ "channel": "web", "account": "web", "chat_id": visitor, "text": "Pick one", "buttons_per_row": 2,
        "buttons": [{ "title": "Track", "payload": "TRACK" }, { "title": "Help", "url": "https://shop.example/help" }] });
    assert_eq!(h.send(offer).await.0, StatusCode::ACCEPTED);
    let items = read_stream(&h, &token, None, 2).await;
    let message = &items[1].2;
    assert_eq!(message["text"], "Pick one");
    assert_eq!(message["buttons_per_row"], 2);
    assert_eq!(message["buttons"][0], json!({ "title": "Track", "payload": "TRACK" }));
    let press = json!({ "client_id": "press-1", "payload": "TRACK", "title": "Track", "message_id": message["id"] });
    assert_eq!(post(&h, "/web/web/postbacks", Some(&token), press.clone()).await.0, StatusCode::OK);
    assert_eq!(post(&h, "/web/web/postbacks", Some(&token), press).await.0, StatusCode::OK);
    let postbacks: Vec<Value> = h.events().await.into_iter().filter(|e| e["type"] == "postback").collect();
    assert_eq!(postbacks.len(), 1, "a retried press is stored once");
    assert_eq!(postbacks[0]["postback"], json!({ "payload": "TRACK", "title": "Track", "external_id": message["id"] }));
}
