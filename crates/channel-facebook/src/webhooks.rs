//! Webhook registration for Messenger and Instagram (`chatgate webhooks`).
//!
//! Meta sends every webhook of an app to the one callback URL set in the app dashboard; the
//! callback URL, the verify token and the app's field subscriptions have no call here (the
//! app-level `/{app-id}/subscriptions` edge needs the app id and an app token, which chatgate
//! does not hold). What the API does: subscribe the **Page** (or Instagram account) to the app,
//! with the fields chatgate models:
//!
//! - set: `POST {api_base_url}/{page_id}/subscribed_apps` with `subscribed_fields`
//!   (<https://developers.facebook.com/docs/graph-api/reference/page/subscribed_apps>);
//! - info: `GET {api_base_url}/{page_id}/subscribed_apps`;
//! - delete: `DELETE {api_base_url}/{page_id}/subscribed_apps`.
//!
//! The report lists the dashboard steps ([`WebhookReport::manual`]) with the exact URL and fields.
//! Instagram through a Page (Facebook Login) needs the Page subscribed to any Page field
//! (`messages` here); with Instagram Login (`api_base_url` on `graph.instagram.com`) `page_id` is
//! the Instagram account itself and is subscribed to the Instagram fields. The Page token goes in
//! an `Authorization: Bearer` header, never in a URL.

use std::time::Duration;

use async_trait::async_trait;
use chatgate_adapter::meta;
use chatgate_adapter::webhooks::transport_error;
use chatgate_adapter::{WebhookAdmin, WebhookAdminError, WebhookReport, WebhookTarget};
use serde_json::Value;

use crate::{FacebookAdapter, Kind};

/// Page fields of the Messenger events chatgate models (`parse.rs`).
pub const MESSENGER_FIELDS: &[&str] = &[
    "messages",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "message_edits",
    "message_reactions",
    "messaging_postbacks",
    "messaging_optins",
    "messaging_referrals",
    "standby",
];

/// Instagram fields of the messaging events chatgate models (`parse.rs`).
pub const INSTAGRAM_FIELDS: &[&str] = &[
    "messages",
    "messaging_postbacks",
    "messaging_seen",
    "message_reactions",
    "messaging_referral",
    "messaging_optins",
];

const TIMEOUT: Duration = Duration::from_secs(30);

impl FacebookAdapter {
    /// The fields the app must subscribe to in the dashboard.
    fn app_fields(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Messenger => MESSENGER_FIELDS,
            Kind::Instagram => INSTAGRAM_FIELDS,
        }
    }

    /// The fields the Page (or Instagram account) subscribes with.
    fn subscribed_fields(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Messenger => MESSENGER_FIELDS,
            Kind::Instagram if self.config.api_base_url.contains("graph.instagram.com") => INSTAGRAM_FIELDS,
            Kind::Instagram => &["messages"],
        }
    }

    async fn graph(&self, method: reqwest::Method, form: &[(&str, String)]) -> Result<Value, WebhookAdminError> {
        let token = self.config.page_access_token.expose();
        let secrets = [token, self.config.app_secret.expose(), self.config.verify_token.expose()];
        let channel = self.kind.channel();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| transport_error(&format!("{channel}: HTTP client"), e, &secrets))?;
        let url = format!("{}/{}/subscribed_apps", self.config.api_base_url, self.config.page_id);
        let mut request = http.request(method.clone(), url).bearer_auth(token);
        if !form.is_empty() {
            request = request.form(form);
        }
        meta::subscribed_apps(request, &format!("{channel} {method} subscribed_apps"), &secrets).await
    }

    async fn report(&self, url: Option<&str>) -> Result<WebhookReport, WebhookAdminError> {
        let answer = self.graph(reqwest::Method::GET, &[]).await?;
        let apps = answer.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut report = WebhookReport::default();
        for app in &apps {
            let name = app.get("name").and_then(Value::as_str).unwrap_or("?");
            let id = app.get("id").and_then(Value::as_str).unwrap_or("?");
            let fields: Vec<String> = app
                .get("subscribed_fields")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            report.facts.push((format!("subscribed app {id}"), format!("{name}: {}", fields.join(", "))));
            if report.events.is_empty() {
                report.events = fields;
            }
        }
        if apps.is_empty() {
            report.facts.push(("subscribed apps".to_owned(), "none".to_owned()));
        }
        report.manual = dashboard_steps(self, url);
        Ok(report)
    }
}

/// What only the app dashboard sets, with the exact values.
fn dashboard_steps(adapter: &FacebookAdapter, url: Option<&str>) -> Vec<String> {
    let channel = adapter.kind.channel();
    let account = &adapter.account;
    let object = match adapter.kind {
        Kind::Messenger => "Page",
        Kind::Instagram => "Instagram",
    };
    let url = url.map_or_else(|| format!("https://<your host>/webhooks/{channel}/{account}"), str::to_owned);
    vec![
        format!("Meta App Dashboard → Webhooks → object `{object}`: Callback URL = {url}"),
        format!(
            "Verify token = the `verify_token` of account `{account}` in channels.toml (not shown here); \
             Meta checks it against the gateway when you save, so the gateway must be running at that URL"
        ),
        format!("Subscribe the app to the fields: {}", adapter.app_fields().join(", ")),
        format!("The app's App Secret (App settings → Basic) must be the `app_secret` of account `{account}`"),
    ]
}

#[async_trait]
impl WebhookAdmin for FacebookAdapter {
    async fn set(&self, target: &WebhookTarget) -> Result<WebhookReport, WebhookAdminError> {
        let fields = self.subscribed_fields().join(",");
        self.graph(reqwest::Method::POST, &[("subscribed_fields", fields)]).await?;
        let mut report = self.report(Some(&target.url)).await?;
        report.url = None;
        if target.drop_pending_updates {
            report.facts.push(("drop pending updates".to_owned(), "not a Meta option; nothing dropped".to_owned()));
        }
        Ok(report)
    }

    async fn info(&self) -> Result<WebhookReport, WebhookAdminError> {
        self.report(None).await
    }

    async fn delete(&self) -> Result<WebhookReport, WebhookAdminError> {
        self.graph(reqwest::Method::DELETE, &[]).await?;
        let mut report = self.report(None).await?;
        report.manual = vec![
            "the app keeps its callback URL and fields in the dashboard; remove them there if no other Page or \
             account uses them"
                .to_owned(),
        ];
        Ok(report)
    }
}
