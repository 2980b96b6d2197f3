//! The web chat widget channel: a site embeds our widget with one script tag; its visitors talk
//! to the gateway itself, which is this channel's "provider". The wire protocol between widget and
//! gateway is `PROTOCOL.md` in this crate.
//!
//! Files, the same in every channel crate:
//! - `config.rs`: one widget's settings ([`Config`]), every check on them (origins, colours,
//!   avatars by content, feedback scale, identity), secrets redacted in Debug.
//! - `wire.rs`: the JSON bodies visitors send, private to this crate.
//! - `verify.rs`: visitor tokens signed by the gateway (HMAC-SHA256) and the site's identity
//!   hashes, checked in constant time.
//! - `parse.rs`: visitor requests → events, echo items, upload kinds by content, messenger links.
//! - `webhooks.rs`: registering the webhook URL with the provider (`chatgate webhooks`).
//! - `send.rs`: operator messages → the visitor's durable stream, and the `visitor_gone` rule.
//!
//! The server owns the routes (`/web/{account}/...`), CORS, rate limiting, the streams and the
//! file store; this crate reaches them only through the adapter contract's
//! [`chatgate_adapter::Visitors`] (what the server asks of the channel) and
//! [`chatgate_adapter::Mailbox`] (what the server gives the channel). As a webhook (`verify` /
//! `parse`), a visitor request is its JSON body with `Authorization: Bearer {visitor token}` and
//! the route in the query (`route=messages|pageviews|feedback|receipts`): that is how
//! `fixtures/web/` records them.
//!
//! - **Limits** ([`FACTS`]): text 2000 characters; uploads and operator files image 10 MB,
//!   audio 20 MB, video 50 MB, file 20 MB; no stickers. Kinds are decided by content.
//! - **Statuses:** `sent` on a connected visitor's stream, `delivered` / `read` from the widget's
//!   receipts, `failed` with `visitor_gone` after `gone_after_seconds` without a connection.

mod config;
mod parse;
mod send;
mod verify;
mod webhooks;
mod wire;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chatgate_adapter::visitor::{
    AvatarRole, Mailbox, Session, SessionRequest, Visitor, VisitorError, VisitorInbound, VisitorRates, VisitorRoute,
};
use chatgate_adapter::{
    Adapter, BuildError, Capabilities, ChannelFacts, Factory, Inbound, OutboundPart, Rate, RateLimits, Reply,
    SendError, SendReceipt, Visitors, WebhookError, WebhookRequest,
};
use chatgate_model::limits::{MB, MESSAGE_TEXT_MAX_CHARS};
use chatgate_model::{Attachment, Channel, Event, Limits};
use serde_json::{Value, json};

pub use crate::config::{
    AVATAR_MAX_BYTES, AllowedOrigins, Colors, Config, DEFAULT_GONE_AFTER_SECONDS, FeedbackSettings, Identity,
    MESSENGER_KINDS, MessengerLink, RateSettings, TOKEN_SECRET_MIN_BYTES, is_color,
};
pub use crate::parse::sniff;
pub use crate::send::stream_id;

/// The channel's name: `kind = "web"`, `/web/{account}/...`, `"channel": "web"`.
pub const CHANNEL: Channel = Channel::from_static("web");

/// Largest JSON body of a visitor request (uploads have their own per-kind limits).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything constant about the channel.
pub const FACTS: ChannelFacts = ChannelFacts {
    // Our own choice for files visitors upload and operators send (the widget shows them inline):
    // large enough for phone photos and short clips, small enough for a browser upload.
    limits: Limits {
        text_max_chars: MESSAGE_TEXT_MAX_CHARS,
        image_bytes: Some(10 * MB),
        audio_bytes: Some(20 * MB),
        video_bytes: Some(50 * MB),
        file_bytes: Some(20 * MB),
        sticker_bytes: None,
    },
    // The gateway itself delivers: no provider rate to respect.
    rate_limits: RateLimits { per_account: None, per_chat: None },
    capabilities: Capabilities {
        native_reply: true,
        templates: false,
        messaging_window: None,
        buttons: Some(BUTTONS),
        feedback: true,
        // The widget shows no operator typing or read marker yet.
        typing: false,
        read: false,
        press_answers: false,
    },
    max_body_bytes: MAX_BODY_BYTES,
};

/// The built-in avatars.
const DEFAULT_AVATARS: [&[u8]; 3] = [
    include_bytes!("../assets/avatar-bot.png"),
    include_bytes!("../assets/avatar-operator.png"),
    include_bytes!("../assets/avatar-user.png"),
];

/// The widget's static files: the loader, the UI module and its styles.
const ASSETS: &[(&str, &[u8], &str)] = &[
    ("widget.js", include_bytes!("../assets/widget.js"), "text/javascript; charset=utf-8"),
    ("widget-ui.js", include_bytes!("../assets/widget-ui.js"), "text/javascript; charset=utf-8"),
    ("widget.css", include_bytes!("../assets/widget.css"), "text/css; charset=utf-8"),
];

/// The visitor fixtures are recorded for (see [`Adapter::sign`]).
pub const FIXTURE_VISITOR: &str = "v_fixturevisitor0000000000";

/// The widget's own buttons: our choice, as wide as the chat column allows.
pub const BUTTONS: chatgate_model::ButtonRules = chatgate_model::ButtonRules {
    native_max: chatgate_model::rich::BUTTONS_MAX,
    title_max_chars: 64,
    payload_max_bytes: 1000,
    url_buttons: true,
    per_row_max: 4,
    payload_as_json: false,
    text_max_chars: chatgate_model::limits::MESSAGE_TEXT_MAX_CHARS,
};

/// The factory the gateway registers.
pub static FACTORY: Factory = Factory::new(CHANNEL, WebAdapter::build);

/// One web widget account.
#[derive(Debug)]
pub struct WebAdapter {
    account: String,
    config: Config,
    client: send::Client,
}

impl WebAdapter {
    /// Builds one account from its `channels.toml` table.
    fn build(account: &str, settings: Value) -> Result<Arc<dyn Adapter>, BuildError> {
        let config = Config::from_settings(settings)?;
        Ok(Arc::new(WebAdapter {
            account: account.to_owned(),
            client: send::Client { account: account.to_owned(), mailbox: OnceLock::new() },
            config,
        }))
    }

    /// The account's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn bearer<'a>(request: &'a WebhookRequest<'_>) -> Option<&'a str> {
        chatgate_adapter::verify::bearer_token(request.header("authorization")?)
    }
}

#[async_trait]
impl Adapter for WebAdapter {
    fn channel(&self) -> Channel {
        CHANNEL
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn webhooks(&self) -> Option<&dyn chatgate_adapter::WebhookAdmin> {
        Some(self)
    }

    fn facts(&self) -> &ChannelFacts {
        &FACTS
    }

    /// A recorded visitor request is authentic when its bearer token is one of this widget's.
    fn verify(&self, request: &WebhookRequest<'_>) -> Result<(), WebhookError> {
        let token = Self::bearer(request).ok_or(WebhookError::MissingSignature)?;
        verify::authenticate(&self.config, &self.account, token).map(drop).map_err(|_| WebhookError::BadSignature)
    }

    /// A recorded visitor request (route in `route=` of the query) → its events. Uploads cannot
    /// be resolved here (the server's file store resolves them on the live route).
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
        let token = Self::bearer(request).ok_or(WebhookError::MissingSignature)?;
        let visitor =
            verify::authenticate(&self.config, &self.account, token).map_err(|_| WebhookError::BadSignature)?;
        let route_name = request
            .query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("route="))
            .unwrap_or("messages");
        let route = VisitorRoute::ALL
            .into_iter()
            .find(|r| r.as_str() == route_name)
            .ok_or_else(|| WebhookError::Malformed(format!("unknown visitor route `{route_name}`")))?;
        let inbound = self
            .receive(&visitor, route, request.body, &|_| None)
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        Ok(Inbound { events: inbound.events, reply: Reply::Empty })
    }

    /// Sets a valid token of [`FIXTURE_VISITOR`] and the first allowed origin.
    fn sign(&self, headers: &mut http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        let visitor = Visitor { id: FIXTURE_VISITOR.to_owned(), user_id: None };
        let token = verify::issue(&self.config, &self.account, &visitor);
        if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        if let AllowedOrigins::List(list) = &self.config.allowed_origins
            && let Some(Ok(v)) = list.first().map(|o| http::HeaderValue::from_str(o))
        {
            headers.insert(http::header::ORIGIN, v);
        }
        body
    }

    async fn send(&self, part: &OutboundPart) -> Result<SendReceipt, SendError> {
        self.client.send(&self.config, part).await
    }

    fn visitors(&self) -> Option<&dyn Visitors> {
        Some(self)
    }
}

impl Visitors for WebAdapter {
    fn attach_mailbox(&self, mailbox: Arc<dyn Mailbox>) {
        if self.client.mailbox.set(mailbox).is_err() {
            tracing::warn!(account = %self.account, "a mailbox was attached twice; the first one stays");
        }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.config.allowed_origins.allows(origin)
    }

    fn open_session(&self, request: &SessionRequest<'_>) -> Result<Session, VisitorError> {
        parse::session(&self.config, &self.account, request.body)
    }

    fn authenticate(&self, token: &str) -> Result<Visitor, VisitorError> {
        verify::authenticate(&self.config, &self.account, token)
    }

    fn receive(
        &self,
        visitor: &Visitor,
        route: VisitorRoute,
        body: &[u8],
        upload: &dyn Fn(&str) -> Option<Attachment>,
    ) -> Result<VisitorInbound, VisitorError> {
        parse::receive(&self.account, &FACTS.limits, visitor, route, body, upload)
    }

    fn echo(&self, event: &Event) -> Option<(String, Value)> {
        parse::echo(event)
    }

    fn public_config(&self) -> Value {
        let c = &self.config;
        let avatar = |role: &str| format!("{}/web/{}/avatars/{role}", c.public_url, self.account);
        json!({
            "account": self.account,
            "name": c.name,
            "colors": c.colors,
            "avatars": { "bot": avatar("bot"), "operator": avatar("operator"), "user": avatar("user") },
            "feedback": c.feedback,
            "knowledge_base_url": c.knowledge_base_url,
            "messenger_links": parse::messenger_links(c, None),
            "identity": c.identity.as_str(),
        })
    }

    fn session_links(&self, visitor: &str) -> Value {
        Value::Array(parse::messenger_links(&self.config, Some(visitor)))
    }

    fn avatar(&self, role: AvatarRole) -> (Bytes, &'static str) {
        let (configured, default) = match role {
            AvatarRole::Bot => (&self.config.avatars.bot, DEFAULT_AVATARS[0]),
            AvatarRole::Operator => (&self.config.avatars.operator, DEFAULT_AVATARS[1]),
            AvatarRole::User => (&self.config.avatars.user, DEFAULT_AVATARS[2]),
        };
        match configured {
            Some(image) => (image.bytes.clone(), image.mime),
            None => (Bytes::from_static(default), "image/png"),
        }
    }

    fn asset(&self, name: &str) -> Option<(&'static [u8], &'static str)> {
        ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, bytes, mime)| (*bytes, *mime))
    }

    fn snippet(&self) -> String {
        format!("<script src=\"{}/web/{}/widget.js\" async></script>", self.config.public_url, self.account)
    }

    fn public_url(&self) -> &str {
        &self.config.public_url
    }

    fn rates(&self) -> VisitorRates {
        let r = self.config.rate_limits;
        VisitorRates {
            per_ip: Rate::per_minute(r.per_ip_per_minute),
            per_visitor: Rate::per_minute(r.per_visitor_per_minute),
            per_widget: Rate::per_second(r.per_widget_per_second),
        }
    }

    fn gone_after(&self) -> Duration {
        self.config.gone_after
    }

    fn allows_any_origin(&self) -> bool {
        self.config.allowed_origins == AllowedOrigins::Any
    }
}
