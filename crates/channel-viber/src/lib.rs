//! Viber REST Bot API channel (<https://developers.viber.com/docs/api/rest-bot-api/>,
//! source of the current docs: <https://github.com/Viber/creators-hub>).
//!
//! - **Webhooks:** `POST` only, signed with `X-Viber-Content-Signature` = hex HMAC-SHA256 of the
//!   raw body keyed with the bot's auth token ([`verify`]). The `set_webhook` probe
//!   (`event: "webhook"`) is answered 200 with no events. What each callback becomes: [`parse`].
//! - **Sending:** `POST {api_base_url}/send_message` with `X-Viber-Auth-Token`; media go by URL,
//!   replies get a quote line, the request JSON is capped at 30 KB: see [`send`].
//! - **Limits** ([`VIBER_LIMITS`]): text 2000 characters (chatgate's cap; Viber takes 7000),
//!   picture 1 MB (Viber: 1 MB on iOS, 3 MB on Android, so the lower one), video 26 MB, file 50 MB,
//!   audio 50 MB (sent as a file: Viber has no audio message), sticker 1 MB (a sticker is sent by
//!   its id; the number only bounds what the gateway fetches).
//! - **Rate:** Viber publishes no per-second figure for `send_message`; the only request rate it
//!   states is for `broadcast_message` (500 requests per 10 s), which chatgate applies per account
//!   as a steady 50 per second ([`VIBER_RATE_PER_ACCOUNT`]). Its per-user rule (at most 100
//!   messages within an hour without a reply, status 12) is not a rate and comes back as
//!   retry-after.
//! - **No messaging window, no templates, no native quote.**

pub mod config;
mod parse;
pub mod send;
pub mod verify;
mod wire;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chatgate_adapter::{
    Adapter, BuildError, Capabilities, ChannelFactory, ChannelFacts, DEFAULT_MAX_BODY_BYTES, Inbound, OutboundPart,
    Rate, RateLimits, SendError, SendReceipt, WebhookError, WebhookRequest,
};
use chatgate_model::limits::{MB, MESSAGE_TEXT_MAX_CHARS};
use chatgate_model::{Channel, EventKind, Limits};

use crate::config::ViberConfig;
use crate::send::{QUOTE_CACHE_CAPACITY, QuoteCache};

/// Viber's outbound limits (message data model, <https://github.com/Viber/creators-hub>
/// `docs/bots-api/data-models/message.md`).
pub const VIBER_LIMITS: Limits = Limits {
    text_max_chars: MESSAGE_TEXT_MAX_CHARS,
    image_bytes: Some(MB),
    audio_bytes: Some(50 * MB),
    video_bytes: Some(26 * MB),
    file_bytes: Some(50 * MB),
    sticker_bytes: Some(MB),
};

/// The send rate chatgate keeps per Viber account (see the module docs for why).
pub const VIBER_RATE_PER_ACCOUNT: Rate = Rate::per_second(50);

/// The channel's name: `kind = "viber"`, `/webhooks/viber/...`, `"channel": "viber"`.
pub const CHANNEL: Channel = Channel::from_static("viber");

/// Everything constant about the channel. Viber has no native quote (see `send.rs`).
pub const FACTS: ChannelFacts = ChannelFacts {
    limits: VIBER_LIMITS,
    rate_limits: RateLimits { per_account: Some(VIBER_RATE_PER_ACCOUNT), per_chat: None },
    capabilities: Capabilities { native_reply: false, templates: false, messaging_window: None },
    max_body_bytes: DEFAULT_MAX_BODY_BYTES,
};

/// How long one `send_message` call may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds Viber accounts (`kind = "viber"`).
#[derive(Debug)]
pub struct ViberFactory;

/// The registry entry of this channel.
pub static FACTORY: ViberFactory = ViberFactory;

impl ChannelFactory for ViberFactory {
    fn channel(&self) -> Channel {
        CHANNEL
    }

    fn build(&self, account: &str, settings: serde_json::Value) -> Result<Arc<dyn Adapter>, BuildError> {
        Ok(Arc::new(ViberAdapter::new(account, ViberConfig::from_settings(settings)?)?))
    }
}

/// One Viber bot account.
pub struct ViberAdapter {
    account: String,
    config: ViberConfig,
    client: reqwest::Client,
    /// Recent inbound messages, for the quote line of replies.
    quotes: Mutex<QuoteCache>,
}

impl fmt::Debug for ViberAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `config` redacts the token itself; the cache holds customer text and stays out of logs.
        f.debug_struct("ViberAdapter")
            .field("account", &self.account)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ViberAdapter {
    /// An adapter for `account` with checked settings.
    pub fn new(account: &str, config: ViberConfig) -> Result<ViberAdapter, BuildError> {
        let client = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|e| BuildError::new(format!("viber: HTTP client: {e}")))?;
        Ok(ViberAdapter {
            account: account.to_owned(),
            config,
            client,
            quotes: Mutex::new(QuoteCache::new(QUOTE_CACHE_CAPACITY)),
        })
    }

    fn quotes(&self) -> std::sync::MutexGuard<'_, QuoteCache> {
        // The cache holds no invariant a panicking writer could break.
        self.quotes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        verify::verify(request, self.config.auth_token.expose())
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
        let inbound = parse::parse(&self.account, request.body)?;
        let mut quotes = self.quotes();
        for e in &inbound.events {
            if e.event.kind == EventKind::Message
                && let Some(message) = &e.event.message
            {
                quotes.remember(message);
            }
        }
        Ok(inbound)
    }

    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        let signature = verify::signature(self.config.auth_token.expose(), &body);
        let value = http::HeaderValue::from_str(&signature).expect("hex is a valid header value");
        headers.insert(verify::SIGNATURE_HEADER, value);
        body
    }

    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        let quote = part.reply_to.as_deref().and_then(|id| self.quotes().get(id).map(str::to_owned));
        if part.reply_to.is_some() && quote.is_none() {
            tracing::debug!(account = %self.account, "viber: replied-to message not remembered; sending without a quote line");
        }
        let body = send::request_body(&self.config, part, quote.as_deref())?;
        let result = send::post(&self.client, &self.config, body).await;
        if let Err(error) = &result {
            tracing::warn!(channel = "viber", account = %self.account, %error, "send failed");
        }
        result
    }
}
