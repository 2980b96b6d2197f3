//! Webhook registration for a WhatsApp Cloud API number (`chatgate webhooks`).
//!
//! The app is subscribed to the number's WhatsApp Business Account (`business_account_id`):
//!
//! - set: `POST {api_base_url}/{waba-id}/subscribed_apps` with `override_callback_uri` (the
//!   gateway's URL for this account) and `verify_token` (the account's): Meta then sends this
//!   WABA's `messages` webhooks to that URL instead of the app's callback URL, after checking it
//!   with the `GET` handshake the gateway answers
//!   (<https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/override/>);
//! - info: `GET {api_base_url}/{waba-id}/subscribed_apps`;
//! - delete: `DELETE {api_base_url}/{waba-id}/subscribed_apps`.
//!
//! What no call sets (the app's own callback URL, verify token and `messages` field in the app
//! dashboard) is listed in the report's manual steps. The access token goes in an
//! `Authorization: Bearer` header, never in a URL.

use std::time::Duration;

use async_trait::async_trait;
use chatgate_adapter::meta;
use chatgate_adapter::webhooks::transport_error;
use chatgate_adapter::{WebhookAdmin, WebhookAdminError, WebhookReport, WebhookTarget};
use serde_json::Value;

use crate::WhatsappAdapter;

/// The WhatsApp Business Account field chatgate models: messages and their statuses.
pub const FIELDS: &[&str] = &["messages"];

const TIMEOUT: Duration = Duration::from_secs(30);

impl WhatsappAdapter {
    fn waba(&self) -> Result<&str, WebhookAdminError> {
        self.config.business_account_id.as_deref().ok_or_else(|| {
            WebhookAdminError::Settings(format!(
                "account `{}` has no `business_account_id`: set it to the WhatsApp Business Account id of the number \
                 (WhatsApp Manager → Account tools, or the app dashboard's API Setup)",
                self.account
            ))
        })
    }

    async fn graph(&self, method: reqwest::Method, body: Option<Value>) -> Result<Value, WebhookAdminError> {
        let token = self.config.access_token.expose();
        let secrets = [token, self.config.app_secret.expose(), self.config.verify_token.expose()];
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| transport_error("whatsapp: HTTP client", e, &secrets))?;
        let url = format!("{}/{}/subscribed_apps", self.config.api_base_url, self.waba()?);
        let mut request = http.request(method.clone(), url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        meta::subscribed_apps(request, &format!("whatsapp {method} subscribed_apps"), &secrets).await
    }

    async fn report(&self) -> Result<WebhookReport, WebhookAdminError> {
        let answer = self.graph(reqwest::Method::GET, None).await?;
        let apps = answer.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut report = WebhookReport::default();
        for app in &apps {
            let data = app.get("whatsapp_business_api_data").unwrap_or(app);
            let name = data.get("name").and_then(Value::as_str).unwrap_or("?");
            let id = data.get("id").and_then(Value::as_str).unwrap_or("?");
            report.facts.push((format!("subscribed app {id}"), name.to_owned()));
            if let Some(uri) = app.get("override_callback_uri").and_then(Value::as_str) {
                report.url.get_or_insert_with(|| uri.to_owned());
            }
        }
        if apps.is_empty() {
            report.facts.push(("subscribed apps".to_owned(), "none".to_owned()));
        } else {
            report.events = FIELDS.iter().map(|f| (*f).to_owned()).collect();
        }
        report.manual = dashboard_steps(&self.account);
        Ok(report)
    }
}

fn dashboard_steps(account: &str) -> Vec<String> {
    vec![
        format!(
            "Meta App Dashboard → WhatsApp → Configuration: subscribe the app to the webhook field(s) {} \
             (the callback URL set there is used for WABAs without an override)",
            FIELDS.join(", ")
        ),
        format!(
            "Verify token there = the `verify_token` of account `{account}` in channels.toml (not shown here) if the \
             app's callback URL is this gateway"
        ),
        format!("The app's App Secret (App settings → Basic) must be the `app_secret` of account `{account}`"),
    ]
}

#[async_trait]
impl WebhookAdmin for WhatsappAdapter {
    async fn set(&self, target: &WebhookTarget) -> Result<WebhookReport, WebhookAdminError> {
        let body = serde_json::json!({
            "override_callback_uri": target.url,
            "verify_token": self.config.verify_token.expose(),
        });
        self.graph(reqwest::Method::POST, Some(body)).await?;
        let mut report = self.report().await?;
        if target.drop_pending_updates {
            report.facts.push(("drop pending updates".to_owned(), "not a Meta option; nothing dropped".to_owned()));
        }
        Ok(report)
    }

    async fn info(&self) -> Result<WebhookReport, WebhookAdminError> {
        self.report().await
    }

    async fn delete(&self) -> Result<WebhookReport, WebhookAdminError> {
        self.graph(reqwest::Method::DELETE, None).await?;
        self.report().await
    }
}
