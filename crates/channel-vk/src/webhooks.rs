//! Callback server registration through the VK API (`chatgate webhooks`):
//!
//! - **set**: [`groups.getCallbackConfirmationCode`](https://dev.vk.com/ru/method/groups.getCallbackConfirmationCode)
//!   (compared with the account's `confirmation`, which the gateway answers VK's check with),
//!   [`groups.getCallbackServers`](https://dev.vk.com/ru/method/groups.getCallbackServers) (a
//!   server already pointing at `…/webhooks/vk/<account>` or at the URL is reused and edited with
//!   [`groups.editCallbackServer`](https://dev.vk.com/ru/method/groups.editCallbackServer), else
//!   [`groups.addCallbackServer`](https://dev.vk.com/ru/method/groups.addCallbackServer) with the
//!   account's `secret` as `secret_key`), then
//!   [`groups.setCallbackSettings`](https://dev.vk.com/ru/method/groups.setCallbackSettings) with
//!   the account's `api_version` and the events chatgate models ([`EVENTS`]).
//! - **info**: the servers of this account and
//!   [`groups.getCallbackSettings`](https://dev.vk.com/ru/method/groups.getCallbackSettings) of each.
//! - **delete**: [`groups.deleteCallbackServer`](https://dev.vk.com/ru/method/groups.deleteCallbackServer)
//!   for each server of this account.
//!
//! "Servers of this account" are those whose URL ends in `/webhooks/vk/<account>`. The calls need
//! a community token with the `manage` right. Like every VK call, they are `POST
//! {api_base_url}/<method>` with form parameters (`access_token`, `v`): no token in a URL.

use std::time::Duration;

use async_trait::async_trait;
use chatgate_adapter::webhooks::{answer_json, redact, status_error, transport_error};
use chatgate_adapter::{WebhookAdmin, WebhookAdminError, WebhookReport, WebhookTarget};
use serde::Deserialize;
use serde_json::Value;

use crate::VkAdapter;

/// The Callback API events chatgate models (`parse.rs`), switched on by `setCallbackSettings`.
pub const EVENTS: &[&str] =
    &["message_new", "message_reply", "message_edit", "message_allow", "message_deny", "message_event", "message_read"];

/// The title chatgate gives the servers it adds (VK allows 14 characters).
pub const SERVER_TITLE: &str = "chatgate";

/// VK error codes that mean the token may not do this: 5 authorization failed, 15 access
/// denied, 27 group authorization failed (a community token without the right).
const AUTH_ERRORS: [i64; 3] = [5, 15, 27];

const TIMEOUT: Duration = Duration::from_secs(30);

/// One item of `groups.getCallbackServers`.
#[derive(Debug, Deserialize)]
struct Server {
    id: i64,
    #[serde(default)]
    url: String,
    #[serde(default)]
    title: String,
    /// `unconfigured`, `failed`, `wait` or `ok`.
    #[serde(default)]
    status: String,
}

impl VkAdapter {
    fn secrets(&self) -> [&str; 3] {
        [self.config.access_token.expose(), self.config.secret.expose(), self.config.confirmation.expose()]
    }

    /// Calls one `groups.*` method for this community; returns its `response`.
    async fn call(&self, method: &str, params: &[(&str, String)]) -> Result<Value, WebhookAdminError> {
        let secrets = self.secrets();
        let mut form: Vec<(&str, String)> = vec![("group_id", self.config.group_id.to_string())];
        form.extend(params.iter().cloned());
        form.push(("access_token", self.config.access_token.expose().to_owned()));
        form.push(("v", self.config.api_version.clone()));
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| transport_error("vk: HTTP client", e, &secrets))?;
        let sent = http.post(format!("{}/{method}", self.config.api_base_url)).form(&form).send().await;
        let (status, answer) = answer_json(sent, &format!("VK {method}"), &secrets).await?;
        if let Some(error) = answer.get("error") {
            let code = error.get("error_code").and_then(Value::as_i64).unwrap_or(0);
            let message = error.get("error_msg").and_then(Value::as_str).unwrap_or("no message");
            let text = redact(&format!("{method}: error {code}: {message}"), &secrets);
            return Err(if AUTH_ERRORS.contains(&code) {
                WebhookAdminError::Unauthorized(text)
            } else {
                WebhookAdminError::Rejected(text)
            });
        }
        match answer.get("response") {
            Some(response) if (200..300).contains(&status) => Ok(response.clone()),
            _ => Err(status_error(status, &format!("{method}: no response"), &secrets)),
        }
    }

    async fn servers(&self) -> Result<Vec<Server>, WebhookAdminError> {
        let response = self.call("groups.getCallbackServers", &[]).await?;
        let items = response.get("items").cloned().unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(items).map_err(|e| {
            WebhookAdminError::Unavailable(format!("VK groups.getCallbackServers: unreadable answer: {e}"))
        })
    }

    /// Whether a server is this account's: its URL ends in `/webhooks/vk/<account>`.
    fn is_ours(&self, server: &Server) -> bool {
        server.url.trim_end_matches('/').ends_with(&format!("/webhooks/{}/{}", crate::CHANNEL, self.account))
    }

    /// The report over this account's servers (their settings read from VK).
    async fn report(&self, servers: Vec<Server>) -> Result<WebhookReport, WebhookAdminError> {
        let mut report = WebhookReport::default();
        for server in servers.iter().filter(|s| self.is_ours(s)) {
            let settings = self.call("groups.getCallbackSettings", &[("server_id", server.id.to_string())]).await?;
            let version = settings.get("api_version").and_then(Value::as_str).unwrap_or_default();
            let events: Vec<String> = settings
                .get("events")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter(|(_, on)| on.as_i64() == Some(1)).map(|(k, _)| k.clone()).collect())
                .unwrap_or_default();
            report.facts.push((
                format!("server {}", server.id),
                format!("{} ({}, status {}, API {version})", server.url, server.title, server.status),
            ));
            let missing: Vec<&str> = EVENTS.iter().copied().filter(|e| !events.iter().any(|x| x == e)).collect();
            if !missing.is_empty() {
                report.manual.push(format!(
                    "server {} does not send {}: run `chatgate webhooks set` again",
                    server.id,
                    missing.join(", ")
                ));
            }
            if version != self.config.api_version {
                report.manual.push(format!(
                    "server {} uses API {version}, the account's `api_version` is {}: run `chatgate webhooks set` again",
                    server.id, self.config.api_version
                ));
            }
            if server.status == "failed" {
                report.manual.push(format!(
                    "VK could not confirm server {}: the gateway must be reachable at its URL and answer with `confirmation`",
                    server.id
                ));
            }
            if report.url.is_none() {
                report.url = Some(server.url.clone());
                report.events = events;
            }
        }
        let others = servers.iter().filter(|s| !self.is_ours(s)).count();
        if others > 0 {
            report.facts.push(("other callback servers".to_owned(), others.to_string()));
        }
        Ok(report)
    }
}

#[async_trait]
impl WebhookAdmin for VkAdapter {
    async fn set(&self, target: &WebhookTarget) -> Result<WebhookReport, WebhookAdminError> {
        let code = self.call("groups.getCallbackConfirmationCode", &[]).await?;
        let code = code.get("code").and_then(Value::as_str).unwrap_or_default();
        if code != self.config.confirmation.expose() {
            return Err(WebhookAdminError::Settings(format!(
                "VK's confirmation string for community {} differs from the account's `confirmation`: set `confirmation` \
                 to the string VK shows under Manage → API usage → Callback API, restart the gateway, then run this again",
                self.config.group_id
            )));
        }
        let servers = self.servers().await?;
        let existing = servers.iter().find(|s| s.url == target.url || self.is_ours(s)).map(|s| s.id);
        let server_params = |extra: Option<i64>| {
            let mut p = vec![
                ("url", target.url.clone()),
                ("title", SERVER_TITLE.to_owned()),
                ("secret_key", self.config.secret.expose().to_owned()),
            ];
            if let Some(id) = extra {
                p.insert(0, ("server_id", id.to_string()));
            }
            p
        };
        let server_id = match existing {
            Some(id) => {
                self.call("groups.editCallbackServer", &server_params(Some(id))).await?;
                id
            }
            None => {
                let added = self.call("groups.addCallbackServer", &server_params(None)).await?;
                added.get("server_id").and_then(Value::as_i64).ok_or_else(|| {
                    WebhookAdminError::Unavailable("VK groups.addCallbackServer: no server_id in the answer".to_owned())
                })?
            }
        };
        let mut settings = vec![("server_id", server_id.to_string()), ("api_version", self.config.api_version.clone())];
        settings.extend(EVENTS.iter().map(|e| (*e, "1".to_owned())));
        self.call("groups.setCallbackSettings", &settings).await?;
        let mut report = self.report(self.servers().await?).await?;
        if target.drop_pending_updates {
            report.facts.push(("drop pending updates".to_owned(), "not a VK option; nothing dropped".to_owned()));
        }
        Ok(report)
    }

    async fn info(&self) -> Result<WebhookReport, WebhookAdminError> {
        let servers = self.servers().await?;
        self.report(servers).await
    }

    async fn delete(&self) -> Result<WebhookReport, WebhookAdminError> {
        let servers = self.servers().await?;
        let mut deleted = Vec::new();
        for server in servers.iter().filter(|s| self.is_ours(s)) {
            self.call("groups.deleteCallbackServer", &[("server_id", server.id.to_string())]).await?;
            deleted.push(server.id.to_string());
        }
        let mut report = self.report(self.servers().await?).await?;
        let deleted =
            if deleted.is_empty() { "none (no server of this account)".to_owned() } else { deleted.join(", ") };
        report.facts.insert(0, ("servers deleted".to_owned(), deleted));
        Ok(report)
    }
}
