//! WhatsApp Cloud API channel (with the WhatsApp QR limit profile).
//!
//! Files, the same in every channel crate:
//! - `config.rs`: one account's settings ([`Config`]), every check on them, secrets redacted in Debug.
//! - `wire.rs`: the provider's JSON types, private to this crate.
//! - `verify.rs`: webhook authentication on the raw bytes, the `GET` handshake, and signing for replays.
//! - `parse.rs`: an authentic webhook → events.
//! - `webhooks.rs`: registering the webhook URL with the provider (`chatgate webhooks`).
//! - `send.rs`: the provider's API client (`Client`: send, fetch media) and its errors → retry decisions.
//!
//! WhatsApp specifics:
//! - Webhooks: Meta's `GET` subscription handshake (`hub.verify_token`, answered with
//!   `hub.challenge`) and `POST`s signed with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body
//!   with the app secret), both checked by [`chatgate_adapter::meta`]. The `messages` webhook is
//!   normalised in `parse.rs`: <https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>.
//! - Sending: Cloud API `/{phone_number_id}/messages` and `/media`
//!   (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>,
//!   <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media>); errors are mapped
//!   in `send.rs`, on top of the Graph errors of [`chatgate_adapter::meta::graph`].
//! - Limits, throughput and the messaging window: [`CLOUD_FACTS`] and [`QR_FACTS`].
//! - Free-form messages only within 24 h of the customer's last message; templates any time
//!   (<https://developers.facebook.com/docs/whatsapp/pricing#customer-service-windows>).
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
use std::time::Duration;

use async_trait::async_trait;
use chatgate_adapter::{
    Adapter, BuildError, Capabilities, ChannelFacts, Factory, Inbound, MediaDownload, OutboundPart, Rate, RateLimits,
    Reply, SendError, SendReceipt, WebhookError, WebhookRequest,
};
use chatgate_model::{ButtonRules, Channel, ChatAction, Limits};

pub use crate::config::{Config, DEFAULT_API_BASE_URL, Profile};
use crate::send::Client;

/// The channel's name: `kind = "whatsapp"`, `/webhooks/whatsapp/...`, `"channel": "whatsapp"`.
pub const CHANNEL: Channel = Channel::from_static("whatsapp");

/// One kibibyte; WhatsApp's sticker limits are given in KB and read as KiB, like MB as MiB.
const KB: u64 = 1024;

/// Animated sticker limit (webp, 512×512): 500 KB. Static stickers may be at most 100 KB, but we
/// cannot tell an animated webp from a static one without decoding it, so the larger cap is used
/// and Meta refuses an oversized static sticker itself.
pub const STICKER_BYTES: u64 = 500 * KB;

/// Everything constant about the channel with the WhatsApp Business (Cloud API) limit profile.
pub const CLOUD_FACTS: ChannelFacts = ChannelFacts {
    // Cloud API limits: image 5 MB, audio 16 MB, video 16 MB, document 100 MB. WhatsApp Cloud API
    // "Supported media types" (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types>),
    // restated by AWS End User Messaging Social
    // (<https://docs.aws.amazon.com/social-messaging/latest/userguide/supported-media-types.html>).
    limits: Limits { sticker_bytes: Some(STICKER_BYTES), ..Limits::mb(Some(5), Some(16), Some(16), Some(100)) },
    rate_limits: RateLimits {
        // Default throughput of a Cloud API business number: 80 messages per second (Meta raises
        // it to 1,000 for eligible numbers; numbers shared with the Business app stay at 20)
        // (<https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput>).
        per_account: Some(Rate::per_second(80)),
        // Pair rate to one customer: Meta documents that sending to the same user too often fails
        // with 131056 but gives no number; third parties measure about one message every 6 s with
        // short bursts allowed. 10 per minute keeps that average while letting a text and a few
        // attachments of one reply go out together.
        per_chat: Some(Rate { count: 10, per: Duration::from_secs(60) }),
    },
    // The customer-service window: free-form messages only within 24 h of the customer's last message.
    capabilities: Capabilities {
        native_reply: true,
        templates: true,
        messaging_window: Some(Duration::from_secs(24 * 60 * 60)),
        buttons: Some(BUTTONS),
        feedback: true,
        typing: true,
        read: true,
        press_answers: false,
    },
    // Webhook bodies up to 3 MiB are accepted (Meta batches many changes into one POST).
    max_body_bytes: 3 * 1024 * 1024,
};

/// Interactive messages (<https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages>,
/// `.../interactive-list-messages`): at most 3 reply buttons (title ≤ 20 characters, id ≤ 256),
/// or a list of at most 10 rows (row title ≤ 24, row id ≤ 200). Titles keep the stricter 20
/// (either form may be used), payloads the list's 200; link buttons go as the numbered list.
pub const BUTTONS: ButtonRules = ButtonRules {
    native_max: send::LIST_ROWS_MAX,
    title_max_chars: 20,
    payload_max_bytes: 200,
    url_buttons: false,
    per_row_max: 1,
    payload_as_json: false,
    text_max_chars: 1024,
};

/// The same with the WhatsApp QR limit profile: a number connected through the WhatsApp app (QR
/// pairing) takes 64 MB for image, audio and video, 100 MB for files. Stickers are the same webp
/// format in every WhatsApp client, so the sticker cap stays [`STICKER_BYTES`].
pub const QR_FACTS: ChannelFacts = ChannelFacts {
    limits: Limits { sticker_bytes: Some(STICKER_BYTES), ..Limits::mb(Some(64), Some(64), Some(64), Some(100)) },
    ..CLOUD_FACTS
};

/// The factory the gateway registers.
pub static FACTORY: Factory = Factory::new(CHANNEL, WhatsappAdapter::build);

/// One WhatsApp business number.
#[derive(Debug)]
pub struct WhatsappAdapter {
    account: String,
    config: Config,
    client: Client,
}

impl WhatsappAdapter {
    /// Builds one account from its `channels.toml` table.
    fn build(account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError> {
        let config = Config::from_settings(settings)?;
        let client = Client::new(&config)?;
        Ok(Arc::new(WhatsappAdapter { account: account.to_owned(), config, client }))
    }
}

#[async_trait]
impl Adapter for WhatsappAdapter {
    fn channel(&self) -> Channel {
        CHANNEL
    }

    fn facts(&self) -> &ChannelFacts {
        self.config.profile.facts()
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn webhooks(&self) -> Option<&dyn chatgate_adapter::WebhookAdmin> {
        Some(self)
    }

    /// Items name their number as `value.metadata.phone_number_id`.
    fn owner_id(&self) -> Option<&str> {
        Some(&self.config.phone_number_id)
    }

    fn resolves_media(&self) -> bool {
        true
    }

    fn handshake(&self, request: &WebhookRequest<'_>) -> Result<Reply, WebhookError> {
        verify::handshake(request, &self.config)
    }

    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        verify::verify(request, &self.config)
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
        parse::parse(&self.account, request.body)
    }

    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        verify::sign(&self.config, headers, body)
    }

    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        self.client.send(part).await
    }

    async fn fetch_media(&self, reference: &str, limit: u64) -> Result<MediaDownload, SendError> {
        self.client.fetch_media(reference, limit).await
    }

    async fn chat_action(&self, _chat_id: &str, action: ChatAction, message_id: Option<&str>) -> Result<(), SendError> {
        self.client.chat_action(action, message_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_model::limits::MB;

    #[test]
    fn profiles_carry_documented_limits() {
        let cloud = CLOUD_FACTS.limits;
        assert_eq!(cloud.image_bytes, Some(5 * MB));
        assert_eq!(cloud.audio_bytes, Some(16 * MB));
        assert_eq!(cloud.video_bytes, Some(16 * MB));
        assert_eq!(cloud.file_bytes, Some(100 * MB));
        assert_eq!(cloud.sticker_bytes, Some(500 * 1024));
        assert_eq!(QR_FACTS.limits.image_bytes, Some(64 * MB));
        assert_eq!(QR_FACTS.limits.file_bytes, Some(100 * MB));
        assert_eq!(QR_FACTS.limits.sticker_bytes, Some(500 * 1024));
        assert_eq!(QR_FACTS.rate_limits, CLOUD_FACTS.rate_limits);
        assert_eq!(Profile::Qr.facts(), &QR_FACTS);
        assert_eq!(Profile::Cloud.facts(), &CLOUD_FACTS);
    }
}
