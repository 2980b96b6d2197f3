//! Webhook registration with the Bot API: [`setWebhook`](https://core.telegram.org/bots/api#setwebhook)
//! (with the account's `secret_token`, [`ALLOWED_UPDATES`] and `drop_pending_updates` on request),
//! [`getWebhookInfo`](https://core.telegram.org/bots/api#getwebhookinfo) (pending count, last
//! error) and [`deleteWebhook`](https://core.telegram.org/bots/api#deletewebhook).
//!
//! Each method is `POST {api_base_url}/bot<token>/<method>` with a JSON body; the answer is
//! `{"ok": true, "result": ...}` or `{"ok": false, "description": ...}`. The token is part of
//! the URL, so transport errors are stripped of their URL and every message is cleared of the
//! token and the secret before it leaves.

use std::time::Duration;

use async_trait::async_trait;
use chatgate_adapter::webhooks::{answer_json, status_error};
use chatgate_adapter::{LastError, WebhookAdmin, WebhookAdminError, WebhookReport, WebhookTarget};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::TelegramAdapter;

/// The update types chatgate models (`parse.rs`): what `setWebhook` asks for. Telegram sends
/// `message_reaction` only when it is listed.
pub const ALLOWED_UPDATES: &[&str] =
    &["message", "edited_message", "callback_query", "my_chat_member", "message_reaction"];

/// How long one Bot API call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// `getWebhookInfo`'s result, as far as it is shown.
#[derive(Debug, Deserialize)]
struct WebhookInfo {
    #[serde(default)]
    url: String,
    #[serde(default)]
    pending_update_count: u64,
    #[serde(default)]
    last_error_date: Option<i64>,
    #[serde(default)]
    last_error_message: Option<String>,
    #[serde(default)]
    last_synchronization_error_date: Option<i64>,
    #[serde(default)]
    max_connections: Option<u32>,
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    allowed_updates: Option<Vec<String>>,
}

impl TelegramAdapter {
    fn secrets(&self) -> [&str; 2] {
        [self.config.bot_token.expose(), self.config.secret_token.expose()]
    }

    /// Calls one Bot API method; returns its `result`.
    async fn call(&self, method: &str, body: Value) -> Result<Value, WebhookAdminError> {
        let secrets = self.secrets();
        let url = format!("{}/bot{}/{method}", self.config.api_base_url, self.config.bot_token.expose());
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| chatgate_adapter::webhooks::transport_error("telegram: HTTP client", e, &secrets))?;
        let sent = http.post(url).json(&body).send().await;
        let (status, answer) = answer_json(sent, &format!("telegram {method}"), &secrets).await?;
        if answer.get("ok") == Some(&Value::Bool(true)) {
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
        let description = answer.get("description").and_then(Value::as_str).unwrap_or("no description");
        Err(status_error(status, &format!("{method}: {description}"), &secrets))
    }

    async fn report(&self) -> Result<WebhookReport, WebhookAdminError> {
        let result = self.call("getWebhookInfo", json!({})).await?;
        let info: WebhookInfo = serde_json::from_value(result)
            .map_err(|e| WebhookAdminError::Unavailable(format!("telegram getWebhookInfo: unreadable answer: {e}")))?;
        Ok(report_of(info, &self.secrets()))
    }
}

fn report_of(info: WebhookInfo, secrets: &[&str]) -> WebhookReport {
    let at = |seconds: Option<i64>| seconds.and_then(|s| DateTime::from_timestamp(s, 0));
    let mut facts = Vec::new();
    match &info.allowed_updates {
        Some(updates) if !updates.is_empty() => {}
        _ => facts.push(("allowed updates".to_owned(), "Telegram's default (every kind but reactions)".to_owned())),
    }
    if let Some(n) = info.max_connections {
        facts.push(("max connections".to_owned(), n.to_string()));
    }
    if let Some(ip) = &info.ip_address {
        facts.push(("ip address".to_owned(), ip.clone()));
    }
    if let Some(when) = at(info.last_synchronization_error_date) {
        facts.push(("last synchronization error".to_owned(), when.to_rfc3339()));
    }
    let missing: Vec<&str> = match &info.allowed_updates {
        Some(updates) if !updates.is_empty() => {
            ALLOWED_UPDATES.iter().copied().filter(|u| !updates.iter().any(|x| x == u)).collect()
        }
        _ => vec!["message_reaction"],
    };
    let mut manual = Vec::new();
    if !info.url.is_empty() && !missing.is_empty() {
        manual.push(format!(
            "the webhook does not ask for {}: run `chatgate webhooks set` again to receive them",
            missing.join(", ")
        ));
    }
    WebhookReport {
        url: Some(info.url).filter(|u| !u.is_empty()).map(|u| chatgate_adapter::webhooks::redact(&u, secrets)),
        events: info.allowed_updates.unwrap_or_default(),
        pending: Some(info.pending_update_count),
        last_error: info.last_error_message.map(|message| LastError {
            at: at(info.last_error_date),
            message: chatgate_adapter::webhooks::redact(&message, secrets),
        }),
        facts,
        manual,
    }
}

#[async_trait]
impl WebhookAdmin for TelegramAdapter {
    async fn set(&self, target: &WebhookTarget) -> Result<WebhookReport, WebhookAdminError> {
        let body = json!({
            "url": target.url,
            "secret_token": self.config.secret_token.expose(),
            "allowed_updates": ALLOWED_UPDATES,
            "drop_pending_updates": target.drop_pending_updates,
        });
        self.call("setWebhook", body).await?;
        let mut report = self.report().await?;
        if target.drop_pending_updates {
            report.facts.push(("pending updates dropped".to_owned(), "yes".to_owned()));
        }
        Ok(report)
    }

    async fn info(&self) -> Result<WebhookReport, WebhookAdminError> {
        self.report().await
    }

    async fn delete(&self) -> Result<WebhookReport, WebhookAdminError> {
        self.call("deleteWebhook", json!({"drop_pending_updates": false})).await?;
        self.report().await
    }
}
