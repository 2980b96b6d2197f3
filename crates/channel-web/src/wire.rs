//! The JSON bodies visitors send (see `PROTOCOL.md`), private to this crate. Unknown fields are
//! ignored, as the providers' webhooks are read: a widget newer than the gateway
//! (a cached script after a rollback) must not lose its visitor's messages.

use serde::Deserialize;

/// `POST sessions`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SessionBody {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_hash: Option<String>,
    #[serde(default)]
    pub source: Option<SourceBody>,
    #[serde(default)]
    pub page: Option<PageBody>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SourceBody {
    #[serde(default)]
    pub referrer: Option<String>,
    #[serde(default)]
    pub landing_url: Option<String>,
    #[serde(default)]
    pub utm: Option<UtmBody>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UtmBody {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub medium: Option<String>,
    #[serde(default)]
    pub campaign: Option<String>,
    #[serde(default)]
    pub term: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// A page: `{url, title, at?}`.
#[derive(Debug, Deserialize)]
pub(crate) struct PageBody {
    pub url: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST messages`.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageBody {
    pub client_id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<String>,
    #[serde(default)]
    pub page: Option<PageBody>,
}

/// `POST feedback`.
#[derive(Debug, Deserialize)]
pub(crate) struct FeedbackBody {
    #[serde(default)]
    pub request_id: Option<String>,
    pub score: i64,
    pub scale: i64,
}

/// `POST postbacks`: a press on a button of an operator message.
#[derive(Debug, Deserialize)]
pub(crate) struct PostbackBody {
    /// The widget's id of this press (a retry repeats it).
    pub client_id: String,
    pub payload: String,
    #[serde(default)]
    pub title: Option<String>,
    /// The stream id of the message that carried the button.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// `POST receipts`.
#[derive(Debug, Deserialize)]
pub(crate) struct ReceiptsBody {
    pub items: Vec<ReceiptBody>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReceiptBody {
    pub id: String,
    pub status: ReceiptStatus,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReceiptStatus {
    Delivered,
    Read,
}
