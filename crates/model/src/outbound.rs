//! What the core sends to chatgate, and what chatgate reports back about it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AttachmentKind, Button, Channel, ErrorCode, Status};

/// `POST /v1/messages`: one reply from the contact centre to a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundRequest {
    pub channel: Channel,
    pub account: String,
    pub chat_id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<OutboundAttachment>,
    /// The provider's id of the message to quote.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// A pre-approved template (WhatsApp), allowed outside the messaging window.
    #[serde(default)]
    pub template: Option<Template>,
    /// The same key twice yields the same message id and one send.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Ask the customer for a satisfaction score; the answer comes back as a `feedback` event
    /// whose `request_id` is this message's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackAsk>,
    /// Buttons shown with the text (the channel's own, or a numbered list it answers by number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
    /// Layout hint: buttons side by side in one row (capped to the channel's row width); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons_per_row: Option<u8>,
}

/// A satisfaction request sent with an outbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackAsk {
    /// 2, 5 or 10.
    pub scale: u8,
    /// The question shown above the scale (channels other than web need one; web uses its default).
    #[serde(default)]
    pub prompt: Option<String>,
}

impl OutboundRequest {
    /// The chat this message goes to.
    pub fn conversation(&self) -> crate::Conversation {
        crate::Conversation::new(self.channel, self.account.clone(), self.chat_id.clone())
    }

    /// The customer it goes to: every channel here keys private chats by the customer, so the
    /// chat id is the customer id.
    pub fn customer(&self) -> crate::CustomerRef {
        crate::CustomerRef::new(self.channel, self.account.clone(), self.chat_id.clone())
    }
}

/// A file to send; the gateway downloads it from `url` and uploads it to the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundAttachment {
    pub kind: AttachmentKind,
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mime: Option<String>,
    /// Size in bytes, when the core knows it; checked before download.
    #[serde(default)]
    pub size: Option<u64>,
}

/// A message template (WhatsApp): name, language code and the provider's component array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub components: Vec<serde_json::Value>,
}

/// An error as reported to the core: a stable snake_case `code` and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
}

/// One step in a message's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusChange {
    pub status: Status,
    pub at: DateTime<Utc>,
}

/// `GET /v1/messages/{id}`: where an outbound message stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageRecord {
    pub id: Uuid,
    pub channel: Channel,
    pub account: String,
    pub chat_id: String,
    pub status: Status,
    /// The provider's ids of the sent parts, in order.
    pub external_ids: Vec<String>,
    pub error: Option<ErrorInfo>,
    pub history: Vec<StatusChange>,
    pub created_at: DateTime<Utc>,
    pub request: OutboundRequest,
}
