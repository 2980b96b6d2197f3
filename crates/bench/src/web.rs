//! `chatgate-bench web`: what an idle connected web visitor costs chatgate in memory, and how
//! long an operator message takes from `POST /v1/messages` to the visitor's open stream.
//!
//! Against the real gateway in a child process (`serve-web`, see [`crate::serve::web`]):
//!
//! 1. **Sessions**: `--visitors` sessions (`POST /web/bench/sessions`) over a few keep-alive
//!    connections. The child's `VmRSS` is read before (`rss_start`) and after (`rss_before`).
//! 2. **Idle visitors**: one SSE stream (`GET /web/bench/stream`, bearer token, allowed `Origin`)
//!    per visitor, each on its own HTTP/1.1 connection, at most [`CONNECTING`] being opened at
//!    once. A stream counts as established when its 200 headers are in. Once all are, and
//!    [`SETTLE`] has passed, `VmRSS` is read again (`rss_after`):
//!    `per_visitor = (rss_after - rss_before) / visitors`.
//! 3. **Push latency**: with every stream still open, `--messages` operator messages (message
//!    `k` to visitor `k mod visitors`, text `bench k`) are sent with `POST /v1/messages` by
//!    `--senders` keep-alive connections, each sending its next one when the last was accepted.
//!    The latency of a message is from just before its POST to the moment its item is read from
//!    that visitor's stream; the rate is messages ÷ (last arrival − first send).
//!
//! Any stream that ends or breaks before the end, a message that arrives on another visitor's
//! stream or not at all (within [`ARRIVAL_TIMEOUT`] of the last send), or a POST that is not
//! accepted makes the exit code non-zero.
//!
//! There is no ratio to the ingest benchmark: that would need both measured in the same run.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

use crate::Memory;
use crate::child::ChildServer;
use crate::serve::{API_TOKEN, WEB_ACCOUNT, WEB_ORIGIN};

/// Streams being connected at the same time (the rest wait), well below the listen backlog.
const CONNECTING: usize = 256;
/// Keep-alive connections that open the sessions.
const SESSION_CONNECTIONS: usize = 16;
/// Wait after the last stream is established before reading `VmRSS`.
const SETTLE: Duration = Duration::from_secs(2);
/// How long every stream gets to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long after the last send every message gets to arrive.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Marks "not yet" in the time tables (nanoseconds since the run's base instant).
const NOT_YET: u64 = 0;

/// The sizes of one run.
#[derive(Debug, Clone)]
pub struct WebLoad {
    pub visitors: usize,
    pub messages: usize,
    pub senders: usize,
}

/// Runs the web benchmark; prints its figures; fails when a stream broke or a message was lost.
pub fn run(load: &WebLoad) -> anyhow::Result<ExitCode> {
    let nofile = crate::serve::raise_nofile_limit()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "web: {} visitors, {} messages from {} senders, {cores} cores, open-file limit {nofile}",
        load.visitors, load.messages, load.senders
    );
    anyhow::ensure!(
        nofile >= load.visitors as u64 + 256,
        "the open-file limit ({nofile}, raised to the hard limit) cannot hold {} streams: raise the hard limit \
         (`ulimit -Hn`) or pass a smaller --visitors",
        load.visitors
    );
    let runtime = crate::serve::runtime()?;
    let dir = tempfile::tempdir().context("creating the data directory")?;
    let server =
        ChildServer::spawn("chatgate", &["serve-web".as_ref(), "--data-dir".as_ref(), dir.path().as_os_str()])?;
    let outcome = runtime.block_on(measure(server.port, server.pid(), load));
    server.kill()?;
    dir.close().context("removing the data directory")?;
    let outcome = outcome?;
    print!("{outcome}");
    if outcome.failures() > 0 {
        eprintln!("{} failures: broken streams, lost, misrouted or refused messages", outcome.failures());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The figures of one run.
#[derive(Debug)]
struct Outcome {
    visitors: usize,
    rss_start: Memory,
    rss_before: Memory,
    rss_after: Memory,
    connect_seconds: f64,
    /// Latency of every message that arrived, microseconds, sorted.
    latencies_us: Vec<u64>,
    messages: usize,
    push_seconds: f64,
    refused: u64,
    lost: usize,
    misrouted: u64,
    broken: u64,
}

impl Outcome {
    fn failures(&self) -> u64 {
        self.refused + self.lost as u64 + self.misrouted + self.broken
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = (q * self.latencies_us.len() as f64).ceil() as usize;
        self.latencies_us[rank.clamp(1, self.latencies_us.len()) - 1] as f64 / 1000.0
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |m: &Memory| m.rss_mib();
        let per_visitor_kib =
            self.rss_after.rss_kb.saturating_sub(self.rss_before.rss_kb) as f64 / self.visitors.max(1) as f64;
        let per_session_kib =
            self.rss_before.rss_kb.saturating_sub(self.rss_start.rss_kb) as f64 / self.visitors.max(1) as f64;
        writeln!(
            f,
            "sessions  rss_start={:.1}MiB rss_before={:.1}MiB per_session={per_session_kib:.2}KiB",
            mib(&self.rss_start),
            mib(&self.rss_before),
        )?;
        writeln!(
            f,
            "visitors={} rss_before={:.1}MiB rss_after={:.1}MiB per_visitor={per_visitor_kib:.2}KiB \
             hwm={:.1}MiB connected_in={:.1}s",
            self.visitors,
            mib(&self.rss_before),
            mib(&self.rss_after),
            self.rss_after.hwm_mib(),
            self.connect_seconds,
        )?;
        let rate = if self.push_seconds > 0.0 { self.latencies_us.len() as f64 / self.push_seconds } else { 0.0 };
        writeln!(
            f,
            "push p50={:.2}ms p99={:.2}ms max={:.2}ms rate={rate:.0}/s errors={} \
             (messages={} arrived={} refused={} lost={} misrouted={} broken_streams={})",
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
            self.failures(),
            self.messages,
            self.latencies_us.len(),
            self.refused,
            self.lost,
            self.misrouted,
            self.broken,
        )
    }
}

/// What the stream readers share with the senders.
#[derive(Debug)]
struct Board {
    base: Instant,
    visitors: usize,
    /// Per message: when its POST was sent / when its item was read (ns since `base`, 0 = not yet).
    sent: Vec<AtomicU64>,
    arrived: Vec<AtomicU64>,
    misrouted: AtomicU64,
    broken: AtomicU64,
    /// Set before the streams are dropped on purpose.
    stopping: AtomicBool,
}

impl Board {
    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
    }
}

async fn measure(port: u16, pid: u32, load: &WebLoad) -> anyhow::Result<Outcome> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let rss_start = Memory::read(pid)?;
    let sessions = open_sessions(addr, load.visitors).await?;
    let rss_before = Memory::read(pid)?;

    let board = Arc::new(Board {
        base: Instant::now(),
        visitors: load.visitors,
        sent: (0..load.messages).map(|_| AtomicU64::new(NOT_YET)).collect(),
        arrived: (0..load.messages).map(|_| AtomicU64::new(NOT_YET)).collect(),
        misrouted: AtomicU64::new(0),
        broken: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
    });
    let connect_started = Instant::now();
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let (established_tx, mut established) = mpsc::channel::<Result<(), String>>(CONNECTING);
    let mut streams = Vec::with_capacity(load.visitors);
    for (index, (token, _)) in sessions.iter().enumerate() {
        let permit = gate.clone().acquire_owned().await.context("the connect gate closed")?;
        streams.push(tokio::spawn(stream(addr, index, token.clone(), board.clone(), established_tx.clone(), permit)));
    }
    drop(established_tx);
    let mut connected = 0;
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    while connected < load.visitors {
        match tokio::time::timeout_at(deadline, established.recv()).await {
            Ok(Some(Ok(()))) => connected += 1,
            Ok(Some(Err(e))) => {
                anyhow::bail!("stream {} of {} could not be established: {e}", connected + 1, load.visitors)
            }
            Ok(None) => anyhow::bail!("the stream tasks ended with {connected} streams established"),
            Err(_) => {
                anyhow::bail!("only {connected} of {} streams were established in {CONNECT_TIMEOUT:?}", load.visitors)
            }
        }
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let rss_after = Memory::read(pid)?;

    let refused = push(addr, load, &sessions, &board).await?;
    let last_send = Instant::now();
    while board.arrived.iter().any(|a| a.load(Ordering::SeqCst) == NOT_YET) && last_send.elapsed() < ARRIVAL_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    board.stopping.store(true, Ordering::SeqCst);
    for task in &streams {
        task.abort();
    }

    let mut latencies_us = Vec::with_capacity(load.messages);
    let (mut first_send, mut last_arrival) = (u64::MAX, 0);
    for (sent, arrived) in board.sent.iter().zip(&board.arrived) {
        let (sent, arrived) = (sent.load(Ordering::SeqCst), arrived.load(Ordering::SeqCst));
        if sent != NOT_YET {
            first_send = first_send.min(sent);
        }
        if sent != NOT_YET && arrived != NOT_YET {
            latencies_us.push(arrived.saturating_sub(sent) / 1000);
            last_arrival = last_arrival.max(arrived);
        }
    }
    latencies_us.sort_unstable();
    let push_seconds = last_arrival.saturating_sub(first_send) as f64 / 1e9;
    Ok(Outcome {
        visitors: load.visitors,
        rss_start,
        rss_before,
        rss_after,
        connect_seconds,
        lost: load.messages - latencies_us.len(),
        latencies_us,
        messages: load.messages,
        push_seconds,
        refused,
        misrouted: board.misrouted.load(Ordering::SeqCst),
        broken: board.broken.load(Ordering::SeqCst),
    })
}

/// One keep-alive HTTP/1.1 connection for request/answer calls.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let tcp = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(Connection { sender, host: addr.to_string() })
    }

    /// POSTs JSON with these extra headers; the status and the answer as JSON (`Null` if not JSON).
    async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = Request::post(path).header(HOST, &self.host).header(CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_string())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }
}

/// Opens `n` visitor sessions; `(token, visitor_id)` each, in order.
async fn open_sessions(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let path = format!("/web/{WEB_ACCOUNT}/sessions");
    let workers: Vec<_> = (0..SESSION_CONNECTIONS.min(n))
        .map(|worker| {
            let path = path.clone();
            tokio::spawn(async move {
                let mut connection = Connection::open(addr).await?;
                let mut opened = Vec::new();
                for index in (worker..n).step_by(SESSION_CONNECTIONS) {
                    let (status, answer) = connection.post(&path, &[("origin", WEB_ORIGIN)], &json!({})).await?;
                    anyhow::ensure!(status == StatusCode::OK, "session {index}: {status} {answer}");
                    let field = |name: &str| {
                        answer[name].as_str().map(str::to_owned).with_context(|| format!("no {name} in the session"))
                    };
                    opened.push((index, (field("token")?, field("visitor_id")?)));
                }
                anyhow::Ok(opened)
            })
        })
        .collect();
    let mut sessions = vec![(String::new(), String::new()); n];
    for worker in workers {
        for (index, session) in worker.await.context("a session task panicked")?? {
            sessions[index] = session;
        }
    }
    Ok(sessions)
}

/// Holds visitor `index`'s stream open: reports when its headers are in, then reads items until aborted.
async fn stream(
    addr: SocketAddr,
    index: usize,
    token: String,
    board: Arc<Board>,
    established: mpsc::Sender<Result<(), String>>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let opened = async {
        let tcp = TcpStream::connect(addr).await.context("connecting")?;
        tcp.set_nodelay(true)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let request = Request::get(format!("/web/{WEB_ACCOUNT}/stream"))
            .header(HOST, addr.to_string())
            .header(ORIGIN, WEB_ORIGIN)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        anyhow::ensure!(response.status() == StatusCode::OK, "answered {}", response.status());
        anyhow::Ok((sender, response.into_body()))
    }
    .await;
    drop(permit);
    let (_sender, mut body) = match opened {
        Ok(open) => {
            let _ = established.send(Ok(())).await;
            open
        }
        Err(e) => {
            let _ = established.send(Err(format!("{e:#}"))).await;
            return;
        }
    };
    drop(established);
    let mut text = String::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                text.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = text.find("\n\n") {
                    let block: String = text.drain(..end + 2).collect();
                    arrived(&board, index, &block);
                }
            }
            Some(Err(_)) | None => {
                if !board.stopping.load(Ordering::SeqCst) {
                    board.broken.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        }
    }
}

/// Records a `message` item `bench {k}` read from visitor `index`'s stream.
fn arrived(board: &Board, index: usize, block: &str) {
    let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    if field("event:") != Some("message") {
        return;
    }
    let data: Value = field("data:").and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
    let Some(k) = data["text"].as_str().and_then(|t| t.strip_prefix("bench ")).and_then(|k| k.parse::<usize>().ok())
    else {
        return;
    };
    if k >= board.arrived.len() || k % board.visitors != index {
        board.misrouted.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let _ = board.arrived[k].compare_exchange(NOT_YET, board.now(), Ordering::SeqCst, Ordering::SeqCst);
}

/// Sends every message with `POST /v1/messages`; the number not accepted (202).
async fn push(
    addr: SocketAddr,
    load: &WebLoad,
    sessions: &[(String, String)],
    board: &Arc<Board>,
) -> anyhow::Result<u64> {
    let auth = format!("Bearer {API_TOKEN}");
    let senders: Vec<_> = (0..load.senders.min(load.messages))
        .map(|worker| {
            let (board, auth, senders, messages) = (board.clone(), auth.clone(), load.senders, load.messages);
            let chats: Vec<(usize, String)> =
                (worker..messages).step_by(senders).map(|k| (k, sessions[k % sessions.len()].1.clone())).collect();
            tokio::spawn(async move {
                let mut connection = Connection::open(addr).await?;
                let mut refused = 0u64;
                for (k, chat) in chats {
                    let body = json!({ "channel": "web", "account": WEB_ACCOUNT, "chat_id": chat, "text": format!("bench {k}") });
                    board.sent[k].store(board.now(), Ordering::SeqCst);
                    let (status, answer) = connection.post("/v1/messages", &[("authorization", &auth)], &body).await?;
                    if status != StatusCode::ACCEPTED {
                        refused += 1;
                        if refused == 1 {
                            eprintln!("message {k} refused: {status} {answer}");
                        }
                    }
                }
                anyhow::Ok(refused)
            })
        })
        .collect();
    let mut refused = 0;
    for sender in senders {
        refused += sender.await.context("a sender task panicked")??;
    }
    Ok(refused)
}
