//! Authenticating Callback API requests.
//!
//! VK signs nothing: there is no header and no HMAC. What authenticates a callback is the
//! community's "secret key", which VK copies into the JSON body of every request as `"secret"`,
//! together with the community's `group_id`. So, unlike the other channels, verification has to
//! read the body: it parses it as untyped JSON only to pick those two fields (nothing else is
//! interpreted before the secret matched), and compares the secret in constant time.
//!
//! - `type: confirmation` (sent once when the server is added) carries `group_id` and, only if
//!   a secret is set, `secret`. It is accepted when `group_id` is ours and a present secret
//!   matches; the answer (the confirmation string) is no secret, since VK shows it to the admin
//!   and expects it back in the clear.
//! - Every other request must carry our secret: missing → `MissingSignature`, different →
//!   `BadSignature`. A `group_id` other than ours is `BadSignature` too (the same URL
//!   configured in another community). A body without `group_id` is accepted on the secret
//!   alone: VK always sends it, but old SDK test payloads omit it and the secret is the proof.
//! - A body that is not a JSON object cannot carry a secret: `MissingSignature`.
//!
//! Redeliveries carry `X-Retry-Counter`; they are ordinary requests here.
//!
//! See <https://dev.vk.com/ru/api/callback/getting-started>.

use chatgate_adapter::WebhookError;
use chatgate_adapter::verify::constant_time_eq;
use serde_json::Value;

use crate::config::VkConfig;

/// Checks the `secret` and `group_id` inside the body.
pub(crate) fn verify(config: &VkConfig, body: &[u8]) -> Result<(), WebhookError> {
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return Err(WebhookError::MissingSignature);
    };
    let secret_matches = |value: &Value| match value.as_str() {
        Some(given) => constant_time_eq(given.as_bytes(), config.secret.expose().as_bytes()),
        None => false,
    };
    let group = root.get("group_id").map(as_i64);
    if root.get("type").and_then(Value::as_str) == Some("confirmation") {
        if group != Some(Some(config.group_id)) {
            return Err(WebhookError::BadSignature);
        }
        return match root.get("secret") {
            Some(secret) if !secret_matches(secret) => Err(WebhookError::BadSignature),
            _ => Ok(()),
        };
    }
    let secret = root.get("secret").ok_or(WebhookError::MissingSignature)?;
    if !secret_matches(secret) {
        return Err(WebhookError::BadSignature);
    }
    match group {
        Some(id) if id != Some(config.group_id) => Err(WebhookError::BadSignature),
        _ => Ok(()),
    }
}

/// Writes `secret` into a JSON object body, keeping every other field; other bodies are returned
/// unchanged. Re-serialising is harmless: VK has no signature over the bytes.
pub(crate) fn sign(config: &VkConfig, body: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut root)) => {
            root.insert("secret".to_owned(), Value::String(config.secret.expose().to_owned()));
            serde_json::to_vec(&Value::Object(root)).unwrap_or(body)
        }
        _ => body,
    }
}

/// An integer given as a JSON number or as a string of digits.
pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
