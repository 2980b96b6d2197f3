//! Viber REST Bot API channel (<https://developers.viber.com/docs/api/rest-bot-api/>,
//! source of the current docs: <https://github.com/Viber/creators-hub>).
//!
//! Files, the same in every channel crate:
//! - `config.rs`: one account's settings ([`Config`]), every check on them, secrets redacted in Debug.
//! - `wire.rs`: the provider's JSON types, private to this crate.
//! - `verify.rs`: webhook authentication on the raw bytes, and signing for replays.
//! - `parse.rs`: an authentic webhook → events.
//! - `webhooks.rs`: registering the webhook URL with the provider (`chatgate webhooks`).
//! - `send.rs`: the provider's API client (`Client`: send) and its errors → retry decisions.
//!
//! Viber specifics:
//! - **Webhooks:** `POST` only, signed with `X-Viber-Content-Signature` = hex HMAC-SHA256 of the
//!   raw body keyed with the bot's auth token (`verify.rs`). The `set_webhook` probe
//!   (`event: "webhook"`) is answered 200 with no events. What each callback becomes: `parse.rs`.
//! - **Sending:** `POST {api_base_url}/send_message` with `X-Viber-Auth-Token`; media go by URL,
//!   replies get a quote line, the request JSON is capped at 30 KB: see `send.rs`.
//! - **Limits** ([`FACTS`]): text 2000 characters (chatgate's cap; Viber takes 7000),
//!   picture 1 MB (Viber: 1 MB on iOS, 3 MB on Android, so the lower one), video 26 MB, file 50 MB,
//!   audio 50 MB (sent as a file: Viber has no audio message), sticker 1 MB (a sticker is sent by
//!   its id; the number only bounds what the gateway fetches).
//! - **Rate:** Viber publishes no per-second figure for `send_message`; the only request rate it
//!   states is for `broadcast_message` (500 requests per 10 s), which chatgate applies per account
//!   as a steady 50 per second. Its per-user rule (at most 100
//!   messages within an hour without a reply, status 12) is not a rate and comes back as
//!   retry-after.
//! - **No messaging window, no templates, no native quote.**
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
    Adapter, BuildError, Capabilities, ChannelFacts, DEFAULT_MAX_BODY_BYTES, Factory, Inbound, OutboundPart, Rate,
    RateLimits, SendError, SendReceipt, WebhookError, WebhookRequest,
};
use chatgate_model::limits::{MB, MESSAGE_TEXT_MAX_CHARS};
use chatgate_model::{ButtonRules, Channel, Limits};

pub use crate::config::{Config, DEFAULT_API_BASE_URL, SENDER_NAME_MAX_CHARS};
use crate::send::Client;

/// The channel's name: `kind = "viber"`, `/webhooks/viber/...`, `"channel": "viber"`.
pub const CHANNEL: Channel = Channel::from_static("viber");

/// Everything constant about the channel. Viber has no native quote (see `send.rs`).
pub const FACTS: ChannelFacts = ChannelFacts {
    // Viber's outbound limits (message data model, <https://github.com/Viber/creators-hub>
    // `docs/bots-api/data-models/message.md`); see the crate docs for each number.
    limits: Limits {
        text_max_chars: MESSAGE_TEXT_MAX_CHARS,
        image_bytes: Some(MB),
        audio_bytes: Some(50 * MB),
        video_bytes: Some(26 * MB),
        file_bytes: Some(50 * MB),
        sticker_bytes: Some(MB),
    },
    // The send rate chatgate keeps per Viber account (see the crate docs for why).
    rate_limits: RateLimits { per_account: Some(Rate::per_second(50)), per_chat: None },
    capabilities: Capabilities {
        native_reply: false,
        templates: false,
        messaging_window: None,
        buttons: Some(BUTTONS),
        feedback: true,
        // Viber's bot API has no typing or read marker.
        typing: false,
        read: false,
        press_answers: false,
    },
    max_body_bytes: DEFAULT_MAX_BODY_BYTES,
};

/// Keyboards (<https://developers.viber.com/docs/tools/keyboards/>): a grid 6 columns wide (so
/// at most 6 buttons a row), button `Text` up to 250 characters. Viber documents no limit on
/// `ActionBody` short of the 30 KB request: payloads keep a product cap of 250 bytes, and every
/// set up to the product's 20 buttons is shown as a keyboard.
pub const BUTTONS: ButtonRules = ButtonRules {
    native_max: chatgate_model::rich::BUTTONS_MAX,
    title_max_chars: 250,
    payload_max_bytes: 250,
    url_buttons: true,
    per_row_max: 6,
    payload_as_json: false,
    text_max_chars: chatgate_model::limits::MESSAGE_TEXT_MAX_CHARS,
};

/// The factory the gateway registers.
pub static FACTORY: Factory = Factory::new(CHANNEL, ViberAdapter::build);

/// One Viber bot account.
#[derive(Debug)]
pub struct ViberAdapter {
    account: String,
    config: Config,
    client: Client,
}

impl ViberAdapter {
    /// Builds one account from its `channels.toml` table.
    fn build(account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError> {
        let config = Config::from_settings(settings)?;
        let client = Client::new(&config)?;
        Ok(Arc::new(ViberAdapter { account: account.to_owned(), config, client }))
    }
}

#[async_trait]
impl Adapter for ViberAdapter {
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
        let inbound = parse::parse(&self.account, request.body)?;
        self.client.remember(&inbound);
        Ok(inbound)
    }

    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        verify::sign(&self.config, headers, body)
    }

    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let result = self.client.send(part).await;
        if let Err(error) = &result {
            tracing::warn!(channel = %CHANNEL, account = %self.account, %error, "send failed");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_neither_the_token_nor_remembered_customer_text() {
        let config =
            Config::from_settings(serde_json::json!({"auth_token": "very-secret-token", "sender_name": "Acme"}))
                .unwrap();
        let client = Client::new(&config).unwrap();
        let mut message = chatgate_model::Message { external_id: "1".into(), ..Default::default() };
        message.text = Some("my card number".into());
        let event = chatgate_model::Event {
            message: Some(message),
            ..chatgate_model::Event::new(chatgate_model::EventKind::Message, CHANNEL, "test", "chat")
        };
        client.remember(&Inbound {
            events: vec![chatgate_adapter::InboundEvent::new(None, event)],
            ..Default::default()
        });
        let adapter = ViberAdapter { account: "test".into(), config, client };
        let shown = format!("{adapter:?}");
        assert!(!shown.contains("very-secret-token") && !shown.contains("card"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
