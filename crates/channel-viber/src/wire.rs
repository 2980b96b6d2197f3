//! Viber's callback and API shapes, as far as chatgate reads or writes them. Private to this crate.
//!
//! Callbacks: <https://developers.viber.com/docs/api/rest-bot-api/#callbacks>.
//! `message_token` and `timestamp` exceed 2^53, so they are read as integers ([`Id`] keeps the
//! digits) and never pass through `f64`; a fractional or oversized number is refused, which turns
//! the callback into an `unsupported` event instead of a silently rounded id.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// What every callback carries.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub event: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: Option<Id>,
    #[serde(default)]
    pub message_token: Option<Id>,
}

/// An integer id (or one sent as a string) kept as its decimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Id, D::Error> {
        // serde_json keeps integers that fit u64/i64 exact; only fractions and numbers beyond
        // u64 become f64, and those are refused here.
        match Value::deserialize(deserializer)? {
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(Id(n.to_string())),
            Value::String(s) if !s.is_empty() => Ok(Id(s)),
            other => Err(D::Error::custom(format!("expected an integer id, got {other}"))),
        }
    }
}

impl Id {
    /// The value as milliseconds since the epoch, when it is one.
    pub fn as_millis(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

/// A Viber user as callbacks describe them (`sender` of messages, `user` of subscriptions).
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
}

/// `event: "message"`.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageCallback {
    pub sender: User,
    pub message: WireMessage,
}

/// The `message` object of a `message` callback. `thumbnail` and `tracking_data` are not read
/// here: the parser keeps the whole object in the event's `raw`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireMessage {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub media: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub duration: Option<u32>,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub sticker_id: Option<Id>,
    #[serde(default)]
    pub contact: Option<WireContact>,
    #[serde(default)]
    pub location: Option<WireLocation>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireContact {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireLocation {
    pub lat: f64,
    pub lon: f64,
}

/// `event: "subscribed"`.
#[derive(Debug, Deserialize)]
pub(crate) struct SubscribedCallback {
    pub user: User,
}

/// `event: "conversation_started"`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConversationStartedCallback {
    pub user: User,
    /// The `context` parameter of the deep link the user came through.
    #[serde(default)]
    pub context: Option<String>,
}

/// `event: "unsubscribed" | "delivered" | "seen" | "failed"`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserIdCallback {
    pub user_id: String,
    /// `failed` only: why the client refused the message.
    #[serde(default)]
    pub desc: Option<String>,
}

/// The body of `POST /send_message`.
#[derive(Debug, Serialize)]
pub(crate) struct SendMessage<'a> {
    pub receiver: &'a str,
    pub sender: Sender<'a>,
    /// Echoed back in the user's next message; we put our message id here.
    pub tracking_data: String,
    #[serde(flatten)]
    pub body: SendBody<'a>,
    /// A custom keyboard shown under the message (buttons, feedback scores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<Keyboard>,
}

/// What a reply button's `ActionBody` starts with: the customer's press comes back as a text
/// message with this body, which parsing turns into a `postback` (feedback buttons carry their
/// own `fb:` payload).
pub(crate) const REPLY_PREFIX: &str = "btn:";

/// A [keyboard](https://developers.viber.com/docs/tools/keyboards/): a grid 6 columns wide.
#[derive(Debug, Serialize)]
pub(crate) struct Keyboard {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(rename = "DefaultHeight")]
    pub default_height: bool,
    #[serde(rename = "Buttons")]
    pub buttons: Vec<KeyboardButton>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyboardButton {
    pub columns: u8,
    pub rows: u8,
    /// `reply` or `open-url`.
    pub action_type: &'static str,
    /// `btn:` + payload, the feedback payload, or the URL.
    pub action_body: String,
    pub text: String,
    /// A reply press is not shown as a message in the chat (its body is ours, not the customer's words).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub silent: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct Sender<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<&'a str>,
}

/// The type-specific fields of a sent message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum SendBody<'a> {
    Text {
        text: String,
    },
    /// `text` is required by Viber ("can be an empty string").
    Picture {
        text: String,
        media: &'a str,
    },
    Video {
        media: &'a str,
        size: u64,
    },
    File {
        media: &'a str,
        size: u64,
        file_name: String,
    },
    Sticker {
        sticker_id: &'a str,
    },
}

/// The answer of every API call (HTTP 200 also for failures; `status` says which).
#[derive(Debug, Deserialize)]
pub(crate) struct ApiResponse {
    pub status: i64,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub message_token: Option<Id>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_every_digit() {
        let e: Envelope =
            serde_json::from_str(r#"{"event":"x","message_token":9007199254740993,"timestamp":4977069964384421269}"#)
                .unwrap();
        assert_eq!(e.message_token, Some(Id("9007199254740993".into())));
        assert_eq!(e.timestamp.as_ref().and_then(Id::as_millis), Some(4977069964384421269));
        let e: Envelope = serde_json::from_str(r#"{"event":"x","message_token":18446744073709551615}"#).unwrap();
        assert_eq!(e.message_token, Some(Id("18446744073709551615".into())));
        let e: Envelope = serde_json::from_str(r#"{"event":"x","message_token":"5058590812907389764"}"#).unwrap();
        assert_eq!(e.message_token, Some(Id("5058590812907389764".into())));
        // Rounded or fractional numbers are refused, never stored as something else.
        assert!(serde_json::from_str::<Envelope>(r#"{"event":"x","message_token":18446744073709551616}"#).is_err());
        assert!(serde_json::from_str::<Envelope>(r#"{"event":"x","message_token":4.9e18}"#).is_err());
    }

    #[test]
    fn real_bigint_token_survives_exactly() {
        let Some(payloads) = chatgate_testkit::real_webhooks("viber") else {
            eprintln!("note: real-webhook corpus not present; skipping the big-int check");
            return;
        };
        let payload = payloads
            .iter()
            .find(|p| p.path.ends_with("webhook-bigint-token-raw.json"))
            .expect("viber/webhook-bigint-token-raw.json is in the corpus");
        let e: Envelope = serde_json::from_slice(&payload.body).unwrap();
        assert_eq!(e.event, "webhook");
        assert_eq!(e.message_token, Some(Id("5058590812907389764".into())));
    }

    #[test]
    fn send_body_is_flat_and_typed() {
        let body = SendMessage {
            keyboard: None,
            receiver: "u1",
            sender: Sender { name: "Acme", avatar: None },
            tracking_data: "m1".into(),
            body: SendBody::File { media: "https://x/a.pdf", size: 3, file_name: "a.pdf".into() },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"receiver":"u1","sender":{"name":"Acme"},"tracking_data":"m1","type":"file",
                "media":"https://x/a.pdf","size":3,"file_name":"a.pdf"})
        );
    }
}
