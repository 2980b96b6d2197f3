//! The axum application: webhook routes, the core-facing API under `/v1`, and the outbound
//! delivery engine. This is the only crate that knows routes and HTTP status codes.
//!
//! Build a [`Gateway`] from adapters, a [`chatgate_queue::Queue`] and settings, then serve
//! [`Gateway::router`].

mod accounts;
mod api;
mod blocks;
mod delivery;
mod error;
pub mod fetch;
mod health;
pub mod metrics;
pub mod openapi;
pub mod push;
pub mod record;
mod rich;
pub mod serve;
mod web;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get};
use chatgate_adapter::{Adapter, Secret};
use chatgate_model::limits::LimitOverrides;
use chatgate_queue::Queue;

pub use accounts::{Account, Accounts};
pub use api::{Accepted, AccountInfo, AccountList, BlockState, ConversationState, MessagingWindow};
pub use error::ApiError;
pub use fetch::{FetchPolicy, Fetcher};
pub use metrics::MetricsSettings;
pub use push::PushSettings;
pub use serve::{ConnectionStats, Limits, serve};

/// Webhooks that may wait for the store at once, by default (see [`Settings::max_pending_webhooks`]).
///
/// The writer commits a few tens of thousands of events a second on a small machine, so 256
/// waiting webhooks are ≈ 10 ms of work: a webhook admitted past the bound would wait longer than
/// the ingest p99 goal (issue #14), while one answered 503 is retried by its provider.
pub const DEFAULT_MAX_PENDING_WEBHOOKS: usize = 256;

/// Settings of the HTTP app and the delivery engine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The bearer token of the core API.
    pub api_token: Secret,
    /// Which private addresses attachment downloads may reach.
    pub fetch: FetchPolicy,
    /// How long delivery keeps retrying a message before it fails with `retries_exhausted`.
    pub max_retry_age: Duration,
    /// The first retry delay after a transient error; doubles each time up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Where the web channel keeps visitor uploads and operator files (`{data_dir}/web-files`);
    /// `None`: a folder under the system's temporary directory.
    pub data_dir: Option<std::path::PathBuf>,
    /// `serve --record DIR`: authentic webhooks are written here, redacted (see [`record`]).
    pub record_dir: Option<std::path::PathBuf>,
    /// Push delivery to the core (`[core] push_url`); `None`: the core pulls only.
    pub push: Option<PushSettings>,
    /// Who may read `/metrics`, and whether it is on the main listener.
    pub metrics: MetricsSettings,
    /// Authentic webhooks that may wait for the store at once; past it a webhook is answered
    /// 503 `overloaded` with `Retry-After` at once, nothing stored (the provider retries).
    /// At least 1.
    pub max_pending_webhooks: usize,
}

impl Settings {
    pub fn new(api_token: impl Into<String>) -> Settings {
        Settings {
            api_token: Secret::new(api_token),
            fetch: FetchPolicy::default(),
            max_retry_age: Duration::from_secs(24 * 3600),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            data_dir: None,
            record_dir: None,
            push: None,
            metrics: MetricsSettings::default(),
            max_pending_webhooks: DEFAULT_MAX_PENDING_WEBHOOKS,
        }
    }
}

/// Everything the handlers and workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub accounts: Accounts,
    pub queue: Arc<dyn Queue>,
    pub blocks: blocks::Blocks,
    pub settings: Settings,
    pub delivery: delivery::DeliveryEngine,
    /// What the gateway remembers of the buttons and feedback requests it sent.
    pub rich: rich::Rich,
    pub web: web::Web,
    /// Connection figures of [`serve`], for `/metrics`.
    pub connections: Arc<ConnectionStats>,
    /// Becomes true when shutdown begins; long-polls answer at once.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// `serve --record`: the writer of redacted recordings of authentic webhooks.
    pub recorder: Option<record::Recorder>,
    /// Histograms and the pull position, for `/metrics`.
    pub metrics: metrics::Metrics,
    /// Push delivery to the core.
    pub push: push::Push,
    /// `/readyz`'s last store probe.
    pub probe: health::Probe,
    /// One permit per webhook waiting for the store ([`Settings::max_pending_webhooks`]).
    pub admission: tokio::sync::Semaphore,
}

/// A running gateway: routes plus the delivery engine.
#[derive(Debug, Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    /// Wires adapters (with their limit overrides) to the queue, loads blocks and resumes
    /// delivery of every message that was queued before a restart.
    pub async fn start(
        adapters: Vec<(Arc<dyn Adapter>, LimitOverrides)>,
        queue: Arc<dyn Queue>,
        settings: Settings,
    ) -> Result<Gateway, chatgate_queue::QueueError> {
        let accounts = Accounts::new(adapters);
        let blocks = blocks::Blocks::load(queue.as_ref()).await?;
        let fetcher = Fetcher::new(settings.fetch.clone());
        let files_dir = match &settings.data_dir {
            Some(dir) => dir.join("web-files"),
            None => std::env::temp_dir().join(format!("chatgate-web-files-{}", std::process::id())),
        };
        let web = web::Web::start(&accounts, queue.clone(), web::files::Files::new(files_dir));
        let recorder = settings.record_dir.clone().map(record::Recorder::start);
        let push = push::Push::new(settings.push.clone());
        let metrics = metrics::Metrics::new(&accounts);
        let admission = tokio::sync::Semaphore::new(settings.max_pending_webhooks.max(1));
        let shared = Arc::new_cyclic(|weak| Shared {
            accounts,
            queue,
            blocks,
            web,
            delivery: delivery::DeliveryEngine::new(weak.clone(), fetcher),
            rich: rich::Rich::default(),
            settings,
            connections: Arc::default(),
            shutdown: tokio::sync::watch::Sender::new(false),
            recorder,
            metrics,
            push,
            probe: health::Probe::default(),
            admission,
        });
        shared.delivery.resume().await?;
        push::Push::start(&shared);
        Ok(Gateway { shared })
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        // The `/v1` routes are listed in `api::routes`, which the OpenAPI drift test reads.
        let v1 = api::routes()
            .into_iter()
            .fold(Router::new(), |router, (path, route)| router.route(path, route))
            .layer(axum::middleware::from_fn_with_state(self.shared.clone(), api::require_token));
        let webhooks = Router::new()
            .route("/webhooks/{channel}/{account}", any(webhook::handle))
            .layer(axum::middleware::from_fn_with_state(self.shared.clone(), metrics::time_webhooks));
        let router = Router::new()
            .merge(webhooks)
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .nest("/v1", v1)
            .merge(web::router())
            .with_state(self.shared.clone());
        if self.shared.settings.metrics.separate_listener {
            router
        } else {
            router.merge(metrics::router(self.shared.clone()))
        }
    }

    /// Ends every open web visitor stream, so that a graceful shutdown does not wait for them
    /// (widgets resume from their last item when the gateway is back).
    pub fn close_visitor_streams(&self) {
        self.shared.web.hub.close_all();
    }

    /// How many web visitors have an open stream.
    pub fn open_visitor_streams(&self) -> usize {
        self.shared.web.hub.open_visitors()
    }

    /// Starts shutting down: open long-polls answer with what they have, new ones do not wait,
    /// open web visitor streams end (widgets resume from their last item when the gateway is
    /// back), and the delivery engine starts no new provider call.
    pub fn begin_shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        self.close_visitor_streams();
    }

    /// Waits until no provider call is under way; after [`Gateway::begin_shutdown`] none starts,
    /// and messages not yet sent stay queued for the next start.
    pub async fn drain_deliveries(&self) {
        self.shared.delivery.drain().await;
        // Push delivery stops at a batch boundary: a POST under way finishes and its cursor is stored.
        self.shared.push.drain().await;
    }

    /// The connection figures [`serve`] keeps (shown in `/metrics`).
    pub fn connection_stats(&self) -> Arc<ConnectionStats> {
        self.shared.connections.clone()
    }

    /// Authentic webhooks waiting for the store now (at most [`Settings::max_pending_webhooks`]).
    pub fn pending_webhooks(&self) -> usize {
        self.shared.settings.max_pending_webhooks.max(1) - self.shared.admission.available_permits()
    }

    /// The accounts this gateway serves.
    pub fn accounts(&self) -> &Accounts {
        &self.shared.accounts
    }
}
