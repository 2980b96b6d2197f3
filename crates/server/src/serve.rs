//! Serving the router on a TCP listener with bounds on everything a client controls.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never fires: a client that
//! sends half a request head keeps its connection (and a file handle) forever, and a graceful
//! shutdown waits for it. This accept loop serves each connection with hyper's HTTP/1 builder
//! *with* a timer, and adds what hyper does not do:
//!
//! - a deadline for reading each request body ([`Limits::body_read_timeout`], a 408 after it);
//! - an idle timeout between requests of a keep-alive connection;
//! - caps on open connections, overall and per peer address: at a cap, the oldest connection
//!   that is not being served (idle, still sending its head, or with its handler waiting for
//!   body bytes) is closed to make room; if every one is busy, the new connection is refused.
//!   Both are counted in `/metrics`;
//! - accept errors (`EMFILE` when file handles run out) are logged and retried after a pause,
//!   never a busy loop and never silent;
//! - a bounded shutdown: when `signal` resolves, the listener closes, the gateway's long-polls
//!   answer at once ([`crate::Gateway::begin_shutdown`]), idle connections close, no new
//!   provider call starts, requests in handlers and provider calls under way get until
//!   [`Limits::shutdown_grace`] to finish, then everything left is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::CONNECTION;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::Gateway;

/// What a client may hold and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time to receive a whole request head, from its first byte.
    pub header_read_timeout: Duration,
    /// Time to receive a whole request body, from when the handler starts reading it.
    pub body_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections at most (lowered at start to fit the file-handle limit).
    pub max_connections: usize,
    /// Open connections from one peer address at most.
    pub max_connections_per_peer: usize,
    /// After the shutdown signal: how long requests already in handlers may take.
    pub shutdown_grace: Duration,
}

/// Open connections at most, by default. Each served connection holds about 27 KiB (hyper's read
/// and write buffers, the request in flight; measured with `chatgate-bench overload`), so 768 of
/// them keep the gateway under 64 MiB when more clients come than it can serve; those past the
/// cap are answered `503` with `Retry-After`. An SSE stream of a web visitor is a connection too:
/// raise it (`--max-connections`) for more open web chats than that.
pub const DEFAULT_MAX_CONNECTIONS: usize = 768;
/// Open connections from one peer address at most, by default.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 384;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Lowers [`Limits::max_connections`] (and the per-peer cap with it) so that the open
    /// connections leave `reserve` file handles for the store, outbound calls and logs, and a
    /// quarter of the rest for sockets accepted while shed ones are still closing.
    pub fn fit_file_limit(mut self, open_files: u64, reserve: u64) -> Limits {
        let room = (open_files.saturating_sub(reserve) / 4 * 3).max(16) as usize;
        self.max_connections = self.max_connections.min(room);
        self.max_connections_per_peer = self.max_connections_per_peer.min(self.max_connections);
        self
    }
}

/// Connection figures for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub open: AtomicUsize,
    pub accepted: AtomicU64,
    /// Refused at a cap because no open connection was idle.
    pub refused: AtomicU64,
    /// Of those, closed without an answer: every refusal slot was busy.
    pub refused_unanswered: AtomicU64,
    /// Closed to make room for a new connection.
    pub shed: AtomicU64,
    /// Closed after the idle timeout.
    pub idle_closed: AtomicU64,
    pub accept_errors: AtomicU64,
    /// Request bodies that did not arrive within the body read timeout.
    pub body_timeouts: AtomicU64,
}

/// One open connection as the accept loop sees it.
#[derive(Debug)]
struct Entry {
    peer: IpAddr,
    opened: Instant,
    state: Arc<ConnState>,
}

/// What the accept loop needs to know of a connection, and how to close it.
#[derive(Debug)]
struct ConnState {
    /// Requests of this connection inside a handler.
    busy: AtomicUsize,
    /// Its handler waits for body bytes that do not come.
    waiting_for_body: AtomicBool,
    /// An answer was taken by hyper and is not yet all written to the socket (hyper holds it in
    /// its own buffer until it flushes).
    unflushed: AtomicBool,
    /// It has answered a request.
    answered: AtomicBool,
    /// When its last request ended, or when it opened.
    last_active: Mutex<Instant>,
    /// Chosen to be shed: a request that begins now is refused, a body still arriving errors.
    closing: AtomicBool,
    close: Notify,
}

/// How long after its last answer a connection is kept from shedding: at a cap, a client that
/// is being served keeps its connection and a newcomer is told to come back (`503`), rather than
/// closing a busy client's connection between two of its requests.
const SHED_AFTER_ANSWER: Duration = Duration::from_secs(1);

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            busy: AtomicUsize::new(0),
            waiting_for_body: AtomicBool::new(false),
            unflushed: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            last_active: Mutex::new(Instant::now()),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    /// How long it has been without a request in a handler.
    fn idle_for(&self) -> Duration {
        self.last_active.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }

    /// Closing it loses no work: its handler only waits for the client's body (nothing is stored
    /// before the whole body is there), or nothing is in a handler and every answer is written
    /// out. A connection that answered less than [`SHED_AFTER_ANSWER`] ago is kept; one that
    /// never completed a request (a half-sent head) is not.
    fn sheddable(&self) -> bool {
        if self.waiting_for_body.load(Ordering::SeqCst) {
            return true;
        }
        self.busy.load(Ordering::SeqCst) == 0
            && !self.unflushed.load(Ordering::SeqCst)
            && (!self.answered.load(Ordering::SeqCst) || self.idle_for() >= SHED_AFTER_ANSWER)
    }

    /// Marks it [`ConnState::closing`] if it is sheddable. A request may begin (or its body
    /// arrive) at the same moment: each side writes its own flag, then reads the other's, so
    /// either the request sees `closing` and is refused before anything is stored, or this sees
    /// the request and leaves the connection alone.
    fn claim(&self) -> bool {
        if !self.sheddable() {
            return false;
        }
        self.closing.store(true, Ordering::SeqCst);
        if self.waiting_for_body.load(Ordering::SeqCst)
            || (self.busy.load(Ordering::SeqCst) == 0 && !self.unflushed.load(Ordering::SeqCst))
        {
            return true;
        }
        self.closing.store(false, Ordering::SeqCst);
        false
    }
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Entry>,
    per_peer: HashMap<IpAddr, usize>,
}

impl Table {
    /// Claims the oldest sheddable connection, among all or those of `peer` (see
    /// [`ConnState::claim`]).
    fn claim_oldest_idle(&self, peer: Option<IpAddr>) -> Option<u64> {
        let mut idle: Vec<(Instant, u64)> = self
            .open
            .iter()
            .filter(|(_, e)| peer.is_none_or(|p| p == e.peer) && e.state.sheddable())
            .map(|(id, e)| (e.opened, *id))
            .collect();
        idle.sort_unstable();
        idle.into_iter().map(|(_, id)| id).find(|id| self.open[id].state.claim())
    }

    fn remove(&mut self, id: u64) {
        if let Some(e) = self.open.remove(&id)
            && let Some(n) = self.per_peer.get_mut(&e.peer)
        {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&e.peer);
            }
        }
    }
}

/// Serves `gateway` on `listener` until `signal` resolves, then shuts down within
/// [`Limits::shutdown_grace`] (plus the time to close sockets).
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    limits: Limits,
    signal: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let stats = gateway.connection_stats();
    let router = gateway.router();
    let table = Arc::new(Mutex::new(Table::default()));
    let refusing = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(signal);
    loop {
        let accepted = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                // EMFILE/ENFILE: out of file handles. Log and pause instead of spinning;
                // idle timeouts and shedding give handles back.
                tracing::error!(error = %e, open = stats.open.load(Ordering::Relaxed), "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = addr.ip();
        let Some((id, state)) = admit(&table, &limits, &stats, peer) else {
            // Answered 503 while a refusal slot is free; closed without an answer otherwise.
            if let Some(slot) = RefusalSlot::take(&refusing, refusal_slots(&limits)) {
                let timeout = limits.header_read_timeout.min(REFUSAL_TIMEOUT);
                tasks.spawn(async move {
                    refuse(stream, timeout).await;
                    drop(slot);
                });
            } else {
                stats.refused_unanswered.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let router = router.clone();
        let (table, stats, limits, stop) = (table.clone(), stats.clone(), limits.clone(), stop_rx.clone());
        tasks.spawn(async move {
            connection(stream, addr, router, &limits, &stats, state, stop).await;
            table.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
            stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }

    drop(listener);
    let open = stats.open.load(Ordering::Relaxed);
    tracing::info!(open, grace = ?limits.shutdown_grace, "shutting down: answering long-polls, closing idle connections");
    gateway.begin_shutdown();
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
        gateway.drain_deliveries().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(left = tasks.len(), "shutdown grace over; dropping the connections still open");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Registers a new connection from `peer`, closing the oldest idle one at a cap; `None` when
/// the cap is reached and nothing can be closed.
fn admit(
    table: &Mutex<Table>,
    limits: &Limits,
    stats: &ConnectionStats,
    peer: IpAddr,
) -> Option<(u64, Arc<ConnState>)> {
    let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
    for (full, of_peer) in [
        (t.per_peer.get(&peer).copied().unwrap_or(0) >= limits.max_connections_per_peer, Some(peer)),
        (t.open.len() >= limits.max_connections, None),
    ] {
        if !full {
            continue;
        }
        match t.claim_oldest_idle(of_peer) {
            Some(victim) => {
                if let Some(e) = t.open.get(&victim) {
                    e.state.close.notify_one();
                }
                t.remove(victim);
                stats.shed.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                let refused = stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if refused.is_power_of_two() {
                    tracing::warn!(%peer, open = t.open.len(), refused, "connection refused: at the connection cap and none is idle");
                }
                return None;
            }
        }
    }
    let id = t.next;
    t.next += 1;
    let state = Arc::new(ConnState::new());
    t.open.insert(id, Entry { peer, opened: Instant::now(), state: state.clone() });
    *t.per_peer.entry(peer).or_default() += 1;
    Some((id, state))
}

/// Serves one connection until the client closes it, it idles out, it is shed, or shutdown.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &Limits,
    stats: &Arc<ConnectionStats>,
    state: Arc<ConnState>,
    mut stop: watch::Receiver<bool>,
) {
    let service = {
        let (state, stats) = (state.clone(), stats.clone());
        let body_timeout = limits.body_read_timeout;
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let guard = Busy::enter(state.clone());
            // Chosen to be shed as this request began: refused before it is handled.
            let refused = state.closing.load(Ordering::SeqCst);
            let (router, stats) = (router.clone(), stats.clone());
            let timed_out = Arc::new(AtomicBool::new(false));
            let (mut parts, body) = request.into_parts();
            // Handlers that limit per client address read it as axum's `ConnectInfo`.
            parts.extensions.insert(axum::extract::ConnectInfo(peer));
            let body = DeadlineBody::new(Body::new(body), body_timeout, timed_out.clone(), state.clone());
            let request = Request::from_parts(parts, Body::new(body));
            async move {
                if refused {
                    return Ok(crate::error::too_many_connections());
                }
                let response = router.oneshot(request).await;
                if timed_out.load(Ordering::Acquire) {
                    drop(guard);
                    stats.body_timeouts.fetch_add(1, Ordering::Relaxed);
                    let refusal = (StatusCode::REQUEST_TIMEOUT, [(CONNECTION, "close")], "request body timed out");
                    return Ok(refusal.into_response());
                }
                response.map(|response| busy_until_sent(response, guard))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(Flushes { io: stream, state: state.clone() }), service);
    tokio::pin!(conn);
    let mut tick =
        tokio::time::interval(limits.idle_timeout.min(Duration::from_secs(1)).max(Duration::from_millis(50)));
    let mut stopping = *stop.borrow();
    if stopping {
        return;
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = state.close.notified() => return,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || state.busy.load(Ordering::Acquire) == 0 {
                    return;
                }
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if state.busy.load(Ordering::Acquire) > 0 {
                    continue;
                }
                // Between requests (or still sending a head) during shutdown: nothing to finish.
                if stopping {
                    return;
                }
                let idle = state.idle_for();
                if idle >= limits.idle_timeout {
                    stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// Most connections refused at a cap that are answered at once: a quarter of the connection cap
/// (the file handles [`Limits::fit_file_limit`] keeps for sockets that are closing), at most 256.
fn refusal_slots(limits: &Limits) -> usize {
    (limits.max_connections / 4).clamp(1, 256)
}

/// The longest a refused connection may take to send its request before it is closed unanswered.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes a refused connection may send before its answer (its head) and after it (its body,
/// read and dropped): closing a socket with unread bytes resets it, and the reset can destroy
/// the answer before the client reads it.
const REFUSAL_READ_LIMIT: usize = 64 << 10;

/// One of the [`refusal_slots`], held while a refused connection is answered.
struct RefusalSlot(Arc<AtomicUsize>);

impl RefusalSlot {
    fn take(refusing: &Arc<AtomicUsize>, slots: usize) -> Option<RefusalSlot> {
        refusing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < slots).then_some(n + 1))
            .ok()
            .map(|_| RefusalSlot(refusing.clone()))
    }
}

impl Drop for RefusalSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a connection refused at a cap with `503 overloaded`, `Retry-After` and
/// `Connection: close`, then closes it. The client learns why and when to come back instead of
/// seeing a reset. The request is not parsed: its head is read up to its blank line, the answer
/// written, and what else the client sends (its body) read and dropped until it closes, so that
/// closing does not reset the answer away. A small buffer, no HTTP stack: an answered refusal
/// costs about what the accept does.
async fn refuse(mut stream: tokio::net::TcpStream, timeout: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = async {
        let mut buf = [0u8; 1024];
        // Bytes of the blank line ("\r\n\r\n") seen in a row; it may straddle two reads.
        let (mut matched, mut head) = (0, 0);
        while matched < 4 {
            let n = stream.read(&mut buf).await?;
            head += n;
            if n == 0 || head > REFUSAL_READ_LIMIT {
                return Ok(());
            }
            for &b in &buf[..n] {
                matched = match (matched, b) {
                    (0 | 2, b'\r') | (1 | 3, b'\n') => matched + 1,
                    (_, b'\r') => 1,
                    _ => 0,
                };
                if matched == 4 {
                    break;
                }
            }
        }
        stream.write_all(crate::error::too_many_connections_raw().as_bytes()).await?;
        stream.shutdown().await?;
        let mut drained = 0;
        while drained <= REFUSAL_READ_LIMIT {
            match stream.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(timeout, answer).await;
}

/// Counts a request as inside a handler for as long as it lives.
struct Busy {
    state: Arc<ConnState>,
}

impl Busy {
    fn enter(state: Arc<ConnState>) -> Busy {
        state.busy.fetch_add(1, Ordering::SeqCst);
        Busy { state }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.state.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.state.waiting_for_body.store(false, Ordering::SeqCst);
        // Dropped once hyper has taken the whole answer into its buffer (see `busy_until_sent`):
        // it is on the socket at the next flush.
        self.state.unflushed.store(true, Ordering::SeqCst);
        self.state.answered.store(true, Ordering::SeqCst);
        self.state.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's socket that tells its [`ConnState`] when an answer is all written out: hyper
/// flushes the socket only once its own write buffer is empty.
struct Flushes {
    io: tokio::net::TcpStream,
    state: Arc<ConnState>,
}

impl tokio::io::AsyncRead for Flushes {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Flushes {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            this.state.unflushed.store(false, Ordering::SeqCst);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Keeps the connection counted busy until hyper has taken the whole answer, not only until the
/// handler returned: an answer still on its way out must not be cut by shedding (a webhook that
/// was stored would lose its 2xx, and its provider would send it again). Streams without a
/// known length (server-sent events) are not held: they may last for minutes and their
/// connection stays sheddable as before.
fn busy_until_sent(response: Response, guard: Busy) -> Response {
    if hyper::body::Body::size_hint(response.body()).exact().is_none() {
        return response;
    }
    response.map(|body| Body::new(SentGuard { inner: body, _busy: guard }))
}

/// A response body that holds its connection's [`Busy`] guard until hyper drops it (after its
/// last frame).
struct SentGuard {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for SentGuard {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that errors once its deadline passes (then `timed_out` is set, and the
/// request is answered 408), and marks its connection as waiting while bytes do not come.
///
/// The timer is armed only when the body has to wait for bytes: a body that is already in the
/// connection's buffer (almost every webhook) is read without touching tokio's timer wheel.
struct DeadlineBody {
    inner: Body,
    timeout: Duration,
    /// When the handler first read the body.
    started: Option<Instant>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
    conn: Arc<ConnState>,
}

impl DeadlineBody {
    fn new(inner: Body, timeout: Duration, timed_out: Arc<AtomicBool>, conn: Arc<ConnState>) -> DeadlineBody {
        DeadlineBody { inner, timeout, started: None, deadline: None, timed_out, conn }
    }

    fn time_out(&mut self) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.timed_out.store(true, Ordering::Release);
        Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(self.timeout)))))
    }
}

/// The error of a body whose connection is being shed.
#[derive(Debug, thiserror::Error)]
#[error("the connection is closing")]
struct ConnectionClosing;

/// The error of a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
struct BodyTimedOut(Duration);

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        // The clock starts at the first read: a handler that never reads the body is not timed.
        let started = *this.started.get_or_insert_with(Instant::now);
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.conn.waiting_for_body.store(polled.is_pending(), Ordering::SeqCst);
        // Chosen to be shed while the body was awaited: the body never completes, so nothing
        // of it is stored on a connection about to close (see `ConnState::claim`).
        if this.conn.closing.load(Ordering::SeqCst) {
            return Poll::Ready(Some(Err(axum::Error::new(ConnectionClosing))));
        }
        if polled.is_ready() {
            // Bytes that trickle in keep the body ready now and then; the deadline still holds.
            if this.deadline.is_some() && started.elapsed() >= this.timeout {
                return this.time_out();
            }
            return polled;
        }
        let at = tokio::time::Instant::from_std(started + this.timeout);
        let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if deadline.as_mut().poll(cx).is_ready() {
            return this.time_out();
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft limit of open files to the hard limit; returns the limit now in force.
/// The common soft limit of 1024 is far below what a gateway with thousands of clients needs.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(Resource::Nofile, rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum })?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_caps_fit_the_file_limit() {
        let wide = Limits { max_connections: 8192, max_connections_per_peer: 2048, ..Limits::default() };
        let limits = wide.fit_file_limit(1024, 128);
        assert_eq!(limits.max_connections, 672);
        assert_eq!(limits.max_connections_per_peer, 672);
        let limits = Limits::default().fit_file_limit(1024, 128);
        assert_eq!((limits.max_connections, limits.max_connections_per_peer), (672, DEFAULT_MAX_CONNECTIONS_PER_PEER));
        let roomy = Limits::default().fit_file_limit(1 << 20, 128);
        assert_eq!(roomy.max_connections, Limits::default().max_connections);
    }

    #[test]
    fn at_a_cap_the_oldest_idle_connection_of_that_peer_makes_room() {
        let limits = Limits { max_connections: 3, max_connections_per_peer: 2, ..Limits::default() };
        let (table, stats) = (Mutex::new(Table::default()), ConnectionStats::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (first, first_state) = admit(&table, &limits, &stats, a).unwrap();
        let (second, second_state) = admit(&table, &limits, &stats, a).unwrap();
        // `a` is at its cap; the first connection is in a handler, so the second one goes.
        first_state.busy.store(1, Ordering::Release);
        let (third, third_state) = admit(&table, &limits, &stats, a).unwrap();
        {
            let t = table.lock().unwrap();
            assert!(t.open.contains_key(&first) && t.open.contains_key(&third) && !t.open.contains_key(&second));
        }
        assert_eq!(stats.shed.load(Ordering::Relaxed), 1);
        drop(second_state);
        // Both of `a`'s connections busy: a fourth from `a` is refused, one from `b` is taken.
        third_state.busy.store(1, Ordering::Release);
        assert!(admit(&table, &limits, &stats, a).is_none());
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
        assert!(admit(&table, &limits, &stats, b).is_some());
        // Overall cap (3) with all busy except `b`'s: a new peer sheds `b`'s idle one.
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(admit(&table, &limits, &stats, c).is_some());
        assert_eq!(table.lock().unwrap().per_peer.get(&b), None);

        // A handler that only waits for body bytes can be shed too.
        third_state.waiting_for_body.store(true, Ordering::Release);
        assert!(admit(&table, &limits, &stats, a).is_some());
        assert!(!table.lock().unwrap().open.contains_key(&third));
    }

    #[test]
    fn a_connection_is_kept_while_its_answer_is_unwritten_and_for_a_while_after_it() {
        let state = Arc::new(ConnState::new());
        assert!(state.sheddable(), "a connection that never sent a whole request can go");
        let busy = Busy::enter(state.clone());
        assert!(!state.sheddable(), "a request in its handler");
        drop(busy);
        assert!(!state.sheddable(), "its answer is still in hyper's buffer");
        state.unflushed.store(false, Ordering::Release);
        assert!(!state.sheddable(), "it answered just now");
        *state.last_active.lock().unwrap() -= SHED_AFTER_ANSWER;
        assert!(state.sheddable(), "idle since its answer for {SHED_AFTER_ANSWER:?}");
        // Waiting for body bytes that do not come: nothing is stored yet, it can go at once.
        let busy = Busy::enter(state.clone());
        state.waiting_for_body.store(true, Ordering::Release);
        assert!(state.sheddable());
        drop(busy);
    }

    #[tokio::test]
    async fn the_socket_reports_the_answer_written_when_hyper_flushes_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let state = Arc::new(ConnState::new());
        state.unflushed.store(true, Ordering::Release);
        let mut io = Flushes { io: server, state: state.clone() };
        io.write_all(b"answer").await.unwrap();
        assert!(state.unflushed.load(Ordering::Acquire), "written but not flushed");
        io.flush().await.unwrap();
        assert!(!state.unflushed.load(Ordering::Acquire));
        let mut read = [0; 6];
        let mut client = client;
        client.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"answer");
    }

    #[tokio::test]
    async fn a_connection_refused_at_the_cap_is_answered_503_with_retry_after_and_closed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let refusing = Arc::new(AtomicUsize::new(0));
        let slot = RefusalSlot::take(&refusing, 1).unwrap();
        assert!(RefusalSlot::take(&refusing, 1).is_none(), "one slot only");
        let task = tokio::spawn(async move {
            refuse(server, Duration::from_secs(2)).await;
            drop(slot);
        });
        let body = "x".repeat(3000);
        let request =
            format!("POST /webhooks/telegram/a HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        drop(client);
        task.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("retry-after: 1\r\n") && lower.contains("connection: close\r\n"), "{answer}");
        assert!(
            answer.ends_with(r#"{"error":{"code":"overloaded","message":"too many connections; retry"}}"#),
            "{answer}"
        );
        assert_eq!(refusing.load(Ordering::Acquire), 0, "the slot is given back");
        assert!(RefusalSlot::take(&refusing, 1).is_some());
    }
}
