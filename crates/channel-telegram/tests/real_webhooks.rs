//! The shared corpus of real Telegram updates: every payload, re-signed with our secret, gives
//! exactly one event keyed by its `update_id`, and what the known ones say survives. (That every
//! payload is accepted and becomes the expected kind: `tests/real_webhooks.rs` of the `chatgate` package.)

use chatgate_adapter::ChannelFactory;
use chatgate_channel_telegram::FACTORY;
use chatgate_model::{AttachmentKind, Event, EventKind};
use chatgate_testkit::{post_signed, real_webhooks};
use serde_json::json;

#[test]
fn every_real_payload_gives_one_event_keyed_by_its_update() {
    let Some(payloads) = real_webhooks("telegram") else { return };
    let adapter =
        FACTORY.build("real", json!({"bot_token": "1:real", "secret_token": "corpus-secret"})).expect("account builds");
    for payload in &payloads {
        let stem = payload.stem();
        let inbound = post_signed(&*adapter, payload.body.clone()).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert_eq!(inbound.events.len(), 1, "{stem}: one update is one event");
        let event = &inbound.events[0].event;
        let original = payload.json();
        if let Some(id) = original.get("update_id").and_then(|v| v.as_i64()) {
            assert_eq!(inbound.events[0].dedup_key, Some(format!("update:{id}")), "{stem}");
        }
        if event.kind == EventKind::Unsupported {
            assert_eq!(event.raw.as_ref(), Some(&original), "{stem}: unsupported keeps the update whole");
        }
        check_details(stem, event);
    }
}

/// What the payloads say beyond their kind.
fn check_details(stem: &str, event: &Event) {
    let message = event.message.as_ref();
    let attachments = message.map(|m| m.attachments.clone()).unwrap_or_default();
    match stem {
        "animation-gif" => {
            // Sent as `animation` and `document`: one attachment.
            assert_eq!(attachments.len(), 1, "{stem}");
            assert_eq!(attachments[0].kind, AttachmentKind::Video);
            assert_eq!(attachments[0].variant.as_deref(), Some("animation"));
        }
        "voice-ogg" => assert_eq!(attachments[0].variant.as_deref(), Some("voice")),
        "photo-with-caption" => {
            assert_eq!(message.and_then(|m| m.text.as_deref()), Some("ddddd"));
            // The 640×640 size, last of three.
            assert_eq!(
                attachments[0].media.as_deref(),
                Some(
                    "telegram:real:AgACAgIAAxkBAAIKQWIK3dIknDv4-TGPdN8SJWZBzTgbAAItuDEbrmpZSKD5O09PAfJsAQADAgADeAADIwQ"
                ),
                "{stem}: the largest size"
            );
        }
        "forwarded-from-channel" | "forwarded-from-user" | "forwarded-sticker" => {
            assert!(message.is_some_and(|m| m.forwarded), "{stem}: forwarded");
        }
        "reply-to-message-command" => {
            assert_eq!(message.and_then(|m| m.reply_to.as_deref()), Some("1334"))
        }
        "supergroup-command-reply-to-story" => {
            assert_eq!(event.chat_id, "-1001293752024");
            assert_eq!(message.and_then(|m| m.reply_to.as_deref()), Some("134545"));
        }
        "callback-query-with-message" => {
            let postback = event.postback.as_ref().expect("postback");
            assert_eq!((postback.payload.as_str(), postback.external_id.as_deref()), ("query-data", Some("1")));
        }
        "message-reaction" => {
            assert_eq!(event.chat_id, "-1002184233434");
            assert_eq!(message.and_then(|m| m.reaction.as_ref()).and_then(|r| r.emoji.as_deref()), Some("🌭"));
        }
        "text-with-entities" => assert_eq!(message.map(|m| m.entities.len()), Some(2)),
        _ => {}
    }
}
