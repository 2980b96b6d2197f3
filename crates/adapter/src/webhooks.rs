//! Registering the gateway's webhook URL with a provider: the contract `chatgate webhooks
//! set | info | delete` calls, implemented by every channel crate in its `webhooks.rs`.
//!
//! Each provider has its own calls (Telegram `setWebhook`, Viber `set_webhook`, VK's Callback
//! servers, Meta's `subscribed_apps`); what comes back is one [`WebhookReport`] of plain facts
//! to print. Where a step has no API (Meta's app dashboard), the report says exactly what to do
//! by hand ([`WebhookReport::manual`]). Nothing here carries a secret: reports name settings by
//! their key, and errors are stripped of URLs and tokens by the channel before they get here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// What `chatgate webhooks set` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The public URL of this account's webhook route, `https://<host>/webhooks/<channel>/<account>`.
    pub url: String,
    /// Drop the updates the provider holds for the bot (Telegram `drop_pending_updates`);
    /// channels without such a queue ignore it and say so in the report.
    pub drop_pending_updates: bool,
}

/// The provider's view of the registration, as facts to print. Every field may be empty where
/// the provider does not say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookReport {
    /// The URL the provider posts to; `None` when none is registered or the provider does not tell.
    pub url: Option<String>,
    /// The event types or fields subscribed.
    pub events: Vec<String>,
    /// Updates waiting at the provider for delivery (Telegram).
    pub pending: Option<u64>,
    /// The provider's last error delivering to the URL.
    pub last_error: Option<LastError>,
    /// Other facts, `(label, value)`, in the order to print. Never secrets.
    pub facts: Vec<(String, String)>,
    /// Steps no API does, to be done by hand (Meta's app dashboard), in order.
    pub manual: Vec<String>,
}

/// A delivery error the provider remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub at: Option<DateTime<Utc>>,
    pub message: String,
}

/// Why a registration call did not happen or did not succeed. Messages carry no URL and no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookAdminError {
    /// The channel needs no registration (the web widget: visitors call the gateway).
    #[error("{0}")]
    NotNeeded(String),
    /// The account's settings lack what the call needs (e.g. WhatsApp `business_account_id`).
    #[error("{0}")]
    Settings(String),
    /// The provider refused our credentials.
    #[error("the provider refused the account's credentials: {0}")]
    Unauthorized(String),
    /// The provider refused the request.
    #[error("the provider refused: {0}")]
    Rejected(String),
    /// The provider could not be reached or answered something unreadable.
    #[error("the provider could not be reached: {0}")]
    Unavailable(String),
}

/// Webhook registration of one account (see the module doc).
#[async_trait]
pub trait WebhookAdmin: Send + Sync {
    /// Points the provider at `target.url` with the event types chatgate models, and reports
    /// the registration as the provider then sees it.
    async fn set(&self, target: &WebhookTarget) -> Result<WebhookReport, WebhookAdminError>;

    /// The registration as the provider sees it now.
    async fn info(&self) -> Result<WebhookReport, WebhookAdminError>;

    /// Removes the registration; the report says what is left.
    async fn delete(&self) -> Result<WebhookReport, WebhookAdminError>;
}

/// `text` with every occurrence of each non-empty `secret` replaced by `[redacted]`: the last
/// guard before a provider's answer or a transport error is shown.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

/// A transport failure as [`WebhookAdminError::Unavailable`], without its URL
/// ([`crate::transport::describe`]) and without `secrets`.
pub fn transport_error(context: &str, error: reqwest::Error, secrets: &[&str]) -> WebhookAdminError {
    WebhookAdminError::Unavailable(redact(&format!("{context}: {}", crate::transport::describe(error)), secrets))
}

/// An HTTP error status (with the provider's own description, if any) as the matching error:
/// 401/403 → [`WebhookAdminError::Unauthorized`], 5xx and 429 → [`WebhookAdminError::Unavailable`],
/// other → [`WebhookAdminError::Rejected`].
pub fn status_error(status: u16, description: &str, secrets: &[&str]) -> WebhookAdminError {
    let text = redact(&format!("HTTP {status}: {description}"), secrets);
    match status {
        401 | 403 => WebhookAdminError::Unauthorized(text),
        429 | 500..=599 => WebhookAdminError::Unavailable(text),
        _ => WebhookAdminError::Rejected(text),
    }
}

/// Reads a provider's answer: its HTTP status and its body as JSON (`Null` when the body is
/// empty or not JSON). A failed request is [`transport_error`].
pub async fn answer_json(
    sent: Result<reqwest::Response, reqwest::Error>,
    context: &str,
    secrets: &[&str],
) -> Result<(u16, serde_json::Value), WebhookAdminError> {
    let response = sent.map_err(|e| transport_error(context, e, secrets))?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| transport_error(context, e, secrets))?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_replaces_every_secret_and_ignores_empty_ones() {
        assert_eq!(redact("bot123:ABC/x?t=123:ABC", &["123:ABC", ""]), "bot[redacted]/x?t=[redacted]");
        assert_eq!(redact("nothing here", &["s3cret"]), "nothing here");
    }

    #[test]
    fn status_errors_have_kinds() {
        assert!(matches!(status_error(401, "Unauthorized", &[]), WebhookAdminError::Unauthorized(_)));
        assert!(matches!(status_error(502, "", &[]), WebhookAdminError::Unavailable(_)));
        assert!(matches!(status_error(429, "", &[]), WebhookAdminError::Unavailable(_)));
        let e = status_error(400, "bad url for tok", &["tok"]);
        assert_eq!(e, WebhookAdminError::Rejected("HTTP 400: bad url for [redacted]".into()));
    }
}
