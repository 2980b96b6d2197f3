//! The shared corpus of real Telegram updates: every payload, re-signed with our secret, must
//! parse to exactly one event, and the kinds we model must not fall back to `unsupported`.

use chatgate_adapter::{ChannelFactory, WebhookRequest};
use chatgate_channel_telegram::FACTORY;
use chatgate_model::{AttachmentKind, Event, EventKind};
use chatgate_testkit::{handle, real_webhooks};
use http::{HeaderMap, Method};
use serde_json::json;

/// What each known payload is (file stem → event kind). Payloads added to the corpus later are
/// still checked for `Ok` and one event.
const EXPECTED: &[(&str, EventKind)] = &[
    ("animation-gif", EventKind::Message),
    ("audio-mp3", EventKind::Message),
    ("callback-query-inaccessible-message", EventKind::Postback),
    ("callback-query-inline-message", EventKind::Postback),
    ("callback-query-with-message", EventKind::Postback),
    ("dice-emoji", EventKind::Unsupported),
    ("document-pdf", EventKind::Message),
    ("edited-message-text", EventKind::MessageEdited),
    ("forwarded-from-channel", EventKind::Message),
    ("forwarded-from-user", EventKind::Message),
    ("forwarded-sticker", EventKind::Message),
    ("inline-query-numeric-id", EventKind::Unsupported),
    ("message-reaction", EventKind::Reaction),
    ("my-chat-member-kicked-bot-blocked", EventKind::CustomerUnsubscribed),
    ("photo-with-caption", EventKind::Message),
    ("pinned-message-service", EventKind::Unsupported),
    ("private-text-message", EventKind::Message),
    ("reply-to-message-command", EventKind::Message),
    ("sticker", EventKind::Message),
    ("supergroup-command-reply-to-story", EventKind::Message),
    ("text-with-entities", EventKind::Message),
    ("unknown-update-kind", EventKind::Unsupported),
    ("video", EventKind::Message),
    ("voice-ogg", EventKind::Message),
];

#[test]
fn every_real_payload_gives_one_event_of_the_expected_kind() {
    let Some(payloads) = real_webhooks("telegram") else {
        eprintln!("note: the shared real-webhook corpus is absent; nothing to check");
        return;
    };
    let adapter =
        FACTORY.build("real", json!({"bot_token": "1:real", "secret_token": "corpus-secret"})).expect("account builds");
    assert!(!payloads.is_empty(), "the telegram corpus folder is empty");
    let mut known = 0;
    for payload in &payloads {
        let stem = payload.path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let body = adapter.sign(&mut headers, payload.body.clone());
        let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body };
        let inbound = handle(&*adapter, &request).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert_eq!(inbound.events.len(), 1, "{stem}: one update is one event");
        let event = &inbound.events[0].event;
        let original: serde_json::Value = serde_json::from_slice(&payload.body).expect("corpus payloads are JSON");
        if let Some(id) = original.get("update_id").and_then(|v| v.as_i64()) {
            assert_eq!(inbound.events[0].dedup_key, Some(format!("update:{id}")), "{stem}");
        }
        if event.kind == EventKind::Unsupported {
            assert_eq!(event.raw.as_ref(), Some(&original), "{stem}: unsupported keeps the update whole");
        }
        if let Some((_, kind)) = EXPECTED.iter().find(|(name, _)| *name == stem) {
            known += 1;
            assert_eq!(event.kind, *kind, "{stem}: {event:#?}");
            check_details(stem, event);
        }
    }
    assert_eq!(known, EXPECTED.len(), "a known corpus payload is missing");
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
