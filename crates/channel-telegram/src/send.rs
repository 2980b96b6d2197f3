//! Outbound parts → Bot API calls (`{api_base_url}/bot{token}/{method}`), and API errors →
//! [`SendErrorKind`](chatgate_adapter::SendErrorKind).
//!
//! | part                          | method                                                   | file field |
//! |-------------------------------|----------------------------------------------------------|------------|
//! | text                          | [`sendMessage`](https://core.telegram.org/bots/api#sendmessage) (JSON) | —  |
//! | image                         | [`sendPhoto`](https://core.telegram.org/bots/api#sendphoto)            | `photo`    |
//! | audio, `audio/ogg`            | [`sendVoice`](https://core.telegram.org/bots/api#sendvoice)            | `voice`    |
//! | audio, other                  | [`sendAudio`](https://core.telegram.org/bots/api#sendaudio)            | `audio`    |
//! | video                         | [`sendVideo`](https://core.telegram.org/bots/api#sendvideo)            | `video`    |
//! | file                          | [`sendDocument`](https://core.telegram.org/bots/api#senddocument)      | `document` |
//! | sticker                       | [`sendSticker`](https://core.telegram.org/bots/api#sendsticker)        | `sticker`  |
//! | template                      | refused: Telegram has no templates                       |            |
//!
//! Media are uploaded as `multipart/form-data` with the file's bytes and name. `reply_to` becomes
//! `reply_parameters` (`{"message_id": N, "allow_sending_without_reply": true}`), so a reply to
//! a deleted message is still sent, without the quote.
//!
//! The bot token is part of every URL: transport errors are stripped of their URL
//! ([`reqwest::Error::without_url`]) and no message we build names the URL.

use std::error::Error as _;
use std::time::Duration;

use chatgate_adapter::{Media, MediaDownload, OutboundPart, PartBody, SendError, SendReceipt};
use chatgate_model::ErrorCode;
use chatgate_model::{AttachmentKind, Status};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::config::Secret;
use crate::wire::ApiAnswer;

/// How long to wait for a connection to the Bot API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may take in all; uploads of up to 50 MB need time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// `403` descriptions that mean the customer cannot be messaged any more (Bot API error texts,
/// e.g. "Forbidden: bot was blocked by the user"). A group that removed the bot counts too.
const UNSUBSCRIBED: [&str; 4] =
    ["bot was blocked by the user", "user is deactivated", "bot can't initiate conversation", "bot was kicked from"];

/// Calls the Bot API for one account.
#[derive(Debug)]
pub(crate) struct Sender {
    client: reqwest::Client,
    api_base_url: String,
    token: Secret,
    account: String,
}

impl Sender {
    pub(crate) fn new(account: &str, api_base_url: &str, token: Secret) -> Result<Sender, reqwest::Error> {
        let client = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT).build()?;
        Ok(Sender { client, api_base_url: api_base_url.to_owned(), token, account: account.to_owned() })
    }

    pub(crate) async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let reply = self.reply_parameters(part);
        let chat_id = chat_id(&part.chat_id);
        let (method, request) = match &part.body {
            PartBody::Text(text) => {
                let mut body = json!({ "chat_id": chat_id, "text": text });
                if let Some(reply) = reply {
                    body["reply_parameters"] = reply;
                }
                ("sendMessage", self.request("sendMessage").json(&body))
            }
            PartBody::Media { media, caption } => {
                let (method, field) = method_for(media);
                let mut form = Form::new().text("chat_id", part.chat_id.clone());
                if let Some(caption) = caption.as_ref().filter(|_| method != "sendSticker") {
                    form = form.text("caption", caption.clone());
                }
                if let Some(reply) = reply {
                    form = form.text("reply_parameters", reply.to_string());
                }
                (method, self.request(method).multipart(form.part(field, file_part(media))))
            }
            PartBody::Template(_) => {
                return Err(SendError::failed(ErrorCode::ProviderRejected, "Telegram has no message templates"));
            }
        };
        let response = request.send().await.map_err(|e| transport_error(method, e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| transport_error(method, e))?;
        let answer = serde_json::from_slice::<ApiAnswer>(&body).ok();
        let external_id = outcome(method, status, answer)?;
        Ok(SendReceipt { external_id, status: Status::Delivered })
    }

    /// Downloads an inbound file by its `file_id`: [`getFile`](https://core.telegram.org/bots/api#getfile)
    /// gives its path, then `{api_base_url}/file/bot{token}/{file_path}` gives the bytes. The Bot
    /// API serves files of up to 20 MB this way. Reading stops once more than `limit` bytes arrive.
    pub(crate) async fn fetch_media(&self, file_id: &str, limit: u64) -> Result<MediaDownload, SendError> {
        let method = "getFile";
        let response = self
            .request(method)
            .json(&json!({ "file_id": file_id }))
            .send()
            .await
            .map_err(|e| transport_error(method, e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| transport_error(method, e))?;
        let answer = serde_json::from_slice::<ApiAnswer>(&body).ok();
        let path = match answer {
            Some(ApiAnswer { ok: true, result: Some(ref result), .. }) if (200..300).contains(&status) => {
                result.get("file_path").and_then(Value::as_str).map(str::to_owned)
            }
            other => {
                return Err(outcome(method, status, other).err().unwrap_or_else(|| {
                    SendError::failed(ErrorCode::ProviderRejected, "telegram getFile: unexpected answer")
                }));
            }
        };
        let path = path.ok_or_else(|| {
            SendError::failed(ErrorCode::ProviderRejected, "telegram getFile: the file is not available for download")
        })?;
        let url = format!("{}/file/bot{}/{path}", self.api_base_url, self.token.expose());
        let mut response = self.client.get(url).send().await.map_err(|e| transport_error("file download", e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(if status >= 500 {
                SendError::transient(format!("telegram file download: HTTP {status}"))
            } else {
                SendError::failed(ErrorCode::ProviderRejected, format!("telegram file download: HTTP {status}"))
            });
        }
        let mime =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error("file download", e))? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(SendError::failed(
                    ErrorCode::AttachmentTooLarge,
                    format!("telegram file is larger than {limit} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let name = path.rsplit('/').next().map(str::to_owned);
        Ok(MediaDownload { bytes: bytes.into(), mime, name })
    }

    fn request(&self, method: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}/bot{}/{method}", self.api_base_url, self.token.expose()))
    }

    /// `reply_to` as `reply_parameters`; a reply_to that is no message id is dropped (and logged).
    fn reply_parameters(&self, part: &OutboundPart) -> Option<Value> {
        let reply_to = part.reply_to.as_deref()?;
        match reply_to.parse::<i64>() {
            Ok(message_id) => Some(json!({ "message_id": message_id, "allow_sending_without_reply": true })),
            Err(_) => {
                tracing::warn!(
                    channel = "telegram",
                    account = %self.account,
                    message_id = %part.message_id,
                    reply_to,
                    "reply_to is not a Telegram message id; sending without the quote"
                );
                None
            }
        }
    }
}

/// A numeric chat id as a JSON number (ids exceed 2^32 and are negative for groups), an
/// `@channelusername` as a string.
fn chat_id(chat_id: &str) -> Value {
    chat_id.parse::<i64>().map_or_else(|_| Value::from(chat_id), Value::from)
}

/// The method and its file field for one attachment.
fn method_for(media: &Media) -> (&'static str, &'static str) {
    match media.kind {
        AttachmentKind::Image => ("sendPhoto", "photo"),
        AttachmentKind::Audio if is_ogg(media.mime.as_deref()) => ("sendVoice", "voice"),
        AttachmentKind::Audio => ("sendAudio", "audio"),
        AttachmentKind::Video => ("sendVideo", "video"),
        AttachmentKind::File => ("sendDocument", "document"),
        AttachmentKind::Sticker => ("sendSticker", "sticker"),
    }
}

/// `audio/ogg`, with or without parameters (`; codecs=opus`): what clients play as a voice note.
fn is_ogg(mime: Option<&str>) -> bool {
    mime.and_then(|m| m.split(';').next()).is_some_and(|m| m.trim().eq_ignore_ascii_case("audio/ogg"))
}

fn file_part(media: &Media) -> Part {
    let name = if media.name.trim().is_empty() { "file".to_owned() } else { media.name.clone() };
    let part = || {
        Part::stream_with_length(reqwest::Body::from(media.bytes.clone()), media.bytes.len() as u64)
            .file_name(name.clone())
    };
    match media.mime.as_deref() {
        // An unparsable type is left out rather than failing the upload.
        Some(mime) => part().mime_str(mime).unwrap_or_else(|_| part()),
        None => part(),
    }
}

/// A network failure: retry. The URL (with the token) is removed before the text is kept.
fn transport_error(method: &str, error: reqwest::Error) -> SendError {
    let error = error.without_url();
    let mut message = format!("telegram {method}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::transient(message)
}

/// The sent message's id, or what the error means for retrying.
fn outcome(method: &str, status: u16, answer: Option<ApiAnswer>) -> Result<String, SendError> {
    let answer =
        answer.unwrap_or(ApiAnswer { ok: false, result: None, error_code: None, description: None, parameters: None });
    if (200..300).contains(&status) && answer.ok {
        let id = answer.result.as_ref().and_then(|r| r.get("message_id")).and_then(Value::as_i64);
        // Sent, but we cannot name it: failing (not retrying) avoids sending it twice.
        return id.map(|id| id.to_string()).ok_or_else(|| {
            SendError::failed(ErrorCode::ProviderRejected, format!("telegram {method}: the answer names no message_id"))
        });
    }
    let code = answer.error_code.and_then(|c| u16::try_from(c).ok()).unwrap_or(status);
    let description = answer.description.unwrap_or_else(|| format!("HTTP {status}"));
    let parameters = answer.parameters.unwrap_or_default();
    let message = match parameters.migrate_to_chat_id {
        Some(to) => {
            format!("telegram {method}: {description} ({code}); the group is now chat {to}")
        }
        None => format!("telegram {method}: {description} ({code})"),
    };
    Err(match code {
        429 => match parameters.retry_after {
            Some(seconds) => SendError::retry_after(Duration::from_secs(seconds), message),
            None => SendError::transient(message),
        },
        403 if UNSUBSCRIBED.iter().any(|p| description.contains(p)) => {
            SendError::failed(ErrorCode::CustomerUnsubscribed, message)
        }
        // Telegram answers an unknown or revoked token with 401 or 404.
        401 | 404 => SendError::failed(ErrorCode::ProviderUnauthorized, message),
        400..=499 => SendError::failed(ErrorCode::ProviderRejected, message),
        _ => SendError::transient(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_adapter::SendErrorKind;

    fn answer(json: Value) -> Option<ApiAnswer> {
        serde_json::from_value(json).ok()
    }

    #[test]
    fn success_needs_a_message_id() {
        assert_eq!(
            outcome("sendMessage", 200, answer(json!({"ok": true, "result": {"message_id": 7}}))),
            Ok("7".into())
        );
        let err = outcome("sendMessage", 200, answer(json!({"ok": true, "result": true}))).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    }

    #[test]
    fn error_code_in_the_body_wins_and_odd_answers_are_transient() {
        let err = outcome(
            "sendMessage",
            200,
            answer(json!({"ok": false, "error_code": 400, "description": "Bad Request: x"})),
        );
        assert_eq!(err.unwrap_err().kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
        assert_eq!(outcome("sendMessage", 502, None).unwrap_err().kind, SendErrorKind::Transient);
        assert_eq!(outcome("sendMessage", 302, None).unwrap_err().kind, SendErrorKind::Transient);
        let no_wait = outcome("sendMessage", 429, answer(json!({"ok": false, "error_code": 429})));
        assert_eq!(no_wait.unwrap_err().kind, SendErrorKind::Transient);
    }

    #[test]
    fn a_migrated_group_names_its_new_chat() {
        let err = outcome(
            "sendMessage",
            400,
            answer(json!({"ok": false, "error_code": 400, "description": "Bad Request: group chat was upgraded to a supergroup chat", "parameters": {"migrate_to_chat_id": -1001234567890_i64}})),
        )
        .unwrap_err();
        assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
        assert!(err.message.contains("-1001234567890"), "{}", err.message);
    }

    #[test]
    fn chat_ids_are_numbers_unless_they_are_usernames() {
        assert_eq!(chat_id("-1001234567890"), json!(-1001234567890_i64));
        assert_eq!(chat_id("@channel"), json!("@channel"));
        assert!(is_ogg(Some("audio/ogg; codecs=opus")) && is_ogg(Some("AUDIO/OGG")));
        assert!(!is_ogg(Some("audio/mpeg")) && !is_ogg(None));
    }
}
