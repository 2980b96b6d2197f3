//! The servers under test, each run in a child process on the same runtime flavour:
//! a bare axum route, chatgate with the real Telegram adapter and SQLite queue (`ingest`), and
//! chatgate with one web widget account and its SQLite queue (`web`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use axum::serve::ListenerExt;
use bytes::Bytes;
use chatgate_adapter::ChannelFactory;
use chatgate_model::LimitOverrides;
use chatgate_queue::SqliteQueue;
use chatgate_server::{Gateway, Settings};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// The webhook path both servers answer.
pub const PATH: &str = "/webhooks/telegram/bench";
/// The Telegram secret token the bench account expects.
pub const SECRET_TOKEN: &str = "bench-secret";
/// The core-API bearer token of the bench gateway.
pub const API_TOKEN: &str = "bench-api-token";

/// The runtime of both servers and of the load generator: multi-threaded, one worker per core.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")
}

/// `serve-bare`: answers 200 to `POST PATH` after reading the body, nothing else.
pub fn bare() -> anyhow::Result<()> {
    exit_with_parent();
    runtime()?.block_on(async {
        let app = Router::new().route(
            PATH,
            post(|body: Bytes| async move {
                drop(body);
                StatusCode::OK
            }),
        );
        serve(app).await
    })
}

/// `serve-chatgate`: the real gateway with one Telegram account `bench` and its queue in `dir`.
pub fn chatgate(dir: &Path) -> anyhow::Result<()> {
    exit_with_parent();
    runtime()?.block_on(async {
        let settings = json!({
            "bot_token": "123456:bench-token",
            "secret_token": SECRET_TOKEN,
            // Nothing is sent during the benchmark; a closed port all the same.
            "api_base_url": "http://127.0.0.1:9",
        });
        let adapter =
            chatgate_channel_telegram::FACTORY.build("bench", settings).context("building the Telegram account")?;
        let queue = SqliteQueue::open(dir).context("opening the queue")?;
        let gateway =
            Gateway::start(vec![(adapter, LimitOverrides::default())], Arc::new(queue), Settings::new(API_TOKEN))
                .await
                .context("starting the gateway")?;
        serve(gateway.router()).await
    })
}

/// The web account's id in the `web` benchmark.
pub const WEB_ACCOUNT: &str = "bench";
/// The site the benchmark's visitors come from (the account's only allowed origin).
pub const WEB_ORIGIN: &str = "http://bench.example";

/// `serve-web`: the real gateway with one web widget account [`WEB_ACCOUNT`] and its queue and
/// files in `dir`, served with the peer address as `chatgate serve` does (the per-IP limits see it).
///
/// All benchmark visitors come from 127.0.0.1, so the widget's rate limits are raised far above
/// what they open (their defaults, 300 per IP per minute and 500 per widget per second, would
/// refuse most of 10,000 sessions): the benchmark measures streams, not the limiter.
pub fn web(dir: &Path) -> anyhow::Result<()> {
    exit_with_parent();
    raise_nofile_limit()?;
    runtime()?.block_on(async {
        let settings = json!({
            "public_url": "http://127.0.0.1:8080",
            "allowed_origins": [WEB_ORIGIN],
            "token_secret": "bench-web-token-secret-0000",
            "rate_limits": {
                "per_ip_per_minute": 10_000_000,
                "per_visitor_per_minute": 10_000,
                "per_widget_per_second": 1_000_000,
            },
        });
        let adapter = chatgate_channel_web::FACTORY.build(WEB_ACCOUNT, settings).context("building the web account")?;
        let queue = SqliteQueue::open(dir).context("opening the queue")?;
        let mut gateway_settings = Settings::new(API_TOKEN);
        gateway_settings.data_dir = Some(dir.to_owned());
        let gateway = Gateway::start(vec![(adapter, LimitOverrides::default())], Arc::new(queue), gateway_settings)
            .await
            .context("starting the gateway")?;
        let listener = bind().await?;
        let app = gateway.router().into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.context("serving")
    })
}

/// Raises this process's open-file limit (soft) to its hard limit: 10,000 streams are 10,000
/// sockets on each side.
pub fn raise_nofile_limit() -> anyhow::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")
}

/// Binds 127.0.0.1:0, prints the port on stdout, serves `app` with `TCP_NODELAY`.
pub async fn serve(app: Router) -> anyhow::Result<()> {
    axum::serve(bind().await?, app).await.context("serving")
}

/// Binds 127.0.0.1:0 and prints the port on stdout; accepted connections get `TCP_NODELAY`.
async fn bind() -> anyhow::Result<axum::serve::TapIo<TcpListener, fn(&mut TcpStream)>> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding 127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{port}")?;
    stdout.flush()?;
    drop(stdout);
    Ok(listener.tap_io(nodelay))
}

fn nodelay(tcp: &mut TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// Exits the process when stdin closes, that is when the parent benchmark is gone.
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
}
