//! A recording stand-in for a provider's HTTP API, served by axum on 127.0.0.1.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{} body is not JSON: {e}", self.path))
    }

    /// Whether the raw body contains `needle` (handy for multipart bodies).
    pub fn body_contains(&self, needle: &str) -> bool {
        self.body.windows(needle.len()).any(|w| w == needle.as_bytes())
    }
}

type Responder = dyn Fn(&Recorded) -> (u16, serde_json::Value) + Send + Sync;

/// A provider API stand-in: every request is recorded and answered by the responder.
#[derive(Debug)]
pub struct MockApi {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MockApi {
    /// Starts the mock on a free loopback port; `respond` gives the status code and JSON body.
    pub async fn start(respond: impl Fn(&Recorded) -> (u16, serde_json::Value) + Send + Sync + 'static) -> MockApi {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let app = {
            let requests = requests.clone();
            Router::new().fallback(move |req: Request| {
                let requests = requests.clone();
                let respond = respond.clone();
                async move { record_and_answer(req, &requests, &*respond).await }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("mock serves");
        });
        MockApi { base_url, requests, task }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record_and_answer(req: Request, requests: &Mutex<Vec<Recorded>>, respond: &Responder) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let (status, json) = respond(&recorded);
    requests.lock().expect("lock").push(recorded);
    (StatusCode::from_u16(status).expect("status code"), axum::Json(json)).into_response()
}
