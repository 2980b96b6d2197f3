//! `chatgate serve --record DIR`: every authentic webhook (after verification passed) is written
//! to `DIR/<channel>/<UTC time, ms>Z-<n>-<account>.body` + `.headers`, redacted by [`redact`], so a
//! payload chatgate does not model can become a fixture (`chatgate fixtures add`).
//!
//! Recording is off the webhook's path: the handler hands the request to a bounded queue
//! ([`QUEUE_CAPACITY`]) without waiting, and one task redacts and writes, each write bounded by
//! [`WRITE_TIMEOUT`]. A full queue, an unreadable body or a failed write is logged and counted
//! (`chatgate_record_{written,failed,dropped}_total` in `/metrics`); the webhook's answer never
//! waits for it and never depends on it.
//!
//! # The redaction rule
//!
//! Headers: only `Content-Type` and `User-Agent` are kept (signatures, secret tokens, cookies,
//! forwarded addresses are dropped); the query string is not kept. Bodies must be JSON (every
//! channel's are; others are not recorded). Every value is judged by its key, case-insensitively,
//! at any depth; strings and numbers only, so objects and arrays keep their shape:
//!
//! | keys | becomes |
//! |---|---|
//! | secrets: `secret`, `secret_key`, `token`, `access_token`, `auth_token`, `verify_token`, `password`, `signature`, `hash`, `access_key` | `"[redacted]"` |
//! | text: `text`, `caption`, `body`, `message` (a string), `description`, `vcard`, `address`, `quote` | every character that is not whitespace becomes `x` (one `xx` for characters outside the BMP), so lengths and entity offsets still fit; a leading bot command (`/start`) is kept |
//! | names: `name`, `first_name`, `last_name`, `username`, `screen_name`, `display_name`, `formatted_name`, `nickname`, `title`, `file_name` | `"<key>-<n>"` |
//! | ids and phone numbers: `id`, `*_id`, `*_ids` (except the ones below), `from` and `sender` and `recipient` when a string, `wa_id`, `phone`, `phone_number` | digits → the same number of digits, the first kept (`523847190` → `500000001`, so group/private ranges and signs stay), else `"id-<n>"`; one value gets one placeholder everywhere in the body |
//! | kept ids (the business side and message/update numbers): `update_id`, `message_id`, `event_id`, `group_id`, `phone_number_id`, `conversation_message_id`, `media_group_id`, `random_id`, `sticker_id` | unchanged |
//! | URLs: `url`, `*_url`, `avatar`, `media`, `link`, `thumbnail` | `"https://example.invalid/<n>"` plus the original extension |
//! | e-mail: `email` | `"user-<n>@example.invalid"` |
//! | places: `latitude`, `longitude`, `lat`, `long`, `lng` | `0.0` |
//!
//! Everything else (kinds, types, timestamps, flags, counts, message numbers) is kept, so the
//! redacted body parses to the same kinds of events. The rule is idempotent: redacting a redacted
//! body changes nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use chatgate_model::Channel;
use serde_json::{Map, Number, Value};

/// Recordings waiting to be written at most; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 256;
/// How long writing one recording may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// One authentic webhook, as received.
#[derive(Debug)]
struct Recording {
    channel: Channel,
    account: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What the recorder did, for `/metrics`.
#[derive(Debug, Default)]
pub struct RecordStats {
    pub written: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

/// The handle the webhook route gives recordings to.
#[derive(Debug, Clone)]
pub struct Recorder {
    sender: tokio::sync::mpsc::Sender<Recording>,
    stats: Arc<RecordStats>,
}

impl Recorder {
    /// Starts the writer task for `dir` (created when missing).
    pub fn start(dir: PathBuf) -> Recorder {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Recording>(QUEUE_CAPACITY);
        let stats = Arc::new(RecordStats::default());
        let counts = stats.clone();
        tokio::spawn(async move {
            let mut n: u64 = 0;
            while let Some(recording) = receiver.recv().await {
                n += 1;
                let (channel, account) = (recording.channel, recording.account.clone());
                match tokio::time::timeout(WRITE_TIMEOUT, write(&dir, n, recording)).await {
                    Ok(Ok(path)) => {
                        counts.written.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%channel, %account, path = %path.display(), "webhook recorded");
                    }
                    Ok(Err(error)) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%channel, %account, %error, "could not record a webhook");
                    }
                    Err(_) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%channel, %account, timeout = ?WRITE_TIMEOUT, "recording a webhook took too long; given up");
                    }
                }
            }
        });
        Recorder { sender, stats }
    }

    /// Hands an authentic webhook to the writer; never waits. A full queue drops it (counted).
    pub fn record(&self, channel: Channel, account: &str, headers: &HeaderMap, body: &Bytes) {
        let recording =
            Recording { channel, account: account.to_owned(), headers: headers.clone(), body: body.clone() };
        if self.sender.try_send(recording).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%channel, %account, "webhook not recorded: the recorder is behind");
        }
    }

    pub fn stats(&self) -> &RecordStats {
        &self.stats
    }
}

/// Redacts and writes one recording; returns the `.body` path.
async fn write(dir: &Path, n: u64, recording: Recording) -> Result<PathBuf, String> {
    let (head, body) = redact(&recording.headers, &recording.body).ok_or("the body is not JSON; not recorded")?;
    let folder = dir.join(recording.channel.as_str());
    tokio::fs::create_dir_all(&folder).await.map_err(|e| format!("creating {}: {e}", folder.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    let account: String =
        recording.account.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let headers_path = folder.join(format!("{stamp}-{n}-{account}.headers"));
    let body_path = folder.join(format!("{stamp}-{n}-{account}.body"));
    tokio::fs::write(&headers_path, head).await.map_err(|e| format!("writing {}: {e}", headers_path.display()))?;
    tokio::fs::write(&body_path, body).await.map_err(|e| format!("writing {}: {e}", body_path.display()))?;
    Ok(body_path)
}

/// Headers kept in a recording.
const KEPT_HEADERS: [&str; 2] = ["content-type", "user-agent"];

/// A webhook redacted by the rule in the module doc: the `.headers` text and the body (pretty
/// JSON). `None` when the body is not JSON.
pub fn redact(headers: &HeaderMap, body: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    redact_json(&mut value);
    let mut head = String::new();
    for name in KEPT_HEADERS {
        for v in headers.get_all(name) {
            if let Ok(v) = v.to_str() {
                head.push_str(&format!("{}: {v}\n", canonical(name)));
            }
        }
    }
    let mut out = serde_json::to_vec_pretty(&value).ok()?;
    out.push(b'\n');
    Some((head, out))
}

fn canonical(name: &str) -> &'static str {
    match name {
        "content-type" => "Content-Type",
        _ => "User-Agent",
    }
}

/// Redacts a JSON value in place (the body part of [`redact`]).
pub fn redact_json(value: &mut Value) {
    Redactor::default().value(None, value);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Secret,
    Text,
    Name,
    Id,
    Url,
    Email,
    Place,
    Keep,
}

fn class(key: &str) -> Class {
    let key = key.to_ascii_lowercase();
    let k = key.as_str();
    const SECRETS: [&str; 10] = [
        "secret",
        "secret_key",
        "token",
        "access_token",
        "auth_token",
        "verify_token",
        "password",
        "signature",
        "hash",
        "access_key",
    ];
    const TEXTS: [&str; 8] = ["text", "caption", "body", "message", "description", "vcard", "address", "quote"];
    const NAMES: [&str; 10] = [
        "name",
        "first_name",
        "last_name",
        "username",
        "screen_name",
        "display_name",
        "formatted_name",
        "nickname",
        "title",
        "file_name",
    ];
    const KEPT_IDS: [&str; 9] = [
        "update_id",
        "message_id",
        "event_id",
        "group_id",
        "phone_number_id",
        "conversation_message_id",
        "media_group_id",
        "random_id",
        "sticker_id",
    ];
    const IDS: [&str; 7] = ["id", "from", "sender", "recipient", "wa_id", "phone", "phone_number"];
    const URLS: [&str; 5] = ["url", "avatar", "media", "link", "thumbnail"];
    const PLACES: [&str; 5] = ["latitude", "longitude", "lat", "long", "lng"];
    if SECRETS.contains(&k) {
        Class::Secret
    } else if TEXTS.contains(&k) {
        Class::Text
    } else if NAMES.contains(&k) {
        Class::Name
    } else if KEPT_IDS.contains(&k) {
        Class::Keep
    } else if IDS.contains(&k) || k.ends_with("_id") || k.ends_with("_ids") {
        Class::Id
    } else if URLS.contains(&k) || k.ends_with("_url") {
        Class::Url
    } else if k == "email" {
        Class::Email
    } else if PLACES.contains(&k) {
        Class::Place
    } else {
        Class::Keep
    }
}

/// Stable placeholders for one body: one value, one placeholder.
#[derive(Debug, Default)]
struct Redactor {
    ids: HashMap<String, String>,
    names: HashMap<(String, String), String>,
    urls: HashMap<String, String>,
    /// Separate counters, so that a second pass (which skips what is already a placeholder)
    /// numbers digit ids exactly as the first did.
    digits: u64,
    strings: u64,
    others: u64,
}

impl Redactor {
    fn next(&mut self) -> u64 {
        self.others += 1;
        self.others
    }

    fn value(&mut self, key: Option<&str>, value: &mut Value) {
        let class = key.map_or(Class::Keep, class);
        match value {
            Value::Object(map) => self.object(map),
            Value::Array(items) => {
                for item in items {
                    self.value(key, item);
                }
            }
            Value::String(s) => {
                if let Some(new) = self.string(class, key.unwrap_or_default(), s) {
                    *s = new;
                }
            }
            Value::Number(n) => match class {
                Class::Id => {
                    let text = n.to_string();
                    if let Ok(parsed) = self.id(&text).parse::<i64>() {
                        *n = Number::from(parsed);
                    }
                }
                Class::Place => {
                    if let Some(zero) = Number::from_f64(0.0) {
                        *n = zero;
                    }
                }
                _ => {}
            },
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>) {
        for (k, v) in map.iter_mut() {
            self.value(Some(k), v);
        }
    }

    fn string(&mut self, class: Class, key: &str, s: &str) -> Option<String> {
        match class {
            Class::Secret => Some("[redacted]".to_owned()),
            Class::Text => Some(mask(s)),
            Class::Name => {
                let prefix = format!("{}-", key.to_ascii_lowercase());
                if s.strip_prefix(&prefix).is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
                    return None;
                }
                let slot = (key.to_ascii_lowercase(), s.to_owned());
                if let Some(p) = self.names.get(&slot) {
                    return Some(p.clone());
                }
                let p = format!("{prefix}{}", self.next());
                self.names.insert(slot, p.clone());
                Some(p)
            }
            Class::Id => Some(self.id(s)),
            Class::Url => {
                if s.starts_with("https://example.invalid/") {
                    return None;
                }
                if let Some(p) = self.urls.get(s) {
                    return Some(p.clone());
                }
                let path = s.split(['?', '#']).next().unwrap_or_default();
                let last = path.rsplit('/').next().unwrap_or_default();
                let ext = last
                    .rsplit_once('.')
                    .map(|(_, e)| e)
                    .filter(|e| !e.is_empty() && e.len() <= 5 && e.bytes().all(|b| b.is_ascii_alphanumeric()));
                let n = self.next();
                let p = match ext {
                    Some(ext) => format!("https://example.invalid/{n}.{ext}"),
                    None => format!("https://example.invalid/{n}"),
                };
                self.urls.insert(s.to_owned(), p.clone());
                Some(p)
            }
            Class::Email => {
                if s.ends_with("@example.invalid") {
                    return None;
                }
                let slot = ("email".to_owned(), s.to_owned());
                if let Some(p) = self.names.get(&slot) {
                    return Some(p.clone());
                }
                let p = format!("user-{}@example.invalid", self.next());
                self.names.insert(slot, p.clone());
                Some(p)
            }
            Class::Place | Class::Keep => None,
        }
    }

    /// The placeholder of an id or phone number: digits keep their count, sign, `+` and first
    /// digit; anything else becomes `id-<n>`.
    fn id(&mut self, original: &str) -> String {
        if let Some(p) = self.ids.get(original) {
            return p.clone();
        }
        let (sign, digits) = match original.strip_prefix(['-', '+']) {
            Some(rest) => (&original[..1], rest),
            None => ("", original),
        };
        let placeholder = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            self.digits += 1;
            let n = self.digits.to_string();
            let first = &digits[..1];
            let width = digits.len().saturating_sub(1);
            if digits.len() >= 2 && n.len() <= width && first != "0" {
                format!("{sign}{first}{n:0>width$}")
            } else {
                format!("{sign}{n}")
            }
        } else if original.strip_prefix("id-").is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            original.to_owned()
        } else {
            self.strings += 1;
            format!("id-{}", self.strings)
        };
        self.ids.insert(original.to_owned(), placeholder.clone());
        placeholder
    }
}

/// Text with every non-whitespace character replaced by `x` (two for characters outside the
/// BMP, so UTF-16 offsets still fit); a leading bot command (`/start`) is kept.
fn mask(text: &str) -> String {
    let (command, rest) = match text.strip_prefix('/') {
        Some(_) => {
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            let word = &text[..end];
            if word[1..].chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@') {
                (word, &text[end..])
            } else {
                ("", text)
            }
        }
        None => ("", text),
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(command);
    for c in rest.chars() {
        if c.is_whitespace() {
            out.push(c);
        } else {
            for _ in 0..c.len_utf16() {
                out.push('x');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_keep_shape_and_stay_consistent() {
        let mut v = json!({
            "update_id": 815400104,
            "message": {"message_id": 7, "from": {"id": 523847190, "first_name": "Maria", "username": "maria_iv"},
                        "chat": {"id": 523847190, "type": "private"}, "text": "/start hello Мир 🙂"},
            "group": {"peer_id": 2000000001, "chat_id": -1001234567890i64},
            "contacts": [{"wa_id": "79161234567", "profile": {"name": "Maria"}}],
            "from": "79161234567", "secret": "s3cr3t", "media": "https://cdn.example/p/a.jpg?sig=1",
            "location": {"latitude": 55.7, "longitude": 37.6}, "sender": {"id": "01234567890A="}
        });
        redact_json(&mut v);
        assert_eq!(v["update_id"], 815400104);
        assert_eq!(v["message"]["message_id"], 7);
        assert_eq!(v["message"]["from"]["id"], v["message"]["chat"]["id"]);
        assert_ne!(v["message"]["from"]["id"], 523847190);
        assert_eq!(v["message"]["from"]["id"].to_string().len(), 9);
        assert!(v["message"]["from"]["first_name"].as_str().unwrap().starts_with("first_name-"));
        assert_eq!(v["message"]["text"], "/start xxxxx xxx xx");
        assert!(v["group"]["peer_id"].as_i64().unwrap() >= 2_000_000_000);
        assert!(v["group"]["chat_id"].to_string().starts_with("-100"));
        assert_eq!(v["contacts"][0]["wa_id"], v["from"]);
        assert_eq!(v["from"].as_str().unwrap().len(), 11);
        assert_eq!(v["secret"], "[redacted]");
        assert!(
            v["media"].as_str().unwrap().starts_with("https://example.invalid/")
                && v["media"].as_str().unwrap().ends_with(".jpg")
        );
        assert_eq!(v["location"]["latitude"], 0.0);
        assert!(v["sender"]["id"].as_str().unwrap().starts_with("id-"));
        let once = v.clone();
        redact_json(&mut v);
        assert_eq!(v, once, "redaction is idempotent");
    }

    #[test]
    fn headers_keep_only_content_type_and_user_agent() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("x-telegram-bot-api-secret-token", "hush".parse().unwrap());
        headers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let (head, _) = redact(&headers, b"{}").unwrap();
        assert_eq!(head, "Content-Type: application/json\n");
        assert!(redact(&headers, b"not json").is_none());
    }
}
