//! The common model of chatgate and the versioned envelope (v1) that crosses to the core.
//!
//! This crate is the contract every other crate depends on. It holds data types,
//! documented limits and pure functions only: no HTTP, no async runtime, no I/O.
//!
//! Three layers of types meet here only in their middle one: provider wire types stay
//! private to their channel crate, are converted into [`Event`]s, and an [`Event`]
//! serialises to the envelope the core consumes (see `schema/envelope-v1.json`).

mod envelope;
mod error_code;
mod ids;
pub mod limits;
mod outbound;
pub mod rich;
mod status;

pub use envelope::{
    Attachment, AttachmentKind, Contact, Customer, ENVELOPE_VERSION, Event, EventKind, Feedback, Location, Message,
    Page, Postback, Reaction, Source, StatusInfo, TextEntity, Utm,
};
pub use error_code::{ErrorCode, ParseErrorCodeError};
pub use ids::{Channel, Conversation, CustomerRef, ParseChannelError};
pub use limits::{LimitOverrides, LimitViolation, Limits};
pub use outbound::{
    ErrorInfo, FeedbackAsk, MessageRecord, OutboundAttachment, OutboundRequest, StatusChange, Template,
};
pub use rich::{Button, ButtonRules, ButtonViolation, ChatAction};
pub use status::Status;
