//! The shared corpus of real VK payloads (Callback API bodies and Bots Long Poll elements, which
//! are the same event objects without `secret`): each one, signed for a test account with
//! `sign()`, must pass verification and parse to events or `unsupported`, losing nothing.

use chatgate_adapter::{Adapter, ChannelFactory, Reply};
use chatgate_channel_vk::FACTORY;
use chatgate_model::EventKind;
use chatgate_testkit::{post_signed, real_webhooks};
use serde_json::{Value, json};

/// The account a payload was sent to: its `group_id` (payloads come from different communities).
fn account_for(payload: &Value) -> std::sync::Arc<dyn Adapter> {
    let group_id = payload.get("group_id").and_then(Value::as_i64).unwrap_or(123456);
    FACTORY
        .build(
            "real",
            json!({
                "group_id": group_id,
                "access_token": "test-community-token",
                "secret": "test-secret",
                "confirmation": "confirmation_123456",
            }),
        )
        .expect("account builds")
}

#[test]
fn every_real_payload_parses_and_nothing_is_lost() {
    let Some(payloads) = real_webhooks("vk") else { return };
    let mut events = 0;
    for webhook in &payloads {
        let name = webhook.path.display().to_string();
        let payload: Value = serde_json::from_slice(&webhook.body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let adapter = account_for(&payload);
        let inbound = post_signed(&*adapter, webhook.body.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));

        let kind = payload["type"].as_str().unwrap_or_default();
        if kind == "confirmation" {
            assert_eq!(inbound.reply, Reply::Text("confirmation_123456".into()), "{name}");
            assert!(inbound.events.is_empty(), "{name}");
            continue;
        }
        assert_eq!(inbound.reply, Reply::Text("ok".into()), "{name}");
        assert_eq!(inbound.events.len(), 1, "{name}: one callback is one event");
        let event = &inbound.events[0];
        events += 1;
        assert!(event.dedup_key.as_deref().is_some_and(|k| !k.is_empty()), "{name}: no dedup key");

        // The payload says what it should become.
        let object = &payload["object"];
        let message = object.get("message").filter(|m| m.is_object()).unwrap_or(object);
        let expected = match kind {
            "message_new" if message.get("action").is_some() => EventKind::Unsupported,
            "message_new" => EventKind::Message,
            "message_allow" => EventKind::CustomerSubscribed,
            "message_deny" => EventKind::CustomerUnsubscribed,
            _ => EventKind::Unsupported,
        };
        assert_eq!(event.event.kind, expected, "{name}");
        match expected {
            EventKind::Message => {
                let m = event.event.message.as_ref().expect("message content");
                let sent = message["attachments"].as_array().map_or(0, Vec::len);
                assert_eq!(m.attachments.len(), sent, "{name}: attachments lost");
                assert_eq!(event.event.chat_id, message["peer_id"].to_string(), "{name}");
                assert_eq!(event.event.customer.as_ref().map(|c| c.id.clone()), Some(message["from_id"].to_string()));
                let forwarded = message["fwd_messages"].as_array().is_some_and(|f| !f.is_empty());
                // A message that only forwards others shows their texts, one a line.
                let own = message["text"].as_str().unwrap_or_default();
                let text = match (own.is_empty() && sent == 0, message["fwd_messages"].as_array()) {
                    (true, Some(fwd)) => fwd.iter().filter_map(|f| f["text"].as_str()).collect::<Vec<_>>().join("\n"),
                    _ => own.to_owned(),
                };
                assert_eq!(m.text.as_deref().unwrap_or_default(), text, "{name}");
                assert_eq!(m.forwarded, forwarded, "{name}");
                if forwarded {
                    assert_eq!(event.event.raw.as_ref(), Some(message), "{name}: forwarded messages kept in raw");
                }
                if message.get("geo").is_some() {
                    assert!(m.location.is_some(), "{name}: geo lost");
                }
            }
            EventKind::Unsupported => {
                let raw = event.event.raw.as_ref().expect("unsupported keeps raw");
                assert_eq!(raw["type"], kind, "{name}");
                assert!(raw.get("secret").is_none(), "{name}: secret stored");
            }
            _ => {}
        }
    }
    eprintln!("{} real VK payloads, {events} events", payloads.len());
}
