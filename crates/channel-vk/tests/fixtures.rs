//! The secret / group_id vectors of VK and facts about its recorded callbacks in `fixtures/vk/`.
//! (Every fixture against its reviewed snapshot: `tests/fixtures.rs` of the `chatgate` package.)

use std::sync::Arc;

use chatgate_adapter::{Adapter, Inbound, Reply, WebhookError, WebhookRequest};
use chatgate_channel_vk::FACTORY;
use chatgate_model::{EventKind, Status};
use chatgate_testkit::{fixture, fixtures, handle, test_account};
use http::{HeaderMap, HeaderValue, Method};

fn account_settings() -> serde_json::Value {
    chatgate_testkit::account_settings("vk")
}

fn adapter() -> Arc<dyn Adapter> {
    test_account(&FACTORY)
}

fn post(adapter: &dyn Adapter, headers: &HeaderMap, body: &[u8]) -> Result<Inbound, WebhookError> {
    handle(adapter, &WebhookRequest { method: &Method::POST, headers, query: None, body })
}

fn body_with(fields: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&fields).unwrap()
}

#[test]
fn confirmation_answers_the_configured_string_and_stores_nothing() {
    let adapter = adapter();
    for name in ["confirmation", "confirmation-with-secret"] {
        let f = fixture("vk", name);
        let inbound = handle(&*adapter, &f.request()).unwrap();
        assert_eq!(inbound.reply, Reply::Text("a1b2c3d4".into()), "{name}");
        assert!(inbound.events.is_empty(), "{name}");
    }
}

#[test]
fn secret_vectors() {
    let adapter = adapter();
    let headers = HeaderMap::new();
    let event = |secret: Option<&str>, group: serde_json::Value| {
        let mut body = serde_json::json!({
            "type": "message_deny", "group_id": group, "event_id": "e1", "v": "5.199",
            "object": {"user_id": 1}
        });
        if let Some(s) = secret {
            body["secret"] = s.into();
        }
        body_with(body)
    };
    // Valid.
    let ok = post(&*adapter, &headers, &event(Some("test-secret"), 229000001.into())).unwrap();
    assert_eq!(ok.reply, Reply::Text("ok".into()));
    assert_eq!(ok.events.len(), 1);
    // group_id as a string of digits is the same community.
    assert!(post(&*adapter, &headers, &event(Some("test-secret"), "229000001".into())).is_ok());
    // Missing secret.
    assert_eq!(post(&*adapter, &headers, &event(None, 229000001.into())), Err(WebhookError::MissingSignature));
    // Wrong secret: another value, a prefix, a different case, a non-string.
    for wrong in ["test-secreT", "test-secre", "test-secret ", "", "TEST-SECRET"] {
        assert_eq!(
            post(&*adapter, &headers, &event(Some(wrong), 229000001.into())),
            Err(WebhookError::BadSignature),
            "{wrong:?}"
        );
    }
    let numeric =
        body_with(serde_json::json!({"type": "message_deny", "group_id": 229000001, "secret": 42, "object": {}}));
    assert_eq!(post(&*adapter, &headers, &numeric), Err(WebhookError::BadSignature));
    // Right secret, another community.
    assert_eq!(
        post(&*adapter, &headers, &event(Some("test-secret"), 229000002.into())),
        Err(WebhookError::BadSignature)
    );
    // Not a JSON object at all: nothing can carry a secret.
    for junk in [&b"ok"[..], b"", b"[1,2]", b"{\"secret\":"] {
        assert_eq!(post(&*adapter, &headers, junk), Err(WebhookError::MissingSignature));
    }
}

#[test]
fn confirmation_vectors() {
    let adapter = adapter();
    let headers = HeaderMap::new();
    let confirm = |fields: serde_json::Value| post(&*adapter, &headers, &body_with(fields));
    assert_eq!(
        confirm(serde_json::json!({"type": "confirmation", "group_id": 229000001})).map(|i| i.reply),
        Ok(Reply::Text("a1b2c3d4".into()))
    );
    // Another community's confirmation must not get ours.
    assert_eq!(confirm(serde_json::json!({"type": "confirmation", "group_id": 1})), Err(WebhookError::BadSignature));
    assert_eq!(confirm(serde_json::json!({"type": "confirmation"})), Err(WebhookError::BadSignature));
    // A secret, when VK sends one, must be ours.
    assert_eq!(
        confirm(serde_json::json!({"type": "confirmation", "group_id": 229000001, "secret": "nope"})),
        Err(WebhookError::BadSignature)
    );
}

#[test]
fn redeliveries_with_retry_counter_are_the_same_event() {
    let adapter = adapter();
    let original = fixture("vk", "message-new-text");
    let first = handle(&*adapter, &original.request()).unwrap();
    let key = first.events[0].dedup_key.clone().expect("a dedup key");
    assert_eq!(key, "event:5f0b3c1e9a7d2c4b8e6f1a0d3c5b7e9f2a4c6d01");
    for counter in 1..=5 {
        let mut headers = original.headers.clone();
        headers.insert("x-retry-counter", HeaderValue::from(counter));
        let again = post(&*adapter, &headers, &original.body).unwrap();
        assert_eq!(again.reply, Reply::Text("ok".into()), "retry {counter}");
        assert_eq!(again.events.len(), 1);
        assert_eq!(again.events[0].dedup_key.as_deref(), Some(key.as_str()), "retry {counter}");
        assert_eq!(again.events[0].event.message, first.events[0].event.message);
    }
}

#[test]
fn payloads_without_event_id_get_stable_keys() {
    let adapter = adapter();
    let headers = HeaderMap::new();
    let legacy = body_with(serde_json::json!({
        "type": "message_new", "group_id": 229000001, "secret": "test-secret",
        "object": {"id": 0, "peer_id": 2000000001, "from_id": 5, "conversation_message_id": 9, "date": 1, "text": "hi"}
    }));
    let a = post(&*adapter, &headers, &legacy).unwrap();
    let b = post(&*adapter, &headers, &legacy).unwrap();
    assert_eq!(a.events[0].dedup_key.as_deref(), Some("message_new:cmid:2000000001:9"));
    assert_eq!(a.events[0].dedup_key, b.events[0].dedup_key);

    let other = |user: i64| {
        body_with(serde_json::json!({"type": "group_leave", "group_id": 229000001, "secret": "test-secret",
            "object": {"user_id": user, "self": 1}}))
    };
    let k1 = post(&*adapter, &headers, &other(1)).unwrap().events[0].dedup_key.clone().unwrap();
    let k1_again = post(&*adapter, &headers, &other(1)).unwrap().events[0].dedup_key.clone().unwrap();
    let k2 = post(&*adapter, &headers, &other(2)).unwrap().events[0].dedup_key.clone().unwrap();
    assert!(k1.starts_with("body:"), "{k1}");
    assert_eq!(k1, k1_again);
    assert_ne!(k1, k2);
}

#[test]
fn sign_writes_the_secret_and_keeps_the_rest() {
    let adapter = adapter();
    let long_poll_element = br#"{"type":"message_deny","object":{"user_id":7},"group_id":229000001,"event_id":"x"}"#;
    let mut headers = HeaderMap::new();
    assert_eq!(post(&*adapter, &headers, long_poll_element), Err(WebhookError::MissingSignature));
    let signed = adapter.sign(&mut headers, long_poll_element.to_vec());
    let inbound = post(&*adapter, &headers, &signed).unwrap();
    assert_eq!(inbound.events[0].event.kind, EventKind::CustomerUnsubscribed);
    assert_eq!(inbound.events[0].event.chat_id, "7");

    // A wrong secret is replaced, not duplicated; other fields survive.
    let wrong = br#"{"type":"message_deny","object":{"user_id":7},"group_id":229000001,"secret":"old"}"#;
    let resigned: serde_json::Value = serde_json::from_slice(&adapter.sign(&mut headers, wrong.to_vec())).unwrap();
    assert_eq!(resigned["secret"], "test-secret");
    assert_eq!(resigned["object"]["user_id"], 7);
    // Not JSON: unchanged.
    assert_eq!(adapter.sign(&mut headers, b"hello".to_vec()), b"hello");
}

#[test]
fn the_secret_never_reaches_raw() {
    let adapter = adapter();
    for f in fixtures("vk") {
        let inbound = handle(&*adapter, &f.request()).unwrap();
        for e in &inbound.events {
            let json = serde_json::to_string(&e.event).unwrap();
            assert!(!json.contains("test-secret"), "{}: secret in the envelope", f.name);
        }
    }
    // An unknown type keeps its body, minus the secret.
    let f = fixture("vk", "wall-post-new");
    let inbound = handle(&*adapter, &f.request()).unwrap();
    let raw = inbound.events[0].event.raw.as_ref().unwrap();
    assert_eq!(raw["type"], "wall_post_new");
    assert!(raw.get("secret").is_none());
}

#[test]
fn statuses_name_the_provider_ids() {
    let adapter = adapter();
    let read = handle(&*adapter, &fixture("vk", "message-read").request()).unwrap();
    let status = read.events[0].event.status.clone().unwrap();
    assert_eq!((status.external_id.as_deref(), status.status), (Some("2055"), Status::Read));
    let echo = handle(&*adapter, &fixture("vk", "message-reply").request()).unwrap();
    let status = echo.events[0].event.status.clone().unwrap();
    assert_eq!((status.external_id.as_deref(), status.status), (Some("2055"), Status::Sent));
    assert!(echo.events[0].event.raw.is_some(), "the echoed message is kept");
}

#[test]
fn non_json_body_that_passed_nothing_is_malformed_for_parse() {
    let adapter = adapter();
    let headers = HeaderMap::new();
    let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: b"not json" };
    assert!(matches!(adapter.parse(&request), Err(WebhookError::Malformed(_))));
    // Authentic JSON without a type is kept, not refused.
    let odd = br#"{"group_id":229000001,"secret":"test-secret"}"#;
    let inbound = post(&*adapter, &headers, odd).unwrap();
    assert_eq!(inbound.events[0].event.kind, EventKind::Unsupported);
}

#[test]
fn config_is_checked_and_secrets_are_redacted() {
    use chatgate_adapter::ChannelFactory;
    let mut settings = account_settings();
    let adapter = FACTORY.build("test", settings.clone()).unwrap();
    let config = chatgate_channel_vk::Config::from_settings(settings.clone()).unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("229000001") && debug.contains("[redacted]"), "{debug}");
    for secret in ["test-community-token", "test-secret", "a1b2c3d4"] {
        assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
    }
    settings["extra"] = "x".into();
    assert!(FACTORY.build("test", settings).is_err(), "unknown keys are refused");
    let mut empty = account_settings();
    empty["secret"] = "".into();
    assert!(FACTORY.build("test", empty).is_err(), "an empty secret is refused");
    let mut bad_group = account_settings();
    bad_group["group_id"] = (-5).into();
    assert!(FACTORY.build("test", bad_group).is_err());
    let limits = adapter.facts().limits;
    assert_eq!(limits.image_bytes, Some(50 * chatgate_model::limits::MB));
    assert_eq!(limits.file_bytes, Some(200 * chatgate_model::limits::MB));
    assert_eq!(limits.sticker_bytes, None);
    assert_eq!(adapter.facts().rate_limits.per_account, Some(chatgate_adapter::Rate::per_second(20)));
}

#[test]
fn odd_shapes_become_unsupported_or_partial_never_errors() {
    let adapter = adapter();
    let headers = HeaderMap::new();
    let odd_objects = [
        serde_json::json!("a string"),
        serde_json::json!(null),
        serde_json::json!([1, 2]),
        serde_json::json!({"message": 5}),
        serde_json::json!({"message": {"text": 5, "peer_id": 1}}),
        serde_json::json!({"message": {"peer_id": 1, "from_id": 1, "id": 3, "attachments": "x"}}),
        serde_json::json!({"message": {"peer_id": 1, "from_id": 1, "id": 3, "attachments": [
            {"type": "photo", "photo": "nope"}, {"type": "doc"}, {"no": "type"}, 7,
            {"type": "sticker", "sticker": {"sticker_id": "x"}}]}}),
        serde_json::json!({"peer_id": 1, "from_id": 1, "id": 3, "date": -5, "geo": {"coordinates": "north"}}),
        serde_json::json!({"peer_id": 1, "from_id": 1, "id": 3, "geo": {"coordinates": "59.9 30.3"}}),
    ];
    for kind in [
        "message_new",
        "message_edit",
        "message_reply",
        "message_allow",
        "message_deny",
        "message_event",
        "message_read",
        "x",
    ] {
        for object in &odd_objects {
            let body = body_with(serde_json::json!({
                "type": kind, "group_id": 229000001, "secret": "test-secret", "object": object
            }));
            let inbound = post(&*adapter, &headers, &body).unwrap_or_else(|e| panic!("{kind} {object}: {e}"));
            assert_eq!(inbound.events.len(), 1, "{kind} {object}");
            let event = &inbound.events[0].event;
            if event.kind == EventKind::Unsupported {
                assert_eq!(event.raw.as_ref().unwrap()["object"], *object, "{kind}: the body is kept");
            }
        }
    }
    // Attachments that do not decode cannot be shown: a message of only those is unsupported,
    // kept whole; next to text they are left out and the message is kept in raw.
    let body = body_with(serde_json::json!({"type": "message_new", "group_id": 229000001, "secret": "test-secret",
        "object": odd_objects[6]}));
    let inbound = post(&*adapter, &headers, &body).unwrap();
    let event = &inbound.events[0].event;
    assert_eq!(event.kind, EventKind::Unsupported);
    assert_eq!(event.raw.as_ref().unwrap()["object"], odd_objects[6]);
    let mut with_text = odd_objects[6].clone();
    with_text["message"]["text"] = serde_json::json!("see attached");
    let body = body_with(serde_json::json!({"type": "message_new", "group_id": 229000001, "secret": "test-secret",
        "object": with_text}));
    let inbound = post(&*adapter, &headers, &body).unwrap();
    let event = &inbound.events[0].event;
    assert_eq!(event.kind, EventKind::Message);
    let message = event.message.as_ref().unwrap();
    assert_eq!((message.text.as_deref(), message.attachments.len()), (Some("see attached"), 0));
    assert_eq!(event.raw.as_ref().unwrap()["text"], "see attached");
    // The old string form of coordinates.
    let body = body_with(serde_json::json!({"type": "message_new", "group_id": 229000001, "secret": "test-secret",
        "object": odd_objects[8]}));
    let inbound = post(&*adapter, &headers, &body).unwrap();
    let location = inbound.events[0].event.message.as_ref().unwrap().location.clone().unwrap();
    assert_eq!((location.latitude, location.longitude), (59.9, 30.3));
}

#[test]
fn truncated_bodies_never_panic() {
    let adapter = adapter();
    let headers = HeaderMap::new();
    for f in fixtures("vk") {
        for end in 0..f.body.len() {
            let body = &f.body[..end];
            let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body };
            let _ = adapter.verify(&request);
            if let Ok(inbound) = adapter.parse(&request) {
                assert!(inbound.events.len() <= 1);
            }
        }
    }
}

/// Class fixes of issue 10: an empty `message_new` is `unsupported`, a sticker without
/// `sticker_id` gets no made-up reference, a message that only forwards shows what it forwards.
#[test]
fn nothing_to_show_is_unsupported_and_nothing_is_made_up() {
    let adapter = adapter();
    let headers = HeaderMap::new();
    let new = |message: serde_json::Value| {
        let body = body_with(serde_json::json!({"type": "message_new", "group_id": 229000001, "secret": "test-secret",
            "object": {"message": message}}));
        post(&*adapter, &headers, &body).unwrap().events.remove(0).event
    };
    let empty = new(serde_json::json!({"peer_id": 5, "from_id": 5, "id": 9, "text": "", "attachments": []}));
    assert_eq!(empty.kind, EventKind::Unsupported);
    assert_eq!(empty.raw.as_ref().unwrap()["object"]["message"]["id"], 9);

    let images = serde_json::json!([{"url": "https://vk.com/sticker/1-9-128", "width": 128, "height": 128}]);
    let sticker = new(serde_json::json!({"peer_id": 5, "from_id": 5, "id": 10,
        "attachments": [{"type": "sticker", "sticker": {"product_id": 1, "images": images}}]}));
    assert_eq!(sticker.kind, EventKind::Message);
    let a = &sticker.message.as_ref().unwrap().attachments[0];
    assert_eq!((a.media.as_deref(), a.url.as_deref()), (None, Some("https://vk.com/sticker/1-9-128")));
    let bare = new(serde_json::json!({"peer_id": 5, "from_id": 5, "id": 11,
        "attachments": [{"type": "sticker", "sticker": {"product_id": 1}}]}));
    assert_eq!(bare.kind, EventKind::Unsupported);

    let forwarded = new(serde_json::json!({"peer_id": 5, "from_id": 5, "id": 12, "text": "",
        "fwd_messages": [{"from_id": 7, "text": "first"},
                         {"from_id": 8, "text": "", "fwd_messages": [{"from_id": 9, "text": "nested"}]}]}));
    assert_eq!(forwarded.kind, EventKind::Message);
    let m = forwarded.message.as_ref().unwrap();
    assert_eq!((m.text.as_deref(), m.forwarded), (Some("first\nnested"), true));
    assert!(forwarded.raw.is_some(), "the forwarded objects stay in raw");
}
