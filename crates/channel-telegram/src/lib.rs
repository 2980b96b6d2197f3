//! The Telegram channel: a bot of the [Telegram Bot API](https://core.telegram.org/bots/api).
//!
//! - Inbound: Telegram `POST`s one [Update](https://core.telegram.org/bots/api#update) per request
//!   to `/webhooks/telegram/{account}` (registered with
//!   [`setWebhook`](https://core.telegram.org/bots/api#setwebhook)). It is authenticated by the
//!   `X-Telegram-Bot-Api-Secret-Token` header (`verify.rs`), then normalised (`parse.rs`).
//! - Outbound: one Bot API call per part (`sendMessage`, `sendPhoto`, ...; see `send.rs`).
//!   Telegram has no delivery or read receipts: a successful call is reported as `delivered`.
//!
//! Files:
//! - `config.rs`: [`Config`], the account's settings, and every check of them.
//! - `verify.rs`: the secret-header check, in constant time.
//! - `parse.rs`: an update → one event, read with teloxide-core's `Update` (four older shapes
//!   from real updates are filled in first; what it cannot read or we do not model →
//!   `unsupported` with the raw update).
//! - `webhooks.rs`: `setWebhook` / `getWebhookInfo` / `deleteWebhook` (`chatgate webhooks`).
//! - `send.rs`: `Client`, the Bot API calls through teloxide-core's `Bot`, and what their
//!   errors mean for retrying; `getFile` and the file download.
//!
//! There is no `wire.rs`: teloxide-core's types are the wire types, both for updates and for
//! the API calls and their answers.
//!
//! What chatgate makes of every inbound kind the provider documents, and which stay
//! `unsupported` and why: `COVERAGE.md` in this crate.

mod config;
mod parse;
mod send;
mod verify;
mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use chatgate_adapter::{
    Adapter, BuildError, Capabilities, ChannelFacts, DEFAULT_MAX_BODY_BYTES, Factory, Inbound, MediaDownload,
    OutboundPart, Press, Rate, RateLimits, SendError, SendReceipt, WebhookError, WebhookRequest,
};
use chatgate_model::{ButtonRules, Channel, ChatAction, Limits, rich::BUTTONS_MAX};
use http::HeaderValue;

pub use config::Config;
pub use webhooks::ALLOWED_UPDATES;

/// Outbound limits: photos 10 MB, other uploads 50 MB ("Sending files", Bot API; stickers share
/// the photo limit). Text keeps the product cap of 2000 characters; Telegram's own limit is
/// 4096 characters after entity parsing (`sendMessage`), captions 1024.
pub const LIMITS: Limits = Limits::mb(Some(10), Some(50), Some(50), Some(50));

/// Bot FAQ, "My bot is hitting limits" (<https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>):
/// about 30 messages per second in all, and no more than one per second in one chat. In a
/// group the bot may send no more than 20 messages per minute; one limit per chat cannot say
/// both, so the per-chat rate is the private-chat one and Telegram's 429 `retry_after` paces
/// groups.
pub const RATE_LIMITS: RateLimits =
    RateLimits { per_account: Some(Rate::per_second(30)), per_chat: Some(Rate::per_second(1)) };

/// The channel's name: `kind = "telegram"`, `/webhooks/telegram/...`, `"channel": "telegram"`.
pub const CHANNEL: Channel = Channel::from_static("telegram");

/// Inline keyboards ([`InlineKeyboardButton`](https://core.telegram.org/bots/api#inlinekeyboardbutton)):
/// `callback_data` 1-64 bytes; up to 8 buttons a row. Telegram documents no cap on the button
/// text or the count that a message of ours reaches: titles keep a product cap of 64
/// characters, and every set up to the product's 20 buttons is shown natively.
pub const BUTTONS: ButtonRules = ButtonRules {
    native_max: BUTTONS_MAX,
    title_max_chars: 64,
    payload_max_bytes: 64,
    url_buttons: true,
    per_row_max: 8,
    payload_as_json: false,
    text_max_chars: chatgate_model::limits::MESSAGE_TEXT_MAX_CHARS,
};

/// Everything constant about the channel.
pub const FACTS: ChannelFacts = ChannelFacts {
    limits: LIMITS,
    rate_limits: RATE_LIMITS,
    capabilities: Capabilities {
        native_reply: true,
        templates: false,
        messaging_window: None,
        buttons: Some(BUTTONS),
        feedback: true,
        typing: true,
        read: false,
        press_answers: true,
    },
    max_body_bytes: DEFAULT_MAX_BODY_BYTES,
};

/// The factory the gateway registers.
pub static FACTORY: Factory = Factory::new(CHANNEL, TelegramAdapter::build);

/// One Telegram bot.
#[derive(Debug)]
pub struct TelegramAdapter {
    account: String,
    config: Config,
    client: send::Client,
}

impl TelegramAdapter {
    /// Builds one account from its `channels.toml` table.
    fn build(account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError> {
        Ok(Arc::new(TelegramAdapter::new(account, Config::from_settings(settings)?)?))
    }
}

impl TelegramAdapter {
    pub fn new(account: &str, config: Config) -> Result<TelegramAdapter, BuildError> {
        let client = send::Client::new(account, &config)?;
        Ok(TelegramAdapter { account: account.to_owned(), config, client })
    }
}

#[async_trait]
impl Adapter for TelegramAdapter {
    fn channel(&self) -> Channel {
        CHANNEL
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn facts(&self) -> &ChannelFacts {
        &FACTS
    }

    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        verify::verify(request, &self.config)
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
        parse::parse(&self.account, request.body)
    }

    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        // The secret is checked at build time to be header-safe (A-Z a-z 0-9 _ -).
        if let Ok(value) = HeaderValue::from_str(self.config.secret_token.expose()) {
            headers.insert(verify::SECRET_HEADER, value);
        }
        body
    }

    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        self.client.send(part).await
    }

    fn resolves_media(&self) -> bool {
        true
    }

    async fn chat_action(&self, chat_id: &str, action: ChatAction, _message_id: Option<&str>) -> Result<(), SendError> {
        self.client.chat_action(chat_id, action).await
    }

    async fn answer_press(&self, press: &Press, notice: Option<&str>) -> Result<(), SendError> {
        self.client.answer_press(press, notice).await
    }

    async fn fetch_media(&self, reference: &str, limit: u64) -> Result<MediaDownload, SendError> {
        self.client.fetch_media(reference, limit).await
    }

    fn webhooks(&self) -> Option<&dyn chatgate_adapter::WebhookAdmin> {
        Some(self)
    }
}
