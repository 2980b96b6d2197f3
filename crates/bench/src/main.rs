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
//! - `chatgate-bench ingest`: webhook ingest of chatgate beside a bare axum server and the
//!   durable-write limit, then reading the stored events back and the push latency to a
//!   long-polling core; see [`ingest`] for what it does and prints.
//!
//!   ```text
//!   cargo run --release -p chatgate-bench -- ingest --seconds 10 [--connections 64] [--warmup-seconds 2]
//!   ```

//! - `chatgate-bench outbound`: messages/s through `POST /v1/messages`, the delivery engine and a
//!   mock Telegram Bot API, with the rate limits lifted and in force; see [`outbound`].
//!
//!   ```text
//!   cargo run --release -p chatgate-bench -- outbound [--messages 20000] [--submitters 64] [--accounts 10] [--chats 1000] [--paced-rate 5000]
//!   ```

//! - `chatgate-bench overload`: far more connections than chatgate can serve, beside an ordinary
//!   number: 2xx/503 counts, `Retry-After`, p99, memory, `lost=0`; see [`overload`].
//!
//!   ```text
//!   cargo run --release -p chatgate-bench -- overload [--connections 4000] [--reference 64] [--seconds 10]
//!   ```
//!
//! - `chatgate-bench scale`: ingest and pull on an empty store and on a generated store of
//!   `--events` events side by side, then retention pruning a day of it under ingest; see [`scale`].
//!
//!   ```text
//!   cargo run --release -p chatgate-bench -- scale [--events 10000000] [--days 10] [--seconds 10]
//!   ```

/// The same allocator as the `chatgate` binary, for both servers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod child;
mod ingest;
mod load;
mod nats;
mod outbound;
mod overload;
mod scale;
mod serve;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::load::Load;

#[derive(Debug, Parser)]
#[command(name = "chatgate-bench", about = "Load benchmarks for chatgate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Webhook ingest: chatgate beside a bare axum server and the durable-write limit, then reads.
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
    /// Outbound: messages/s through POST /v1/messages, delivery and a mock Bot API on 127.0.0.1.
    Outbound {
        /// Messages in the round with the rate limits lifted.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Concurrent keep-alive connections sending `POST /v1/messages`.
        #[arg(long, default_value_t = 64)]
        submitters: usize,
        /// Telegram bots.
        #[arg(long, default_value_t = 10)]
        accounts: usize,
        /// Chats, spread over the bots.
        #[arg(long, default_value_t = 1000)]
        chats: usize,
        /// Messages per second the `paced` round submits (for 2 s), limits lifted.
        #[arg(long, default_value_t = 5000)]
        paced_rate: usize,
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
    /// Overload: far more connections than chatgate serves, beside an ordinary number.
    Overload {
        /// Concurrent keep-alive connections of the overloaded round.
        #[arg(long, default_value_t = 4000)]
        connections: usize,
        /// Concurrent keep-alive connections of the reference round.
        #[arg(long, default_value_t = 64)]
        reference: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 2)]
        warmup_seconds: u64,
    },
    /// Scale: ingest and pull on an empty and on a generated big store; retention under ingest.
    Scale {
        /// Events in the generated store.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Days the generated events are spread over (the oldest day is pruned).
        #[arg(long, default_value_t = 10)]
        days: u64,
        /// Measured seconds of ingest per store.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Keep the generated store here and reuse it when present (deleted at the end otherwise).
        #[arg(long)]
        store: Option<PathBuf>,
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
    /// Child process: the durable-write limit, appending to a file in `--data-dir`.
    #[command(hide = true)]
    ServeLimit {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Child process: chatgate with `--accounts` Telegram bots whose Bot API is `--api-base-url`.
    #[command(hide = true)]
    ServeOutbound {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        api_base_url: String,
        #[arg(long)]
        accounts: usize,
        #[arg(long)]
        lift_limits: bool,
    },
    /// Child process: chatgate with its SQLite queue in `--data-dir`.
    #[command(hide = true)]
    ServeChatgate {
        #[arg(long)]
        data_dir: PathBuf,
        /// Seconds events are kept (default: the queue's default retention).
        #[arg(long)]
        retention_seconds: Option<u64>,
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
            ingest::run(&load)
        }
        Command::Web { visitors, messages, senders } => {
            anyhow::ensure!(visitors > 0, "--visitors must be at least 1");
            anyhow::ensure!(senders > 0, "--senders must be at least 1");
            web::run(&web::WebLoad { visitors, messages, senders })
        }
        Command::Outbound { messages, submitters, accounts, chats, paced_rate } => {
            anyhow::ensure!(
                submitters > 0 && accounts > 0 && chats >= accounts && paced_rate > 0,
                "--submitters, --accounts, --paced-rate ≥ 1, --chats ≥ --accounts"
            );
            outbound::run(&outbound::OutboundLoad { messages, submitters, accounts, chats, paced_rate })
        }
        Command::Nats { seconds, connections, warmup_seconds } => nats::run(&Load {
            connections: connections.max(2),
            warmup: Duration::from_secs(warmup_seconds),
            measure: Duration::from_secs(seconds.max(1)),
        }),
        Command::ServeChatgateNats { url } => nats::serve_child(&url).map(|()| ExitCode::SUCCESS),
        Command::ServeBare => serve::bare().map(|()| ExitCode::SUCCESS),
        Command::ServeLimit { data_dir } => serve::limit(&data_dir).map(|()| ExitCode::SUCCESS),
        Command::ServeOutbound { data_dir, api_base_url, accounts, lift_limits } => {
            outbound::serve(&data_dir, &api_base_url, accounts, lift_limits).map(|()| ExitCode::SUCCESS)
        }
        Command::ServeChatgate { data_dir, retention_seconds } => {
            serve::chatgate(&data_dir, retention_seconds.map(Duration::from_secs)).map(|()| ExitCode::SUCCESS)
        }
        Command::Overload { connections, reference, seconds, warmup_seconds } => {
            anyhow::ensure!(
                connections > 0 && reference > 0 && seconds > 0,
                "--connections, --reference, --seconds ≥ 1"
            );
            overload::run(&overload::OverloadLoad {
                connections,
                reference,
                warmup: Duration::from_secs(warmup_seconds),
                measure: Duration::from_secs(seconds),
            })
        }
        Command::Scale { events, days, seconds, connections, store } => {
            anyhow::ensure!(events >= 1000 && days >= 2, "--events ≥ 1000, --days ≥ 2");
            anyhow::ensure!(seconds > 0 && connections > 0, "--seconds, --connections ≥ 1");
            scale::run(&scale::ScaleLoad { events, days, seconds, connections, store })
        }
        Command::ServeWeb { data_dir } => serve::web(&data_dir).map(|()| ExitCode::SUCCESS),
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`, in kB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    rss_kb: u64,
    hwm_kb: u64,
}

impl Memory {
    pub fn read(pid: u32) -> anyhow::Result<Memory> {
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

    pub fn rss_mib(&self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }

    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kb as f64 / 1024.0
    }
}
