//! `messages` webhook → common model.
//!
//! One webhook may batch several entries, changes, messages, statuses and errors; **each
//! `messages[]`, `statuses[]` and `errors[]` item becomes exactly one event**, and a change or
//! entry we cannot read becomes one `unsupported` event, so nothing is dropped.
//!
//! - chat_id = customer.id = the sender's `from` (wa_id, the phone number) when Meta gives it;
//!   for a user who adopted a WhatsApp username and whose number Meta withholds, the
//!   business-scoped user id (BSUID): `from_user_id`, else the `user_id` of the change's only
//!   contact. Statuses use `recipient_id`, else `recipient_user_id`. The send API takes either
//!   form back (`to` for a number, `recipient` for a BSUID; see `send.rs`). The customer's name and
//!   username come from `value.contacts[]`, matched by `wa_id` or `user_id`
//!   (<https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids>).
//! - Every item carries its change's `metadata.phone_number_id` as its owner: one Meta app sends
//!   the webhooks of all its numbers to one URL, and the gateway hands each item to the account
//!   of that number.
//! - text, image, audio (`voice: true` → variant `voice`), video, document (→ `file` with its
//!   file name), sticker (`animated: true` → variant `animated`), location (with name and
//!   address), contacts → `message`. Media refs are `whatsapp:<account>:<media id>`.
//! - contacts: one event per message; the first card goes into `message.contact`. When the
//!   customer shares several cards, the whole provider message is kept in `raw` so that the
//!   other cards are not lost.
//! - interactive `button_reply` / `list_reply` and template quick-reply `button` → `postback`
//!   (`feedback` when the id is a feedback button's `fb:{request}:{scale}:{score}`)
//!   (payload = the button id / payload, title; `postback.external_id` = the message that carried
//!   the buttons, from `context.id`). A completed WhatsApp Flow or address message
//!   (`interactive.nfm_reply`) → `postback` with payload = its `response_json` (the submitted
//!   form as a JSON string), title = its `body` (`Sent`), and the item kept in `raw`.
//! - reaction → `reaction` (`message.external_id` names the reacted-to message; an empty emoji
//!   means the reaction was removed → `emoji: null`).
//! - edit → `message_edited` (`message.external_id` = the original message, `edited_at` = the
//!   webhook's timestamp); revoke → `message_deleted`. Meta sends both only for numbers that
//!   also use the WhatsApp Business app ("coexistence").
//! - `context.id` → `reply_to`; `context.forwarded` / `frequently_forwarded` → `forwarded`;
//!   `referral` (Click-to-WhatsApp ads) → `source` {kind `ad` (or `post`), reference = source_id,
//!   url = source_url, title = headline, raw}.
//! - `sent_at` is the webhook item's `timestamp` (for reactions and deletions: when the customer
//!   reacted or deleted).
//! - statuses sent / delivered / read / failed → `status` (external_id = the wamid our send
//!   returned; failed carries `errors[0]` as `error` with the snake_case code of
//!   [`crate::send::failure_code`] and the numeric code in the message); other statuses
//!   (`deleted`, `warning`, ...) → `unsupported`.
//! - `unsupported` and unknown message types, group messages, `value.errors[]`, other webhook
//!   fields and unreadable items → `unsupported` with the provider's object in `raw`.
//!
//! Dedup keys: `msg:<wamid>` for messages (also when unsupported), `status:<id>:<status>` for
//! statuses, and `error:<sha256>` / `raw:<sha256>` of the object's JSON where the provider gives
//! no id (a redelivery is byte-identical; two identical error objects count as one).
//!
//! Reference: <https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages>.

use std::collections::HashMap;

use chatgate_adapter::{Inbound, InboundEvent, WebhookError};
use chatgate_model::rich::typed_press;
use chatgate_model::{
    Attachment, AttachmentKind, Contact, Customer, ErrorInfo, Event, EventKind, Location, Message, Postback, Reaction,
    Source, Status, StatusInfo,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::send::failure_code;
use crate::wire;

/// The `object` of WhatsApp webhooks.
const OBJECT: &str = "whatsapp_business_account";

/// Normalises one authenticated webhook body. Only a body that is not JSON is an error.
pub(crate) fn parse(account: &str, body: &[u8]) -> Result<Inbound, WebhookError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let mut events = Vec::new();
    match wire::Envelope::deserialize(&root) {
        Ok(envelope) if envelope.object.as_deref() == Some(OBJECT) => {
            for entry in &envelope.entry {
                parse_entry(account, entry, &mut events);
            }
        }
        _ => events.push(unsupported(account, "", None, &root, Some(hashed("raw", &root)))),
    }
    Ok(Inbound { events, reply: Default::default() })
}

fn parse_entry(account: &str, raw: &Value, out: &mut Vec<InboundEvent>) {
    let Ok(entry) = wire::Entry::deserialize(raw) else {
        out.push(unsupported(account, "", None, raw, Some(hashed("raw", raw))));
        return;
    };
    for change in &entry.changes {
        parse_change(account, change, out);
    }
}

fn parse_change(account: &str, raw: &Value, out: &mut Vec<InboundEvent>) {
    // The business number the change is for, read on its own so that an unreadable change still names it.
    let owner = raw.pointer("/value/metadata/phone_number_id").and_then(Value::as_str);
    let owned = |e: InboundEvent| e.owned_by(owner);
    let value = match wire::Change::deserialize(raw) {
        Ok(change) if change.field == "messages" => wire::MessagesValue::deserialize(&change.value).ok(),
        _ => None,
    };
    let Some(value) = value.filter(|v| !(v.messages.is_empty() && v.statuses.is_empty() && v.errors.is_empty())) else {
        out.push(owned(unsupported(account, "", None, raw, Some(hashed("raw", raw)))));
        return;
    };
    let mut profiles: HashMap<&str, &wire::Profile> = HashMap::new();
    for contact in &value.contacts {
        for id in [&contact.wa_id, &contact.user_id].into_iter().flatten() {
            profiles.insert(id.as_str(), contact);
        }
    }
    // A message without `from` or `from_user_id` is the only contact's.
    let only_user_id = match value.contacts.as_slice() {
        [only] => only.user_id.as_deref(),
        _ => None,
    };
    let ctx = Ctx { account, profiles, only_user_id };
    out.extend(value.messages.iter().map(|m| owned(ctx.message(m))));
    out.extend(value.statuses.iter().map(|s| owned(ctx.status(s))));
    out.extend(value.errors.iter().map(|e| owned(unsupported(account, "", None, e, Some(hashed("error", e))))));
}

/// What every item of one change shares.
struct Ctx<'a> {
    account: &'a str,
    /// wa_id or BSUID → the contact, from `value.contacts[]`.
    profiles: HashMap<&'a str, &'a wire::Profile>,
    /// The BSUID of the change's only contact.
    only_user_id: Option<&'a str>,
}

impl Ctx<'_> {
    /// The customer known as `id` (a phone number or a BSUID), with the name and username the
    /// change's contacts give.
    fn customer(&self, id: &str) -> Customer {
        let profile = self.profiles.get(id).and_then(|c| c.profile.as_ref());
        Customer {
            id: id.to_owned(),
            name: profile.and_then(|p| p.name.clone()),
            username: profile.and_then(|p| p.username.clone()),
            ..Default::default()
        }
    }

    fn media_ref(&self, id: &str) -> String {
        format!("whatsapp:{}:{id}", self.account)
    }

    /// One `messages[]` item.
    fn message(&self, raw: &Value) -> InboundEvent {
        let id = raw.get("id").and_then(Value::as_str);
        let dedup = Some(id.map_or_else(|| hashed("raw", raw), |id| format!("msg:{id}")));
        let text = |key: &str| raw.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
        let from = text("from").or_else(|| text("from_user_id")).or(self.only_user_id);
        let customer = from.map(|f| self.customer(f));
        let chat_id = from.unwrap_or("");
        let Ok(msg) = wire::Message::deserialize(raw) else {
            return unsupported(self.account, chat_id, customer, raw, dedup);
        };
        let converted = match (from, &msg.group_id) {
            (Some(_), None) => self.convert(&msg.id, &msg.content, msg.timestamp.and_then(to_time)),
            // Group chats are not modelled: a group id is not a wa_id and replies need `recipient_type: group`.
            _ => None,
        };
        let Some((kind, message, postback)) = converted else {
            return unsupported(self.account, chat_id, customer, raw, dedup);
        };
        let mut event = Event::new(kind, crate::CHANNEL, self.account, chat_id);
        event.customer = customer;
        event.message = Some(message);
        event.postback = postback;
        event.source = msg.referral.map(|r| source(r, raw.get("referral")));
        let flow_reply = msg.content.interactive.as_ref().is_some_and(|i| i.nfm_reply.is_some());
        if msg.content.contacts.as_ref().is_some_and(|c| c.len() > 1) || flow_reply {
            event.raw = Some(raw.clone());
        }
        InboundEvent::new(dedup, typed_press(event))
    }

    /// Converts message content; `None` for kinds we do not model (→ unsupported).
    fn convert(
        &self,
        id: &str,
        content: &wire::Content,
        at: Option<DateTime<Utc>>,
    ) -> Option<(EventKind, Message, Option<Postback>)> {
        let context = content.context.as_ref();
        let base = Message {
            external_id: id.to_owned(),
            reply_to: context.and_then(|c| c.id.clone()),
            forwarded: context.is_some_and(|c| c.forwarded || c.frequently_forwarded),
            sent_at: at,
            ..Default::default()
        };
        let message = |m: Message| Some((EventKind::Message, m, None));
        match content.kind.as_str() {
            "text" => message(Message { text: Some(content.text.as_ref()?.body.clone()), ..base }),
            "image" | "audio" | "video" | "document" | "sticker" => {
                let (kind, media) = match content.kind.as_str() {
                    "image" => (AttachmentKind::Image, content.image.as_ref()?),
                    "audio" => (AttachmentKind::Audio, content.audio.as_ref()?),
                    "video" => (AttachmentKind::Video, content.video.as_ref()?),
                    "document" => (AttachmentKind::File, content.document.as_ref()?),
                    _ => (AttachmentKind::Sticker, content.sticker.as_ref()?),
                };
                let variant = match kind {
                    AttachmentKind::Audio if media.voice => Some("voice".to_owned()),
                    AttachmentKind::Sticker if media.animated => Some("animated".to_owned()),
                    _ => None,
                };
                let attachment = Attachment {
                    kind,
                    mime: media.mime_type.clone(),
                    size: None,
                    name: media.filename.clone(),
                    media: media.id.as_deref().map(|id| self.media_ref(id)),
                    url: media.url.clone(),
                    duration: None,
                    variant,
                };
                message(Message { text: media.caption.clone(), attachments: vec![attachment], ..base })
            }
            "location" => {
                let l = content.location.as_ref()?;
                let location = Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    name: l.name.clone(),
                    address: l.address.clone(),
                };
                message(Message { location: Some(location), ..base })
            }
            "contacts" => {
                let card = content.contacts.as_ref()?.first()?;
                let name = card.name.as_ref().and_then(|n| {
                    n.formatted_name.clone().or_else(|| {
                        let parts: Vec<&str> =
                            [&n.first_name, &n.last_name].into_iter().flatten().map(String::as_str).collect();
                        (!parts.is_empty()).then(|| parts.join(" "))
                    })
                });
                let phone = card.phones.first();
                let contact = Contact {
                    name,
                    phone: phone.and_then(|p| p.phone.clone()),
                    user_id: phone.and_then(|p| p.wa_id.clone()),
                    vcard: None,
                };
                message(Message { contact: Some(contact), ..base })
            }
            "interactive" => {
                let i = content.interactive.as_ref()?;
                let choice = match i.kind.as_str() {
                    "button_reply" => i.button_reply.as_ref()?,
                    "list_reply" => i.list_reply.as_ref()?,
                    "nfm_reply" => {
                        let reply = i.nfm_reply.as_ref()?;
                        let postback = Postback {
                            payload: reply.response_json.clone(),
                            title: reply.body.clone().or_else(|| reply.name.clone()),
                            external_id: base.reply_to.clone(),
                        };
                        return Some((EventKind::Postback, base, Some(postback)));
                    }
                    _ => return None,
                };
                let postback = Postback {
                    payload: choice.id.clone(),
                    title: choice.title.clone(),
                    external_id: base.reply_to.clone(),
                };
                Some((EventKind::Postback, base, Some(postback)))
            }
            "button" => {
                let b = content.button.as_ref()?;
                let postback =
                    Postback { payload: b.payload.clone(), title: b.text.clone(), external_id: base.reply_to.clone() };
                Some((EventKind::Postback, base, Some(postback)))
            }
            "reaction" => {
                let r = content.reaction.as_ref()?;
                let emoji = r.emoji.clone().filter(|e| !e.is_empty());
                let m = Message { external_id: r.message_id.clone(), reaction: Some(Reaction { emoji }), ..base };
                Some((EventKind::Reaction, m, None))
            }
            "edit" => {
                let edit = content.edit.as_ref()?;
                match self.convert(&edit.original_message_id, &edit.message, None)? {
                    (EventKind::Message, m, None) => {
                        Some((EventKind::MessageEdited, Message { edited_at: at, ..m }, None))
                    }
                    _ => None,
                }
            }
            "revoke" => {
                let revoke = content.revoke.as_ref()?;
                Some((
                    EventKind::MessageDeleted,
                    Message { external_id: revoke.original_message_id.clone(), sent_at: at, ..Default::default() },
                    None,
                ))
            }
            _ => None,
        }
    }

    /// One `statuses[]` item.
    fn status(&self, raw: &Value) -> InboundEvent {
        let field = |name: &str| raw.get(name).and_then(Value::as_str);
        let dedup = match (field("id"), field("status")) {
            (Some(id), Some(status)) => format!("status:{id}:{status}"),
            _ => hashed("raw", raw),
        };
        let dedup = Some(dedup);
        let named = |name: &str| field(name).filter(|id| !id.is_empty());
        let recipient = named("recipient_id").or_else(|| named("recipient_user_id"));
        let customer = recipient.map(|r| self.customer(r));
        let chat_id = recipient.unwrap_or("");
        let Ok(st) = wire::Status::deserialize(raw) else {
            return unsupported(self.account, chat_id, customer, raw, dedup);
        };
        let status = match st.status.as_str() {
            "sent" => Status::Sent,
            "delivered" => Status::Delivered,
            "read" => Status::Read,
            "failed" => Status::Failed,
            _ => return unsupported(self.account, chat_id, customer, raw, dedup),
        };
        let error = (status == Status::Failed).then(|| st.errors.first().map(error_info)).flatten();
        let mut event = Event::new(EventKind::Status, crate::CHANNEL, self.account, chat_id);
        event.customer = customer;
        event.status = Some(StatusInfo { message_id: None, external_id: Some(st.id), status, error, up_to: None });
        InboundEvent::new(dedup, event)
    }
}

/// A webhook error object as the core sees it: our snake_case code, Meta's code and text in the message.
fn error_info(e: &wire::Error) -> ErrorInfo {
    let title = e.title.as_deref().or(e.message.as_deref()).unwrap_or("error");
    let message = match e.error_data.as_ref().and_then(|d| d.details.as_deref()) {
        Some(details) if details != title => format!("(#{}) {title}: {details}", e.code),
        _ => format!("(#{}) {title}", e.code),
    };
    ErrorInfo { code: failure_code(e.code), message }
}

fn source(r: wire::Referral, raw: Option<&Value>) -> Source {
    let kind = match r.source_type.as_deref() {
        Some("post") => "post",
        _ => "ad",
    };
    Source {
        kind: kind.to_owned(),
        reference: r.source_id,
        url: r.source_url,
        title: r.headline,
        raw: raw.cloned(),
        ..Source::default()
    }
}

fn to_time(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

fn unsupported(
    account: &str,
    chat_id: &str,
    customer: Option<Customer>,
    raw: &Value,
    dedup_key: Option<String>,
) -> InboundEvent {
    let mut event = Event::unsupported(crate::CHANNEL, account, chat_id, raw.clone());
    event.customer = customer;
    InboundEvent::new(dedup_key, event)
}

/// `<prefix>:<sha256 hex of the object's canonical JSON>`: stable across redeliveries of the same
/// object, whatever the key order or the `serde_json` map type.
fn hashed(prefix: &str, raw: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(raw, &mut canonical);
    format!("{prefix}:{}", hex::encode(Sha256::digest(canonical.as_bytes())))
}

/// Compact JSON with object keys sorted.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wrap(value: Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"object": OBJECT, "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}),
        )
        .unwrap()
    }

    fn kinds(inbound: &Inbound) -> Vec<EventKind> {
        inbound.events.iter().map(|e| e.event.kind).collect()
    }

    #[test]
    fn not_json_is_malformed_but_odd_json_is_unsupported() {
        assert!(matches!(parse("a", b"not json"), Err(WebhookError::Malformed(_))));
        for body in [
            &b"[]"[..],
            b"null",
            b"{\"object\":\"page\",\"entry\":[]}",
            b"{\"object\":\"whatsapp_business_account\",\"entry\":[1]}",
        ] {
            let inbound = parse("a", body).unwrap();
            assert_eq!(kinds(&inbound), vec![EventKind::Unsupported], "{}", String::from_utf8_lossy(body));
            assert!(inbound.events[0].dedup_key.as_deref().unwrap().starts_with("raw:"));
        }
    }

    #[test]
    fn items_that_do_not_fit_become_unsupported_one_each() {
        let body = wrap(json!({
            "messages": [
                {"from": "1", "id": "wamid.a", "timestamp": "x", "type": "text", "text": {"body": "hi"}},
                {"from": "1", "id": "wamid.b", "type": "text"},
                {"from": "1", "id": "wamid.c", "type": "image", "image": {"id": "9"}},
                {"from": "1", "group_id": "g", "id": "wamid.d", "type": "text", "text": {"body": "hi"}},
                {"id": "wamid.e", "type": "text", "text": {"body": "hi"}},
                "junk"
            ],
            "statuses": [{"id": "wamid.s", "status": "deleted", "recipient_id": "1"}, {"status": "read"}]
        }));
        let inbound = parse("a", &body).unwrap();
        use EventKind::*;
        assert_eq!(
            kinds(&inbound),
            vec![Message, Unsupported, Message, Unsupported, Unsupported, Unsupported, Unsupported, Unsupported]
        );
        let keys: Vec<_> = inbound.events.iter().map(|e| e.dedup_key.clone().unwrap()).collect();
        assert_eq!(keys[..5], ["msg:wamid.a", "msg:wamid.b", "msg:wamid.c", "msg:wamid.d", "msg:wamid.e"]);
        assert_eq!(keys[6], "status:wamid.s:deleted");
        assert!(keys[5].starts_with("raw:") && keys[7].starts_with("raw:"));
        // A timestamp that is not a number is left out, not fatal.
        assert_eq!(inbound.events[0].event.message.as_ref().unwrap().sent_at, None);
        // An image without a caption or mime still names its media.
        let m = inbound.events[2].event.message.as_ref().unwrap();
        assert_eq!(m.attachments[0].media.as_deref(), Some("whatsapp:a:9"));
    }

    #[test]
    fn empty_or_foreign_changes_are_kept() {
        let body = wrap(json!({"messaging_product": "whatsapp"}));
        assert_eq!(kinds(&parse("a", &body).unwrap()), vec![EventKind::Unsupported]);
        let other = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"account_update","value":{"event":"X"}}]},{"id":"2","changes":[]}]}"#;
        assert_eq!(kinds(&parse("a", other).unwrap()), vec![EventKind::Unsupported]);
    }

    #[test]
    fn hashes_ignore_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        assert_eq!(hashed("error", &a), hashed("error", &b));
        let mut canonical = String::new();
        write_canonical(&a, &mut canonical);
        assert_eq!(canonical, r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
    }

    #[test]
    fn numeric_timestamps_are_read_too() {
        let body = wrap(
            json!({"messages": [{"from": "1", "id": "w", "timestamp": 1697043223, "type": "text", "text": {"body": "x"}}]}),
        );
        let inbound = parse("a", &body).unwrap();
        let sent = inbound.events[0].event.message.as_ref().unwrap().sent_at.unwrap();
        assert_eq!(sent.timestamp(), 1697043223);
    }
}
