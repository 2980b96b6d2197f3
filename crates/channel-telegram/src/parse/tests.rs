//! The two readers agree, and no JSON shape makes parsing fail or panic.

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

/// Ids and receive times differ between two runs; everything else must not.
fn comparable(event: Option<Event>) -> Option<Value> {
    event.map(|e| {
        let mut v = serde_json::to_value(e).unwrap();
        v["id"] = Value::Null;
        v["received_at"] = Value::Null;
        v
    })
}

/// Both readers on one body; `None` when teloxide's types do not take it.
fn both(body: &[u8]) -> Option<(Option<Value>, Option<Value>)> {
    let raw: Value = serde_json::from_slice(body).unwrap();
    let update = typed_update(&raw)?;
    let ctx = Ctx { account: "test" };
    Some((comparable(ctx.update(&update, &raw)), comparable(fallback::update(&ctx, &raw))))
}

#[test]
fn the_json_reader_gives_what_the_typed_reader_gives_on_every_fixture() {
    let mut typed = 0;
    for (name, body) in fixture_bodies() {
        if let Some((from_types, from_value)) = both(&body) {
            typed += 1;
            // Including "not modelled" (`None`) for the unsupported fixtures.
            assert_eq!(from_types, from_value, "{name}: the readers disagree");
        }
    }
    // Every fixture but the legacy one is in today's documented format.
    assert!(typed >= 20, "only {typed} fixtures were read by teloxide's types");
}

#[test]
fn the_json_reader_agrees_on_the_real_corpus_too() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/real-webhooks/telegram");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("note: {} is absent; skipping the real-corpus comparison", dir.display());
        return;
    };
    for path in entries.filter_map(|e| Some(e.ok()?.path())) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".json") || name.ends_with(".meta.json") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        // Where the typed reader gives an event, the JSON reader gives the same one. (Not the
        // other way round: teloxide reads a sticker without `type` as `MessageKind::Empty`,
        // which the JSON reader then reads.)
        if let Some((Some(from_types), from_value)) = both(&body) {
            assert_eq!(Some(from_types), from_value, "{name}: the readers disagree");
        }
    }
}

#[test]
fn legacy_payloads_take_the_json_reader() {
    let body = br#"{"update_id":5,"message":{"message_id":9,"from":{"id":12,"first_name":"Old"},"chat":{"id":12,"type":"private"},"date":1441645532,"text":"hi"}}"#;
    assert!(both(body).is_none(), "teloxide should refuse a user without is_bot");
    let inbound = parse("test", body).unwrap();
    let event = &inbound.events[0].event;
    assert_eq!(event.kind, EventKind::Message);
    assert_eq!(event.message.as_ref().and_then(|m| m.text.as_deref()), Some("hi"));
    assert_eq!(event.customer.as_ref().map(|c| c.id.as_str()), Some("12"));
    assert_eq!(inbound.events[0].dedup_key.as_deref(), Some("update:5"));
}

#[test]
fn ids_beyond_32_bits_and_negative_keep_their_digits() {
    let body = br#"{"update_id":9007199254740993,"message":{"message_id":1,"from":{"id":9007199254740993,"is_bot":false,"first_name":"A"},"chat":{"id":-1009007199254740993,"type":"supergroup","title":"g"},"date":1,"text":"x"}}"#;
    let inbound = parse("test", body).unwrap();
    let event = &inbound.events[0].event;
    assert_eq!(event.chat_id, "-1009007199254740993");
    assert_eq!(event.customer.as_ref().map(|c| c.id.as_str()), Some("9007199254740993"));
    assert_eq!(inbound.events[0].dedup_key.as_deref(), Some("update:9007199254740993"));
}

#[test]
fn a_gif_is_one_attachment_and_unknown_kinds_are_kept_whole() {
    let gif = br#"{"update_id":1,"message":{"message_id":2,"chat":{"id":3,"type":"private"},"date":4,
        "animation":{"file_id":"A","file_unique_id":"a","mime_type":"image/gif","duration":1,"width":1,"height":1},
        "document":{"file_id":"A","file_unique_id":"a","mime_type":"image/gif"}}}"#;
    let event = &parse("acct", gif).unwrap().events[0].event;
    let attachments = &event.message.as_ref().unwrap().attachments;
    assert_eq!(attachments.len(), 1);
    assert_eq!((attachments[0].kind, attachments[0].variant.as_deref()), (AttachmentKind::File, Some("animation")));
    assert_eq!(attachments[0].media.as_deref(), Some("telegram:acct:A"));

    let unknown =
        br#"{"update_id":7,"business_connection":{"id":"b","user":{"id":5,"is_bot":false,"first_name":"B"}}}"#;
    let event = &parse("acct", unknown).unwrap().events[0].event;
    assert_eq!(event.kind, EventKind::Unsupported);
    assert_eq!(event.raw, Some(serde_json::from_slice::<Value>(unknown).unwrap()));
}

#[test]
fn a_reaction_without_actor_does_not_reach_teloxide() {
    // teloxide 0.13 unwraps a missing actor; the JSON reader takes it.
    let body = r#"{"update_id":3,"message_reaction":{"chat":{"id":-100,"type":"supergroup","title":"g"},"message_id":4,"user":null,"date":1,"old_reaction":[],"new_reaction":[{"type":"emoji","emoji":"👌"}]}}"#;
    let event = &parse("t", body.as_bytes()).unwrap().events[0].event;
    assert_eq!(event.kind, EventKind::Reaction);
    assert_eq!(event.customer, None);
    let message = event.message.as_ref().unwrap();
    assert_eq!(
        (message.external_id.as_str(), message.reaction.as_ref().and_then(|r| r.emoji.as_deref())),
        ("4", Some("👌"))
    );
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
    let promoted = json!({"update_id":1,"my_chat_member":{"chat":{"id":-100,"type":"supergroup","title":"g"},
        "from":{"id":2,"is_bot":false,"first_name":"A"},"date":1,
        "old_chat_member":{"user":{"id":3,"is_bot":true,"first_name":"bot"},"status":"member"},
        "new_chat_member":{"user":{"id":3,"is_bot":true,"first_name":"bot"},"status":"left"}}});
    let event = &parse("t", promoted.to_string().as_bytes()).unwrap().events[0].event;
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
