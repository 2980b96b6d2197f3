//! Bot API wire types.
//!
//! Inbound updates are read with teloxide-core's types (the Bot API's
//! [`Update`](https://core.telegram.org/bots/api#update) and everything inside it); we use the
//! types only, not teloxide's HTTP server or client. Where a real payload does not fit them
//! (pre-3.0 users without `is_bot`, files without `file_unique_id`, an `inline_query` whose `id`
//! is a number, ...), teloxide yields [`UpdateKind::Error`] and `parse` reads the JSON value
//! instead.
//!
//! The answer envelope of API calls (<https://core.telegram.org/bots/api#making-requests>) is
//! small and ours, so that an unexpected answer never fails to decode.

use serde::Deserialize;

pub(crate) use teloxide_core::types::{
    CallbackQuery, ChatMember, ChatMemberKind, ChatMemberUpdated, MaybeAnonymousUser, MediaKind, Message,
    MessageEntity, MessageEntityKind, MessageKind, MessageReactionUpdated, PhotoSize, ReactionType, Update, UpdateKind,
    User,
};

/// Every Bot API answer: `{"ok": true, "result": …}` or
/// `{"ok": false, "error_code": 403, "description": "…", "parameters": {…}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiAnswer {
    #[serde(default)]
    pub ok: bool,
    /// The sent [`Message`] for the send methods; read leniently (only `message_id` matters).
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<ResponseParameters>,
}

/// [ResponseParameters](https://core.telegram.org/bots/api#responseparameters): why a request
/// failed and how to recover.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResponseParameters {
    /// Flood control: seconds to wait before repeating the request.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// The group became a supergroup with this id.
    #[serde(default)]
    pub migrate_to_chat_id: Option<i64>,
}
