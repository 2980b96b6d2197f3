//! Test helpers: recorded fixtures, golden envelope files and the shared real-webhook corpus.
//!
//! A fixture is `fixtures/<channel>/<name>.body` (the raw body bytes, exactly as sent) with
//! `<name>.headers` beside it (`Name: value` per line, `#` comments; an optional first line
//! `GET ?query` or `POST ?query` sets method and query). Its reviewed golden output is
//! `<name>.golden.json`: the envelopes with `id` and `received_at` replaced by placeholders.
//! Run tests with `UPDATE_GOLDEN=1` to (re)write golden files, then review the diff.
//!
//! [`mock::MockApi`] is a recording HTTP server on 127.0.0.1 that stands in for a provider API.

pub mod mock;

use std::fs;
use std::path::{Path, PathBuf};

use chatgate_adapter::{Adapter, Inbound, WebhookError, WebhookRequest};
use http::{HeaderMap, Method};

/// The workspace root (where `fixtures/` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root exists")
}

/// A recorded webhook.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub method: Method,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Where the golden envelopes live.
    pub golden: PathBuf,
}

impl Fixture {
    /// The request as an adapter sees it.
    pub fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest { method: &self.method, headers: &self.headers, query: self.query.as_deref(), body: &self.body }
    }
}

/// Loads every fixture of `fixtures/<channel>/`, sorted by name.
pub fn fixtures(channel: &str) -> Vec<Fixture> {
    let dir = workspace_root().join("fixtures").join(channel);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".body").map(str::to_owned)
        })
        .collect();
    names.sort();
    names.into_iter().map(|name| load_fixture(&dir, &name)).collect()
}

/// Loads one fixture by directory and name.
pub fn load_fixture(dir: &Path, name: &str) -> Fixture {
    let body = fs::read(dir.join(format!("{name}.body"))).expect("fixture body");
    let head = fs::read_to_string(dir.join(format!("{name}.headers"))).unwrap_or_default();
    let (method, query, headers) = parse_headers(&head);
    Fixture { name: name.to_owned(), method, query, headers, body, golden: dir.join(format!("{name}.golden.json")) }
}

/// Parses a `.headers` file (see [`chatgate_adapter::recorded`]); panics on a bad line.
pub fn parse_headers(text: &str) -> (Method, Option<String>, HeaderMap) {
    let head = chatgate_adapter::recorded::parse_headers(text).unwrap_or_else(|e| panic!("fixture headers: {e}"));
    (head.method, head.query, head.headers)
}

/// Runs a request through the same steps as the server ([`chatgate_adapter::webhook::receive`]).
pub fn handle(adapter: &dyn Adapter, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
    chatgate_adapter::webhook::receive(adapter, request)
}

/// The envelopes of `inbound` as golden JSON: ids and receive times replaced by placeholders.
pub fn golden_json(inbound: &Inbound) -> serde_json::Value {
    let events: Vec<serde_json::Value> = inbound
        .events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(&e.event).expect("events serialise");
            v["id"] = "[id]".into();
            v["received_at"] = "[received_at]".into();
            serde_json::json!({ "dedup_key": e.dedup_key, "event": v })
        })
        .collect();
    serde_json::json!({ "reply": format!("{:?}", inbound.reply), "events": events })
}

/// Compares `actual` with the golden file, or writes it when `UPDATE_GOLDEN=1`.
pub fn assert_golden(path: &Path, actual: &serde_json::Value) {
    let rendered = serde_json::to_string_pretty(actual).expect("json") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::write(path, &rendered).expect("write golden");
        return;
    }
    let expected = fs::read_to_string(path)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1 and review it", path.display()));
    assert!(
        expected == rendered,
        "{} differs from the output; if the change is intended, run with UPDATE_GOLDEN=1 and review the diff.\n--- expected\n{expected}\n--- actual\n{rendered}",
        path.display()
    );
}

/// A payload from the shared real-webhook corpus.
#[derive(Debug, Clone)]
pub struct RealWebhook {
    pub path: PathBuf,
    pub body: Vec<u8>,
    /// The sibling `.meta.json` (source, headers, test secrets), or `null`.
    pub meta: serde_json::Value,
}

/// The shared corpus folder: `$CHATGATE_REAL_WEBHOOKS`, else `../shared/real-webhooks` beside the clone.
pub fn real_webhooks_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CHATGATE_REAL_WEBHOOKS") {
        return Some(PathBuf::from(dir));
    }
    let dir = workspace_root().join("../shared/real-webhooks");
    dir.is_dir().then_some(dir)
}

/// Every payload of one channel in the shared corpus; `None` when the corpus is not present.
pub fn real_webhooks(channel: &str) -> Option<Vec<RealWebhook>> {
    let dir = real_webhooks_dir()?.join(channel);
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).ok()? {
        let path = entry.ok()?.path();
        let name = path.file_name()?.to_str()?.to_owned();
        if !name.ends_with(".json") || name.ends_with(".meta.json") {
            continue;
        }
        let meta_path = path.with_file_name(name.replace(".json", ".meta.json"));
        let meta =
            fs::read(&meta_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(serde_json::Value::Null);
        out.push(RealWebhook { body: fs::read(&path).ok()?, path, meta });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Some(out)
}
