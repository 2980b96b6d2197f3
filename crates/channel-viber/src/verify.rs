//! `X-Viber-Content-Signature`: lowercase hex HMAC-SHA256 of the raw body, keyed with the bot's
//! auth token (<https://developers.viber.com/docs/api/rest-bot-api/#callbacks>).

use chatgate_adapter::verify::{hmac_sha256, hmac_sha256_hex_matches};
use chatgate_adapter::{WebhookError, WebhookRequest};

/// The header Viber signs every callback with.
pub const SIGNATURE_HEADER: &str = "x-viber-content-signature";

/// Checks the signature on the raw bytes, in constant time.
pub(crate) fn verify(request: &WebhookRequest<'_>, auth_token: &str) -> Result<(), WebhookError> {
    let value = request.headers.get(SIGNATURE_HEADER).ok_or(WebhookError::MissingSignature)?;
    let hex = value.to_str().map_err(|_| WebhookError::BadSignature)?;
    if hmac_sha256_hex_matches(auth_token.as_bytes(), request.body, hex) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// The header value Viber would send with `body`.
pub(crate) fn signature(auth_token: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(auth_token.as_bytes(), body))
}
