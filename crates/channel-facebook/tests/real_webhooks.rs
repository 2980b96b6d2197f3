//! The shared corpus of real Messenger and Instagram payloads (written by others; see
//! `real-webhooks/SOURCES.md`), re-signed with our test secret: no `messaging[]` / `standby[]` /
//! `changes[]` item is dropped, and details survive. (That every payload is accepted and becomes
//! the expected kinds: `tests/real_webhooks.rs` of the `chatgate` package.)
//! Quirks in the corpus: numeric ids, no `object` key and ISO 8601 times (Chatwoot factories),
//! a story reply in a `page` envelope, an envelope of an unknown object.

use std::sync::Arc;

use chatgate_adapter::{Adapter, ChannelFactory, InboundEvent};
use chatgate_channel_facebook::{INSTAGRAM_FACTORY, MESSENGER_FACTORY};
use chatgate_testkit::{RealWebhook, post_signed, real_webhooks, test_account};
use serde_json::{Value, json};

fn adapter(factory: &dyn ChannelFactory) -> Arc<dyn Adapter> {
    test_account(factory)
}

fn parse(adapter: &dyn Adapter, body: Vec<u8>) -> Vec<InboundEvent> {
    let shown = String::from_utf8_lossy(&body).into_owned();
    post_signed(adapter, body).unwrap_or_else(|e| panic!("{e:?}: {shown}")).events
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

fn check(channel: &str, factory: &dyn ChannelFactory) {
    let Some(corpus) = real_webhooks(channel) else { return };
    let adapter = adapter(factory);
    for payload in &corpus {
        let name = payload.stem();
        let events = parse(&*adapter, payload.body.clone());
        let items = each_item_gives_an_event(&*adapter, payload);
        assert!(events.len() >= items.max(1), "{name}: {} events for {items} items", events.len());
    }
}

#[test]
fn messenger_corpus_parses_without_losing_items() {
    check("messenger", &MESSENGER_FACTORY);
}

#[test]
fn instagram_corpus_parses_without_losing_items() {
    check("instagram", &INSTAGRAM_FACTORY);
}

/// A few facts read from the corpus, beyond the kinds.
#[test]
fn corpus_details() {
    let Some(messenger) = real_webhooks("messenger") else { return };
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
