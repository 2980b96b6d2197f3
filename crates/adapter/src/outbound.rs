//! One outbound part as an adapter sends it.
//!
//! The server splits a core message into parts (text first, then one part per attachment,
//! or one template) and remembers which parts were sent, so a retry never repeats a sent part.

use bytes::Bytes;
use chatgate_model::{AttachmentKind, FeedbackAsk, Status, Template};
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
    /// A satisfaction request (web only; the server refuses `feedback` on other channels).
    Feedback(FeedbackAsk),
}

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
