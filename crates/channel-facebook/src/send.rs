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
//! - Captions and templates are refused with [`ErrorCode::ProviderRejected`]: the Send API has no
//!   caption on attachments, and Meta message templates are not modelled (the gateway never
//!   sends either to this channel; refusing is better than dropping text silently).

use std::time::Duration;

use chatgate_adapter::{OutboundPart, PartBody, SendError, SendErrorKind, SendReceipt};
use chatgate_model::ErrorCode;
use chatgate_model::{AttachmentKind, Status};
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::config::Secret;
use crate::wire::{GraphError, SendResponse};

/// Wait this long on a rate-limit error when Meta does not say how long (it usually does not).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Whole-request timeout; uploads of up to 25 MB must fit in it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A Page's Send API endpoint.
#[derive(Debug, Clone)]
pub(crate) struct SendApi {
    client: reqwest::Client,
    messages_url: String,
    token: Secret,
}

impl SendApi {
    pub fn new(api_base_url: &str, page_id: &str, token: Secret) -> Result<SendApi, reqwest::Error> {
        let client =
            reqwest::Client::builder().timeout(REQUEST_TIMEOUT).connect_timeout(Duration::from_secs(10)).build()?;
        let messages_url = format!("{}/{page_id}/messages", api_base_url.trim_end_matches('/'));
        Ok(SendApi { client, messages_url, token })
    }

    pub async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let recipient = json!({ "id": part.chat_id });
        let reply_to = part.reply_to.as_ref().map(|mid| json!({ "mid": mid }));
        let request = match &part.body {
            PartBody::Text(text) => {
                let mut body = json!({
                    "recipient": recipient,
                    "messaging_type": "RESPONSE",
                    "message": { "text": text },
                });
                if let Some(reply_to) = reply_to {
                    body["reply_to"] = reply_to;
                }
                self.client.post(&self.messages_url).json(&body)
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
                self.client.post(&self.messages_url).multipart(form.part("filedata", file))
            }
            PartBody::Template(_) => {
                return Err(SendError::failed(
                    ErrorCode::ProviderRejected,
                    "templates are not supported on this channel",
                ));
            }
        };
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| SendError::transient(format!("send API request failed: {}", e.without_url())))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SendError::transient(format!("reading the send API answer failed: {}", e.without_url())))?;
        let answer: SendResponse = serde_json::from_slice(&bytes).unwrap_or_default();
        match (status, answer.error, answer.message_id) {
            (200..=299, None, Some(message_id)) => Ok(SendReceipt { external_id: message_id, status: Status::Sent }),
            (200..=299, None, None) => {
                Err(SendError::failed(ErrorCode::ProviderRejected, "the send API answered without a message_id"))
            }
            (status, error, _) => {
                let kind = classify(status, error.as_ref(), retry_after);
                Err(SendError { kind, message: describe(status, error.as_ref()) })
            }
        }
    }
}

/// What to do about a failed Send API call, from the HTTP status and the Graph error
/// (<https://developers.facebook.com/docs/messenger-platform/error-codes>, Page `messages` edge errors):
///
/// | Graph code (subcode) | meaning | kind |
/// |---|---|---|
/// | 4, 17, 32, 613 | app / user / page / API call rate limits | `RetryAfter` |
/// | 1200; 1, 2 without subcode; `is_transient` | temporary send failure | `Transient` |
/// | 551; 230; 10 or 200 (2018108) | person unavailable / permissions disallow messaging them | `Failed(customer_unsubscribed)` |
/// | 10 (2018278, 2018065, 2534022) | outside the allowed messaging window | `Failed(window_closed)` |
/// | 190, 102; 10 and 200 otherwise | token invalid, app lacks permission | `Failed(provider_unauthorized)` |
/// | 100 (2018109) | attachment size exceeds the limit | `Failed(attachment_too_large)` |
/// | any other code, other 4xx | invalid request, no matching user, abuse, commerce disabled (2022) ... | `Failed(provider_rejected)` |
/// | no Graph error: 429 / 5xx | | `RetryAfter` / `Transient` |
pub(crate) fn classify(status: u16, error: Option<&GraphError>, retry_after: Option<Duration>) -> SendErrorKind {
    let wait = || SendErrorKind::RetryAfter(retry_after.unwrap_or(DEFAULT_RETRY_AFTER));
    let Some(error) = error else {
        return match status {
            429 => wait(),
            500..=599 => SendErrorKind::Transient,
            _ => SendErrorKind::Failed(ErrorCode::ProviderRejected),
        };
    };
    let subcode = error.error_subcode;
    match (error.code, subcode) {
        (Some(4 | 17 | 32 | 613), _) => wait(),
        (Some(1200), _) | (Some(1 | 2), None) => SendErrorKind::Transient,
        (Some(551 | 230), _) | (Some(10 | 200), Some(2018108)) => {
            SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed)
        }
        (Some(10), Some(2018278 | 2018065 | 2534022)) => SendErrorKind::Failed(ErrorCode::WindowClosed),
        (Some(190 | 102 | 10 | 200), _) => SendErrorKind::Failed(ErrorCode::ProviderUnauthorized),
        (Some(100), Some(2018109)) => SendErrorKind::Failed(ErrorCode::AttachmentTooLarge),
        _ if error.is_transient == Some(true) => SendErrorKind::Transient,
        _ if status >= 500 => SendErrorKind::Transient,
        _ => SendErrorKind::Failed(ErrorCode::ProviderRejected),
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
    if let Some(secs) = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok()) {
        return Some(Duration::from_secs(secs));
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
        assert_eq!(classify(400, Some(&graph(613, None)), after), SendErrorKind::RetryAfter(Duration::from_secs(5)));
        assert_eq!(classify(400, Some(&graph(4, Some(2018022))), None), SendErrorKind::RetryAfter(DEFAULT_RETRY_AFTER));
        assert_eq!(classify(400, Some(&graph(32, None)), None), SendErrorKind::RetryAfter(DEFAULT_RETRY_AFTER));
        assert_eq!(classify(400, Some(&graph(17, None)), None), SendErrorKind::RetryAfter(DEFAULT_RETRY_AFTER));
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
        let transient_flag = GraphError { is_transient: Some(true), ..graph(1, Some(99)) };
        assert_eq!(classify(400, Some(&transient_flag), None), SendErrorKind::Transient);
        assert_eq!(classify(503, None, None), SendErrorKind::Transient);
        assert_eq!(classify(429, None, after), SendErrorKind::RetryAfter(Duration::from_secs(5)));
        assert_eq!(classify(404, None, None), SendErrorKind::Failed(ErrorCode::ProviderRejected));
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
