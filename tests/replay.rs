//! Recorded fixtures through the real router, and Telegram end to end over real HTTP:
//! a replayed webhook appears in `GET /v1/events`; a reply reaches the (mock) Telegram API
//! and its status becomes `delivered` on the event log.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use chatgate_adapter::Adapter;
use chatgate_model::limits::LimitOverrides;
use chatgate_queue::SqliteQueue;
use chatgate_server::{Gateway, Settings};
use chatgate_testkit::mock::MockApi;
use chatgate_testkit::{fixtures, workspace_root};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "replay-token";

/// Fixture folders and the `kind` that serves them.
fn fixture_kinds() -> Vec<(String, &'static dyn chatgate_adapter::ChannelFactory)> {
    let root = workspace_root().join("fixtures");
    let mut out = Vec::new();
    for factory in chatgate::registry::CHANNELS {
        let kind = factory.channel().as_str().to_owned();
        if root.join(&kind).join("account.json").is_file() {
            out.push((kind, *factory));
        }
    }
    out
}

fn account_settings(kind: &str) -> Value {
    let path = workspace_root().join("fixtures").join(kind).join("account.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Golden events with placeholders for what changes per run.
fn redact(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("seq");
        o.insert("id".into(), "[id]".into());
        o.insert("received_at".into(), "[received_at]".into());
    }
    v
}

#[tokio::test]
async fn every_fixture_replays_through_the_router_into_its_golden_events() {
    let kinds = fixture_kinds();
    assert!(kinds.iter().any(|(k, _)| k == "telegram"), "telegram fixtures are required");
    let mut adapters: Vec<(Arc<dyn Adapter>, LimitOverrides)> = Vec::new();
    for (kind, factory) in &kinds {
        adapters.push((factory.build("test", account_settings(kind)).unwrap(), LimitOverrides::default()));
    }
    let dir = tempfile::tempdir().unwrap();
    let gateway =
        Gateway::start(adapters.clone(), Arc::new(SqliteQueue::open(dir.path()).unwrap()), Settings::new(TOKEN))
            .await
            .unwrap();
    let app = gateway.router();
    let mut after = 0u64;
    let mut replayed = 0;
    for ((kind, _), (adapter, _)) in kinds.iter().zip(&adapters) {
        let mut seen_keys = HashSet::new();
        for fixture in fixtures(kind) {
            let golden: Value = serde_json::from_slice(
                &std::fs::read(&fixture.golden).unwrap_or_else(|_| panic!("{} has no golden file", fixture.name)),
            )
            .unwrap();
            let mut headers = fixture.headers.clone();
            let body = adapter.sign(&mut headers, fixture.body.clone());
            let uri = match &fixture.query {
                Some(q) => format!("/webhooks/{kind}/test?{q}"),
                None => format!("/webhooks/{kind}/test"),
            };
            let mut request = Request::builder().method(fixture.method.clone()).uri(uri);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let response = app.clone().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
            assert!(response.status().is_success(), "{kind}/{}: {}", fixture.name, response.status());
            replayed += 1;

            let expected: Vec<Value> = golden["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["dedup_key"].as_str().is_none_or(|k| seen_keys.insert(k.to_owned())))
                .map(|e| e["event"].clone())
                .collect();
            let request = Request::builder()
                .uri(format!("/v1/events?after={after}&limit=1000"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            let page: Value = serde_json::from_slice(&bytes).unwrap();
            let stored: Vec<Value> = page["events"].as_array().unwrap().iter().cloned().map(redact).collect();
            assert_eq!(stored, expected, "{kind}/{}: stored events differ from the golden file", fixture.name);
            after = page["next_after"].as_u64().unwrap();
        }
    }
    assert!(replayed >= 20, "only {replayed} fixtures replayed");
}

/// A free loopback port's server for the gateway, over real HTTP.
async fn serve(gateway: &Gateway) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = gateway.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn events(client: &reqwest::Client, base: &str, after: u64) -> Vec<Value> {
    let v: Value = client
        .get(format!("{base}/v1/events?after={after}&limit=1000"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn telegram_end_to_end_over_http() {
    let tg = MockApi::start(|r| {
        if r.path.to_ascii_lowercase().ends_with("/sendmessage") || r.path.to_ascii_lowercase().ends_with("/sendphoto") {
            (200, json!({"ok": true, "result": {"message_id": 9001, "date": 1700000000, "chat": {"id": 4242, "type": "private"}}}))
        } else {
            (404, json!({"ok": false, "error_code": 404, "description": "Not Found"}))
        }
    })
    .await;
    // A file server for attachments: 10 MiB + 1 byte exactly (a JSON string of 10 MiB - 1 characters plus its quotes).
    let files = MockApi::start(|r| match r.path.as_str() {
        "/big.jpg" => (200, json!("x".repeat(10 * 1024 * 1024 - 1))),
        "/small.jpg" => (200, json!("jpeg")),
        _ => (404, json!({})),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("channels.toml");
    std::fs::write(
        &config_path,
        format!(
            "[fetch]\nallow = [\"127.0.0.1\"]\n[accounts.main]\nkind = \"telegram\"\nbot_token = \"123456:TEST-token_x\"\nsecret_token = \"e2e-secret\"\napi_base_url = \"{}\"\n",
            tg.base_url
        ),
    )
    .unwrap();
    let config = chatgate::config::load(&config_path, chatgate::config::MissingSecrets::Disable).unwrap();
    let mut settings = Settings::new(TOKEN);
    settings.fetch = config.fetch;
    let adapters = config.accounts.into_iter().map(|a| (a.adapter, a.limits)).collect();
    let gateway = Gateway::start(adapters, Arc::new(SqliteQueue::open(&dir.path().join("data")).unwrap()), settings)
        .await
        .unwrap();
    let base = serve(&gateway).await;
    let client = reqwest::Client::new();

    // Inbound: `chatgate replay` posts a recorded fixture, re-signed with the configured secret.
    let fixture = workspace_root().join("fixtures/telegram/text-entities.body");
    chatgate::commands::replay(&config_path, std::slice::from_ref(&fixture), &format!("{base}/webhooks/telegram/main"))
        .await
        .unwrap();
    let inbound = events(&client, &base, 0).await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["type"], "message");
    assert_eq!(inbound[0]["channel"], "telegram");
    assert_eq!(inbound[0]["account"], "main");
    let chat = inbound[0]["chat_id"].as_str().unwrap().to_owned();
    let external = inbound[0]["message"]["external_id"].as_str().unwrap().to_owned();
    // The same update again is stored once.
    chatgate::commands::replay(&config_path, &[fixture], &format!("{base}/webhooks/telegram/main")).await.unwrap();
    assert_eq!(events(&client, &base, 0).await.len(), 1);
    // A wrong secret is refused and stores nothing.
    let refused = client
        .post(format!("{base}/webhooks/telegram/main"))
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .body(r#"{"update_id": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Outbound: a reply goes to the mock Telegram API and becomes `delivered` on the log.
    let post = |body: Value| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client.post(format!("{base}/v1/messages")).bearer_auth(TOKEN).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, reply) = post(json!({"channel": "telegram", "account": "main", "chat_id": chat, "text": "Hello from the operator", "reply_to": external})).await;
    assert_eq!(status, 202, "{reply}");
    let id = reply["id"].as_str().unwrap().to_owned();
    let mut delivered = None;
    for _ in 0..200 {
        delivered = events(&client, &base, 0).await.into_iter().find(|e| {
            e["type"] == "status" && e["status"]["message_id"] == id.as_str() && e["status"]["status"] == "delivered"
        });
        if delivered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = delivered.expect("a delivered status event on the log");
    assert_eq!(delivered["status"]["external_id"], "9001");
    let calls = tg.requests();
    let send =
        calls.iter().find(|r| r.path.to_ascii_lowercase().ends_with("/sendmessage")).expect("sendMessage was called");
    assert!(send.path.starts_with("/bot123456:TEST-token_x/"));
    let sent = send.json();
    assert_eq!(sent["chat_id"].to_string().trim_matches('"'), chat);
    assert_eq!(sent["text"], "Hello from the operator");
    assert_eq!(sent["reply_parameters"]["message_id"].to_string(), external);

    // Limits: 2000 scalar values pass, 2001 do not; a 10 MiB + 1 byte image is refused.
    let (s, _) =
        post(json!({"channel": "telegram", "account": "main", "chat_id": chat, "text": "ж".repeat(2000)})).await;
    assert_eq!(s, 202);
    let (s, v) =
        post(json!({"channel": "telegram", "account": "main", "chat_id": chat, "text": "ж".repeat(2001)})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str(), v["error"]["limit"].as_u64(), v["error"]["actual"].as_u64()),
        (422, Some("text_too_long"), Some(2000), Some(2001))
    );
    let image = |size: Option<u64>, path: &str| {
        let mut a = json!({"kind": "image", "url": format!("{}{path}", files.base_url)});
        if let Some(size) = size {
            a["size"] = json!(size);
        }
        json!({"channel": "telegram", "account": "main", "chat_id": chat, "attachments": [a]})
    };
    let (s, v) = post(image(Some(10 * 1024 * 1024 + 1), "/big.jpg")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str(), v["error"]["limit"].as_u64()),
        (422, Some("attachment_too_large"), Some(10 * 1024 * 1024))
    );
    // Without a declared size, the download stops at the limit and the message fails.
    let (s, v) = post(image(None, "/big.jpg")).await;
    assert_eq!(s, 202);
    let big_id = v["id"].as_str().unwrap().to_owned();
    let (s, v) = post(image(Some(6), "/small.jpg")).await;
    assert_eq!(s, 202);
    let small_id = v["id"].as_str().unwrap().to_owned();
    let mut states = (String::new(), String::new());
    for _ in 0..300 {
        let get = |id: String| {
            let client = client.clone();
            let base = base.clone();
            async move {
                client
                    .get(format!("{base}/v1/messages/{id}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let (big, small) = (get(big_id.clone()).await, get(small_id.clone()).await);
        states = (format!("{}:{}", big["status"], big["error"]["code"]), small["status"].to_string());
        if states.0.starts_with("\"failed\"") && states.1 == "\"delivered\"" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(states, ("\"failed\":\"attachment_too_large\"".to_owned(), "\"delivered\"".to_owned()));
    let photo = tg
        .requests()
        .into_iter()
        .find(|r| r.path.to_ascii_lowercase().ends_with("/sendphoto"))
        .expect("sendPhoto was called");
    assert!(photo.body_contains("name=\"photo\""));
}
