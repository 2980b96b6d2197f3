//! `chatgate webhooks set | info | delete <account>`: registers the account's webhook URL with
//! its provider through the channel's [`WebhookAdmin`] and prints what the provider reports.
//!
//! This module only finds the account in `channels.toml` and prints; every provider call lives
//! in the channel crate's `webhooks.rs`. Nothing printed carries a secret: reports name settings
//! by their key, and channel errors are stripped of URLs and tokens.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chatgate_adapter::{Adapter, WebhookAdminError, WebhookReport, WebhookTarget};

use crate::config::{self, MissingSecrets};

/// What to do with the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Set(WebhookTarget),
    Info,
    Delete,
}

/// Runs `action` for `account` and returns the text to print.
pub async fn run(config_path: &Path, account: &str, action: Action) -> Result<String> {
    let adapter = find_account(config_path, account)?;
    let channel = adapter.channel();
    let admin = adapter.webhooks().with_context(|| format!("{channel} accounts have no webhook registration"))?;
    let mut notes = Vec::new();
    let (verb, result) = match &action {
        Action::Set(target) => {
            check_url(&target.url, channel.as_str(), account, &mut notes)?;
            ("webhook set", admin.set(target).await)
        }
        Action::Info => ("webhook", admin.info().await),
        Action::Delete => ("webhook deleted", admin.delete().await),
    };
    match result {
        Ok(report) => Ok(render(&format!("{channel} account `{account}`: {verb}"), &report, &notes)),
        Err(WebhookAdminError::NotNeeded(why)) => Ok(format!("{why}\n")),
        Err(e) => bail!("{channel} account `{account}`: {e}"),
    }
}

/// The account named `id` in the config, with its secrets (a disabled account is an error naming
/// the variables to set).
fn find_account(config_path: &Path, id: &str) -> Result<Arc<dyn Adapter>> {
    let config = config::load(config_path, MissingSecrets::Disable)?;
    if let Some(d) = config.disabled.iter().find(|d| d.id == id) {
        bail!("account `{id}` is disabled: set {}", d.missing.join(", "));
    }
    let known: Vec<&str> = config.accounts.iter().map(|a| a.id.as_str()).collect();
    config
        .accounts
        .iter()
        .find(|a| a.id == id)
        .map(|a| a.adapter.clone())
        .with_context(|| format!("no account `{id}` in {} (accounts: {})", config_path.display(), known.join(", ")))
}

/// Providers post only to `https` URLs; the route is `/webhooks/<channel>/<account>`.
fn check_url(url: &str, channel: &str, account: &str, notes: &mut Vec<String>) -> Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--url {url} is not a URL"))?;
    if parsed.scheme() != "https" {
        bail!("--url must be an https URL (providers post only to https): {url}");
    }
    let route = format!("/webhooks/{channel}/{account}");
    if !parsed.path().trim_end_matches('/').ends_with(&route) {
        notes.push(format!(
            "the URL does not end in {route}: make sure your proxy forwards it to that route of the gateway"
        ));
    }
    Ok(())
}

/// The report as plain lines: heading, facts, then the steps to do by hand.
pub fn render(heading: &str, report: &WebhookReport, notes: &[String]) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push(("url".into(), report.url.clone().unwrap_or_else(|| "(none registered)".into())));
    if !report.events.is_empty() {
        rows.push(("events".into(), report.events.join(", ")));
    }
    if let Some(pending) = report.pending {
        rows.push(("pending updates".into(), pending.to_string()));
    }
    match &report.last_error {
        Some(e) => {
            let at = e.at.map(|t| format!("{} ", t.to_rfc3339())).unwrap_or_default();
            rows.push(("last error".into(), format!("{at}{}", e.message)));
        }
        None if report.pending.is_some() => rows.push(("last error".into(), "none".into())),
        None => {}
    }
    rows.extend(report.facts.iter().cloned());
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0) + 1;
    let mut out = format!("{heading}\n");
    for (label, value) in rows {
        let _ = writeln!(out, "  {:<width$} {value}", format!("{label}:"));
    }
    let steps: Vec<&String> = notes.iter().chain(&report.manual).collect();
    if !steps.is_empty() {
        out.push_str("to do by hand:\n");
        for (i, step) in steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {step}", i + 1);
        }
    }
    out
}
