//! Rich replies through the whole gateway: button limits as typed 422s, a numbered answer on a
//! channel that could not show the buttons mapped back to the payload, feedback flags, markers.

use chatgate_testkit::account_settings;
use chatgate_testkit::gateway::Harness;
use chatgate_testkit::mock::MockApi;
use serde_json::{Value, json};

async fn harness(kind: &str, api_base_url: &str) -> Harness {
    let mut settings = account_settings(kind);
    settings["api_base_url"] = api_base_url.into();
    let factory = chatgate::registry::factory(kind).unwrap();
    Harness::start(vec![factory.build("test", settings).unwrap()]).await
}

fn buttons(n: usize) -> Value {
    (1..=n).map(|i| json!({"title": format!("Option {i}"), "payload": format!("P{i}")})).collect()
}

#[tokio::test]
async fn button_limits_are_typed_422s_before_queueing() {
    let graph = MockApi::start(|_| (200, json!({"message_id": "m_1", "recipient_id": "psid-1"}))).await;
    let h = harness("messenger", &format!("{}/v26.0", graph.base_url)).await;
    let send = |b: Value| json!({"channel": "messenger", "account": "test", "chat_id": "psid-1", "text": "Pick", "buttons": b});
    let cases = [
        (buttons(21), "too_many_buttons"),
        (json!([{"title": "x".repeat(21), "payload": "p"}]), "button_title_too_long"),
        (json!([{"title": "ok", "payload": "p".repeat(1001)}]), "button_payload_too_long"),
        (json!([{"title": "ok"}]), "invalid_request"),
    ];
    for (b, code) in cases {
        let (status, v) = h.send(send(b)).await;
        assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (422, Some(code)), "{v}");
    }
    let (status, v) =
        h.send(json!({"channel": "messenger", "account": "test", "chat_id": "psid-1", "buttons": buttons(2)})).await;
    assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (422, Some("invalid_request")), "buttons need a text");
    assert!(graph.requests().is_empty(), "nothing refused reached the provider");
}

#[tokio::test]
async fn whatsapp_buttons_take_the_interactive_bodys_1024_characters() {
    let graph = MockApi::start(|_| (200, json!({"messages": [{"id": "wamid.OUT"}]}))).await;
    let h = harness("whatsapp", &format!("{}/v26.0", graph.base_url)).await;
    let long = "a".repeat(1025);
    let (status, v) = h
        .send(json!({"channel": "whatsapp", "account": "test", "chat_id": "15551230001", "text": long, "buttons": buttons(2)}))
        .await;
    assert_eq!(
        (status.as_u16(), v["error"]["code"].as_str(), v["error"]["limit"].as_u64()),
        (422, Some("text_too_long"), Some(1024)),
        "{v}"
    );
    let (status, v) = h
        .send(json!({"channel": "whatsapp", "account": "test", "chat_id": "15551230001", "feedback": {"scale": 5, "prompt": "b".repeat(1025)}}))
        .await;
    assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (422, Some("text_too_long")), "{v}");
}

#[tokio::test]
async fn a_numbered_answer_comes_back_as_the_payload_once() {
    let graph = MockApi::start(|_| (200, json!({"message_id": "m_1", "recipient_id": "6783942716351022"}))).await;
    let h = harness("messenger", &format!("{}/v26.0", graph.base_url)).await;
    // 14 buttons: more than Messenger's 13 quick replies, so a numbered list.
    let (status, v) = h
        .send(json!({"channel": "messenger", "account": "test", "chat_id": "6783942716351022", "text": "Pick", "buttons": buttons(14)}))
        .await;
    assert_eq!(status.as_u16(), 202, "{v}");
    h.wait_status(v["id"].as_str().unwrap(), "sent").await;
    let sent = graph.requests()[0].json();
    assert!(sent["message"]["text"].as_str().unwrap().contains("\n14. Option 14"), "{sent}");
    assert!(sent["message"].get("quick_replies").is_none());
    let answer = |mid: &str, text: &str| {
        json!({"object": "page", "entry": [{"id": "104060651234567", "time": 1763712000900_i64, "messaging": [{
            "sender": {"id": "6783942716351022"}, "recipient": {"id": "104060651234567"}, "timestamp": 1763712000000_i64,
            "message": {"mid": mid, "text": text}}]}]})
        .to_string()
    };
    assert_eq!(h.webhook(&answer("m_A", "12"), &[]).await.0.as_u16(), 200);
    assert_eq!(h.webhook(&answer("m_B", "12"), &[]).await.0.as_u16(), 200);
    let events: Vec<Value> = h.events().await.into_iter().filter(|e| e["chat_id"] == "6783942716351022").collect();
    let inbound: Vec<&Value> = events.iter().filter(|e| e["type"] != "status").collect();
    assert_eq!(inbound[0]["type"], "postback");
    assert_eq!(inbound[0]["postback"], json!({"payload": "P12", "title": "Option 12", "external_id": "m_A"}));
    assert_eq!(inbound[0]["message"]["text"], "12");
    assert_eq!(inbound[1]["type"], "message", "a list is answered once");
}

#[tokio::test]
async fn feedback_answers_are_typed_and_late_or_repeated_ones_flagged() {
    let api = MockApi::start(|_| (200, json!({"response": 1}))).await;
    let h = harness("vk", &api.base_url).await;
    let ask =
        json!({"channel": "vk", "account": "test", "chat_id": "512345678", "feedback": {"scale": 5, "prompt": "Rate"}});
    let (_, first) = h.send(ask.clone()).await;
    let (_, second) = h.send(ask).await;
    let (first, second) = (first["id"].as_str().unwrap().to_owned(), second["id"].as_str().unwrap().to_owned());
    let press = |event: &str, request: &str, score: u8| {
        json!({"group_id": 229000001, "type": "message_event", "event_id": event, "v": "5.199", "secret": "test-secret",
            "object": {"user_id": 512345678, "peer_id": 512345678, "event_id": format!("e{event}"),
                "payload": {"p": format!("fb:{request}:5:{score}")}, "conversation_message_id": 133}})
        .to_string()
    };
    for (event, request, score) in [("a1", &second, 5), ("a2", &second, 4), ("a3", &first, 3)] {
        assert_eq!(h.webhook(&press(event, request, score), &[]).await.0.as_u16(), 200);
    }
    let feedback: Vec<Value> =
        h.events().await.into_iter().filter(|e| e["type"] == "feedback").map(|e| e["feedback"].clone()).collect();
    assert_eq!(feedback[0], json!({"score": 5, "scale": 5, "request_id": second}));
    assert_eq!(feedback[1], json!({"score": 4, "scale": 5, "request_id": second, "repeat": true}));
    assert_eq!(feedback[2], json!({"score": 3, "scale": 5, "request_id": first, "late": true}));
    // Each press was answered right after it was stored.
    for _ in 0..100 {
        if api.requests().iter().filter(|r| r.path == "/messages.sendMessageEventAnswer").count() == 3 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("presses not answered: {:?}", api.requests().iter().map(|r| r.path.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn markers_are_sent_at_once_rate_limited_and_refused_where_unsupported() {
    let api = MockApi::start(|_| (200, json!({"response": 1}))).await;
    let h = harness("vk", &api.base_url).await;
    let (status, v) = h.api(axum::http::Method::POST, "/v1/chats/vk/test/512345678/typing", None).await;
    assert_eq!(status.as_u16(), 200, "{v}");
    assert_eq!(api.requests()[0].path, "/messages.setActivity");
    let (status, v) = h.api(axum::http::Method::POST, "/v1/chats/vk/test/512345678/typing", None).await;
    assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (429, Some("rate_limited")));
    let (status, _) = h.api(axum::http::Method::POST, "/v1/chats/vk/test/512345678/read", None).await;
    assert_eq!(status.as_u16(), 200);

    let viber = MockApi::start(|_| (200, json!({"status": 0}))).await;
    let h = harness("viber", &viber.base_url).await;
    let (status, v) = h.api(axum::http::Method::POST, "/v1/chats/viber/test/abc==/typing", None).await;
    assert_eq!((status.as_u16(), v["error"]["code"].as_str()), (422, Some("unsupported_by_channel")), "{v}");
    assert!(viber.requests().is_empty());
}

#[tokio::test]
async fn a_press_is_answered_after_storage_with_the_buttons_notice() {
    let api = MockApi::start(|_| (200, json!({"response": 1}))).await;
    let h = harness("vk", &api.base_url).await;
    let offer = json!({"channel": "vk", "account": "test", "chat_id": "512345678", "text": "Pick",
        "buttons": [{"title": "Track", "payload": "TRACK", "notice": "Looking it up"}]});
    let (status, v) = h.send(offer).await;
    assert_eq!(status.as_u16(), 202, "{v}");
    let press = json!({"group_id": 229000001, "type": "message_event", "event_id": "n1", "v": "5.199", "secret": "test-secret",
        "object": {"user_id": 512345678, "peer_id": 512345678, "event_id": "ev-n1", "payload": {"p": "TRACK"},
            "conversation_message_id": 134}});
    assert_eq!(h.webhook(&press.to_string(), &[]).await.0.as_u16(), 200);
    let postback = h.events().await.into_iter().find(|e| e["type"] == "postback").expect("stored");
    assert_eq!(postback["postback"]["payload"], "TRACK");
    for _ in 0..100 {
        let answers: Vec<_> =
            api.requests().into_iter().filter(|r| r.path == "/messages.sendMessageEventAnswer").collect();
        if let Some(answer) = answers.first() {
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&answer.body).into_owned().collect();
            assert_eq!(form["event_id"], "ev-n1");
            let data: Value = serde_json::from_str(&form["event_data"]).unwrap();
            assert_eq!(data, json!({"type": "show_snackbar", "text": "Looking it up"}));
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the press was not answered");
}
