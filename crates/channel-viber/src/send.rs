//! Outbound parts → `POST {api_base_url}/send_message`
//! (<https://developers.viber.com/docs/api/rest-bot-api/#send-message>).
//!
//! - Every message carries `sender {name, avatar}` from the account settings and
//!   `tracking_data` = our message id (Viber echoes it in the user's next message; see `raw` on
//!   inbound messages). `min_api_version` is left at Viber's default (1): every type sent here
//!   exists since API version 1.
//! - Text → `text`. Image → `picture` (caption in `text`, which Viber requires, possibly empty).
//!   Video → `video` with `size`. File → `file` with `size` and `file_name`. Audio has no Viber
//!   message type; it is sent as a `file` the user can open and play. Sticker → `sticker`, whose
//!   `sticker_id` is the sticker [`Media::name`] (the file itself is not used).
//! - **Viber takes media by URL only; there is no upload.** `media` is [`Media::source_url`], the
//!   core's URL, which the gateway has already fetched and checked; `size` is the length of what it
//!   fetched. Viber also wants the URL's last path segment to carry the file extension
//!   (`.jpg`/`.png`/`.gif` for pictures, `.mp4` for video), so the core must serve such URLs.
//! - **Replies:** Viber has no quote. For `reply_to`, the text (or picture caption) is prefixed with
//!   `> <snippet>\n`, where the snippet is the first line of the quoted customer message (at most
//!   [`QUOTE_SNIPPET_MAX_CHARS`] characters, `…` when cut; `[picture]`, `[sticker]`, ... for messages
//!   without text). Only the message id travels with a send, so the snippet comes from the adapter's
//!   memory of recent inbound messages ([`QuoteCache`], not persisted): when the quoted message is
//!   not remembered (gateway restarted, another instance received it, too old), the text goes out
//!   without a quote line, since a bare Viber `message_token` means nothing to the customer. Video,
//!   file and sticker messages carry no text, so they cannot carry the quote either.
//! - Text with buttons: `text` with a [`keyboard`](https://developers.viber.com/docs/tools/keyboards/)
//!   (6 columns wide: `6 / buttons_per_row` columns a button; `reply` buttons with `ActionBody`
//!   `btn:{payload}` and `Silent`, `open-url` buttons with the URL). A press comes back as a text
//!   message `btn:{payload}`, read as a `postback`. A feedback request is the prompt with one
//!   `reply` button per score, `ActionBody` `fb:{id}:{scale}:{score}`.
//! - Viber has no typing or read marker for bots: `chat_action` answers `unsupported_by_channel`.
//! - The request JSON must stay within [`MESSAGE_JSON_MAX_BYTES`]; a bigger one is refused before
//!   sending (`provider_rejected`).
//!
//! Errors: Viber answers HTTP 200 with a `status` code (<https://developers.viber.com/docs/api/rest-bot-api/#error-codes>),
//! mapped by [`classify`]. HTTP 429 and code 12 are the bot's limit: the whole account waits
//! `Retry-After` (or [`TOO_MANY_REQUESTS_WAIT`]);
//! HTTP 5xx, network errors and an unreadable answer → transient; HTTP 401/403 → unauthorized;
//! other HTTP errors → rejected.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chatgate_adapter::{
    BuildError, DEFAULT_FEEDBACK_PROMPT, Inbound, Media, OutboundPart, PartBody, SendError, SendReceipt, transport,
};
use chatgate_model::ErrorCode;
use chatgate_model::rich::{feedback_buttons, numbered_list};
use chatgate_model::{AttachmentKind, Button, EventKind, Message, Status};

use crate::config::Config;
use crate::wire::{ApiResponse, Keyboard, KeyboardButton, REPLY_PREFIX, SendBody, SendMessage, Sender};

/// The Bot API client of one Viber account, with its memory of recent inbound messages for the
/// quote line of replies.
pub(crate) struct Client {
    http: reqwest::Client,
    config: Config,
    quotes: Mutex<QuoteCache>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `config` redacts the token itself; the cache holds customer text and stays out of logs.
        f.debug_struct("Client").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Client {
    /// A client with its own connection pool and an empty quote memory.
    pub(crate) fn new(config: &Config) -> Result<Client, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout_seconds.map_or(crate::config::DEFAULT_REQUEST_TIMEOUT, Duration::from_secs))
            .build()
            .map_err(|e| transport::client_error(crate::CHANNEL, e))?;
        Ok(Client { http, config: config.clone(), quotes: Mutex::new(QuoteCache::new(QUOTE_CACHE_CAPACITY)) })
    }

    /// Sends one part, with a quote line when the replied-to message is remembered.
    pub(crate) async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let quote = part.reply_to.as_deref().and_then(|id| self.quotes().get(id).map(str::to_owned));
        if part.reply_to.is_some() && quote.is_none() {
            tracing::debug!("viber: replied-to message not remembered; sending without a quote line");
        }
        let body = request_body(&self.config, part, quote.as_deref())?;
        post(&self.http, &self.config, body).await
    }

    /// Remembers the customer messages of a parsed webhook, for later quote lines.
    pub(crate) fn remember(&self, inbound: &Inbound) {
        let mut quotes = self.quotes();
        for e in &inbound.events {
            if e.event.kind == EventKind::Message
                && let Some(message) = &e.event.message
            {
                quotes.remember(message);
            }
        }
    }

    fn quotes(&self) -> MutexGuard<'_, QuoteCache> {
        // The cache holds no invariant a panicking writer could break.
        self.quotes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// "The maximum size of a message is 30KB" (Viber, message data model; the FAQ says the same of
/// every API request). Read as KiB, like every size in chatgate.
pub const MESSAGE_JSON_MAX_BYTES: usize = 30 * 1024;

/// `picture.text`: "Max 768 characters" (Viber, message data model).
pub const PICTURE_TEXT_MAX_CHARS: usize = 768;

/// `file.file_name`: at most 256 characters including the extension (Viber, message data model).
pub const FILE_NAME_MAX_CHARS: usize = 256;

/// Extensions Viber refuses in `file` messages (Viber, message data model, "Forbidden File Formats").
pub const FORBIDDEN_FILE_EXTENSIONS: &[&str] = &[
    "action", "apk", "app", "bat", "bin", "cmd", "com", "command", "cpl", "csh", "exe", "gadget", "inf1", "ins", "inx",
    "ipa", "isu", "job", "jse", "ksh", "lnk", "msc", "msi", "msp", "mst", "osx", "out", "paf", "pif", "ps1", "reg",
    "rgs", "run", "sct", "shb", "shs", "u3p", "vb", "vbe", "vbs", "vbscript", "workflow", "ws", "wsf",
];

/// How long to wait after Viber's status 12 "Too Many Requests" (or HTTP 429 without
/// `Retry-After`). Viber gives no wait; status 12 also marks its "100 messages to a user within an
/// hour without a reply" rule, so the wait is a minute rather than a second.
pub const TOO_MANY_REQUESTS_WAIT: Duration = Duration::from_secs(60);

/// The longest quoted snippet in a reply's quote line, in characters (before `…`).
pub const QUOTE_SNIPPET_MAX_CHARS: usize = 60;

/// How many inbound messages per account the quote memory keeps (oldest forgotten first).
pub const QUOTE_CACHE_CAPACITY: usize = 10_000;

/// The JSON body of `send_message` for one part. `quote` is the snippet of the message replied to.
fn request_body(config: &Config, part: &OutboundPart, quote: Option<&str>) -> Result<Vec<u8>, SendError> {
    let quoted = |text: &str| match quote {
        Some(q) => format!("> {q}\n{text}"),
        None => text.to_owned(),
    };
    let mut keyboard = None;
    let body = match &part.body {
        PartBody::Text(text) => SendBody::Text { text: quoted(text) },
        PartBody::Buttons { text, buttons, per_row } => {
            if crate::BUTTONS.renders_natively(buttons) {
                keyboard = Some(keyboard_of(buttons, *per_row));
                SendBody::Text { text: quoted(text) }
            } else {
                SendBody::Text { text: quoted(&numbered_list(Some(text), buttons)) }
            }
        }
        PartBody::Feedback(ask) => {
            let per_row = if ask.scale == 10 { 5 } else { ask.scale };
            keyboard = Some(keyboard_of(&feedback_buttons(part.message_id, ask.scale), per_row));
            SendBody::Text { text: quoted(ask.prompt.as_deref().unwrap_or(DEFAULT_FEEDBACK_PROMPT)) }
        }
        PartBody::Media { media, caption } => media_body(media, caption.as_deref(), quote.is_some(), &quoted)?,
        PartBody::Template(_) => {
            return Err(SendError::failed(ErrorCode::ProviderRejected, "viber: templates are not supported"));
        }
    };
    let message = SendMessage {
        keyboard,
        receiver: &part.chat_id,
        sender: Sender { name: &config.sender_name, avatar: config.sender_avatar.as_deref() },
        tracking_data: part.message_id.to_string(),
        body,
    };
    let json = serde_json::to_vec(&message).map_err(|e| {
        SendError::failed(ErrorCode::ProviderRejected, format!("viber: cannot encode the message: {e}"))
    })?;
    if json.len() > MESSAGE_JSON_MAX_BYTES {
        return Err(SendError::failed(
            ErrorCode::ProviderRejected,
            format!("viber: the request is {} bytes; Viber takes at most {MESSAGE_JSON_MAX_BYTES}", json.len()),
        ));
    }
    Ok(json)
}

/// A keyboard of `per_row` buttons a row (the 6-column grid divided evenly; 5 a row → 1 column each).
fn keyboard_of(buttons: &[Button], per_row: u8) -> Keyboard {
    let per_row = per_row.clamp(1, crate::BUTTONS.per_row_max as u8);
    let columns = (6 / per_row).max(1);
    let buttons = buttons
        .iter()
        .map(|b| {
            let (action_type, action_body, silent) = match (&b.payload, &b.url) {
                (_, Some(url)) => ("open-url", url.clone(), false),
                (Some(p), None) if chatgate_model::rich::parse_feedback_payload(p).is_some() => {
                    ("reply", p.clone(), true)
                }
                (p, None) => ("reply", format!("{REPLY_PREFIX}{}", p.as_deref().unwrap_or_default()), true),
            };
            KeyboardButton { columns, rows: 1, action_type, action_body, text: b.title.clone(), silent }
        })
        .collect();
    Keyboard { kind: "keyboard", default_height: false, buttons }
}

fn media_body<'a>(
    media: &'a Media,
    caption: Option<&str>,
    has_quote: bool,
    quoted: &dyn Fn(&str) -> String,
) -> Result<SendBody<'a>, SendError> {
    let caption = caption.filter(|c| !c.is_empty());
    let size = media.bytes.len() as u64;
    let url = media.source_url.as_str();
    if media.kind != AttachmentKind::Image && caption.is_some() {
        return Err(SendError::failed(
            ErrorCode::ProviderRejected,
            format!("viber: {} messages carry no caption", media.kind.as_str()),
        ));
    }
    Ok(match media.kind {
        AttachmentKind::Image => {
            let text = match (caption, has_quote) {
                (None, false) => String::new(),
                (caption, _) => quoted(caption.unwrap_or("")).trim_end().to_owned(),
            };
            let chars = text.chars().count();
            if chars > PICTURE_TEXT_MAX_CHARS {
                return Err(SendError::failed(
                    ErrorCode::ProviderRejected,
                    format!("viber: a picture caption is {chars} characters; Viber takes {PICTURE_TEXT_MAX_CHARS}"),
                ));
            }
            SendBody::Picture { text, media: url }
        }
        AttachmentKind::Video => SendBody::Video { media: url, size },
        AttachmentKind::File | AttachmentKind::Audio => {
            SendBody::File { media: url, size, file_name: file_name(media)? }
        }
        AttachmentKind::Sticker => {
            let id = media.name.trim();
            if id.is_empty() {
                return Err(SendError::failed(
                    ErrorCode::ProviderRejected,
                    "viber: a sticker needs its sticker_id as the name",
                ));
            }
            SendBody::Sticker { sticker_id: id }
        }
    })
}

/// The file name Viber shows: the media's name, else the URL's last path segment.
fn file_name(media: &Media) -> Result<String, SendError> {
    let from_url = || {
        let path = media.source_url.split(['?', '#']).next().unwrap_or("");
        path.rsplit('/').next().unwrap_or("").to_owned()
    };
    let name = Some(media.name.trim().to_owned()).filter(|n| !n.is_empty()).unwrap_or_else(from_url);
    if name.is_empty() {
        return Err(SendError::failed(ErrorCode::ProviderRejected, "viber: a file needs a name with an extension"));
    }
    if name.chars().count() > FILE_NAME_MAX_CHARS {
        return Err(SendError::failed(
            ErrorCode::ProviderRejected,
            format!("viber: file names are at most {FILE_NAME_MAX_CHARS} characters"),
        ));
    }
    if let Some((_, ext)) = name.rsplit_once('.') {
        let ext = ext.to_ascii_lowercase();
        if FORBIDDEN_FILE_EXTENSIONS.contains(&ext.as_str()) {
            return Err(SendError::failed(
                ErrorCode::AttachmentKindUnsupported,
                format!("viber: .{ext} files are not allowed"),
            ));
        }
    }
    Ok(name)
}

/// Posts one `send_message` body and reads Viber's answer.
async fn post(client: &reqwest::Client, config: &Config, body: Vec<u8>) -> Result<SendReceipt, SendError> {
    let response = client
        .post(format!("{}/send_message", config.api_base_url))
        .header("X-Viber-Auth-Token", config.auth_token.expose())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| transport::send_error("viber", e))?;
    let http_status = response.status();
    if http_status == http::StatusCode::TOO_MANY_REQUESTS {
        let wait = transport::retry_after(response.headers()).unwrap_or(TOO_MANY_REQUESTS_WAIT);
        return Err(SendError::account_retry_after(wait, "viber: HTTP 429"));
    }
    if http_status.is_server_error() {
        return Err(SendError::transient(format!("viber: HTTP {http_status}")));
    }
    if matches!(http_status, http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN) {
        return Err(SendError::failed(ErrorCode::ProviderUnauthorized, format!("viber: HTTP {http_status}")));
    }
    if !http_status.is_success() {
        return Err(SendError::failed(ErrorCode::ProviderRejected, format!("viber: HTTP {http_status}")));
    }
    let bytes = response.bytes().await.map_err(|e| transport::send_error("viber", e))?;
    let answer: ApiResponse =
        serde_json::from_slice(&bytes).map_err(|e| SendError::transient(format!("viber: unreadable answer: {e}")))?;
    match (answer.status, answer.message_token) {
        (0, Some(token)) => Ok(SendReceipt { external_id: token.0, status: Status::Sent }),
        (0, None) => Err(SendError::transient("viber: status 0 without a message_token")),
        (code, _) => Err(classify(code, answer.status_message.as_deref().unwrap_or(""))),
    }
}

/// Viber's `status` codes (other than 0 = ok) → what to do.
///
/// | code | Viber name | result |
/// |---|---|---|
/// | 5, 6 | receiverNotRegistered, receiverNotSubscribed | `customer_unsubscribed` |
/// | 12 | tooManyRequests (the bot's limit) | the account retries after [`TOO_MANY_REQUESTS_WAIT`] |
/// | 2, 7, 8, 9, 15 | invalidAuthToken, publicAccountBlocked / NotFound / Suspended / NotAuthorized | `provider_unauthorized` |
/// | any other (1, 3, 4, 10, 11 receiverNoSuitableDevice, 13, 14, 16–24, ...) | | `provider_rejected` |
pub(crate) fn classify(code: i64, status_message: &str) -> SendError {
    let message = format!("viber: status {code} {status_message}").trim_end().to_owned();
    match code {
        5 | 6 => SendError::failed(ErrorCode::CustomerUnsubscribed, message),
        12 => SendError::account_retry_after(TOO_MANY_REQUESTS_WAIT, message),
        2 | 7 | 8 | 9 | 15 => SendError::failed(ErrorCode::ProviderUnauthorized, message),
        _ => SendError::failed(ErrorCode::ProviderRejected, message),
    }
}

/// A bounded memory of recent inbound messages (Viber `message_token` → short snippet), so a
/// reply can quote what it answers.
#[derive(Debug)]
pub(crate) struct QuoteCache {
    capacity: usize,
    order: VecDeque<String>,
    snippets: HashMap<String, String>,
}

impl QuoteCache {
    pub(crate) fn new(capacity: usize) -> QuoteCache {
        QuoteCache { capacity: capacity.max(1), order: VecDeque::new(), snippets: HashMap::new() }
    }

    /// Remembers the snippet of an inbound message (a redelivery changes nothing).
    pub(crate) fn remember(&mut self, message: &Message) {
        if self.snippets.contains_key(&message.external_id) {
            return;
        }
        let Some(snippet) = snippet(message) else {
            return;
        };
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.snippets.remove(&oldest);
        }
        self.order.push_back(message.external_id.clone());
        self.snippets.insert(message.external_id.clone(), snippet);
    }

    pub(crate) fn get(&self, external_id: &str) -> Option<&str> {
        self.snippets.get(external_id).map(String::as_str)
    }
}

/// The quote snippet of a message: its first non-empty text line, shortened, or a label.
pub(crate) fn snippet(message: &Message) -> Option<String> {
    let line = message.text.as_deref().and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty()));
    if let Some(line) = line {
        let mut chars = line.chars();
        let head: String = chars.by_ref().take(QUOTE_SNIPPET_MAX_CHARS).collect();
        return Some(if chars.next().is_some() { format!("{head}…") } else { head });
    }
    let label = match message.attachments.first().map(|a| a.kind) {
        Some(AttachmentKind::Image) => "[picture]",
        Some(AttachmentKind::Video) => "[video]",
        Some(AttachmentKind::Audio) => "[audio]",
        Some(AttachmentKind::File) => "[file]",
        Some(AttachmentKind::Sticker) => "[sticker]",
        None if message.location.is_some() => "[location]",
        None if message.contact.is_some() => "[contact]",
        None => return None,
    };
    Some(label.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_model::Attachment;

    fn text(id: &str, t: &str) -> Message {
        Message { external_id: id.into(), text: Some(t.into()), ..Message::default() }
    }

    #[test]
    fn snippets_are_first_lines_shortened() {
        assert_eq!(snippet(&text("1", "\n  Where is my order?\nsecond line")).as_deref(), Some("Where is my order?"));
        let long = "й".repeat(QUOTE_SNIPPET_MAX_CHARS + 5);
        assert_eq!(snippet(&text("1", &long)), Some(format!("{}…", "й".repeat(QUOTE_SNIPPET_MAX_CHARS))));
        assert_eq!(
            snippet(&text("1", &"a".repeat(QUOTE_SNIPPET_MAX_CHARS))).unwrap().chars().count(),
            QUOTE_SNIPPET_MAX_CHARS
        );
        let sticker = Message {
            external_id: "2".into(),
            attachments: vec![Attachment {
                kind: AttachmentKind::Sticker,
                mime: None,
                size: None,
                name: None,
                media: None,
                url: None,
                duration: None,
                variant: None,
            }],
            ..Message::default()
        };
        assert_eq!(snippet(&sticker).as_deref(), Some("[sticker]"));
        assert_eq!(snippet(&Message::default()), None);
    }

    #[test]
    fn cache_forgets_the_oldest_first() {
        let mut cache = QuoteCache::new(2);
        cache.remember(&text("1", "one"));
        cache.remember(&text("2", "two"));
        cache.remember(&text("2", "two again"));
        assert_eq!(cache.get("2"), Some("two"));
        cache.remember(&text("3", "three"));
        assert_eq!(cache.get("1"), None);
        assert_eq!(cache.get("2"), Some("two"));
        assert_eq!(cache.get("3"), Some("three"));
    }

    #[test]
    fn classify_maps_viber_status_codes() {
        let kind = |code| classify(code, "x").kind;
        use chatgate_adapter::SendErrorKind::*;
        assert_eq!(kind(6), Failed(ErrorCode::CustomerUnsubscribed));
        assert_eq!(kind(5), Failed(ErrorCode::CustomerUnsubscribed));
        assert_eq!(kind(12), AccountRetryAfter(TOO_MANY_REQUESTS_WAIT));
        assert_eq!(kind(2), Failed(ErrorCode::ProviderUnauthorized));
        assert_eq!(kind(9), Failed(ErrorCode::ProviderUnauthorized));
        assert_eq!(kind(11), Failed(ErrorCode::ProviderRejected));
        assert_eq!(kind(3), Failed(ErrorCode::ProviderRejected));
        assert_eq!(kind(999), Failed(ErrorCode::ProviderRejected));
        assert_eq!(classify(6, "receiverNotSubscribed").message, "viber: status 6 receiverNotSubscribed");
    }
}
