//! Parsing edge cases: ids beyond 32 bits, older update shapes, reactions without an actor, and
//! that no JSON shape makes parsing fail or panic. (The real-webhook corpus is checked by
//! `tests/real_webhooks.rs`, the fixtures by `tests/fixtures.rs`.)

use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

/// `(name, body)` of every fixture body in `fixtures/telegram/`.
fn fixture_bodies() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/telegram");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixtures/telegram exists")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".body")?.to_owned();
            Some((name, std::fs::read(&path).ok()?))
        })
        .collect();
    out.sort();
    out
}

fn event_of(body: &[u8]) -> Event {
    let mut inbound = parse("test", body).unwrap();
    assert_eq!(inbound.events.len(), 1);
    inbound.events.remove(0).event
}

#[test]
fn users_without_is_bot_are_read_as_people() {
    let body = br#"{"update_id":5,"message":{"message_id":9,"from":{"id":12,"first_name":"Old"},"chat":{"id":12,"type":"private"},"date":1441645532,"text":"hi"}}"#;
    assert!(
        catch_panics(|| serde_json::from_slice::<Update>(body).ok()).is_none(),
        "teloxide refuses a user without is_bot"
    );
    let inbound = parse("test", body).unwrap();
    let event = &inbound.events[0].event;
    assert_eq!(event.kind, EventKind::Message);
    assert_eq!(event.message.as_ref().and_then(|m| m.text.as_deref()), Some("hi"));
    assert_eq!(event.customer.as_ref().map(|c| c.id.as_str()), Some("12"));
    assert_eq!(inbound.events[0].dedup_key.as_deref(), Some("update:5"));
}

#[test]
fn stickers_without_type_are_stickers() {
    let body = br#"{"update_id":6,"message":{"message_id":9,"from":{"id":12,"is_bot":false,"first_name":"A"},"chat":{"id":12,"type":"private"},"date":1594219382,
        "sticker":{"width":512,"height":512,"emoji":"\u270b","is_animated":true,"file_id":"CAAC","file_unique_id":"Ag"}}}"#;
    let event = event_of(body);
    assert_eq!(event.kind, EventKind::Message);
    let message = event.message.unwrap();
    assert_eq!(message.text.as_deref(), Some("\u{270b}"));
    let sticker = &message.attachments[0];
    assert_eq!((sticker.kind, sticker.variant.as_deref()), (AttachmentKind::Sticker, Some("animated")));
    assert_eq!(sticker.media.as_deref(), Some("telegram:test:CAAC"));
}

#[test]
fn a_forward_date_without_forward_origin_is_a_forward() {
    let plain = br#"{"update_id":5,"message":{"message_id":9,"from":{"id":12,"is_bot":false,"first_name":"A"},"chat":{"id":12,"type":"private"},"date":1441645532,"text":"hi"}}"#;
    assert!(!event_of(plain).message.unwrap().forwarded);
    let old = br#"{"update_id":5,"message":{"message_id":9,"from":{"id":12,"is_bot":false,"first_name":"A"},"chat":{"id":12,"type":"private"},"date":1441645532,"forward_date":1441645000,"text":"hi"}}"#;
    assert!(event_of(old).message.unwrap().forwarded);
    // Only the message's own `forward_date` counts, not that of the message it replies to.
    let reply = br#"{"update_id":5,"message":{"message_id":9,"from":{"id":12,"is_bot":false,"first_name":"A"},"chat":{"id":12,"type":"private"},"date":1441645532,"text":"hi",
        "reply_to_message":{"message_id":8,"chat":{"id":12,"type":"private"},"date":1441645000,"forward_date":1,"text":"x"}}}"#;
    let message = event_of(reply).message.unwrap();
    assert_eq!((message.forwarded, message.reply_to.as_deref()), (false, Some("8")));
}

#[test]
fn ids_beyond_32_bits_and_negative_keep_their_digits() {
    let body = br#"{"update_id":815400125,"message":{"message_id":1,"from":{"id":9007199254740993,"is_bot":false,"first_name":"A"},"chat":{"id":-1009007199254740993,"type":"supergroup","title":"g"},"date":1,"text":"x"}}"#;
    let event = event_of(body);
    assert_eq!((event.kind, event.chat_id.as_str()), (EventKind::Message, "-1009007199254740993"));
    assert_eq!(event.customer.as_ref().map(|c| c.id.as_str()), Some("9007199254740993"));
}

#[test]
fn an_update_id_beyond_32_bits_is_unsupported_but_keeps_its_key() {
    // teloxide's `UpdateId` is a `u32` (the Bot API's update ids are 32-bit integers).
    let body = br#"{"update_id":9007199254740993,"message":{"message_id":1,"from":{"id":7,"is_bot":false,"first_name":"A"},"chat":{"id":-100,"type":"supergroup","title":"g"},"date":1,"text":"x"}}"#;
    let inbound = parse("test", body).unwrap();
    let event = &inbound.events[0].event;
    assert_eq!((event.kind, event.chat_id.as_str()), (EventKind::Unsupported, "-100"));
    assert_eq!(event.customer.as_ref().map(|c| c.id.as_str()), Some("7"));
    assert_eq!(inbound.events[0].dedup_key.as_deref(), Some("update:9007199254740993"));
}

#[test]
fn a_gif_is_one_attachment_and_unknown_kinds_are_kept_whole() {
    let gif = br#"{"update_id":1,"message":{"message_id":2,"chat":{"id":3,"type":"private"},"date":4,
        "animation":{"file_id":"A","file_unique_id":"a","mime_type":"image/gif","duration":1,"width":1,"height":1},
        "document":{"file_id":"A","file_unique_id":"a","mime_type":"image/gif"}}}"#;
    let event = event_of(gif);
    let attachments = &event.message.as_ref().unwrap().attachments;
    assert_eq!(attachments.len(), 1);
    assert_eq!((attachments[0].kind, attachments[0].variant.as_deref()), (AttachmentKind::File, Some("animation")));
    assert_eq!(attachments[0].media.as_deref(), Some("telegram:test:A"));

    let unknown =
        br#"{"update_id":7,"business_connection":{"id":"b","user":{"id":5,"is_bot":false,"first_name":"B"}}}"#;
    let event = event_of(unknown);
    assert_eq!(event.kind, EventKind::Unsupported);
    assert_eq!(event.raw, Some(serde_json::from_slice::<Value>(unknown).unwrap()));
    assert_eq!(event.customer.as_ref().map(|c| c.id.as_str()), Some("5"));
}

#[test]
fn a_reaction_without_actor_does_not_reach_teloxide() {
    // teloxide 0.13 unwraps a missing actor: the update is kept whole as `unsupported`.
    let body = r#"{"update_id":3,"message_reaction":{"chat":{"id":-100,"type":"supergroup","title":"g"},"message_id":4,"user":null,"date":1,"old_reaction":[],"new_reaction":[{"type":"emoji","emoji":"👌"}]}}"#;
    let event = event_of(body.as_bytes());
    assert_eq!((event.kind, event.chat_id.as_str()), (EventKind::Unsupported, "-100"));
    assert_eq!(event.raw, Some(serde_json::from_str::<Value>(body).unwrap()));
}

#[test]
fn reactions_report_the_added_emoji_or_a_removal() {
    let e = |s: &str| Some(s.to_owned());
    assert_eq!(chosen_reaction(&[e("👍")], &[e("👍"), e("🔥")]), Some(e("🔥")));
    assert_eq!(chosen_reaction(&[e("👍"), e("🔥")], &[e("👍")]), Some(e("👍")));
    assert_eq!(chosen_reaction(&[e("👍")], &[]), Some(None));
    assert_eq!(chosen_reaction(&[], &[None]), None, "a custom emoji alone is not modelled");
    assert_eq!(chosen_reaction(&[], &[None, e("❤")]), Some(e("❤")));
}

#[test]
fn membership_changes_are_joins_and_leaves_only() {
    assert_eq!(membership_change(false, true), Some(EventKind::CustomerSubscribed));
    assert_eq!(membership_change(true, false), Some(EventKind::CustomerUnsubscribed));
    assert_eq!(membership_change(true, true), None);
    assert_eq!(membership_change(false, false), None);
    let left = json!({"update_id":1,"my_chat_member":{"chat":{"id":-100,"type":"supergroup","title":"g"},
        "from":{"id":2,"is_bot":false,"first_name":"A"},"date":1,
        "old_chat_member":{"user":{"id":3,"is_bot":true,"first_name":"bot"},"status":"member"},
        "new_chat_member":{"user":{"id":3,"is_bot":true,"first_name":"bot"},"status":"left"}}});
    let event = event_of(left.to_string().as_bytes());
    assert_eq!(event.kind, EventKind::CustomerUnsubscribed);
    assert_eq!(event.chat_id, "-100");
}

#[test]
fn names_join_what_is_there() {
    assert_eq!(full_name(Some("Ada"), Some("Lovelace")).as_deref(), Some("Ada Lovelace"));
    assert_eq!(full_name(Some("Ada"), None).as_deref(), Some("Ada"));
    assert_eq!(full_name(Some(" "), Some("")), None);
}

/// Every path of a JSON value, as a list of keys and indexes.
fn paths(value: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(Value::from(k.as_str()));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(Value::from(i));
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn replace_at(value: &mut Value, path: &[Value], with: Value) {
    let mut slot = value;
    for step in path {
        slot = match step {
            Value::String(k) => &mut slot[k.as_str()],
            Value::Number(n) => &mut slot[n.as_u64().unwrap() as usize],
            _ => unreachable!(),
        };
    }
    *slot = with;
}

#[test]
fn any_field_of_any_type_still_gives_one_event() {
    let replacements = [
        Value::Null,
        json!("x"),
        json!(-1),
        json!(18446744073709551615_u64),
        json!(1.5e300),
        json!([]),
        json!({}),
        json!(true),
    ];
    for (name, body) in fixture_bodies() {
        let original: Value = serde_json::from_slice(&body).unwrap();
        let mut all = Vec::new();
        paths(&original, &mut Vec::new(), &mut all);
        for path in &all {
            for with in &replacements {
                let mut mutated = original.clone();
                replace_at(&mut mutated, path, with.clone());
                let inbound = parse("t", mutated.to_string().as_bytes())
                    .unwrap_or_else(|e| panic!("{name} with {path:?} = {with}: {e}"));
                assert_eq!(inbound.events.len(), 1, "{name} with {path:?} = {with}");
            }
        }
    }
}

#[test]
fn a_start_payload_from_the_web_widget_names_the_visitor() {
    let web = start_source(Some("/start w_v_abc123")).unwrap();
    assert_eq!((web.kind.as_str(), web.reference.as_deref()), ("web_widget", Some("v_abc123")));
    let other = start_source(Some("/start@acme_bot promo-7")).unwrap();
    assert_eq!((other.kind.as_str(), other.reference.as_deref()), ("deep_link", Some("promo-7")));
    for none in
        [None, Some("/start"), Some("/start "), Some("hello /start w_x"), Some("/status w_x"), Some("/start a b")]
    {
        assert_eq!(start_source(none), None, "{none:?}");
    }
    // `w_` alone is no visitor: kept as an ordinary deep link.
    assert_eq!(start_source(Some("/start w_")).unwrap().kind, "deep_link");
}
