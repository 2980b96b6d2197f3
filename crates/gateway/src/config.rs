//! `channels.toml`: one table per account, secrets as `${ENV}` references.
//!
//! ```toml
//! [fetch]
//! allow = ["127.0.0.1"]          # internal addresses attachment downloads may reach
//!
//! [accounts.support-bot]          # the account id (used in webhook URLs)
//! kind = "telegram"
//! bot_token = "${TELEGRAM_BOT_TOKEN}"
//! secret_token = "${TELEGRAM_WEBHOOK_SECRET}"
//! [accounts.support-bot.limits]
//! image_mb = 5
//! ```
//!
//! Unknown keys and missing required values are errors naming the key. An account whose
//! `${ENV}` reference is unset (or empty) is disabled with a warning: never served without its secret.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chatgate_adapter::Adapter;
use chatgate_model::limits::LimitOverrides;
use chatgate_server::FetchPolicy;
use serde::Deserialize;

use crate::registry;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    fetch: FetchSection,
    #[serde(default)]
    queue: QueueSection,
    /// `[core]`: push delivery (read after `${ENV}` substitution).
    #[serde(default)]
    core: Option<toml::Table>,
    /// `[metrics]`: where `/metrics` is served and its token (read after `${ENV}` substitution).
    #[serde(default)]
    metrics: Option<toml::Table>,
    #[serde(default)]
    accounts: BTreeMap<String, toml::Table>,
}

/// `[core]`: how the gateway reaches the contact-centre core.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoreSection {
    /// Where to POST event batches (http or https); unset: the core pulls `/v1/events` only.
    push_url: Option<String>,
    /// The HMAC-SHA256 key of the push signature; required with `push_url`.
    push_secret: Option<String>,
    /// Events per POST (1..=1000, default 100).
    push_batch: Option<usize>,
    /// Seconds one POST may take (default 10).
    push_timeout_seconds: Option<f64>,
    /// Longest wait between retries while the core is down, in seconds (default 30).
    push_max_backoff_seconds: Option<f64>,
}

/// `[metrics]`: a listener of its own and/or a token for `/metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    /// Serve `/metrics` on this address instead of the main listener.
    listen: Option<std::net::SocketAddr>,
    /// Require `Authorization: Bearer <token>` on `/metrics`.
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSection {
    /// Days events, dedup keys and finished outbound messages are kept (default 14).
    retention_days: Option<f64>,
    /// `sqlite` (default: one file in the data dir) or `nats` (NATS JetStream, several instances).
    backend: Option<String>,
    /// NATS: one server URL or a list of them.
    url: Option<toml::Value>,
    /// NATS credentials, usually `${ENV}` references: a token, user + password, or a creds file.
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
    creds_file: Option<String>,
    /// NATS over TLS (required when true); CA and client certificate files are optional.
    tls: Option<bool>,
    tls_ca_file: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    /// NATS: names of streams, buckets and subjects start with it (default `chatgate`).
    prefix: Option<String>,
    /// NATS: copies of every stream and bucket, 1 or 3 (default 1).
    replicas: Option<usize>,
    /// NATS: seconds a chat's delivery lease lasts without renewal (the takeover bound, default 10).
    lease_seconds: Option<u64>,
    /// NATS: seconds JetStream drops a repeated event id on the events stream (default 120);
    /// the dedup repair sweep runs every quarter of it.
    duplicate_window_seconds: Option<u64>,
}

/// Which store the gateway runs on.
#[derive(Debug, Clone)]
pub enum QueueBackend {
    /// The embedded SQLite file in the data dir.
    Sqlite,
    /// NATS JetStream, shared by every instance (see ARCHITECTURE.md).
    Nats(Box<chatgate_queue_nats::NatsOptions>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchSection {
    #[serde(default)]
    allow: Vec<String>,
}

/// One account ready to serve.
pub struct LoadedAccount {
    pub id: String,
    pub kind: String,
    pub adapter: Arc<dyn Adapter>,
    pub limits: LimitOverrides,
}

impl std::fmt::Debug for LoadedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedAccount").field("id", &self.id).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// An account left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledAccount {
    pub id: String,
    pub kind: String,
    /// The environment variables it references that are unset or empty.
    pub missing: Vec<String>,
}

/// The loaded configuration.
#[derive(Debug)]
pub struct Config {
    pub fetch: FetchPolicy,
    /// How long the embedded queue keeps events, dedup keys and finished messages.
    pub retention: std::time::Duration,
    pub queue: QueueBackend,
    pub accounts: Vec<LoadedAccount>,
    pub disabled: Vec<DisabledAccount>,
    /// `[core] push_url`: push delivery to the core.
    pub push: Option<chatgate_server::PushSettings>,
    /// `[metrics] token`.
    pub metrics_token: Option<chatgate_adapter::Secret>,
    /// `[metrics] listen`: `/metrics` on a listener of its own.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// How to treat `${ENV}` references whose variable is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingSecrets {
    /// Disable the account (serving).
    Disable,
    /// Fill in a placeholder (`normalize`, which verifies nothing).
    Placeholder,
}

/// Reads and checks a config file. Web accounts without `token_secret` get a secret for this
/// process only (enough for `normalize` and tests); `serve` uses [`load_serving`].
pub fn load(path: &Path, missing: MissingSecrets) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, &|name| std::env::var(name).ok(), missing).with_context(|| format!("in {}", path.display()))
}

/// [`load`] for serving: a web account without `token_secret` uses the one generated once into
/// `{data_dir}/web-token-secret`, so visitor tokens stay valid across restarts.
pub fn load_serving(path: &Path, data_dir: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = || web_token_secret(data_dir);
    parse_with(&text, &|name| std::env::var(name).ok(), MissingSecrets::Disable, &secret)
        .with_context(|| format!("in {}", path.display()))
}

/// The web token secret kept in the data dir, generated (40 random characters, file mode 0600)
/// the first time it is needed.
pub fn web_token_secret(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("web-token-secret");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.trim().len() >= 16
    {
        return Ok(existing.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = random_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated the web widget token secret");
    Ok(secret)
}

fn random_secret() -> String {
    use rand::Rng;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(40).map(char::from).collect()
}

/// Parses config text; `env` looks up variables.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>, missing: MissingSecrets) -> Result<Config> {
    parse_with(text, env, missing, &|| Ok(random_secret()))
}

/// [`parse`], with `web_secret` giving the token secret of web accounts that set none.
pub fn parse_with(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    missing: MissingSecrets,
    web_secret: &dyn Fn() -> Result<String>,
) -> Result<Config> {
    let file: File = toml::from_str(text)?;
    let retention = match file.queue.retention_days {
        None => chatgate_queue::DEFAULT_RETENTION,
        // Providers redeliver for up to 7 days (WhatsApp): dedup keys must live at least that long.
        Some(days) if days.is_finite() && days >= 7.0 => std::time::Duration::from_secs_f64(days * 86_400.0),
        Some(days) => {
            bail!("queue.retention_days must be at least 7 (providers redeliver for up to 7 days), not {days}")
        }
    };
    let push = match file.core {
        None => None,
        Some(table) => core_section(table, env)?,
    };
    let (metrics_token, metrics_listen) = match file.metrics {
        None => (None, None),
        Some(table) => {
            let m: MetricsSection = section(table, "metrics", env)?;
            let token = match m.token {
                Some(t) if t.len() < 16 => bail!("metrics.token must be at least 16 characters"),
                t => t.map(chatgate_adapter::Secret::new),
            };
            (token, m.listen)
        }
    };
    let queue = queue_backend(&file.queue, retention, env)?;
    let mut allow = Vec::new();
    for (i, entry) in file.fetch.allow.iter().enumerate() {
        allow.push(entry.parse().with_context(|| format!("fetch.allow[{i}]"))?);
    }
    let mut accounts = Vec::new();
    let mut disabled = Vec::new();
    for (id, mut table) in file.accounts {
        let at = format!("accounts.{id}");
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("{at}: an account id may hold only letters, digits, `-` and `_` (it is part of the webhook URL)");
        }
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => bail!("{at}.kind must be a string"),
            None => bail!("{at}.kind is required (one of: {})", registry::kinds()),
        };
        let factory = registry::factory(&kind)
            .with_context(|| format!("{at}.kind: unknown kind `{kind}` (known: {})", registry::kinds()))?;
        let enabled = match table.remove("enabled") {
            None => true,
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => bail!("{at}.enabled must be true or false"),
        };
        let limits: LimitOverrides = match table.remove("limits") {
            None => LimitOverrides::default(),
            Some(v) => v.try_into().with_context(|| format!("{at}.limits"))?,
        };
        let mut unset = Vec::new();
        let mut value = toml::Value::Table(table);
        substitute(&mut value, env, &mut unset).with_context(|| at.clone())?;
        if !enabled {
            tracing::info!(account = %id, %kind, "account disabled in config");
            continue;
        }
        if !unset.is_empty() && missing == MissingSecrets::Disable {
            disabled.push(DisabledAccount { id, kind, missing: unset });
            continue;
        }
        if kind == "web"
            && let toml::Value::Table(t) = &mut value
            && !t.contains_key("token_secret")
        {
            t.insert("token_secret".into(), toml::Value::String(web_secret()?));
        }
        let settings = serde_json::to_value(&value).with_context(|| at.clone())?;
        let adapter = match factory.build(&id, settings) {
            Ok(adapter) => adapter,
            // A placeholder may not be a valid value (a numeric id): the account is left out.
            Err(_) if !unset.is_empty() => {
                disabled.push(DisabledAccount { id, kind, missing: unset });
                continue;
            }
            Err(e) => bail!("{at}: {e}"),
        };
        accounts.push(LoadedAccount { id, kind, adapter, limits });
    }
    Ok(Config {
        fetch: FetchPolicy { allow },
        retention,
        queue,
        accounts,
        disabled,
        push,
        metrics_token,
        metrics_listen,
    })
}

/// A top-level section with `${ENV}` substituted; an unset variable is an error naming it (a
/// section has no account to disable, and going on without its secret would be unsafe).
fn section<T: serde::de::DeserializeOwned>(
    table: toml::Table,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T> {
    let mut value = toml::Value::Table(table);
    let mut unset = Vec::new();
    substitute(&mut value, env, &mut unset).with_context(|| name.to_owned())?;
    if !unset.is_empty() {
        bail!("[{name}] references unset environment variables: {}", unset.join(", "));
    }
    value.try_into().with_context(|| format!("[{name}]"))
}

/// `[core]` as push settings (`None` without `push_url`).
fn core_section(
    table: toml::Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<chatgate_server::PushSettings>> {
    let core: CoreSection = section(table, "core", env)?;
    let Some(raw) = core.push_url else {
        if core.push_secret.is_some() {
            bail!("core.push_secret is set without core.push_url");
        }
        return Ok(None);
    };
    let url: url::Url = raw.parse().with_context(|| "core.push_url is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("core.push_url must be an http(s) URL");
    }
    let secret = core.push_secret.context("core.push_secret is required with core.push_url")?;
    if secret.len() < 16 {
        bail!("core.push_secret must be at least 16 characters");
    }
    let mut push = chatgate_server::PushSettings::new(url, secret);
    if let Some(batch) = core.push_batch {
        if !(1..=chatgate_server::push::MAX_BATCH).contains(&batch) {
            bail!("core.push_batch must be 1..={}, not {batch}", chatgate_server::push::MAX_BATCH);
        }
        push.batch = batch;
    }
    let seconds = |v: Option<f64>, key: &str| -> Result<Option<std::time::Duration>> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(std::time::Duration::from_secs_f64(s))),
            Some(s) => bail!("core.{key} must be a positive number of seconds, not {s}"),
        }
    };
    if let Some(t) = seconds(core.push_timeout_seconds, "push_timeout_seconds")? {
        push.timeout = t;
    }
    if let Some(t) = seconds(core.push_max_backoff_seconds, "push_max_backoff_seconds")? {
        push.max_backoff = t.max(push.base_backoff);
    }
    Ok(Some(push))
}

/// The `[queue]` backend; NATS secrets must be set (a gateway never runs with a placeholder).
fn queue_backend(
    q: &QueueSection,
    retention: std::time::Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<QueueBackend> {
    use chatgate_queue_nats::{NatsAuth, NatsOptions, NatsTls};
    let nats_only = [
        ("url", q.url.is_some()),
        ("token", q.token.is_some()),
        ("user", q.user.is_some()),
        ("password", q.password.is_some()),
        ("creds_file", q.creds_file.is_some()),
        ("tls", q.tls.is_some()),
        ("prefix", q.prefix.is_some()),
        ("replicas", q.replicas.is_some()),
        ("lease_seconds", q.lease_seconds.is_some()),
        ("duplicate_window_seconds", q.duplicate_window_seconds.is_some()),
    ];
    match q.backend.as_deref().unwrap_or("sqlite") {
        "sqlite" => {
            if let Some((name, _)) = nats_only.iter().find(|(_, set)| *set) {
                bail!("queue.{name} applies to backend = \"nats\" only (the backend is sqlite)");
            }
            return Ok(QueueBackend::Sqlite);
        }
        "nats" => {}
        other => bail!("queue.backend must be \"sqlite\" or \"nats\", not `{other}`"),
    }
    let expand = |name: &str, raw: &str| -> Result<String> {
        let mut value = toml::Value::String(raw.to_owned());
        let mut unset = Vec::new();
        substitute(&mut value, env, &mut unset).with_context(|| format!("queue.{name}"))?;
        if !unset.is_empty() {
            bail!("queue.{name}: the environment variable(s) {} are not set", unset.join(", "));
        }
        Ok(value.as_str().unwrap_or_default().to_owned())
    };
    let urls = match &q.url {
        None => bail!("queue.url is required with backend = \"nats\" (e.g. \"nats://127.0.0.1:4222\")"),
        Some(toml::Value::String(u)) => vec![expand("url", u)?],
        Some(toml::Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().context("queue.url: every entry must be a string").and_then(|u| expand("url", u)))
            .collect::<Result<_>>()?,
        Some(_) => bail!("queue.url must be a string or a list of strings"),
    };
    let mut options = NatsOptions::new(String::new());
    options.urls = urls;
    options.retention = retention;
    options.auth = match (&q.token, &q.user, &q.password, &q.creds_file) {
        (None, None, None, None) => NatsAuth::None,
        (Some(t), None, None, None) => NatsAuth::Token(expand("token", t)?),
        (None, Some(u), Some(p), None) => {
            NatsAuth::UserPassword { user: expand("user", u)?, password: expand("password", p)? }
        }
        (None, None, None, Some(f)) => NatsAuth::CredsFile(expand("creds_file", f)?.into()),
        _ => bail!("queue: give one kind of NATS credentials: token, user + password, or creds_file"),
    };
    let tls_files = [&q.tls_ca_file, &q.tls_cert_file, &q.tls_key_file];
    if q.tls == Some(true) {
        let file = |name: &str, v: &Option<String>| v.as_deref().map(|f| expand(name, f).map(Into::into)).transpose();
        options.tls = Some(NatsTls {
            ca_file: file("tls_ca_file", &q.tls_ca_file)?,
            cert_file: file("tls_cert_file", &q.tls_cert_file)?,
            key_file: file("tls_key_file", &q.tls_key_file)?,
        });
    } else if tls_files.iter().any(|f| f.is_some()) {
        bail!("queue.tls_*_file needs queue.tls = true");
    }
    if let Some(p) = &q.prefix {
        options.prefix = p.clone();
    }
    if let Some(r) = q.replicas {
        if r != 1 && r != 3 {
            bail!("queue.replicas must be 1 or 3, not {r}");
        }
        options.replicas = r;
    }
    if let Some(s) = q.lease_seconds {
        if !(2..=300).contains(&s) {
            bail!("queue.lease_seconds must be between 2 and 300, not {s}");
        }
        options.lease_ttl = std::time::Duration::from_secs(s);
    }
    if let Some(s) = q.duplicate_window_seconds {
        let window = std::time::Duration::from_secs(s);
        if !chatgate_queue_nats::valid_duplicate_window(window) {
            bail!(
                "queue.duplicate_window_seconds must be between {} and {}, not {s}",
                chatgate_queue_nats::DUPLICATE_WINDOW_MIN.as_secs(),
                chatgate_queue_nats::DUPLICATE_WINDOW_MAX.as_secs()
            );
        }
        options.duplicate_window = window;
    }
    Ok(QueueBackend::Nats(Box::new(options)))
}

/// Replaces `${NAME}` in every string; records unset or empty variables (filled with a placeholder).
fn substitute(value: &mut toml::Value, env: &dyn Fn(&str) -> Option<String>, unset: &mut Vec<String>) -> Result<()> {
    match value {
        toml::Value::String(s) => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').with_context(|| format!("unclosed `${{` in `{s}`"))?;
                let name = &after[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    bail!("`${{{name}}}` is not a valid environment variable reference");
                }
                match env(name).filter(|v| !v.is_empty()) {
                    Some(v) => out.push_str(&v),
                    None => {
                        unset.push(name.to_owned());
                        // Letters and digits only, so that it passes the id-shape checks of
                        // settings (`normalize` builds accounts from it; it verifies and sends nothing).
                        out.push_str("unset");
                        out.extend(name.chars().filter(char::is_ascii_alphanumeric));
                    }
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(items) => {
            for item in items {
                substitute(item, env, unset)?;
            }
        }
        toml::Value::Table(t) => {
            for (_, v) in t.iter_mut() {
                substitute(v, env, unset)?;
            }
        }
        _ => {}
    }
    Ok(())
}
