//! The core API over a real socket, for the tests that are about processes and real HTTP.
//! Everything else calls the router through [`crate::gateway::Harness`].

use std::time::Duration;

use chatgate_server::Gateway;
use serde_json::Value;

use crate::gateway::TOKEN;

/// How long the `wait_*` helpers poll at most: 750 × 20 ms = 15 s.
const POLLS: u32 = 750;
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Serves the gateway's router on a free loopback port; its base URL, no trailing slash.
pub async fn serve(gateway: &Gateway) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = gateway.router();
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serves") });
    format!("http://{addr}")
}

/// A client of one gateway's core API, with the test token.
#[derive(Debug, Clone)]
pub struct Api {
    pub client: reqwest::Client,
    /// `http://HOST:PORT`, no trailing slash.
    pub base: String,
}

/// The value of the `/metrics` sample line that starts with `series ` (name and labels exactly).
pub fn sample(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("`{series}`: {e}"))
}

impl Api {
    /// One sample of the gateway's `/metrics` (see [`sample`]).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.client.get(format!("{}/metrics", self.base)).send().await.expect("GET /metrics");
        sample(&text.text().await.expect("the /metrics body"), series)
    }

    pub fn new(base: impl Into<String>) -> Api {
        Api { client: reqwest::Client::new(), base: base.into() }
    }

    /// Polls `GET /healthz` until it answers 2xx; panics after 6 s.
    pub async fn wait_healthy(&self) {
        for _ in 0..300 {
            let answer = self.client.get(format!("{}/healthz", self.base)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} did not answer /healthz", self.base);
    }

    /// The events after `after` (up to 1000).
    pub async fn events(&self, after: u64) -> Vec<Value> {
        let page = self.get(&format!("/v1/events?after={after}&limit=1000")).await;
        page["events"].as_array().unwrap_or_else(|| panic!("no events in {page}")).clone()
    }

    /// Polls the log until an event after `after` satisfies `wanted` (15 s at most).
    pub async fn wait_event(&self, after: u64, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        for _ in 0..POLLS {
            if let Some(event) = self.events(after).await.into_iter().find(&wanted) {
                return Some(event);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        None
    }

    /// `POST /v1/messages`: the status code and the JSON answer.
    pub async fn send(&self, body: &Value) -> (u16, Value) {
        let url = format!("{}/v1/messages", self.base);
        let response = self.client.post(url).bearer_auth(TOKEN).json(body).send().await.expect("POST /v1/messages");
        (response.status().as_u16(), response.json().await.expect("a JSON answer"))
    }

    /// `GET /v1/messages/{id}`.
    pub async fn message(&self, id: &str) -> Value {
        self.get(&format!("/v1/messages/{id}")).await
    }

    /// Polls until `done` holds for what `GET /v1/messages/{id}` returns (15 s at most); the
    /// last record either way.
    pub async fn wait_message(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut record = Value::Null;
        for _ in 0..POLLS {
            record = self.message(id).await;
            if done(&record) {
                break;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        record
    }

    async fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let response = self.client.get(&url).bearer_auth(TOKEN).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        response.json().await.unwrap_or_else(|e| panic!("{url}: not JSON: {e}"))
    }
}
