//! A gateway and its router for HTTP tests without a socket (`tower::ServiceExt::oneshot`):
//! webhooks signed by the account's adapter, and the core API with the test token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use axum::body::Body;
use chatgate_adapter::Adapter;
use chatgate_model::limits::LimitOverrides;
use chatgate_queue::SqliteQueue;
use chatgate_server::{Gateway, Settings};
use serde_json::Value;
use tower::ServiceExt;

use crate::Fixture;

/// The core API token of every harness.
pub const TOKEN: &str = "test-api-token";

/// How often and how long [`Harness::wait_status`] polls.
const POLLS: u32 = 300;
const POLL_EVERY: Duration = Duration::from_millis(10);

/// A running gateway over some adapters, its router, and request helpers.
pub struct Harness {
    app: Router,
    gateway: Gateway,
    adapters: Vec<Arc<dyn Adapter>>,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let accounts: Vec<_> = self.adapters.iter().map(|a| format!("{}/{}", a.channel(), a.account())).collect();
        f.debug_struct("Harness").field("accounts", &accounts).finish_non_exhaustive()
    }
}

impl Harness {
    /// A gateway over `adapters` with its queue in a fresh temporary folder and fast retries.
    pub async fn start(adapters: Vec<Arc<dyn Adapter>>) -> Harness {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut harness = Harness::start_in(dir.path(), adapters, |_| {}).await;
        harness._dir = Some(dir);
        harness
    }

    /// A gateway with its queue in `data` (kept by the caller, e.g. across a restart).
    /// The settings start from [`TOKEN`] and 10 ms / 50 ms backoff; `configure` changes them.
    pub async fn start_in(
        data: &Path,
        adapters: Vec<Arc<dyn Adapter>>,
        configure: impl FnOnce(&mut Settings),
    ) -> Harness {
        let accounts = adapters.into_iter().map(|a| (a, LimitOverrides::default())).collect();
        Harness::start_accounts(data, accounts, configure).await
    }

    /// As [`Harness::start_in`], for accounts with their limit overrides (e.g. from `channels.toml`).
    pub async fn start_accounts(
        data: &Path,
        accounts: Vec<(Arc<dyn Adapter>, LimitOverrides)>,
        configure: impl FnOnce(&mut Settings),
    ) -> Harness {
        let mut settings = Settings::new(TOKEN);
        settings.base_backoff = Duration::from_millis(10);
        settings.max_backoff = Duration::from_millis(50);
        settings.data_dir = Some(data.to_owned());
        configure(&mut settings);
        let queue = Arc::new(SqliteQueue::open(data).expect("queue opens"));
        let adapters = accounts.iter().map(|(a, _)| a.clone()).collect();
        let gateway = Gateway::start(accounts, queue, settings).await.expect("gateway starts");
        Harness { app: gateway.router(), gateway, adapters, _dir: None }
    }

    /// The running gateway (e.g. to serve it on a socket).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Sends one request through the router; the status and the body as text.
    pub async fn call(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = self.app.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Builds and sends a request with these headers.
    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.call(request.body(body.into()).expect("request")).await
    }

    /// Posts a JSON webhook body to the first account, signed by its adapter, with extra headers.
    pub async fn webhook(&self, body: &str, extra: &[(&str, &str)]) -> (StatusCode, String) {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().expect("header"));
        for (name, value) in extra {
            headers
                .insert(::http::HeaderName::from_bytes(name.as_bytes()).expect("name"), value.parse().expect("value"));
        }
        let adapter = self.adapters.first().expect("the harness has an account").clone();
        self.deliver(&*adapter, Method::POST, None, headers, body.as_bytes().to_vec()).await
    }

    /// Sends a recorded fixture, re-signed, to the account of its kind.
    pub async fn replay(&self, fixture: &Fixture) -> (StatusCode, String) {
        let adapter = self
            .adapters
            .iter()
            .find(|a| a.channel().as_str() == fixture.kind)
            .unwrap_or_else(|| panic!("no account of kind {}", fixture.kind))
            .clone();
        let (method, query) = (fixture.method.clone(), fixture.query.as_deref());
        self.deliver(&*adapter, method, query, fixture.headers.clone(), fixture.body.clone()).await
    }

    /// Signs `body` with `adapter` and sends it to `/webhooks/{channel}/{account}`.
    async fn deliver(
        &self,
        adapter: &dyn Adapter,
        method: Method,
        query: Option<&str>,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let body = adapter.sign(&mut headers, body);
        let path = format!("/webhooks/{}/{}", adapter.channel().as_str(), adapter.account());
        let uri = match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        self.call(request.body(Body::from(body)).expect("request")).await
    }

    /// `GET uri` with the test token; the body as text (for answers that are not JSON).
    pub async fn get_authorized(&self, uri: &str) -> (StatusCode, String) {
        let auth = format!("Bearer {TOKEN}");
        self.request(Method::GET, uri, &[("authorization", auth.as_str())], Body::empty()).await
    }

    /// A core API call with the test token; the body as JSON (`null` when it is not JSON).
    pub async fn api(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let auth = format!("Bearer {TOKEN}");
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let (status, text) = self.request(method, uri, &headers, body.map(|b| b.to_string()).unwrap_or_default()).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /v1/messages`.
    pub async fn send(&self, body: Value) -> (StatusCode, Value) {
        self.api(Method::POST, "/v1/messages", Some(body)).await
    }

    /// `GET /v1/messages/{id}`.
    pub async fn message(&self, id: &str) -> Value {
        self.api(Method::GET, &format!("/v1/messages/{id}"), None).await.1
    }

    /// Polls the message until its status is `want`; its record then. Panics after 3 s.
    pub async fn wait_status(&self, id: &str, want: &str) -> Value {
        for _ in 0..POLLS {
            let record = self.message(id).await;
            if record["status"] == want {
                return record;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        panic!("message {id} never became {want}: {}", self.message(id).await);
    }

    /// One page of `GET /v1/events?after={after}&limit=1000` (`events`, `next_after`).
    pub async fn events_after(&self, after: u64) -> Value {
        let (status, page) = self.api(Method::GET, &format!("/v1/events?after={after}&limit=1000"), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    }

    /// Every event on the log (up to 1000).
    pub async fn events(&self) -> Vec<Value> {
        self.events_after(0).await["events"].as_array().expect("events").clone()
    }
}
