//! The contract every channel adapter implements, and helpers they share.
//!
//! A channel crate depends on this crate and on `chatgate-model` only. It knows its provider's
//! wire format, how the provider authenticates webhooks and how to call the provider's send API.
//! It does not know routes, HTTP status codes, the queue or the core: the server turns the
//! typed errors here into answers, and stores what [`Adapter::parse`] returns.
//!
//! Adding a channel is a new crate with the same file shape as the others
//! (`config.rs wire.rs verify.rs parse.rs send.rs`) plus one line in the gateway's registry.
//!
//! What channels would otherwise write each for themselves lives here once: settings checks
//! ([`settings`]), transport errors without URLs and `Retry-After` ([`transport`]), constant-time
//! and HMAC checks ([`verify`]), Meta's webhook scheme and Graph errors ([`meta`]).
//!
//! This crate reads `reqwest` errors but has no HTTP server, no queue and no tokio runtime.

mod contract;
mod error;
pub mod meta;
mod outbound;
pub mod recorded;
mod secret;
pub mod settings;
pub mod transport;
pub mod verify;
pub mod visitor;
pub mod webhook;
pub mod webhooks;

pub use contract::{
    Adapter, BuildError, BuildFn, Capabilities, ChannelFactory, ChannelFacts, DEFAULT_MAX_BODY_BYTES, Factory, Inbound,
    InboundEvent, NUMBERED_ONLY, Press, Rate, RateLimits, Reply, WebhookRequest,
};
pub use error::{SendError, SendErrorKind, WebhookError};
pub use outbound::{DEFAULT_FEEDBACK_PROMPT, Media, MediaDownload, OutboundPart, PartBody, SendReceipt};
pub use secret::Secret;
pub use visitor::{Mailbox, Visitors};
pub use webhooks::{LastError, WebhookAdmin, WebhookAdminError, WebhookReport, WebhookTarget};
