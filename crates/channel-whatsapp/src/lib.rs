//! WhatsApp Cloud API channel (with the WhatsApp QR limit profile).
//!
//! - Webhooks: Meta's `GET` subscription handshake (`hub.verify_token`, answered with
//!   `hub.challenge`) and `POST`s signed with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body
//!   with the app secret), both checked by [`chatgate_adapter::meta`]. The `messages` webhook is
//!   normalised in `parse.rs`: <https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>.
//! - Sending: Cloud API `/{phone_number_id}/messages` and `/media`
//!   (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>,
//!   <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media>); errors are mapped
//!   in `send.rs`.
//! - Limits: see [`config::CLOUD_LIMITS`] and [`config::QR_LIMITS`]; throughput
//!   (<https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput>)
//!   in [`WhatsappAdapter::rate_limits`].
//! - Free-form messages only within 24 h of the customer's last message; templates any time
//!   (<https://developers.facebook.com/docs/whatsapp/pricing#customer-service-windows>).

pub mod config;
mod parse;
mod send;
mod verify;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatgate_adapter::{
    Adapter, BuildError, Capabilities, ChannelFactory, ChannelFacts, Inbound, MediaDownload, OutboundPart, Rate,
    RateLimits, Reply, SendError, SendReceipt, WebhookError, WebhookRequest, meta,
};
use chatgate_model::Channel;

use crate::config::Config;

/// Webhook bodies up to 3 MiB are accepted (Meta batches many changes into one POST).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Default throughput of a Cloud API business number: 80 messages per second (Meta raises it to
/// 1,000 for eligible numbers; numbers shared with the Business app stay at 20).
pub const PER_ACCOUNT_RATE: Rate = Rate::per_second(80);

/// Pair rate to one customer: Meta documents that sending to the same user too often fails with
/// 131056 but gives no number; third parties measure about one message every 6 s with short
/// bursts allowed. 10 per minute keeps that average while letting a text and a few attachments
/// of one reply go out together.
pub const PER_CHAT_RATE: Rate = Rate { count: 10, per: Duration::from_secs(60) };

/// The customer-service window: free-form messages only within 24 h of the customer's last message.
pub const MESSAGING_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The channel's name: `kind = "whatsapp"`, `/webhooks/whatsapp/...`, `"channel": "whatsapp"`.
pub const CHANNEL: Channel = Channel::from_static("whatsapp");

const RATE_LIMITS: RateLimits = RateLimits { per_account: Some(PER_ACCOUNT_RATE), per_chat: Some(PER_CHAT_RATE) };
const CAPABILITIES: Capabilities =
    Capabilities { native_reply: true, templates: true, messaging_window: Some(MESSAGING_WINDOW) };

/// Everything constant about the channel with the WhatsApp Business (Cloud API) limit profile.
pub const CLOUD_FACTS: ChannelFacts = ChannelFacts {
    limits: config::CLOUD_LIMITS,
    rate_limits: RATE_LIMITS,
    capabilities: CAPABILITIES,
    max_body_bytes: MAX_BODY_BYTES,
};

/// The same with the WhatsApp QR limit profile.
pub const QR_FACTS: ChannelFacts = ChannelFacts { limits: config::QR_LIMITS, ..CLOUD_FACTS };

/// Builds WhatsApp accounts (`kind = "whatsapp"`).
#[derive(Debug, Clone, Copy)]
pub struct WhatsappFactory;

/// The factory the gateway registers.
pub static FACTORY: WhatsappFactory = WhatsappFactory;

/// HTTP timeout of one Cloud API call (uploads of up to 100 MB included).
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

impl ChannelFactory for WhatsappFactory {
    fn channel(&self) -> Channel {
        CHANNEL
    }

    fn build(&self, account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError> {
        let config = Config::from_settings(settings)?;
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| BuildError::new(format!("HTTP client: {}", e.without_url())))?;
        Ok(Arc::new(WhatsappAdapter { account: account.to_owned(), config, client }))
    }
}

/// One WhatsApp business number.
#[derive(Debug)]
pub struct WhatsappAdapter {
    account: String,
    config: Config,
    client: reqwest::Client,
}

#[async_trait]
impl Adapter for WhatsappAdapter {
    fn channel(&self) -> Channel {
        CHANNEL
    }

    fn facts(&self) -> &ChannelFacts {
        match self.config.profile {
            config::Profile::Cloud => &CLOUD_FACTS,
            config::Profile::Qr => &QR_FACTS,
        }
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn handshake(&self, request: &WebhookRequest<'_>) -> Result<Reply, WebhookError> {
        meta::handshake(request, self.config.verify_token.expose())
    }

    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        meta::verify_signature(request, self.config.app_secret.expose())
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
        parse::parse(&self.account, request.body)
    }

    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        verify::sign(self.config.app_secret.expose(), headers, &body);
        body
    }

    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        send::send(&self.client, &self.config, part).await
    }

    async fn fetch_media(&self, reference: &str, limit: u64) -> Result<MediaDownload, SendError> {
        send::fetch_media(&self.client, &self.config, reference, limit).await
    }
}
