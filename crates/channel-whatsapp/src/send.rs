//! Outbound parts → Cloud API calls, and Cloud API errors → [`SendErrorKind`].
//!
//! - text: `POST {base}/{phone_number_id}/messages` with `type: text`.
//! - media: first `POST {base}/{phone_number_id}/media` (multipart: `messaging_product=whatsapp`,
//!   `type=<mime>`, `file=<bytes with file name>`) → media id, then `/messages` with `type`
//!   image / audio / video / document (with `filename`) / sticker and `{"id": <media id>}`.
//!   Captions go with image, video and document only (the API takes none on audio and stickers).
//! - template: `type: template` with `{name, language: {code}, components}`.
//! - `reply_to` → `"context": {"message_id": ...}` (a native quote).
//! - text with buttons: up to 3 reply buttons → `interactive` `button` (`reply.id` = payload,
//!   `reply.title` ≤ 20); 4 to 10 → `interactive` `list` (one section, rows `id`/`title` ≤ 24,
//!   the list's button label "Choose"); more, or a link button, → the numbered text list.
//! - feedback request: the prompt with the scores as reply buttons (2-point scale: 👎 👍) or as
//!   a list (5 and 10), each id `fb:{message id}:{scale}:{score}`.
//! - typing / read: `/messages` with `status: read` and the customer's `message_id` (typing adds
//!   `typing_indicator: {type: text}`, shown up to 25 s or until we answer); both need the id.
//!
//! Every call carries `Authorization: Bearer <access_token>`; the receipt's external_id is
//! `messages[0].id` (the wamid that later `statuses[]` webhooks name) with status `sent`.
//!
//! Error mapping (codes: <https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes>),
//! Meta's numeric `error.code` first, then the HTTP status:
//!
//! | Code | Meaning | Kind |
//! |---|---|---|
//! | 130429 | throughput limit (80 msg/s per number: the whole account) | `AccountRetryAfter(1 s)` |
//! | 131056 | pair rate limit (same customer too often, ≈1 per 6 s: this chat only) | `RetryAfter(6 s)` |
//! | 80007, 4, 17, 32, 613 | WABA / app / user / page / hourly call limits (the whole account) | `AccountRetryAfter(60 s)` |
//! | 131047 | re-engagement: outside the 24 h window | `Failed(window_closed)` |
//! | 131050 | customer stopped marketing messages | `Failed(customer_unsubscribed)` |
//! | 0, 3, 10, 190, 200–299 | token expired / revoked, missing permission | `Failed(provider_unauthorized)` |
//! | 1, 2, 131000, 131016, 133004, or `is_transient: true` | temporary service error | `Transient` |
//! | 131026, 131051, 131048, 131049, 132xxx, any other | undeliverable, unsupported, spam limit, template errors... | `Failed(provider_rejected)` |
//!
//! The Graph codes 4, 17, 32, 613, 1, 2 and 190, `is_transient` and the HTTP status fallback are
//! [`chatgate_adapter::meta::graph::classify`]'s; the WhatsApp codes are layered on top by
//! [`whatsapp_code`]. A `Retry-After` header, when Meta sends one, replaces the waits above.
//! Without a known code: HTTP 429 → `RetryAfter(10 s)`, 401/403 → unauthorized, other 4xx →
//! rejected, 5xx and network errors → `Transient`.

use std::time::Duration;

use chatgate_adapter::meta::graph::{self, ErrorBody, GraphError, Meaning};
use chatgate_adapter::{
    BuildError, DEFAULT_FEEDBACK_PROMPT, Media, MediaDownload, OutboundPart, PartBody, SendError, SendReceipt,
    transport,
};
use chatgate_model::ErrorCode;
use chatgate_model::rich::{feedback_buttons, numbered_list};
use chatgate_model::{AttachmentKind, Button, ChatAction, Status};
use reqwest::multipart::{Form, Part};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::Config;
use crate::wire::{
    MarkRead, MediaInfo, MediaRef, ReplyContext, SendBody, SendMessage, SendResponse, SendTemplate, Success,
    TemplateLanguage, TypingIndicator, UploadResponse,
};

/// Most reply buttons of one `interactive` `button` message.
pub const REPLY_BUTTONS_MAX: usize = 3;
/// Most rows of one list message (all sections together).
pub const LIST_ROWS_MAX: usize = 10;
/// The label of the button that opens a list message (≤ 20 characters).
const LIST_BUTTON_LABEL: &str = "Choose";

/// Wait after HTTP 429 without a known code or `Retry-After`.
const THROTTLED_WAIT: Duration = Duration::from_secs(10);

/// The Cloud API client of one business number.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    config: Config,
}

impl Client {
    /// A client with its own connection pool and the Cloud API timeout.
    pub(crate) fn new(config: &Config) -> Result<Client, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout_seconds.map_or(crate::config::DEFAULT_REQUEST_TIMEOUT, Duration::from_secs))
            .build()
            .map_err(|e| transport::client_error(crate::CHANNEL, e))?;
        Ok(Client { http, config: config.clone() })
    }

    /// Sends one part; see the module doc for the calls and the error mapping.
    pub(crate) async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        match &part.body {
            PartBody::Text(text) => self.post_message(part, "text", SendBody::Text { body: text }).await,
            PartBody::Buttons { text, buttons, .. } => match interactive(text, buttons) {
                Some(body) => self.post_message(part, "interactive", SendBody::Interactive(body)).await,
                None => {
                    let listed = numbered_list(Some(text), buttons);
                    self.post_message(part, "text", SendBody::Text { body: &listed }).await
                }
            },
            PartBody::Feedback(ask) => {
                let prompt = ask.prompt.as_deref().unwrap_or(DEFAULT_FEEDBACK_PROMPT);
                let body = interactive(prompt, &feedback_buttons(part.message_id, ask.scale))
                    .ok_or_else(|| SendError::failed(ErrorCode::InvalidRequest, "feedback scale must be 2, 5 or 10"))?;
                self.post_message(part, "interactive", SendBody::Interactive(body)).await
            }
            PartBody::Template(t) => {
                let template = SendTemplate {
                    name: &t.name,
                    language: TemplateLanguage { code: &t.language },
                    components: &t.components,
                };
                self.post_message(part, "template", SendBody::Template(template)).await
            }
            PartBody::Media { media, caption } => {
                let id = self.upload(media).await?;
                let captioned =
                    matches!(media.kind, AttachmentKind::Image | AttachmentKind::Video | AttachmentKind::File);
                if caption.is_some() && !captioned {
                    tracing::warn!(
                        kind = media.kind.as_str(),
                        "WhatsApp takes no caption on this kind; caption not sent"
                    );
                }
                let r = MediaRef {
                    id: &id,
                    caption: caption.as_deref().filter(|_| captioned),
                    filename: (media.kind == AttachmentKind::File && !media.name.is_empty())
                        .then_some(media.name.as_str()),
                };
                let (kind, body) = match media.kind {
                    AttachmentKind::Image => ("image", SendBody::Image(r)),
                    AttachmentKind::Audio => ("audio", SendBody::Audio(r)),
                    AttachmentKind::Video => ("video", SendBody::Video(r)),
                    AttachmentKind::File => ("document", SendBody::Document(r)),
                    AttachmentKind::Sticker => ("sticker", SendBody::Sticker(r)),
                };
                self.post_message(part, kind, body).await
            }
        }
    }

    async fn post_message(
        &self,
        part: &OutboundPart,
        kind: &'static str,
        body: SendBody<'_>,
    ) -> Result<SendReceipt, SendError> {
        let config = &self.config;
        let (to, recipient) = match is_phone_number(&part.chat_id) {
            true => (Some(part.chat_id.as_str()), None),
            false => (None, Some(part.chat_id.as_str())),
        };
        let message = SendMessage {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to,
            recipient,
            context: part.reply_to.as_deref().map(|message_id| ReplyContext { message_id }),
            kind,
            body,
        };
        let url = format!("{}/{}/messages", config.api_base_url, config.phone_number_id);
        let request = self.http.post(url).bearer_auth(config.access_token.expose()).json(&message);
        let response: SendResponse = call(request).await?;
        let external_id = response.messages.into_iter().next().map(|m| m.id).ok_or_else(|| {
            SendError::failed(ErrorCode::ProviderRejected, "WhatsApp accepted the message but returned no message id")
        })?;
        tracing::debug!(kind, %external_id, "whatsapp message sent");
        Ok(SendReceipt { external_id, status: Status::Sent })
    }

    /// Marks the customer's message `message_id` (and all before it) read, with the typing
    /// indicator for [`ChatAction::Typing`]. WhatsApp has both only in answer to a message id.
    pub(crate) async fn chat_action(&self, action: ChatAction, message_id: Option<&str>) -> Result<(), SendError> {
        let Some(message_id) = message_id.filter(|m| !m.is_empty()) else {
            return Err(SendError::failed(
                ErrorCode::InvalidRequest,
                "WhatsApp shows typing and read only for a customer's message: give its `message_id` (wamid)",
            ));
        };
        let body = MarkRead {
            messaging_product: "whatsapp",
            status: "read",
            message_id,
            typing_indicator: (action == ChatAction::Typing).then_some(TypingIndicator { kind: "text" }),
        };
        let config = &self.config;
        let url = format!("{}/{}/messages", config.api_base_url, config.phone_number_id);
        let answer: Success = call(self.http.post(url).bearer_auth(config.access_token.expose()).json(&body)).await?;
        if !answer.success {
            return Err(SendError::failed(ErrorCode::ProviderRejected, "WhatsApp did not confirm the read marker"));
        }
        Ok(())
    }

    /// Downloads an inbound file: `GET {base}/{media-id}` names a short-lived URL, which is read with
    /// the same bearer token, stopping once more than `limit` bytes arrive.
    pub(crate) async fn fetch_media(&self, media_id: &str, limit: u64) -> Result<MediaDownload, SendError> {
        let (client, config) = (&self.http, &self.config);
        if media_id.is_empty() || !media_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SendError::failed(ErrorCode::ProviderRejected, "not a WhatsApp media id"));
        }
        let info: MediaInfo =
            call(client.get(format!("{}/{media_id}", config.api_base_url)).bearer_auth(config.access_token.expose()))
                .await?;
        let mut response =
            client.get(&info.url).bearer_auth(config.access_token.expose()).send().await.map_err(request_failed)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(classify(status, None, None));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_failed)? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(SendError::failed(
                    ErrorCode::AttachmentTooLarge,
                    format!("WhatsApp media is larger than {limit} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(MediaDownload { bytes: bytes.into(), mime: info.mime_type, name: None })
    }

    /// Uploads a file to `/media` and returns its media id.
    async fn upload(&self, media: &Media) -> Result<String, SendError> {
        let (client, config) = (&self.http, &self.config);
        let mime = mime_of(media);
        let file_name = if media.name.is_empty() { "file".to_owned() } else { media.name.clone() };
        let file = Part::stream_with_length(reqwest::Body::from(media.bytes.clone()), media.bytes.len() as u64)
            .file_name(file_name);
        let file = match file.mime_str(&mime) {
            Ok(part) => part,
            Err(_) => {
                return Err(SendError::failed(
                    ErrorCode::AttachmentKindUnsupported,
                    format!("`{mime}` is not a valid MIME type"),
                ));
            }
        };
        let form = Form::new().text("messaging_product", "whatsapp").text("type", mime).part("file", file);
        let url = format!("{}/{}/media", config.api_base_url, config.phone_number_id);
        let request = client.post(url).bearer_auth(config.access_token.expose()).multipart(form);
        let uploaded: UploadResponse = call(request).await?;
        Ok(uploaded.id)
    }
}

/// The `interactive` object for buttons: reply buttons (≤ 3), a list (≤ 10), or `None` (more, or
/// a link button: the numbered text list goes instead).
fn interactive(text: &str, buttons: &[Button]) -> Option<Value> {
    if buttons.iter().any(|b| b.url.is_some()) || buttons.is_empty() {
        return None;
    }
    let id = |b: &Button| b.payload.clone().unwrap_or_default();
    if buttons.len() <= REPLY_BUTTONS_MAX {
        let buttons: Vec<Value> =
            buttons.iter().map(|b| json!({"type": "reply", "reply": {"id": id(b), "title": b.title}})).collect();
        return Some(json!({"type": "button", "body": {"text": text}, "action": {"buttons": buttons}}));
    }
    if buttons.len() <= LIST_ROWS_MAX {
        let rows: Vec<Value> = buttons.iter().map(|b| json!({"id": id(b), "title": b.title})).collect();
        return Some(json!({
            "type": "list",
            "body": {"text": text},
            "action": {"button": LIST_BUTTON_LABEL, "sections": [{"rows": rows}]},
        }));
    }
    None
}

/// The MIME type to declare: the core's, else one guessed from the file name, else the kind's usual one.
/// Whether a chat id is a phone number (sent as `to`) rather than a business-scoped user id
/// (sent as `recipient`). A phone number is digits, optionally after `+`; a BSUID is a
/// two-letter country code, a dot and an alphanumeric id (`US.13491208655302741918`, a parent
/// BSUID `US.ENT.11815799212886844830`). Meta's BSUID guide: "Use `to` to send to a phone number,
/// `recipient` to send to a BSUID or parent BSUID"
/// (<https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids>).
pub(crate) fn is_phone_number(chat_id: &str) -> bool {
    let digits = chat_id.strip_prefix('+').unwrap_or(chat_id);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn mime_of(media: &Media) -> String {
    if let Some(mime) = media.mime.as_deref().filter(|m| !m.is_empty()) {
        return mime.to_owned();
    }
    let ext = media.name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let guessed = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "ogg" | "opus" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "amr" => "audio/amr",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        _ => match media.kind {
            AttachmentKind::Image => "image/jpeg",
            AttachmentKind::Audio => "audio/mpeg",
            AttachmentKind::Video => "video/mp4",
            AttachmentKind::Sticker => "image/webp",
            AttachmentKind::File => "application/octet-stream",
        },
    };
    guessed.to_owned()
}

/// Performs a call and reads a 2xx JSON answer, or maps the error.
async fn call<T: DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, SendError> {
    let response = request.send().await.map_err(request_failed)?;
    let status = response.status().as_u16();
    let retry_after = transport::retry_after(response.headers());
    let body = response.bytes().await.map_err(request_failed)?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body).map_err(|e| {
            SendError::failed(ErrorCode::ProviderRejected, format!("unexpected WhatsApp API answer: {e}"))
        });
    }
    let error = serde_json::from_slice::<ErrorBody>(&body).ok().map(|r| r.error);
    Err(classify(status, retry_after, error.as_ref()))
}

/// Transport failures are retried; the URL holds no secret here, but is stripped all the same.
fn request_failed(e: reqwest::Error) -> SendError {
    transport::send_error("WhatsApp API request failed", e)
}

/// The WhatsApp codes, layered on the Graph codes of [`graph::classify`]: Cloud API rate
/// limits, temporary errors (also when Meta flags `is_transient`), and permanent failures.
fn whatsapp_code(code: i64, is_transient: bool) -> Option<Meaning> {
    match code {
        // Throughput: a per-second limit, so the next second is free again.
        130429 => Some(Meaning::AccountLimited(Duration::from_secs(1))),
        // Pair rate: about one message every 6 s to the same customer.
        131056 => Some(Meaning::RateLimited(Duration::from_secs(6))),
        // WABA call limit: a rolling window, like Graph's own.
        80007 => Some(Meaning::AccountLimited(graph::RATE_LIMIT_WAIT)),
        // Temporary service errors; Meta's flag is honoured before the failures below.
        1 | 2 | 131000 | 131016 | 133004 => Some(Meaning::Transient),
        _ if is_transient => Some(Meaning::Transient),
        131047 => Some(Meaning::Failed(ErrorCode::WindowClosed)),
        131050 => Some(Meaning::Failed(ErrorCode::CustomerUnsubscribed)),
        0 | 3 | 10 | 200..=299 => Some(Meaning::Failed(ErrorCode::ProviderUnauthorized)),
        _ => None,
    }
}

/// The permanent-failure code for a Cloud API error code (also used for failed `statuses[]`).
pub(crate) fn failure_code(code: i64) -> ErrorCode {
    match whatsapp_code(code, false).or_else(|| graph::common(code, None)) {
        Some(Meaning::Failed(code)) => code,
        _ => ErrorCode::ProviderRejected,
    }
}

/// Maps an error answer to a [`SendError`]; see the module doc.
fn classify(status: u16, retry_after: Option<Duration>, error: Option<&GraphError>) -> SendError {
    let code = error.and_then(|e| e.code);
    let text = error.and_then(|e| e.message.as_deref()).unwrap_or("no error details");
    let details = error.and_then(|e| e.error_data.as_ref()).and_then(|d| d.details.as_deref());
    let message = match (code, details) {
        (Some(c), Some(d)) => format!("WhatsApp API {status} (#{c}): {text}: {d}"),
        (Some(c), None) => format!("WhatsApp API {status} (#{c}): {text}"),
        (None, _) => format!("WhatsApp API {status}: {text}"),
    };
    let kind = graph::classify(status, error, retry_after, THROTTLED_WAIT, |e| {
        e.code.and_then(|c| whatsapp_code(c, e.is_transient))
    });
    SendError { kind, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_adapter::SendErrorKind;

    fn err(code: i64) -> GraphError {
        GraphError { code: Some(code), message: Some("m".into()), ..GraphError::default() }
    }

    #[test]
    fn codes_map_to_kinds() {
        let kind = |status, code| classify(status, None, Some(&err(code))).kind;
        assert_eq!(kind(400, 130429), SendErrorKind::AccountRetryAfter(Duration::from_secs(1)));
        assert_eq!(kind(400, 131056), SendErrorKind::RetryAfter(Duration::from_secs(6)));
        assert_eq!(kind(400, 80007), SendErrorKind::AccountRetryAfter(Duration::from_secs(60)));
        assert_eq!(kind(400, 613), SendErrorKind::AccountRetryAfter(Duration::from_secs(60)));
        assert_eq!(kind(400, 131047), SendErrorKind::Failed(ErrorCode::WindowClosed));
        assert_eq!(kind(400, 131050), SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed));
        assert_eq!(kind(401, 190), SendErrorKind::Failed(ErrorCode::ProviderUnauthorized));
        assert_eq!(kind(403, 200), SendErrorKind::Failed(ErrorCode::ProviderUnauthorized));
        assert_eq!(kind(400, 131026), SendErrorKind::Failed(ErrorCode::ProviderRejected));
        assert_eq!(kind(400, 131051), SendErrorKind::Failed(ErrorCode::ProviderRejected));
        assert_eq!(kind(500, 131000), SendErrorKind::Transient);
        assert_eq!(kind(503, 131016), SendErrorKind::Transient);
        assert_eq!(kind(500, 999_999), SendErrorKind::Transient);
        assert_eq!(kind(400, 100), SendErrorKind::Failed(ErrorCode::ProviderRejected));
        assert_eq!(kind(401, 100), SendErrorKind::Failed(ErrorCode::ProviderUnauthorized));
    }

    #[test]
    fn headers_and_statuses_decide_without_a_code() {
        let after = Some(Duration::from_secs(42));
        assert_eq!(
            classify(400, after, Some(&err(130429))).kind,
            SendErrorKind::AccountRetryAfter(Duration::from_secs(42))
        );
        assert_eq!(classify(429, None, None).kind, SendErrorKind::RetryAfter(Duration::from_secs(10)));
        assert_eq!(classify(502, None, None).kind, SendErrorKind::Transient);
        assert_eq!(classify(401, None, None).kind, SendErrorKind::Failed(ErrorCode::ProviderUnauthorized));
        assert_eq!(classify(404, None, None).kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
        let transient = GraphError { is_transient: true, ..err(131999) };
        assert_eq!(classify(400, None, Some(&transient)).kind, SendErrorKind::Transient);
    }

    #[test]
    fn mime_is_declared_guessed_or_defaulted() {
        let media = |kind, name: &str, mime: Option<&str>| Media {
            kind,
            name: name.into(),
            mime: mime.map(str::to_owned),
            bytes: bytes::Bytes::new(),
            source_url: String::new(),
        };
        assert_eq!(
            mime_of(&media(AttachmentKind::File, "a.pdf", Some("application/x-custom"))),
            "application/x-custom"
        );
        assert_eq!(mime_of(&media(AttachmentKind::File, "Report.PDF", None)), "application/pdf");
        assert_eq!(mime_of(&media(AttachmentKind::Sticker, "s", None)), "image/webp");
        assert_eq!(mime_of(&media(AttachmentKind::File, "x.bin", None)), "application/octet-stream");
    }
}
