//! Connecting to NATS and creating or checking the streams and buckets at start.
//!
//! A stream or bucket that exists is checked against the settings and not changed: a
//! different replica count, storage or retention is refused with an error naming the setting,
//! because silently living with it would break a promise (replicas = 3 that are really 1) or
//! drop data (a shorter retention). The one exception is the events stream's duplicate window:
//! one shorter than `duplicate_window` is widened to it (a longer one is kept: the repair sweep,
//! which runs every quarter of the configured window, is then well inside it too).

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::keys::valid_prefix;
use chatgate_queue::QueueError;

/// How to reach NATS and how to lay out chatgate's streams and buckets there.
#[derive(Clone)]
pub struct NatsOptions {
    /// One or more servers (`nats://host:port`, `tls://host:port`); the client fails over between them.
    pub urls: Vec<String>,
    pub auth: NatsAuth,
    /// TLS: required when set; a CA file for the servers' certificates and an optional client certificate.
    pub tls: Option<NatsTls>,
    /// Names of streams, buckets and subjects start with it (`[A-Za-z0-9_-]`, up to 32 characters).
    pub prefix: String,
    /// Copies of every stream and bucket: 1 (a single server, which must run with
    /// `sync_interval: always`) or 3 (a cluster of at least 3 JetStream servers).
    pub replicas: usize,
    /// How long events and dedup keys are kept (at least 7 days: providers redeliver that long).
    pub retention: Duration,
    /// JetStream's own duplicate window on the events stream: it catches a redelivery between
    /// publishing an event and writing its dedup key, until the repair sweep (every quarter of
    /// it) has written the key (see ARCHITECTURE.md). Within [`DUPLICATE_WINDOW_MIN`] and
    /// [`DUPLICATE_WINDOW_MAX`].
    pub duplicate_window: Duration,
    /// How long a chat's delivery lease lasts without renewal: the bound on a takeover.
    pub lease_ttl: Duration,
    /// The name this instance gives itself on leases (unique per process).
    pub instance: String,
}

impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("urls", &self.urls)
            .field("auth", &self.auth.kind())
            .field("tls", &self.tls.is_some())
            .field("prefix", &self.prefix)
            .field("replicas", &self.replicas)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl NatsOptions {
    /// Defaults for one server at `url`: prefix `chatgate`, one replica, 7 days of retention.
    pub fn new(url: impl Into<String>) -> NatsOptions {
        NatsOptions {
            urls: vec![url.into()],
            auth: NatsAuth::None,
            tls: None,
            prefix: "chatgate".into(),
            replicas: 1,
            retention: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            lease_ttl: Duration::from_secs(10),
            instance: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
        }
    }
}

/// The shortest duplicate window: the sweep runs every quarter of it, each run a few requests.
pub const DUPLICATE_WINDOW_MIN: Duration = Duration::from_secs(2);
/// The longest duplicate window: JetStream keeps every message id of the window in memory.
pub const DUPLICATE_WINDOW_MAX: Duration = Duration::from_secs(3600);

/// Whether `window` is a duplicate window chatgate accepts.
pub fn valid_duplicate_window(window: Duration) -> bool {
    (DUPLICATE_WINDOW_MIN..=DUPLICATE_WINDOW_MAX).contains(&window)
}

/// Credentials for NATS (values come from `${ENV}` references in the config; never logged).
#[derive(Clone, Default)]
pub enum NatsAuth {
    #[default]
    None,
    Token(String),
    UserPassword {
        user: String,
        password: String,
    },
    /// A `.creds` file (JWT + NKey seed).
    CredsFile(PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        f.write_str(self.kind())
    }
}

impl NatsAuth {
    fn kind(&self) -> &'static str {
        match self {
            NatsAuth::None => "none",
            NatsAuth::Token(_) => "token",
            NatsAuth::UserPassword { .. } => "user_password",
            NatsAuth::CredsFile(_) => "creds_file",
        }
    }
}

/// TLS to the NATS servers.
#[derive(Debug, Clone, Default)]
pub struct NatsTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// The names of everything chatgate keeps on NATS, from the prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) prefix: String,
    pub(crate) events_stream: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        Names { prefix: prefix.to_owned(), events_stream: format!("{prefix}_EVENTS") }
    }

    pub(crate) fn bucket(&self, role: &str) -> String {
        format!("{}_{role}", self.prefix)
    }

    /// `<prefix>.events.>`: every event.
    pub(crate) fn events_subjects(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// `<prefix>.events.<channel>.<account>`: the subject of one account's events.
    pub(crate) fn events_subject(&self, channel: &str, account: &str) -> String {
        format!("{}.events.{}.{}", self.prefix, crate::keys::token(channel), crate::keys::token(account))
    }

    /// `<prefix>.outbound`: where the core may submit outbound messages by request.
    pub fn outbound_subject(&self) -> String {
        format!("{}.outbound", self.prefix)
    }
}

/// Every KV bucket role, whether its entries expire with the retention (that long after their
/// last write), and what it holds. A message is written at every change and given up after a day
/// at most, so an unfinished one never goes unwritten for the retention (at least 7 days); a
/// finished one, its idempotency key and external ids go that long after it finished, as on
/// SQLite. Blocks, holds, leases, cursors and visitor streams never expire (a visitor's item
/// numbers must never repeat).
pub(crate) const BUCKETS: &[(&str, bool)] = &[
    ("dedup", true),        // inbound dedup keys -> event seq
    ("msgs", true),         // outbound message id -> its state (request, status, history, parts)
    ("pending", false),     // ids of messages whose delivery is not finished
    ("chatpending", false), // chat -> ids of its unfinished messages
    ("idem", true),         // channel/account/idempotency key -> message id
    ("extids", true),       // channel/account/external id -> message id
    ("chats", true),        // chat -> its sent, not yet read messages (for watermark receipts)
    ("windows", true),      // chat -> when the customer last wrote
    ("blocks", false),      // blocked customers
    ("holds", false),       // channel/account -> a provider's wait for the whole account
    ("visitors", false),    // web visitor streams and profiles
    ("leases", false),      // chat -> the instance delivering it, until when
    ("cursors", false),     // named cursors over the event log (push delivery's position)
    ("senders", false),     // instance -> the accounts it sends for, until when (rate shares)
];

pub(crate) fn storage(e: impl std::fmt::Display) -> QueueError {
    QueueError::Storage(format!("nats: {e}"))
}

pub(crate) async fn connect(o: &NatsOptions) -> Result<async_nats::Client, QueueError> {
    let setting = |name: &str, why: String| QueueError::Storage(format!("queue.{name}: {why}"));
    if !valid_prefix(&o.prefix) {
        return Err(setting("prefix", format!("`{}` must be 1 to 32 characters of [A-Za-z0-9_-]", o.prefix)));
    }
    if o.replicas != 1 && o.replicas != 3 {
        return Err(setting("replicas", format!("must be 1 or 3, not {}", o.replicas)));
    }
    if o.retention < Duration::from_secs(7 * 24 * 3600) {
        return Err(setting("retention_days", "must be at least 7 (providers redeliver for up to 7 days)".into()));
    }
    if !valid_duplicate_window(o.duplicate_window) {
        return Err(setting(
            "duplicate_window_seconds",
            format!(
                "must be between {} and {} seconds, not {:?}",
                DUPLICATE_WINDOW_MIN.as_secs(),
                DUPLICATE_WINDOW_MAX.as_secs(),
                o.duplicate_window
            ),
        ));
    }
    if o.urls.is_empty() {
        return Err(setting("url", "name at least one NATS server".into()));
    }
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("chatgate {}", o.instance))
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)));
    options = match &o.auth {
        NatsAuth::None => options,
        NatsAuth::Token(t) => options.token(t.clone()),
        NatsAuth::UserPassword { user, password } => options.user_and_password(user.clone(), password.clone()),
        NatsAuth::CredsFile(path) => options
            .credentials_file(path)
            .await
            .map_err(|e| setting("creds_file", format!("reading {}: {e}", path.display())))?,
    };
    if let Some(tls) = &o.tls {
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => options = options.add_client_certificate(cert.clone(), key.clone()),
            (None, None) => {}
            _ => return Err(setting("tls", "cert_file and key_file go together".into())),
        }
    }
    options.connect(o.urls.as_slice()).await.map_err(|e| {
        let text = e.to_string();
        let servers = o.urls.join(", ");
        // Name the setting to fix: the credentials, the TLS trust, or else the address.
        if text.contains("authorization") || text.contains("authentication") {
            let name = match &o.auth {
                NatsAuth::None => "token",
                NatsAuth::Token(_) => "token",
                NatsAuth::UserPassword { .. } => "user",
                NatsAuth::CredsFile(_) => "creds_file",
            };
            let why = match &o.auth {
                NatsAuth::None => {
                    "the server requires credentials (queue.token, queue.user + queue.password, or queue.creds_file)"
                }
                _ => "the server refused the credentials",
            };
            setting(name, format!("{why} at {servers}: {text}"))
        } else if text.contains("certificate") {
            setting("tls_ca_file", format!("the server's certificate at {servers} is not trusted: {text}"))
        } else {
            setting("url", format!("cannot connect to {servers}: {text}"))
        }
    })
}

/// Creates the events stream and every bucket, or checks the ones that exist.
pub(crate) async fn ensure(
    js: &jetstream::Context,
    names: &Names,
    o: &NatsOptions,
) -> Result<Vec<(String, kv::Store)>, QueueError> {
    let events = stream::Config {
        name: names.events_stream.clone(),
        subjects: vec![names.events_subjects()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: o.replicas,
        max_age: o.retention,
        duplicate_window: o.duplicate_window,
        allow_direct: true,
        description: Some("chatgate: the event log the core consumes (envelope v1 JSON)".into()),
        ..Default::default()
    };
    check_or_create_stream(js, events, o).await?;
    let mut stores = Vec::new();
    for (role, expires) in BUCKETS {
        let name = names.bucket(role);
        let config = kv::Config {
            bucket: name.clone(),
            history: 1,
            max_age: if *expires { o.retention } else { Duration::ZERO },
            storage: stream::StorageType::File,
            num_replicas: o.replicas,
            ..Default::default()
        };
        let store = match js.get_key_value(&name).await {
            Ok(store) => {
                let info = js.get_stream(format!("KV_{name}")).await.map_err(storage)?.cached_info().clone();
                check_existing(&info.config, o.replicas, config.max_age, &format!("bucket {name}"))?;
                if *expires && info.config.max_age.is_zero() {
                    // Made by a version that kept these entries forever: they now expire.
                    let mut updated = info.config.clone();
                    updated.max_age = config.max_age;
                    js.update_stream(&updated).await.map_err(|e| refused(o, &format!("bucket {name}"), e))?;
                    tracing::info!(bucket = %name, max_age = ?config.max_age, "entries of this bucket now expire after the retention");
                }
                store
            }
            Err(_) => js.create_key_value(config).await.map_err(|e| refused(o, &format!("bucket {name}"), e))?,
        };
        stores.push(((*role).to_owned(), store));
    }
    Ok(stores)
}

async fn check_or_create_stream(
    js: &jetstream::Context,
    config: stream::Config,
    o: &NatsOptions,
) -> Result<(), QueueError> {
    match js.get_stream(&config.name).await {
        Ok(mut s) => {
            let info = s.info().await.map_err(storage)?;
            check_existing(&info.config, o.replicas, config.max_age, &format!("stream {}", config.name))?;
            if info.config.subjects != config.subjects {
                return Err(QueueError::Storage(format!(
                    "queue.prefix: stream {} exists with subjects {:?}, expected {:?}",
                    config.name, info.config.subjects, config.subjects
                )));
            }
            if info.config.duplicate_window < config.duplicate_window {
                let was = info.config.duplicate_window;
                let widened = stream::Config { duplicate_window: config.duplicate_window, ..info.config.clone() };
                js.update_stream(&widened).await.map_err(|e| {
                    QueueError::Storage(format!(
                        "queue.duplicate_window_seconds: cannot widen the duplicate window of stream {} \
                         from {was:?} to {:?}: {e}",
                        config.name, config.duplicate_window
                    ))
                })?;
                tracing::info!(stream = %config.name, from = ?was, to = ?config.duplicate_window, "duplicate window widened");
            }
            Ok(())
        }
        Err(_) => {
            let name = config.name.clone();
            js.create_stream(config).await.map_err(|e| refused(o, &format!("stream {name}"), e))?;
            Ok(())
        }
    }
}

fn check_existing(config: &stream::Config, replicas: usize, max_age: Duration, what: &str) -> Result<(), QueueError> {
    if config.num_replicas != replicas {
        return Err(QueueError::Storage(format!(
            "queue.replicas: {what} exists with {} replicas, the config says {replicas}; \
             change the setting or move the data with the NATS tools",
            config.num_replicas
        )));
    }
    if config.storage != stream::StorageType::File {
        return Err(QueueError::Storage(format!(
            "queue.prefix: {what} exists in memory storage; chatgate needs file storage"
        )));
    }
    // Zero is "forever": longer than any retention.
    let kept = if config.max_age.is_zero() { Duration::MAX } else { config.max_age };
    let wanted = if max_age.is_zero() { Duration::MAX } else { max_age };
    if kept < wanted {
        return Err(QueueError::Storage(format!(
            "queue.retention_days: {what} keeps data for {:?}, shorter than the {:?} configured",
            config.max_age, max_age
        )));
    }
    Ok(())
}

fn refused(o: &NatsOptions, what: &str, e: impl std::fmt::Display) -> QueueError {
    let text = e.to_string();
    if o.replicas > 1 && (text.contains("replicas") || text.contains("insufficient") || text.contains("cluster")) {
        QueueError::Storage(format!(
            "queue.replicas = {}: NATS cannot create {what} with that many copies \
             (it needs a cluster of at least {} JetStream servers): {text}",
            o.replicas, o.replicas
        ))
    } else {
        QueueError::Storage(format!("nats: creating {what}: {text}"))
    }
}
