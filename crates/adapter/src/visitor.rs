//! The contract for a channel whose "provider" is the gateway itself: the web widget.
//!
//! Messenger channels receive webhooks and call a provider's API. A web widget has no provider:
//! visitors call the gateway's visitor routes (`/web/{account}/...`, owned by the server), and an
//! operator's message reaches a visitor by being written to that visitor's durable stream, which
//! the server holds. Two deliberate additions to the adapter contract make that possible without
//! the channel crate knowing the server or the queue:
//!
//! - [`Visitors`]: what such a channel knows about its visitors — allowed origins, signed visitor
//!   tokens, identity verification, reading visitor requests into events, its public settings. An
//!   adapter offers it through [`crate::Adapter::visitors`]; the server's visitor routes call it.
//! - [`Mailbox`]: what the server gives such an adapter at start ([`Visitors::attach_mailbox`]) so that
//!   [`crate::Adapter::send`] can post an item to a visitor's stream, store a file for the visitor and
//!   wait for the visitor to connect.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chatgate_model::{Attachment, LimitViolation, Source};
use serde_json::Value;

use crate::{InboundEvent, Media, Rate, SendError};

/// One item for a visitor's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxItem {
    pub account: String,
    pub visitor: String,
    /// Makes posting idempotent: the same key for the same visitor returns the item stored first.
    pub key: String,
    /// The stream event type (`message`, `feedback_request`, ...).
    pub kind: String,
    pub data: Value,
}

/// Where a posted item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    /// Its position on the visitor's stream.
    pub n: u64,
    /// When the item was first stored (earlier than now when the key was posted before).
    pub first_posted_at: chrono::DateTime<chrono::Utc>,
    /// Whether the visitor had an open stream when it was posted.
    pub connected: bool,
}

/// The gateway's side of visitor streams, given to adapters whose provider is the gateway.
#[async_trait]
pub trait Mailbox: Send + Sync + std::fmt::Debug {
    /// Stores `item` durably on the visitor's stream (once per key) and wakes the visitor's open streams.
    async fn post(&self, item: MailboxItem) -> Result<Posted, SendError>;

    /// Stores an outbound file for the visitor; returns its reference (served at `/web/{account}/files/{ref}`).
    async fn store_file(&self, account: &str, visitor: &str, media: &Media) -> Result<String, SendError>;

    /// Waits until the visitor has an open stream or `timeout` passes; whether they have one.
    async fn wait_connected(&self, account: &str, visitor: &str, timeout: Duration) -> bool;
}

/// `POST /web/{account}/sessions`, as the widget sends it.
#[derive(Debug, Clone, Copy)]
pub struct SessionRequest<'a> {
    pub body: &'a [u8],
}

/// A session the channel granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub token: String,
    pub visitor: Visitor,
    /// The visitor's source (referrer, landing page, UTM tags) as the widget reported it.
    pub source: Option<Source>,
    /// Events to store for the opening (the page the chat was opened on).
    pub events: Vec<InboundEvent>,
}

/// An authenticated visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    /// The visitor id: the chat id and customer id of the visitor's events.
    pub id: String,
    /// The site's user id, when identity verification proved it.
    pub user_id: Option<String>,
}

/// A visitor request route that becomes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitorRoute {
    /// `POST messages`.
    Message,
    /// `POST pageviews`.
    PageView,
    /// `POST feedback`.
    Feedback,
    /// `POST receipts`.
    Receipts,
    /// `POST postbacks`: the visitor pressed a button of an operator message.
    Postback,
}

impl VisitorRoute {
    /// The name used in the `route=` query of a recorded visitor request.
    pub const fn as_str(self) -> &'static str {
        match self {
            VisitorRoute::Message => "messages",
            VisitorRoute::PageView => "pageviews",
            VisitorRoute::Feedback => "feedback",
            VisitorRoute::Receipts => "receipts",
            VisitorRoute::Postback => "postbacks",
        }
    }

    /// Every route, for lookups by name.
    pub const ALL: [VisitorRoute; 5] = [
        VisitorRoute::Message,
        VisitorRoute::PageView,
        VisitorRoute::Feedback,
        VisitorRoute::Receipts,
        VisitorRoute::Postback,
    ];
}

/// What a visitor request became.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitorInbound {
    pub events: Vec<InboundEvent>,
    /// For `messages`: the widget's client id (the idempotency key of the POST).
    pub client_id: Option<String>,
    /// For `receipts`: the stream ids acknowledged, to check they are this visitor's.
    pub acknowledged: Vec<String>,
}

/// Why a visitor request was refused. The server maps each to one answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VisitorError {
    #[error("the visitor token is missing, forged or of another widget")]
    TokenInvalid,
    #[error("this widget requires a verified user id")]
    IdentityRequired,
    #[error("the user hash does not match the user id")]
    IdentityInvalid,
    #[error("the body is not JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Limit(LimitViolation),
}

/// How fast visitors may call, each limit on its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitorRates {
    pub per_ip: Rate,
    pub per_visitor: Rate,
    pub per_widget: Rate,
}

/// A role whose avatar the widget shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvatarRole {
    Bot,
    Operator,
    User,
}

/// What a channel whose provider is the gateway knows about its visitors.
pub trait Visitors: Send + Sync {
    /// Gives the channel the gateway's side of visitor streams (called once, at start).
    fn attach_mailbox(&self, mailbox: Arc<dyn Mailbox>);

    /// Whether requests with this `Origin` are served (and answered with CORS headers).
    fn origin_allowed(&self, origin: &str) -> bool;

    /// Whether every origin is allowed (`["*"]` written out; the gateway warns at start).
    fn allows_any_origin(&self) -> bool;

    /// Opens or continues a session (`POST sessions`): checks a presented token and identity.
    fn open_session(&self, request: &SessionRequest<'_>) -> Result<Session, VisitorError>;

    /// The visitor of a bearer token, checked in constant time.
    fn authenticate(&self, token: &str) -> Result<Visitor, VisitorError>;

    /// Reads an authenticated visitor's request into events; `upload` resolves an upload reference
    /// the visitor attached (`None`: no such upload of theirs).
    fn receive(
        &self,
        visitor: &Visitor,
        route: VisitorRoute,
        body: &[u8],
        upload: &dyn Fn(&str) -> Option<Attachment>,
    ) -> Result<VisitorInbound, VisitorError>;

    /// The stream item (`kind`, data) that echoes a stored visitor event to the visitor's tabs.
    fn echo(&self, event: &chatgate_model::Event) -> Option<(String, Value)>;

    /// The widget's public settings (`GET config`).
    fn public_config(&self) -> Value;

    /// The messenger links of a session, each carrying the visitor's id where the messenger reports it back.
    fn session_links(&self, visitor: &str) -> Value;

    /// The avatar image of `role` (bytes and content type): the configured one or the built-in default.
    fn avatar(&self, role: AvatarRole) -> (Bytes, &'static str);

    /// A static file of the widget by name (`widget.js`, `widget-ui.js`, `widget.css`) and its content type.
    fn asset(&self, name: &str) -> Option<(&'static [u8], &'static str)>;

    /// The frame code to paste into a site: the script tag that loads the widget.
    fn snippet(&self) -> String;

    /// The public URL of the gateway as the site's visitors reach it (no trailing `/`).
    fn public_url(&self) -> &str;

    /// How fast visitors may call.
    fn rates(&self) -> VisitorRates;

    /// How long an operator's message waits for the visitor to connect before it fails with `visitor_gone`.
    fn gone_after(&self) -> Duration;
}
