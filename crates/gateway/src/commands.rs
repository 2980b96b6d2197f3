//! The commands of the `chatgate` binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chatgate_adapter::{Adapter, WebhookRequest};
use chatgate_queue::{Queue, SqliteQueue};
use chatgate_queue_nats::NatsQueue;
use chatgate_server::{Gateway, Limits, Settings};
use rand::Rng;

use crate::config::{self, MissingSecrets, QueueBackend};

/// Connection limits and the shutdown bound of `chatgate serve` (see `chatgate_server::Limits`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeLimits {
    /// Seconds a client may take to send a request head.
    #[arg(long, env = "CHATGATE_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a client may take to send a request body.
    #[arg(long, env = "CHATGATE_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,
    /// Seconds a keep-alive connection may stay without a request.
    #[arg(long, env = "CHATGATE_IDLE_TIMEOUT", default_value_t = 75)]
    pub idle_timeout: u64,
    /// Open connections at most (lowered to fit the open-file limit); past it, 503 `overloaded`
    /// with `Retry-After`.
    #[arg(long, env = "CHATGATE_MAX_CONNECTIONS", default_value_t = chatgate_server::serve::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open connections from one address at most.
    #[arg(long, env = "CHATGATE_MAX_CONNECTIONS_PER_PEER", default_value_t = chatgate_server::serve::DEFAULT_MAX_CONNECTIONS_PER_PEER)]
    pub max_connections_per_peer: usize,
    /// Seconds requests in progress get after SIGTERM before the process exits anyway.
    #[arg(long, env = "CHATGATE_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// Authentic webhooks that may wait for the store at once; past it, 503 `overloaded` with
    /// `Retry-After` (see `chatgate_server::Settings::max_pending_webhooks`).
    #[arg(long, env = "CHATGATE_MAX_PENDING_WEBHOOKS", default_value_t = chatgate_server::DEFAULT_MAX_PENDING_WEBHOOKS)]
    pub max_pending_webhooks: usize,
}

impl From<&ServeLimits> for Limits {
    fn from(l: &ServeLimits) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(l.header_timeout.max(1)),
            body_read_timeout: Duration::from_secs(l.body_timeout.max(1)),
            idle_timeout: Duration::from_secs(l.idle_timeout.max(1)),
            max_connections: l.max_connections.max(1),
            max_connections_per_peer: l.max_connections_per_peer.max(1),
            shutdown_grace: Duration::from_secs(l.shutdown_grace),
        }
    }
}

/// File handles kept free of connections: the store, outbound calls, logs.
const RESERVED_FILES: u64 = 128;

/// `chatgate serve`: runs the gateway until SIGINT/SIGTERM, then stops within the shutdown grace.
pub async fn serve(
    config_path: &Path,
    listen: SocketAddr,
    data_dir: &Path,
    api_token: Option<String>,
    serve_limits: ServeLimits,
    record: Option<&Path>,
) -> Result<()> {
    let limits = Limits::from(&serve_limits);
    let limits = match chatgate_server::serve::raise_open_file_limit() {
        Ok(files) => {
            let limits = limits.fit_file_limit(files, RESERVED_FILES);
            tracing::info!(
                open_files = files,
                max_connections = limits.max_connections,
                per_peer = limits.max_connections_per_peer,
                "connection caps"
            );
            limits
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            limits
        }
    };
    let config = config::load_serving(config_path, data_dir)?;
    for d in &config.disabled {
        tracing::warn!(account = %d.id, kind = %d.kind, missing = ?d.missing, "account disabled: its secrets are not set in the environment");
    }
    for a in &config.accounts {
        tracing::info!(account = %a.id, kind = %a.kind, webhook = %format!("/webhooks/{}/{}", a.adapter.channel(), a.id), "account enabled");
    }
    let api_token = match api_token.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            let token: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(40).map(char::from).collect();
            // Printed once to the terminal (not to the log) so a first run can call the API.
            println!("CHATGATE_API_TOKEN is not set; this run's core API token is: {token}");
            token
        }
    };
    let mut nats_outbound = None;
    let queue: Arc<dyn Queue> = match &config.queue {
        QueueBackend::Sqlite => {
            let queue = SqliteQueue::open_with(data_dir, config.retention)
                .with_context(|| format!("opening the queue in {}", data_dir.display()))?;
            tracing::info!(path = %queue.path().display(), "embedded queue open");
            Arc::new(queue)
        }
        QueueBackend::Nats(options) => {
            let queue = NatsQueue::connect((**options).clone()).await.context("starting the NATS queue")?;
            tracing::info!(urls = ?options.urls, prefix = %options.prefix, replicas = options.replicas, "NATS queue open");
            nats_outbound = Some((queue.client(), queue.outbound_subject()));
            Arc::new(queue)
        }
    };
    let mut settings = Settings::new(api_token.clone());
    settings.fetch = config.fetch;
    settings.data_dir = Some(data_dir.to_owned());
    settings.record_dir = record.map(Path::to_owned);
    settings.push = config.push;
    settings.metrics.token = config.metrics_token;
    settings.metrics.separate_listener = config.metrics_listen.is_some();
    settings.max_pending_webhooks = serve_limits.max_pending_webhooks.max(1);
    let adapters = config.accounts.into_iter().map(|a| (a.adapter, a.limits)).collect();
    let gateway = Gateway::start(adapters, queue, settings).await?;
    if let Some((client, subject)) = nats_outbound {
        crate::nats_outbound::serve(client, subject, gateway.router(), api_token).await?;
    }
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    if let Some(address) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address} (metrics)"))?;
        tracing::info!(%address, "/metrics serves on its own listener");
        let gateway = gateway.clone();
        tokio::spawn(async move {
            if let Err(e) = chatgate_server::metrics::serve_separately(metrics, gateway, shutdown()).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    tracing::info!(%listen, "chatgate serves");
    chatgate_server::serve(listener, gateway, limits, shutdown()).await?;
    tracing::info!("chatgate stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// Finds a configured account of `channel` (the named one, or the first).
fn pick_account(
    config_path: &Path,
    channel: &str,
    account: Option<&str>,
    missing: MissingSecrets,
) -> Result<Arc<dyn Adapter>> {
    let config = config::load(config_path, missing)?;
    if let Some(d) = config.disabled.iter().find(|d| d.kind == channel && account.is_none_or(|a| a == d.id)) {
        bail!("account `{}` is disabled: set {}", d.id, d.missing.join(", "));
    }
    config
        .accounts
        .into_iter()
        .find(|a| a.adapter.channel().as_str() == channel && account.is_none_or(|id| id == a.id))
        .map(|a| a.adapter)
        .with_context(|| {
            format!(
                "no {channel} account{} in {}",
                account.map(|a| format!(" `{a}`")).unwrap_or_default(),
                config_path.display()
            )
        })
}

/// `chatgate normalize --channel C FILE`: prints the envelopes of one raw body as JSON lines.
/// Verifies nothing, stores nothing.
pub fn normalize(config_path: &Path, channel: &str, account: Option<&str>, file: &Path) -> Result<()> {
    for line in normalize_lines(config_path, channel, account, file)? {
        println!("{line}");
    }
    Ok(())
}

/// The lines `normalize` prints: one envelope per event.
pub fn normalize_lines(config_path: &Path, channel: &str, account: Option<&str>, file: &Path) -> Result<Vec<String>> {
    let adapter = pick_account(config_path, channel, account, MissingSecrets::Placeholder)?;
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut headers = http::HeaderMap::new();
    // A web visitor request is read as the request of a test visitor (its events need a visitor);
    // the route is `messages` unless the file's `.headers` say otherwise.
    if adapter.visitors().is_some() {
        adapter.sign(&mut headers, Vec::new());
    }
    let head = std::fs::read_to_string(file.with_extension("headers")).unwrap_or_default();
    let query = chatgate_adapter::recorded::parse_headers(&head).ok().and_then(|h| h.query);
    let query = if adapter.visitors().is_some() { query } else { None };
    let request =
        WebhookRequest { method: &http::Method::POST, headers: &headers, query: query.as_deref(), body: &body };
    let inbound = adapter.parse(&request).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    inbound.events.iter().map(|e| Ok(serde_json::to_string(&e.event)?)).collect()
}

/// `chatgate replay PATH... --to URL`: posts recorded fixtures with their headers, re-signed
/// with the secret configured for the URL's account, and reports each answer.
pub async fn replay(config_path: &Path, paths: &[PathBuf], to: &str) -> Result<()> {
    let url = reqwest::Url::parse(to).with_context(|| format!("--to {to}"))?;
    let segments: Vec<&str> = url.path_segments().map(|s| s.filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    let [.., "webhooks", channel, account] = segments.as_slice() else {
        bail!("--to must be a webhook URL ending in /webhooks/{{channel}}/{{account}}");
    };
    let adapter = pick_account(config_path, channel, Some(account), MissingSecrets::Disable)?;
    let mut bodies = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "body"))
                .collect();
            found.sort();
            bodies.extend(found);
        } else {
            bodies.push(p.clone());
        }
    }
    if bodies.is_empty() {
        bail!("no fixtures (*.body) found");
    }
    let client = reqwest::Client::new();
    let mut failures = 0;
    for body_path in &bodies {
        let body = std::fs::read(body_path).with_context(|| format!("reading {}", body_path.display()))?;
        let head = std::fs::read_to_string(body_path.with_extension("headers")).unwrap_or_default();
        let chatgate_adapter::recorded::RecordedHead { method, query, mut headers } =
            chatgate_adapter::recorded::parse_headers(&head)
                .map_err(|e| anyhow::anyhow!("{}: {e}", body_path.display()))?;
        let body = adapter.sign(&mut headers, body);
        let mut target = url.clone();
        target.set_query(query.as_deref());
        let response = client.request(method, target).headers(headers).body(body).send().await;
        match response {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if !status.is_success() {
                    failures += 1;
                }
                println!("{} {} {}", body_path.display(), status.as_u16(), text.chars().take(200).collect::<String>());
            }
            Err(e) => {
                failures += 1;
                println!("{} error {}", body_path.display(), e.without_url());
            }
        }
    }
    println!("{} passed, {} failed", bodies.len() - failures, failures);
    if failures > 0 {
        bail!("{failures} of {} fixtures were not accepted", bodies.len());
    }
    Ok(())
}

/// `chatgate widget snippet <account>`: the frame code (script tag) of a web widget account.
pub fn widget_snippet(config_path: &Path, account: &str) -> Result<String> {
    let adapter = pick_account(config_path, "web", Some(account), MissingSecrets::Placeholder)?;
    let visitors = adapter.visitors().with_context(|| format!("account `{account}` is not a web widget"))?;
    Ok(visitors.snippet())
}

/// `chatgate schema`: the JSON Schema of the envelope (v1).
pub fn schema() -> Result<String> {
    let schema = schemars::schema_for!(chatgate_model::Event);
    Ok(serde_json::to_string_pretty(&schema)? + "\n")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::normalize_lines;
    use crate::registry;

    /// `normalize` verifies and sends nothing, so it must work with the shipped `channels.toml` and
    /// no environment for every channel. (Config loading reads the process environment; none of the
    /// shipped file's variables are set in tests.)
    #[test]
    fn normalize_works_for_every_channel_with_the_shipped_config_and_no_environment() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for channel in registry::channels() {
            let dir = root.join("fixtures").join(channel.as_str());
            let mut bodies: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "body"))
                .collect();
            bodies.sort();
            let mut events = 0;
            for body in &bodies {
                // Some fixtures are deliberately unreadable or handshakes (no body): those may fail.
                let Ok(lines) = normalize_lines(&root.join("channels.toml"), channel.as_str(), None, body) else {
                    continue;
                };
                for line in &lines {
                    let event: serde_json::Value = serde_json::from_str(line).unwrap();
                    assert_eq!(event["channel"], channel.as_str(), "{line}");
                }
                events += lines.len();
            }
            assert!(events > 0, "normalize --channel {channel} gave no event for any of {} fixtures", bodies.len());
        }
    }
}
