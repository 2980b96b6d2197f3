//! Operator messages to a visitor: written to the visitor's durable stream through the gateway's
//! [`Mailbox`], with the status rule of the web channel.
//!
//! Status rule: a part is `sent` once it is on the stream of a visitor who has an open stream (at
//! once, or when they connect within `gone_after_seconds` of the part's first posting); a visitor
//! who does not connect within that time makes the message `failed` with `visitor_gone`. The item
//! stays on the stream either way, so a visitor who comes back later still sees it. `delivered`
//! and `read` come from the widget's receipts (`parse.rs`).
//!
//! Posting is idempotent by the part's stream id `{message id}.{part index}`: a retry or a
//! restart posts nothing twice, and the grace period counts from the first posting.

use std::sync::{Arc, OnceLock};

use chatgate_adapter::visitor::{Mailbox, MailboxItem};
use chatgate_adapter::{OutboundPart, PartBody, SendError, SendReceipt};
use chatgate_model::{ErrorCode, Status};
use chrono::Utc;
use serde_json::json;

use crate::config::Config;
use crate::parse;

/// Writes operator messages to visitor streams.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) account: String,
    pub(crate) mailbox: OnceLock<Arc<dyn Mailbox>>,
}

/// The stream id of one outbound part, also its external id for receipts.
pub fn stream_id(part: &OutboundPart) -> String {
    format!("{}.{}", part.message_id, part.index)
}

impl Client {
    pub(crate) async fn send(&self, config: &Config, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let Some(mailbox) = self.mailbox.get() else {
            return Err(SendError::transient("the web channel has no mailbox yet (the gateway is starting)"));
        };
        let id = stream_id(part);
        let reply_to = part.reply_to.as_ref().map(|r| json!({ "id": r }));
        let (kind, data) = match &part.body {
            PartBody::Text(text) => (
                "message",
                json!({ "id": id, "from": "operator", "text": text, "attachments": [], "reply_to": reply_to, "at": Utc::now() }),
            ),
            PartBody::Media { media, caption } => {
                let reference = mailbox.store_file(&self.account, &part.chat_id, media).await?;
                let attachment = json!({
                    "kind": media.kind.as_str(),
                    "name": media.name,
                    "mime": media.mime,
                    "size": media.bytes.len(),
                    "url": parse::file_url(&self.account, &reference),
                });
                (
                    "message",
                    json!({ "id": id, "from": "operator", "text": caption, "attachments": [attachment], "reply_to": reply_to, "at": Utc::now() }),
                )
            }
            PartBody::Buttons { text, buttons, per_row } => (
                "message",
                json!({ "id": id, "from": "operator", "text": text, "attachments": [], "reply_to": reply_to,
                        "buttons": buttons, "buttons_per_row": per_row, "at": Utc::now() }),
            ),
            // The request id is the message's id, as on every channel (`Feedback::request_id`).
            PartBody::Feedback(ask) => {
                let prompt = ask.prompt.clone().unwrap_or_else(|| config.feedback.prompt.clone());
                let request_id = part.message_id.to_string();
                (
                    "feedback_request",
                    json!({ "id": id, "request_id": request_id, "scale": ask.scale, "prompt": prompt }),
                )
            }
            PartBody::Template(_) => {
                return Err(SendError::failed(ErrorCode::TemplateUnsupported, "the web channel takes no templates"));
            }
        };
        let item = MailboxItem {
            account: self.account.clone(),
            visitor: part.chat_id.clone(),
            key: format!("out:{id}"),
            kind: kind.to_owned(),
            data,
        };
        let posted = mailbox.post(item).await?;
        let sent = SendReceipt { external_id: id, status: Status::Sent };
        if posted.connected {
            return Ok(sent);
        }
        let waited = Utc::now().signed_duration_since(posted.first_posted_at).to_std().unwrap_or_default();
        let remaining = config.gone_after.saturating_sub(waited);
        if !remaining.is_zero() && mailbox.wait_connected(&self.account, &part.chat_id, remaining).await {
            return Ok(sent);
        }
        Err(SendError::failed(
            ErrorCode::VisitorGone,
            format!(
                "the visitor had no open chat within {} s; the message stays in their history",
                config.gone_after.as_secs()
            ),
        ))
    }
}
