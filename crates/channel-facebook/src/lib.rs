//! Facebook Messenger and Instagram channels: one crate, two channel kinds, because both
//! speak Meta's Graph webhook format and the Messenger Send API.
//!
//! Files, the same in every channel crate:
//! - `config.rs`: one account's settings ([`Config`]), every check on them, secrets redacted in Debug.
//! - `wire.rs`: the provider's JSON types, private to this crate.
//! - `verify.rs`: webhook authentication on the raw bytes, the `GET` handshake, and signing for replays.
//! - `parse.rs`: an authentic webhook → events.
//! - `webhooks.rs`: registering the webhook URL with the provider (`chatgate webhooks`).
//! - `send.rs`: the provider's API client (`Client`: send) and its errors → retry decisions.
//!
//! Messenger and Instagram specifics:
//! - [`MESSENGER_FACTORY`] builds `kind = "messenger"` accounts ([`MESSENGER`]),
//!   webhook object `page` (<https://developers.facebook.com/docs/messenger-platform/webhooks>).
//! - [`INSTAGRAM_FACTORY`] builds `kind = "instagram"` accounts ([`INSTAGRAM`]),
//!   webhook object `instagram`
//!   (<https://developers.facebook.com/docs/instagram-platform/webhooks/examples>).
//!
//! Webhooks are authenticated with the shared Meta scheme in [`chatgate_adapter::meta`]
//! (`GET` `hub.challenge` handshake, `X-Hub-Signature-256` over the raw body); bodies may be up
//! to 3 MiB ([`MESSENGER_FACTS`]) because Meta batches up to 1000 updates in one `POST`.
//! How payloads map to events is described in the `parse` module; sending in `send`.
//!
//! Limits ([`Limits::mb`]`(Some(8), Some(25), None, Some(25))`): image 8 MB, audio 25 MB,
//! file 25 MB, no video (our product choice; Meta takes video too); text 2000 characters on
//! Messenger, 1000 on Instagram
//! (<https://developers.facebook.com/docs/messenger-platform/instagram/features/send-message>).
//! Rate: 300 Send API calls/s per Page or Instagram account for text
//! (<https://developers.facebook.com/docs/messenger-platform/overview/rate-limiting>). Meta's
//! separate 10 calls/s for audio and video is not modelled (the gateway has one rate per
//! account); going over it yields error 613, which is retried after a wait.
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
    Adapter, BuildError, Capabilities, ChannelFacts, Factory, Inbound, OutboundPart, Rate, RateLimits, Reply,
    SendError, SendReceipt, WebhookError, WebhookRequest,
};
use chatgate_model::{ButtonRules, Channel, ChatAction, Limits};

pub use crate::config::{Config, DEFAULT_API_BASE_URL};
use crate::send::Client;
pub use crate::send::DEFAULT_RETRY_AFTER;

/// `kind = "messenger"`, `/webhooks/messenger/...`, `"channel": "messenger"`.
pub const MESSENGER: Channel = Channel::from_static("messenger");
/// `kind = "instagram"`, `/webhooks/instagram/...`, `"channel": "instagram"`.
pub const INSTAGRAM: Channel = Channel::from_static("instagram");

/// Everything constant about Messenger: 8 / 25 / not supported / 25 MB, 300 Send API calls/s per Page.
pub const MESSENGER_FACTS: ChannelFacts = ChannelFacts {
    // Messenger's text cap: "UTF-8 and has a 2000 character limit" (Send API `message.text`).
    limits: Limits { text_max_chars: 2000, ..Limits::mb(Some(8), Some(25), None, Some(25)) },
    // Send API calls per second per Page / Instagram account for text, links, reactions and stickers.
    rate_limits: RateLimits { per_account: Some(Rate::per_second(300)), per_chat: None },
    capabilities: Capabilities {
        native_reply: true,
        templates: false,
        messaging_window: None,
        buttons: Some(BUTTONS),
        feedback: true,
        typing: true,
        read: true,
        press_answers: false,
    },
    // Webhook bodies up to 3 MiB are accepted (Meta batches many events per request).
    max_body_bytes: 3 * 1024 * 1024,
};

/// Quick replies (Messenger and Instagram): at most 13, title ≤ 20 characters, payload ≤ 1000
/// (<https://developers.facebook.com/docs/messenger-platform/send-messages/quick-replies>); no link
/// quick replies, so a link button sends the numbered list.
pub const BUTTONS: ButtonRules = ButtonRules {
    native_max: send::QUICK_REPLIES_MAX,
    title_max_chars: 20,
    payload_max_bytes: 1000,
    url_buttons: false,
    per_row_max: 1,
    payload_as_json: false,
    text_max_chars: chatgate_model::limits::MESSAGE_TEXT_MAX_CHARS,
};

/// Instagram: as Messenger, with its text cap: "Text message must be less than 1000 characters"
/// (Instagram send-message guide).
pub const INSTAGRAM_FACTS: ChannelFacts =
    ChannelFacts { limits: Limits { text_max_chars: 1000, ..MESSENGER_FACTS.limits }, ..MESSENGER_FACTS };

/// Builds Messenger accounts (`kind = "messenger"`).
pub static MESSENGER_FACTORY: Factory =
    Factory::new(MESSENGER, |account, settings| FacebookAdapter::build(Kind::Messenger, account, settings));

/// Builds Instagram accounts (`kind = "instagram"`).
pub static INSTAGRAM_FACTORY: Factory =
    Factory::new(INSTAGRAM, |account, settings| FacebookAdapter::build(Kind::Instagram, account, settings));

/// Which of the two Meta channels an account is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Messenger,
    Instagram,
}

impl Kind {
    pub(crate) const fn channel(self) -> Channel {
        match self {
            Kind::Messenger => MESSENGER,
            Kind::Instagram => INSTAGRAM,
        }
    }

    /// The webhook envelope's `object`.
    pub(crate) const fn object(self) -> &'static str {
        match self {
            Kind::Messenger => "page",
            Kind::Instagram => "instagram",
        }
    }
}

/// One Messenger Page or Instagram account.
#[derive(Debug)]
struct FacebookAdapter {
    kind: Kind,
    account: String,
    config: Config,
    client: Client,
}

impl FacebookAdapter {
    fn build(kind: Kind, account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError> {
        let config = Config::from_settings(kind.channel(), settings)?;
        let client = Client::new(&config)?;
        Ok(Arc::new(FacebookAdapter { kind, account: account.to_owned(), config, client }))
    }
}

#[async_trait]
impl Adapter for FacebookAdapter {
    fn channel(&self) -> Channel {
        self.kind.channel()
    }

    fn facts(&self) -> &ChannelFacts {
        match self.kind {
            Kind::Messenger => &MESSENGER_FACTS,
            Kind::Instagram => &INSTAGRAM_FACTS,
        }
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn webhooks(&self) -> Option<&dyn chatgate_adapter::WebhookAdmin> {
        Some(self)
    }

    /// Messenger entries name their Page (`page_id`), Instagram entries their Instagram account
    /// (`instagram_account_id`), as `entry[].id`.
    fn owner_id(&self) -> Option<&str> {
        match self.kind {
            Kind::Messenger => Some(&self.config.page_id),
            Kind::Instagram => self.config.instagram_account_id.as_deref(),
        }
    }

    fn handshake(&self, request: &WebhookRequest<'_>) -> Result<Reply, WebhookError> {
        verify::handshake(request, &self.config)
    }

    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        verify::verify(request, &self.config)
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
        parse::parse(self.kind, &self.account, request.body)
    }

    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        verify::sign(&self.config, headers, body)
    }

    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        self.client.send(part).await
    }

    async fn chat_action(&self, chat_id: &str, action: ChatAction, _message_id: Option<&str>) -> Result<(), SendError> {
        self.client.chat_action(chat_id, action).await
    }
}
