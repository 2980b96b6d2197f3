//! Webhook authentication: Meta's `GET` handshake and `X-Hub-Signature-256` over the raw body,
//! both from [`chatgate_adapter::meta`]; here only the signing side for replays and tests.
//!
//! See <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests>
//! and <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#event-notifications>.

use chatgate_adapter::meta::SIGNATURE_HEADER;
use chatgate_adapter::verify::hmac_sha256;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The `X-Hub-Signature-256` value for `body`: `sha256=<lowercase hex HMAC-SHA256(app secret, body)>`.
pub(crate) fn signature(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(app_secret.as_bytes(), body)))
}

/// Sets the signature header for `body`, replacing any earlier one.
pub(crate) fn sign(app_secret: &str, headers: &mut HeaderMap, body: &[u8]) {
    let value = HeaderValue::from_str(&signature(app_secret, body)).expect("hex is a valid header value");
    headers.insert(HeaderName::from_static(SIGNATURE_HEADER), value);
}
