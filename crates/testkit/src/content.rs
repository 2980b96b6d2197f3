//! "No event without content": the property every event of every channel must have, checked by
//! `tests/content.rs` over every fixture and every real-webhook payload.
//!
//! - An event that names a sender (`customer`) has a non-empty `customer.id`, and every event
//!   but `unsupported` has a non-empty `chat_id`: the core can route it and reply to it.
//! - `message` / `message_edited`: something to show (non-blank text, an attachment, a location or
//!   a contact), and every attachment can be fetched: it has a `url`, or a `media` reference
//!   `<channel>:<account>:<provider ref>` of this account that its adapter resolves through
//!   `GET /v1/media/{ref}` ([`Adapter::resolves_media`]).
//! - Every other kind carries its own payload: `message_deleted` names the message, `reaction`
//!   names it and has a reaction, `postback` has a payload or a title, `status` has a status and
//!   the message (or watermark) it is about, `customer_*` has the customer, `unsupported` keeps
//!   the provider's object in `raw`.

use chatgate_adapter::Adapter;
use chatgate_model::{Attachment, Event, EventKind, Message};

/// Checks one event of `adapter`'s account; the reason it fails otherwise.
pub fn check_event(adapter: &dyn Adapter, event: &Event) -> Result<(), String> {
    if let Some(customer) = &event.customer
        && customer.id.trim().is_empty()
    {
        return Err("a customer without an id".into());
    }
    if event.kind == EventKind::Unsupported {
        return match event.raw {
            Some(_) => Ok(()),
            None => Err("unsupported without the raw object".into()),
        };
    }
    if event.chat_id.trim().is_empty() {
        return Err(format!("{:?} without a chat_id", event.kind));
    }
    for attachment in event.message.iter().flat_map(|m| &m.attachments) {
        check_attachment(adapter, event, attachment)?;
    }
    let message = || event.message.as_ref().ok_or_else(|| format!("{:?} without a message", event.kind));
    let named = |m: &Message| match m.external_id.trim().is_empty() {
        true => Err(format!("{:?} names no message", event.kind)),
        false => Ok(()),
    };
    let sender = || match event.customer {
        Some(_) => Ok(()),
        None => Err(format!("{:?} without the customer", event.kind)),
    };
    match event.kind {
        EventKind::Message | EventKind::MessageEdited => {
            sender()?;
            let m = message()?;
            let text = m.text.as_deref().is_some_and(|t| !t.trim().is_empty());
            if !(text || !m.attachments.is_empty() || m.location.is_some() || m.contact.is_some()) {
                return Err(format!("{:?} with nothing to show", event.kind));
            }
            Ok(())
        }
        EventKind::MessageDeleted => {
            sender()?;
            named(message()?)
        }
        EventKind::Reaction => {
            sender()?;
            let m = message()?;
            named(m)?;
            m.reaction.as_ref().map(|_| ()).ok_or_else(|| "reaction without a reaction".into())
        }
        EventKind::Postback => {
            sender()?;
            let p = event.postback.as_ref().ok_or("postback without a postback")?;
            match p.payload.trim().is_empty() && p.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
                true => Err("postback with neither payload nor title".into()),
                false => Ok(()),
            }
        }
        EventKind::Status => {
            let s = event.status.as_ref().ok_or("status without a status")?;
            match s.external_id.as_deref().is_some_and(|id| !id.is_empty()) || s.up_to.is_some() {
                true => Ok(()),
                false => Err("status naming no message and no watermark".into()),
            }
        }
        EventKind::CustomerSubscribed | EventKind::CustomerUnsubscribed => sender(),
        EventKind::PageView => {
            sender()?;
            let page = event.page.as_ref().ok_or("page_view without a page")?;
            match page.url.trim().is_empty() {
                true => Err("page_view without a URL".into()),
                false => Ok(()),
            }
        }
        EventKind::Feedback => {
            sender()?;
            let f = event.feedback.as_ref().ok_or("feedback without a score")?;
            match (1..=f.scale).contains(&f.score) && matches!(f.scale, 2 | 5 | 10) {
                true => Ok(()),
                false => {
                    Err(format!("feedback {} of {} is not a score on a 2-, 5- or 10-point scale", f.score, f.scale))
                }
            }
        }
        EventKind::Unsupported => Ok(()),
    }
}

fn check_attachment(adapter: &dyn Adapter, event: &Event, attachment: &Attachment) -> Result<(), String> {
    if attachment.url.as_deref().is_some_and(|u| !u.trim().is_empty()) {
        return Ok(());
    }
    let Some(media) = attachment.media.as_deref() else {
        return Err(format!("a {} attachment with neither url nor media", attachment.kind.as_str()));
    };
    let prefix = format!("{}:{}:", event.channel, event.account);
    match media.strip_prefix(&prefix) {
        Some(reference) if !reference.is_empty() && adapter.resolves_media() => Ok(()),
        Some(_) if !adapter.resolves_media() => {
            Err(format!("media `{media}` without a url, and {} resolves no media references", event.channel))
        }
        _ => Err(format!("media `{media}` is not a reference of this account ({prefix}...)")),
    }
}
