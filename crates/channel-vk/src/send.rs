//! Outbound parts → VK API calls, and VK errors → [`SendErrorKind`](chatgate_adapter::SendErrorKind).
//!
//! Every method is `POST {api_base_url}/{method}` with form parameters, among them
//! `access_token` and `v`. The token therefore travels in the body, never in a URL; it is never
//! logged, and transport errors are stripped of their URL (upload URLs carry signed parameters).
//!
//! **Text:** `messages.send(peer_id, message, random_id, reply_to | forward)`.
//!
//! **Attachments** go through VK's upload servers, then `messages.send(attachment=...)`:
//! - images: `photos.getMessagesUploadServer(peer_id)` → multipart `photo` to `upload_url` →
//!   `photos.saveMessagesPhoto(server, photo, hash)` → `photo<owner>_<id>[_<access_key>]`;
//! - files, audio and video: as documents, `docs.getMessagesUploadServer(peer_id, type=doc)` →
//!   multipart `file` → `docs.save(file, title)` → `doc<owner>_<id>[_<access_key>]`. VK plays
//!   no uploaded audio or video inline from a message; they arrive as files. VK refuses mp3 and
//!   executables as documents; that refusal comes back as `provider_rejected`.
//! - stickers cannot be uploaded (only VK's own sticker packs exist), templates do not exist.
//!
//! **Buttons:** `messages.send(keyboard)` with an inline keyboard (`{"inline": true, "buttons":
//! [[…]]}`): `callback` buttons with `payload` `{"p": "<payload>"}` (VK takes JSON payloads of at
//! most 255 bytes), `open_link` buttons for links; at most 10 buttons, 5 a row. A press arrives
//! as `message_event` and is answered with `messages.sendMessageEventAnswer` (a `show_snackbar`
//! with the button's notice, when it has one). A feedback request is the prompt with one
//! callback button per score (10 → two rows of 5). More than 10 buttons go as the numbered list.
//!
//! **Typing / read:** `messages.setActivity(peer_id, type=typing)`;
//! `messages.markAsRead(peer_id, mark_conversation_as_read=1)` (with `start_message_id` when
//! given).
//!
//! **Idempotency:** `random_id` is derived from (message id, part index), so a retry of a part
//! carries the same `random_id` and VK does not send it twice. VK reads `random_id` as a signed
//! int32 (the API schema types it as a plain integer; the maintainers of the `vk_api` library
//! confirmed the int32 overflow and VK's doc change in python273/vk_api#212), so it is 31 bits
//! of SHA-256, never 0 (0 switches the check off). VK checks uniqueness per sender over its
//! message history; with 31 bits a collision with an earlier message is possible (chance
//! n / 2^31 against n remembered messages) and would make VK treat the new part as a repeat.
//!
//! **Group chats** (`peer_id >= 2000000000`): the community sees no global message ids there,
//! so the message goes out with `peer_ids`, whose answer carries `conversation_message_id`;
//! the receipt then names `cmid:<peer_id>:<cmid>`, the form inbound events use. Private chats
//! use `peer_id` and VK answers the message id (an integer, API 5.199).
//!
//! **Errors:** VK answers HTTP 200 with `{"error":{"error_code","error_msg"}}`; see [`classify`].
//!
//! See <https://dev.vk.com/ru/method/messages.send> and
//! <https://dev.vk.com/ru/api/upload/document-in-messages>.

use std::time::Duration;

use chatgate_adapter::{
    BuildError, DEFAULT_FEEDBACK_PROMPT, Media, OutboundPart, PartBody, Press, SendError, SendReceipt, transport,
};
use chatgate_model::ErrorCode;
use chatgate_model::rich::{feedback_buttons, json_payload, numbered_list};
use chatgate_model::{AttachmentKind, Button, ChatAction, Status};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Config;
use crate::wire;

/// Peer ids from here on are group chats (`2000000000 + chat id`).
pub const CHAT_PEER_OFFSET: i64 = 2_000_000_000;

/// How long one upload may take (documents go up to 200 MB).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Wait after error 6 "Too many requests per second": the per-second window is over by then.
pub const TOO_MANY_REQUESTS_WAIT: Duration = Duration::from_secs(1);
/// Wait after error 9 "Flood control": VK names no time; this limit outlasts a second (it
/// guards against too many or too similar messages), so we back off for a minute.
pub const FLOOD_CONTROL_WAIT: Duration = Duration::from_secs(60);
const OCTET_STREAM: &str = "application/octet-stream";

/// Wait after HTTP 429 without `Retry-After`.
const HTTP_429_WAIT: Duration = Duration::from_secs(1);

/// The VK API client of one community.
#[derive(Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    config: Config,
}

impl Client {
    /// A client with its own connection pool; each call sets its own timeout.
    pub(crate) fn new(config: &Config) -> Result<Client, BuildError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| transport::client_error(crate::CHANNEL, e))?;
        Ok(Client { http, config: config.clone() })
    }

    /// Sends one part and returns the id VK gave the message.
    pub(crate) async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let peer: i64 = part.chat_id.trim().parse().map_err(|_| {
            SendError::failed(ErrorCode::ProviderRejected, format!("`{}` is not a VK peer id", part.chat_id))
        })?;
        let mut params: Vec<(&str, String)> = vec![("random_id", random_id(part.message_id, part.index).to_string())];
        if peer >= CHAT_PEER_OFFSET {
            params.push(("peer_ids", peer.to_string()));
        } else {
            params.push(("peer_id", peer.to_string()));
        }
        if let Some(reply_to) = &part.reply_to {
            params.push(reply_param(reply_to)?);
        }
        match &part.body {
            PartBody::Text(text) => params.push(("message", text.clone())),
            PartBody::Media { media, caption } => {
                let attachment = self.upload(peer, media).await?;
                params.push(("attachment", attachment));
                if let Some(caption) = caption.as_ref().filter(|c| !c.is_empty()) {
                    params.push(("message", caption.clone()));
                }
            }
            PartBody::Buttons { text, buttons, per_row } => {
                if crate::BUTTONS.renders_natively(buttons) {
                    params.push(("message", text.clone()));
                    params.push(("keyboard", keyboard(buttons, *per_row).to_string()));
                } else {
                    params.push(("message", numbered_list(Some(text), buttons)));
                }
            }
            PartBody::Feedback(ask) => {
                let prompt = ask.prompt.clone().unwrap_or_else(|| DEFAULT_FEEDBACK_PROMPT.to_owned());
                let per_row = if ask.scale == 10 { 5 } else { ask.scale };
                params.push(("message", prompt));
                params.push(("keyboard", keyboard(&feedback_buttons(part.message_id, ask.scale), per_row).to_string()));
            }
            PartBody::Template(_) => {
                return Err(SendError::failed(ErrorCode::AttachmentKindUnsupported, "VK has no message templates"));
            }
        }
        let response = self.call("messages.send", params).await?;
        let external_id = receipt_id(peer, &response)?;
        Ok(SendReceipt { external_id, status: Status::Sent })
    }

    /// `messages.setActivity` (typing) or `messages.markAsRead` (read) in the customer's chat.
    pub(crate) async fn chat_action(
        &self,
        chat_id: &str,
        action: ChatAction,
        message_id: Option<&str>,
    ) -> Result<(), SendError> {
        let peer = peer_of(chat_id)?;
        let group = ("group_id", self.config.group_id.to_string());
        let (method, params) = match action {
            ChatAction::Typing => ("messages.setActivity", vec![("peer_id", peer), ("type", "typing".into()), group]),
            ChatAction::Read => {
                let mut params = vec![("peer_id", peer), ("mark_conversation_as_read", "1".into()), group];
                if let Some(id) = message_id.filter(|id| id.parse::<i64>().is_ok()) {
                    params.push(("start_message_id", id.to_owned()));
                }
                ("messages.markAsRead", params)
            }
        };
        self.call(method, params).await.map(|_| ())
    }

    /// `messages.sendMessageEventAnswer` for a stored callback button press; with a notice, VK
    /// shows it as a snackbar (`event_data` `show_snackbar`, at most 90 characters).
    pub(crate) async fn answer_press(&self, press: &Press, notice: Option<&str>) -> Result<(), SendError> {
        let mut params = vec![
            ("event_id", press.id.clone()),
            ("user_id", press.user_id.clone()),
            ("peer_id", press.peer_id.clone()),
        ];
        if let Some(text) = notice.filter(|n| !n.is_empty()) {
            let text: String = text.chars().take(SNACKBAR_MAX_CHARS).collect();
            params.push(("event_data", json!({ "type": "show_snackbar", "text": text }).to_string()));
        }
        self.call("messages.sendMessageEventAnswer", params).await.map(|_| ())
    }

    /// Uploads a file and returns its `attachment` string.
    async fn upload(&self, peer: i64, media: &Media) -> Result<String, SendError> {
        match media.kind {
            AttachmentKind::Image => self.upload_photo(peer, media).await,
            AttachmentKind::File | AttachmentKind::Audio | AttachmentKind::Video => self.upload_doc(peer, media).await,
            AttachmentKind::Sticker => {
                Err(SendError::failed(ErrorCode::AttachmentKindUnsupported, "VK does not take uploaded stickers"))
            }
        }
    }

    async fn upload_photo(&self, peer: i64, media: &Media) -> Result<String, SendError> {
        let server: wire::UploadServer = typed(
            "photos.getMessagesUploadServer",
            self.call("photos.getMessagesUploadServer", vec![("peer_id", peer.to_string())]).await?,
        )?;
        let uploaded: wire::PhotoUpload = self.post_file(&server.upload_url, "photo", media).await?;
        if let Some(error) = uploaded.error {
            return Err(SendError::failed(
                ErrorCode::ProviderRejected,
                format!("VK photo upload: {}", error_text(&error)),
            ));
        }
        if uploaded.photo.is_empty() || uploaded.photo == "[]" {
            return Err(SendError::failed(ErrorCode::ProviderRejected, "VK's upload server did not take the image"));
        }
        let server_id = match &uploaded.server {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let saved = self
            .call(
                "photos.saveMessagesPhoto",
                vec![("photo", uploaded.photo), ("server", server_id), ("hash", uploaded.hash)],
            )
            .await?;
        let photo: wire::Saved = match saved {
            Value::Array(mut items) if !items.is_empty() => typed("photos.saveMessagesPhoto", items.swap_remove(0))?,
            other => typed("photos.saveMessagesPhoto", other)?,
        };
        Ok(attachment_string("photo", &photo))
    }

    async fn upload_doc(&self, peer: i64, media: &Media) -> Result<String, SendError> {
        let server: wire::UploadServer = typed(
            "docs.getMessagesUploadServer",
            self.call("docs.getMessagesUploadServer", vec![("peer_id", peer.to_string()), ("type", "doc".to_owned())])
                .await?,
        )?;
        let uploaded: wire::DocUpload = self.post_file(&server.upload_url, "file", media).await?;
        let file = match (uploaded.file, uploaded.error) {
            (Some(file), None) if !file.is_empty() => file,
            (_, error) => {
                let reason = uploaded
                    .error_descr
                    .or_else(|| error.as_ref().map(error_text))
                    .unwrap_or_else(|| "no file in the answer".to_owned());
                return Err(SendError::failed(ErrorCode::ProviderRejected, format!("VK document upload: {reason}")));
            }
        };
        let saved = self.call("docs.save", vec![("file", file), ("title", title_of(media))]).await?;
        // API 5.199: `{"type": "doc", "doc": {...}}`; very old versions answered an array of docs.
        let doc = match saved {
            Value::Object(mut map) if map.contains_key("type") => {
                let kind = map.get("type").and_then(Value::as_str).unwrap_or("doc").to_owned();
                map.remove(&kind).unwrap_or(Value::Null)
            }
            Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
            other => other,
        };
        let doc: wire::Saved = typed("docs.save", doc)?;
        Ok(attachment_string("doc", &doc))
    }

    /// Calls one API method; returns its `response`.
    async fn call(&self, method: &str, params: Vec<(&str, String)>) -> Result<Value, SendError> {
        let mut form = params;
        form.push(("access_token", self.config.access_token.expose().to_owned()));
        form.push(("v", self.config.api_version.clone()));
        let url = format!("{}/{method}", self.config.api_base_url);
        tracing::debug!(channel = "vk", method, "calling the VK API");
        let response = self
            .http
            .post(url)
            .timeout(
                self.config.request_timeout_seconds.map_or(crate::config::DEFAULT_REQUEST_TIMEOUT, Duration::from_secs),
            )
            .form(&form)
            .send()
            .await
            .map_err(|e| request_failed(method, e))?;
        let answer: wire::ApiAnswer = read_json(method, response).await?;
        if let Some(error) = answer.error {
            return Err(classify(method, error.error_code, &error.error_msg));
        }
        answer
            .response
            .ok_or_else(|| SendError::transient(format!("VK {method}: the answer has neither `response` nor `error`")))
    }

    /// Posts a file as multipart to an upload server.
    async fn post_file<T: DeserializeOwned>(
        &self,
        upload_url: &str,
        field: &str,
        media: &Media,
    ) -> Result<T, SendError> {
        if upload_url.is_empty() {
            return Err(SendError::transient("VK gave no upload URL"));
        }
        // The bytes are shared (`Bytes`), not copied; a MIME type reqwest cannot parse falls
        // back to a neutral one (VK's upload servers look at the content and the name).
        let part = || {
            let body = reqwest::Body::from(media.bytes.clone());
            reqwest::multipart::Part::stream_with_length(body, media.bytes.len() as u64).file_name(title_of(media))
        };
        let part = part()
            .mime_str(media.mime.as_deref().unwrap_or(OCTET_STREAM))
            .or_else(|_| part().mime_str(OCTET_STREAM))
            .map_err(|e| transport::send_error("VK upload", e))?;
        let form = reqwest::multipart::Form::new().part(field.to_owned(), part);
        let response = self
            .http
            .post(upload_url)
            .timeout(UPLOAD_TIMEOUT)
            .multipart(form)
            .send()
            .await
            .map_err(|e| request_failed("upload", e))?;
        read_json("upload", response).await
    }
}

/// The longest snackbar text of `messages.sendMessageEventAnswer`.
const SNACKBAR_MAX_CHARS: usize = 90;

/// A chat id as a VK peer id.
fn peer_of(chat_id: &str) -> Result<String, SendError> {
    chat_id
        .trim()
        .parse::<i64>()
        .map(|p| p.to_string())
        .map_err(|_| SendError::failed(ErrorCode::ProviderRejected, format!("`{chat_id}` is not a VK peer id")))
}

/// An inline keyboard of `per_row` buttons a row (at most 5, VK's width).
fn keyboard(buttons: &[Button], per_row: u8) -> Value {
    let per_row = usize::from(per_row).clamp(1, crate::BUTTONS.per_row_max);
    let keys: Vec<Value> = buttons
        .iter()
        .map(|b| match &b.url {
            Some(url) => json!({ "action": { "type": "open_link", "link": url, "label": b.title } }),
            None => json!({
                "action": {
                    "type": "callback",
                    "label": b.title,
                    "payload": json_payload(b.payload.as_deref().unwrap_or_default()),
                }
            }),
        })
        .collect();
    let rows: Vec<Value> = keys.chunks(per_row).map(|row| Value::Array(row.to_vec())).collect();
    json!({ "inline": true, "buttons": rows })
}

/// The `random_id` of a part: 31 bits of SHA-256(message id, part index), never 0.
pub fn random_id(message_id: Uuid, index: u32) -> i32 {
    let mut hasher = Sha256::new();
    hasher.update(b"chatgate/vk/random_id/v1");
    hasher.update(message_id.as_bytes());
    hasher.update(index.to_be_bytes());
    let digest = hasher.finalize();
    let value = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
    i32::try_from(value).unwrap_or(1).max(1)
}

/// What a VK error means for the message.
///
/// | code | meaning | kind |
/// |---|---|---|
/// | 6 | too many requests per second (a limit of the community token) | the account retries after 1 s |
/// | 9 | flood control | retry after 60 s |
/// | 1, 10 | unknown / internal server error | transient |
/// | 5 | user authorization failed (token revoked) | failed `provider_unauthorized` |
/// | 901, 902 | no permission to message the user / their privacy settings | failed `customer_unsubscribed` |
/// | other | | failed `provider_rejected` |
pub(crate) fn classify(method: &str, code: i64, message: &str) -> SendError {
    let text = format!("VK {method}: error {code}: {message}");
    match code {
        6 => SendError::account_retry_after(TOO_MANY_REQUESTS_WAIT, text),
        9 => SendError::retry_after(FLOOD_CONTROL_WAIT, text),
        1 | 10 => SendError::transient(text),
        5 => SendError::failed(ErrorCode::ProviderUnauthorized, text),
        901 | 902 => SendError::failed(ErrorCode::CustomerUnsubscribed, text),
        _ => SendError::failed(ErrorCode::ProviderRejected, text),
    }
}

/// `reply_to` as VK takes it: a global message id → `reply_to`; `cmid:<peer>:<cmid>` (group
/// chats) → `forward` with `is_reply`.
fn reply_param(reply_to: &str) -> Result<(&'static str, String), SendError> {
    if let Ok(id) = reply_to.parse::<i64>()
        && id > 0
    {
        return Ok(("reply_to", id.to_string()));
    }
    let cmid_form = reply_to.strip_prefix("cmid:").and_then(|rest| {
        let (peer, cmid) = rest.split_once(':')?;
        Some((peer.parse::<i64>().ok()?, cmid.parse::<i64>().ok()?))
    });
    match cmid_form {
        Some((peer, cmid)) if cmid > 0 => Ok((
            "forward",
            serde_json::json!({ "peer_id": peer, "conversation_message_ids": [cmid], "is_reply": true }).to_string(),
        )),
        _ => {
            Err(SendError::failed(ErrorCode::ProviderRejected, format!("reply_to `{reply_to}` is not a VK message id")))
        }
    }
}

/// The message id in `messages.send`'s answer: an integer for `peer_id`, an array of
/// `{peer_id, message_id, conversation_message_id, error?}` for `peer_ids`.
fn receipt_id(peer: i64, response: &Value) -> Result<String, SendError> {
    if let Some(id) = response.as_i64() {
        return Ok(id.to_string());
    }
    let item = response.as_array().and_then(|items| items.first());
    if let Some(item) = item {
        if let Some(error) = item.get("error").filter(|e| !e.is_null()) {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or_default();
            let message =
                error.get("description").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
            return Err(classify("messages.send", code, &message));
        }
        let id = item.get("message_id").and_then(Value::as_i64).unwrap_or_default();
        let cmid = item.get("conversation_message_id").and_then(Value::as_i64).unwrap_or_default();
        if let Some(r) = crate::parse::message_ref(id, peer, cmid) {
            return Ok(r);
        }
    }
    // VK sent something else; a retry is safe, `random_id` keeps it from sending twice.
    Err(SendError::transient(format!("VK messages.send answered an unknown shape: {response}")))
}

fn attachment_string(kind: &str, saved: &wire::Saved) -> String {
    match saved.access_key.as_deref().filter(|k| !k.is_empty()) {
        Some(key) => format!("{kind}{}_{}_{key}", saved.owner_id, saved.id),
        None => format!("{kind}{}_{}", saved.owner_id, saved.id),
    }
}

fn title_of(media: &Media) -> String {
    if media.name.trim().is_empty() { "file".to_owned() } else { media.name.clone() }
}

fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn typed<T: DeserializeOwned>(method: &str, value: Value) -> Result<T, SendError> {
    serde_json::from_value(value).map_err(|e| SendError::transient(format!("VK {method}: unexpected answer: {e}")))
}

/// Reads a JSON answer; HTTP errors first.
async fn read_json<T: DeserializeOwned>(what: &str, response: reqwest::Response) -> Result<T, SendError> {
    let status = response.status();
    if status.as_u16() == 429 {
        let wait = transport::retry_after(response.headers()).unwrap_or(HTTP_429_WAIT);
        return Err(SendError::account_retry_after(wait, format!("VK {what}: HTTP 429")));
    }
    if status.is_server_error() {
        return Err(SendError::transient(format!("VK {what}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(SendError::failed(ErrorCode::ProviderRejected, format!("VK {what}: HTTP {status}")));
    }
    let bytes = response.bytes().await.map_err(|e| request_failed(what, e))?;
    // A body that is not JSON (a maintenance page) is VK's trouble, not the message's.
    serde_json::from_slice(&bytes).map_err(|e| SendError::transient(format!("VK {what}: unreadable answer: {e}")))
}

fn request_failed(what: &str, error: reqwest::Error) -> SendError {
    transport::send_error(&format!("VK {what}"), error)
}
