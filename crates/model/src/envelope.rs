//! The event envelope (v1): one JSON object per event, consumed by the core.
//!
//! Field names are a public contract. New optional fields may be added; existing ones are
//! never renamed or removed within `v: 1`. Golden files in `fixtures/` guard this.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Channel, Status};

/// The version carried in every envelope's `v` field.
pub const ENVELOPE_VERSION: u8 = 1;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A customer sent a message.
    Message,
    /// A customer edited an earlier message; `message` holds the new content.
    MessageEdited,
    /// A customer deleted (unsent) a message; `message.external_id` names it.
    MessageDeleted,
    /// A customer reacted to a message; `message.external_id` names the message reacted to.
    Reaction,
    /// A customer pressed a button or chose a quick reply.
    Postback,
    /// The delivery status of an outbound message changed.
    Status,
    /// The customer allowed the account to message them (subscribed, unblocked the bot, ...).
    CustomerSubscribed,
    /// The customer stopped the account from messaging them (unsubscribed, blocked the bot, ...).
    CustomerUnsubscribed,
    /// An authentic provider event chatgate does not model; `raw` holds it whole.
    Unsupported,
    /// A web visitor opened a page of the site while the chat session was open; `page` says which.
    PageView,
    /// A customer answered a satisfaction request; `feedback` holds the score and scale.
    Feedback,
}

/// One event as the core receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Envelope version, always [`ENVELOPE_VERSION`].
    pub v: u8,
    /// Gateway id of this event (UUIDv7, time-ordered).
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub channel: Channel,
    /// The account id from `channels.toml`.
    pub account: String,
    /// The provider's conversation key.
    pub chat_id: String,
    /// Who the event is about; `null` when the provider says nothing of them (e.g. some receipts).
    pub customer: Option<Customer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postback: Option<Postback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusInfo>,
    /// Where the customer came from (an ad, a link with a ref parameter, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Web: the page the visitor was on (for `message` when the widget says, always for `page_view`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<Page>,
    /// For `feedback`: the visitor's score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
    /// When the gateway received the webhook.
    pub received_at: DateTime<Utc>,
    /// For `unsupported` (and kept elsewhere where a channel finds it useful): the provider's object as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

impl Event {
    /// A new event of `kind` with a fresh id, received now, and no content yet.
    pub fn new(kind: EventKind, channel: Channel, account: impl Into<String>, chat_id: impl Into<String>) -> Event {
        Event {
            v: ENVELOPE_VERSION,
            id: Uuid::now_v7(),
            kind,
            channel,
            account: account.into(),
            chat_id: chat_id.into(),
            customer: None,
            message: None,
            postback: None,
            status: None,
            source: None,
            page: None,
            feedback: None,
            received_at: Utc::now(),
            raw: None,
        }
    }

    /// An `unsupported` event that keeps the provider's object whole.
    pub fn unsupported(
        channel: Channel,
        account: impl Into<String>,
        chat_id: impl Into<String>,
        raw: serde_json::Value,
    ) -> Event {
        Event { raw: Some(raw), ..Event::new(EventKind::Unsupported, channel, account, chat_id) }
    }
}

/// The customer an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Customer {
    /// The provider's id of the customer (string, whatever the provider's type).
    pub id: String,
    pub name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    /// IETF language tag as the provider gives it.
    pub language: Option<String>,
    /// ISO country code, where the provider gives it (Viber).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Web: the site's own user id, present only when the gateway verified it (identity verification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// Content of a message (also used by edits, deletions and reactions to name the message).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// The provider's id of the message.
    pub external_id: String,
    /// Text or caption.
    pub text: Option<String>,
    /// Formatting and links inside `text`, as the provider marks them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<TextEntity>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The provider's id of the message this one quotes or replies to.
    pub reply_to: Option<String>,
    pub location: Option<Location>,
    pub contact: Option<Contact>,
    /// For `reaction` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    /// Whether the customer forwarded this message from elsewhere.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    /// When the provider says the message was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// For `message_edited`: when the edit was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
}

/// A formatting or link span inside a text. Offsets and lengths are in the provider's units
/// (Telegram: UTF-16 code units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TextEntity {
    /// `bold`, `italic`, `url`, `text_link`, `mention`, `bot_command`, ...
    pub kind: String,
    pub offset: u64,
    pub length: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What kind of file an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Audio,
    Video,
    File,
    Sticker,
}

impl AttachmentKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Image => "image",
            AttachmentKind::Audio => "audio",
            AttachmentKind::Video => "video",
            AttachmentKind::File => "file",
            AttachmentKind::Sticker => "sticker",
        }
    }
}

/// A file the customer sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub mime: Option<String>,
    /// Size in bytes, when the provider says.
    pub size: Option<u64>,
    /// File name, when the provider says.
    pub name: Option<String>,
    /// An opaque reference the core resolves through the gateway (`channel:account:provider-ref`).
    pub media: Option<String>,
    /// A URL the provider gives for the file, when it gives one (may expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Duration in seconds (audio, voice, video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    /// `voice`, `video_note`, `animation`, `story_mention`, ...: a finer kind the channel knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A point on the map, optionally a named venue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A shared contact card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Contact {
    pub name: Option<String>,
    pub phone: Option<String>,
    /// The contact's own id on the channel, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcard: Option<String>,
}

/// A reaction on a message; `emoji: null` means the reaction was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reaction {
    pub emoji: Option<String>,
}

/// A button press or quick reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Postback {
    pub payload: String,
    pub title: Option<String>,
    /// The provider's id of the message that carried the button, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Delivery status of an outbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusInfo {
    /// Gateway id of our outbound message, when known.
    pub message_id: Option<Uuid>,
    /// The provider's id of the message.
    pub external_id: Option<String>,
    pub status: Status,
    pub error: Option<crate::ErrorInfo>,
    /// A watermark receipt: every outbound message of this chat sent at or before this time
    /// has reached `status`. The gateway expands it into one event per message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<DateTime<Utc>>,
}

/// Where a customer came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Source {
    /// `ad`, `link`, `shortlink`, `qr`, `deep_link`, `web_widget` (a messenger link from the web
    /// widget: `reference` is the widget visitor's id), `website` (a web visitor's own source), ...
    pub kind: String,
    /// The provider's ref / ad id / start parameter.
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The provider's referral object as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
    /// Web: the page that linked to the site (`document.referrer` when the session opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Web: the first page of the visit on the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_url: Option<String>,
    /// Web: the `utm_*` tags of the landing page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utm: Option<Utm>,
}

impl Source {
    /// A source of `kind` with a reference and nothing else.
    pub fn new(kind: impl Into<String>, reference: Option<String>) -> Source {
        Source {
            kind: kind.into(),
            reference,
            url: None,
            title: None,
            raw: None,
            referrer: None,
            landing_url: None,
            utm: None,
        }
    }
}

/// The `utm_*` tags of a landing page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Utm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// A page of the customer's website (web channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Page {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// When the visitor opened it (the widget's clock), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// A satisfaction score: `score` is 1 to `scale`, `scale` is 2, 5 or 10.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Feedback {
    pub score: u8,
    pub scale: u8,
    /// The request it answers: the id of the outbound message that asked (`POST /v1/messages` with
    /// `feedback`), or `null` when the web widget asked by itself.
    pub request_id: Option<String>,
    /// The chat was asked again (a newer request) before this answer came: it answers an older one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// The request was answered before: this is a second (possibly different) answer to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat: bool,
}

impl Feedback {
    /// An answer to `request_id`, neither late nor repeated (the gateway sets those when it stores it).
    pub fn answer(request_id: impl Into<Option<String>>, score: u8, scale: u8) -> Feedback {
        Feedback { score, scale, request_id: request_id.into(), late: false, repeat: false }
    }

    /// The scales a feedback request may use.
    pub const SCALES: [u8; 3] = [2, 5, 10];

    /// Whether `score` is 1 to `scale` and `scale` one of [`Feedback::SCALES`].
    pub fn is_valid(score: i64, scale: i64) -> bool {
        Feedback::SCALES.iter().any(|s| i64::from(*s) == scale) && (1..=scale).contains(&score)
    }
}
