//! Webhook registration with the REST Bot API: [`set_webhook`](https://developers.viber.com/docs/api/rest-bot-api/#webhooks)
//! with the event types chatgate handles ([`EVENT_TYPES`]) and the sender's name and photo,
//! [`get_account_info`](https://developers.viber.com/docs/api/rest-bot-api/#get-account-info)
//! (the registered `webhook` and `event_types`), and removal (`set_webhook` with an empty `url`).
//!
//! Every call is `POST {api_base_url}/<method>` with `X-Viber-Auth-Token`; Viber answers HTTP 200
//! with `status` 0 for success, else `status` and `status_message`. Viber checks the URL while
//! `set_webhook` runs: it posts a `webhook` callback there, which the gateway must answer 200, so
//! the gateway has to be reachable at the URL first.

use std::time::Duration;

use async_trait::async_trait;
use chatgate_adapter::webhooks::{answer_json, redact, status_error, transport_error};
use chatgate_adapter::{WebhookAdmin, WebhookAdminError, WebhookReport, WebhookTarget};
use serde_json::{Value, json};

use crate::ViberAdapter;

/// The optional callbacks chatgate handles (`parse.rs`); `message` and `webhook` always come.
pub const EVENT_TYPES: &[&str] = &["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"];

/// Viber's `status` for an auth token it does not know ("invalidAuthToken").
const INVALID_AUTH_TOKEN: i64 = 2;

const TIMEOUT: Duration = Duration::from_secs(30);

impl ViberAdapter {
    /// Calls one method; returns the answer when `status` is 0.
    async fn call(&self, method: &str, body: Value) -> Result<Value, WebhookAdminError> {
        let token = self.config.auth_token.expose();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| transport_error("viber: HTTP client", e, &[token]))?;
        let sent =
            http.post(format!("{}/{method}", self.config.api_base_url)).header("X-Viber-Auth-Token", token).json(&body);
        let (status, answer) = answer_json(sent.send().await, &format!("viber {method}"), &[token]).await?;
        if !(200..300).contains(&status) {
            return Err(status_error(status, method, &[token]));
        }
        match answer.get("status").and_then(Value::as_i64) {
            Some(0) => Ok(answer),
            code => {
                let message = answer.get("status_message").and_then(Value::as_str).unwrap_or("no status message");
                let text = redact(&format!("{method}: status {}: {message}", code.unwrap_or(-1)), &[token]);
                Err(if code == Some(INVALID_AUTH_TOKEN) {
                    WebhookAdminError::Unauthorized(text)
                } else {
                    WebhookAdminError::Rejected(text)
                })
            }
        }
    }

    async fn report(&self) -> Result<WebhookReport, WebhookAdminError> {
        let info = self.call("get_account_info", json!({})).await?;
        let text = |key: &str| info.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let mut facts = Vec::new();
        for (label, key) in [("bot", "name"), ("uri", "uri")] {
            if let Some(value) = text(key) {
                facts.push((label.to_owned(), value));
            }
        }
        if let Some(n) = info.get("subscribers_count").and_then(Value::as_u64) {
            facts.push(("subscribers".to_owned(), n.to_string()));
        }
        let events: Vec<String> = info
            .get("event_types")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = EVENT_TYPES.iter().copied().filter(|e| !events.iter().any(|x| x == e)).collect();
        let url = text("webhook");
        let mut manual = Vec::new();
        if url.is_some() && !missing.is_empty() {
            manual.push(format!(
                "the webhook does not ask for {}: run `chatgate webhooks set` again to receive them",
                missing.join(", ")
            ));
        }
        Ok(WebhookReport { url, events, facts, manual, ..WebhookReport::default() })
    }
}

#[async_trait]
impl WebhookAdmin for ViberAdapter {
    async fn set(&self, target: &WebhookTarget) -> Result<WebhookReport, WebhookAdminError> {
        let body = json!({"url": target.url, "event_types": EVENT_TYPES, "send_name": true, "send_photo": true});
        self.call("set_webhook", body).await?;
        let mut report = self.report().await?;
        if target.drop_pending_updates {
            report.facts.push(("drop pending updates".to_owned(), "not a Viber option; nothing dropped".to_owned()));
        }
        Ok(report)
    }

    async fn info(&self) -> Result<WebhookReport, WebhookAdminError> {
        self.report().await
    }

    async fn delete(&self) -> Result<WebhookReport, WebhookAdminError> {
        self.call("set_webhook", json!({"url": ""})).await?;
        self.report().await
    }
}
