//! `parse` never panics and never fails on JSON: arbitrary JSON built from Meta's vocabulary
//! (right keys, wrong or odd value types) always gives `Ok`, and an envelope at least one event per item.

use chatgate_adapter::{Adapter, ChannelFactory, WebhookRequest};
use chatgate_channel_facebook::{INSTAGRAM_FACTORY, MESSENGER_FACTORY};
use http::{HeaderMap, Method};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const KEYS: &[&str] = &[
    "object",
    "entry",
    "id",
    "time",
    "messaging",
    "standby",
    "changes",
    "field",
    "value",
    "sender",
    "recipient",
    "timestamp",
    "message",
    "mid",
    "text",
    "attachments",
    "type",
    "payload",
    "url",
    "URL",
    "title",
    "coordinates",
    "lat",
    "long",
    "sticker_id",
    "quick_reply",
    "reply_to",
    "story",
    "is_echo",
    "is_deleted",
    "is_unsupported",
    "message_edit",
    "num_edit",
    "reaction",
    "action",
    "emoji",
    "postback",
    "referral",
    "ref",
    "source",
    "ad_id",
    "optin",
    "user_ref",
    "notification_messages_status",
    "delivery",
    "mids",
    "watermark",
    "read",
];
const WORDS: &[&str] = &[
    "page",
    "instagram",
    "image",
    "audio",
    "video",
    "file",
    "location",
    "fallback",
    "share",
    "story_mention",
    "ig_reel",
    "ig_post",
    "template",
    "react",
    "unreact",
    "ADS",
    "SHORTLINK",
    "notification_messages",
    "STOP_NOTIFICATIONS",
    "messages",
    "2021-09-08T06:34:04+0000",
    "1527459824",
    "",
    "m_1",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e20f64..1e20).prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())
            }),
        ]
    })
}

/// An envelope whose items are arbitrary.
fn envelope() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![json!("page"), json!("instagram"), Value::Null]),
        prop::collection::vec(value(), 0..4),
        prop::collection::vec(value(), 0..3),
    )
        .prop_map(|(object, messaging, changes)| {
            json!({"object": object, "entry": [{"id": "1", "time": 1, "messaging": messaging, "changes": changes}]})
        })
}

fn parse(adapter: &dyn Adapter, body: &[u8]) -> usize {
    let headers = HeaderMap::new();
    let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body };
    adapter.parse(&request).expect("JSON always parses").events.len()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_json_parses(body in value(), envelope in envelope()) {
        let settings = json!({"page_id": "1", "page_access_token": "t", "app_secret": "s", "verify_token": "v"});
        let instagram = json!({"instagram_account_id": "2", "page_id": "1", "page_access_token": "t", "app_secret": "s", "verify_token": "v"});
        for (factory, settings) in [(&MESSENGER_FACTORY as &dyn ChannelFactory, &settings), (&INSTAGRAM_FACTORY, &instagram)] {
            let adapter = factory.build("p", settings.clone()).unwrap();
            // Any JSON: `Ok` (an empty `entry` list rightly gives no event).
            parse(&*adapter, &serde_json::to_vec(&body).unwrap());
            let items = envelope["entry"][0]["messaging"].as_array().map_or(0, Vec::len)
                + envelope["entry"][0]["changes"].as_array().map_or(0, Vec::len);
            prop_assert!(parse(&*adapter, &serde_json::to_vec(&envelope).unwrap()) >= items);
        }
    }
}
