//! Load benchmarks of chatgate, each against servers run as child processes of this binary.
//!
//! - `chatgate-bench web`: memory per connected idle web visitor and the push latency from
//!   `POST /v1/messages` to the visitor's stream; see [`web`] for what it does and prints.
//!
//!   ```text
//!   cargo run --release -p chatgate-bench -- web [--visitors 10000] [--messages 2000] [--senders 16]
//!   ```
//!
//!   One run on the 2-core development VM:
//!
//!   ```text
//!   visitors=10000 rss_before=24.4MiB rss_after=419.2MiB per_visitor=40.42KiB hwm=419.2MiB connected_in=2.7s
//!   push p50=15.08ms p99=541.29ms max=612.91ms rate=3050/s errors=0 (messages=2000 arrived=2000 refused=0 lost=0 misrouted=0 broken_streams=0)
//!   ```
//!
//! - `chatgate-bench nats`: the same ingest on the NATS backend, one and two instances, beside
//!   SQLite and bare axum, with ratios; see [`nats`].
//! - `chatgate-bench ingest`: how much of a bare web server's webhook throughput chatgate keeps
//!   while it verifies, parses and durably stores every request; the rest of this page.
//!
//! ```text
//! cargo run --release -p chatgate-bench -- ingest --seconds 10 [--connections 64] [--warmup-seconds 2]
//! ```
//!
//! One run starts two servers, one after the other, each as a child process of this binary
//! (re-executed with a hidden subcommand) on the same multi-threaded tokio runtime:
//!
//! - **bare**: an axum router that reads the body of `POST /webhooks/telegram/bench` and answers
//!   200. It is the ceiling: what the HTTP stack alone costs on this machine.
//! - **chatgate**: the real [`chatgate_server::Gateway`] with the real Telegram adapter and the
//!   real [`chatgate_queue::SqliteQueue`] in a temporary directory. Every 200 means the secret
//!   token was checked, the update was parsed into an event, and the event was committed to
//!   SQLite (WAL, group commit, `synchronous=NORMAL` with a syncer thread that `fdatasync`s the
//!   WAL before any answer: durability equal to `synchronous=FULL`) before the answer left.
//!
//! Both get the same load: `--connections` keep-alive HTTP/1.1 connections, each sending a
//! realistic Telegram text-message update (about 400 bytes) back to back, with a unique
//! `update_id` per request so nothing is deduplicated away. The first `--warmup-seconds` are not
//! counted; then requests that complete within `--seconds` are. The load generator runs on the
//! same cores as the server, as it does for both servers.
//!
//! For each server it prints requests/s (2xx answers per second), p50 and p99 latency, and the
//! errors (non-2xx answers and broken connections); for chatgate also its resident memory
//! (`VmRSS`, and the peak `VmHWM`) at the end of the measured phase.
//!
//! Then it checks durability: chatgate is killed with SIGKILL, its SQLite file is opened
//! read-only and the stored events are counted. Every acknowledged request (2xx, warm-up
//! included) must be there: `stored=<n> acknowledged=<n> lost=<n>`; the exit code is non-zero if
//! anything was lost.
//!
//! The last line is `ratio=<chatgate requests/s ÷ bare requests/s>`. Reading it: bare axum does
//! roughly 55–90k requests/s on a 2-core machine, and an fsync'ed group-commit append alone about
//! 20–35k, so a ratio near 1 is impossible for a store-before-answer gateway. The target for now
//! is **ratio ≥ 0.35 with `lost=0`**: chatgate's own work (auth, parse, serialise, the queue
//! hand-off) should cost no more than the storage it cannot avoid.
//!
//! To tell storage from CPU, run it again with `TMPDIR=/dev/shm`: the data directory is then
//! on tmpfs, where fsync costs nothing. The load is a closed loop (a connection sends its next
//! request when the answer to the last one is in), so requests/s = connections ÷ mean latency:
//! if the ratio rises a lot on tmpfs, the commit latency (fsync) dominates; if it does not,
//! chatgate's CPU per request does. The load
//! generator shares the cores with the server, and on a shared machine other work shifts both
//! figures by tens of percent: compare runs made back to back, more than once.

/// The same allocator as the `chatgate` binary, for both servers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod child;
mod load;
mod nats;
mod serve;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::child::ChildServer;
use crate::load::{Load, Report};

#[derive(Debug, Parser)]
#[command(name = "chatgate-bench", about = "Load benchmarks for chatgate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Webhook ingest: chatgate against a bare axum server under the same load.
    Ingest {
        /// Measured seconds per server.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds of load before measuring (not counted).
        #[arg(long, default_value_t = 2)]
        warmup_seconds: u64,
    },
    /// Web visitors: memory per connected idle visitor, and push latency to their streams.
    Web {
        /// Visitors, each with a session and an open stream.
        #[arg(long, default_value_t = 10_000)]
        visitors: usize,
        /// Operator messages sent over the connected visitors.
        #[arg(long, default_value_t = 2_000)]
        messages: usize,
        /// Concurrent keep-alive connections sending `POST /v1/messages`.
        #[arg(long, default_value_t = 16)]
        senders: usize,
    },
    /// Webhook ingest on the NATS backend (one and two instances) beside SQLite and bare axum.
    Nats {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 2)]
        warmup_seconds: u64,
    },
    /// Child process: chatgate on the NATS queue at `--url`.
    #[command(hide = true)]
    ServeChatgateNats {
        #[arg(long)]
        url: String,
    },
    /// Child process: the bare axum server.
    #[command(hide = true)]
    ServeBare,
    /// Child process: chatgate with its SQLite queue in `--data-dir`.
    #[command(hide = true)]
    ServeChatgate {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Child process: chatgate with one web account, its queue and files in `--data-dir`.
    #[command(hide = true)]
    ServeWeb {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Ingest { seconds, connections, warmup_seconds } => {
            anyhow::ensure!(seconds > 0, "--seconds must be at least 1");
            anyhow::ensure!(connections > 0, "--connections must be at least 1");
            let load = Load {
                connections,
                warmup: Duration::from_secs(warmup_seconds),
                measure: Duration::from_secs(seconds),
            };
            ingest(&load)
        }
        Command::Web { visitors, messages, senders } => {
            anyhow::ensure!(visitors > 0, "--visitors must be at least 1");
            anyhow::ensure!(senders > 0, "--senders must be at least 1");
            web::run(&web::WebLoad { visitors, messages, senders })
        }
        Command::Nats { seconds, connections, warmup_seconds } => nats::run(&Load {
            connections: connections.max(2),
            warmup: Duration::from_secs(warmup_seconds),
            measure: Duration::from_secs(seconds.max(1)),
        }),
        Command::ServeChatgateNats { url } => nats::serve_child(&url).map(|()| ExitCode::SUCCESS),
        Command::ServeBare => serve::bare().map(|()| ExitCode::SUCCESS),
        Command::ServeChatgate { data_dir } => serve::chatgate(&data_dir).map(|()| ExitCode::SUCCESS),
        Command::ServeWeb { data_dir } => serve::web(&data_dir).map(|()| ExitCode::SUCCESS),
    }
}

fn ingest(load: &Load) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ingest: {} connections, {} s warm-up, {} s measured per server, {} byte bodies, {cores} cores",
        load.connections,
        load.warmup.as_secs(),
        load.measure.as_secs(),
        load::body(1).len(),
    );
    let runtime = serve::runtime()?;

    let bare = ChildServer::spawn("bare", &["serve-bare".as_ref()])?;
    let bare_report = runtime.block_on(load::run(bare.port, load, || ()))?;
    bare.kill()?;
    println!("bare      {}", bare_report.summary());

    let dir = tempfile::tempdir().context("creating the data directory")?;
    let chatgate =
        ChildServer::spawn("chatgate", &["serve-chatgate".as_ref(), "--data-dir".as_ref(), dir.path().as_os_str()])?;
    let pid = chatgate.pid();
    let mut memory = None;
    let report = runtime.block_on(load::run(chatgate.port, load, || memory = Some(Memory::read(pid))))?;
    let queue = runtime.block_on(queue_metrics(chatgate.port));
    // SIGKILL, not a clean shutdown: whatever was acknowledged must already be on disk.
    chatgate.kill()?;
    let memory = memory.context("the measured phase did not end")??;
    println!("chatgate  {}  rss={:.1}MiB hwm={:.1}MiB", report.summary(), memory.rss_mib(), memory.hwm_mib());
    match queue {
        Ok(q) => println!("{q}"),
        Err(e) => println!("queue     (no metrics: {e:#})"),
    }

    let stored = count_stored(&dir.path().join("chatgate.db"))?;
    let acknowledged = report.acknowledged;
    let lost = acknowledged.saturating_sub(stored);
    // A request whose connection broke may have been stored without its 200 reaching us.
    let unacknowledged = stored.saturating_sub(acknowledged);
    print!("stored={stored} acknowledged={acknowledged} lost={lost}");
    if unacknowledged > 0 {
        print!(" stored_without_ack={unacknowledged}");
    }
    println!();
    dir.close().context("removing the data directory")?;

    println!("ratio={:.3}", ratio(&report, &bare_report));
    if lost != 0 {
        eprintln!("chatgate acknowledged {lost} requests it did not store");
        return Ok(ExitCode::FAILURE);
    }
    if unacknowledged > report.transport_errors {
        eprintln!("chatgate stored {unacknowledged} events nobody sent");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The queue's group-commit figures from chatgate's `/metrics`, warm-up included.
async fn queue_metrics(port: u16) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n").await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let value = |name: &str| -> anyhow::Result<f64> {
        let line = text.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
        let number = line.rsplit(' ').next().unwrap_or_default();
        number.parse().with_context(|| format!("{name}: `{number}`"))
    };
    let batches = value("chatgate_queue_batches_total")?;
    let commands = value("chatgate_queue_commands_total")?;
    let fsyncs = value("chatgate_queue_fsyncs_total")?;
    let fsync_seconds = value("chatgate_queue_fsync_seconds_total")?;
    Ok(format!(
        "queue     batches={batches} avg_batch={:.1} fsyncs={fsyncs} avg_fsync_ms={:.3}",
        commands / batches.max(1.0),
        fsync_seconds * 1000.0 / fsyncs.max(1.0)
    ))
}

fn ratio(chatgate: &Report, bare: &Report) -> f64 {
    let bare = bare.requests_per_second();
    if bare > 0.0 { chatgate.requests_per_second() / bare } else { 0.0 }
}

/// Counts the events in a (killed) chatgate's database, opened read-only.
fn count_stored(path: &std::path::Path) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).context("counting stored events")?;
    Ok(n as u64)
}

/// Resident memory of a process, from `/proc/<pid>/status`, in kB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_kb: u64,
    hwm_kb: u64,
}

impl Memory {
    fn read(pid: u32) -> anyhow::Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line =
                status.lines().find_map(|l| l.strip_prefix(name)).with_context(|| format!("no {name} in {path}"))?;
            let kb = line.trim().trim_end_matches("kB").trim();
            kb.parse().with_context(|| format!("{name} `{kb}` in {path}"))
        };
        Ok(Memory { rss_kb: field("VmRSS:")?, hwm_kb: field("VmHWM:")? })
    }

    fn rss_mib(&self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }

    fn hwm_mib(&self) -> f64 {
        self.hwm_kb as f64 / 1024.0
    }
}
