//! The two servers under test, each run in a child process on the same runtime flavour:
//! a bare axum route, and chatgate with the real Telegram adapter and SQLite queue.

use std::io::{Read, Write};
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
use tokio::net::TcpListener;

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

/// Binds 127.0.0.1:0, prints the port on stdout, serves `app` with `TCP_NODELAY`.
async fn serve(app: Router) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding 127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{port}")?;
    stdout.flush()?;
    drop(stdout);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.context("serving")
}

/// Exits the process when stdin closes, that is when the parent benchmark is gone.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
}
