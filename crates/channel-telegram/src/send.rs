//! Outbound parts → Bot API calls through teloxide-core's [`Bot`], and API errors →
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
//! | text with buttons             | `sendMessage` with an [inline keyboard](https://core.telegram.org/bots/api#inlinekeyboardmarkup) (`callback_data` = payload, or `url`) | — |
//! | feedback request              | `sendMessage`: the prompt, one `callback_data` button per score (`fb:{id}:{scale}:{score}`; 10 → two rows of 5) | — |
//! | template                      | refused: Telegram has no templates                       |            |
//!
//! Markers and answers: typing is [`sendChatAction`](https://core.telegram.org/bots/api#sendchataction)
//! `typing`; Telegram has no read marker for bots. A stored button press is answered with
//! [`answerCallbackQuery`](https://core.telegram.org/bots/api#answercallbackquery) (the button's
//! `notice` as `text`, at most 200 characters), so the client stops its spinner.
//!
//! Media are uploaded as `multipart/form-data`: teloxide names the file in its field as
//! `attach://<id>` and sends the bytes, with the file's name, in a part called `<id>`
//! ([`InputFile::memory`]); it sends no content type for the file, so Telegram goes by the name
//! and the bytes. `reply_to` becomes `reply_parameters` (`{"message_id": N,
//! "allow_sending_without_reply": true}`), so a reply to a deleted message is still sent,
//! without the quote.
//!
//! Errors: teloxide reads an error answer by its `description` (and `parameters`) only; the HTTP
//! status and `error_code` do not reach us. Telegram's descriptions begin with the status's
//! reason phrase (`Bad Request: …`, `Forbidden: …`, `Unauthorized`, `Not Found`), which is what
//! [`api_error`] goes by. teloxide also waits 10 seconds after a 5xx answer before it returns.
//!
//! The bot token is part of every URL: transport errors are stripped of their URL
//! ([`reqwest::Error::without_url`]), no message we build names the URL, and every message is
//! cleared of the token once more before it leaves (`Client::redact`).

use std::error::Error as _;
use std::time::Duration;

use chatgate_adapter::{
    BuildError, DEFAULT_FEEDBACK_PROMPT, Media, MediaDownload, OutboundPart, PartBody, Press, SendError, SendErrorKind,
    SendReceipt,
};
use chatgate_model::rich::{feedback_buttons, numbered_list};
use chatgate_model::{AttachmentKind, Button, ChatAction, ErrorCode, Status};
use serde_json::Value;
use teloxide_core::payloads::setters::*;
use teloxide_core::requests::{Request, Requester};
use teloxide_core::types::{
    CallbackQueryId, ChatAction as TgChatAction, ChatId, FileId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile,
    MessageId, Recipient, ReplyParameters,
};
use teloxide_core::{ApiError, Bot, RequestError};

use crate::config::Config;

/// How long to wait for a connection to the Bot API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `403` descriptions that mean the customer cannot be messaged any more (Bot API error texts,
/// e.g. "Forbidden: bot was blocked by the user"). A group that removed the bot counts too.
const UNSUBSCRIBED: [&str; 4] =
    ["bot was blocked by the user", "user is deactivated", "bot can't initiate conversation", "bot was kicked from"];

/// Calls the Bot API for one account.
pub(crate) struct Client {
    /// teloxide's client: our `reqwest::Client` (timeouts), the token and `api_base_url`.
    /// Its derived `Debug` form shows the token, so [`Client`]'s own leaves it out.
    bot: Bot,
    /// `{api_base_url}` as configured, for file downloads.
    api_base_url: String,
    account: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api_base_url", &self.api_base_url)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(account: &str, config: &Config) -> Result<Client, BuildError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(config.request_timeout_seconds.map_or(crate::config::DEFAULT_REQUEST_TIMEOUT, Duration::from_secs))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| chatgate_adapter::transport::client_error(crate::CHANNEL, e))?;
        let api_url = reqwest::Url::parse(&config.api_base_url)
            .map_err(|e| BuildError::new(format!("telegram: `api_base_url` is not a URL: {e}")))?;
        if api_url.cannot_be_a_base() {
            return Err(BuildError::new("telegram: `api_base_url` cannot have paths below it"));
        }
        let bot = Bot::with_client(config.bot_token.expose(), http).set_api_url(api_url);
        Ok(Client { bot, api_base_url: config.api_base_url.clone(), account: account.to_owned() })
    }

    pub(crate) async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let reply = self.reply_parameters(part);
        let chat = recipient(&part.chat_id);
        let (method, sent) = match &part.body {
            PartBody::Text(text) => {
                let mut request = self.bot.send_message(chat, text.clone());
                if let Some(reply) = reply {
                    request = request.reply_parameters(reply);
                }
                ("sendMessage", request.send().await)
            }
            PartBody::Media { media, caption } => {
                let file = input_file(media);
                let method = method_for(media);
                /// Adds the caption and the reply to a media request and sends it.
                macro_rules! upload {
                    ($request:expr) => {{
                        let mut request = $request;
                        if let Some(caption) = caption.clone() {
                            request = request.caption(caption);
                        }
                        if let Some(reply) = reply {
                            request = request.reply_parameters(reply);
                        }
                        request.send().await
                    }};
                }
                let sent = match method {
                    "sendPhoto" => upload!(self.bot.send_photo(chat, file)),
                    "sendVoice" => upload!(self.bot.send_voice(chat, file)),
                    "sendAudio" => upload!(self.bot.send_audio(chat, file)),
                    "sendVideo" => upload!(self.bot.send_video(chat, file)),
                    "sendDocument" => upload!(self.bot.send_document(chat, file)),
                    // Stickers have no caption.
                    _ => {
                        let mut request = self.bot.send_sticker(chat, file);
                        if let Some(reply) = reply {
                            request = request.reply_parameters(reply);
                        }
                        request.send().await
                    }
                };
                (method, sent)
            }
            PartBody::Buttons { text, buttons, per_row } => {
                let mut request = if crate::BUTTONS.renders_natively(buttons) {
                    self.bot.send_message(chat, text.clone()).reply_markup(keyboard(buttons, *per_row)?)
                } else {
                    self.bot.send_message(chat, numbered_list(Some(text), buttons))
                };
                if let Some(reply) = reply {
                    request = request.reply_parameters(reply);
                }
                ("sendMessage", request.send().await)
            }
            PartBody::Feedback(ask) => {
                let prompt = ask.prompt.clone().unwrap_or_else(|| DEFAULT_FEEDBACK_PROMPT.to_owned());
                let per_row = if ask.scale == 10 { 5 } else { ask.scale };
                let markup = keyboard(&feedback_buttons(part.message_id, ask.scale), per_row)?;
                let mut request = self.bot.send_message(chat, prompt).reply_markup(markup);
                if let Some(reply) = reply {
                    request = request.reply_parameters(reply);
                }
                ("sendMessage", request.send().await)
            }
            PartBody::Template(_) => {
                return Err(SendError::failed(ErrorCode::ProviderRejected, "Telegram has no message templates"));
            }
        };
        let external_id = match sent {
            Ok(message) => Ok(message.id.0.to_string()),
            Err(error) => message_id_or_error(method, error),
        };
        external_id
            .map(|external_id| SendReceipt { external_id, status: Status::Delivered })
            .map_err(|error| self.redact(whose_wait(&part.chat_id, error)))
    }

    /// `sendChatAction` `typing`; Telegram bots have no read marker.
    pub(crate) async fn chat_action(&self, chat_id: &str, action: ChatAction) -> Result<(), SendError> {
        let method = "sendChatAction";
        match action {
            ChatAction::Typing => {
                let sent = self.bot.send_chat_action(recipient(chat_id), TgChatAction::Typing).send().await;
                acknowledged(method, sent).map_err(|error| self.redact(error))
            }
            ChatAction::Read => {
                Err(SendError::failed(ErrorCode::UnsupportedByChannel, "Telegram has no read marker for bots"))
            }
        }
    }

    /// `answerCallbackQuery` for a stored press, with the button's notice as `text`.
    pub(crate) async fn answer_press(&self, press: &Press, notice: Option<&str>) -> Result<(), SendError> {
        let mut request = self.bot.answer_callback_query(CallbackQueryId(press.id.clone()));
        if let Some(text) = notice {
            request = request.text(text.chars().take(chatgate_model::rich::NOTICE_MAX_CHARS).collect::<String>());
        }
        acknowledged("answerCallbackQuery", request.send().await).map_err(|error| self.redact(error))
    }

    /// Downloads an inbound file by its `file_id`: [`getFile`](https://core.telegram.org/bots/api#getfile)
    /// (through teloxide) gives its path, then `{api_base_url}/file/bot{token}/{file_path}` gives
    /// the bytes. The Bot API serves files of up to 20 MB this way. Reading stops once more than
    /// `limit` bytes arrive.
    ///
    /// The download itself uses the same HTTP client directly rather than teloxide's
    /// `Download::download_file_stream`, which yields the bytes only: the response's
    /// `Content-Type` (passed on by `GET /v1/media`) and its status would be lost.
    pub(crate) async fn fetch_media(&self, file_id: &str, limit: u64) -> Result<MediaDownload, SendError> {
        self.download(file_id, limit).await.map_err(|error| self.redact(error))
    }

    async fn download(&self, file_id: &str, limit: u64) -> Result<MediaDownload, SendError> {
        let method = "getFile";
        let path = match self.bot.get_file(FileId(file_id.to_owned())).send().await {
            Ok(file) => Some(file.path),
            Err(RequestError::InvalidJson { raw, .. }) => match answer_result(&raw) {
                Some(result) => result.get("file_path").and_then(Value::as_str).map(str::to_owned),
                None => return Err(unreadable(method, &raw)),
            },
            Err(error) => return Err(request_error(method, error)),
        };
        let path = path.filter(|p| !p.is_empty()).ok_or_else(|| {
            SendError::failed(ErrorCode::ProviderRejected, "telegram getFile: the file is not available for download")
        })?;
        let url = format!("{}/file/bot{}/{path}", self.api_base_url, self.bot.token());
        let what = "file download";
        let mut response = self.bot.client().get(url).send().await.map_err(|e| transport_error(what, e))?;
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
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(what, e))? {
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

    /// The last guard: whatever a message says, the token is not in it.
    fn redact(&self, mut error: SendError) -> SendError {
        let token = self.bot.token();
        if !token.is_empty() && error.message.contains(token) {
            error.message = error.message.replace(token, "[redacted]");
        }
        error
    }

    /// `reply_to` as `reply_parameters`; a reply_to that is no message id is dropped (and logged).
    fn reply_parameters(&self, part: &OutboundPart) -> Option<ReplyParameters> {
        let reply_to = part.reply_to.as_deref()?;
        match reply_to.parse::<i32>() {
            Ok(id) => Some(ReplyParameters::new(MessageId(id)).allow_sending_without_reply()),
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

/// An inline keyboard: `per_row` buttons a row (at most 8, Telegram's row width).
fn keyboard(buttons: &[Button], per_row: u8) -> Result<InlineKeyboardMarkup, SendError> {
    let per_row = usize::from(per_row).clamp(1, crate::BUTTONS.per_row_max);
    let mut keys = Vec::with_capacity(buttons.len());
    for b in buttons {
        let key = match (&b.payload, &b.url) {
            (_, Some(url)) => {
                let url = reqwest::Url::parse(url)
                    .map_err(|e| SendError::failed(ErrorCode::ProviderRejected, format!("button url: {e}")))?;
                InlineKeyboardButton::url(b.title.clone(), url)
            }
            (payload, None) => InlineKeyboardButton::callback(b.title.clone(), payload.clone().unwrap_or_default()),
        };
        keys.push(key);
    }
    Ok(InlineKeyboardMarkup::new(keys.chunks(per_row).map(<[_]>::to_vec)))
}

/// A call answered `true` (`sendChatAction`, `answerCallbackQuery`).
fn acknowledged<T>(method: &str, sent: Result<T, RequestError>) -> Result<(), SendError> {
    match sent {
        Ok(_) => Ok(()),
        Err(RequestError::InvalidJson { raw, .. }) if answer_result(&raw).is_some() => Ok(()),
        Err(error) => Err(request_error(method, error)),
    }
}

/// A numeric chat id (ids exceed 2^32 and are negative for groups), else an `@channelusername`.
fn recipient(chat_id: &str) -> Recipient {
    chat_id.parse::<i64>().map_or_else(|_| Recipient::ChannelUsername(chat_id.to_owned()), |id| ChatId(id).into())
}

/// The method for one attachment (its file field has the method's media name: `photo`, ...).
fn method_for(media: &Media) -> &'static str {
    match media.kind {
        AttachmentKind::Image => "sendPhoto",
        AttachmentKind::Audio if is_ogg(media.mime.as_deref()) => "sendVoice",
        AttachmentKind::Audio => "sendAudio",
        AttachmentKind::Video => "sendVideo",
        AttachmentKind::File => "sendDocument",
        AttachmentKind::Sticker => "sendSticker",
    }
}

/// `audio/ogg`, with or without parameters (`; codecs=opus`): what clients play as a voice note.
fn is_ogg(mime: Option<&str>) -> bool {
    mime.and_then(|m| m.split(';').next()).is_some_and(|m| m.trim().eq_ignore_ascii_case("audio/ogg"))
}

/// The file's bytes (shared, not copied) under its name, `file` when it has none.
fn input_file(media: &Media) -> InputFile {
    let name = if media.name.trim().is_empty() { "file".to_owned() } else { media.name.clone() };
    InputFile::memory(media.bytes.clone()).file_name(name)
}

/// A send that teloxide reports as failed. One case is a success: an `ok` answer whose message
/// teloxide's types cannot read (a field newer than they are); its `message_id` is enough.
fn message_id_or_error(method: &str, error: RequestError) -> Result<String, SendError> {
    let RequestError::InvalidJson { raw, .. } = &error else {
        return Err(request_error(method, error));
    };
    let Some(result) = answer_result(raw) else {
        return Err(unreadable(method, raw));
    };
    // Sent, but we cannot name it: failing (not retrying) avoids sending it twice.
    result.get("message_id").and_then(Value::as_i64).map(|id| id.to_string()).ok_or_else(|| {
        SendError::failed(ErrorCode::ProviderRejected, format!("telegram {method}: the answer names no message_id"))
    })
}

/// The `result` of an `{"ok": true, "result": …}` answer.
fn answer_result(raw: &str) -> Option<Value> {
    let mut answer: Value = serde_json::from_str(raw).ok()?;
    (answer.get("ok") == Some(&Value::Bool(true))).then(|| answer["result"].take())
}

/// An answer that is no Bot API answer (a proxy's error page, an empty body): retry.
fn unreadable(method: &str, raw: &str) -> SendError {
    let shown: String = raw.chars().take(100).collect();
    SendError::transient(format!("telegram {method}: unreadable answer: {shown:?}"))
}

/// Whom a 429's `retry_after` holds back. A private chat (positive id) is already paced at
/// 1 message/s by the per-chat limit, so a 429 there is the bot's flood limit: the whole bot
/// waits. In groups and channels (negative ids) it is that chat's 20 per minute: only it waits.
fn whose_wait(chat_id: &str, error: SendError) -> SendError {
    match error.kind {
        SendErrorKind::RetryAfter(after) if !chat_id.starts_with('-') => {
            SendError::account_retry_after(after, error.message)
        }
        _ => error,
    }
}

/// What a failed call means for retrying (README, "Status mapping").
fn request_error(method: &str, error: RequestError) -> SendError {
    match error {
        RequestError::Api(error) => api_error(method, &error),
        RequestError::RetryAfter(seconds) => SendError::retry_after(
            seconds.duration(),
            format!("telegram {method}: Too Many Requests: retry after {}", seconds.seconds()),
        ),
        RequestError::MigrateToChatId(to) => SendError::failed(
            ErrorCode::ProviderRejected,
            format!("telegram {method}: the group was upgraded to a supergroup; it is now chat {to}"),
        ),
        RequestError::Network(error) => match std::sync::Arc::try_unwrap(error) {
            Ok(error) => transport_error(method, error),
            // Shared elsewhere, so it cannot be stripped: say what it was without its text.
            Err(error) => SendError::transient(format!("telegram {method}: {}", network_failure(&error))),
        },
        RequestError::InvalidJson { raw, .. } => unreadable(method, &raw),
        RequestError::Io(error) => SendError::transient(format!("telegram {method}: {error}")),
    }
}

/// An error answer by its description. teloxide names the known ones ([`ApiError`]) and keeps the
/// others' text ([`ApiError::Unknown`]); the text begins with the HTTP reason phrase.
fn api_error(method: &str, error: &ApiError) -> SendError {
    let description = match error {
        ApiError::Unknown(text) => text.clone(),
        known => known.to_string(),
    };
    let message = format!("telegram {method}: {description}");
    // "Unauthorized: …" with a reason is how Telegram once worded what is now "Forbidden: …".
    let forbidden = description.starts_with("Forbidden") || description.starts_with("Unauthorized:");
    const REFUSALS: [&str; 4] = ["Bad Request", "Not Found", "Conflict", "Request Entity Too Large"];
    match error {
        _ if forbidden && UNSUBSCRIBED.iter().any(|p| description.contains(p)) => {
            SendError::failed(ErrorCode::CustomerUnsubscribed, message)
        }
        // Telegram answers an unknown or revoked token with 401 `Unauthorized` or 404 `Not Found`.
        ApiError::InvalidToken => SendError::failed(ErrorCode::ProviderUnauthorized, message),
        _ if forbidden || REFUSALS.iter().any(|p| description.starts_with(p)) => {
            SendError::failed(ErrorCode::ProviderRejected, message)
        }
        // 5xx (`Internal Server Error`, `Bad Gateway`), 429 without `retry_after`, and texts we
        // cannot place.
        _ => SendError::transient(message),
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

/// A network failure described by its kind and causes, never by its own text (which names the URL).
fn network_failure(error: &reqwest::Error) -> String {
    let mut message = String::from(if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "network error"
    });
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_adapter::SendErrorKind;
    use teloxide_core::types::Seconds;

    fn kind_of(error: RequestError) -> SendErrorKind {
        request_error("sendMessage", error).kind
    }

    fn unknown(text: &str) -> RequestError {
        RequestError::Api(ApiError::Unknown(text.to_owned()))
    }

    #[test]
    fn descriptions_map_to_retry_decisions() {
        let rejected = SendErrorKind::Failed(ErrorCode::ProviderRejected);
        assert_eq!(kind_of(unknown("Bad Request: message text is empty x")), rejected);
        assert_eq!(kind_of(RequestError::Api(ApiError::ChatNotFound)), rejected);
        assert_eq!(kind_of(unknown("Forbidden: bot is not a member of the channel chat")), rejected);
        assert_eq!(kind_of(unknown("Request Entity Too Large")), rejected);
        let unsubscribed = SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed);
        assert_eq!(kind_of(RequestError::Api(ApiError::BotBlocked)), unsubscribed);
        assert_eq!(kind_of(RequestError::Api(ApiError::CantInitiateConversation)), unsubscribed);
        assert_eq!(kind_of(RequestError::Api(ApiError::BotKickedFromChannel)), unsubscribed);
        assert_eq!(kind_of(unknown("Forbidden: bot can't initiate conversation with a user")), unsubscribed);
        // Not a refusal: a text that merely mentions blocking.
        assert_eq!(kind_of(unknown("Bad Request: bot was blocked by the user")), rejected);
        let unauthorized = SendErrorKind::Failed(ErrorCode::ProviderUnauthorized);
        assert_eq!(kind_of(RequestError::Api(ApiError::InvalidToken)), unauthorized);
        assert_eq!(kind_of(unknown("Internal Server Error")), SendErrorKind::Transient);
        assert_eq!(kind_of(unknown("Too Many Requests: retry after 5")), SendErrorKind::Transient);
        assert_eq!(
            kind_of(RequestError::RetryAfter(Seconds::from_seconds(7))),
            SendErrorKind::RetryAfter(Duration::from_secs(7))
        );
    }

    #[test]
    fn a_429_in_a_private_chat_holds_the_bot_and_in_a_group_only_the_chat() {
        let wait = || request_error("sendMessage", RequestError::RetryAfter(Seconds::from_seconds(5)));
        assert_eq!(whose_wait("777", wait()).kind, SendErrorKind::AccountRetryAfter(Duration::from_secs(5)));
        assert_eq!(whose_wait("-1001234567890", wait()).kind, SendErrorKind::RetryAfter(Duration::from_secs(5)));
        let other = SendError::transient("502");
        assert_eq!(whose_wait("777", other.clone()), other);
    }

    #[test]
    fn a_migrated_group_names_its_new_chat() {
        let err = request_error("sendMessage", RequestError::MigrateToChatId(ChatId(-1001234567890)));
        assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
        assert!(err.message.contains("-1001234567890"), "{}", err.message);
    }

    fn invalid_json(raw: &str) -> RequestError {
        let source = serde_json::from_str::<Value>("{").unwrap_err();
        RequestError::InvalidJson { source: std::sync::Arc::new(source), raw: raw.into() }
    }

    #[test]
    fn an_ok_answer_teloxide_cannot_read_still_names_the_message() {
        assert_eq!(
            message_id_or_error("sendMessage", invalid_json(r#"{"ok":true,"result":{"message_id":7,"date":1}}"#)),
            Ok("7".into())
        );
        let sent_unnamed = message_id_or_error("sendMessage", invalid_json(r#"{"ok":true,"result":true}"#));
        assert_eq!(sent_unnamed.unwrap_err().kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
        for raw in ["null", "<html>502</html>", r#"{"ok":false,"error_code":429}"#] {
            let err = message_id_or_error("sendMessage", invalid_json(raw)).unwrap_err();
            assert_eq!(err.kind, SendErrorKind::Transient, "{raw}");
            assert!(err.message.contains("unreadable answer"), "{}", err.message);
        }
    }

    #[test]
    fn chat_ids_are_numbers_unless_they_are_usernames() {
        assert_eq!(recipient("-1001234567890"), Recipient::Id(ChatId(-1001234567890)));
        assert_eq!(recipient("@channel"), Recipient::ChannelUsername("@channel".into()));
        assert!(is_ogg(Some("audio/ogg; codecs=opus")) && is_ogg(Some("AUDIO/OGG")));
        assert!(!is_ogg(Some("audio/mpeg")) && !is_ogg(None));
    }
}
