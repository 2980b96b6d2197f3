//! Webhook authentication: Meta's `GET` handshake and `X-Hub-Signature-256` over the raw body,
//! both implemented once in [`chatgate_adapter::meta`], with this account's secrets.
//!
//! See <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests>
//! and <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#event-notifications>.

use chatgate_adapter::{Reply, WebhookError, WebhookRequest, meta};
use http::HeaderMap;

use crate::config::Config;

/// Answers the `GET` subscription handshake with `hub.challenge` when `hub.verify_token` is ours.
pub(crate) fn handshake(request: &WebhookRequest<'_>, config: &Config) -> Result<Reply, WebhookError> {
    meta::handshake(request, config.verify_token.expose())
}

/// Checks `X-Hub-Signature-256` against the app secret, in constant time.
pub(crate) fn verify(request: &WebhookRequest<'_>, config: &Config) -> Result<(), WebhookError> {
    meta::verify_signature(request, config.app_secret.expose())
}

/// Sets the signature header for `body`, as Meta would (replays and tests).
pub(crate) fn sign(config: &Config, headers: &mut HeaderMap, body: Vec<u8>) -> Vec<u8> {
    meta::sign(headers, &body, config.app_secret.expose());
    body
}
