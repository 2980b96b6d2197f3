//! `chatgate-bench outbound`: messages per second through `POST /v1/messages` → the delivery
//! engine → a mock Telegram Bot API on 127.0.0.1 that answers at once.
//!
//! ```text
//! cargo run --release -p chatgate-bench -- outbound [--messages 20000] [--submitters 64] [--accounts 10] [--chats 1000] [--paced-rate 5000]
//! ```
//!
//! The mock runs in this process; chatgate runs as a child process with `--accounts` Telegram
//! bots whose `api_base_url` is the mock, its SQLite queue in a temporary directory. Four rounds,
//! each against a fresh chatgate:
//!
//! - **lifted**: the bots' rate limits are lifted (the bench wraps each adapter and reports no
//!   per-account or per-chat rate; the mock answers every call), `--messages` from
//!   `--submitters` connections: messages/s from the first `POST` to the last provider call
//!   (goal ≥ 5,000), and per message, p50/p99 of: the `POST` (validation and the durable enqueue),
//!   `POST` → provider call, the `201` → provider call (what the gateway adds after the durable
//!   enqueue; negative when the call arrives before the client has read its answer), and the
//!   provider's answer → the part's status durable (chatgate's own histogram
//!   `chatgate_send_recorded_duration_seconds`, read from `/metrics` after the round).
//! - **paced**: as `lifted`, but message `n` is submitted no earlier than `n / --paced-rate` s
//!   after the start (2 s of messages, from `--submitters` connections): the latencies at the
//!   goal's rate (5,000/s) rather than at the most the gateway takes, where every figure holds the
//!   queueing of a saturated store.
//! - **serial**: as `lifted`, `--messages / 10` from one connection, one at a time: the same
//!   latencies without a queue of submitters.
//! - **limited**: Telegram's limits in force in chatgate (30 messages/s per bot, 1/s per chat) and
//!   in the mock, which answers `429` with `retry_after` to a bot's 31st call within any sliding
//!   1 s (the bot API's flood limit; Telegram's FAQ documents 1/s per chat as "avoid", with short
//!   bursts allowed, so the mock counts calls of a chat less than 1 s apart and answers them). 10 s
//!   worth of messages (`accounts × 30 × 10`) submitted at once: provider calls/s from the first
//!   `POST` to the last call against the allowed `accounts × 30`/s (goal ≥ 95 % with no 429), the
//!   429s, and the shortest time any 31 accepted calls of one bot spanned (over 1 s: no breach).
//!
//! Messages go to `--chats` chats spread over the bots (chat `k` of bot `k mod accounts`), each
//! message's text carries its number, so the mock times each one's arrival.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
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
    /// Messages per second of the `paced` round.
    pub paced_rate: usize,
}

/// Telegram's flood limit for one bot, as the mock enforces it: calls in any sliding window.
const BOT_CALLS_PER_WINDOW: usize = 30;
const WINDOW: Duration = Duration::from_secs(1);

/// What the mock saw.
#[derive(Default)]
struct Seen {
    /// Whether the mock answers a bot's call over [`BOT_CALLS_PER_WINDOW`] with 429.
    enforce: bool,
    /// When each message number was accepted.
    arrived: HashMap<u64, Instant>,
    /// Per bot, the accepted calls of the last [`WINDOW`].
    window: HashMap<String, VecDeque<Instant>>,
    /// Per bot, every accepted call.
    per_bot: HashMap<String, Vec<Instant>>,
    /// Per chat, its last accepted call.
    chat_last: HashMap<String, Instant>,
    /// Calls answered 429.
    refused: usize,
    /// Accepted calls less than [`WINDOW`] after the previous accepted call of their chat.
    chat_early: usize,
}

type Shared = Arc<Mutex<Seen>>;

/// The rounds, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    Lifted,
    Paced,
    Serial,
    Limited,
}

impl Round {
    fn name(self) -> &'static str {
        match self {
            Round::Lifted => "lifted ",
            Round::Paced => "paced  ",
            Round::Serial => "serial ",
            Round::Limited => "limited",
        }
    }
}

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
    for round in [Round::Lifted, Round::Paced, Round::Serial, Round::Limited] {
        let dir = tempfile::tempdir().context("creating the data directory")?;
        let figures = run_round(&runtime, load, round, dir.path())?;
        dir.close()?;
        println!("{}", figures.line);
        ok &= figures.ok;
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What one round printed and whether every message arrived.
pub struct RoundFigures {
    /// The round's figures, one line (two for `limited`).
    pub line: String,
    /// Provider calls (or messages) per second.
    pub rate: f64,
    /// Every message arrived and none failed.
    pub ok: bool,
}

/// The `lifted` round on a store that is already in `dir` (the `scale` scenario's big store).
pub fn lifted_on(runtime: &tokio::runtime::Runtime, load: &OutboundLoad, dir: &Path) -> anyhow::Result<RoundFigures> {
    run_round(runtime, load, Round::Lifted, dir)
}

/// One round against a fresh chatgate whose queue is in `dir`, with a fresh mock.
fn run_round(
    runtime: &tokio::runtime::Runtime,
    load: &OutboundLoad,
    round: Round,
    dir: &Path,
) -> anyhow::Result<RoundFigures> {
    let seen = Shared::new(Mutex::new(Seen { enforce: round == Round::Limited, ..Seen::default() }));
    let mock_port = runtime.block_on(mock(seen.clone()))?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "serve-outbound".into(),
        "--data-dir".into(),
        dir.into(),
        "--api-base-url".into(),
        format!("http://127.0.0.1:{mock_port}").into(),
        "--accounts".into(),
        load.accounts.to_string().into(),
    ];
    if round != Round::Limited {
        args.push("--lift-limits".into());
    }
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let server = ChildServer::spawn("chatgate", &refs)?;
    let (messages, submitters, pace) = match round {
        Round::Lifted => (load.messages, load.submitters, None),
        Round::Paced => (load.paced_rate * 2, load.submitters, Some(load.paced_rate)),
        Round::Serial => ((load.messages / 10).max(1), 1, None),
        Round::Limited => (load.accounts * 30 * 10, load.submitters, None),
    };
    let figures = runtime.block_on(submit(server.port, load, messages, submitters, pace, &seen))?;
    let recorded = runtime.block_on(recorded_quantiles(server.port))?;
    let memory = crate::Memory::read(server.pid())?;
    server.kill()?;
    let ok = figures.failed == 0 && figures.arrived == messages;
    let rate = figures.arrived as f64 / figures.elapsed.as_secs_f64().max(1e-9);
    let mut line = format!(
        "{}  sent={} arrived={} failed={} in {:.2}s: messages/s={rate:.0}  post p50={:.2}ms p99={:.2}ms  post->provider p50={:.2}ms p99={:.2}ms  201->provider p50={:.2}ms p99={:.2}ms  answer->durable p50<={:.2}ms p99<={:.2}ms  rss={:.1}MiB",
        round.name(),
        messages,
        figures.arrived,
        figures.failed,
        figures.elapsed.as_secs_f64(),
        quantile(&figures.post_us, 0.5),
        quantile(&figures.post_us, 0.99),
        quantile(&figures.delivery_us, 0.5),
        quantile(&figures.delivery_us, 0.99),
        quantile(&figures.after_answer_us, 0.5),
        quantile(&figures.after_answer_us, 0.99),
        recorded.0 * 1000.0,
        recorded.1 * 1000.0,
        memory.rss_mib(),
    );
    if round == Round::Limited {
        let allowed = load.accounts as f64 * 30.0;
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let span = closest_span(&seen);
        line.push_str(&format!(
            "\nlimited  provider calls/s={rate:.0} of {allowed:.0} allowed = {:.1}%  429s={}  shortest span of 31 accepted calls of one bot={:.1}ms  calls of a chat <1s after its previous={}",
            rate / allowed * 100.0,
            seen.refused,
            span.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            seen.chat_early,
        ));
    }
    Ok(RoundFigures { line, rate, ok })
}

/// The shortest time between a bot's accepted call and its 30th accepted call after it; under
/// [`WINDOW`] the bot broke the flood limit (the mock refuses such calls, so this stays above).
fn closest_span(seen: &Seen) -> Option<Duration> {
    seen.per_bot
        .values()
        .flat_map(|times| times.windows(BOT_CALLS_PER_WINDOW + 1).map(|w| w[BOT_CALLS_PER_WINDOW] - w[0]))
        .min()
}

fn quantile<T: Copy + Into<f64>>(sorted_us: &[T], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    sorted_us[rank].into() / 1000.0
}

/// The mock Bot API: `POST /bot{token}/sendMessage` (any method, in fact) answers a message id at
/// once and records when message `n` (from its text, `m {n}`) arrived; when enforcing, a bot's
/// call with [`BOT_CALLS_PER_WINDOW`] accepted calls in the last [`WINDOW`] gets Telegram's 429.
async fn mock(seen: Shared) -> anyhow::Result<u16> {
    let app = Router::new().fallback(post(move |uri: axum::http::Uri, body: Bytes| {
        let seen = seen.clone();
        async move {
            let bot = uri.path().trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let n = value["text"].as_str().and_then(|t| t.strip_prefix("m ")).and_then(|n| n.parse::<u64>().ok());
            let chat = value["chat_id"].to_string();
            let json = [(CONTENT_TYPE, "application/json")];
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            // Timed under the lock, so that every bot's calls are recorded in time order.
            let now = Instant::now();
            let enforce = s.enforce;
            let window = s.window.entry(bot.clone()).or_default();
            while window.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                window.pop_front();
            }
            if enforce && window.len() >= BOT_CALLS_PER_WINDOW {
                let free_in = WINDOW - now.duration_since(window[0]);
                let retry_after = free_in.as_secs() + u64::from(free_in.subsec_nanos() > 0);
                s.refused += 1;
                let body = format!(
                    r#"{{"ok":false,"error_code":429,"description":"Too Many Requests: retry after {retry_after}","parameters":{{"retry_after":{retry_after}}}}}"#
                );
                return (StatusCode::TOO_MANY_REQUESTS, json, body);
            }
            window.push_back(now);
            if let Some(n) = n {
                s.arrived.insert(n, now);
            }
            s.per_bot.entry(bot).or_default().push(now);
            if let Some(last) = s.chat_last.insert(chat, now)
                && now.duration_since(last) < WINDOW
            {
                s.chat_early += 1;
            }
            let id = s.arrived.len();
            drop(s);
            (StatusCode::OK, json, format!(r#"{{"ok":true,"result":{{"message_id":{id},"date":0}}}}"#))
        }
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// One round's figures, latencies in µs, sorted.
struct Figures {
    arrived: usize,
    failed: usize,
    elapsed: Duration,
    post_us: Vec<u32>,
    delivery_us: Vec<u32>,
    /// The provider call's arrival minus the moment the client had read the `201`.
    after_answer_us: Vec<i32>,
}

/// A message the gateway took: its number, when its `POST` left, when its answer was read.
type Posted = (u64, Instant, Instant);

/// Sends `messages` from `submitters` connections as fast as they are taken, then waits until the
/// mock has them all (at most 60 s).
async fn submit(
    port: u16,
    load: &OutboundLoad,
    messages: usize,
    submitters: usize,
    pace: Option<usize>,
    seen: &Shared,
) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..submitters {
        let (next, load) = (next.clone(), load.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(port).await?;
            let mut sent: Vec<Posted> = Vec::new();
            let mut failed = 0;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= messages {
                    return anyhow::Ok((sent, failed));
                }
                // Paced: message `n` waits for its moment in the schedule (later if behind it).
                if let Some(rate) = pace {
                    let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
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
                    sent.push((n as u64, at, Instant::now()));
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
    let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    let signed_micros = |from: Instant, to: Instant| match to.checked_duration_since(from) {
        Some(d) => i32::try_from(d.as_micros()).unwrap_or(i32::MAX),
        None => -i32::try_from(from.duration_since(to).as_micros()).unwrap_or(i32::MAX),
    };
    let mut post_us: Vec<u32> = posted.iter().map(|(_, at, answered)| micros(answered.duration_since(*at))).collect();
    let mut delivery_us = Vec::with_capacity(posted.len());
    let mut after_answer_us = Vec::with_capacity(posted.len());
    for (n, at, answered) in &posted {
        if let Some(t) = seen.arrived.get(n) {
            delivery_us.push(micros(t.saturating_duration_since(*at)));
            after_answer_us.push(signed_micros(*answered, *t));
        }
    }
    post_us.sort_unstable();
    delivery_us.sort_unstable();
    after_answer_us.sort_unstable();
    Ok(Figures {
        arrived: seen.arrived.len(),
        failed,
        elapsed: last.duration_since(started),
        post_us,
        delivery_us,
        after_answer_us,
    })
}

async fn connect<B>(port: u16) -> anyhow::Result<hyper::client::conn::http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// p50 and p99 (in seconds, the upper bound of the bucket they fall in) of chatgate's
/// `chatgate_send_recorded_duration_seconds`, summed over the accounts, from its `/metrics`.
async fn recorded_quantiles(port: u16) -> anyhow::Result<(f64, f64)> {
    let mut sender = connect(port).await?;
    let request = Request::get("/metrics").header(HOST, format!("127.0.0.1:{port}")).body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    anyhow::ensure!(response.status().is_success(), "GET /metrics answered {}", response.status());
    let text = String::from_utf8(response.into_body().collect().await?.to_bytes().to_vec())?;
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("chatgate_send_recorded_duration_seconds_bucket{")) {
        let le = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()).context("a bucket without le")?;
        let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().context("a bucket's le")? };
        let count: u64 = line.rsplit(' ').next().unwrap_or_default().parse().context("a bucket's count")?;
        match buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += count,
            None => buckets.push((le, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0, |b| b.1);
    anyhow::ensure!(total > 0, "chatgate_send_recorded_duration_seconds has no observations");
    let at = |q: f64| {
        let rank = (q * total as f64).ceil() as u64;
        buckets.iter().find(|(_, c)| *c >= rank).map_or(f64::INFINITY, |b| b.0)
    };
    Ok((at(0.5), at(0.99)))
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
