//! Callback API JSON → common model.
//!
//! One callback carries one event. What becomes what:
//!
//! | VK `type` | event |
//! |---|---|
//! | `confirmation` | no event; the reply is the confirmation string |
//! | `message_new` (both shapes) | `message` (service messages with `action` → `unsupported`) |
//! | `message_edit` | `message_edited` |
//! | `message_reply` | `status` `sent` for that message id, the message kept in `raw` |
//! | `message_allow` / `message_deny` | `customer_subscribed` / `customer_unsubscribed` |
//! | `message_event` | `postback` (payload `{"p": …}` of our buttons unwrapped; `feedback` for a feedback button), answered with `messages.sendMessageEventAnswer` once stored |
//! | `message_read` | `status` `read` |
//! | anything else | `unsupported` with the body (minus `secret`) in `raw` |
//!
//! **Message ids.** In private chats VK's message `id` is global and grows monotonically; it is
//! the external id. In group chats a community sees `id: 0` and only the per-conversation
//! `conversation_message_id`, and button events (`message_event`) name their message by it
//! alone; such a message is `cmid:<peer_id>:<conversation_message_id>` (see [`message_ref`]).
//! `reply_to` takes either form when sending. A quoted message (`reply_message`) becomes
//! `reply_to` the same way: its `id`, or the `cmid:` form when its `id` is 0.
//!
//! **Not in the model, kept in `raw`** (the VK message object): forwarded messages
//! (`fwd_messages`; the event says `forwarded: true`), keyboard `payload`, wall posts, and
//! attachment kinds without a model (market, poll, gift, ...), which still appear as `file`
//! attachments whose `variant` is VK's type. VK sends only ids, never names, so
//! `customer.name` is always `null`.
//!
//! Sources: <https://dev.vk.com/ru/api/community-events/json-schema>,
//! <https://github.com/VKCOM/vk-api-schema> (`callback/objects.json`, `messages/objects.json`).

use chatgate_adapter::{Inbound, InboundEvent, Press, Reply, WebhookError};
use chatgate_model::rich::typed_press;
use chatgate_model::{
    Attachment, AttachmentKind, Customer, Event, EventKind, Location, Message, Postback, Source, Status, StatusInfo,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::wire::{self, as_i64};

/// What VK must get back for every callback but `confirmation`; anything else makes it resend.
pub const OK_REPLY: &str = "ok";

/// Normalises one authenticated callback body; the one place it is read into a JSON tree.
/// Only a body that is not JSON is an error.
pub(crate) fn parse(account: &str, config: &Config, body: &[u8]) -> Result<Inbound, WebhookError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    Ok(normalise(account, config, root))
}

fn normalise(account: &str, config: &Config, root: Value) -> Inbound {
    let root = without_secret(root);
    let kind = root.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
    if kind == "confirmation" {
        return Inbound { events: Vec::new(), reply: Reply::Text(config.confirmation.expose().to_owned()) };
    }
    let object = root.get("object").cloned().unwrap_or(Value::Null);
    let event = match kind.as_str() {
        "message_new" => new_message(account, &object, EventKind::Message),
        "message_edit" => new_message(account, &object, EventKind::MessageEdited),
        "message_reply" => outgoing_echo(account, &object),
        "message_allow" => permission(account, &object, EventKind::CustomerSubscribed),
        "message_deny" => permission(account, &object, EventKind::CustomerUnsubscribed),
        "message_event" => button(account, &object),
        "message_read" => read(account, &object),
        _ => None,
    }
    .unwrap_or_else(|| unsupported(account, &object, &root));
    let dedup_key = dedup_key(&kind, &root, &object);
    let mut inbound = InboundEvent::new(Some(dedup_key), typed_press(event));
    // A callback button press is answered (`messages.sendMessageEventAnswer`) once stored.
    if kind == "message_event"
        && inbound.event.kind != EventKind::Unsupported
        && let Some(b) = decode::<wire::ButtonEvent>(&object)
        && !b.event_id.is_empty()
    {
        let press = Press { id: b.event_id, user_id: b.user_id.to_string(), peer_id: b.peer_id.to_string() };
        inbound = inbound.pressed(press);
    }
    Inbound { events: vec![inbound], reply: Reply::Text(OK_REPLY.to_owned()) }
}

/// The external id of a message: its global `id` when VK gives one, else
/// `cmid:<peer_id>:<conversation_message_id>` (group chats); `None` when it has neither.
pub(crate) fn message_ref(id: i64, peer_id: i64, conversation_message_id: i64) -> Option<String> {
    if id > 0 {
        Some(id.to_string())
    } else if conversation_message_id > 0 && peer_id != 0 {
        Some(format!("cmid:{peer_id}:{conversation_message_id}"))
    } else {
        None
    }
}

/// The key that makes a redelivery recognisable.
///
/// VK documents `event_id` as unique per event ("if it arrives twice or more, ignore it"), so
/// it is the key: `event:<event_id>`. Old payloads without `event_id` fall back to what names
/// the event: `<type>:<message ref>` for messages (plus the edit time for `message_edit`, so two
/// edits stay two events), `<type>:<object.event_id>` for button presses, and otherwise
/// `body:<sha256 of the body>`, which a redelivery repeats byte for byte (the retry counter
/// is a header, not part of the body).
fn dedup_key(kind: &str, root: &Value, object: &Value) -> String {
    if let Some(id) = root.get("event_id").and_then(Value::as_str).filter(|id| !id.is_empty()) {
        return format!("event:{id}");
    }
    match kind {
        "message_new" | "message_edit" | "message_reply" => {
            if let Some(m) = decode::<wire::Message>(message_object(object))
                && let Some(r) = message_ref(m.id, m.peer_id, m.conversation_message_id)
            {
                return match kind {
                    "message_edit" => format!("{kind}:{r}:{}", m.update_time.unwrap_or(m.date)),
                    _ => format!("{kind}:{r}"),
                };
            }
        }
        "message_event" => {
            if let Some(id) = object.get("event_id").and_then(Value::as_str).filter(|id| !id.is_empty()) {
                return format!("{kind}:{id}");
            }
        }
        _ => {}
    }
    let bytes = serde_json::to_vec(root).unwrap_or_default();
    format!("body:{}", hex::encode(Sha256::digest(&bytes)))
}

/// `message_new` / `message_edit`: API 5.103+ wraps the message as `object.message` (beside
/// `client_info`); before 5.103 the object is the message itself.
fn new_message(account: &str, object: &Value, kind: EventKind) -> Option<Event> {
    let raw = message_object(object);
    let m: wire::Message = decode(raw)?;
    if m.action.is_some() {
        // A service message (member joined/left, title changed, ...): not a customer's words.
        return None;
    }
    let (mut message, lossy) = convert_message(account, &m);
    if !has_content(&message) {
        lift_forwarded(account, &m, &mut message);
    }
    if !has_content(&message) {
        // Nothing to show (an empty `message_new`, or only kinds VK gives nothing of): kept raw.
        return None;
    }
    let mut event = Event::new(kind, crate::CHANNEL, account, chat_of(&m).to_string());
    event.customer = customer(m.from_id);
    event.message = Some(message);
    if lossy {
        event.raw = Some(raw.clone());
    }
    Some(event)
}

/// Whether a message has anything a person could be shown.
fn has_content(m: &Message) -> bool {
    m.text.as_deref().is_some_and(|t| !t.trim().is_empty())
        || !m.attachments.is_empty()
        || m.location.is_some()
        || m.contact.is_some()
}

/// A message that only forwards others (`fwd_messages`, no text or attachment of its own) shows
/// what it forwards: their texts, one a line, and their attachments (nested forwards included).
/// The forwarded objects stay in `raw` (the event is lossy whenever `fwd_messages` is set).
fn lift_forwarded(account: &str, m: &wire::Message, into: &mut Message) {
    let mut texts = Vec::new();
    let mut stack: Vec<&Value> = m.fwd_messages.iter().rev().collect();
    while let Some(raw) = stack.pop() {
        let Some(f) = decode::<wire::Message>(raw) else { continue };
        let (content, _) = convert_message(account, &f);
        texts.extend(content.text);
        into.attachments.extend(content.attachments);
        into.location = into.location.take().or(content.location);
        stack.extend(raw.get("fwd_messages").and_then(Value::as_array).into_iter().flatten().rev());
    }
    if !texts.is_empty() {
        into.text = Some(texts.join("\n"));
    }
}

/// `message_reply`: VK echoes every message the community sends, ours and those an admin
/// typed in VK's own interface. It is not a customer message, so it becomes a `sent` receipt
/// for that message id (the server merges it into ours, or finds none for an admin's message);
/// the whole message stays in `raw`, so an admin's reply is not lost.
fn outgoing_echo(account: &str, object: &Value) -> Option<Event> {
    let raw = message_object(object);
    let m: wire::Message = decode(raw)?;
    let external_id = message_ref(m.id, m.peer_id, m.conversation_message_id)?;
    let mut event = Event::new(EventKind::Status, crate::CHANNEL, account, chat_of(&m).to_string());
    event.status = Some(StatusInfo {
        message_id: None,
        external_id: Some(external_id),
        status: Status::Sent,
        error: None,
        up_to: None,
    });
    event.raw = Some(raw.clone());
    Some(event)
}

/// `message_allow` / `message_deny`: the conversation with a user is the user's id.
fn permission(account: &str, object: &Value, kind: EventKind) -> Option<Event> {
    let p: wire::Permission = decode(object)?;
    if p.user_id == 0 {
        return None;
    }
    let mut event = Event::new(kind, crate::CHANNEL, account, p.user_id.to_string());
    event.customer = customer(p.user_id);
    if let Some(key) = p.key.filter(|k| !k.is_empty()) {
        event.source = Some(Source::new("deep_link", Some(key)));
    }
    Some(event)
}

/// `message_event`: a callback button. The payload (JSON) becomes a string; the `event_id`
/// needed for `messages.sendMessageEventAnswer` stays in `raw`.
fn button(account: &str, object: &Value) -> Option<Event> {
    let b: wire::ButtonEvent = decode(object)?;
    if b.peer_id == 0 {
        return None;
    }
    let payload = match &b.payload {
        // Our own buttons' payload: `{"p": "<the core's payload>"}` (`send.rs`).
        Value::Object(o) if o.len() == 1 && o.get("p").is_some_and(Value::is_string) => {
            o["p"].as_str().unwrap_or_default().to_owned()
        }
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut event = Event::new(EventKind::Postback, crate::CHANNEL, account, b.peer_id.to_string());
    event.customer = customer(b.user_id);
    event.postback =
        Some(Postback { payload, title: None, external_id: message_ref(0, b.peer_id, b.conversation_message_id) });
    event.raw = Some(object.clone());
    Some(event)
}

/// `message_read`: `read_message_id` is the last message the customer read. VK message ids
/// grow within a conversation, so earlier messages are read too, but the envelope can only say
/// "up to" by time: this receipt names `read_message_id` alone, and earlier outbound messages
/// move to `read` only through their own receipts.
fn read(account: &str, object: &Value) -> Option<Event> {
    let r: wire::Read = decode(object)?;
    let external_id = message_ref(r.read_message_id, r.peer_id, r.conversation_message_id)?;
    let chat = if r.peer_id != 0 { r.peer_id } else { r.from_id };
    let mut event = Event::new(EventKind::Status, crate::CHANNEL, account, chat.to_string());
    event.customer = customer(r.from_id);
    event.status = Some(StatusInfo {
        message_id: None,
        external_id: Some(external_id),
        status: Status::Read,
        error: None,
        up_to: None,
    });
    Some(event)
}

fn unsupported(account: &str, object: &Value, root: &Value) -> Event {
    let chat = object
        .get("peer_id")
        .or_else(|| object.get("message").and_then(|m| m.get("peer_id")))
        .and_then(as_i64)
        .map(|p| p.to_string())
        .unwrap_or_default();
    Event::unsupported(crate::CHANNEL, account, chat, root.clone())
}

/// The message object of `message_new`/`message_edit` in either shape.
fn message_object(object: &Value) -> &Value {
    match object.get("message") {
        Some(m @ Value::Object(_)) => m,
        _ => object,
    }
}

/// A message's content; `true` when something VK sent has no place in the model.
fn convert_message(account: &str, m: &wire::Message) -> (Message, bool) {
    let mut lossy = !m.fwd_messages.is_empty() || m.payload.is_some();
    let mut attachments = Vec::with_capacity(m.attachments.len());
    for a in &m.attachments {
        let (attachment, partial) = attachment(account, a);
        lossy |= partial;
        // VK media references cannot be fetched through the gateway: an attachment without a
        // URL could not be shown, so it stays in `raw` only.
        match attachment.url {
            Some(_) => attachments.push(attachment),
            None => lossy = true,
        }
    }
    let message = Message {
        external_id: message_ref(m.id, m.peer_id, m.conversation_message_id).unwrap_or_default(),
        text: Some(m.text.clone()).filter(|t| !t.is_empty()),
        attachments,
        reply_to: m.reply_message.as_ref().and_then(|r| {
            let peer = if r.peer_id != 0 { r.peer_id } else { m.peer_id };
            message_ref(r.id, peer, r.conversation_message_id)
        }),
        location: m.geo.as_ref().and_then(location),
        forwarded: !m.fwd_messages.is_empty(),
        sent_at: timestamp(m.date),
        edited_at: m.update_time.and_then(timestamp),
        ..Message::default()
    };
    (message, lossy)
}

/// One attachment; `true` when part of it is only in `raw`.
fn attachment(account: &str, value: &Value) -> (Attachment, bool) {
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("unknown");
    let inner = value.get(kind).unwrap_or(&Value::Null);
    let converted = match kind {
        "photo" => decode::<wire::Photo>(inner).map(|p| {
            let largest = largest_photo(&p.sizes);
            let a = Attachment {
                media: media(account, "photo", p.owner_id, p.id, p.access_key.as_deref()),
                url: largest,
                ..blank(AttachmentKind::Image)
            };
            (a, false)
        }),
        "doc" => decode::<wire::Doc>(inner).map(|d| {
            // Type 3 is a GIF, type 4 an image; everything else a file.
            let (kind, variant, mime) = match d.kind {
                Some(3) => (AttachmentKind::Image, Some("animation".to_owned()), Some("image/gif".to_owned())),
                Some(4) => (AttachmentKind::Image, None, None),
                _ => (AttachmentKind::File, None, None),
            };
            let a = Attachment {
                mime,
                size: d.size,
                name: d.title.clone().or_else(|| d.ext.clone().map(|e| format!("file.{e}"))),
                media: media(account, "doc", d.owner_id, d.id, d.access_key.as_deref()),
                url: non_empty(d.url),
                variant,
                ..blank(kind)
            };
            (a, false)
        }),
        "audio_message" => decode::<wire::AudioMessage>(inner).map(|v| {
            let (url, mime) = match (non_empty(v.link_ogg), non_empty(v.link_mp3)) {
                (Some(ogg), _) => (Some(ogg), Some("audio/ogg")),
                (None, Some(mp3)) => (Some(mp3), Some("audio/mpeg")),
                (None, None) => (None, None),
            };
            let a = Attachment {
                mime: mime.map(str::to_owned),
                media: media(account, "audio_message", v.owner_id, v.id, v.access_key.as_deref()),
                url,
                duration: v.duration,
                variant: Some("voice".to_owned()),
                ..blank(AttachmentKind::Audio)
            };
            (a, false)
        }),
        "audio" => decode::<wire::Audio>(inner).map(|t| {
            let name = match (non_empty(t.artist), non_empty(t.title)) {
                (Some(artist), Some(title)) => Some(format!("{artist} – {title}")),
                (artist, title) => title.or(artist),
            };
            let a = Attachment {
                name,
                media: media(account, "audio", t.owner_id, t.id, t.access_key.as_deref()),
                // VK withholds most track URLs from communities: then the track's page on vk.com.
                url: non_empty(t.url).or_else(|| page_url("audio", t.owner_id, t.id, None)),
                duration: t.duration,
                ..blank(AttachmentKind::Audio)
            };
            (a, false)
        }),
        "video" => decode::<wire::Video>(inner).map(|v| {
            // VK gives communities no file URL for videos: `url` is the video's page on vk.com.
            let a = Attachment {
                name: non_empty(v.title),
                media: media(account, "video", v.owner_id, v.id, v.access_key.as_deref()),
                url: page_url("video", v.owner_id, v.id, v.access_key.as_deref()),
                duration: v.duration,
                ..blank(AttachmentKind::Video)
            };
            (a, false)
        }),
        // A sticker is shown by its image; `sticker_id` names it (absent or 0: no reference is made up).
        "sticker" => decode::<wire::Sticker>(inner).and_then(|s| {
            let url = largest_image(&s.images).or_else(|| largest_image(&s.images_with_background));
            let reference = s.sticker_id.filter(|id| *id != 0).map(|id| format!("vk:{account}:sticker{id}"));
            if url.is_none() && reference.is_none() {
                return None;
            }
            Some((Attachment { media: reference, url, ..blank(AttachmentKind::Sticker) }, false))
        }),
        "graffiti" => decode::<wire::Graffiti>(inner).map(|g| {
            let a = Attachment {
                media: media(account, "graffiti", g.owner_id, g.id, g.access_key.as_deref()),
                url: non_empty(g.url),
                variant: Some("graffiti".to_owned()),
                ..blank(AttachmentKind::Image)
            };
            (a, false)
        }),
        "link" => decode::<wire::Link>(inner).map(|l| {
            let a = Attachment {
                name: non_empty(l.title),
                url: non_empty(l.url),
                variant: Some("link".to_owned()),
                ..blank(AttachmentKind::File)
            };
            (a, false)
        }),
        "wall" => decode::<wire::WallPost>(inner).map(|w| {
            // The post's text and media stay in `raw`; the attachment links to the post.
            let owner = w.owner_id.or(w.to_id).or(w.from_id).unwrap_or_default();
            let a = Attachment {
                media: media(account, "wall", owner, w.id, w.access_key.as_deref()),
                url: (owner != 0 && w.id != 0).then(|| format!("https://vk.com/wall{owner}_{}", w.id)),
                variant: Some("wall".to_owned()),
                ..blank(AttachmentKind::File)
            };
            (a, true)
        }),
        _ => None,
    };
    converted.unwrap_or_else(|| {
        // A kind without a model (market, poll, gift, story, ...) or one that did not decode:
        // visible as a file of that variant, the details in `raw`.
        let id = inner.get("id").and_then(as_i64).unwrap_or_default();
        let owner = inner.get("owner_id").and_then(as_i64).unwrap_or_default();
        let key = inner.get("access_key").and_then(Value::as_str);
        let a = Attachment {
            name: inner.get("title").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned),
            media: media(account, kind, owner, id, key),
            url: page_url(kind, owner, id, key),
            variant: Some(kind.to_owned()),
            ..blank(AttachmentKind::File)
        };
        (a, true)
    })
}

/// The page of a VK object on vk.com (`https://vk.com/<type><owner>_<id>`, e.g. `video-4144_1714`;
/// a `market` item is a `product` page), for attachments VK gives no file URL for; `None` without an id.
fn page_url(kind: &str, owner: i64, id: i64, access_key: Option<&str>) -> Option<String> {
    if id == 0 || owner == 0 {
        return None;
    }
    let kind = if kind == "market" { "product" } else { kind };
    Some(match access_key.filter(|k| !k.is_empty()) {
        Some(key) => format!("https://vk.com/{kind}{owner}_{id}?access_key={key}"),
        None => format!("https://vk.com/{kind}{owner}_{id}"),
    })
}

/// The biggest rendition of a photo: by pixel count, then by VK's size letter
/// (`s < m < o < p < q < r < x < y < z < w`; `o`–`r` are crops).
fn largest_photo(sizes: &[wire::PhotoSize]) -> Option<String> {
    const LETTERS: &str = "smopqrxyzw";
    sizes
        .iter()
        .filter(|s| !s.url.is_empty())
        .max_by_key(|s| (s.width.saturating_mul(s.height), LETTERS.find(s.kind.as_str()).map_or(0, |i| i + 1)))
        .map(|s| s.url.clone())
}

fn largest_image(images: &[wire::Image]) -> Option<String> {
    images.iter().filter(|i| !i.url.is_empty()).max_by_key(|i| i.width.saturating_mul(i.height)).map(|i| i.url.clone())
}

fn location(geo: &wire::Geo) -> Option<Location> {
    let (latitude, longitude) = match &geo.coordinates {
        Value::Object(c) => (c.get("latitude")?.as_f64()?, c.get("longitude")?.as_f64()?),
        Value::String(s) => {
            let mut parts = s.split_whitespace().map(str::parse::<f64>);
            (parts.next()?.ok()?, parts.next()?.ok()?)
        }
        _ => return None,
    };
    let place = geo.place.clone().unwrap_or_default();
    let address: Vec<String> =
        [place.address, place.city, place.country].into_iter().flatten().filter(|s| !s.is_empty()).collect();
    Some(Location {
        latitude,
        longitude,
        name: non_empty(place.title),
        address: (!address.is_empty()).then(|| address.join(", ")),
    })
}

/// The opaque media reference `vk:<account>:<type><owner>_<id>[_<access_key>]`: the same string
/// `messages.send` takes as an `attachment`.
fn media(account: &str, kind: &str, owner: i64, id: i64, access_key: Option<&str>) -> Option<String> {
    if id == 0 {
        return None;
    }
    Some(match access_key.filter(|k| !k.is_empty()) {
        Some(key) => format!("vk:{account}:{kind}{owner}_{id}_{key}"),
        None => format!("vk:{account}:{kind}{owner}_{id}"),
    })
}

fn blank(kind: AttachmentKind) -> Attachment {
    Attachment { kind, mime: None, size: None, name: None, media: None, url: None, duration: None, variant: None }
}

/// Where a message belongs: its `peer_id`, or the author for payloads that lack one.
fn chat_of(m: &wire::Message) -> i64 {
    if m.peer_id != 0 { m.peer_id } else { m.from_id }
}

fn customer(id: i64) -> Option<Customer> {
    (id != 0).then(|| Customer { id: id.to_string(), ..Customer::default() })
}

fn timestamp(seconds: i64) -> Option<DateTime<Utc>> {
    (seconds > 0).then(|| DateTime::from_timestamp(seconds, 0)).flatten()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn decode<T: DeserializeOwned>(value: &Value) -> Option<T> {
    if !value.is_object() {
        return None;
    }
    serde_json::from_value(value.clone()).ok()
}

/// The body as stored: the secret never reaches `raw`.
fn without_secret(root: Value) -> Value {
    match root {
        Value::Object(mut map) => {
            map.remove("secret");
            Value::Object(map)
        }
        other => other,
    }
}
