//! The shared corpus of real Messenger and Instagram payloads (written by others; see
//! `real-webhooks/SOURCES.md`), re-signed with our test secret: every payload parses, no
//! `messaging[]` / `standby[]` / `changes[]` item is dropped, and the kinds are the ones we expect.
//! Quirks in the corpus: numeric ids, no `object` key and ISO 8601 times (Chatwoot factories),
//! a story reply in a `page` envelope, an envelope of an unknown object.

use std::sync::Arc;

use chatgate_adapter::{Adapter, ChannelFactory, WebhookRequest};
use chatgate_channel_facebook::{INSTAGRAM_FACTORY, MESSENGER_FACTORY};
use chatgate_model::EventKind::{self, *};
use chatgate_testkit::{RealWebhook, handle, real_webhooks};
use http::{HeaderMap, Method};
use serde_json::{Value, json};

fn adapter(factory: &dyn ChannelFactory) -> Arc<dyn Adapter> {
    let settings = json!({
        "page_id": "1", "page_access_token": "t", "app_secret": "corpus-test-secret", "verify_token": "v"
    });
    factory.build("corpus", settings).expect("builds")
}

fn parse(adapter: &dyn Adapter, body: Vec<u8>) -> Vec<chatgate_adapter::InboundEvent> {
    let mut headers = HeaderMap::new();
    let body = adapter.sign(&mut headers, body);
    let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body };
    handle(adapter, &request).unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(&body))).events
}

/// Each item of each entry, alone in an envelope like the original, gives at least one event.
fn each_item_gives_an_event(adapter: &dyn Adapter, payload: &RealWebhook) -> usize {
    let value: Value = serde_json::from_slice(&payload.body).expect("corpus payloads are JSON");
    let mut items = 0;
    for entry in value["entry"].as_array().into_iter().flatten() {
        for key in ["messaging", "standby", "changes"] {
            for item in entry[key].as_array().into_iter().flatten() {
                items += 1;
                let mut single = value.clone();
                single["entry"] = json!([{ "id": entry["id"], "time": entry["time"], key: [item] }]);
                let events = parse(adapter, serde_json::to_vec(&single).unwrap());
                assert!(!events.is_empty(), "{}: {key} item dropped: {item}", payload.path.display());
            }
        }
    }
    items
}

fn check(
    channel: &str,
    factory: &dyn ChannelFactory,
    expected_files: usize,
    expect: fn(&str) -> Option<Vec<EventKind>>,
) {
    let Some(corpus) = real_webhooks(channel) else {
        println!("note: the shared real-webhook corpus is not present; skipping {channel}");
        return;
    };
    assert_eq!(corpus.len(), expected_files, "{channel} corpus size");
    let adapter = adapter(factory);
    for payload in &corpus {
        let name = payload.path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let events = parse(&*adapter, payload.body.clone());
        let items = each_item_gives_an_event(&*adapter, payload);
        assert!(events.len() >= items.max(1), "{name}: {} events for {items} items", events.len());
        assert!(events.iter().all(|e| e.dedup_key.is_some()), "{name}: dedup keys");
        let kinds: Vec<EventKind> = events.iter().map(|e| e.event.kind).collect();
        if let Some(expected) = expect(&name) {
            assert_eq!(kinds, expected, "{name}");
        }
    }
}

fn messenger_kinds(name: &str) -> Option<Vec<EventKind>> {
    Some(match name {
        "batched-two-entries-page-changes" => vec![Unsupported, Unsupported],
        "delivery-receipt"
        | "delivery-watermark-only"
        | "echo-page-sent"
        | "echo-template"
        | "read-receipt"
        | "standby-echo" => vec![Status],
        "fallback-attachment"
        | "image-attachment"
        | "location-attachment"
        | "multi-attachment-image-fallback-location"
        | "reply-to-message"
        | "signed-text-sha1-raw-body"
        | "sticker-thumbs-up"
        | "sticker"
        | "text-nonascii-nlp"
        | "text" => vec![Message],
        "message-deleted" => vec![MessageDeleted],
        "message-edit" => vec![MessageEdited],
        "optin" | "referral" | "referral-ad" => vec![CustomerSubscribed],
        "postback" | "postback-get-started-referral" | "quick-reply" => vec![Postback],
        "reaction-react" | "reaction-unreact" => vec![Reaction],
        "policy-enforcement-block" | "unknown-event-type" | "unsupported-message" | "wrong-object-type" => {
            vec![Unsupported]
        }
        _ => return None,
    })
}

fn instagram_kinds(name: &str) -> Option<Vec<EventKind>> {
    Some(match name {
        "comments-change-non-dm" | "mentions-change-non-dm" | "unsupported-attachment" => {
            vec![Unsupported]
        }
        // A restfb fixture of an Instagram story reply in a `page` envelope: not read as Instagram.
        "story-reply-page-envelope" => vec![Unsupported],
        "meta-dashboard-test-text" | "post-share-doc" | "share-attachment" | "story-mention" => {
            vec![Message]
        }
        "message-unsent-is-deleted" => vec![MessageDeleted],
        "seen" => vec![Status],
        _ => return None,
    })
}

#[test]
fn messenger_corpus_parses_without_losing_items() {
    check("messenger", &MESSENGER_FACTORY, 31, messenger_kinds);
}

#[test]
fn instagram_corpus_parses_without_losing_items() {
    check("instagram", &INSTAGRAM_FACTORY, 10, instagram_kinds);
}

/// A few facts read from the corpus, beyond the kinds.
#[test]
fn corpus_details() {
    let Some(messenger) = real_webhooks("messenger") else {
        println!("note: the shared real-webhook corpus is not present; skipping");
        return;
    };
    let messenger_adapter = adapter(&MESSENGER_FACTORY);
    let body = |name: &str| {
        messenger.iter().find(|p| p.path.ends_with(format!("{name}.json"))).expect("in corpus").body.clone()
    };

    // Numeric ids come out as their digits.
    let text = parse(&*messenger_adapter, body("text"));
    assert_eq!(text[0].event.chat_id, "987654321432");
    // Three attachments: an image, a fallback link (URL under `URL`) and a location.
    let multi = parse(&*messenger_adapter, body("multi-attachment-image-fallback-location"));
    let message = multi[0].event.message.as_ref().unwrap();
    assert_eq!(message.attachments.len(), 2);
    assert_eq!(message.attachments[1].url.as_deref(), Some("<URL_OF_THE_ATTACHMENT>"));
    assert_eq!(message.location.as_ref().map(|l| (l.latitude, l.longitude)), Some((52.3765533, 9.7389123)));
    // Watermark-only delivery is a watermark status.
    let watermark = parse(&*messenger_adapter, body("delivery-watermark-only"));
    let status = watermark[0].event.status.as_ref().unwrap();
    assert!(status.external_id.is_none() && status.up_to.is_some());
    // An unreact has no emoji.
    let unreact = parse(&*messenger_adapter, body("reaction-unreact"));
    assert_eq!(unreact[0].event.message.as_ref().and_then(|m| m.reaction.clone()).map(|r| r.emoji), Some(None));

    let instagram = real_webhooks("instagram").expect("present with messenger");
    let instagram_adapter = adapter(&INSTAGRAM_FACTORY);
    let mention = instagram.iter().find(|p| p.path.ends_with("story-mention.json")).unwrap();
    let events = parse(&*instagram_adapter, mention.body.clone());
    let message = events[0].event.message.as_ref().unwrap();
    assert_eq!(message.attachments[0].variant.as_deref(), Some("story_mention"));
    assert!(message.sent_at.is_some(), "ISO 8601 timestamp read");
}
