//! Authenticating Callback API requests.
//!
//! VK signs nothing: there is no header and no HMAC. What authenticates a callback is the
//! community's "secret key", which VK copies into the JSON body of every request as `"secret"`,
//! together with the community's `group_id`. So, unlike the other channels, verification has to
//! read the body: it reads only the top-level `type`, `secret` and `group_id` ([`wire::Head`],
//! borrowed from the body; everything else is skipped without building a JSON tree, so nothing
//! else is interpreted before the secret matched), and compares the secret in constant time.
//! The body is parsed into a tree once, by `parse.rs`, after it was authenticated.
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

use chatgate_adapter::verify::constant_time_eq;
use chatgate_adapter::{WebhookError, WebhookRequest};
use http::HeaderMap;
use serde_json::Value;

use crate::config::Config;
use crate::wire::{self, Scalar};

/// Checks the `secret` and `group_id` inside the body.
pub(crate) fn verify(request: &WebhookRequest<'_>, config: &Config) -> Result<(), WebhookError> {
    let Ok(head) = serde_json::from_slice::<wire::Head<'_>>(request.body) else {
        return Err(WebhookError::MissingSignature);
    };
    let secret_matches = |value: &Scalar<'_>| match value {
        Scalar::Text(given) => constant_time_eq(given.as_bytes(), config.secret.expose().as_bytes()),
        _ => false,
    };
    let group = head.group_id.as_ref().map(Scalar::as_i64);
    if matches!(&head.kind, Some(Scalar::Text(kind)) if kind == "confirmation") {
        if group != Some(Some(config.group_id)) {
            return Err(WebhookError::BadSignature);
        }
        return match &head.secret {
            Some(secret) if !secret_matches(secret) => Err(WebhookError::BadSignature),
            _ => Ok(()),
        };
    }
    let secret = head.secret.as_ref().ok_or(WebhookError::MissingSignature)?;
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
pub(crate) fn sign(config: &Config, _headers: &mut HeaderMap, body: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut root)) => {
            root.insert("secret".to_owned(), Value::String(config.secret.expose().to_owned()));
            serde_json::to_vec(&Value::Object(root)).unwrap_or(body)
        }
        _ => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn config() -> Config {
        Config::from_settings(serde_json::json!({
            "group_id": 7, "access_token": "t", "secret": "s3", "confirmation": "c"
        }))
        .unwrap()
    }

    fn check(body: &str) -> Result<(), WebhookError> {
        let headers = HeaderMap::new();
        verify(
            &WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: body.as_bytes() },
            &config(),
        )
    }

    #[test]
    fn reads_only_the_head_of_the_body() {
        assert_eq!(check(r#"{"type":"message_new","object":{"deep":[[{"x":1}]]},"group_id":7,"secret":"s3"}"#), Ok(()));
        assert_eq!(check(r#"{"type":"message_new","group_id":"7","secret":"s\u0033"}"#), Ok(()));
        assert_eq!(check(r#"{"type":"message_new","secret":"s3"}"#), Ok(()));
        assert_eq!(check(r#"{"type":"message_new","group_id":8,"secret":"s3"}"#), Err(WebhookError::BadSignature));
        assert_eq!(check(r#"{"type":"message_new","group_id":7.0,"secret":"s3"}"#), Err(WebhookError::BadSignature));
        assert_eq!(check(r#"{"type":"message_new","group_id":7,"secret":"s4"}"#), Err(WebhookError::BadSignature));
        assert_eq!(check(r#"{"type":"message_new","group_id":7,"secret":3}"#), Err(WebhookError::BadSignature));
        assert_eq!(check(r#"{"type":"message_new","group_id":7}"#), Err(WebhookError::MissingSignature));
        // Repeated keys: the last one counts, as in a JSON object read whole.
        assert_eq!(check(r#"{"secret":"x","group_id":7,"secret":"s3"}"#), Ok(()));
        assert_eq!(check(r#"{"secret":"s3","group_id":7,"secret":"x"}"#), Err(WebhookError::BadSignature));
    }

    #[test]
    fn confirmation_needs_our_group_and_a_matching_secret_if_any() {
        assert_eq!(check(r#"{"type":"confirmation","group_id":7}"#), Ok(()));
        assert_eq!(check(r#"{"type":"confirmation","group_id":7,"secret":"s3"}"#), Ok(()));
        assert_eq!(check(r#"{"type":"confirmation","group_id":7,"secret":"no"}"#), Err(WebhookError::BadSignature));
        assert_eq!(check(r#"{"type":"confirmation","group_id":8}"#), Err(WebhookError::BadSignature));
        assert_eq!(check(r#"{"type":"confirmation"}"#), Err(WebhookError::BadSignature));
    }

    #[test]
    fn bodies_that_are_not_one_json_object_carry_no_secret() {
        for body in ["", "not json", "[1]", r#""secret""#, r#"{"secret":"s3"} trailing"#, r#"{"secret":"s3""#] {
            assert_eq!(check(body), Err(WebhookError::MissingSignature), "{body}");
        }
    }
}
