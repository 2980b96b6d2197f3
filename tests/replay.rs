//! Recorded fixtures through the real router, and Telegram end to end over real HTTP:
//! a replayed webhook appears in `GET /v1/events`; a reply reaches the (mock) Telegram API
//! and its status becomes `delivered` on the event log.

use std::collections::HashSet;

use chatgate::registry::CHANNELS;
use chatgate_testkit::gateway::Harness;
use chatgate_testkit::http::{Api, serve};
use chatgate_testkit::mock::MockApi;
use chatgate_testkit::snapshot::stored_envelopes;
use chatgate_testkit::{fixture_dir, fixtures, kind_of, test_account, workspace_root};
use serde_json::{Value, json};

/// Stored events with placeholders for what changes per run, as in the snapshots.
fn redact(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("seq");
        o.insert("id".into(), "[id]".into());
        o.insert("received_at".into(), "[received_at]".into());
    }
    v
}

/// Fixtures whose items belong to an account of the same Meta app that the test gateway does not
/// serve (`entry[].id` another Page; the Instagram dashboard's test body names account `0`): the
/// adapter reads them (their snapshots), the gateway drops them as unrouted (`tests/routing.rs`).
const UNROUTED: &[(&str, &str)] = &[("messenger", "entry-of-another-page"), ("instagram", "dashboard-test-change")];

#[tokio::test]
async fn every_fixture_replays_through_the_router_into_its_golden_events() {
    let kinds: Vec<String> =
        CHANNELS.iter().map(|f| kind_of(*f)).filter(|k| fixture_dir(k).join("account.json").is_file()).collect();
    assert!(kinds.iter().any(|k| k == "telegram"), "telegram fixtures are required");
    let accounts = CHANNELS.iter().filter(|f| kinds.contains(&kind_of(**f))).map(|f| test_account(*f)).collect();
    let h = Harness::start(accounts).await;
    let mut after = 0u64;
    let mut replayed = 0;
    for kind in &kinds {
        let mut seen_keys = HashSet::new();
        for fixture in fixtures(kind) {
            let golden = stored_envelopes(&fixture);
            let (status, body) = h.replay(&fixture).await;
            assert!(status.is_success(), "{kind}/{}: {status} {body}", fixture.name);
            replayed += 1;

            // Items of an account the gateway does not serve are answered 200 and not stored.
            let unrouted = UNROUTED.contains(&(kind.as_str(), fixture.name.as_str()));
            let expected: Vec<Value> = golden["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|_| !unrouted)
                .filter(|e| e["dedup_key"].as_str().is_none_or(|k| seen_keys.insert(k.to_owned())))
                .map(|e| e["event"].clone())
                .collect();
            let page = h.events_after(after).await;
            let stored: Vec<Value> = page["events"].as_array().unwrap().iter().cloned().map(redact).collect();
            assert_eq!(stored, expected, "{kind}/{}: stored events differ from the snapshot", fixture.name);
            after = page["next_after"].as_u64().unwrap();
        }
    }
    assert!(replayed >= 20, "only {replayed} fixtures replayed");
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
    let accounts = config.accounts.into_iter().map(|a| (a.adapter, a.limits)).collect();
    let fetch = config.fetch;
    let h = Harness::start_accounts(&dir.path().join("data"), accounts, |s| s.fetch = fetch).await;
    let base = serve(h.gateway()).await;
    let api = Api::new(&base);

    // Inbound: `chatgate replay` posts a recorded fixture, re-signed with the configured secret.
    let fixture = workspace_root().join("fixtures/telegram/text-entities.body");
    chatgate::commands::replay(&config_path, std::slice::from_ref(&fixture), &format!("{base}/webhooks/telegram/main"))
        .await
        .unwrap();
    let inbound = api.events(0).await;
    assert_eq!(inbound.len(), 1, "{inbound:?}");
    assert_eq!(inbound[0]["type"], "message");
    assert_eq!(inbound[0]["channel"], "telegram");
    assert_eq!(inbound[0]["account"], "main");
    let chat = inbound[0]["chat_id"].as_str().unwrap().to_owned();
    let external = inbound[0]["message"]["external_id"].as_str().unwrap().to_owned();
    // The same update again is stored once.
    chatgate::commands::replay(&config_path, &[fixture], &format!("{base}/webhooks/telegram/main")).await.unwrap();
    assert_eq!(api.events(0).await.len(), 1);
    // A wrong secret is refused and stores nothing.
    let refused = api
        .client
        .post(format!("{base}/webhooks/telegram/main"))
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .body(r#"{"update_id": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Outbound: a reply goes to the mock Telegram API and becomes `delivered` on the log.
    let (status, reply) = api.send(&json!({"channel": "telegram", "account": "main", "chat_id": chat, "text": "Hello from the operator", "reply_to": external})).await;
    assert_eq!(status, 202, "{reply}");
    let id = reply["id"].as_str().unwrap().to_owned();
    let delivered = api
        .wait_event(0, |e| {
            e["type"] == "status" && e["status"]["message_id"] == id.as_str() && e["status"]["status"] == "delivered"
        })
        .await;
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
        api.send(&json!({"channel": "telegram", "account": "main", "chat_id": chat, "text": "ж".repeat(2000)})).await;
    assert_eq!(s, 202);
    let (s, v) =
        api.send(&json!({"channel": "telegram", "account": "main", "chat_id": chat, "text": "ж".repeat(2001)})).await;
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
    let (s, v) = api.send(&image(Some(10 * 1024 * 1024 + 1), "/big.jpg")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str(), v["error"]["limit"].as_u64()),
        (422, Some("attachment_too_large"), Some(10 * 1024 * 1024))
    );
    // Without a declared size, the download stops at the limit and the message fails.
    let (s, v) = api.send(&image(None, "/big.jpg")).await;
    assert_eq!(s, 202);
    let big_id = v["id"].as_str().unwrap().to_owned();
    let (s, v) = api.send(&image(Some(6), "/small.jpg")).await;
    assert_eq!(s, 202);
    let small_id = v["id"].as_str().unwrap().to_owned();
    let big = api.wait_message(&big_id, |m| m["status"] == "failed").await;
    let small = api.wait_message(&small_id, |m| m["status"] == "delivered").await;
    assert_eq!(
        (&big["status"], &big["error"]["code"], &small["status"]),
        (&json!("failed"), &json!("attachment_too_large"), &json!("delivered"))
    );
    let photo = tg
        .requests()
        .into_iter()
        .find(|r| r.path.to_ascii_lowercase().ends_with("/sendphoto"))
        .expect("sendPhoto was called");
    assert!(photo.body_contains("name=\"photo\""));
}
