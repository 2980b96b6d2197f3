//! A recording stand-in for a provider's HTTP API on 127.0.0.1, which can also misbehave the way
//! real providers do: answer late (past the client's timeout) or drop the connection unanswered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

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

/// What the mock does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer with this status code and JSON body.
    Json(u16, serde_json::Value),
    /// Wait this long, then do the inner reply: longer than the client's timeout is a provider
    /// that times out.
    Late(Duration, Box<Reply>),
    /// Close the connection without an answer: the client sees it reset mid-request (the socket
    /// closes with `SO_LINGER` 0, so the peer gets a TCP RST).
    Reset,
}

type Responder = dyn Fn(&Recorded) -> Reply + Send + Sync;

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
        MockApi::start_with(move |r| {
            let (status, body) = respond(r);
            Reply::Json(status, body)
        })
        .await
    }

    /// Starts the mock with a responder that may also answer late or reset the connection.
    /// A request is recorded when its reply is decided, before any wait.
    pub async fn start_with(respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> MockApi {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = {
            let requests = requests.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    // Every close is abortive: a reset reply drops the connection with an RST.
                    #[allow(deprecated)]
                    let _ = stream.set_linger(Some(Duration::ZERO));
                    let (requests, respond) = (requests.clone(), respond.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let (requests, respond) = (requests.clone(), respond.clone());
                            async move { answer(req, &requests, &*respond).await }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
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

/// The error that makes hyper drop a connection unanswered.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the mock resets this connection")
    }
}

impl std::error::Error for ResetConnection {}

async fn answer(
    req: hyper::Request<Incoming>,
    requests: &Mutex<Vec<Recorded>>,
    respond: &Responder,
) -> Result<hyper::Response<Full<Bytes>>, ResetConnection> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status_only(StatusCode::BAD_REQUEST)),
    };
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let mut reply = respond(&recorded);
    requests.lock().expect("lock").push(recorded);
    loop {
        match reply {
            Reply::Json(status, json) => {
                let mut response = hyper::Response::new(Full::new(Bytes::from(json.to_string())));
                *response.status_mut() = StatusCode::from_u16(status).expect("status code");
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                return Ok(response);
            }
            Reply::Late(wait, then) => {
                tokio::time::sleep(wait).await;
                reply = *then;
            }
            Reply::Reset => return Err(ResetConnection),
        }
    }
}

fn status_only(status: StatusCode) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_late_and_resets_as_told() {
        let mock = MockApi::start_with(|r| match r.path.as_str() {
            "/late" => Reply::Late(Duration::from_secs(2), Box::new(Reply::Json(200, serde_json::json!({"ok": true})))),
            "/reset" => Reply::Reset,
            _ => Reply::Json(201, serde_json::json!({"ok": true})),
        })
        .await;
        let client = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
        let ok = client.post(format!("{}/fine", mock.base_url)).body("{}").send().await.unwrap();
        assert_eq!(ok.status(), 201);
        assert_eq!(ok.headers()["content-type"], "application/json");
        let late = client.post(format!("{}/late", mock.base_url)).send().await.unwrap_err();
        assert!(late.is_timeout(), "{late:?}");
        let reset = client.post(format!("{}/reset", mock.base_url)).send().await.unwrap_err();
        assert!(!reset.is_timeout() && reset.is_request(), "{reset:?}");
        let paths: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/fine", "/late", "/reset"]);
    }
}
