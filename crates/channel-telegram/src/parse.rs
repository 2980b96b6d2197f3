//! Updates → events. One update gives exactly one event; `dedup_key` is `update:<update_id>`.
//!
//! | update                                   | event                                            |
//! |------------------------------------------|--------------------------------------------------|
//! | `message` (text, media, place, contact)  | `message`                                        |
//! | `edited_message`                         | `message_edited` (`edited_at` from `edit_date`)  |
//! | `callback_query` with `data`             | `postback` (`feedback` for a feedback button's `fb:` data), answered with `answerCallbackQuery` once stored |
//! | `message` with `web_app_data` (Mini App) | `postback` (payload = `data`, title = `button_text`) |
//! | `my_chat_member` joining / leaving       | `customer_subscribed` / `customer_unsubscribed`  |
//! | `message_reaction` with an emoji         | `reaction`                                       |
//! | anything else                            | `unsupported`, the whole update in `raw`         |
//!
//! "Anything else" includes messages we do not model (dice, polls, games, stories, service
//! messages such as `pinned_message`), channel posts, inline queries, membership changes that
//! are no join or leave (a promotion to administrator), and updates teloxide's types cannot read.
//!
//! There is one reader: teloxide-core's [`Update`]. The body is read into it straight from the
//! bytes; only when that gives no event (an update teloxide cannot read, or a kind we do not
//! model) is the body read again as a JSON value: for the `unsupported` event's `raw`, chat and
//! customer, and for four shapes of older real updates that teloxide reads once they are filled
//! in (see [`upgrade_legacy`]). Only a body that is not JSON is an error.
//!
//! A reaction event's `message` names the message reacted to; its `sent_at` is when the
//! reaction was set.

use chatgate_adapter::{Inbound, InboundEvent, Press, WebhookError};
use chatgate_model::rich::parse_feedback_payload;
use chatgate_model::{
    Attachment, AttachmentKind, Contact, Customer, Event, EventKind, Location, Message, Postback, Reaction, Source,
    TextEntity,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use teloxide_core::types::{
    CallbackQuery, ChatMember, ChatMemberKind, ChatMemberUpdated, MaybeAnonymousUser, MediaKind, MessageEntity,
    MessageEntityKind, MessageKind, MessageReactionUpdated, PhotoSize, ReactionType, Update, UpdateKind, User,
};

/// Verifies nothing: call after [`crate::verify::verify`].
pub(crate) fn parse(account: &str, body: &[u8]) -> Result<Inbound, WebhookError> {
    let ctx = Ctx { account };
    // The hot path: bytes → `Update` → event, without a JSON value in between. Reactions skip
    // it (see `typed_from_value`); a message the hot path reads as "not forwarded" is read
    // again below when the body names the pre-7.0 `forward_date`. `read_again`: whether
    // teloxide should read the JSON value (it has not yet, or it needs the value).
    let mut read_again = false;
    if mentions(body, b"\"message_reaction\"") {
        read_again = true;
    } else if let Some(update) = catch_panics(|| serde_json::from_slice::<Update>(body).ok()) {
        match ctx.update(&update, None) {
            Some(event) if is_unforwarded_message(&event) && mentions(body, b"\"forward_date\"") => read_again = true,
            Some(event) => {
                let press = match &update.kind {
                    UpdateKind::CallbackQuery(q) => Some(q.id.0.clone()),
                    _ => None,
                };
                return Ok(one(Some(format!("update:{}", update.id.0)), event, press));
            }
            // Read, but not modelled: `unsupported`, unless it is an older shape.
            None => {}
        }
    }
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("telegram update is not JSON: {e}")))?;
    let dedup_key = raw.get("update_id").and_then(id_string).map(|id| format!("update:{id}"));
    let press = raw.pointer("/callback_query/id").and_then(Value::as_str).map(str::to_owned);
    let mut upgraded = raw.clone();
    let source = if upgrade_legacy(&mut upgraded) {
        read_again = true;
        &upgraded
    } else {
        &raw
    };
    let event = read_again.then(|| typed_from_value(source)).flatten().and_then(|u| ctx.update(&u, Some(source)));
    let event = event.unwrap_or_else(|| {
        let customer = customer_of_any(&raw);
        Event { customer, ..Event::unsupported(crate::CHANNEL, account, chat_of_any(&raw), raw) }
    });
    let press = press.filter(|_| matches!(event.kind, EventKind::Postback | EventKind::Feedback));
    Ok(one(dedup_key, event, press))
}

/// One event; `press`: the callback query's id, answered once the event is stored
/// ([`answerCallbackQuery`](https://core.telegram.org/bots/api#answercallbackquery)).
fn one(dedup_key: Option<String>, event: Event, press: Option<String>) -> Inbound {
    let mut inbound = InboundEvent::new(dedup_key, event);
    if let Some(id) = press {
        let chat = inbound.event.chat_id.clone();
        let user = inbound.event.customer.as_ref().map_or_else(|| chat.clone(), |c| c.id.clone());
        inbound = inbound.pressed(Press { id, user_id: user, peer_id: chat });
    }
    Inbound { events: vec![inbound], reply: Default::default() }
}

/// The update in teloxide's types, read from a JSON value, if they take it.
///
/// teloxide 0.13 panics (an `unwrap` in `MessageReactionUpdated`'s actor) on a reaction with
/// neither `user` nor `actor_chat`; such updates are not given to it. Any other panic inside
/// the deserializer is caught too: parsing must never take the request down.
fn typed_from_value(raw: &Value) -> Option<Update> {
    let reaction_without_actor = raw.get("message_reaction").is_some_and(|r| {
        !r.get("user").is_some_and(Value::is_object) && !r.get("actor_chat").is_some_and(Value::is_object)
    });
    if reaction_without_actor {
        return None;
    }
    catch_panics(|| <Update as serde::Deserialize>::deserialize(raw).ok())
}

/// Runs a teloxide deserialization; a panic or an [`UpdateKind::Error`] (teloxide's "a kind I
/// cannot read") is `None`.
fn catch_panics(read: impl FnOnce() -> Option<Update> + std::panic::UnwindSafe) -> Option<Update> {
    std::panic::catch_unwind(read).ok().flatten().filter(|update| !matches!(update.kind, UpdateKind::Error(_)))
}

/// Whether `needle` occurs in the body (a cheap test before a second, slower reading).
fn mentions(body: &[u8], needle: &[u8]) -> bool {
    body.windows(needle.len()).any(|window| window == needle)
}

fn is_unforwarded_message(event: &Event) -> bool {
    matches!(event.kind, EventKind::Message | EventKind::MessageEdited)
        && event.message.as_ref().is_some_and(|m| !m.forwarded)
}

/// Brings two shapes of older real updates (in the shared real-webhook corpus) to what
/// teloxide's types require; `true` when it changed something. Without it these updates would
/// be `unsupported` although they carry ordinary messages.
///
/// - Users without `is_bot` (before Bot API 3.0, 2017), in `from`, `forward_from`, `via_bot`,
///   `user`, `left_chat_member` or `new_chat_members`: `"is_bot": false` is filled in (bots did
///   not see other bots' messages then). Corpus: `text-with-entities`, `voice-ogg`,
///   `audio-mp3`, `document-pdf`, `edited-message-text`, `forwarded-from-user`,
///   `forwarded-from-channel`, `reply-to-message-command`, `callback-query-inline-message`;
///   fixture `legacy-user-forward`.
/// - Files without `file_unique_id` (before Bot API 4.5, 2019): an empty one is filled in (we
///   do not use it). Corpus: `audio-mp3`, `voice-ogg`, `document-pdf`, ...
/// - A `callback_query` without `chat_instance` (the sample updates of Telegram's webhook
///   guide): an empty one is filled in (we do not use it). Corpus:
///   `callback-query-inline-message`.
/// - Stickers without `type` (before Bot API 6.2, 2022): `"type": "regular"` (or `"mask"` when
///   the sticker has a `mask_position`). Corpus: `sticker`, `forwarded-sticker`.
fn upgrade_legacy(value: &mut Value) -> bool {
    const USER_KEYS: [&str; 5] = ["from", "forward_from", "via_bot", "user", "left_chat_member"];
    let mut changed = false;
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let key = key.as_str();
                if USER_KEYS.contains(&key) {
                    changed |= fill_is_bot(inner);
                } else if key == "new_chat_members" {
                    for member in inner.as_array_mut().into_iter().flatten() {
                        changed |= fill_is_bot(member);
                    }
                } else if key == "callback_query"
                    && let Some(query) = inner.as_object_mut()
                    && !query.contains_key("chat_instance")
                {
                    query.insert("chat_instance".into(), "".into());
                    changed = true;
                } else if key == "sticker"
                    && let Some(sticker) = inner.as_object_mut()
                    && sticker.contains_key("file_id")
                    && !sticker.contains_key("type")
                {
                    let kind = if sticker.contains_key("mask_position") { "mask" } else { "regular" };
                    sticker.insert("type".into(), kind.into());
                    changed = true;
                }
                changed |= upgrade_legacy(inner);
            }
            if map.contains_key("file_id") && !map.contains_key("file_unique_id") {
                map.insert("file_unique_id".into(), "".into());
                changed = true;
            }
        }
        Value::Array(items) => {
            for item in items {
                changed |= upgrade_legacy(item);
            }
        }
        _ => {}
    }
    changed
}

/// A user object (it has an `id`) without `is_bot` gets `"is_bot": false`.
fn fill_is_bot(user: &mut Value) -> bool {
    match user.as_object_mut() {
        Some(user) if user.contains_key("id") && !user.contains_key("is_bot") => {
            user.insert("is_bot".into(), false.into());
            true
        }
        _ => false,
    }
}

/// The account, and how model values are built.
struct Ctx<'a> {
    account: &'a str,
}

/// The content of one message, before it is put into an event.
#[derive(Debug, Default)]
struct Content {
    text: Option<String>,
    entities: Vec<TextEntity>,
    attachment: Option<Attachment>,
    location: Option<Location>,
    contact: Option<Contact>,
}

/// Everything about a message except its content.
#[derive(Debug)]
struct Envelope {
    chat_id: String,
    customer: Option<Customer>,
    external_id: String,
    reply_to: Option<String>,
    forwarded: bool,
    sent_at: Option<DateTime<Utc>>,
    edited_at: Option<DateTime<Utc>>,
}

impl Ctx<'_> {
    fn event(&self, kind: EventKind, chat_id: String, customer: Option<Customer>) -> Event {
        Event { customer, ..Event::new(kind, crate::CHANNEL, self.account, chat_id) }
    }

    /// `media` is `telegram:<account>:<file_id>`; a `file_id` is downloadable with the Bot API's
    /// `getFile` (up to 20 MB) and can be re-sent as is.
    fn attachment(&self, kind: AttachmentKind, file_id: &str) -> Attachment {
        Attachment {
            kind,
            mime: None,
            size: None,
            name: None,
            media: Some(format!("telegram:{}:{file_id}", self.account)),
            url: None,
            duration: None,
            variant: None,
        }
    }

    fn message(&self, kind: EventKind, envelope: Envelope, content: Content) -> Event {
        let Envelope { chat_id, customer, external_id, reply_to, forwarded, sent_at, edited_at } = envelope;
        let source = (kind == EventKind::Message).then(|| start_source(content.text.as_deref())).flatten();
        Event {
            source,
            message: Some(Message {
                external_id,
                text: content.text,
                entities: content.entities,
                attachments: content.attachment.into_iter().collect(),
                reply_to,
                location: content.location,
                contact: content.contact,
                reaction: None,
                forwarded,
                sent_at,
                edited_at,
            }),
            ..self.event(kind, chat_id, customer)
        }
    }

    /// A press: a `feedback` event when the payload is a feedback answer of ours, else a `postback`.
    fn postback(&self, chat_id: String, customer: Customer, payload: String, external_id: Option<String>) -> Event {
        if let Some(feedback) = parse_feedback_payload(&payload) {
            return Event { feedback: Some(feedback), ..self.event(EventKind::Feedback, chat_id, Some(customer)) };
        }
        Event {
            postback: Some(Postback { payload, title: None, external_id }),
            ..self.event(EventKind::Postback, chat_id, Some(customer))
        }
    }

    fn reaction(&self, envelope: Envelope, emoji: Option<String>) -> Event {
        let mut event = self.message(EventKind::Reaction, envelope, Content::default());
        if let Some(message) = &mut event.message {
            message.reaction = Some(Reaction { emoji });
        }
        event
    }

    /// `None`: a kind we do not model. `raw` is the update as a JSON value when it was read
    /// from one (for the pre-7.0 `forward_date`).
    fn update(&self, update: &Update, raw: Option<&Value>) -> Option<Event> {
        match &update.kind {
            UpdateKind::Message(m) => self.typed_message(EventKind::Message, m, raw.and_then(|r| r.get("message"))),
            UpdateKind::EditedMessage(m) => {
                self.typed_message(EventKind::MessageEdited, m, raw.and_then(|r| r.get("edited_message")))
            }
            UpdateKind::CallbackQuery(q) => self.typed_callback(q),
            UpdateKind::MyChatMember(m) => self.typed_membership(m),
            UpdateKind::MessageReaction(r) => self.typed_reaction(r),
            _ => None,
        }
    }

    fn typed_message(&self, kind: EventKind, m: &teloxide_core::types::Message, raw: Option<&Value>) -> Option<Event> {
        // A Mini App's result, sent by a keyboard `web_app` button (`Message.web_app_data`,
        // <https://core.telegram.org/bots/api#webappdata>): the data the app sent, like a button press.
        if let (EventKind::Message, MessageKind::WebAppData(w)) = (kind, &m.kind) {
            let customer = m.from.as_ref().map(typed_customer)?;
            let data = &w.web_app_data;
            let postback =
                Postback { payload: data.data.clone(), title: Some(data.button_text.clone()), external_id: None };
            return Some(Event {
                postback: Some(postback),
                ..self.event(EventKind::Postback, m.chat.id.0.to_string(), Some(customer))
            });
        }
        let MessageKind::Common(common) = &m.kind else {
            return None;
        };
        let mut c = Content::default();
        match &common.media_kind {
            MediaKind::Text(t) => {
                c.text = Some(t.text.clone());
                c.entities = typed_entities(&t.entities);
            }
            MediaKind::Photo(p) => {
                let largest = largest_photo(&p.photo)?;
                c.attachment = Some(Attachment {
                    size: known_size(largest.file.size),
                    ..self.attachment(AttachmentKind::Image, &largest.file.id.0)
                });
                c.caption(p.caption.as_deref(), typed_entities(&p.caption_entities));
            }
            MediaKind::Document(d) => {
                let doc = &d.document;
                c.attachment = Some(Attachment {
                    mime: doc.mime_type.as_ref().map(ToString::to_string),
                    size: known_size(doc.file.size),
                    name: doc.file_name.clone(),
                    ..self.attachment(AttachmentKind::File, &doc.file.id.0)
                });
                c.caption(d.caption.as_deref(), typed_entities(&d.caption_entities));
            }
            MediaKind::Audio(a) => {
                let audio = &a.audio;
                c.attachment = Some(Attachment {
                    mime: audio.mime_type.as_ref().map(ToString::to_string),
                    size: known_size(audio.file.size),
                    name: audio.file_name.clone(),
                    duration: Some(audio.duration.seconds()),
                    ..self.attachment(AttachmentKind::Audio, &audio.file.id.0)
                });
                c.caption(a.caption.as_deref(), typed_entities(&a.caption_entities));
            }
            MediaKind::Voice(v) => {
                let voice = &v.voice;
                c.attachment = Some(Attachment {
                    mime: voice.mime_type.as_ref().map(ToString::to_string),
                    size: known_size(voice.file.size),
                    duration: Some(voice.duration.seconds()),
                    variant: Some("voice".into()),
                    ..self.attachment(AttachmentKind::Audio, &voice.file.id.0)
                });
                c.caption(v.caption.as_deref(), typed_entities(&v.caption_entities));
            }
            MediaKind::Video(v) => {
                let video = &v.video;
                c.attachment = Some(Attachment {
                    mime: video.mime_type.as_ref().map(ToString::to_string),
                    size: known_size(video.file.size),
                    name: video.file_name.clone(),
                    duration: Some(video.duration.seconds()),
                    ..self.attachment(AttachmentKind::Video, &video.file.id.0)
                });
                c.caption(v.caption.as_deref(), typed_entities(&v.caption_entities));
            }
            MediaKind::VideoNote(v) => {
                let note = &v.video_note;
                c.attachment = Some(Attachment {
                    size: known_size(note.file.size),
                    duration: Some(note.duration.seconds()),
                    variant: Some("video_note".into()),
                    ..self.attachment(AttachmentKind::Video, &note.file.id.0)
                });
            }
            MediaKind::Animation(a) => {
                // Telegram also sends the animation as `document` for old clients: one attachment.
                let anim = &a.animation;
                let mime = anim.mime_type.as_ref().map(ToString::to_string);
                let kind = animation_kind(mime.as_deref());
                c.attachment = Some(Attachment {
                    mime,
                    size: known_size(anim.file.size),
                    name: anim.file_name.clone(),
                    duration: Some(anim.duration.seconds()),
                    variant: Some("animation".into()),
                    ..self.attachment(kind, &anim.file.id.0)
                });
                c.caption(a.caption.as_deref(), typed_entities(&a.caption_entities));
            }
            MediaKind::Sticker(s) => {
                let sticker = &s.sticker;
                c.attachment = Some(Attachment {
                    size: known_size(sticker.file.size),
                    variant: sticker_variant(sticker.flags.is_animated, sticker.flags.is_video),
                    ..self.attachment(AttachmentKind::Sticker, &sticker.file.id.0)
                });
                c.text = sticker.emoji.clone();
            }
            MediaKind::Location(l) => {
                c.location = Some(Location {
                    latitude: l.location.latitude,
                    longitude: l.location.longitude,
                    name: None,
                    address: None,
                });
            }
            MediaKind::Venue(v) => {
                let venue = &v.venue;
                c.location = Some(Location {
                    latitude: venue.location.latitude,
                    longitude: venue.location.longitude,
                    name: Some(venue.title.clone()),
                    address: Some(venue.address.clone()),
                });
            }
            MediaKind::Contact(k) => {
                let contact = &k.contact;
                c.contact = Some(Contact {
                    name: full_name(Some(&contact.first_name), contact.last_name.as_deref()),
                    phone: Some(contact.phone_number.clone()),
                    user_id: contact.user_id.map(|id| id.0.to_string()),
                    vcard: contact.vcard.clone(),
                });
            }
            // Paid media, games, polls, checklists, stories, migrations.
            _ => return None,
        }
        let envelope = Envelope {
            chat_id: m.chat.id.0.to_string(),
            customer: m.from.as_ref().map(typed_customer),
            external_id: m.id.0.to_string(),
            reply_to: common.reply_to_message.as_ref().map(|r| r.id.0.to_string()),
            // `forward_origin` since Bot API 7.0; older payloads carry `forward_date` (and
            // `forward_from…`), which teloxide no longer reads: `parse` passes the JSON value
            // when the body names `forward_date`.
            forwarded: common.forward_origin.is_some() || raw.is_some_and(|m| m.get("forward_date").is_some()),
            sent_at: Some(m.date),
            edited_at: common.edit_date,
        };
        Some(self.message(kind, envelope, c))
    }

    fn typed_callback(&self, q: &CallbackQuery) -> Option<Event> {
        let payload = q.data.clone()?;
        let (chat_id, external_id) = match &q.message {
            Some(m) => (m.chat().id.0.to_string(), Some(m.id().0.to_string())),
            // A button under an inline-mode message: no chat is named. The user's private chat
            // with the bot has the user's id.
            None => (q.from.id.0.to_string(), None),
        };
        Some(self.postback(chat_id, typed_customer(&q.from), payload, external_id))
    }

    fn typed_membership(&self, m: &ChatMemberUpdated) -> Option<Event> {
        let kind = membership_change(typed_is_member(&m.old_chat_member), typed_is_member(&m.new_chat_member))?;
        Some(self.event(kind, m.chat.id.0.to_string(), Some(typed_customer(&m.from))))
    }

    fn typed_reaction(&self, r: &MessageReactionUpdated) -> Option<Event> {
        let emojis = |list: &[ReactionType]| -> Vec<Option<String>> {
            list.iter()
                .map(|t| match t {
                    ReactionType::Emoji { emoji } => Some(emoji.clone()),
                    _ => None,
                })
                .collect()
        };
        let emoji = chosen_reaction(&emojis(&r.old_reaction), &emojis(&r.new_reaction))?;
        let customer = match &r.actor {
            MaybeAnonymousUser::User(user) => Some(typed_customer(user)),
            MaybeAnonymousUser::Chat(_) => None,
        };
        let envelope = Envelope {
            chat_id: r.chat.id.0.to_string(),
            customer,
            external_id: r.message_id.0.to_string(),
            reply_to: None,
            forwarded: false,
            sent_at: Some(r.date),
            edited_at: None,
        };
        Some(self.reaction(envelope, emoji))
    }
}

impl Content {
    /// A caption is the message's text, with its own entities.
    fn caption(&mut self, caption: Option<&str>, entities: Vec<TextEntity>) {
        if let Some(caption) = caption {
            self.text = Some(caption.to_owned());
            self.entities = entities;
        }
    }
}

fn typed_customer(user: &User) -> Customer {
    customer(
        user.id.0.to_string(),
        Some(&user.first_name),
        user.last_name.as_deref(),
        user.username.as_deref(),
        user.language_code.as_deref(),
    )
}

fn typed_entities(entities: &[MessageEntity]) -> Vec<TextEntity> {
    entities
        .iter()
        .map(|e| {
            let (kind, url) = match &e.kind {
                MessageEntityKind::Mention => ("mention", None),
                MessageEntityKind::Hashtag => ("hashtag", None),
                MessageEntityKind::Cashtag => ("cashtag", None),
                MessageEntityKind::BotCommand => ("bot_command", None),
                MessageEntityKind::Url => ("url", None),
                MessageEntityKind::Email => ("email", None),
                MessageEntityKind::PhoneNumber => ("phone_number", None),
                MessageEntityKind::Bold => ("bold", None),
                MessageEntityKind::Blockquote => ("blockquote", None),
                MessageEntityKind::ExpandableBlockquote => ("expandable_blockquote", None),
                MessageEntityKind::Italic => ("italic", None),
                MessageEntityKind::Underline => ("underline", None),
                MessageEntityKind::Strikethrough => ("strikethrough", None),
                MessageEntityKind::Spoiler => ("spoiler", None),
                MessageEntityKind::Code => ("code", None),
                MessageEntityKind::Pre { .. } => ("pre", None),
                MessageEntityKind::TextLink { url } => ("text_link", Some(url.to_string())),
                MessageEntityKind::TextMention { .. } => ("text_mention", None),
                MessageEntityKind::CustomEmoji { .. } => ("custom_emoji", None),
            };
            TextEntity { kind: kind.to_owned(), offset: e.offset as u64, length: e.length as u64, url }
        })
        .collect()
}

fn largest_photo(sizes: &[PhotoSize]) -> Option<&PhotoSize> {
    // Telegram lists sizes smallest first; on equal areas the later one wins.
    sizes.iter().max_by_key(|s| u64::from(s.width) * u64::from(s.height))
}

/// teloxide puts `u32::MAX` where `file_size` is absent.
fn known_size(size: u32) -> Option<u64> {
    (size != u32::MAX).then_some(u64::from(size))
}

fn typed_is_member(member: &ChatMember) -> bool {
    match &member.kind {
        ChatMemberKind::Owner(_) | ChatMemberKind::Administrator(_) | ChatMemberKind::Member(_) => true,
        ChatMemberKind::Restricted(r) => r.is_member,
        ChatMemberKind::Left | ChatMemberKind::Banned(_) => false,
    }
}

fn customer(
    id: String,
    first_name: Option<&str>,
    last_name: Option<&str>,
    username: Option<&str>,
    language: Option<&str>,
) -> Customer {
    Customer {
        id,
        name: full_name(first_name, last_name),
        username: username.map(str::to_owned),
        avatar_url: None,
        language: language.map(str::to_owned),
        ..Customer::default()
    }
}

/// Where a `/start <payload>` deep link (`https://t.me/<bot>?start=<payload>`) came from: a
/// payload `w_<visitor id>` is a link from our web widget (`web_widget`, the visitor id as
/// `reference`, so the core can join the two conversations); any other payload is a `deep_link`.
fn start_source(text: Option<&str>) -> Option<Source> {
    let rest = text?.strip_prefix("/start")?;
    // `/start@bot_name payload` in groups; a bare `/start` has no payload.
    let rest = rest.strip_prefix('@').map_or(rest, |r| r.split_once(' ').map_or("", |(_, p)| p));
    let payload = rest.trim();
    if payload.is_empty() || payload.contains(char::is_whitespace) {
        return None;
    }
    Some(match payload.strip_prefix("w_") {
        Some(visitor) if !visitor.is_empty() => Source::new("web_widget", Some(visitor.to_owned())),
        _ => Source::new("deep_link", Some(payload.to_owned())),
    })
}

/// `first last`, either alone, or `None` when both are empty.
fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let name =
        [first, last].into_iter().flatten().map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

/// An animation is an MP4 (or a GIF Telegram did not convert): video when it says so, else a file.
fn animation_kind(mime: Option<&str>) -> AttachmentKind {
    match mime {
        Some(m) if m.starts_with("video/") => AttachmentKind::Video,
        _ => AttachmentKind::File,
    }
}

/// `animated` (.TGS) and `video` (.WEBM) stickers; static .WEBP stickers have no variant.
fn sticker_variant(is_animated: bool, is_video: bool) -> Option<String> {
    if is_video {
        Some("video".into())
    } else if is_animated {
        Some("animated".into())
    } else {
        None
    }
}

/// The bot's membership before and after → subscribed (it joined), unsubscribed (it was
/// blocked, kicked or left), or `None` (no change of membership, e.g. a promotion).
fn membership_change(was_member: bool, is_member: bool) -> Option<EventKind> {
    match (was_member, is_member) {
        (false, true) => Some(EventKind::CustomerSubscribed),
        (true, false) => Some(EventKind::CustomerUnsubscribed),
        _ => None,
    }
}

/// Telegram sends a user's whole reaction list before and after (`None` for a custom emoji or
/// paid reaction). We report one emoji: the newly added one, else the first one left; an empty
/// list is a removal (`Some(None)`). A list of only non-emoji reactions is not modelled (`None`).
fn chosen_reaction(old: &[Option<String>], new: &[Option<String>]) -> Option<Option<String>> {
    if new.is_empty() {
        return Some(None);
    }
    let emojis = || new.iter().flatten();
    let added = emojis().find(|e| !old.iter().flatten().any(|o| o == *e));
    added.or_else(|| emojis().next()).map(|e| Some(e.clone()))
}

/// An integer id as its digits (ids go above 2^32 and below zero; never through `f64`).
fn id_string(value: &Value) -> Option<String> {
    value.as_i64().map(|n| n.to_string()).or_else(|| value.as_u64().map(|n| n.to_string()))
}

/// The user behind an update of any kind, for `unsupported` events: `<kind>.from` or
/// `<kind>.user`, when readable.
fn customer_of_any(update: &Value) -> Option<Customer> {
    update
        .as_object()?
        .iter()
        .filter(|(key, _)| key.as_str() != "update_id")
        .find_map(|(_, inner)| inner.get("from").or_else(|| inner.get("user")).and_then(user_of_value))
}

/// A user object as a customer: `id` (required), names, `username`, `language_code`.
fn user_of_value(u: &Value) -> Option<Customer> {
    let text = |key| u.get(key).and_then(Value::as_str);
    Some(customer(
        u.get("id").and_then(id_string)?,
        text("first_name"),
        text("last_name"),
        text("username"),
        text("language_code"),
    ))
}

/// The chat an update of any kind is about, for `unsupported` events: `<kind>.chat.id` or
/// `<kind>.message.chat.id`; `""` when none is named (inline queries, polls, ...).
fn chat_of_any(update: &Value) -> String {
    let Some(object) = update.as_object() else {
        return String::new();
    };
    object
        .iter()
        .filter(|(key, _)| key.as_str() != "update_id")
        .find_map(|(_, inner)| {
            let chat = inner.get("chat").or_else(|| inner.get("message").and_then(|m| m.get("chat")))?;
            chat.get("id").and_then(id_string)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
