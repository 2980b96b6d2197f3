//! Meta's webhook authentication for Messenger and Instagram: the shared `GET` handshake and
//! `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret), implemented once in
//! [`chatgate_adapter::meta`]. This module only adds the signing side for replays and tests.

use chatgate_adapter::meta::SIGNATURE_HEADER;
use chatgate_adapter::verify::hmac_sha256;
use http::{HeaderMap, HeaderValue};

/// Sets `X-Hub-Signature-256: sha256=<hex>` for `body`, as Meta would.
pub(crate) fn sign(headers: &mut HeaderMap, body: &[u8], app_secret: &str) {
    let signature = format!("sha256={}", hex::encode(hmac_sha256(app_secret.as_bytes(), body)));
    // Hex digits and `sha256=` are always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&signature) {
        headers.insert(SIGNATURE_HEADER, value);
    }
}
