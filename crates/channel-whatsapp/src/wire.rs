//! WhatsApp Cloud API wire types (private): the `messages` webhook and the send API's answers.
//!
//! Webhook reference: <https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>.
//! Every type tolerates unknown fields; anything that does not fit becomes an `unsupported`
//! event in `parse.rs`, never an error.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `{"object": "whatsapp_business_account", "entry": [...]}`. Entries are kept as JSON so that
/// one odd entry cannot spoil its neighbours.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub object: Option<String>,
    #[serde(default)]
    pub entry: Vec<Value>,
}

/// `entry[]`: the WhatsApp Business Account id and its changes.
#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    #[serde(default)]
    pub changes: Vec<Value>,
}

/// `entry[].changes[]`: `field` names the webhook (`messages`, `message_template_status_update`, ...).
#[derive(Debug, Deserialize)]
pub(crate) struct Change {
    pub field: String,
    #[serde(default)]
    pub value: Value,
}

/// `changes[].value` of the `messages` field.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MessagesValue {
    #[serde(default)]
    pub contacts: Vec<Profile>,
    #[serde(default)]
    pub messages: Vec<Value>,
    #[serde(default)]
    pub statuses: Vec<Value>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// `value.contacts[]`: who sent the messages of this change. `wa_id` is the phone number,
/// absent for a user who adopted a username (unless Meta's phone-number rules still share it);
/// `user_id` is the business-scoped user id (BSUID, e.g. `US.13491208655302741918`), always sent
/// since the usernames rollout.
#[derive(Debug, Deserialize)]
pub(crate) struct Profile {
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    pub profile: Option<ProfileName>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProfileName {
    pub name: Option<String>,
    /// The user's WhatsApp username, when they adopted one.
    pub username: Option<String>,
}

/// `value.messages[]`. The sender (`from`: phone number digits, absent for a user who adopted
/// a username and whose number Meta withholds; `from_user_id`: the business-scoped user id) is
/// read from the raw item in `parse.rs`, so that an unreadable item still names its sender.
#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    /// Set for messages in a group (not modelled here).
    pub group_id: Option<String>,
    pub id: String,
    /// Unix seconds; unreadable values are left out.
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub timestamp: Option<i64>,
    /// Click-to-WhatsApp ad or post the customer came from.
    pub referral: Option<Referral>,
    #[serde(flatten)]
    pub content: Content,
}

/// What a message carries; shared by `messages[]` and `messages[].edit.message`.
#[derive(Debug, Deserialize)]
pub(crate) struct Content {
    #[serde(rename = "type")]
    pub kind: String,
    pub context: Option<Context>,
    pub text: Option<Text>,
    pub image: Option<Media>,
    pub audio: Option<Media>,
    pub video: Option<Media>,
    pub document: Option<Media>,
    pub sticker: Option<Media>,
    pub location: Option<Location>,
    pub contacts: Option<Vec<SharedContact>>,
    pub interactive: Option<Interactive>,
    pub button: Option<Button>,
    pub reaction: Option<Reaction>,
    pub edit: Option<Edit>,
    pub revoke: Option<Revoke>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Context {
    /// The message replied to (or that carried the pressed button).
    pub id: Option<String>,
    #[serde(default)]
    pub forwarded: bool,
    #[serde(default)]
    pub frequently_forwarded: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Text {
    pub body: String,
}

/// `image`, `audio`, `video`, `document` and `sticker` objects.
#[derive(Debug, Deserialize)]
pub(crate) struct Media {
    pub id: Option<String>,
    pub mime_type: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    /// A download URL (newer API versions and edits include it).
    pub url: Option<String>,
    /// `audio`: a voice note recorded in WhatsApp.
    #[serde(default)]
    pub voice: bool,
    /// `sticker`: an animated sticker.
    #[serde(default)]
    pub animated: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// One card of a `contacts` message.
#[derive(Debug, Deserialize)]
pub(crate) struct SharedContact {
    pub name: Option<ContactName>,
    #[serde(default)]
    pub phones: Vec<ContactPhone>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ContactName {
    pub formatted_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ContactPhone {
    pub phone: Option<String>,
    pub wa_id: Option<String>,
}

/// A reply to an interactive message: `button_reply`, `list_reply` or `nfm_reply` (a WhatsApp
/// Flow or address message completed); others are unsupported.
#[derive(Debug, Deserialize)]
pub(crate) struct Interactive {
    #[serde(rename = "type")]
    pub kind: String,
    pub button_reply: Option<Choice>,
    pub list_reply: Option<Choice>,
    pub nfm_reply: Option<NfmReply>,
}

/// `interactive.nfm_reply`: what the user submitted in a Flow (`name: flow`, `body: "Sent"`) or
/// an address message (`name: address_message`); `response_json` is a JSON document as a string.
/// <https://developers.facebook.com/documentation/business-messaging/whatsapp/flows/guides/receiveflowresponse>
#[derive(Debug, Deserialize)]
pub(crate) struct NfmReply {
    pub name: Option<String>,
    pub body: Option<String>,
    pub response_json: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Choice {
    pub id: String,
    pub title: Option<String>,
}

/// A quick-reply button of a template.
#[derive(Debug, Deserialize)]
pub(crate) struct Button {
    pub payload: String,
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Reaction {
    pub message_id: String,
    /// Empty or absent when the reaction was removed.
    pub emoji: Option<String>,
}

/// `edit`: the user edited an earlier message (text, or a caption).
#[derive(Debug, Deserialize)]
pub(crate) struct Edit {
    pub original_message_id: String,
    pub message: Box<Content>,
}

/// `revoke`: the user deleted an earlier message for everyone.
#[derive(Debug, Deserialize)]
pub(crate) struct Revoke {
    pub original_message_id: String,
}

/// Click-to-WhatsApp referral (ad or post).
#[derive(Debug, Deserialize)]
pub(crate) struct Referral {
    pub source_url: Option<String>,
    pub source_id: Option<String>,
    pub source_type: Option<String>,
    pub headline: Option<String>,
}

/// `value.statuses[]`: a receipt for a message we sent.
#[derive(Debug, Deserialize)]
pub(crate) struct Status {
    /// The wamid the send API returned.
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub errors: Vec<Error>,
}

/// An error object, in webhooks (`statuses[].errors[]`, `value.errors[]`).
#[derive(Debug, Deserialize)]
pub(crate) struct Error {
    pub code: i64,
    pub title: Option<String>,
    pub message: Option<String>,
    pub error_data: Option<ErrorData>,
}

pub(crate) use chatgate_adapter::meta::graph::ErrorData;

/// Unix seconds, sent as a string (`"1697043223"`) and, defensively, accepted as a number.
/// Anything else is `None` rather than an error: a message is worth more than its time.
fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

// ---- Send API ----

/// `POST /{phone_number_id}/messages` body.
#[derive(Debug, Serialize)]
pub(crate) struct SendMessage<'a> {
    pub messaging_product: &'static str,
    pub recipient_type: &'static str,
    /// A phone number (wa_id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
    /// A business-scoped user id (BSUID) or parent BSUID, for users known by no phone number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<ReplyContext<'a>>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub body: SendBody<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReplyContext<'a> {
    pub message_id: &'a str,
}

/// The object named by `type`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SendBody<'a> {
    Text {
        body: &'a str,
    },
    Image(MediaRef<'a>),
    Audio(MediaRef<'a>),
    Video(MediaRef<'a>),
    Document(MediaRef<'a>),
    Sticker(MediaRef<'a>),
    Template(SendTemplate<'a>),
    /// Reply buttons or a list message (`type: interactive`), built by `send.rs`.
    Interactive(Value),
}

/// Mark-as-read (with the typing indicator): `POST /{phone_number_id}/messages`
/// `{"messaging_product": "whatsapp", "status": "read", "message_id": …, "typing_indicator"?: {"type": "text"}}`.
#[derive(Debug, Serialize)]
pub(crate) struct MarkRead<'a> {
    pub messaging_product: &'static str,
    pub status: &'static str,
    pub message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typing_indicator: Option<TypingIndicator>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TypingIndicator {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `{"success": true}`, the answer to [`MarkRead`].
#[derive(Debug, Deserialize)]
pub(crate) struct Success {
    #[serde(default)]
    pub success: bool,
}

/// An uploaded media object by id.
#[derive(Debug, Serialize)]
pub(crate) struct MediaRef<'a> {
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SendTemplate<'a> {
    pub name: &'a str,
    pub language: TemplateLanguage<'a>,
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    pub components: &'a [Value],
}

#[derive(Debug, Serialize)]
pub(crate) struct TemplateLanguage<'a> {
    pub code: &'a str,
}

/// Success answer of `/messages`: `{"messages": [{"id": "wamid..."}]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SendResponse {
    #[serde(default)]
    pub messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SentMessage {
    pub id: String,
}

/// Success answer of `/media`: `{"id": "<media id>"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadResponse {
    pub id: String,
}

/// `GET /{media-id}`: where to download an inbound file (the URL needs the bearer token too).
#[derive(Debug, Deserialize)]
pub(crate) struct MediaInfo {
    pub url: String,
    #[serde(default)]
    pub mime_type: Option<String>,
}
