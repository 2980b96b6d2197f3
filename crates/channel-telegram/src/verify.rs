//! Webhook authentication: the `X-Telegram-Bot-Api-Secret-Token` header.
//!
//! Telegram does not sign bodies. With `setWebhook(secret_token=…)` it sends the secret back in
//! this header on every request (<https://core.telegram.org/bots/api#setwebhook>); we compare it
//! byte for byte in constant time.

use chatgate_adapter::verify::constant_time_eq;
use chatgate_adapter::{WebhookError, WebhookRequest};

use crate::config::Config;

/// The header carrying the webhook secret.
pub(crate) const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Missing header → [`WebhookError::MissingSignature`]; present but different from
/// `config.secret_token` (including empty, or not valid header text) → [`WebhookError::BadSignature`].
pub(crate) fn verify(request: &WebhookRequest<'_>, config: &Config) -> Result<(), WebhookError> {
    let given = request.headers.get(SECRET_HEADER).ok_or(WebhookError::MissingSignature)?;
    let secret = config.secret_token.expose();
    if constant_time_eq(given.as_bytes(), secret.as_bytes()) { Ok(()) } else { Err(WebhookError::BadSignature) }
}
