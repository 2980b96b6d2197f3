//! VK's wire format: the Callback API envelope and the objects inside it (private).
//!
//! Every struct is lenient (`#[serde(default)]`, unknown fields ignored): a field VK drops or
//! adds does not make a callback unreadable. An object that still does not fit becomes an
//! `unsupported` event with the raw JSON, never an error.
//!
//! Sources: the Callback API envelope `callback_base` and the message objects in the official
//! schema <https://github.com/VKCOM/vk-api-schema> (`callback/objects.json`,
//! `messages/objects.json`), and <https://dev.vk.com/ru/api/community-events/json-schema>.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The top-level fields of a callback that authenticate it (`type`, `secret`, `group_id`),
/// read straight from the body: strings are borrowed where they have no escapes, every other
/// key and value is skipped without building a JSON tree. A repeated key keeps its last value,
/// as a JSON object read whole would.
#[derive(Debug, Default)]
pub(crate) struct Head<'a> {
    pub kind: Option<Scalar<'a>>,
    pub secret: Option<Scalar<'a>>,
    pub group_id: Option<Scalar<'a>>,
}

/// A top-level value as far as authentication cares: text, an integer, or anything else.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Text(Cow<'a, str>),
    Integer(Option<i64>),
    Other,
}

impl Scalar<'_> {
    /// An integer given as a JSON number or as a string of digits (what [`as_i64`] reads).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Text(s) => s.trim().parse().ok(),
            Scalar::Integer(n) => *n,
            Scalar::Other => None,
        }
    }
}

/// An integer given as a JSON number or as a string of digits.
pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Head<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadVisitor;
        impl<'de> Visitor<'de> for HeadVisitor {
            type Value = Head<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head<'de>, A::Error> {
                let mut head = Head::default();
                // Keys are read as `Scalar` too: borrowed, not copied, unless they hold escapes.
                while let Some(key) = map.next_key::<Scalar<'de>>()? {
                    let slot = match &key {
                        Scalar::Text(k) if k == "type" => &mut head.kind,
                        Scalar::Text(k) if k == "secret" => &mut head.secret,
                        Scalar::Text(k) if k == "group_id" => &mut head.group_id,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<Scalar<'de>>()?);
                }
                Ok(head)
            }
        }
        deserializer.deserialize_map(HeadVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Integer(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Integer(i64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// `messages_message`: the object of `message_edit` / `message_reply`, `object.message` of
/// `message_new` since API 5.103, and the whole object of `message_new` before it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Message {
    /// Global message id; `0` for messages a community sees in group chats.
    pub id: i64,
    /// The message's number within its conversation (the only id in group chats).
    pub conversation_message_id: i64,
    /// Unix seconds.
    pub date: i64,
    /// Unix seconds of the last edit.
    pub update_time: Option<i64>,
    /// The conversation: a user id, `2000000000 + chat`, or `-community`.
    pub peer_id: i64,
    /// The author.
    pub from_id: i64,
    pub text: String,
    pub attachments: Vec<Value>,
    pub fwd_messages: Vec<Value>,
    pub reply_message: Option<MessageRef>,
    pub geo: Option<Geo>,
    /// Service messages in group chats (`chat_invite_user`, `chat_kick_user`, ...).
    pub action: Option<Value>,
    /// Button payload of a keyboard text button (a JSON string).
    pub payload: Option<String>,
}

/// The parts of a quoted message that name it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MessageRef {
    pub id: i64,
    pub conversation_message_id: i64,
    pub peer_id: i64,
}

/// `base_geo`: `coordinates` is `{latitude, longitude}` in current versions and the string
/// `"lat lon"` in old ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Geo {
    pub coordinates: Value,
    pub place: Option<Place>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Place {
    pub title: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
}

/// `photos_photo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Photo {
    pub id: i64,
    pub owner_id: i64,
    pub access_key: Option<String>,
    pub sizes: Vec<PhotoSize>,
}

/// One rendition of a photo; `type` is VK's size letter (`s m x y z w`, cropped `o p q r`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PhotoSize {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub width: u64,
    pub height: u64,
}

/// `docs_doc`. `type`: 1 text, 2 archive, 3 gif, 4 image, 5 audio, 6 video, 7 e-book, 8 other.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Doc {
    pub id: i64,
    pub owner_id: i64,
    pub access_key: Option<String>,
    pub title: Option<String>,
    pub ext: Option<String>,
    pub size: Option<u64>,
    pub url: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<i64>,
}

/// `messages_audio_message`: a voice note.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AudioMessage {
    pub id: i64,
    pub owner_id: i64,
    pub access_key: Option<String>,
    pub duration: Option<u32>,
    pub link_ogg: Option<String>,
    pub link_mp3: Option<String>,
}

/// `audio_audio`: a music track.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Audio {
    pub id: i64,
    pub owner_id: i64,
    pub access_key: Option<String>,
    pub artist: Option<String>,
    pub title: Option<String>,
    pub duration: Option<u32>,
    pub url: Option<String>,
}

/// `video_video`: VK gives no direct file URL for videos.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Video {
    pub id: i64,
    pub owner_id: i64,
    pub access_key: Option<String>,
    pub title: Option<String>,
    pub duration: Option<u32>,
}

/// `base_sticker`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Sticker {
    pub product_id: Option<i64>,
    pub sticker_id: Option<i64>,
    pub images: Vec<Image>,
    pub images_with_background: Vec<Image>,
}

/// A rendition of a sticker or graffiti.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Image {
    pub url: String,
    pub width: u64,
    pub height: u64,
}

/// `messages_graffiti`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Graffiti {
    pub id: i64,
    pub owner_id: i64,
    pub access_key: Option<String>,
    pub url: Option<String>,
}

/// `base_link`: a link snippet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Link {
    pub url: Option<String>,
    pub title: Option<String>,
}

/// `wall_wallpost` (only what names it; the rest stays in `raw`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WallPost {
    pub id: i64,
    pub owner_id: Option<i64>,
    pub to_id: Option<i64>,
    pub from_id: Option<i64>,
    pub access_key: Option<String>,
    pub text: Option<String>,
}

/// `message_allow` / `message_deny`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Permission {
    pub user_id: i64,
    /// `message_allow` only: the `key` given to `messages.allowMessagesFromGroup` (a widget's ref).
    pub key: Option<String>,
}

/// `message_event`: a callback button was pressed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ButtonEvent {
    pub user_id: i64,
    pub peer_id: i64,
    /// Needed to answer with `messages.sendMessageEventAnswer` (kept in `raw`).
    pub event_id: String,
    pub payload: Value,
    pub conversation_message_id: i64,
}

/// `message_read`: the customer read the community's messages up to `read_message_id`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Read {
    pub from_id: i64,
    pub peer_id: i64,
    pub read_message_id: i64,
    pub conversation_message_id: i64,
}

/// An API answer: `{"response": ...}` or `{"error": {"error_code", "error_msg"}}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiAnswer {
    pub response: Option<Value>,
    pub error: Option<ApiError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiError {
    pub error_code: i64,
    pub error_msg: String,
}

/// `photos.getMessagesUploadServer` / `docs.getMessagesUploadServer`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UploadServer {
    pub upload_url: String,
}

/// What the photo upload server answers; `photo` is `"[]"` when it took nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PhotoUpload {
    pub server: Value,
    pub photo: String,
    pub hash: String,
    pub error: Option<Value>,
}

/// What the document upload server answers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DocUpload {
    pub file: Option<String>,
    pub error: Option<Value>,
    pub error_descr: Option<String>,
}

/// A saved photo or document: what `photos.saveMessagesPhoto` and `docs.save` return.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Saved {
    pub id: i64,
    pub owner_id: i64,
    pub access_key: Option<String>,
}
