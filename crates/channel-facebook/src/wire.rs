//! Meta's wire format for Messenger and Instagram: Graph webhooks in, Send API answers back.
//! Private to this crate; [`crate::parse`] converts them into the common model.
//!
//! The types are lenient where Meta's payloads are known to vary: ids arrive as strings or
//! numbers, times as epoch milliseconds, epoch seconds, digit strings or ISO 8601 strings, and
//! attachments keep their payload as JSON because its shape depends on the attachment type.
//! Webhook reference: <https://developers.facebook.com/docs/messenger-platform/webhooks>.

use chatgate_adapter::meta::graph::GraphError;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `{"object": "page"|"instagram", "entry": [...]}`. `object` is optional: some recorded
/// Instagram payloads leave it out.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub object: Option<String>,
    pub entry: Vec<Value>,
}

/// One `entry[]` item: a batch of events for one Page / Instagram account.
#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    /// The Page id (`page`) or Instagram professional account id (`instagram`) the entry is for.
    #[serde(default)]
    pub id: Option<Id>,
    #[serde(default)]
    pub messaging: Option<Vec<Value>>,
    /// Events for threads another app controls (handover protocol); same shape as `messaging`.
    #[serde(default)]
    pub standby: Option<Vec<Value>>,
    /// Graph field changes (`{field, value}`): Page feed, Instagram comments and mentions.
    #[serde(default)]
    pub changes: Option<Vec<Value>>,
}

/// One `changes[]` item.
#[derive(Debug, Deserialize)]
pub(crate) struct Change {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
}

/// One `messaging[]` / `standby[]` item. Exactly one of the event fields is normally set;
/// an item with none of them is an event kind we do not model.
#[derive(Debug, Deserialize)]
pub(crate) struct Item {
    #[serde(default)]
    pub sender: Option<Party>,
    #[serde(default)]
    pub recipient: Option<Party>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub message_edit: Option<MessageEdit>,
    #[serde(default)]
    pub reaction: Option<Reaction>,
    #[serde(default)]
    pub postback: Option<Postback>,
    /// A referral on its own (m.me / ig.me link, ad) or next to a message.
    #[serde(default)]
    pub referral: Option<Value>,
    #[serde(default)]
    pub optin: Option<Value>,
    #[serde(default)]
    pub delivery: Option<Delivery>,
    #[serde(default)]
    pub read: Option<Read>,
}

/// `sender` / `recipient`: a PSID / IGSID / Page id, or a `user_ref` (checkbox plugin).
#[derive(Debug, Deserialize)]
pub(crate) struct Party {
    #[serde(default)]
    pub id: Option<Id>,
    #[serde(default)]
    pub user_ref: Option<Id>,
}

impl Party {
    pub fn key(&self) -> Option<&str> {
        self.id.as_ref().or(self.user_ref.as_ref()).map(|id| id.0.as_str())
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub mid: Option<Id>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Option<Vec<Value>>,
    #[serde(default)]
    pub quick_reply: Option<QuickReply>,
    #[serde(default)]
    pub reply_to: Option<ReplyTo>,
    #[serde(default)]
    pub is_echo: Option<bool>,
    #[serde(default)]
    pub is_deleted: Option<bool>,
    #[serde(default)]
    pub is_unsupported: Option<bool>,
    #[serde(default)]
    pub sticker_id: Option<Id>,
    #[serde(default)]
    pub referral: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QuickReply {
    #[serde(default)]
    pub payload: Option<String>,
}

/// `reply_to`: a message (`mid`) or, on Instagram, a story (`story: {id, url}`).
#[derive(Debug, Deserialize)]
pub(crate) struct ReplyTo {
    #[serde(default)]
    pub mid: Option<Id>,
    #[serde(default)]
    pub story: Option<Story>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Story {
    #[serde(default)]
    pub id: Option<Id>,
    #[serde(default)]
    pub url: Option<String>,
}

/// One `message.attachments[]` item. `payload` is an object for most types, `null` or a
/// string for `fallback`; some fallbacks carry `url`/`URL` and `title` beside it.
#[derive(Debug, Deserialize)]
pub(crate) struct Attachment {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub payload: Option<Value>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, rename = "URL")]
    pub url_upper: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

impl Attachment {
    /// A string field of the payload (ids may be numbers).
    pub fn payload_str(&self, key: &str) -> Option<String> {
        match self.payload.as_ref()?.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageEdit {
    #[serde(default)]
    pub mid: Option<Id>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub num_edit: Option<Id>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Reaction {
    #[serde(default)]
    pub mid: Option<Id>,
    /// `react` or `unreact`.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub emoji: Option<String>,
    /// A name: `smile`, `angry`, `sad`, `wow`, `love`, `like`, `dislike`, `other`.
    #[serde(default)]
    pub reaction: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Postback {
    #[serde(default)]
    pub mid: Option<Id>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub referral: Option<Value>,
}

/// `optin`: plugin opt-in (`ref`, `user_ref`) or marketing-message opt-in/out
/// (`type: notification_messages`, `notification_messages_status`).
#[derive(Debug, Deserialize)]
pub(crate) struct Optin {
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    #[serde(default)]
    pub user_ref: Option<Id>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub notification_messages_status: Option<String>,
}

/// `referral`, read into a source; the object itself is kept whole beside it.
#[derive(Debug, Deserialize)]
pub(crate) struct Referral {
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    /// `SHORTLINK`, `ADS`, `MESSENGER_CODE`, `DISCOVER_TAB`, `CUSTOMER_CHAT_PLUGIN`, ...
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub ad_id: Option<Id>,
    #[serde(default)]
    pub referer_uri: Option<String>,
    #[serde(default)]
    pub ads_context_data: Option<AdsContext>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AdsContext {
    #[serde(default)]
    pub ad_title: Option<String>,
}

/// `delivery`: the customer's device received our messages `mids`, or all up to `watermark`.
#[derive(Debug, Deserialize)]
pub(crate) struct Delivery {
    #[serde(default)]
    pub mids: Option<Vec<Id>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub watermark: Option<DateTime<Utc>>,
}

/// `read`: Messenger gives a `watermark`, Instagram (`messaging_seen`) the `mid` seen.
#[derive(Debug, Deserialize)]
pub(crate) struct Read {
    #[serde(default)]
    pub mid: Option<Id>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub watermark: Option<DateTime<Utc>>,
}

/// The Send API's answer: `{"recipient_id", "message_id"}` or `{"error": {...}}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SendResponse {
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub error: Option<GraphError>,
}

/// An id Meta sends as a string, or (in some payloads) as a number. Integers are read as
/// `u64`/`i64` and printed back as their digits, never through `f64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Unsigned(u64),
            Signed(i64),
        }
        Ok(Id(match Repr::deserialize(deserializer)? {
            Repr::Text(s) => s,
            Repr::Unsigned(n) => n.to_string(),
            Repr::Signed(n) => n.to_string(),
        }))
    }
}

/// Times below this many units are epoch seconds, above it epoch milliseconds
/// (1e11 s is the year 5138; 1e11 ms is 1973).
const SECONDS_BELOW: i64 = 100_000_000_000;

/// Reads a time from epoch ms or s (number or digit string) or an ISO 8601 string; anything
/// else is `None` rather than an error, so one odd timestamp never loses an event.
fn lenient_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(time_from_value(&Value::deserialize(deserializer)?))
}

pub(crate) fn time_from_value(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => epoch(n.as_i64()?),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => epoch(s.parse().ok()?),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z"))
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc())),
        _ => None,
    }
}

fn epoch(n: i64) -> Option<DateTime<Utc>> {
    if n.abs() < SECONDS_BELOW { Utc.timestamp_opt(n, 0).single() } else { Utc.timestamp_millis_opt(n).single() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strings_or_integers() {
        let ids: Vec<Id> = serde_json::from_str(r#"["abc", 987654321432, -5, 18446744073709551615]"#).unwrap();
        assert_eq!(
            ids,
            vec![Id("abc".into()), Id("987654321432".into()), Id("-5".into()), Id("18446744073709551615".into())]
        );
        assert!(serde_json::from_str::<Id>("1.5").is_err());
    }

    #[test]
    fn times_in_every_recorded_form() {
        let ms = Utc.timestamp_millis_opt(1_457_764_197_627).unwrap();
        assert_eq!(time_from_value(&serde_json::json!(1_457_764_197_627_i64)), Some(ms));
        assert_eq!(time_from_value(&serde_json::json!("1527459824")), Utc.timestamp_opt(1_527_459_824, 0).single());
        assert_eq!(
            time_from_value(&serde_json::json!("2021-09-08T06:34:04+0000")),
            Utc.with_ymd_and_hms(2021, 9, 8, 6, 34, 4).single()
        );
        assert_eq!(
            time_from_value(&serde_json::json!("2021-09-08T06:34:04Z")),
            Utc.with_ymd_and_hms(2021, 9, 8, 6, 34, 4).single()
        );
        assert_eq!(time_from_value(&serde_json::json!("yesterday")), None);
        assert_eq!(time_from_value(&serde_json::json!(null)), None);
        assert_eq!(time_from_value(&serde_json::json!(1.5)), None);
    }
}
