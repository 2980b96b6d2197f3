//! `X-Viber-Content-Signature`: lowercase hex HMAC-SHA256 of the raw body, keyed with the bot's
//! auth token (<https://developers.viber.com/docs/api/rest-bot-api/#callbacks>).

use chatgate_adapter::verify::{hmac_sha256, hmac_sha256_hex_matches};
use chatgate_adapter::{WebhookError, WebhookRequest};
use http::{HeaderMap, HeaderValue};

use crate::config::Config;

/// The header Viber signs every callback with.
const SIGNATURE_HEADER: &str = "x-viber-content-signature";

/// Checks the signature on the raw bytes, in constant time.
pub(crate) fn verify(request: &WebhookRequest<'_>, config: &Config) -> Result<(), WebhookError> {
    let auth_token = config.auth_token.expose();
    let value = request.headers.get(SIGNATURE_HEADER).ok_or(WebhookError::MissingSignature)?;
    let hex = value.to_str().map_err(|_| WebhookError::BadSignature)?;
    if hmac_sha256_hex_matches(auth_token.as_bytes(), request.body, hex) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// Sets the signature header Viber would send with `body` (replays and tests).
pub(crate) fn sign(config: &Config, headers: &mut HeaderMap, body: Vec<u8>) -> Vec<u8> {
    let signature = hex::encode(hmac_sha256(config.auth_token.expose().as_bytes(), &body));
    let value = HeaderValue::from_str(&signature).expect("hex is a valid header value");
    headers.insert(SIGNATURE_HEADER, value);
    body
}
