//! Visitor requests → events; stored visitor events → the items echoed on their stream; upload
//! content → its kind (by magic bytes, not by name); messenger links with the visitor's id.
//!
//! | route | event | dedup key |
//! |---|---|---|
//! | `POST sessions` with a `page` | `page_view` with the visitor's `source` | `web:{visitor}:page:{url}:{at}` |
//! | `POST messages` | `message` (`external_id` = the widget's `client_id`, `page` when sent) | `web:{visitor}:{client_id}` |
//! | `POST pageviews` | `page_view` | `web:{visitor}:page:{url}:{at}` (`at` = now when the widget gives none) |
//! | `POST postbacks` | `postback` `{payload, title, external_id}` (a feedback button's payload → `feedback`) | `web:{visitor}:postback:{client_id}` |
//! | `POST feedback` | `feedback` `{score, scale, request_id}` | `web:{visitor}:feedback:{request_id}:{score}` (a double submit once; a changed score is stored, marked `repeat`) |
//! | `POST receipts` | one `status` per item (`delivered` / `read`, `external_id` = the stream id) | `web:{visitor}:receipt:{id}:{status}` |

use chatgate_adapter::InboundEvent;
use chatgate_adapter::visitor::{Session, Visitor, VisitorError, VisitorInbound, VisitorRoute};
use chatgate_model::limits::check_text;
use chatgate_model::rich::typed_press;
use chatgate_model::{
    Attachment, Customer, Event, EventKind, Feedback, Limits, Message, Page, Postback, Source, Status, StatusInfo, Utm,
};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::config::Config;
use crate::{CHANNEL, verify, wire};

/// Longest page URL, referrer or landing URL kept.
pub const URL_MAX_CHARS: usize = 2048;
/// Longest page title kept (longer ones are cut).
pub const TITLE_MAX_CHARS: usize = 300;
/// Longest UTM value kept (longer ones are cut).
pub const UTM_MAX_CHARS: usize = 200;
/// Most attachments on one visitor message.
pub const ATTACHMENTS_MAX: usize = 10;
/// Most receipts in one `POST receipts`.
pub const RECEIPTS_MAX: usize = 200;

fn read<T: DeserializeOwned>(body: &[u8]) -> Result<T, VisitorError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| VisitorError::InvalidJson(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| VisitorError::Invalid(e.to_string()))
}

fn customer(visitor: &Visitor) -> Customer {
    Customer { id: visitor.id.clone(), user_id: visitor.user_id.clone(), ..Customer::default() }
}

fn event(kind: EventKind, account: &str, visitor: &Visitor) -> Event {
    let mut e = Event::new(kind, CHANNEL, account, visitor.id.clone());
    e.customer = Some(customer(visitor));
    e
}

fn cut(s: Option<String>, max: usize) -> Option<String> {
    s.map(|s| s.trim().chars().take(max).collect::<String>()).filter(|s| !s.is_empty())
}

fn http_url(field: &str, url: Option<String>) -> Result<Option<String>, VisitorError> {
    let Some(url) = url.filter(|u| !u.is_empty()) else { return Ok(None) };
    if url.chars().count() > URL_MAX_CHARS {
        return Err(VisitorError::Invalid(format!("`{field}` is longer than {URL_MAX_CHARS} characters")));
    }
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(url)),
        _ => Err(VisitorError::Invalid(format!("`{field}` must be an http(s) URL"))),
    }
}

fn page(field: &str, body: wire::PageBody) -> Result<Page, VisitorError> {
    let url = http_url(&format!("{field}.url"), Some(body.url))?
        .ok_or_else(|| VisitorError::Invalid(format!("`{field}.url` must not be empty")))?;
    Ok(Page { url, title: cut(body.title, TITLE_MAX_CHARS), at: body.at })
}

fn page_view(account: &str, visitor: &Visitor, page: Page) -> InboundEvent {
    let at = page.at.unwrap_or_else(Utc::now);
    let key = format!("web:{}:page:{}:{}", visitor.id, page.url, at.timestamp_millis());
    let mut e = event(EventKind::PageView, account, visitor);
    e.page = Some(Page { at: Some(at), ..page });
    InboundEvent::new(Some(key), e)
}

/// `POST sessions`: continues the visitor of a valid token, or starts a new one; checks identity.
pub(crate) fn session(config: &Config, account: &str, body: &[u8]) -> Result<Session, VisitorError> {
    let body: wire::SessionBody =
        if body.iter().all(u8::is_ascii_whitespace) { Default::default() } else { read(body)? };
    let verified = verify::check_identity(config, body.user_id.as_deref(), body.user_hash.as_deref())?;
    let presented = match body.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => Some(verify::authenticate(config, account, token)?),
        None => None,
    };
    let visitor = match (verified, presented) {
        // A verified user is the same visitor on every device, whatever tab token they had.
        (Some(user), _) => Visitor { id: verify::verified_visitor_id(config, account, &user), user_id: Some(user) },
        (None, Some(v)) => v,
        (None, None) => Visitor { id: verify::new_visitor_id(), user_id: None },
    };
    let source = body.source.map(source).transpose()?;
    let mut events = Vec::new();
    if let Some(p) = body.page {
        let mut opened = page_view(account, &visitor, page("page", p)?);
        opened.event.source = source.clone();
        events.push(opened);
    }
    let token = verify::issue(config, account, &visitor);
    Ok(Session { token, visitor, source, events })
}

fn source(s: wire::SourceBody) -> Result<Source, VisitorError> {
    let utm = s.utm.map(|u| Utm {
        source: cut(u.source, UTM_MAX_CHARS),
        medium: cut(u.medium, UTM_MAX_CHARS),
        campaign: cut(u.campaign, UTM_MAX_CHARS),
        term: cut(u.term, UTM_MAX_CHARS),
        content: cut(u.content, UTM_MAX_CHARS),
    });
    Ok(Source {
        kind: "website".to_owned(),
        referrer: http_url("source.referrer", s.referrer)?,
        landing_url: http_url("source.landing_url", s.landing_url)?,
        utm: utm.filter(|u| u != &Utm::default()),
        ..Source::default()
    })
}

/// A widget's `client_id`: 1 to 64 letters, digits, `-` or `_` (a UUID fits).
fn check_client_id(id: &str) -> Result<(), VisitorError> {
    let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(VisitorError::Invalid("`client_id` must be 1-64 letters, digits, `-` or `_`".into())) }
}

/// An authenticated visitor's request → events.
pub(crate) fn receive(
    account: &str,
    limits: &Limits,
    visitor: &Visitor,
    route: VisitorRoute,
    body: &[u8],
    upload: &dyn Fn(&str) -> Option<Attachment>,
) -> Result<VisitorInbound, VisitorError> {
    let mut out = VisitorInbound { events: Vec::new(), client_id: None, acknowledged: Vec::new() };
    match route {
        VisitorRoute::Message => {
            let m: wire::MessageBody = read(body)?;
            check_client_id(&m.client_id)?;
            let text = m.text.filter(|t| !t.trim().is_empty());
            if text.is_none() && m.attachments.is_empty() {
                return Err(VisitorError::Limit(chatgate_model::LimitViolation::EmptyMessage));
            }
            if let Some(t) = &text {
                check_text(t, limits).map_err(VisitorError::Limit)?;
            }
            if m.attachments.len() > ATTACHMENTS_MAX {
                return Err(VisitorError::Invalid(format!("at most {ATTACHMENTS_MAX} attachments per message")));
            }
            let attachments = m
                .attachments
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    upload(r).ok_or_else(|| VisitorError::Invalid(format!("attachments[{i}]: no such upload")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut e = event(EventKind::Message, account, visitor);
            e.message = Some(Message { external_id: m.client_id.clone(), text, attachments, ..Message::default() });
            e.page = m.page.map(|p| page("page", p)).transpose()?;
            let key = format!("web:{}:{}", visitor.id, m.client_id);
            out.events.push(InboundEvent::new(Some(key), e));
            out.client_id = Some(m.client_id);
        }
        VisitorRoute::PageView => {
            let p: wire::PageBody = read(body)?;
            out.events.push(page_view(account, visitor, page("page", p)?));
        }
        VisitorRoute::Feedback => {
            let f: wire::FeedbackBody = read(body)?;
            if !Feedback::is_valid(f.score, f.scale) {
                return Err(VisitorError::Invalid(format!(
                    "score {} is not 1 to {} on a 2-, 5- or 10-point scale",
                    f.score, f.scale
                )));
            }
            let request_id = cut(f.request_id, 64);
            let mut e = event(EventKind::Feedback, account, visitor);
            // One event per request and score: a double submit is stored once, a changed answer is
            // stored too (the gateway marks it `repeat`).
            let key = format!("web:{}:feedback:{}:{}", visitor.id, request_id.as_deref().unwrap_or("widget"), f.score);
            // Range-checked above: 1..=10 fits a byte.
            e.feedback = Some(Feedback::answer(request_id, f.score as u8, f.scale as u8));
            out.events.push(InboundEvent::new(Some(key), e));
        }
        VisitorRoute::Postback => {
            let p: wire::PostbackBody = read(body)?;
            if p.client_id.is_empty() || p.client_id.len() > 64 {
                return Err(VisitorError::Invalid("`client_id` must be 1 to 64 characters".into()));
            }
            if p.payload.is_empty() || p.payload.len() > crate::BUTTONS.payload_max_bytes {
                return Err(VisitorError::Invalid("`payload` must be 1 to 1000 bytes".into()));
            }
            let mut e = event(EventKind::Postback, account, visitor);
            e.postback =
                Some(Postback { payload: p.payload, title: cut(p.title, 64), external_id: cut(p.message_id, 64) });
            let key = format!("web:{}:postback:{}", visitor.id, p.client_id);
            out.events.push(InboundEvent::new(Some(key), typed_press(e)));
        }
        VisitorRoute::Receipts => {
            let r: wire::ReceiptsBody = read(body)?;
            if r.items.len() > RECEIPTS_MAX {
                return Err(VisitorError::Invalid(format!("at most {RECEIPTS_MAX} receipts at once")));
            }
            for item in r.items {
                let status = match item.status {
                    wire::ReceiptStatus::Delivered => Status::Delivered,
                    wire::ReceiptStatus::Read => Status::Read,
                };
                let mut e = event(EventKind::Status, account, visitor);
                e.status = Some(StatusInfo {
                    message_id: None,
                    external_id: Some(item.id.clone()),
                    status,
                    error: None,
                    up_to: None,
                });
                let key = format!("web:{}:receipt:{}:{}", visitor.id, item.id, status.as_str());
                out.events.push(InboundEvent::new(Some(key), e));
                out.acknowledged.push(item.id);
            }
        }
    }
    Ok(out)
}

/// The URL of a stored file on the gateway, for the widget.
pub(crate) fn file_url(account: &str, reference: &str) -> String {
    format!("/web/{account}/files/{reference}")
}

/// An attachment as the widget shows it.
pub(crate) fn attachment_item(account: &str, a: &Attachment) -> Value {
    let reference = a.media.as_deref().and_then(|m| m.rsplit(':').next()).unwrap_or_default();
    json!({
        "kind": a.kind.as_str(),
        "name": a.name,
        "mime": a.mime,
        "size": a.size,
        "url": file_url(account, reference),
    })
}

/// The stream item echoing a stored visitor event to the visitor's tabs (messages only).
pub(crate) fn echo(event: &Event) -> Option<(String, Value)> {
    let m = event.message.as_ref().filter(|_| event.kind == EventKind::Message)?;
    let attachments: Vec<Value> = m.attachments.iter().map(|a| attachment_item(&event.account, a)).collect();
    Some((
        "message".to_owned(),
        json!({
            "id": event.id,
            "from": "visitor",
            "text": m.text,
            "attachments": attachments,
            "client_id": m.external_id,
            "at": event.received_at,
        }),
    ))
}

pub use chatgate_model::limits::sniff;

/// The configured messenger links with the visitor's id added where the messenger carries one
/// back to its webhook: Telegram `?start=w_{id}`, Viber `&context=w_{id}`, Messenger `?ref=w_{id}`,
/// WhatsApp a prefilled text ending in `[w_{id}]`. Others are shown as configured.
pub(crate) fn messenger_links(config: &Config, visitor: Option<&str>) -> Vec<Value> {
    config
        .messenger_links
        .iter()
        .map(|l| {
            let url = match (visitor, url::Url::parse(&l.url)) {
                (Some(id), Ok(mut u)) => {
                    let reference = format!("w_{id}");
                    match l.kind.as_str() {
                        "telegram" => set_query(&mut u, "start", &reference),
                        "viber" => set_query(&mut u, "context", &reference),
                        "messenger" => set_query(&mut u, "ref", &reference),
                        "whatsapp" => set_query(&mut u, "text", &format!("Hello [{reference}]")),
                        _ => {}
                    }
                    u.to_string()
                }
                _ => l.url.clone(),
            };
            json!({ "kind": l.kind, "url": url, "label": l.label.clone().unwrap_or_else(|| title_case(&l.kind)) })
        })
        .collect()
}

fn set_query(url: &mut url::Url, key: &str, value: &str) {
    let kept: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != key).map(|(k, v)| (k.into(), v.into())).collect();
    url.query_pairs_mut().clear().extend_pairs(kept).append_pair(key, value);
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chatgate_model::AttachmentKind;

    use super::*;

    #[test]
    fn uploads_are_recognised_by_content() {
        assert_eq!(sniff(include_bytes!("../assets/avatar-bot.png")), Some(("image/png", AttachmentKind::Image)));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0rest"), Some(("image/jpeg", AttachmentKind::Image)));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(("image/webp", AttachmentKind::Image)));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Some(("audio/wav", AttachmentKind::Audio)));
        assert_eq!(sniff(b"ID3\x04rest"), Some(("audio/mpeg", AttachmentKind::Audio)));
        assert_eq!(sniff(b"OggS\0rest"), Some(("audio/ogg", AttachmentKind::Audio)));
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A \0"), Some(("audio/mp4", AttachmentKind::Audio)));
        assert_eq!(sniff(b"\0\0\0\x20ftypisom\0"), Some(("video/mp4", AttachmentKind::Video)));
        assert_eq!(sniff(b"\x1a\x45\xdf\xa3rest"), Some(("video/webm", AttachmentKind::Video)));
        assert_eq!(sniff(b"%PDF-1.7"), Some(("application/pdf", AttachmentKind::File)));
        // A script named .png is not an image.
        assert_eq!(sniff(b"<script>alert(1)</script>"), None);
        assert_eq!(sniff(b""), None);
    }
}
