//! Channel behaviour that needs the whole gateway: Messenger read watermarks, the WhatsApp
//! messaging window, VK redeliveries and confirmation, per-channel limits on `POST /v1/messages`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use chatgate_testkit::account_settings;
use chatgate_testkit::gateway::Harness;
use chatgate_testkit::mock::MockApi;
use serde_json::{Value, json};

/// A gateway with one account `test` of `kind`, its settings from the fixtures, its API at `api_base_url`.
async fn harness(kind: &str, api_base_url: Option<String>) -> Harness {
    let mut settings = account_settings(kind);
    if let Some(url) = api_base_url {
        settings["api_base_url"] = url.into();
    }
    let factory = chatgate::registry::factory(kind).unwrap();
    Harness::start(vec![factory.build("test", settings).unwrap()]).await
}

fn text(channel: &str, chat: &str, text: &str) -> Value {
    json!({"channel": channel, "account": "test", "chat_id": chat, "text": text})
}

#[tokio::test]
async fn messenger_read_watermark_marks_exactly_the_earlier_messages_of_that_chat() {
    let counter = Arc::new(AtomicU64::new(0));
    let graph = {
        let counter = counter.clone();
        MockApi::start(move |_| {
            (200, json!({"recipient_id": "x", "message_id": format!("m_{}", counter.fetch_add(1, Ordering::SeqCst))}))
        })
        .await
    };
    let h = harness("messenger", Some(format!("{}/v26.0", graph.base_url))).await;
    let mut ids = Vec::new();
    for (chat, t) in [("psid-1", "a"), ("psid-1", "b"), ("psid-2", "c")] {
        let (s, v) = h.send(text("messenger", chat, t)).await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        h.wait_status(id, "sent").await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let watermark = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, v) = h.send(text("messenger", "psid-1", "later")).await;
    let later = v["id"].as_str().unwrap().to_owned();
    h.wait_status(&later, "sent").await;

    let read = json!({"object": "page", "entry": [{"id": "104060651234567", "time": watermark + 100, "messaging": [
        {"sender": {"id": "psid-1"}, "recipient": {"id": "104060651234567"}, "timestamp": watermark + 100, "read": {"watermark": watermark}}
    ]}]});
    let (status, _) = h.webhook(&read.to_string(), &[]).await;
    assert_eq!(status, 200);
    let states: Vec<_> = {
        let mut out = Vec::new();
        for id in ids.iter().chain([&later]) {
            out.push(h.message(id).await["status"].as_str().unwrap().to_owned());
        }
        out
    };
    assert_eq!(states, ["read", "read", "sent", "sent"]);
    let read_events =
        h.events().await.into_iter().filter(|e| e["type"] == "status" && e["status"]["status"] == "read").count();
    assert_eq!(read_events, 2, "one read status event per message the watermark covers");
    // A wrongly signed copy is refused.
    let request = Request::post("/webhooks/messenger/test")
        .header("x-hub-signature-256", "sha256=00")
        .body(Body::from(read.to_string()))
        .unwrap();
    assert_eq!(h.call(request).await.0, 401);
}

#[tokio::test]
async fn whatsapp_window_refuses_free_form_without_calling_meta_but_lets_templates_through() {
    let graph = MockApi::start(|_| (200, json!({"messaging_product": "whatsapp", "contacts": [{"input": "15551230001", "wa_id": "15551230001"}], "messages": [{"id": "wamid.OUT1"}]}))).await;
    let h = harness("whatsapp", Some(format!("{}/v26.0", graph.base_url))).await;
    let (s, v) = h.send(text("whatsapp", "15551230001", "hello")).await;
    assert_eq!((s.as_u16(), v["error"]["code"].as_str()), (422, Some("window_closed")));
    assert!(graph.requests().is_empty(), "Meta saw no request");

    let (s, v) = h
        .send(json!({"channel": "whatsapp", "account": "test", "chat_id": "15551230001",
                     "template": {"name": "order_update", "language": "en_US", "components": []}}))
        .await;
    assert_eq!(s, 202, "{v}");
    h.wait_status(v["id"].as_str().unwrap(), "sent").await;
    let sent = graph.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json()["type"], "template");

    // The customer writes: the window opens and the core can see it.
    let inbound = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000", "phone_number_id": "109876543210987"},
        "contacts": [{"profile": {"name": "Ann"}, "wa_id": "15551230001"}],
        "messages": [{"from": "15551230001", "id": "wamid.IN1", "timestamp": chrono::Utc::now().timestamp().to_string(), "type": "text", "text": {"body": "hi"}}]
    }}]}]});
    assert_eq!(h.webhook(&inbound.to_string(), &[]).await.0, 200);
    let (_, conv) = h.api(Method::GET, "/v1/conversations/whatsapp/test/15551230001", None).await;
    assert_eq!(conv["window"]["open"], true, "{conv}");
    let (s, v) = h.send(text("whatsapp", "15551230001", "how can I help?")).await;
    assert_eq!(s, 202, "{v}");
    h.wait_status(v["id"].as_str().unwrap(), "sent").await;

    // Meta's receipts move it forward; a late `delivered` after `read` changes nothing.
    let receipt = |status: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000", "phone_number_id": "109876543210987"},
            "statuses": [{"id": "wamid.OUT1", "status": status, "timestamp": "1718000000", "recipient_id": "15551230001"}]
        }}]}]})
        .to_string()
    };
    h.webhook(&receipt("read"), &[]).await;
    h.webhook(&receipt("delivered"), &[]).await;
    h.wait_status(v["id"].as_str().unwrap(), "read").await;
}

#[tokio::test]
async fn vk_redeliveries_are_stored_once_and_answered_ok_and_confirmation_comes_from_config() {
    let h = harness("vk", None).await;
    let (status, body) = h.webhook(&json!({"type": "confirmation", "group_id": 229000001}).to_string(), &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "a1b2c3d4"));
    let event = json!({"type": "message_new", "event_id": "0f4c5e3a9b", "v": "5.199", "group_id": 229000001, "object": {
        "message": {"date": 1718000000, "from_id": 5001, "id": 77, "out": 0, "peer_id": 5001, "text": "привет", "conversation_message_id": 3, "attachments": []},
        "client_info": {"button_actions": ["text"], "keyboard": true, "inline_keyboard": true, "carousel": true, "lang_id": 0}
    }})
    .to_string();
    let (status, body) = h.webhook(&event, &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok"));
    for retry in 1..=5 {
        let counter = retry.to_string();
        let (status, body) = h.webhook(&event, &[("x-retry-counter", counter.as_str())]).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "ok"), "retry {retry}");
    }
    let messages: Vec<_> = h.events().await.into_iter().filter(|e| e["type"] == "message").collect();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["message"]["text"], "привет");
    // The wrong secret is refused and never answered `ok`.
    let mut forged: Value = serde_json::from_str(&event).unwrap();
    forged["secret"] = "guess".into();
    forged["event_id"] = "other".into();
    let request = Request::post("/webhooks/vk/test").body(Body::from(forged.to_string())).unwrap();
    assert_eq!(h.call(request).await.0, 401);
}

#[tokio::test]
async fn each_channel_refuses_attachments_over_its_limits() {
    // (kind, attachment kind, limit in bytes, or None when the kind is not supported)
    let cases: [(&str, &str, Option<u64>); 8] = [
        ("telegram", "image", Some(10 << 20)),
        ("whatsapp", "image", Some(5 << 20)),
        ("whatsapp", "video", Some(16 << 20)),
        ("messenger", "image", Some(8 << 20)),
        ("instagram", "video", None),
        ("viber", "image", Some(1 << 20)),
        ("vk", "image", Some(50 << 20)),
        ("vk", "file", Some(200 << 20)),
    ];
    for (kind, attachment, limit) in cases {
        let h = harness(kind, None).await;
        let size = limit.map_or(1, |l| l + 1);
        let body = json!({"channel": kind, "account": "test", "chat_id": "1",
                          "attachments": [{"kind": attachment, "url": "https://example.com/f", "size": size}]});
        let (status, v) = h.send(body).await;
        let want = if limit.is_some() { "attachment_too_large" } else { "attachment_kind_unsupported" };
        assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (422, Some(want)), "{kind} {attachment}: {v}");
        if let Some(limit) = limit {
            assert_eq!(v["error"]["limit"].as_u64(), Some(limit), "{kind} {attachment}");
        }
    }
}

#[tokio::test]
async fn media_references_resolve_through_the_gateway() {
    let tg = MockApi::start(|r| {
        if r.path.to_ascii_lowercase().ends_with("/getfile") {
            if r.json()["file_id"] == "AgADgone" {
                (400, json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid file_id"}))
            } else {
                (200, json!({"ok": true, "result": {"file_id": "AgADphoto", "file_unique_id": "u", "file_size": 10, "file_path": "photos/file_7.jpg"}}))
            }
        } else if r.path.ends_with("/photos/file_7.jpg") {
            (200, json!("jpeg-bytes"))
        } else {
            (404, json!({}))
        }
    })
    .await;
    let h = harness("telegram", Some(tg.base_url.clone())).await;
    let (status, body) = h.get_authorized("/v1/media/telegram:test:AgADphoto").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "\"jpeg-bytes\""));
    let calls = tg.requests();
    assert!(calls[1].path.starts_with("/file/bot7012345678:"), "the file is read with the bot's file URL");
    let (status, body) = h.get_authorized("/v1/media/telegram:test:AgADgone").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("media_unavailable") && !body.contains("7012345678"), "no token in errors: {body}");
    let (status, _) = h.call(Request::get("/v1/media/telegram:test:AgADphoto").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 401, "media needs the API token");

    let wa = MockApi::start(|r| match r.path.as_str() {
        "/dl/4455" => (200, json!("wa-image")),
        _ => (404, json!({"error": {"message": "not found", "code": 100}})),
    })
    .await;
    // Meta's Graph API names a download URL on another host (here: the first mock).
    let wa_url = wa.base_url.clone();
    let wa2 = MockApi::start(move |r| match r.path.as_str() {
        "/v26.0/4455" => (200, json!({"url": format!("{wa_url}/dl/4455"), "mime_type": "image/jpeg", "id": "4455"})),
        _ => (404, json!({"error": {"message": "not found", "code": 100}})),
    })
    .await;
    let h = harness("whatsapp", Some(format!("{}/v26.0", wa2.base_url))).await;
    let (status, body) = h.get_authorized("/v1/media/whatsapp:test:4455").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "\"wa-image\""));
    let download = wa.requests().into_iter().find(|r| r.path == "/dl/4455").unwrap();
    assert_eq!(download.headers["authorization"], "Bearer test-access-token");
}

#[tokio::test]
async fn meta_bodies_up_to_3_mib_are_taken_and_larger_ones_refused_before_buffering() {
    let h = harness("whatsapp", None).await;
    // A valid, signed status batch padded with an unknown field to just under 3 MiB.
    let pad = |size: usize| {
        let head = r#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"109876543210987"},"statuses":[{"id":"wamid.PAD","status":"sent","timestamp":"1718000000","recipient_id":"15551230001"}]}}]}],"pad":""#;
        let tail = "\"}";
        format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()))
    };
    let three_mib = 3 * 1024 * 1024;
    let (status, _) = h.webhook(&pad(three_mib), &[]).await;
    assert_eq!(status, 200, "exactly 3 MiB is accepted");
    let (status, _) = h.webhook(&pad(three_mib + 1), &[]).await;
    assert_eq!(status, 413);
}
