//! One outbound part as an adapter sends it.
//!
//! The server splits a core message into parts (text first, then one part per attachment,
//! or one template) and remembers which parts were sent, so a retry never repeats a sent part.

use bytes::Bytes;
use chatgate_model::{AttachmentKind, Button, FeedbackAsk, Status, Template};
use uuid::Uuid;

/// A downloaded file, ready to upload to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: AttachmentKind,
    pub name: String,
    pub mime: Option<String>,
    pub bytes: Bytes,
    /// Where the core said the file is. The gateway has already fetched it (checking size and
    /// address); channels whose API takes only URLs (Viber) pass this on instead of uploading.
    pub source_url: String,
}

/// What one part carries.
#[derive(Debug, Clone, PartialEq)]
pub enum PartBody {
    Text(String),
    /// An attachment, with an optional caption.
    Media {
        media: Media,
        caption: Option<String>,
    },
    Template(Template),
    /// A text with buttons: the channel's own when [`chatgate_model::ButtonRules::renders_natively`]
    /// says so, else the numbered list of [`chatgate_model::rich::numbered_list`].
    Buttons {
        text: String,
        buttons: Vec<Button>,
        /// The layout hint, at least 1 (each channel caps it to its row width).
        per_row: u8,
    },
    /// A satisfaction request: the prompt and one button (star, keyboard key, list row) per score,
    /// each carrying [`chatgate_model::rich::feedback_payload`] of this part's `message_id`.
    Feedback(FeedbackAsk),
}

/// The question a feedback request asks when the core gives no prompt.
pub const DEFAULT_FEEDBACK_PROMPT: &str = "How would you rate this conversation?";

/// One provider call's worth of an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundPart {
    /// The gateway id of the whole message.
    pub message_id: Uuid,
    /// 0-based position of this part within the message; with `message_id` it is a stable
    /// idempotency key for providers that take one (VK `random_id`).
    pub index: u32,
    pub chat_id: String,
    /// The provider's id of the message to quote (set on the first part only).
    pub reply_to: Option<String>,
    pub body: PartBody,
}

/// What the provider said on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The provider's id of the sent message.
    pub external_id: String,
    /// `sent`, or `delivered` for channels whose API answer already means delivery (Telegram).
    pub status: Status,
}

/// A file fetched from the provider for the core (see `Adapter::fetch_media`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDownload {
    pub bytes: Bytes,
    pub mime: Option<String>,
    pub name: Option<String>,
}
