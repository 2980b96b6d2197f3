//! Graph webhook → common model, shared by Messenger and Instagram.
//!
//! Every `entry[]`, and in it every `messaging[]` and `standby[]` item (handover protocol:
//! events of threads another app controls, read the same way), becomes at least one event;
//! every `changes[]` item (Page feed, Instagram comments and mentions) becomes an
//! `unsupported` event keeping the item. Nothing authentic is dropped: whatever does not fit
//! the wire types or names a kind we do not model is an `unsupported` event with the raw item.
//!
//! Decisions (see also the crate docs):
//! - **Echoes** (`message.is_echo`, our Page's own messages) are never customer messages. Each
//!   becomes a `status` event `sent` for its `mid`, in the customer's chat, with the echo kept
//!   whole in `raw`: for messages sent through chatgate it confirms the send; messages sent
//!   elsewhere (Page Inbox, another app) keep their content in `raw`.
//! - **Quick replies** are `postback` events (payload, title = the text) that also carry the
//!   message, so the text bubble and its `mid` are not lost.
//! - A **referral** alone (m.me / ig.me link or ad opening an existing thread) is
//!   `customer_subscribed` with `source`; next to a message or postback it is that event's `source`.
//! - **Opt-ins** are `customer_subscribed` (source kind `optin`), except a marketing-messages
//!   opt-out (`notification_messages_status: STOP_NOTIFICATIONS`) which is `customer_unsubscribed`.
//! - **Deliveries**: one `delivered` status per `mid`; without `mids`, a watermark status
//!   (`up_to`). **Reads**: Messenger's watermark → `read` with `up_to`; Instagram's `read.mid`
//!   → `read` for that message.
//! - **Instagram story replies** (`reply_to.story`): the story becomes an attachment with
//!   variant `story_reply` (url, media = the story id); `reply_to` stays for message quotes.
//! - Instagram's **`like_heart`** (the user sent a heart): a `message` whose text is ❤️.
//! - Attachment types we do not know (`template`, `unsupported_type`, future ones) are not
//!   guessed at: the event keeps the item in `raw`, and a message left with no content at
//!   all is `unsupported`.

use chatgate_adapter::{Inbound, InboundEvent, Reply, WebhookError};
use chatgate_model::rich::typed_press;
use chatgate_model::{
    Attachment, AttachmentKind, Customer, Event, EventKind, Location, Message, Postback, Reaction, Source, Status,
    StatusInfo,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Kind;
use crate::wire;

/// Parses one authenticated webhook body. Only a body that is not JSON is an error.
/// Meta wants only a `200`: the reply is empty.
pub(crate) fn parse(kind: Kind, account: &str, body: &[u8]) -> Result<Inbound, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    Ok(Inbound { events: events(Ctx { kind, account }, &value), reply: Reply::Empty })
}

fn events(ctx: Ctx<'_>, value: &Value) -> Vec<InboundEvent> {
    let kind = ctx.kind;
    let Some(envelope) = from_value::<wire::Envelope>(value) else {
        return vec![ctx.unsupported(value)];
    };
    // A body for the other Meta object (e.g. `page` posted to an Instagram account): keep
    // every item, but do not read it as ours.
    let foreign = envelope.object.as_deref().is_some_and(|object| object != kind.object());
    let mut events = Vec::new();
    for entry_value in &envelope.entry {
        let Some(entry) = from_value::<wire::Entry>(entry_value) else {
            events.push(ctx.unsupported(entry_value));
            continue;
        };
        // The Page / Instagram account the entry is for: the server hands it to that account.
        let owner = (!foreign).then(|| text_of(&entry.id)).flatten();
        let owned = |e: InboundEvent| e.owned_by(owner);
        if entry.messaging.is_none() && entry.standby.is_none() && entry.changes.is_none() {
            events.push(owned(ctx.unsupported(entry_value)));
            continue;
        }
        for item in entry.messaging.iter().chain(entry.standby.iter()).flatten() {
            if foreign {
                events.push(ctx.unsupported(item));
            } else {
                events.extend(ctx.item(item).into_iter().map(owned));
            }
        }
        for change in entry.changes.iter().flatten() {
            if foreign {
                events.push(ctx.unsupported(change));
            } else {
                events.extend(ctx.change(change).into_iter().map(owned));
            }
        }
    }
    events
}

/// What an Instagram `like_heart` shows: the red heart (U+2764 U+FE0F).
const HEART: &str = "\u{2764}\u{fe0f}";

struct Ctx<'a> {
    kind: Kind,
    account: &'a str,
}

impl Ctx<'_> {
    fn event(&self, kind: EventKind, chat_id: &str) -> Event {
        Event::new(kind, self.kind.channel(), self.account, chat_id)
    }

    /// `unsupported` with the raw object; chat and customer are the sender's when readable.
    fn unsupported(&self, raw: &Value) -> InboundEvent {
        let sender = raw.get("sender").and_then(|s| s.get("id")).and_then(id_text).filter(|id| !id.is_empty());
        let mut event =
            Event::unsupported(self.kind.channel(), self.account, sender.clone().unwrap_or_default(), raw.clone());
        event.customer = sender.as_deref().map(customer_of);
        InboundEvent::new(Some(raw_key(raw)), event)
    }

    /// A `changes[]` item. The Instagram dashboard's "Test" button for the `messages` field is
    /// reported to post a messaging item as a change (`field: messages`); that one is read as a
    /// messaging item, every other change is kept as `unsupported`.
    fn change(&self, raw: &Value) -> Vec<InboundEvent> {
        if let Some(wire::Change { field: Some(field), value: Some(value) }) = from_value::<wire::Change>(raw)
            && field == "messages"
            && value.get("sender").is_some()
        {
            return self.item(&value);
        }
        vec![self.unsupported(raw)]
    }

    /// One `messaging[]` / `standby[]` item.
    fn item(&self, raw: &Value) -> Vec<InboundEvent> {
        let Some(item) = from_value::<wire::Item>(raw) else {
            return vec![self.unsupported(raw)];
        };
        let events = if let Some(message) = &item.message {
            self.message(&item, message, raw)
        } else if let Some(edit) = &item.message_edit {
            self.edit(&item, edit)
        } else if let Some(reaction) = &item.reaction {
            self.reaction(&item, reaction)
        } else if let Some(postback) = &item.postback {
            self.postback(&item, postback)
        } else if let Some(referral) = &item.referral {
            self.referral(&item, referral)
        } else if let Some(optin) = &item.optin {
            self.optin(&item, optin)
        } else if let Some(delivery) = &item.delivery {
            self.delivery(&item, delivery)
        } else if let Some(read) = &item.read {
            self.read(&item, read)
        } else {
            None
        };
        match events {
            Some(events) if !events.is_empty() => events,
            _ => vec![self.unsupported(raw)],
        }
    }

    fn message(&self, item: &wire::Item, message: &wire::Message, raw: &Value) -> Option<Vec<InboundEvent>> {
        let mid = text_of(&message.mid)?;
        if message.is_echo == Some(true) {
            return self.echo(item, mid, raw);
        }
        let customer = sender(item)?;
        if message.is_unsupported == Some(true) {
            return None;
        }
        if message.is_deleted == Some(true) {
            let mut event = self.event(EventKind::MessageDeleted, customer);
            event.customer = Some(customer_of(customer));
            event.message = Some(Message { external_id: mid.to_owned(), ..Message::default() });
            return Some(vec![keyed(format!("deleted:{mid}"), event)]);
        }

        let mut content = Message {
            external_id: mid.to_owned(),
            text: message.text.clone(),
            reply_to: message.reply_to.as_ref().and_then(|r| text_of(&r.mid)).map(str::to_owned),
            sent_at: item.timestamp,
            ..Message::default()
        };
        let mut keep_raw = false;
        for attachment in message.attachments.iter().flatten() {
            let mapped = match from_value::<wire::Attachment>(attachment) {
                Some(attachment) => self.attachment(&attachment, message),
                None => Mapped::Unknown,
            };
            match mapped {
                Mapped::Attachment(a) => content.attachments.push(a),
                Mapped::Location(l) => content.location = Some(l),
                Mapped::Heart => content.text = Some(content.text.take().unwrap_or_else(|| HEART.to_owned())),
                Mapped::Unknown => keep_raw = true,
            }
        }
        if let Some(story) = message.reply_to.as_ref().and_then(|r| r.story.as_ref()) {
            content.attachments.push(Attachment {
                media: text_of(&story.id).map(|id| self.media_ref(id)),
                url: story.url.clone(),
                variant: Some("story_reply".to_owned()),
                ..attachment(AttachmentKind::Image)
            });
        }
        // The gateway cannot fetch Meta's ids (story, sticker, post ids) as files: an attachment
        // Meta gave no URL for could not be shown, so it stays in `raw` only.
        let listed = content.attachments.len();
        content.attachments.retain(|a| a.url.is_some());
        keep_raw |= content.attachments.len() < listed;
        let quick_reply = message.quick_reply.as_ref().and_then(|q| q.payload.clone());
        if content.text.is_none()
            && content.attachments.is_empty()
            && content.location.is_none()
            && quick_reply.is_none()
        {
            return None;
        }

        let mut event = match quick_reply {
            Some(payload) => {
                let mut event = self.event(EventKind::Postback, customer);
                event.postback = Some(Postback { payload, title: message.text.clone(), external_id: None });
                event
            }
            None => self.event(EventKind::Message, customer),
        };
        event.customer = Some(customer_of(customer));
        event.message = Some(content);
        event.source = message.referral.as_ref().or(item.referral.as_ref()).map(source_of);
        if keep_raw {
            event.raw = Some(raw.clone());
        }
        Some(vec![keyed(format!("message:{mid}"), event)])
    }

    /// Our Page's own message, reported back: `sent` for its `mid`, echo kept in `raw`.
    fn echo(&self, item: &wire::Item, mid: &str, raw: &Value) -> Option<Vec<InboundEvent>> {
        let customer = item.recipient.as_ref().and_then(wire::Party::key)?;
        let mut event = self.status(customer, Status::Sent, Some(mid), None);
        event.raw = Some(raw.clone());
        Some(vec![keyed(format!("echo:{mid}"), event)])
    }

    fn attachment(&self, a: &wire::Attachment, message: &wire::Message) -> Mapped {
        let url = a.payload_str("url");
        let file = |kind: AttachmentKind| Attachment { url: url.clone(), ..attachment(kind) };
        let variant = |kind: AttachmentKind, variant: &str, media_key: &[&str]| Attachment {
            url: url.clone(),
            media: media_key.iter().find_map(|k| a.payload_str(k)).map(|id| self.media_ref(&id)),
            variant: Some(variant.to_owned()),
            ..attachment(kind)
        };
        match a.kind.as_deref() {
            Some("image") => {
                let sticker = a.payload_str("sticker_id").or_else(|| text_of(&message.sticker_id).map(str::to_owned));
                match sticker {
                    Some(id) => Mapped::Attachment(Attachment {
                        media: Some(self.media_ref(&id)),
                        ..file(AttachmentKind::Sticker)
                    }),
                    None => Mapped::Attachment(file(AttachmentKind::Image)),
                }
            }
            Some("audio") => Mapped::Attachment(file(AttachmentKind::Audio)),
            Some("video") => Mapped::Attachment(file(AttachmentKind::Video)),
            Some("file") => Mapped::Attachment(file(AttachmentKind::File)),
            Some("location") => {
                let coordinates = a.payload.as_ref().and_then(|p| p.get("coordinates"));
                let number = |key: &str| coordinates.and_then(|c| c.get(key)).and_then(Value::as_f64);
                match (number("lat"), number("long")) {
                    (Some(latitude), Some(longitude)) => {
                        Mapped::Location(Location { latitude, longitude, name: a.title.clone(), address: None })
                    }
                    _ => Mapped::Unknown,
                }
            }
            // A shared link or content the API cannot show: a file-like reference with its URL.
            Some("fallback") => Mapped::Attachment(Attachment {
                url: a.url.clone().or_else(|| a.url_upper.clone()).or(url),
                variant: Some("fallback".to_owned()),
                ..attachment(AttachmentKind::File)
            }),
            Some("share") => Mapped::Attachment(variant(AttachmentKind::Image, "share", &["ig_post_media_id"])),
            Some("story_mention") => Mapped::Attachment(variant(AttachmentKind::Image, "story_mention", &["id"])),
            Some("ig_post") => {
                Mapped::Attachment(variant(AttachmentKind::Image, "ig_post", &["ig_post_media_id", "media_id", "id"]))
            }
            // Instagram's heart ("like") sent as a message: no payload, shown as the heart it is.
            Some("like_heart") => Mapped::Heart,
            Some("ig_reel" | "reel") => {
                Mapped::Attachment(variant(AttachmentKind::Video, "reel", &["reel_video_id", "id"]))
            }
            _ => Mapped::Unknown,
        }
    }

    fn edit(&self, item: &wire::Item, edit: &wire::MessageEdit) -> Option<Vec<InboundEvent>> {
        let customer = sender(item)?;
        let mid = text_of(&edit.mid)?;
        let mut event = self.event(EventKind::MessageEdited, customer);
        event.customer = Some(customer_of(customer));
        event.message = Some(Message {
            external_id: mid.to_owned(),
            text: edit.text.clone(),
            edited_at: item.timestamp,
            ..Message::default()
        });
        let version = match (&edit.num_edit, item.timestamp) {
            (Some(n), _) => n.0.clone(),
            (None, Some(at)) => at.timestamp_millis().to_string(),
            (None, None) => return None,
        };
        Some(vec![keyed(format!("edit:{mid}:{version}"), event)])
    }

    fn reaction(&self, item: &wire::Item, reaction: &wire::Reaction) -> Option<Vec<InboundEvent>> {
        let customer = sender(item)?;
        let mid = text_of(&reaction.mid)?;
        let action = reaction.action.as_deref().unwrap_or("react");
        let emoji = match action {
            "unreact" => None,
            _ => reaction.emoji.clone().or_else(|| reaction.reaction.clone()),
        };
        let mut event = self.event(EventKind::Reaction, customer);
        event.customer = Some(customer_of(customer));
        event.message =
            Some(Message { external_id: mid.to_owned(), reaction: Some(Reaction { emoji }), ..Message::default() });
        let at = item.timestamp?.timestamp_millis();
        Some(vec![keyed(format!("reaction:{mid}:{customer}:{action}:{at}"), event)])
    }

    fn postback(&self, item: &wire::Item, postback: &wire::Postback) -> Option<Vec<InboundEvent>> {
        let customer = sender(item)?;
        let mid = text_of(&postback.mid);
        let mut event = self.event(EventKind::Postback, customer);
        event.customer = Some(customer_of(customer));
        event.postback = Some(Postback {
            payload: postback.payload.clone().unwrap_or_default(),
            title: postback.title.clone(),
            external_id: mid.map(str::to_owned),
        });
        event.source = postback.referral.as_ref().or(item.referral.as_ref()).map(source_of);
        let key = match mid {
            Some(mid) => format!("postback:{mid}"),
            None => format!("postback:{customer}:{}", item.timestamp?.timestamp_millis()),
        };
        Some(vec![keyed(key, event)])
    }

    /// A referral alone: the customer opened the thread from a link or an ad.
    fn referral(&self, item: &wire::Item, referral: &Value) -> Option<Vec<InboundEvent>> {
        let customer = sender(item)?;
        let mut event = self.event(EventKind::CustomerSubscribed, customer);
        event.customer = Some(customer_of(customer));
        event.source = Some(source_of(referral));
        let key = format!("referral:{customer}:{}", item.timestamp?.timestamp_millis());
        Some(vec![keyed(key, event)])
    }

    fn optin(&self, item: &wire::Item, raw: &Value) -> Option<Vec<InboundEvent>> {
        let optin = from_value::<wire::Optin>(raw)?;
        let customer = item
            .sender
            .as_ref()
            .and_then(wire::Party::key)
            .or_else(|| text_of(&optin.user_ref))
            .or_else(|| item.recipient.as_ref().and_then(|r| r.user_ref.as_ref()).map(|id| id.0.as_str()))?;
        let stopped = optin.kind.as_deref() == Some("notification_messages")
            && optin.notification_messages_status.as_deref() == Some("STOP_NOTIFICATIONS");
        let kind = if stopped { EventKind::CustomerUnsubscribed } else { EventKind::CustomerSubscribed };
        let mut event = self.event(kind, customer);
        event.customer = Some(customer_of(customer));
        event.source = Some(Source {
            kind: "optin".to_owned(),
            reference: optin.reference.clone().or_else(|| optin.payload.clone()),
            url: None,
            title: None,
            raw: Some(raw.clone()),
            ..Source::default()
        });
        let key = format!(
            "optin:{customer}:{}:{}",
            optin.kind.as_deref().unwrap_or("plugin"),
            item.timestamp?.timestamp_millis()
        );
        Some(vec![keyed(key, event)])
    }

    fn delivery(&self, item: &wire::Item, delivery: &wire::Delivery) -> Option<Vec<InboundEvent>> {
        let customer = sender(item)?;
        let mids: Vec<&str> = delivery.mids.iter().flatten().map(|id| id.0.as_str()).collect();
        if !mids.is_empty() {
            return Some(
                mids.into_iter()
                    .map(|mid| {
                        keyed(format!("delivered:{mid}"), self.status(customer, Status::Delivered, Some(mid), None))
                    })
                    .collect(),
            );
        }
        let watermark = delivery.watermark?;
        let event = self.status(customer, Status::Delivered, None, Some(watermark));
        Some(vec![keyed(format!("delivered:{customer}:{}", watermark.timestamp_millis()), event)])
    }

    fn read(&self, item: &wire::Item, read: &wire::Read) -> Option<Vec<InboundEvent>> {
        let customer = sender(item)?;
        if let Some(mid) = text_of(&read.mid) {
            return Some(vec![keyed(format!("read:{mid}"), self.status(customer, Status::Read, Some(mid), None))]);
        }
        let watermark = read.watermark?;
        let event = self.status(customer, Status::Read, None, Some(watermark));
        Some(vec![keyed(format!("read:{customer}:{}", watermark.timestamp_millis()), event)])
    }

    fn status(&self, customer: &str, status: Status, mid: Option<&str>, up_to: Option<DateTime<Utc>>) -> Event {
        let mut event = self.event(EventKind::Status, customer);
        event.customer = Some(customer_of(customer));
        event.status =
            Some(StatusInfo { message_id: None, external_id: mid.map(str::to_owned), status, error: None, up_to });
        event
    }

    /// `<channel>:<account>:<provider id>`, the opaque media reference of the envelope.
    fn media_ref(&self, id: &str) -> String {
        format!("{}:{}:{id}", self.kind.channel(), self.account)
    }
}

enum Mapped {
    Attachment(Attachment),
    Location(Location),
    /// Instagram's `like_heart`: the message is a heart.
    Heart,
    Unknown,
}

fn attachment(kind: AttachmentKind) -> Attachment {
    Attachment { kind, mime: None, size: None, name: None, media: None, url: None, duration: None, variant: None }
}

/// A referral object as a source: `ADS` → `ad`, `SHORTLINK` → `shortlink`, `MESSENGER_CODE` →
/// `qr`, other sources lower-cased; the reference is `ref`, else the ad id.
fn source_of(raw: &Value) -> Source {
    let referral = from_value::<wire::Referral>(raw);
    let referral = referral.as_ref();
    let kind = match referral.and_then(|r| r.source.as_deref()) {
        Some("ADS") => "ad".to_owned(),
        Some("MESSENGER_CODE") => "qr".to_owned(),
        Some(other) => other.to_ascii_lowercase(),
        None => "referral".to_owned(),
    };
    Source {
        kind,
        reference: referral.and_then(|r| r.reference.clone().or_else(|| r.ad_id.as_ref().map(|id| id.0.clone()))),
        url: referral.and_then(|r| r.referer_uri.clone()),
        title: referral.and_then(|r| r.ads_context_data.as_ref()).and_then(|c| c.ad_title.clone()),
        raw: Some(raw.clone()),
        ..Source::default()
    }
}

/// One event under its dedup key; a press whose payload is a feedback button's becomes `feedback`.
fn keyed(key: String, event: Event) -> InboundEvent {
    InboundEvent::new(Some(key), typed_press(event))
}

/// Stable across redeliveries of the same item: a hash of its JSON.
fn raw_key(raw: &Value) -> String {
    let bytes = serde_json::to_vec(raw).unwrap_or_default();
    format!("raw:{}", hex::encode(Sha256::digest(&bytes)))
}

fn sender(item: &wire::Item) -> Option<&str> {
    item.sender.as_ref().and_then(|s| s.id.as_ref()).map(|id| id.0.as_str()).filter(|id| !id.is_empty())
}

fn customer_of(id: &str) -> Customer {
    Customer { id: id.to_owned(), ..Customer::default() }
}

fn text_of(id: &Option<wire::Id>) -> Option<&str> {
    id.as_ref().map(|id| id.0.as_str()).filter(|id| !id.is_empty())
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn from_value<T: DeserializeOwned>(value: &Value) -> Option<T> {
    T::deserialize(value).ok()
}
