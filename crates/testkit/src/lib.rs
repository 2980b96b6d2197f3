//! Test helpers: recorded fixtures, their reviewed snapshots, the shared real-webhook corpus, and
//! one harness for HTTP tests.
//!
//! A fixture is `fixtures/<kind>/<name>.body` (the raw body bytes, exactly as sent) with
//! `<name>.headers` beside it (`Name: value` per line, `#` comments; an optional first line
//! `GET ?query` or `POST ?query` sets method and query) and `account.json` (the settings of the
//! test account `test`) in the same folder. Its reviewed output is the insta snapshot
//! `<name>.snap` beside it; see [`snapshot`].
//!
//! - [`snapshot`]: envelopes as reviewed snapshots (insta), and reading them back.
//! - [`content`]: the property every event must have ("no event without content").
//! - [`corpus`]: the shared real-webhook corpus, which must be present under `CI=true`.
//! - [`gateway::Harness`]: a gateway and its router, called without a socket.
//! - [`http`]: the core API over a real socket, for tests about processes.
//! - [`mock::MockApi`]: a recording HTTP server on 127.0.0.1 that stands in for a provider API.
//! - [`nats`]: real `nats-server` processes (one node or a 3-node cluster) that tests can kill and restart.

pub mod content;
pub mod corpus;
pub mod gateway;
pub mod http;
pub mod mock;
pub mod nats;
pub mod process;
pub mod snapshot;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::http::{HeaderMap, Method};
use chatgate_adapter::{Adapter, ChannelFactory, Inbound, WebhookError, WebhookRequest};

pub use corpus::{RealWebhook, real_webhooks, real_webhooks_dir};

/// The workspace root (where `fixtures/` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root exists")
}

/// The `kind` a factory serves, as used in `fixtures/<kind>/`, the corpus and webhook URLs.
///
/// The one place tests read `ChannelFactory::kind`.
pub fn kind_of(factory: &dyn ChannelFactory) -> String {
    factory.channel().as_str().to_owned()
}

/// `fixtures/<kind>/`.
pub fn fixture_dir(kind: &str) -> PathBuf {
    workspace_root().join("fixtures").join(kind)
}

/// The settings of the test account of `kind`: `fixtures/<kind>/account.json`.
pub fn account_settings(kind: &str) -> serde_json::Value {
    let path = fixture_dir(kind).join("account.json");
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Whether the channel receives provider webhooks (and so has a folder in the real-webhook corpus):
/// not when its "provider" is the gateway itself (the web widget offers the visitor side instead).
pub fn has_provider_webhooks(factory: &dyn ChannelFactory) -> bool {
    test_account(factory).visitors().is_none()
}

/// The account `test` built by `factory` from `fixtures/<kind>/account.json`.
pub fn test_account(factory: &dyn ChannelFactory) -> Arc<dyn Adapter> {
    let kind = kind_of(factory);
    factory.build("test", account_settings(&kind)).unwrap_or_else(|e| panic!("fixtures/{kind}/account.json: {e}"))
}

/// A recorded webhook.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The fixture folder's name: the channel kind.
    pub kind: String,
    pub name: String,
    pub method: Method,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The folder the fixture lives in (its snapshot lives there too).
    pub dir: PathBuf,
}

impl Fixture {
    /// The request as an adapter sees it.
    pub fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest { method: &self.method, headers: &self.headers, query: self.query.as_deref(), body: &self.body }
    }

    /// `<dir>/<name>.body`.
    pub fn body_path(&self) -> PathBuf {
        self.dir.join(format!("{}.body", self.name))
    }
}

/// Loads every fixture of `fixtures/<kind>/`, sorted by name.
pub fn fixtures(kind: &str) -> Vec<Fixture> {
    let dir = fixture_dir(kind);
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

/// One fixture of `fixtures/<kind>/` by name.
pub fn fixture(kind: &str, name: &str) -> Fixture {
    load_fixture(&fixture_dir(kind), name)
}

/// Loads one fixture by directory and name.
pub fn load_fixture(dir: &Path, name: &str) -> Fixture {
    let body =
        fs::read(dir.join(format!("{name}.body"))).unwrap_or_else(|e| panic!("{}/{name}.body: {e}", dir.display()));
    let head = fs::read_to_string(dir.join(format!("{name}.headers"))).unwrap_or_default();
    let (method, query, headers) = parse_headers(&head);
    let kind = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    Fixture { kind, name: name.to_owned(), method, query, headers, body, dir: dir.to_owned() }
}

/// The names of the folders under `fixtures/`, sorted.
pub fn fixture_kinds() -> Vec<String> {
    subfolders(&workspace_root().join("fixtures"))
}

/// The names of the folders in `dir`, sorted.
pub(crate) fn subfolders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_type().ok()?.is_dir().then(|| e.file_name().into_string().ok())?
        })
        .collect();
    names.sort();
    names
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

/// Asserts that an authentic `body` the channel does not model became one `unsupported` event
/// that keeps the body whole as `raw`.
pub fn assert_kept_as_unsupported(inbound: &Inbound, body: &[u8]) {
    let shown = String::from_utf8_lossy(body);
    assert_eq!(inbound.events.len(), 1, "{shown}");
    let event = &inbound.events[0].event;
    assert_eq!(event.kind, chatgate_model::EventKind::Unsupported, "{shown}");
    let original: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert_eq!(event.raw.as_ref(), Some(&original), "{shown}: the raw object");
}

/// Signs `body` for `adapter` (its `sign`) and posts it through [`handle`].
pub fn post_signed(adapter: &dyn Adapter, body: Vec<u8>) -> Result<Inbound, WebhookError> {
    let mut headers = HeaderMap::new();
    let body = adapter.sign(&mut headers, body);
    handle(adapter, &WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body })
}
