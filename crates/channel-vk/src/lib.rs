//! VK (VKontakte) communities: the Callback API in, the messages API out.
//!
//! Files, the same in every channel crate:
//! - `config.rs`: one account's settings ([`Config`]), every check on them, secrets redacted in Debug.
//! - `wire.rs`: the provider's JSON types, private to this crate.
//! - `verify.rs`: webhook authentication on the raw bytes, and signing for replays.
//! - `parse.rs`: an authentic webhook → events.
//! - `webhooks.rs`: registering the webhook URL with the provider (`chatgate webhooks`).
//! - `send.rs`: the provider's API client (`Client`: send) and its errors → retry decisions.
//!
//! VK specifics:
//! - Inbound: VK POSTs one JSON event per request to the Callback server of a community
//!   (<https://dev.vk.com/ru/api/callback/getting-started>). The community's secret key inside
//!   the body authenticates it (the `verify` module explains why the body is read for it);
//!   the answer is the plain text `ok`, or the confirmation string for `type: confirmation`.
//!   Events: <https://dev.vk.com/ru/api/community-events/json-schema>.
//! - Outbound: `messages.send` with a community token
//!   (<https://dev.vk.com/ru/method/messages.send>), attachments through the upload servers
//!   (<https://dev.vk.com/ru/api/upload/overview>).
//! - Limits: 20 API requests per second with a community token; photos up to 50 MB, documents
//!   up to 200 MB (<https://dev.vk.com/ru/api/api-requests>, <https://dev.vk.com/ru/api/upload/overview>).
//!
//! Pin the Callback server to [`DEFAULT_API_VERSION`] (or set `api_version` to the
//! server's version): both `message_new` shapes parse, but ids and fields follow the version.
//!
//! What chatgate makes of every inbound kind the provider documents, and which stay
//! `unsupported` and why: `COVERAGE.md` in this crate.

mod config;
mod parse;
mod send;
mod verify;
mod webhooks;
mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use chatgate_adapter::{
    Adapter, BuildError, Capabilities, ChannelFacts, DEFAULT_MAX_BODY_BYTES, Factory, Inbound, OutboundPart, Press,
    Rate, RateLimits, SendError, SendReceipt, WebhookError, WebhookRequest,
};
use chatgate_model::limits::{MB, MESSAGE_TEXT_MAX_CHARS};
use chatgate_model::{ButtonRules, Channel, ChatAction, Limits};

pub use crate::config::{Config, DEFAULT_API_BASE_URL, DEFAULT_API_VERSION};
pub use crate::parse::OK_REPLY;
use crate::send::Client;
pub use crate::send::random_id;

/// The channel's name: `kind = "vk"`, `/webhooks/vk/...`, `"channel": "vk"`.
pub const CHANNEL: Channel = Channel::from_static("vk");

/// Everything constant about the channel.
pub const FACTS: ChannelFacts = ChannelFacts {
    // What a community may send: photos 50 MB; documents 200 MB, which is how files, audio and
    // video go out; stickers cannot be uploaded at all. `messages.send` takes 9000 characters,
    // above the product's cap, so the product's cap applies.
    limits: Limits {
        text_max_chars: MESSAGE_TEXT_MAX_CHARS,
        image_bytes: Some(50 * MB),
        audio_bytes: Some(200 * MB),
        video_bytes: Some(200 * MB),
        file_bytes: Some(200 * MB),
        sticker_bytes: None,
    },
    // API requests per second allowed to a community token ("20 requests per second").
    // VK counts API calls, the server counts parts: a text part is one call, a media part
    // three (get upload server, save, send). Above 20 calls/s VK answers error 6, which
    // `send` turns into a 1 s retry.
    rate_limits: RateLimits { per_account: Some(Rate::per_second(20)), per_chat: None },
    // VK has no reply window: a community may write once the user allowed messages.
    capabilities: Capabilities {
        native_reply: true,
        templates: false,
        messaging_window: None,
        buttons: Some(BUTTONS),
        feedback: true,
        typing: true,
        read: true,
        press_answers: true,
    },
    max_body_bytes: DEFAULT_MAX_BODY_BYTES,
};

/// Inline keyboards (<https://dev.vk.com/ru/api/bots/development/keyboard>): at most 10 buttons,
/// 5 a row, label ≤ 40 characters, `payload` a JSON string of at most 255 bytes (ours is
/// `{"p": "<payload>"}`, counted whole).
pub const BUTTONS: ButtonRules = ButtonRules {
    native_max: 10,
    title_max_chars: 40,
    payload_max_bytes: 255,
    url_buttons: true,
    per_row_max: 5,
    payload_as_json: true,
    text_max_chars: chatgate_model::limits::MESSAGE_TEXT_MAX_CHARS,
};

/// The factory the gateway registers.
pub static FACTORY: Factory = Factory::new(CHANNEL, VkAdapter::build);

/// One VK community.
#[derive(Debug)]
pub struct VkAdapter {
    account: String,
    config: Config,
    client: Client,
}

impl VkAdapter {
    /// Builds one account from its `channels.toml` table.
    fn build(account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError> {
        let config = Config::from_settings(settings)?;
        let client = Client::new(&config)?;
        Ok(Arc::new(VkAdapter { account: account.to_owned(), config, client }))
    }
}

#[async_trait]
impl Adapter for VkAdapter {
    fn channel(&self) -> Channel {
        CHANNEL
    }

    fn facts(&self) -> &ChannelFacts {
        &FACTS
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn webhooks(&self) -> Option<&dyn chatgate_adapter::WebhookAdmin> {
        Some(self)
    }

    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        verify::verify(request, &self.config)
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
        parse::parse(&self.account, &self.config, request.body)
    }

    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        verify::sign(&self.config, headers, body)
    }

    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        self.client.send(part).await
    }

    async fn chat_action(&self, chat_id: &str, action: ChatAction, message_id: Option<&str>) -> Result<(), SendError> {
        self.client.chat_action(chat_id, action, message_id).await
    }

    async fn answer_press(&self, press: &Press, notice: Option<&str>) -> Result<(), SendError> {
        self.client.answer_press(press, notice).await
    }
}
