//! The load generator: keep-alive HTTP/1.1 connections, each sending webhook POSTs back to back.
//!
//! A request counts in the measured phase when its answer arrives within it. Every 2xx, at any
//! time (warm-up, measured phase, or the last answers after the stop), counts as acknowledged:
//! that is what the durability check compares with the store. Latencies are those of the 2xx
//! answers; 503 answers (shedding) are counted apart, with whether they carried `Retry-After`,
//! and their own latencies.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;

use crate::serve::{PATH, SECRET_TOKEN};

/// How hard and how long to push.
#[derive(Debug, Clone)]
pub struct Load {
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one server did under [`Load`].
#[derive(Debug, Default)]
pub struct Report {
    /// The actual length of the measured phase.
    pub measured: Duration,
    /// 2xx answers in the measured phase.
    pub ok: u64,
    /// Other answers in the measured phase (503s included).
    pub non_2xx: u64,
    /// 503 answers in the measured phase.
    pub shed: u64,
    /// 503 answers in the measured phase that carried `Retry-After`.
    pub shed_with_retry_after: u64,
    /// Failed connects and requests whose connection broke, over the whole run.
    pub transport_errors: u64,
    /// Of those, requests with no answer within [`ANSWER_TIMEOUT`] (a server that never answers).
    pub stalled: u64,
    /// 2xx answers over the whole run, warm-up included.
    pub acknowledged: u64,
    /// Latency of every measured 2xx answer, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Latency of every measured 503 answer, in microseconds, sorted.
    pub shed_latencies_us: Vec<u32>,
}

impl Report {
    pub fn requests_per_second(&self) -> f64 {
        self.ok as f64 / self.measured.as_secs_f64()
    }

    /// The latency of the 2xx answers at quantile `q` (0..=1), nearest rank, in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies_us, q)
    }

    /// Adds `other`'s figures (a later window of the same load) to these.
    pub fn merge(&mut self, other: Report) {
        self.measured += other.measured;
        self.ok += other.ok;
        self.non_2xx += other.non_2xx;
        self.shed += other.shed;
        self.shed_with_retry_after += other.shed_with_retry_after;
        self.transport_errors += other.transport_errors;
        self.stalled += other.stalled;
        self.acknowledged += other.acknowledged;
        self.latencies_us.extend_from_slice(&other.latencies_us);
        self.latencies_us.sort_unstable();
        self.shed_latencies_us.extend_from_slice(&other.shed_latencies_us);
        self.shed_latencies_us.sort_unstable();
    }

    /// One line: requests/s, p50, p99, errors.
    pub fn summary(&self) -> String {
        format!(
            "requests/s={:.0}  p50={:.2}ms p99={:.2}ms  errors={} (non-2xx={} transport={})",
            self.requests_per_second(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.non_2xx + self.transport_errors,
            self.non_2xx,
            self.transport_errors,
        )
    }
}

/// A realistic Telegram text-message update with `update_id` (and message id) `n`.
pub fn body(n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(448);
    let _ = write!(
        out,
        r#"{{"update_id":{n},"message":{{"message_id":{n},"from":{{"id":731904215,"is_bot":false,"first_name":"Marta","last_name":"Kowalczyk","username":"marta_k","language_code":"pl"}},"chat":{{"id":731904215,"first_name":"Marta","last_name":"Kowalczyk","username":"marta_k","type":"private"}},"date":1767607200,"text":"Hello! I ordered a blue jacket last week (order 48213) and it still has not arrived. Could you check where it is, please?"}}}}"#
    );
    out
}

/// The value at quantile `q` (0..=1) of sorted microseconds, nearest rank, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Drives `127.0.0.1:port` with `load`. `at_end` runs at the end of the measured phase, while
/// the load is still on (to sample the server's memory).
pub async fn run(port: u16, load: &Load, at_end: impl FnOnce()) -> anyhow::Result<Report> {
    run_from(port, load, 1, at_end).await
}

/// [`run`] with `update_id`s from `first_id` (two servers sharing one store get disjoint ids).
pub async fn run_from(port: u16, load: &Load, first_id: u64, at_end: impl FnOnce()) -> anyhow::Result<Report> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let next_id = Arc::new(AtomicU64::new(first_id));
    let tasks: Vec<_> = (0..load.connections)
        .map(|i| tokio::spawn(connection(addr, source(i), phase.clone(), next_id.clone())))
        .collect();

    tokio::time::sleep(load.warmup).await;
    phase.store(MEASURE, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(load.measure).await;
    let measured = started.elapsed();
    at_end();
    phase.store(STOP, Ordering::SeqCst);

    let mut report = Report { measured, ..Report::default() };
    for task in tasks {
        let t = task.await.context("a connection task panicked")?;
        report.ok += t.ok;
        report.non_2xx += t.non_2xx;
        report.shed += t.shed;
        report.shed_with_retry_after += t.shed_with_retry_after;
        report.shed_latencies_us.extend_from_slice(&t.shed_latencies_us);
        report.transport_errors += t.transport_errors;
        report.stalled += t.stalled;
        report.acknowledged += t.acknowledged;
        report.latencies_us.extend_from_slice(&t.latencies_us);
    }
    report.latencies_us.sort_unstable();
    report.shed_latencies_us.sort_unstable();
    Ok(report)
}

/// One connection's share of a [`Report`].
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    non_2xx: u64,
    shed: u64,
    shed_with_retry_after: u64,
    transport_errors: u64,
    stalled: u64,
    acknowledged: u64,
    latencies_us: Vec<u32>,
    shed_latencies_us: Vec<u32>,
}

/// The longest a request may wait for its whole answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Loopback addresses the connections come from, in turn: like webhooks from many provider
/// hosts, so that thousands of connections stay under the server's per-peer cap.
const SOURCES: usize = 16;

/// The address connection `i` comes from: 127.0.0.1 to 127.0.0.[`SOURCES`].
fn source(i: usize) -> std::net::IpAddr {
    std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCES) as u8).into()
}

/// Keeps one connection busy until the stop; reconnects if it breaks.
async fn connection(addr: SocketAddr, from: std::net::IpAddr, phase: Arc<AtomicU8>, next_id: Arc<AtomicU64>) -> Tally {
    // Small at first: the overload scenario runs thousands of connections.
    let mut tally = Tally { latencies_us: Vec::with_capacity(1 << 10), ..Tally::default() };
    let host = addr.to_string();
    while phase.load(Ordering::Relaxed) != STOP {
        if let Err(e) = requests(addr, from, &host, &phase, &next_id, &mut tally).await {
            tally.transport_errors += 1;
            tally.stalled += u64::from(e.is::<tokio::time::error::Elapsed>());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tally
}

/// Sends requests on one connection until the stop or a transport error.
async fn requests(
    addr: SocketAddr,
    from: std::net::IpAddr,
    host: &str,
    phase: &AtomicU8,
    next_id: &AtomicU64,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let result = async {
        while phase.load(Ordering::Relaxed) != STOP {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let request = Request::post(PATH)
                .header(HOST, host)
                .header(CONTENT_TYPE, "application/json")
                .header("x-telegram-bot-api-secret-token", SECRET_TOKEN)
                .body(Full::new(Bytes::from(body(id))))?;
            sender.ready().await?;
            let sent = Instant::now();
            // A request the server never answers ends as a transport error, counted as stalled,
            // instead of holding the run forever.
            let (status, retry_after, closing) = tokio::time::timeout(ANSWER_TIMEOUT, async {
                let response = sender.send_request(request).await?;
                let status = response.status();
                let retry_after = response.headers().contains_key(hyper::header::RETRY_AFTER);
                // A connection refused at the server's cap is answered once and closed: reconnect.
                let closing = response.headers().get(hyper::header::CONNECTION).is_some_and(|v| v == "close");
                response.into_body().collect().await?;
                anyhow::Ok((status, retry_after, closing))
            })
            .await??;
            let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
            if status.is_success() {
                tally.acknowledged += 1;
            }
            if phase.load(Ordering::Relaxed) == MEASURE {
                if status.is_success() {
                    tally.ok += 1;
                    tally.latencies_us.push(micros);
                } else {
                    tally.non_2xx += 1;
                }
                if status == hyper::StatusCode::SERVICE_UNAVAILABLE {
                    tally.shed += 1;
                    tally.shed_with_retry_after += u64::from(retry_after);
                    tally.shed_latencies_us.push(micros);
                }
            }
            if closing {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    drop(sender);
    driver.abort();
    result
}
