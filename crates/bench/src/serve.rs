//! The servers under test, each run in a child process on the same runtime flavour:
//! a bare axum route, the durable-write limit (the same webhook work as chatgate, then a
//! group-commit `fdatasync` append to one file), chatgate with the real Telegram adapter and
//! SQLite queue behind its own accept loop (`ingest`), and chatgate with one web widget account
//! and its SQLite queue (`web`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use axum::serve::ListenerExt;
use bytes::Bytes;
use chatgate_adapter::{Adapter, ChannelFactory, WebhookRequest};
use chatgate_model::LimitOverrides;
use chatgate_queue::SqliteQueue;
use chatgate_server::{Gateway, Limits, Settings};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

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

/// The bench's Telegram account `bench`, the same in chatgate and in the durable-write limit.
fn telegram_account() -> anyhow::Result<Arc<dyn Adapter>> {
    let settings = json!({
        "bot_token": "123456:bench-token",
        "secret_token": SECRET_TOKEN,
        // Nothing is sent during the benchmark; a closed port all the same.
        "api_base_url": "http://127.0.0.1:9",
    });
    chatgate_channel_telegram::FACTORY.build("bench", settings).context("building the Telegram account")
}

/// `serve-chatgate`: the real gateway with one Telegram account `bench` and its queue in `dir`
/// (keeping events for `retention`, by default the queue's), behind chatgate's own accept loop
/// with its default limits, as `chatgate serve` runs it.
pub fn chatgate(dir: &Path, retention: Option<std::time::Duration>) -> anyhow::Result<()> {
    exit_with_parent();
    // The overload scenario opens thousands of connections.
    raise_nofile_limit()?;
    runtime()?.block_on(async {
        let retention = retention.unwrap_or(chatgate_queue::DEFAULT_RETENTION);
        let queue = SqliteQueue::open_with(dir, retention).context("opening the queue")?;
        let gateway = Gateway::start(
            vec![(telegram_account()?, LimitOverrides::default())],
            Arc::new(queue),
            Settings::new(API_TOKEN),
        )
        .await
        .context("starting the gateway")?;
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding 127.0.0.1:0")?;
        print_port(listener.local_addr()?.port())?;
        chatgate_server::serve(listener, gateway, Limits::default(), std::future::pending()).await.context("serving")
    })
}

/// The file the durable-write limit appends to, in its data directory.
pub const LIMIT_LOG: &str = "events.log";

/// `serve-limit`: the durable-write limit. Each `POST PATH` goes through the same secret check,
/// typed parse and normalisation as in chatgate (the real Telegram adapter, then the event
/// serialised to JSON); the JSON lines are appended to `dir/events.log` with group commit (see
/// [`GroupLog`]) and only once they are `fdatasync`ed does the request answer 200. Nothing
/// else: no dedup, no index, no reading back. Any store-before-answer gateway pays at least
/// this on the same disk.
pub fn limit(dir: &Path) -> anyhow::Result<()> {
    exit_with_parent();
    let adapter = telegram_account()?;
    let log = GroupLog::open(&dir.join(LIMIT_LOG))?;
    runtime()?.block_on(async {
        let app = Router::new().route(
            PATH,
            post(move |headers: HeaderMap, body: Bytes| {
                let (adapter, log) = (adapter.clone(), log.clone());
                async move {
                    let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body };
                    let inbound = match chatgate_adapter::webhook::receive(adapter.as_ref(), &request) {
                        Ok(inbound) => inbound,
                        Err(_) => return StatusCode::UNAUTHORIZED,
                    };
                    let mut lines = Vec::with_capacity(1024);
                    for item in &inbound.events {
                        if serde_json::to_writer(&mut lines, &item.event).is_err() {
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        lines.push(b'\n');
                    }
                    match log.append(lines).await {
                        Ok(()) => StatusCode::OK,
                        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                    }
                }
            }),
        );
        serve(app).await
    })
}

/// Bytes of zeros written into the log before serving: appends then overwrite blocks that are
/// already allocated and written, so an `fdatasync` flushes data only, never the file's size or
/// extents (which would make every sync commit the file system's journal). Past it the file
/// grows like any append-only file.
const LOG_PREALLOCATED: u64 = 512 << 20;

/// One append-only file with group commit, led by the requests themselves: an append adds its
/// lines to the pending buffer; if no flush is running, that request becomes the leader and
/// writes and `fdatasync`s everything pending (on its worker thread, with
/// [`tokio::task::block_in_place`]), answers those appends, and goes on while more arrived
/// meanwhile. No thread hand-off: the appends that wait during one sync go out with the next.
#[derive(Clone)]
struct GroupLog {
    file: Arc<std::fs::File>,
    pending: Arc<std::sync::Mutex<Pending>>,
}

#[derive(Default)]
struct Pending {
    buffer: Vec<u8>,
    waiting: Vec<oneshot::Sender<std::io::Result<()>>>,
    flushing: bool,
    /// Where the next write goes.
    at: u64,
}

impl GroupLog {
    fn open(path: &Path) -> anyhow::Result<GroupLog> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let zeros = vec![0u8; 1 << 20];
        for chunk in 0..LOG_PREALLOCATED / zeros.len() as u64 {
            file.write_all_at(&zeros, chunk * zeros.len() as u64)?;
        }
        file.sync_all().with_context(|| format!("preallocating {}", path.display()))?;
        Ok(GroupLog { file: Arc::new(file), pending: Arc::default() })
    }

    /// Returns once `lines` are on disk.
    async fn append(&self, lines: Vec<u8>) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.buffer.extend_from_slice(&lines);
            p.waiting.push(tx);
            !std::mem::replace(&mut p.flushing, true)
        };
        if !lead {
            return rx.await.map_err(|_| std::io::Error::other("the flushing request went away"))?;
        }
        let mut buffer = Vec::with_capacity(1 << 16);
        let mut waiting = Vec::with_capacity(64);
        loop {
            let at = {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if p.waiting.is_empty() {
                    p.flushing = false;
                    break;
                }
                std::mem::swap(&mut p.buffer, &mut buffer);
                std::mem::swap(&mut p.waiting, &mut waiting);
                let at = p.at;
                p.at += buffer.len() as u64;
                at
            };
            let file = &self.file;
            let done = tokio::task::block_in_place(|| file.write_all_at(&buffer, at).and_then(|()| file.sync_data()));
            for reply in waiting.drain(..) {
                let _ = reply.send(done.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string())));
            }
            buffer.clear();
        }
        rx.await.map_err(|_| std::io::Error::other("the log went away"))?
    }
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
    print_port(listener.local_addr()?.port())?;
    Ok(listener.tap_io(nodelay))
}

/// The first line of a child server's stdout: its port (see [`crate::child`]).
pub(crate) fn print_port(port: u16) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{port}")?;
    stdout.flush()?;
    Ok(())
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
