//! The JSON-value reader, for authentic updates that teloxide's types do not take.
//!
//! Real webhooks include users without `is_bot` (before Bot API 3.0), files without
//! `file_unique_id`, new entity or reaction types, and fields of the wrong JSON type. This
//! reader takes every field it needs from the value and ignores the rest; it mirrors the typed
//! reader in `parse.rs` field for field, so the same content gives the same event.

use chatgate_model::{Attachment, AttachmentKind, Contact, Customer, Event, EventKind, Location, TextEntity};
use serde_json::Value;

use super::{
    Content, Ctx, Envelope, animation_kind, chosen_reaction, customer, full_name, id_string, membership_change,
    sticker_variant, unix_time,
};

/// `None`: a kind we do not model, or one too broken to read.
pub(super) fn update(ctx: &Ctx<'_>, raw: &Value) -> Option<Event> {
    if let Some(m) = raw.get("message") {
        message(ctx, EventKind::Message, m)
    } else if let Some(m) = raw.get("edited_message") {
        message(ctx, EventKind::MessageEdited, m)
    } else if let Some(q) = raw.get("callback_query") {
        callback(ctx, q)
    } else if let Some(m) = raw.get("my_chat_member") {
        membership(ctx, m)
    } else if let Some(r) = raw.get("message_reaction") {
        reaction(ctx, r)
    } else {
        None
    }
}

/// Message contents we do not model; a message carrying one is `unsupported`.
const UNMODELLED: [&str; 7] = ["paid_media", "game", "poll", "checklist", "story", "dice", "invoice"];

fn message(ctx: &Ctx<'_>, kind: EventKind, m: &Value) -> Option<Event> {
    let content = content(ctx, m)?;
    let envelope = Envelope {
        chat_id: m.get("chat")?.get("id").and_then(id_string)?,
        customer: m.get("from").and_then(user),
        external_id: m.get("message_id").and_then(id_string)?,
        reply_to: m.get("reply_to_message").and_then(|r| r.get("message_id")).and_then(id_string),
        forwarded: m.get("forward_origin").is_some() || m.get("forward_date").is_some(),
        sent_at: m.get("date").and_then(Value::as_i64).and_then(unix_time),
        edited_at: m.get("edit_date").and_then(Value::as_i64).and_then(unix_time),
    };
    Some(ctx.message(kind, envelope, content))
}

/// Reads the content in teloxide's order (a venue also carries `location`, an animation also
/// carries `document`: the first readable one wins).
fn content(ctx: &Ctx<'_>, m: &Value) -> Option<Content> {
    if UNMODELLED.iter().any(|key| m.get(key).is_some()) {
        return None;
    }
    let mut c = Content::default();
    let caption = |c: &mut Content| {
        if let Some(text) = string(m, "caption") {
            c.text = Some(text);
            c.entities = entities(m.get("caption_entities"));
        }
    };
    if let Some(a) = m.get("animation").and_then(|v| file(ctx, AttachmentKind::File, v)) {
        let kind = animation_kind(a.mime.as_deref());
        c.attachment = Some(Attachment { kind, variant: Some("animation".into()), ..a });
        caption(&mut c);
    } else if let Some(a) = m.get("audio").and_then(|v| file(ctx, AttachmentKind::Audio, v)) {
        c.attachment = Some(a);
        caption(&mut c);
    } else if let Some(k) = m.get("contact").filter(|k| k.get("phone_number").is_some()) {
        c.contact = Some(Contact {
            name: full_name(str_of(k, "first_name"), str_of(k, "last_name")),
            phone: string(k, "phone_number"),
            user_id: k.get("user_id").and_then(id_string),
            vcard: string(k, "vcard"),
        });
    } else if let Some(a) = m.get("document").and_then(|v| file(ctx, AttachmentKind::File, v)) {
        c.attachment = Some(Attachment { duration: None, ..a });
        caption(&mut c);
    } else if let Some(v) = m.get("venue").filter(|v| v.get("title").is_some()) {
        let at = point(v.get("location")?)?;
        c.location = Some(Location { name: string(v, "title"), address: string(v, "address"), ..at });
    } else if let Some(at) = m.get("location").and_then(point) {
        c.location = Some(at);
    } else if let Some(sizes) = m.get("photo").and_then(Value::as_array) {
        let largest = sizes
            .iter()
            .filter(|s| s.get("file_id").is_some())
            .max_by_key(|s| number(s, "width").saturating_mul(number(s, "height")))?;
        let photo = file(ctx, AttachmentKind::Image, largest)?;
        c.attachment = Some(Attachment { mime: None, name: None, duration: None, ..photo });
        caption(&mut c);
    } else if let Some(s) = m.get("sticker") {
        let sticker = file(ctx, AttachmentKind::Sticker, s)?;
        let flag = |key| s.get(key).and_then(Value::as_bool).unwrap_or(false);
        c.attachment = Some(Attachment {
            mime: None,
            name: None,
            duration: None,
            variant: sticker_variant(flag("is_animated"), flag("is_video")),
            ..sticker
        });
        c.text = string(s, "emoji");
    } else if let Some(text) = string(m, "text") {
        c.text = Some(text);
        c.entities = entities(m.get("entities"));
    } else if let Some(v) = m.get("video").and_then(|v| file(ctx, AttachmentKind::Video, v)) {
        c.attachment = Some(v);
        caption(&mut c);
    } else if let Some(v) = m.get("video_note").and_then(|v| file(ctx, AttachmentKind::Video, v)) {
        c.attachment = Some(Attachment { mime: None, name: None, variant: Some("video_note".into()), ..v });
    } else if let Some(v) = m.get("voice").and_then(|v| file(ctx, AttachmentKind::Audio, v)) {
        c.attachment = Some(Attachment { name: None, variant: Some("voice".into()), ..v });
        caption(&mut c);
    } else {
        // A service message (pinned, new members, ...) or a kind newer than this reader.
        return None;
    }
    Some(c)
}

fn callback(ctx: &Ctx<'_>, q: &Value) -> Option<Event> {
    let payload = string(q, "data")?;
    let from = user(q.get("from")?)?;
    let (chat_id, external_id) = match q.get("message") {
        Some(m) => (m.get("chat")?.get("id").and_then(id_string)?, m.get("message_id").and_then(id_string)),
        None => (from.id.clone(), None),
    };
    Some(ctx.postback(chat_id, from, payload, external_id))
}

fn membership(ctx: &Ctx<'_>, m: &Value) -> Option<Event> {
    let is_member = |member: &Value| match member.get("status")?.as_str()? {
        "creator" | "administrator" | "member" => Some(true),
        "restricted" => Some(member.get("is_member").and_then(Value::as_bool).unwrap_or(false)),
        "left" | "kicked" => Some(false),
        _ => None,
    };
    let kind = membership_change(is_member(m.get("old_chat_member")?)?, is_member(m.get("new_chat_member")?)?)?;
    let chat_id = m.get("chat")?.get("id").and_then(id_string)?;
    Some(ctx.event(kind, chat_id, m.get("from").and_then(user)))
}

fn reaction(ctx: &Ctx<'_>, r: &Value) -> Option<Event> {
    let emojis = |key| -> Option<Vec<Option<String>>> {
        let list = r.get(key)?.as_array()?;
        Some(list.iter().map(|t| (str_of(t, "type") == Some("emoji")).then(|| string(t, "emoji")).flatten()).collect())
    };
    let emoji = chosen_reaction(&emojis("old_reaction").unwrap_or_default(), &emojis("new_reaction")?)?;
    let envelope = Envelope {
        chat_id: r.get("chat")?.get("id").and_then(id_string)?,
        customer: r.get("user").and_then(user),
        external_id: r.get("message_id").and_then(id_string)?,
        reply_to: None,
        forwarded: false,
        sent_at: r.get("date").and_then(Value::as_i64).and_then(unix_time),
        edited_at: None,
    };
    Some(ctx.reaction(envelope, emoji))
}

pub(super) fn user(u: &Value) -> Option<Customer> {
    Some(customer(
        u.get("id").and_then(id_string)?,
        str_of(u, "first_name"),
        str_of(u, "last_name"),
        str_of(u, "username"),
        str_of(u, "language_code"),
    ))
}

/// Any file object: `file_id` (required), `file_size`, `mime_type`, `file_name`, `duration`.
fn file(ctx: &Ctx<'_>, kind: AttachmentKind, v: &Value) -> Option<Attachment> {
    let id = str_of(v, "file_id")?;
    Some(Attachment {
        mime: string(v, "mime_type"),
        size: v.get("file_size").and_then(Value::as_u64),
        name: string(v, "file_name"),
        duration: v.get("duration").and_then(Value::as_u64).and_then(|d| u32::try_from(d).ok()),
        ..ctx.attachment(kind, id)
    })
}

fn point(v: &Value) -> Option<Location> {
    Some(Location {
        latitude: v.get("latitude")?.as_f64()?,
        longitude: v.get("longitude")?.as_f64()?,
        name: None,
        address: None,
    })
}

fn entities(list: Option<&Value>) -> Vec<TextEntity> {
    let Some(list) = list.and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let kind = string(e, "type")?;
            // Only `text_link` entities carry a URL; normalised the way teloxide's `Url` prints it.
            let url = (kind == "text_link")
                .then(|| string(e, "url"))
                .flatten()
                .map(|url| reqwest::Url::parse(&url).map(|u| u.to_string()).unwrap_or(url));
            Some(TextEntity { kind, offset: e.get("offset")?.as_u64()?, length: e.get("length")?.as_u64()?, url })
        })
        .collect()
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn string(v: &Value, key: &str) -> Option<String> {
    str_of(v, key).map(str::to_owned)
}

fn number(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}
