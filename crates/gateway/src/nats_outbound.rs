//! Outbound submission over NATS: the core may send a request to `<prefix>.outbound` (any NATS
//! client, request/reply) instead of `POST /v1/messages`. Every instance answers in the queue
//! group `chatgate`, so each request is handled once. The request goes through the very same
//! route as HTTP (in process, with this instance's API token), so the body, the validation and
//! the typed rejections are those of `POST /v1/messages`: the reply's payload is that JSON
//! answer and its `Chatgate-Status` header the HTTP status code (202, or 4xx/5xx with the
//! typed error). Who may publish there is NATS's permissions' business.

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The largest request body accepted (the HTTP route's own cap applies as well).
const MAX_BODY: usize = 1 << 20;

/// Answers outbound requests on `subject` until the connection closes.
pub async fn serve(client: async_nats::Client, subject: String, router: Router, api_token: String) -> Result<()> {
    let mut requests = client
        .queue_subscribe(subject.clone(), "chatgate".into())
        .await
        .with_context(|| format!("subscribing to {subject}"))?;
    tracing::info!(%subject, "outbound requests over NATS accepted");
    tokio::spawn(async move {
        while let Some(msg) = requests.next().await {
            let Some(reply) = msg.reply.clone() else { continue };
            let (client, router, token) = (client.clone(), router.clone(), api_token.clone());
            tokio::spawn(async move {
                let (status, body) = submit(router, &token, msg.payload.to_vec()).await;
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Chatgate-Status", status.to_string().as_str());
                if let Err(e) = client.publish_with_headers(reply, headers, body.into()).await {
                    tracing::warn!(error = %e, "could not answer an outbound request over NATS");
                }
            });
        }
    });
    Ok(())
}

async fn submit(router: Router, token: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    if body.len() > MAX_BODY {
        return (
            413,
            br#"{"error":{"code":"invalid_request","message":"the request body is larger than 1 MiB"}}"#.to_vec(),
        );
    }
    let request = http::Request::post("/v1/messages")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body));
    let Ok(request) = request else {
        return (400, br#"{"error":{"code":"invalid_request","message":"could not read the request"}}"#.to_vec());
    };
    match router.oneshot(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            (status, bytes)
        }
        Err(never) => match never {},
    }
}
