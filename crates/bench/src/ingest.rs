//! `chatgate-bench ingest`: how much of the durable-write limit chatgate reaches while it
//! verifies, parses and durably stores every webhook, then how fast a core reads the events back.
//!
//! ```text
//! cargo run --release -p chatgate-bench -- ingest --seconds 10 [--connections 64] [--warmup-seconds 2]
//! ```
//!
//! One run starts three servers, one after the other, each as a child process of this binary
//! (re-executed with a hidden subcommand) on the same multi-threaded tokio runtime:
//!
//! - **bare**: an axum router that reads the body of `POST /webhooks/telegram/bench` and answers
//!   200. It is the ceiling: what the HTTP stack alone costs on this machine.
//! - **limit**, the durable-write limit: the same axum stack, the same secret-token check, typed
//!   parse and normalisation as chatgate (the real Telegram adapter, the event serialised to
//!   JSON), then a group-commit append of the JSON line to one file with `fdatasync` before the
//!   200 (see [`crate::serve::limit`]). It is the floor every store-before-answer gateway pays on
//!   this disk; chatgate's goal is **≥ 0.9 × its requests/s with p99 ≤ 10 ms**.
//! - **chatgate**: the real [`chatgate_server::Gateway`] behind chatgate's own accept loop
//!   ([`chatgate_server::serve`]) with the real Telegram adapter and the real
//!   [`chatgate_queue::SqliteQueue`] in a temporary directory. Every 200 means the secret token
//!   was checked, the update was parsed into an event, and the event (with its dedup key and the
//!   chat's messaging window) was committed to SQLite and the WAL `fdatasync`ed before the
//!   answer left.
//!
//! All three get the same load: `--connections` keep-alive HTTP/1.1 connections, each sending a
//! realistic Telegram text-message update back to back, with a unique `update_id` per request so
//! nothing is deduplicated away. The first `--warmup-seconds` are not counted; then requests
//! that complete within `--seconds` are. The load generator runs on the same cores as the server.
//!
//! For each server it prints requests/s (2xx answers per second), p50 and p99 latency, the
//! errors (non-2xx answers and broken connections) and the server's resident memory (`VmRSS`,
//! and the peak `VmHWM`) at the end of the measured phase.
//!
//! Storage: for the limit, the log's bytes per event; for chatgate, the database and WAL sizes
//! at the end of the measured phase and the largest WAL seen during the run (sampled every
//! 20 ms: the WAL must stay bounded under sustained ingest), and the bytes per event of the
//! database once a final checkpoint has moved everything into it.
//!
//! Reading, on the chatgate server with its events still stored:
//! - `pull`: one client reads every stored event back through `GET /v1/events` in pages of 1,000,
//!   events/s (goal ≥ 100,000/s), and the server's memory after it;
//! - `push`: one core long-polls `GET /v1/events?wait=5` while webhooks arrive one at a time; the
//!   latency is from the webhook's 2xx reaching its sender to the event reaching the poller
//!   (zero when it arrived first), p50/p99 over `PUSH_SAMPLES` webhooks (goal p99 ≤ 5 ms).
//!
//! Then it checks durability, for the limit and for chatgate: the server is killed with SIGKILL
//! and what it stored is counted (the log's lines; the events in the SQLite file, opened after
//! the kill). Every acknowledged request (2xx, warm-up and probes included) must be there:
//! `stored=<n> acknowledged=<n> lost=<n>`; the exit code is non-zero if anything was lost.
//!
//! The last line gives the ratios: `chatgate/limit` (goal ≥ 0.9), `chatgate/bare` and
//! `limit/bare`. The load is a closed loop (a connection sends its next request when the
//! answer to the last one is in), so requests/s = connections ÷ mean latency. To tell storage
//! from CPU, run it again with `TMPDIR=/dev/shm`: the data directories are then on tmpfs, where
//! fsync costs nothing. On a shared machine other work shifts every figure by tens of percent:
//! compare the servers of one run, and runs made back to back.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::Memory;
use crate::child::ChildServer;
use crate::load::{self, Load, Report};
use crate::serve::{self, API_TOKEN, LIMIT_LOG, PATH, SECRET_TOKEN};

/// Webhooks sent one at a time to measure the push latency to a long-polling core.
const PUSH_SAMPLES: usize = 1000;
/// `update_id`s of the push probe start here, far above the load's.
const PUSH_FIRST_ID: u64 = 1 << 40;

pub fn run(load: &Load) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ingest: {} connections, {} s warm-up, {} s measured per server, {} byte bodies, {cores} cores, load average {}",
        load.connections,
        load.warmup.as_secs(),
        load.measure.as_secs(),
        load::body(1).len(),
        load_average(),
    );
    let runtime = serve::runtime()?;
    let mut failed = false;

    let bare = ChildServer::spawn("bare", &["serve-bare".as_ref()])?;
    let (bare_report, bare_memory) = measure(&runtime, &bare, load, || {})?;
    bare.kill()?;
    println!("bare      {}  {}", bare_report.summary(), bare_memory);

    let limit_dir = tempfile::tempdir().context("creating the limit's data directory")?;
    let limit =
        ChildServer::spawn("limit", &["serve-limit".as_ref(), "--data-dir".as_ref(), limit_dir.path().as_os_str()])?;
    let (limit_report, limit_memory) = measure(&runtime, &limit, load, || {})?;
    limit.kill()?;
    println!("limit     {}  {}", limit_report.summary(), limit_memory);
    let log = limit_dir.path().join(LIMIT_LOG);
    let (lines, log_bytes) = count_lines(&log)?;
    failed |= !durability("limit", lines, limit_report.acknowledged, limit_report.transport_errors);
    println!("limit     storage: log={} bytes_per_event={:.0}", mib(log_bytes), per(log_bytes, lines));
    limit_dir.close().context("removing the limit's data directory")?;

    let dir = tempfile::tempdir().context("creating chatgate's data directory")?;
    let db = dir.path().join("chatgate.db");
    let wal = dir.path().join("chatgate.db-wal");
    let chatgate =
        ChildServer::spawn("chatgate", &["serve-chatgate".as_ref(), "--data-dir".as_ref(), dir.path().as_os_str()])?;
    let largest_wal = WalWatch::start(wal.clone());
    let mut at_end = (0, 0);
    let (report, memory) = measure(&runtime, &chatgate, load, || at_end = (file_len(&db), file_len(&wal)))?;
    let wal_max = largest_wal.stop();
    println!("chatgate  {}  {}", report.summary(), memory);
    match runtime.block_on(queue_metrics(chatgate.port)) {
        Ok(q) => println!("{q}"),
        Err(e) => println!("queue     (no metrics: {e:#})"),
    }
    println!(
        "chatgate  storage at the end of the load: db={} wal={} wal_max={}",
        mib(at_end.0),
        mib(at_end.1),
        mib(wal_max)
    );

    let pull = runtime.block_on(pull_all(chatgate.port))?;
    let pull_memory = Memory::read(chatgate.pid())?;
    println!(
        "pull      events={} in {:.2}s: events/s={:.0} (pages of 1000, one client)  rss={:.1}MiB",
        pull.events,
        pull.elapsed.as_secs_f64(),
        pull.events as f64 / pull.elapsed.as_secs_f64().max(1e-9),
        pull_memory.rss_mib(),
    );
    let push = runtime.block_on(push_latency(chatgate.port, pull.last_seq))?;
    println!("push      {}", push.summary());

    // SIGKILL, not a clean shutdown: whatever was acknowledged must already be on disk.
    chatgate.kill()?;
    let stored = count_stored(&db)?;
    failed |= !durability("chatgate", stored, report.acknowledged + push.acknowledged, report.transport_errors);
    let checkpointed = checkpoint(&db)?;
    println!(
        "chatgate  storage: db={} after a full checkpoint, bytes_per_event={:.0}",
        mib(checkpointed),
        per(checkpointed, stored)
    );
    dir.close().context("removing chatgate's data directory")?;

    let rate = |r: &Report| r.requests_per_second();
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    println!(
        "ratio chatgate/limit={:.3} chatgate/bare={:.3} limit/bare={:.3}",
        ratio(rate(&report), rate(&limit_report)),
        ratio(rate(&report), rate(&bare_report)),
        ratio(rate(&limit_report), rate(&bare_report)),
    );
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Loads `server` and samples its memory at the end of the measured phase; `at_end` runs then too.
fn measure(
    runtime: &tokio::runtime::Runtime,
    server: &ChildServer,
    load: &Load,
    at_end: impl FnOnce(),
) -> anyhow::Result<(Report, MemoryLine)> {
    let pid = server.pid();
    let mut memory = None;
    let report = runtime.block_on(load::run(server.port, load, || {
        memory = Some(Memory::read(pid));
        at_end();
    }))?;
    let memory = memory.context("the measured phase did not end")??;
    Ok((report, MemoryLine(memory)))
}

struct MemoryLine(Memory);

impl std::fmt::Display for MemoryLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rss={:.1}MiB hwm={:.1}MiB", self.0.rss_mib(), self.0.hwm_mib())
    }
}

/// Prints the durability line; false when something acknowledged is missing (or more is stored
/// than was sent).
pub(crate) fn durability(name: &str, stored: u64, acknowledged: u64, transport_errors: u64) -> bool {
    let lost = acknowledged.saturating_sub(stored);
    // A request whose connection broke may have been stored without its 200 reaching us.
    let unacknowledged = stored.saturating_sub(acknowledged);
    print!("{name:<9} stored={stored} acknowledged={acknowledged} lost={lost}");
    if unacknowledged > 0 {
        print!(" stored_without_ack={unacknowledged}");
    }
    println!();
    if lost != 0 {
        eprintln!("{name} acknowledged {lost} requests it did not store");
        return false;
    }
    if unacknowledged > transport_errors {
        eprintln!("{name} stored {unacknowledged} events nobody sent");
        return false;
    }
    true
}

/// The largest size a file reached, sampled every 20 ms on a thread of its own.
struct WalWatch {
    stop: Arc<AtomicBool>,
    largest: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl WalWatch {
    fn start(path: std::path::PathBuf) -> WalWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let largest = Arc::new(AtomicU64::new(0));
        let (s, l) = (stop.clone(), largest.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                l.fetch_max(file_len(&path), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        WalWatch { stop, largest, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.largest.load(Ordering::Relaxed)
    }
}

pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(crate) fn per(bytes: u64, events: u64) -> f64 {
    if events == 0 { 0.0 } else { bytes as f64 / events as f64 }
}

/// The 1-minute load average, to judge how busy the machine was.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Lines in the limit's log (one per stored event) and the bytes they take (up to the last
/// newline; the preallocated rest is zeros).
fn count_lines(path: &Path) -> anyhow::Result<(u64, u64)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut lines, mut read, mut used) = (0, 0, 0);
    loop {
        let n = file.read(&mut buffer).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok((lines, used));
        }
        lines += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        if let Some(last) = buffer[..n].iter().rposition(|&b| b == b'\n') {
            used = read + last as u64 + 1;
        }
        read += n as u64;
    }
}

/// Counts the events in a (killed) chatgate's database, opened read-only.
pub(crate) fn count_stored(path: &Path) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).context("counting stored events")?;
    Ok(n as u64)
}

/// Moves the whole WAL into the (killed) chatgate's database; returns the database's size.
pub(crate) fn checkpoint(path: &Path) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).context("checkpointing")?;
    drop(conn);
    Ok(file_len(path))
}

/// A reader of chatgate's `/metrics`: the value of each unlabelled metric by name.
pub(crate) async fn metrics(port: u16) -> anyhow::Result<impl Fn(&str) -> anyhow::Result<f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n").await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(move |name: &str| -> anyhow::Result<f64> {
        let line = text.lines().find(|l| l.split(' ').next() == Some(name)).with_context(|| format!("no {name}"))?;
        let number = line.rsplit(' ').next().unwrap_or_default();
        number.parse().with_context(|| format!("{name}: `{number}`"))
    })
}

/// The queue's group-commit figures from chatgate's `/metrics`, warm-up included.
async fn queue_metrics(port: u16) -> anyhow::Result<String> {
    let value = metrics(port).await?;
    let batches = value("chatgate_queue_batches_total")?;
    let commands = value("chatgate_queue_commands_total")?;
    let fsyncs = value("chatgate_queue_fsyncs_total")?;
    let fsync_seconds = value("chatgate_queue_fsync_seconds_total")?;
    let log_bytes = value("chatgate_queue_log_bytes_total")?;
    let checkpoints = value("chatgate_queue_writer_checkpoints_total")?;
    let checkpoint_seconds = value("chatgate_queue_writer_checkpoint_seconds_total")?;
    Ok(format!(
        "queue     batches={batches} avg_batch={:.1} fsyncs={fsyncs} avg_fsync_ms={:.3} wal_bytes_per_commit={:.0} wal_bytes_per_command={:.0} writer_checkpoints={checkpoints} avg_ms={:.2} total_s={checkpoint_seconds:.2}",
        commands / batches.max(1.0),
        fsync_seconds * 1000.0 / fsyncs.max(1.0),
        log_bytes / batches.max(1.0),
        log_bytes / commands.max(1.0),
        checkpoint_seconds * 1000.0 / checkpoints.max(1.0),
    ))
}

/// One keep-alive HTTP/1.1 client connection to the server under test.
pub(crate) struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    pub(crate) async fn connect(port: u16) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Client { sender, host: format!("127.0.0.1:{port}") })
    }

    /// `GET /v1/events?…` with the API token; the body of a 200.
    pub(crate) async fn events(&mut self, query: &str) -> anyhow::Result<Bytes> {
        let request = Request::get(format!("/v1/events?{query}"))
            .header(HOST, &self.host)
            .header(AUTHORIZATION, format!("Bearer {API_TOKEN}"))
            .body(Full::new(Bytes::new()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status.is_success(), "GET /v1/events answered {status}");
        Ok(body)
    }

    /// One Telegram webhook with `update_id` `id`; whether it was answered 2xx.
    async fn webhook(&mut self, id: u64) -> anyhow::Result<bool> {
        let request = Request::post(PATH)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header("x-telegram-bot-api-secret-token", SECRET_TOKEN)
            .body(Full::new(Bytes::from(load::body(id))))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status.is_success())
    }
}

/// A page of `/v1/events`: how many events it held and its `next_after`.
pub(crate) fn page(body: &[u8]) -> anyhow::Result<(u64, u64)> {
    let text = std::str::from_utf8(body).context("the events page is not UTF-8")?;
    let events = text.matches("{\"seq\":").count() as u64;
    let next = text
        .rsplit_once("\"next_after\":")
        .and_then(|(_, tail)| tail.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .with_context(|| {
            format!("no next_after in the events page ending `{}`", &text[text.len().saturating_sub(60)..])
        })?;
    Ok((events, next))
}

struct Pull {
    events: u64,
    elapsed: Duration,
    last_seq: u64,
}

/// Reads every stored event from the start in pages of 1,000.
async fn pull_all(port: u16) -> anyhow::Result<Pull> {
    let mut client = Client::connect(port).await?;
    let started = Instant::now();
    let (mut after, mut events) = (0, 0);
    loop {
        let (n, next) = page(&client.events(&format!("after={after}&limit=1000")).await?)?;
        if n == 0 {
            return Ok(Pull { events, elapsed: started.elapsed(), last_seq: after });
        }
        events += n;
        after = next;
    }
}

struct Push {
    latencies_us: Vec<u32>,
    acknowledged: u64,
}

impl Push {
    fn summary(&self) -> String {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
            sorted.get(rank).map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        format!(
            "webhook 2xx -> long-poll: p50={:.2}ms p99={:.2}ms max={:.2}ms (samples={}, one webhook at a time, no other load)",
            at(0.5),
            at(0.99),
            at(1.0),
            sorted.len()
        )
    }
}

/// Sends [`PUSH_SAMPLES`] webhooks one at a time while one core long-polls from `after`.
async fn push_latency(port: u16, after: u64) -> anyhow::Result<Push> {
    // How many events the poller has received, and when the last ones arrived.
    let (seen_tx, mut seen) = watch::channel((0u64, Instant::now()));
    let mut poller = Client::connect(port).await?;
    let polling = tokio::spawn(async move {
        let (mut after, mut total) = (after, 0);
        loop {
            let (n, next) = page(&poller.events(&format!("after={after}&limit=1000&wait=5")).await?)?;
            let arrived = Instant::now();
            if n > 0 {
                total += n;
                after = next;
                if seen_tx.send((total, arrived)).is_err() {
                    return anyhow::Ok(());
                }
            }
            if seen_tx.is_closed() {
                return anyhow::Ok(());
            }
        }
    });
    let mut sender = Client::connect(port).await?;
    let mut push = Push { latencies_us: Vec::with_capacity(PUSH_SAMPLES), acknowledged: 0 };
    for i in 0..PUSH_SAMPLES as u64 {
        if !sender.webhook(PUSH_FIRST_ID + i).await? {
            anyhow::bail!("a push probe webhook was refused");
        }
        let acked = Instant::now();
        push.acknowledged += 1;
        let (_, arrived) = *tokio::time::timeout(Duration::from_secs(5), seen.wait_for(|(n, _)| *n > i))
            .await
            .context("the event did not reach the long-poll within 5 s")?
            .context("the poller stopped")?;
        let micros = arrived.saturating_duration_since(acked).as_micros();
        push.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(seen);
    polling.abort();
    Ok(push)
}
