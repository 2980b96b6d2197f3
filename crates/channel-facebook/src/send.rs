//! Outbound parts → the Send API (`POST {api_base_url}/{page_id}/messages`), Graph errors →
//! [`SendErrorKind`].
//!
//! - Text: JSON `{"recipient":{"id"},"messaging_type":"RESPONSE","message":{"text"}}`
//!   (<https://developers.facebook.com/docs/messenger-platform/reference/send-api/>).
//! - Attachments are uploaded and sent in one multipart call: `recipient`, `messaging_type`,
//!   `message` = `{"attachment":{"type":"image|audio|file","payload":{"is_reusable":false}}}` and
//!   the file as `filedata`. Messenger documents this call; Instagram's attachment-upload guide
//!   says an attachment can be uploaded and sent in a single call and lists the same types
//!   (<https://developers.facebook.com/docs/messenger-platform/instagram/features/attachment-upload>).
//!   Stickers go out as images. Video is refused before any call
//!   ([`ErrorCode::AttachmentKindUnsupported`]), matching the limits this channel declares.
//! - `reply_to` is the Send API's top-level `reply_to: {"mid"}` (listed among the parameters of
//!   the Page `messages` edge), so quotes are native on both channels.
//! - The Page token travels in an `Authorization: Bearer` header, never in the URL; transport
//!   errors are stripped of their URL anyway.
//! - Text with buttons: `message.quick_replies` (`content_type: text`, `title` ≤ 20, `payload` ≤
//!   1000, at most 13; <https://developers.facebook.com/docs/messenger-platform/send-messages/quick-replies>);
//!   more, or a link button (quick replies have none), go as the numbered text list. A feedback
//!   request is the prompt with one quick reply per score (`fb:{id}:{scale}:{score}`).
//! - Typing and read: `sender_action` `typing_on` / `mark_seen` to the customer
//!   (<https://developers.facebook.com/docs/messenger-platform/send-messages/sender-actions>; Instagram
//!   takes the same actions).
//! - Captions and templates are refused with [`ErrorCode::ProviderRejected`]: the Send API has no
//!   caption on attachments, and Meta message templates are not modelled (the gateway never
//!   sends either to this channel; refusing is better than dropping text silently).

use std::time::Duration;

use chatgate_adapter::meta::graph::{self, GraphError, Meaning};
use chatgate_adapter::{
    BuildError, DEFAULT_FEEDBACK_PROMPT, OutboundPart, PartBody, Secret, SendError, SendErrorKind, SendReceipt,
    transport,
};
use chatgate_model::ErrorCode;
use chatgate_model::rich::{feedback_buttons, numbered_list};
use chatgate_model::{AttachmentKind, Button, ChatAction, Status};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use serde_json::json;

use crate::config::Config;
use crate::wire::SendResponse;

/// Wait this long on a rate-limit error or HTTP 429 when Meta does not say how long (it usually
/// does not): Graph's [`graph::RATE_LIMIT_WAIT`].
pub const DEFAULT_RETRY_AFTER: Duration = graph::RATE_LIMIT_WAIT;

/// A Page's Send API client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    messages_url: String,
    token: Secret,
}

impl Client {
    /// A client with its own connection pool, calling `{api_base_url}/{page_id}/messages`.
    pub(crate) fn new(config: &Config) -> Result<Client, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout_seconds.map_or(crate::config::DEFAULT_REQUEST_TIMEOUT, Duration::from_secs))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| transport::client_error("messenger/instagram", e))?;
        let messages_url = format!("{}/{}/messages", config.api_base_url, config.page_id);
        Ok(Client { http, messages_url, token: config.page_access_token.clone() })
    }

    pub(crate) async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let recipient = json!({ "id": part.chat_id });
        let reply_to = part.reply_to.as_ref().map(|mid| json!({ "mid": mid }));
        let json_message = |message: Value| {
            let mut body = json!({ "recipient": recipient, "messaging_type": "RESPONSE", "message": message });
            if let Some(reply_to) = &reply_to {
                body["reply_to"] = reply_to.clone();
            }
            self.http.post(&self.messages_url).json(&body)
        };
        let request = match &part.body {
            PartBody::Text(text) => json_message(json!({ "text": text })),
            PartBody::Buttons { text, buttons, .. } => match quick_replies(buttons) {
                Some(replies) => json_message(json!({ "text": text, "quick_replies": replies })),
                None => json_message(json!({ "text": numbered_list(Some(text), buttons) })),
            },
            PartBody::Feedback(ask) => {
                let prompt = ask.prompt.as_deref().unwrap_or(DEFAULT_FEEDBACK_PROMPT);
                let replies = quick_replies(&feedback_buttons(part.message_id, ask.scale))
                    .ok_or_else(|| SendError::failed(ErrorCode::InvalidRequest, "feedback scale must be 2, 5 or 10"))?;
                json_message(json!({ "text": prompt, "quick_replies": replies }))
            }
            PartBody::Media { media, caption } => {
                if caption.as_deref().is_some_and(|c| !c.is_empty()) {
                    return Err(SendError::failed(
                        ErrorCode::ProviderRejected,
                        "the Send API takes no caption on attachments; send the text as its own part",
                    ));
                }
                let kind = match media.kind {
                    AttachmentKind::Image | AttachmentKind::Sticker => "image",
                    AttachmentKind::Audio => "audio",
                    AttachmentKind::File => "file",
                    AttachmentKind::Video => {
                        return Err(SendError::failed(
                            ErrorCode::AttachmentKindUnsupported,
                            "this channel does not send video attachments",
                        ));
                    }
                };
                let message = json!({ "attachment": { "type": kind, "payload": { "is_reusable": false } } });
                let new_file = || Part::bytes(media.bytes.to_vec()).file_name(media.name.clone());
                // An unparsable MIME type is left out rather than failing the send.
                let file = match media.mime.as_deref().map(|mime| new_file().mime_str(mime)) {
                    Some(Ok(with_mime)) => with_mime,
                    _ => new_file(),
                };
                let mut form = Form::new()
                    .text("recipient", recipient.to_string())
                    .text("messaging_type", "RESPONSE")
                    .text("message", message.to_string());
                if let Some(reply_to) = reply_to {
                    form = form.text("reply_to", reply_to.to_string());
                }
                self.http.post(&self.messages_url).multipart(form.part("filedata", file))
            }
            PartBody::Template(_) => {
                return Err(SendError::failed(
                    ErrorCode::ProviderRejected,
                    "templates are not supported on this channel",
                ));
            }
        };
        match self.call(request).await?.message_id {
            Some(message_id) => Ok(SendReceipt { external_id: message_id, status: Status::Sent }),
            None => Err(SendError::failed(ErrorCode::ProviderRejected, "the send API answered without a message_id")),
        }
    }
}

impl Client {
    /// `sender_action` `typing_on` (typing) or `mark_seen` (read) to the customer.
    pub(crate) async fn chat_action(&self, chat_id: &str, action: ChatAction) -> Result<(), SendError> {
        let sender_action = match action {
            ChatAction::Typing => "typing_on",
            ChatAction::Read => "mark_seen",
        };
        let body = json!({ "recipient": { "id": chat_id }, "sender_action": sender_action });
        self.call(self.http.post(&self.messages_url).json(&body)).await.map(drop)
    }

    /// Sends a Send API request with the Page token and reads the answer: a 2xx without a Graph
    /// error is the answer, anything else a [`SendError`] by [`classify`].
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<SendResponse, SendError> {
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| transport::send_error("send API request failed", e))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let bytes =
            response.bytes().await.map_err(|e| transport::send_error("reading the send API answer failed", e))?;
        let answer: SendResponse = serde_json::from_slice(&bytes).unwrap_or_default();
        match (status, &answer.error) {
            (200..=299, None) => Ok(answer),
            (status, error) => Err(SendError {
                kind: classify(status, error.as_ref(), retry_after),
                message: describe(status, error.as_ref()),
            }),
        }
    }
}

/// Most quick replies of one message.
pub const QUICK_REPLIES_MAX: usize = 13;

/// `quick_replies` for buttons, or `None` when they do not fit (more than 13, or a link button).
fn quick_replies(buttons: &[Button]) -> Option<Vec<Value>> {
    if buttons.len() > QUICK_REPLIES_MAX || buttons.iter().any(|b| b.url.is_some()) {
        return None;
    }
    let reply = |b: &Button| json!({ "content_type": "text", "title": b.title, "payload": b.payload });
    Some(buttons.iter().map(reply).collect())
}

/// What to do about a failed Send API call, from the HTTP status and the Graph error
/// (<https://developers.facebook.com/docs/messenger-platform/error-codes>, Page `messages` edge errors).
/// The Graph codes and the status fallback are [`graph::classify`]'s; Messenger's own are
/// [`messenger_code`]'s:
///
/// | Graph code (subcode) | meaning | kind |
/// |---|---|---|
/// | 4, 17, 32, 613 | app / user / page / API call rate limits (the whole account) | `AccountRetryAfter` |
/// | 1200; 1, 2 without subcode; `is_transient` | temporary send failure | `Transient` |
/// | 551; 230; 10 or 200 (2018108) | person unavailable / permissions disallow messaging them | `Failed(customer_unsubscribed)` |
/// | 10 (2018278, 2018065, 2534022) | outside the allowed messaging window | `Failed(window_closed)` |
/// | 190, 102; 10 and 200 otherwise | token invalid, app lacks permission | `Failed(provider_unauthorized)` |
/// | 100 (2018109) | attachment size exceeds the limit | `Failed(attachment_too_large)` |
/// | no code above: 429 / 401, 403 / 5xx | | `RetryAfter` / `Failed(provider_unauthorized)` / `Transient` |
/// | any other code, other 4xx | invalid request, no matching user, abuse, commerce disabled (2022) ... | `Failed(provider_rejected)` |
pub(crate) fn classify(status: u16, error: Option<&GraphError>, retry_after: Option<Duration>) -> SendErrorKind {
    graph::classify(status, error, retry_after, DEFAULT_RETRY_AFTER, |e| messenger_code(e.code?, e.error_subcode))
}

/// The Messenger / Instagram codes, layered on Graph's.
fn messenger_code(code: i64, subcode: Option<i64>) -> Option<Meaning> {
    match (code, subcode) {
        (1200, _) => Some(Meaning::Transient),
        (551 | 230, _) | (10 | 200, Some(2018108)) => Some(Meaning::Failed(ErrorCode::CustomerUnsubscribed)),
        (10, Some(2018278 | 2018065 | 2534022)) => Some(Meaning::Failed(ErrorCode::WindowClosed)),
        (102 | 10 | 200, _) => Some(Meaning::Failed(ErrorCode::ProviderUnauthorized)),
        (100, Some(2018109)) => Some(Meaning::Failed(ErrorCode::AttachmentTooLarge)),
        _ => None,
    }
}

/// A log line for the error: HTTP status, Graph code/subcode and Meta's message (no secrets:
/// the token is never in the URL or the request we describe).
fn describe(status: u16, error: Option<&GraphError>) -> String {
    match error {
        Some(e) => format!(
            "send API answered {status}: code {} subcode {}: {}",
            e.code.map_or("-".to_owned(), |c| c.to_string()),
            e.error_subcode.map_or("-".to_owned(), |c| c.to_string()),
            e.message.as_deref().unwrap_or("no message")
        ),
        None => format!("send API answered {status} without a Graph error"),
    }
}

/// How long Meta asks us to wait: `Retry-After` (seconds), else the largest
/// `estimated_time_to_regain_access` (minutes) in `X-Business-Use-Case-Usage`.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(wait) = transport::retry_after(headers) {
        return Some(wait);
    }
    let usage: serde_json::Value =
        serde_json::from_str(headers.get("x-business-use-case-usage")?.to_str().ok()?).ok()?;
    let minutes = usage
        .as_object()?
        .values()
        .filter_map(serde_json::Value::as_array)
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
        .max()
        .filter(|m| *m > 0)?;
    Some(Duration::from_secs(minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn graph(code: i64, subcode: Option<i64>) -> GraphError {
        GraphError { code: Some(code), error_subcode: subcode, ..GraphError::default() }
    }

    #[test]
    fn graph_codes_drive_retry() {
        let after = Some(Duration::from_secs(5));
        assert_eq!(
            classify(400, Some(&graph(613, None)), after),
            SendErrorKind::AccountRetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            classify(400, Some(&graph(4, Some(2018022))), None),
            SendErrorKind::AccountRetryAfter(DEFAULT_RETRY_AFTER)
        );
        assert_eq!(classify(400, Some(&graph(32, None)), None), SendErrorKind::AccountRetryAfter(DEFAULT_RETRY_AFTER));
        assert_eq!(classify(400, Some(&graph(17, None)), None), SendErrorKind::AccountRetryAfter(DEFAULT_RETRY_AFTER));
        assert_eq!(classify(500, Some(&graph(1200, None)), None), SendErrorKind::Transient);
        assert_eq!(classify(500, Some(&graph(2, None)), None), SendErrorKind::Transient);
        let unsubscribed = SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed);
        assert_eq!(classify(400, Some(&graph(551, Some(1545041))), None), unsubscribed);
        assert_eq!(classify(403, Some(&graph(230, None)), None), unsubscribed);
        assert_eq!(classify(400, Some(&graph(10, Some(2018108))), None), unsubscribed);
        let window = SendErrorKind::Failed(ErrorCode::WindowClosed);
        assert_eq!(classify(400, Some(&graph(10, Some(2018278))), None), window);
        assert_eq!(classify(400, Some(&graph(10, Some(2534022))), None), window);
        let unauthorized = SendErrorKind::Failed(ErrorCode::ProviderUnauthorized);
        assert_eq!(classify(401, Some(&graph(190, Some(463))), None), unauthorized);
        assert_eq!(classify(403, Some(&graph(200, Some(2018028))), None), unauthorized);
        assert_eq!(
            classify(400, Some(&graph(100, Some(2018109))), None),
            SendErrorKind::Failed(ErrorCode::AttachmentTooLarge)
        );
        assert_eq!(
            classify(400, Some(&graph(100, Some(2018001))), None),
            SendErrorKind::Failed(ErrorCode::ProviderRejected)
        );
        assert_eq!(classify(400, Some(&graph(2022, None)), None), SendErrorKind::Failed(ErrorCode::ProviderRejected));
        let transient_flag = GraphError { is_transient: true, ..graph(1, Some(99)) };
        assert_eq!(classify(400, Some(&transient_flag), None), SendErrorKind::Transient);
        assert_eq!(classify(503, None, None), SendErrorKind::Transient);
        assert_eq!(classify(429, None, after), SendErrorKind::RetryAfter(Duration::from_secs(5)));
        assert_eq!(classify(404, None, None), SendErrorKind::Failed(ErrorCode::ProviderRejected));
        // The shared status fallback: 401 / 403 without a known code is a token problem.
        assert_eq!(classify(401, None, None), SendErrorKind::Failed(ErrorCode::ProviderUnauthorized));
    }

    #[test]
    fn retry_time_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"112":[{"type":"messenger","call_count":100,"estimated_time_to_regain_access":3},{"type":"pages","estimated_time_to_regain_access":0}]}"#,
            ),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(180)));
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
