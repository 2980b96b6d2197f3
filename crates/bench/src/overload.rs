//! `chatgate-bench overload`: chatgate under far more connections than it can serve, beside the
//! same load at an ordinary number of connections.
//!
//! ```text
//! cargo run --release -p chatgate-bench -- overload [--connections 4000] [--reference 64] [--seconds 10]
//! ```
//!
//! Two rounds, each on a fresh chatgate (the real gateway, Telegram adapter and SQLite queue in a
//! temporary directory, as in `ingest`, with the default `max_pending_webhooks`): first
//! `--reference` keep-alive connections, then `--connections`, each a closed loop of webhooks.
//! For each round it prints:
//!
//! - the answers of the measured phase: 2xx, 503 (shed: too many webhooks were waiting for the
//!   store) and other, the share of the 503s that carried `Retry-After`, requests/s of 2xx;
//! - the p50/p99 of the 2xx and of the 503 answers (a shed webhook is answered at once);
//! - the server's resident memory at the end of the load and its high-water mark (goal ≤ 64 MiB);
//! - durability: the server is SIGKILLed and its events counted; every 2xx must be stored
//!   (`lost=0`), and nothing answered 503 is (the exit code is non-zero otherwise).
//!
//! The last line gives the ratios of the overloaded round to the reference round.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::Memory;
use crate::child::ChildServer;
use crate::ingest::{count_stored, durability, load_average};
use crate::load::{self, Load, Report, percentile_ms};
use crate::serve;

/// How hard to push.
#[derive(Debug, Clone)]
pub struct OverloadLoad {
    pub connections: usize,
    pub reference: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

pub fn run(load: &OverloadLoad) -> anyhow::Result<ExitCode> {
    let files = serve::raise_nofile_limit()?;
    anyhow::ensure!(
        files > load.connections as u64 + 64,
        "--connections {} needs more open files than RLIMIT_NOFILE allows ({files})",
        load.connections
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "overload: {} connections beside {}, {} s warm-up, {} s measured, {cores} cores, load average {}",
        load.connections,
        load.reference,
        load.warmup.as_secs(),
        load.measure.as_secs(),
        load_average(),
    );
    let runtime = serve::runtime()?;
    let mut failed = false;
    let mut rounds = Vec::new();
    for connections in [load.reference, load.connections] {
        let load = Load { connections, warmup: load.warmup, measure: load.measure };
        let (report, memory, ok) = round(&runtime, &load)?;
        failed |= !ok;
        rounds.push((report, memory));
    }
    let [(reference, reference_memory), (overloaded, overloaded_memory)] = &rounds[..] else {
        unreachable!("two rounds")
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    println!(
        "ratio {}/{}: requests/s={:.3} p99={:.2} hwm={:.2}",
        load.connections,
        load.reference,
        ratio(overloaded.requests_per_second(), reference.requests_per_second()),
        ratio(overloaded.percentile_ms(0.99), reference.percentile_ms(0.99)),
        ratio(overloaded_memory.hwm_mib(), reference_memory.hwm_mib()),
    );
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// One fresh chatgate under `load`: prints its lines; whether nothing acknowledged was lost.
fn round(runtime: &tokio::runtime::Runtime, load: &Load) -> anyhow::Result<(Report, Memory, bool)> {
    let dir = tempfile::tempdir().context("creating chatgate's data directory")?;
    let chatgate =
        ChildServer::spawn("chatgate", &["serve-chatgate".as_ref(), "--data-dir".as_ref(), dir.path().as_os_str()])?;
    let pid = chatgate.pid();
    let mut memory = None;
    let report = runtime.block_on(load::run(chatgate.port, load, || memory = Some(Memory::read(pid))))?;
    let memory = memory.context("the measured phase did not end")??;
    let name = format!("c={}", load.connections);
    let other = report.non_2xx - report.shed;
    println!(
        "{name:<7} 2xx={} 503={} other={} transport_errors={} (stalled={}) retry_after={:.1}%  requests/s={:.0}",
        report.ok,
        report.shed,
        other,
        report.transport_errors,
        report.stalled,
        if report.shed == 0 { 100.0 } else { 100.0 * report.shed_with_retry_after as f64 / report.shed as f64 },
        report.requests_per_second(),
    );
    println!(
        "{name:<7} 2xx p50={:.2}ms p99={:.2}ms  503 p50={:.2}ms p99={:.2}ms  rss={:.1}MiB hwm={:.1}MiB (goal ≤ 64 MiB)",
        report.percentile_ms(0.50),
        report.percentile_ms(0.99),
        percentile_ms(&report.shed_latencies_us, 0.50),
        percentile_ms(&report.shed_latencies_us, 0.99),
        memory.rss_mib(),
        memory.hwm_mib(),
    );
    // The server's account of its connections (the load's connections are closed by now).
    let value = runtime.block_on(crate::ingest::metrics(chatgate.port))?;
    println!(
        "{name:<7} server: connections accepted={} shed={} refused at the cap={} (answered 503={}, closed unanswered={})",
        value("chatgate_connections_accepted_total")?,
        value("chatgate_connections_shed_total")?,
        value("chatgate_connections_refused_total")?,
        value("chatgate_connections_refused_total")? - value("chatgate_connections_refused_unanswered_total")?,
        value("chatgate_connections_refused_unanswered_total")?,
    );
    // SIGKILL: every 2xx must already be on disk.
    chatgate.kill()?;
    let stored = count_stored(&dir.path().join("chatgate.db"))?;
    let ok = durability(&name, stored, report.acknowledged, report.transport_errors);
    dir.close().context("removing chatgate's data directory")?;
    Ok((report, memory, ok))
}
