//! `chatgate-bench outbound`: messages per second through `POST /v1/messages` → the delivery
//! engine → a mock Telegram Bot API on 127.0.0.1 that answers at once.
//!
//! ```text
//! cargo run --release -p chatgate-bench -- outbound [--messages 20000] [--submitters 64] [--accounts 10] [--chats 1000]
//! ```
//!
//! The mock runs in this process; chatgate runs as a child process with `--accounts` Telegram
//! bots whose `api_base_url` is the mock, its SQLite queue in a temporary directory. Two rounds:
//!
//! - **lifted**: the bots' rate limits are lifted (the bench wraps each adapter and reports no
//!   per-account or per-chat rate), so the figure is the gateway's own: messages/s from the first
//!   `POST` to the last provider call, the `POST` latency (validation and the durable enqueue), and
//!   `POST` → provider call (queue, delivery engine, the adapter's request) p50/p99. Goal: ≥ 5,000
//!   messages/s.
//! - **limited**: Telegram's limits in force (30 messages/s per bot, 1/s per chat) and 10 s worth
//!   of messages (`accounts × 30 × 10`) submitted at once: provider calls/s from the first `POST`
//!   to the last call against the allowed `accounts × 30`/s (goal ≥ 95 %), and the calls that were
//!   the 31st or later of one bot within a sliding 1 s window (the mock answers them all; it does
//!   not answer 429).
//!
//! Messages go to `--chats` chats spread over the bots (chat `k` of bot `k mod accounts`), each
//! message's text carries its number, so the mock times each one's arrival.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::child::ChildServer;
use crate::serve::{self, API_TOKEN};

#[derive(Debug, Clone)]
pub struct OutboundLoad {
    pub messages: usize,
    pub submitters: usize,
    pub accounts: usize,
    pub chats: usize,
}

/// What the mock saw: the time each message number arrived, and per bot the arrival times.
#[derive(Default)]
struct Seen {
    arrived: HashMap<u64, Instant>,
    per_bot: HashMap<String, Vec<Instant>>,
}

type Shared = Arc<Mutex<Seen>>;

pub fn run(load: &OutboundLoad) -> anyhow::Result<ExitCode> {
    println!(
        "outbound: {} messages from {} submitters to {} chats over {} Telegram bots, mock Bot API on 127.0.0.1, 2 cores, load average {}",
        load.messages,
        load.submitters,
        load.chats,
        load.accounts,
        crate::ingest::load_average()
    );
    let runtime = serve::runtime()?;
    let mut ok = true;
    for lifted in [true, false] {
        let seen = Shared::default();
        let mock_port = runtime.block_on(mock(seen.clone()))?;
        let dir = tempfile::tempdir().context("creating the data directory")?;
        let mut args: Vec<std::ffi::OsString> = vec![
            "serve-outbound".into(),
            "--data-dir".into(),
            dir.path().into(),
            "--api-base-url".into(),
            format!("http://127.0.0.1:{mock_port}").into(),
            "--accounts".into(),
            load.accounts.to_string().into(),
        ];
        if lifted {
            args.push("--lift-limits".into());
        }
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let server = ChildServer::spawn("chatgate", &refs)?;
        let messages = if lifted { load.messages } else { load.accounts * 30 * 10 };
        let round = runtime.block_on(submit(server.port, load, messages, &seen))?;
        let memory = crate::Memory::read(server.pid())?;
        server.kill()?;
        dir.close()?;
        ok &= round.failed == 0 && round.arrived == messages;
        let name = if lifted { "lifted " } else { "limited" };
        println!(
            "{name}  sent={} arrived={} failed={} in {:.2}s: messages/s={:.0}  post p50={:.2}ms p99={:.2}ms  post->provider p50={:.2}ms p99={:.2}ms  rss={:.1}MiB",
            messages,
            round.arrived,
            round.failed,
            round.elapsed.as_secs_f64(),
            round.arrived as f64 / round.elapsed.as_secs_f64().max(1e-9),
            quantile(&round.post_us, 0.5),
            quantile(&round.post_us, 0.99),
            quantile(&round.delivery_us, 0.5),
            quantile(&round.delivery_us, 0.99),
            memory.rss_mib(),
        );
        if !lifted {
            let allowed = load.accounts as f64 * 30.0;
            let rate = round.arrived as f64 / round.elapsed.as_secs_f64().max(1e-9);
            println!(
                "limited  provider calls/s={rate:.0} of {allowed:.0} allowed = {:.1}%  calls over 30 in any 1 s window of one bot: {}",
                rate / allowed * 100.0,
                over_limit(&seen),
            );
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Calls above 30 within any 1 s window of one bot.
fn over_limit(seen: &Shared) -> usize {
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let mut over = 0;
    for times in seen.per_bot.values() {
        let mut times = times.clone();
        times.sort_unstable();
        for (i, t) in times.iter().enumerate() {
            if i >= 30 && t.duration_since(times[i - 30]) < Duration::from_secs(1) {
                over += 1;
            }
        }
    }
    over
}

fn quantile(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[rank]) / 1000.0
}

/// The mock Bot API: `POST /bot{token}/sendMessage` (any method, in fact) answers a message id at once and records
/// when message `n` (from its text, `m {n}`) arrived.
async fn mock(seen: Shared) -> anyhow::Result<u16> {
    let app = Router::new().fallback(post(move |uri: axum::http::Uri, body: Bytes| {
        let seen = seen.clone();
        async move {
            let now = Instant::now();
            let bot = uri.path().trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let n = value["text"].as_str().and_then(|t| t.strip_prefix("m ")).and_then(|n| n.parse::<u64>().ok());
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = n {
                s.arrived.insert(n, now);
            }
            s.per_bot.entry(bot).or_default().push(now);
            let id = s.arrived.len();
            drop(s);
            ([(CONTENT_TYPE, "application/json")], format!(r#"{{"ok":true,"result":{{"message_id":{id},"date":0}}}}"#))
        }
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

struct Round {
    arrived: usize,
    failed: usize,
    elapsed: Duration,
    post_us: Vec<u32>,
    delivery_us: Vec<u32>,
}

/// Sends `messages` from `load.submitters` connections as fast as they are taken, then waits
/// until the mock has them all (at most 60 s).
async fn submit(port: u16, load: &OutboundLoad, messages: usize, seen: &Shared) -> anyhow::Result<Round> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..load.submitters {
        let (next, load) = (next.clone(), load.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut sent: Vec<(u64, Instant, u32)> = Vec::new();
            let mut failed = 0;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= messages {
                    return anyhow::Ok((sent, failed));
                }
                let chat = n % load.chats;
                let body = format!(
                    r#"{{"channel":"telegram","account":"bot{}","chat_id":"{}","text":"m {n}"}}"#,
                    chat % load.accounts,
                    100_000 + chat
                );
                let request = Request::post("/v1/messages")
                    .header(HOST, format!("127.0.0.1:{port}"))
                    .header(AUTHORIZATION, format!("Bearer {API_TOKEN}"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                sender.ready().await?;
                let at = Instant::now();
                let response = sender.send_request(request).await?;
                let status = response.status();
                let answer = response.into_body().collect().await?.to_bytes();
                if status.is_success() {
                    sent.push((n as u64, at, u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX)));
                } else {
                    failed += 1;
                    if failed == 1 {
                        eprintln!("POST /v1/messages answered {status}: {}", String::from_utf8_lossy(&answer));
                    }
                }
            }
        }));
    }
    let mut posted = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (sent, f) = t.await.context("a submitter panicked")??;
        posted.extend(sent);
        failed += f;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let arrived = seen.lock().unwrap_or_else(|e| e.into_inner()).arrived.len();
        if arrived >= posted.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let last = seen.arrived.values().max().copied().unwrap_or(started);
    let mut post_us: Vec<u32> = posted.iter().map(|p| p.2).collect();
    let mut delivery_us: Vec<u32> = posted
        .iter()
        .filter_map(|(n, at, _)| {
            seen.arrived.get(n).map(|t| u32::try_from(t.duration_since(*at).as_micros()).unwrap_or(u32::MAX))
        })
        .collect();
    post_us.sort_unstable();
    delivery_us.sort_unstable();
    Ok(Round { arrived: seen.arrived.len(), failed, elapsed: last.duration_since(started), post_us, delivery_us })
}

/// `serve-outbound`: chatgate with `accounts` Telegram bots `bot0…` whose Bot API is
/// `api_base_url`, its queue in `dir`; with `lift_limits` the bots report no rate limits.
pub fn serve(dir: &Path, api_base_url: &str, accounts: usize, lift_limits: bool) -> anyhow::Result<()> {
    use chatgate_adapter::ChannelFactory;
    serve::exit_with_parent();
    serve::runtime()?.block_on(async {
        let mut adapters = Vec::new();
        for i in 0..accounts {
            let settings = serde_json::json!({
                "bot_token": format!("{}:bench-token", 100_000 + i),
                "secret_token": serve::SECRET_TOKEN,
                "api_base_url": api_base_url,
            });
            let account = format!("bot{i}");
            let adapter = chatgate_channel_telegram::FACTORY.build(&account, settings).context("building a bot")?;
            let adapter: Arc<dyn chatgate_adapter::Adapter> =
                if lift_limits { Arc::new(Unlimited::new(adapter)) } else { adapter };
            adapters.push((adapter, chatgate_model::LimitOverrides::default()));
        }
        let queue = chatgate_queue::SqliteQueue::open(dir).context("opening the queue")?;
        let gateway =
            chatgate_server::Gateway::start(adapters, Arc::new(queue), chatgate_server::Settings::new(API_TOKEN))
                .await
                .context("starting the gateway")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        serve::print_port(listener.local_addr()?.port())?;
        chatgate_server::serve(listener, gateway, chatgate_server::Limits::default(), std::future::pending())
            .await
            .context("serving")
    })
}

/// An adapter as the one it wraps, with no rate limits.
struct Unlimited {
    inner: Arc<dyn chatgate_adapter::Adapter>,
    facts: chatgate_adapter::ChannelFacts,
}

impl Unlimited {
    fn new(inner: Arc<dyn chatgate_adapter::Adapter>) -> Unlimited {
        let mut facts = *inner.facts();
        facts.rate_limits = chatgate_adapter::RateLimits::default();
        Unlimited { inner, facts }
    }
}

#[async_trait::async_trait]
impl chatgate_adapter::Adapter for Unlimited {
    fn channel(&self) -> chatgate_model::Channel {
        self.inner.channel()
    }
    fn account(&self) -> &str {
        self.inner.account()
    }
    fn facts(&self) -> &chatgate_adapter::ChannelFacts {
        &self.facts
    }
    fn verify(&self, request: &chatgate_adapter::WebhookRequest<'_>) -> Result<(), chatgate_adapter::WebhookError> {
        self.inner.verify(request)
    }
    fn parse(
        &self,
        request: &chatgate_adapter::WebhookRequest<'_>,
    ) -> Result<chatgate_adapter::Inbound, chatgate_adapter::WebhookError> {
        self.inner.parse(request)
    }
    fn sign(&self, headers: &mut axum::http::HeaderMap, body: Vec<u8>) -> Vec<u8> {
        self.inner.sign(headers, body)
    }
    async fn send(
        &self,
        part: &chatgate_adapter::OutboundPart,
    ) -> Result<chatgate_adapter::SendReceipt, chatgate_adapter::SendError> {
        self.inner.send(part).await
    }
}
