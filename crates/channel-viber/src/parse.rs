//! Viber callbacks → chatgate events.
//!
//! | callback | event |
//! |---|---|
//! | `webhook` (the `set_webhook` probe) | none; answered 200 |
//! | `message` | `message` (see below) |
//! | `subscribed` | `customer_subscribed` |
//! | `conversation_started` | `customer_subscribed`, `source` = `deep_link` with the link's `context`; `raw` = the callback (keeps `subscribed`, `type`) |
//! | `unsubscribed` | `customer_unsubscribed` |
//! | `delivered` / `seen` / `failed` | `status` delivered / read / failed (`provider_failed`, Viber's `desc`) |
//! | anything else (`client_status`, ...) or a shape we cannot read | `unsupported` with the callback as `raw` |
//!
//! A `conversation_started` does **not** subscribe the user (Viber says so); chatgate's model has
//! no "conversation opened" kind, so it is reported as `customer_subscribed` and the callback's own
//! `subscribed` flag stays in `raw`. Sending to a user who never subscribed fails with
//! `customer_unsubscribed`.
//!
//! Messages: `text`; `picture` → image attachment (caption in `text`); `video`; `file` (size,
//! `file_name`); `sticker` → sticker attachment whose `name` is the `sticker_id` (the same
//! convention as outbound); `contact`; `location`; `url` → `text` holding the URL (a link is not a
//! file, so it is not an attachment). A `location` or `contact` object on any message type is kept.
//! Viber gives media as URLs only: `url` is that URL and `media` is `viber:<account>:<url>`
//! (stickers: `viber:<account>:sticker:<id>`). An attachment that came without its `media` URL
//! is left out, and a message left with nothing to show is `unsupported` (the raw is kept). Every `message` event keeps Viber's `message`
//! object as received in `raw`, so `tracking_data` (the id of our message the user answered, as
//! we set it on send) and `thumbnail` are not lost.
//!
//! ids: `chat_id` = customer id = `sender.id` / `user.id` / `user_id`; the message and receipt id is
//! `message_token` in decimal. Dedup keys: `<event>:<message_token>`, receipts
//! `<event>:<message_token>:<user_id>`.

use chatgate_adapter::{Inbound, InboundEvent, WebhookError};
use chatgate_model::rich::{parse_feedback_payload, typed_press};
use chatgate_model::{
    Attachment, AttachmentKind, Contact, Customer, ErrorInfo, Event, EventKind, Location, Message, Postback, Source,
    Status, StatusInfo,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::wire::{
    ConversationStartedCallback, Envelope, Id, MessageCallback, REPLY_PREFIX, SubscribedCallback, User, UserIdCallback,
    WireMessage,
};

/// Parses one authenticated callback body. Only a body that is not JSON is an error.
pub(crate) fn parse(account: &str, body: &[u8]) -> Result<Inbound, WebhookError> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let events = match Envelope::deserialize(&raw) {
        Ok(envelope) => parse_envelope(account, &envelope, &raw),
        Err(_) => vec![unsupported(account, None, raw)],
    };
    Ok(Inbound { events, reply: Default::default() })
}

fn parse_envelope(account: &str, envelope: &Envelope, raw: &Value) -> Vec<InboundEvent> {
    let event = envelope.event.as_str();
    let token = envelope.message_token.as_ref();
    let sent_at = envelope.timestamp.as_ref().and_then(Id::as_millis).and_then(DateTime::from_timestamp_millis);
    let parsed = match event {
        "webhook" => return Vec::new(),
        "message" => token.and_then(|t| message(account, t, sent_at, raw)),
        "subscribed" => SubscribedCallback::deserialize(raw).ok().map(|c| {
            let user = c.user;
            let dedup = dedup_key(event, token, &user.id, sent_at);
            let mut e = Event::new(EventKind::CustomerSubscribed, crate::CHANNEL, account, &user.id);
            e.customer = Some(customer(user));
            InboundEvent::new(dedup, e)
        }),
        "conversation_started" => ConversationStartedCallback::deserialize(raw).ok().map(|c| {
            let user = c.user;
            let dedup = dedup_key(event, token, &user.id, sent_at);
            let mut e = Event::new(EventKind::CustomerSubscribed, crate::CHANNEL, account, &user.id);
            e.customer = Some(customer(user));
            e.source = c.context.filter(|ctx| !ctx.is_empty()).map(|ctx| Source::new("deep_link", Some(ctx)));
            e.raw = Some(raw.clone());
            InboundEvent::new(dedup, e)
        }),
        "unsubscribed" => UserIdCallback::deserialize(raw).ok().map(|c| {
            let dedup = dedup_key(event, token, &c.user_id, sent_at);
            let mut e = Event::new(EventKind::CustomerUnsubscribed, crate::CHANNEL, account, &c.user_id);
            e.customer = Some(Customer { id: c.user_id, ..Customer::default() });
            InboundEvent::new(dedup, e)
        }),
        "delivered" | "seen" | "failed" => token.and_then(|t| receipt(account, event, t, raw)),
        _ => None,
    };
    vec![parsed.unwrap_or_else(|| unsupported(account, Some(envelope), raw.clone()))]
}

/// `<event>:<message_token>`; without a token, `<event>:<user>:<timestamp ms>`; else no key.
fn dedup_key(event: &str, token: Option<&Id>, user: &str, sent_at: Option<DateTime<Utc>>) -> Option<String> {
    match (token, sent_at) {
        (Some(t), _) => Some(format!("{event}:{}", t.0)),
        (None, Some(at)) => Some(format!("{event}:{user}:{}", at.timestamp_millis())),
        (None, None) => None,
    }
}

fn customer(user: User) -> Customer {
    Customer {
        id: user.id,
        name: user.name.filter(|s| !s.is_empty()),
        username: None,
        avatar_url: user.avatar.filter(|s| !s.is_empty()),
        language: user.language.filter(|s| !s.is_empty()),
        country: user.country.filter(|s| !s.is_empty()),
        user_id: None,
    }
}

fn message(account: &str, token: &Id, sent_at: Option<DateTime<Utc>>, raw: &Value) -> Option<InboundEvent> {
    let MessageCallback { sender, message: m } = MessageCallback::deserialize(raw).ok()?;
    let content = content(account, &m)?;
    // A keyboard press: the text is the button's `ActionBody` (`btn:{payload}`, or a feedback `fb:` payload).
    let pressed = content.text.as_deref().filter(|_| m.kind == "text").and_then(|t| {
        t.strip_prefix(REPLY_PREFIX)
            .or_else(|| parse_feedback_payload(t).is_some().then_some(t))
            .map(|payload| Postback { payload: payload.to_owned(), title: None, external_id: None })
    });
    let kind = if pressed.is_some() { EventKind::Postback } else { EventKind::Message };
    let mut e = Event::new(kind, crate::CHANNEL, account, &sender.id);
    e.customer = Some(customer(sender));
    e.message = Some(Message { external_id: token.0.clone(), sent_at, ..content });
    e.postback = pressed;
    e.raw = raw.get("message").cloned();
    Some(InboundEvent::new(Some(format!("message:{}", token.0)), typed_press(e)))
}

/// The content of one message, or `None` for a type or shape chatgate does not model.
fn content(account: &str, m: &WireMessage) -> Option<Message> {
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let media_ref = |url: &str| format!("viber:{account}:{url}");
    let file = |kind: AttachmentKind, url: &Option<String>| {
        let url = non_empty(url);
        Attachment {
            kind,
            mime: None,
            size: m.size,
            name: non_empty(&m.file_name),
            media: url.as_deref().map(media_ref),
            url,
            duration: None,
            variant: None,
        }
    };
    let mut out = Message { text: non_empty(&m.text), ..Message::default() };
    match m.kind.as_str() {
        "text" => {
            out.text.as_ref()?;
        }
        "picture" => out.attachments.push(file(AttachmentKind::Image, &m.media)),
        "video" => out.attachments.push(Attachment { duration: m.duration, ..file(AttachmentKind::Video, &m.media) }),
        "file" => out.attachments.push(file(AttachmentKind::File, &m.media)),
        "sticker" => {
            let id = m.sticker_id.as_ref()?;
            out.attachments.push(Attachment {
                name: Some(id.0.clone()),
                media: Some(format!("viber:{account}:sticker:{}", id.0)),
                ..file(AttachmentKind::Sticker, &m.media)
            });
        }
        "url" => out.text = Some(non_empty(&m.media).or(out.text)?),
        "contact" => {
            m.contact.as_ref()?;
        }
        "location" => {
            m.location.as_ref()?;
        }
        _ => return None,
    }
    out.contact = m.contact.as_ref().map(|c| Contact {
        name: non_empty(&c.name),
        phone: non_empty(&c.phone_number),
        user_id: None,
        vcard: None,
    });
    out.location =
        m.location.as_ref().map(|l| Location { latitude: l.lat, longitude: l.lon, name: None, address: None });
    // Viber gives media as URLs only and the gateway cannot fetch a file by reference: a picture,
    // video, file or sticker that came without `media` could not be shown. It is left out (the
    // callback stays in `raw`), and a message left with nothing to show is `unsupported`.
    out.attachments.retain(|a| a.url.is_some());
    let shows_something = out.text.is_some() || !out.attachments.is_empty() || out.location.is_some();
    (shows_something || out.contact.is_some()).then_some(out)
}

fn receipt(account: &str, event: &str, token: &Id, raw: &Value) -> Option<InboundEvent> {
    let c = UserIdCallback::deserialize(raw).ok()?;
    let (status, error) = match event {
        "delivered" => (Status::Delivered, None),
        "seen" => (Status::Read, None),
        _ => (
            Status::Failed,
            Some(ErrorInfo {
                code: chatgate_model::ErrorCode::ProviderFailed,
                message: c
                    .desc
                    .clone()
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "Viber reported the message failed".into()),
            }),
        ),
    };
    let mut e = Event::new(EventKind::Status, crate::CHANNEL, account, &c.user_id);
    e.customer = Some(Customer { id: c.user_id.clone(), ..Customer::default() });
    e.status = Some(StatusInfo { message_id: None, external_id: Some(token.0.clone()), status, error, up_to: None });
    Some(InboundEvent::new(Some(format!("{event}:{}:{}", token.0, c.user_id)), e))
}

/// An authentic callback chatgate does not model, kept whole.
fn unsupported(account: &str, envelope: Option<&Envelope>, raw: Value) -> InboundEvent {
    let chat_id = ["/sender/id", "/user/id", "/user_id"]
        .iter()
        .find_map(|p| raw.pointer(p).and_then(Value::as_str))
        .unwrap_or("")
        .to_owned();
    let dedup_key = envelope.and_then(|e| Some(format!("{}:{}", e.event, e.message_token.as_ref()?.0)));
    InboundEvent::new(dedup_key, Event::unsupported(crate::CHANNEL, account, chat_id, raw))
}
