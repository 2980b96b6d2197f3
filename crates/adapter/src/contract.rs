//! The [`Adapter`] trait and the types that cross it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatgate_model::{ButtonRules, Channel, ChatAction, ErrorCode, Event, Limits};

use crate::{MediaDownload, OutboundPart, SendError, SendReceipt, WebhookError};

/// The usual webhook body cap; a channel's [`ChannelFacts::max_body_bytes`] says its own.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A webhook request as received: the raw body bytes are what providers sign.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub method: &'a http::Method,
    pub headers: &'a http::HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One normalised event plus the key that makes a redelivery of it recognisable.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    /// Unique per account for one provider event (e.g. Telegram `update:<update_id>`).
    /// Events with the same key are stored once. `None`: never deduplicated.
    pub dedup_key: Option<String>,
    pub event: Event,
    /// The provider's id of the account the item belongs to, where one webhook URL receives the
    /// items of several accounts (Meta sends every Page, Instagram account and WhatsApp number
    /// of an app to one callback URL): the Page id, Instagram account id or `phone_number_id`.
    /// The server hands an item whose owner is not [`Adapter::owner_id`] to the account that
    /// owns it. `None`: the item belongs to the account that received it.
    pub owner: Option<String>,
    /// A button press the provider wants answered ([`Adapter::answer_press`]) once it is stored.
    pub press: Option<Press>,
}

/// A button press to answer, as the provider names it (never part of the envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    /// Telegram: the callback query's `id`; VK: the `message_event`'s `event_id`.
    pub id: String,
    /// Who pressed (VK `user_id`).
    pub user_id: String,
    /// Where (VK `peer_id`; Telegram: the chat).
    pub peer_id: String,
}

impl InboundEvent {
    /// An event of the receiving account.
    pub fn new(dedup_key: Option<String>, event: Event) -> InboundEvent {
        InboundEvent { dedup_key, event, owner: None, press: None }
    }

    /// The same event, with a press the provider wants answered.
    pub fn pressed(self, press: Press) -> InboundEvent {
        InboundEvent { press: Some(press), ..self }
    }

    /// The same event, owned by the account the provider calls `owner`.
    pub fn owned_by(self, owner: Option<impl Into<String>>) -> InboundEvent {
        InboundEvent { owner: owner.map(Into::into), ..self }
    }
}

/// What the provider should get back once the events are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reply {
    /// `200` with an empty body.
    #[default]
    Empty,
    /// `200` with this plain-text body (VK's `ok`, a Meta handshake challenge, ...).
    Text(String),
}

/// The result of parsing one authentic webhook.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inbound {
    pub events: Vec<InboundEvent>,
    pub reply: Reply,
}

/// A rate as a count per period, e.g. 30 per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub const fn per_second(count: u32) -> Rate {
        Rate { count, per: Duration::from_secs(1) }
    }
    pub const fn per_minute(count: u32) -> Rate {
        Rate { count, per: Duration::from_secs(60) }
    }
}

/// How fast the provider lets one account send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    /// Across all chats of the account.
    pub per_account: Option<Rate>,
    /// Within one chat.
    pub per_chat: Option<Rate>,
}

/// A channel's constant facts, as one value per channel (or per limit profile): what it takes, how
/// fast, what it can do, how large a webhook may be. Each channel crate declares them as a `const`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelFacts {
    /// Default outbound limits (the gateway applies `channels.toml` overrides on top).
    pub limits: Limits,
    /// How fast the provider lets one account send.
    pub rate_limits: RateLimits,
    pub capabilities: Capabilities,
    /// Webhook bodies larger than this are refused before they are buffered whole.
    pub max_body_bytes: usize,
}

/// What a channel can do, as data the server and the core can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `reply_to` is sent as a native quote; otherwise the channel documents its fallback.
    pub native_reply: bool,
    /// Outbound templates are supported.
    pub templates: bool,
    /// Free-form messages are allowed only this long after the customer's last message (WhatsApp: 24 h).
    pub messaging_window: Option<Duration>,
    /// The channel's own buttons (`None`: buttons always go as a numbered text list, see
    /// [`chatgate_model::rich::numbered_list`], with [`NUMBERED_ONLY`]'s limits).
    pub buttons: Option<ButtonRules>,
    /// A feedback request is shown natively (buttons, list, keyboard or the widget's stars).
    pub feedback: bool,
    /// [`Adapter::chat_action`] shows "typing".
    pub typing: bool,
    /// [`Adapter::chat_action`] marks the customer's messages read.
    pub read: bool,
    /// Button presses are answered once stored ([`Adapter::answer_press`]): no spinner stays.
    pub press_answers: bool,
}

/// The limits of buttons on a channel without its own (every set goes as a numbered list).
pub const NUMBERED_ONLY: ButtonRules = ButtonRules {
    native_max: 0,
    title_max_chars: 64,
    payload_max_bytes: 1000,
    url_buttons: false,
    per_row_max: 1,
    payload_as_json: false,
    text_max_chars: chatgate_model::limits::MESSAGE_TEXT_MAX_CHARS,
};

impl Capabilities {
    /// Nothing beyond plain messages (a base for `..` in `const` items and tests).
    pub const NONE: Capabilities = Capabilities {
        native_reply: false,
        templates: false,
        messaging_window: None,
        buttons: None,
        feedback: false,
        typing: false,
        read: false,
        press_answers: false,
    };

    /// The button rules in effect: the channel's own, or [`NUMBERED_ONLY`].
    pub fn button_rules(&self) -> ButtonRules {
        self.buttons.unwrap_or(NUMBERED_ONLY)
    }

    /// Whether [`Adapter::chat_action`] supports `action`.
    pub fn supports(&self, action: ChatAction) -> bool {
        match action {
            ChatAction::Typing => self.typing,
            ChatAction::Read => self.read,
        }
    }
}

/// One account of one channel: verifies and parses its webhooks, sends its messages.
///
/// The server calls, for each webhook: [`Adapter::handshake`] for `GET`, else
/// [`Adapter::verify`] and only if that passes [`Adapter::parse`]. Parsing never sees an
/// unauthenticated body.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// The channel this account belongs to; always the [`ChannelFactory::channel`] of the factory
    /// that built it (the gateway's registry test checks this for every channel).
    fn channel(&self) -> Channel;

    /// The account id from `channels.toml`.
    fn account(&self) -> &str;

    /// The channel's limits, rates, capabilities and body cap.
    fn facts(&self) -> &ChannelFacts;

    /// The provider's id of this account as webhook items name their owner
    /// ([`InboundEvent::owner`]): the Page id, Instagram account id or WhatsApp `phone_number_id`.
    /// `None` for channels whose webhook URL only ever carries one account's items.
    fn owner_id(&self) -> Option<&str> {
        None
    }

    /// Whether [`Adapter::fetch_media`] resolves the `media` references this channel puts on
    /// attachments. A channel that cannot gives every attachment a `url` instead.
    fn resolves_media(&self) -> bool {
        false
    }

    /// Answers a `GET` subscription handshake (Meta's `hub.challenge`). Channels without one refuse.
    fn handshake(&self, _request: &WebhookRequest<'_>) -> Result<Reply, WebhookError> {
        Err(WebhookError::MethodNotAllowed)
    }

    /// Authenticates a webhook on its raw bytes, in constant time.
    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError>;

    /// Normalises an authenticated webhook. Kinds the channel does not model become
    /// `unsupported` events carrying the raw object; only unreadable bodies are errors.
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError>;

    /// Re-signs a recorded webhook with this account's secret (for `chatgate replay` and tests):
    /// sets the signature header, or rewrites the secret inside the body where the provider puts it there.
    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8>;

    /// Sends one part of an outbound message. Errors say whether and when to retry.
    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError>;

    /// Downloads the file behind an inbound attachment's `media` reference — the part after
    /// `<channel>:<account>:` — at most `limit` bytes. Channels whose attachments carry a plain
    /// `url` and no `media` need not implement it.
    async fn fetch_media(&self, reference: &str, limit: u64) -> Result<MediaDownload, SendError> {
        let _ = (reference, limit);
        Err(SendError::failed(ErrorCode::MediaUnavailable, "this channel cannot resolve media references"))
    }

    /// Shows a marker in a chat: "typing", or the customer's messages as read (up to `message_id`,
    /// the provider's id of the customer's message, where the channel needs one). Sent at once,
    /// never queued behind messages. Channels without the marker answer
    /// [`ErrorCode::UnsupportedByChannel`] (the server checks [`Capabilities::supports`] first).
    async fn chat_action(&self, chat_id: &str, action: ChatAction, message_id: Option<&str>) -> Result<(), SendError> {
        let _ = (chat_id, message_id);
        Err(SendError::failed(
            ErrorCode::UnsupportedByChannel,
            format!("{} has no {} marker", self.channel(), action.as_str()),
        ))
    }

    /// Answers a button press after it is stored (Telegram `answerCallbackQuery`, VK
    /// `messages.sendMessageEventAnswer`), with an optional short notice for the customer.
    /// Channels whose presses need no answer do nothing.
    async fn answer_press(&self, press: &Press, notice: Option<&str>) -> Result<(), SendError> {
        let _ = (press, notice);
        Ok(())
    }

    /// The visitor side of a channel whose provider is the gateway itself (the web widget); see
    /// [`crate::visitor`]. Messenger channels have none.
    fn visitors(&self) -> Option<&dyn crate::Visitors> {
        None
    }

    /// Registering this account's webhook URL with its provider (`chatgate webhooks`); see
    /// [`crate::webhooks`]. Every channel crate offers one (in its `webhooks.rs`); `None` only
    /// for adapters built for tests.
    fn webhooks(&self) -> Option<&dyn crate::WebhookAdmin> {
        None
    }
}

/// Builds adapters of one channel kind from their `channels.toml` tables.
pub trait ChannelFactory: Send + Sync {
    /// The channel it builds: the `kind` value in `channels.toml`, the URL segment and the
    /// envelope's `channel`, e.g. `telegram`.
    fn channel(&self) -> Channel;

    /// Builds one account. `settings` is the account's table as JSON, with `${ENV}` references
    /// resolved and the gateway's own keys (`kind`, `limits`, ...) removed. Unknown keys are errors.
    fn build(&self, account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError>;
}

/// The [`ChannelFactory`] every channel crate registers: its channel's name and the function that
/// builds one account from its settings.
#[derive(Debug, Clone, Copy)]
pub struct Factory {
    channel: Channel,
    build: BuildFn,
}

/// Builds one account from its name and settings (see [`ChannelFactory::build`]).
pub type BuildFn = fn(&str, serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError>;

impl Factory {
    pub const fn new(channel: Channel, build: BuildFn) -> Factory {
        Factory { channel, build }
    }
}

impl ChannelFactory for Factory {
    fn channel(&self) -> Channel {
        self.channel
    }

    fn build(&self, account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError> {
        (self.build)(account, settings)
    }
}

/// An account's configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl BuildError {
    pub fn new(message: impl Into<String>) -> BuildError {
        BuildError(message.into())
    }
}

impl From<serde_json::Error> for BuildError {
    fn from(e: serde_json::Error) -> Self {
        BuildError(e.to_string())
    }
}
