//! `chatgate fixtures add FILE --channel X`: turns a webhook recorded by `serve --record` (or
//! any raw body with its `.headers` beside it) into a fixture under `fixtures/<channel>/`, with
//! its golden output for review.
//!
//! Steps: the body and headers are redacted once more by the recording rule
//! ([`chatgate_server::record::redact`], idempotent, so a hand-made file gets the same
//! treatment); top-level body fields that the fixture account's settings also name (VK
//! `group_id`) take the fixture account's value; the body is signed for the fixture account
//! `test` (`fixtures/<channel>/account.json`) the way the provider would; it must then verify
//! and parse through the same webhook steps as the server. Written: `<name>.body`,
//! `<name>.headers` and `<name>.snap.new` (the envelopes in the insta format of
//! `chatgate_testkit::snapshot`). Review the `.snap.new` and accept it with `cargo insta review`
//! (or rename it to `.snap`); `cargo test -p chatgate --test fixtures` then checks it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chatgate_adapter::{Reply, WebhookRequest};
use serde_json::{Value, json};

use crate::registry;

/// What `fixtures add` wrote.
#[derive(Debug, Clone)]
pub struct Added {
    /// `<fixtures>/<channel>/<name>.body`.
    pub body: PathBuf,
    /// `<fixtures>/<channel>/<name>.snap.new`.
    pub snapshot: PathBuf,
    /// The `type` of each event, in order.
    pub kinds: Vec<String>,
}

/// Adds `file` as a fixture of `channel` under `fixtures_dir` (named `name`, or after its first
/// event's type). Refuses to overwrite an existing fixture.
pub fn add(file: &Path, channel: &str, name: Option<&str>, fixtures_dir: &Path) -> Result<Added> {
    let factory = registry::factory(channel)
        .with_context(|| format!("--channel: unknown channel `{channel}` (known: {})", registry::kinds()))?;
    let raw = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let head_path = file.with_extension("headers");
    let head = match std::fs::read_to_string(&head_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", head_path.display())),
    };
    let recorded = chatgate_adapter::recorded::parse_headers(&head)
        .map_err(|e| anyhow::anyhow!("{}: {e}", head_path.display()))?;
    let (head, body) = chatgate_server::record::redact(&recorded.headers, &raw)
        .with_context(|| format!("{} is not a JSON body", file.display()))?;
    let mut headers = chatgate_adapter::recorded::parse_headers(&head).map_err(|e| anyhow::anyhow!("{e}"))?.headers;

    let dir = fixtures_dir.join(channel);
    let account_path = dir.join("account.json");
    let settings: Value = serde_json::from_slice(
        &std::fs::read(&account_path).with_context(|| format!("reading {}", account_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", account_path.display()))?;
    let body = align_with_account(body, &settings)?;
    let adapter = factory.build("test", settings).map_err(|e| anyhow::anyhow!("{}: {e}", account_path.display()))?;
    let body = adapter.sign(&mut headers, body);
    let request = WebhookRequest { method: &http::Method::POST, headers: &headers, query: None, body: &body };
    let inbound = chatgate_adapter::webhook::receive(adapter.as_ref(), &request)
        .map_err(|e| anyhow::anyhow!("the redacted webhook does not pass the {channel} webhook steps: {e}"))?;
    let kinds: Vec<String> = inbound
        .events
        .iter()
        .map(|e| serde_json::to_value(e.event.kind).ok().and_then(|v| v.as_str().map(str::to_owned)))
        .map(Option::unwrap_or_default)
        .collect();

    let name = match name {
        Some(n) => {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                bail!("--name may hold only letters, digits, `-` and `_`");
            }
            if dir.join(format!("{n}.body")).exists() {
                bail!("fixture {}/{n} exists already", dir.display());
            }
            n.to_owned()
        }
        None => {
            let base = format!("recorded-{}", kinds.first().map_or("no-event", String::as_str).replace('_', "-"));
            (1..).map(|i| format!("{base}-{i}")).find(|n| !dir.join(format!("{n}.body")).exists()).unwrap_or(base)
        }
    };
    let body_path = dir.join(format!("{name}.body"));
    let mut head_text = String::new();
    for (key, value) in &headers {
        let _ = writeln!(head_text, "{}: {}", canonical_header(key.as_str()), value.to_str().unwrap_or_default());
    }
    std::fs::write(&body_path, &body).with_context(|| format!("writing {}", body_path.display()))?;
    std::fs::write(dir.join(format!("{name}.headers")), head_text)?;

    let events: Vec<Value> = inbound
        .events
        .iter()
        .map(|e| {
            let mut event = serde_json::to_value(&e.event).unwrap_or(Value::Null);
            event["id"] = json!("[id]");
            event["received_at"] = json!("[received_at]");
            json!({"dedup_key": e.dedup_key, "event": event})
        })
        .collect();
    let reply = match &inbound.reply {
        Reply::Empty => Value::Null,
        Reply::Text(text) => json!({ "text": text }),
    };
    let snapshot = dir.join(format!("{name}.snap.new"));
    let text = format!(
        "---\nsource: crates/testkit/src/snapshot.rs\ninput_file: fixtures/{channel}/{name}.body\n---\n{}\n",
        serde_json::to_string_pretty(&json!({"events": events, "reply": reply}))?
    );
    std::fs::write(&snapshot, text).with_context(|| format!("writing {}", snapshot.display()))?;
    Ok(Added { body: body_path, snapshot, kinds })
}

/// What `fixtures add` prints.
pub fn summary(added: &Added) -> String {
    format!(
        "fixture {} ({} event(s): {})\ngolden output for review: {}\naccept it with `cargo insta review` (or rename it \
         to .snap), then run `cargo test -p chatgate --test fixtures`\n",
        added.body.display(),
        added.kinds.len(),
        added.kinds.join(", "),
        added.snapshot.display()
    )
}

/// Top-level body fields that the account settings also name with a plain value (VK `group_id`)
/// take the fixture account's value, so the body belongs to the fixture account.
fn align_with_account(body: Vec<u8>, settings: &Value) -> Result<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(&body)?;
    let (Value::Object(root), Value::Object(settings)) = (&mut value, settings) else { return Ok(body) };
    let mut changed = false;
    for (key, setting) in settings {
        if let Some(slot) = root.get_mut(key)
            && (setting.is_number() || setting.is_string())
            && slot != setting
            && !slot.is_object()
            && !slot.is_array()
        {
            *slot = setting.clone();
            changed = true;
        }
    }
    if !changed {
        return Ok(body);
    }
    let mut out = serde_json::to_vec_pretty(&value)?;
    out.push(b'\n');
    Ok(out)
}

fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}
