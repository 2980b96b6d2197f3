//! The embedded backend: one SQLite file in WAL mode, one writer thread doing group commit, a
//! syncer thread that makes commits durable, and a reader connection for queries.
//!
//! Group commit: callers send commands to the writer over a channel. The writer takes every
//! command that is waiting (up to [`MAX_BATCH`]), applies them in one transaction and commits.
//! The commit writes the batch's WAL frames; the syncer then `fdatasync`s the WAL file and only
//! after that answers the callers and lets readers see the new events. While the syncer waits
//! for the disk, the writer already applies the next batch: the fsync of batch N overlaps the
//! work of batch N+1, and one fsync covers every batch committed before it started.
//!
//! Durability is that of `synchronous=FULL` (the WAL is on disk before anything is
//! acknowledged); SQLite runs with `synchronous=NORMAL` only so that the fsync happens on the
//! syncer thread instead of inside `COMMIT`. SQLite itself still syncs the WAL before every
//! checkpoint and the header whenever the WAL is restarted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chatgate_model::{
    Channel, ErrorInfo, Event, EventKind, MessageRecord, OutboundRequest, Status, StatusChange, StatusInfo,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::Queue;
use crate::schema::{SCHEMA, migrate};
use crate::types::{
    AppendOutcome, Attempt, Enqueued, InboundRecord, PendingMessage, QueueError, QueueStats, StoredEvent,
};

/// The most commands one transaction takes.
const MAX_BATCH: usize = 4096;

/// The embedded SQLite queue.
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    reader: Mutex<Connection>,
    committed: watch::Receiver<u64>,
    path: PathBuf,
    stats: Arc<Stats>,
    /// Dropping it ends the checkpoint thread.
    _stop_checkpoints: Mutex<std::sync::mpsc::Sender<()>>,
}

#[derive(Debug)]
enum Command {
    /// Records with their envelope JSON, serialised by the caller (off the writer thread).
    Append(Vec<(InboundRecord, String)>, oneshot::Sender<Result<AppendOutcome, QueueError>>),
    Enqueue(Uuid, Box<OutboundRequest>, oneshot::Sender<Result<Enqueued, QueueError>>),
    Attempt(Uuid, Attempt, oneshot::Sender<Result<(), QueueError>>),
    Block(Channel, String, String, bool, oneshot::Sender<Result<(), QueueError>>),
    /// Delete what is older than this time (µs); answers how many events it deleted.
    Prune(i64, oneshot::Sender<Result<u64, QueueError>>),
}

impl SqliteQueue {
    /// Opens (or creates) `chatgate.db` in `dir`, with the default retention.
    pub fn open(dir: &Path) -> Result<SqliteQueue, QueueError> {
        SqliteQueue::open_with(dir, DEFAULT_RETENTION)
    }

    /// Opens (or creates) `chatgate.db` in `dir`. Events, dedup keys and finished outbound
    /// messages older than `retention` are deleted in the background.
    pub fn open_with(dir: &Path, retention: Duration) -> Result<SqliteQueue, QueueError> {
        std::fs::create_dir_all(dir).map_err(|e| QueueError::Storage(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("chatgate.db");
        let writer = Connection::open(&path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // The WAL is fsynced by the syncer thread before any answer (see the module doc).
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.pragma_update(None, "busy_timeout", 5000)?;
        // Checkpoints run on their own thread, off the commit path (see `checkpoint_loop`).
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.execute_batch(SCHEMA)?;
        migrate(&writer, Utc::now().timestamp_micros())?;
        let last: u64 =
            writer.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get::<_, i64>(0))? as u64;

        let reader =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        reader.pragma_update(None, "busy_timeout", 5000)?;

        // Everything already in the WAL (from before a crash) is made durable before we serve.
        let wal_path = wal_path(&path);
        if wal_path.exists() {
            std::fs::File::open(&wal_path)
                .and_then(|f| f.sync_data())
                .map_err(|e| QueueError::Storage(format!("syncing {}: {e}", wal_path.display())))?;
        }

        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let checkpointer = Connection::open(&path)?;
        checkpointer.pragma_update(None, "busy_timeout", 5000)?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        let maintenance = Maintenance { writer: tx.downgrade(), retention };
        std::thread::Builder::new()
            .name("chatgate-queue-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &stopped, &maintenance))
            .map_err(|e| QueueError::Storage(format!("starting the checkpoint thread: {e}")))?;

        let (committed_tx, committed) = watch::channel(last);
        let (to_syncer, synced) = std::sync::mpsc::channel::<Committed>();
        let stats = Arc::new(Stats::default());
        let syncer_stats = stats.clone();
        let writer_stats = stats.clone();
        std::thread::Builder::new()
            .name("chatgate-queue-sync".into())
            .spawn(move || Syncer { wal_path, wal: None, durable: committed_tx, stats: syncer_stats }.run(&synced))
            .map_err(|e| QueueError::Storage(format!("starting the sync thread: {e}")))?;
        std::thread::Builder::new()
            .name("chatgate-queue-writer".into())
            .spawn(move || {
                Writer { conn: writer, last_seq: last, to_syncer, windows: HashMap::new(), stats: writer_stats }.run(rx)
            })
            .map_err(|e| QueueError::Storage(format!("starting the writer thread: {e}")))?;
        Ok(SqliteQueue {
            inner: Arc::new(Inner {
                commands: tx,
                reader: Mutex::new(reader),
                committed,
                path,
                stats,
                _stop_checkpoints: Mutex::new(stop_checkpoints),
            }),
        })
    }

    /// Deletes events, dedup keys and finished outbound messages older than `cutoff` now (the
    /// background pruning does the same every minute); returns how many events went.
    pub async fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, QueueError> {
        let mut total = 0;
        loop {
            let n = self.call(|tx| Command::Prune(cutoff.timestamp_micros(), tx)).await?;
            total += n;
            if n < PRUNE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> Command,
    ) -> Result<T, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.inner.commands.send(make(tx)).await.map_err(|_| QueueError::Closed)?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader.lock().map_err(|_| QueueError::Storage("reader lock poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| QueueError::Storage(format!("reader task: {e}")))?
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn append_inbound(&self, records: Vec<InboundRecord>) -> Result<AppendOutcome, QueueError> {
        if records.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let mut prepared = Vec::with_capacity(records.len());
        for r in records {
            let json = serde_json::to_string(&r.event).map_err(|e| QueueError::Storage(e.to_string()))?;
            prepared.push((r, json));
        }
        self.call(|tx| Command::Append(prepared, tx)).await
    }

    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, QueueError> {
        // Only what is on disk: a committed batch whose fsync is still running stays invisible.
        let durable = *self.inner.committed.borrow();
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 AND seq <= ?3 ORDER BY seq LIMIT ?2")?;
            let rows = stmt.query_map(params![after as i64, limit as i64, durable as i64], |r| {
                let seq = r.get::<_, i64>(0)? as u64;
                let body: String = r.get(1)?;
                Ok(StoredEvent { seq, json: with_seq(seq, &body) })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn wait_events(&self, after: u64, timeout: Duration) -> u64 {
        let mut rx = self.inner.committed.clone();
        let wait = rx.wait_for(|last| *last > after);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(last)) => *last,
            _ => *self.inner.committed.borrow(),
        }
    }

    async fn enqueue(&self, id: Uuid, request: OutboundRequest) -> Result<Enqueued, QueueError> {
        self.call(|tx| Command::Enqueue(id, Box::new(request), tx)).await
    }

    async fn record_attempt(&self, id: Uuid, attempt: Attempt) -> Result<(), QueueError> {
        self.call(|tx| Command::Attempt(id, attempt, tx)).await
    }

    async fn pending_messages(&self) -> Result<Vec<PendingMessage>, QueueError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, request, parts_done, attempts, created_us FROM messages WHERE done = 0 ORDER BY rowid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, request, parts_done, attempts, created) = row?;
                out.push(PendingMessage {
                    id: parse_uuid(&id)?,
                    request: serde_json::from_str(&request).map_err(|e| QueueError::Storage(e.to_string()))?,
                    parts_done: parts_done as u32,
                    attempts: attempts as u32,
                    created_at: from_us(created),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn message(&self, id: Uuid) -> Result<Option<MessageRecord>, QueueError> {
        self.read(move |conn| {
            let key = id.to_string();
            let row = conn
                .prepare_cached(
                    "SELECT request, status, error_code, error_text, created_us FROM messages WHERE id = ?1",
                )?
                .query_row([&key], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()?;
            let Some((request, status, code, text, created)) = row else {
                return Ok(None);
            };
            let request: OutboundRequest =
                serde_json::from_str(&request).map_err(|e| QueueError::Storage(e.to_string()))?;
            let mut stmt =
                conn.prepare_cached("SELECT status, at_us FROM message_history WHERE message_id = ?1 ORDER BY rowid")?;
            let history = stmt
                .query_map([&key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .filter_map(|row| row.ok())
                .filter_map(|(s, at)| Some(StatusChange { status: Status::parse(&s)?, at: from_us(at) }))
                .collect();
            let mut stmt =
                conn.prepare_cached("SELECT external_id FROM external_ids WHERE message_id = ?1 ORDER BY part")?;
            let external_ids = stmt.query_map([&key], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            Ok(Some(MessageRecord {
                id,
                channel: request.channel,
                account: request.account.clone(),
                chat_id: request.chat_id.clone(),
                status: Status::parse(&status).unwrap_or(Status::Queued),
                external_ids,
                error: code.map(|code| ErrorInfo {
                    // Every code ever stored is an `ErrorCode`; a foreign one reads as a bare failure.
                    code: code.parse().unwrap_or(chatgate_model::ErrorCode::ProviderFailed),
                    message: text.unwrap_or_default(),
                }),
                history,
                created_at: from_us(created),
                request,
            }))
        })
        .await
    }

    async fn last_inbound(
        &self,
        channel: Channel,
        account: &str,
        chat_id: &str,
    ) -> Result<Option<DateTime<Utc>>, QueueError> {
        let (account, chat_id) = (account.to_owned(), chat_id.to_owned());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT last_us FROM windows WHERE channel = ?1 AND account = ?2 AND chat_id = ?3")?
                .query_row(params![channel.as_str(), account, chat_id], |r| r.get::<_, i64>(0))
                .optional()?
                .map(from_us))
        })
        .await
    }

    async fn set_blocked(
        &self,
        channel: Channel,
        account: &str,
        customer_id: &str,
        blocked: bool,
    ) -> Result<(), QueueError> {
        let (account, customer_id) = (account.to_owned(), customer_id.to_owned());
        self.call(|tx| Command::Block(channel, account, customer_id, blocked, tx)).await
    }

    fn stats(&self) -> QueueStats {
        let s = &self.inner.stats;
        QueueStats {
            batches: s.batches.load(Ordering::Relaxed),
            commands: s.commands.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            sync_micros: s.sync_micros.load(Ordering::Relaxed),
            durable_seq: *self.inner.committed.borrow(),
        }
    }

    async fn blocked(&self) -> Result<Vec<(Channel, String, String)>, QueueError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT channel, account, customer_id FROM blocks")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (channel, account, customer) = row?;
                if let Ok(channel) = channel.parse() {
                    out.push((channel, account, customer));
                }
            }
            Ok(out)
        })
        .await
    }
}

/// How often WAL frames are copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Copies the WAL into the database file every [`CHECKPOINT_INTERVAL`] without blocking the
/// writer (`PASSIVE`), so the database file's fsync is not on any commit's path. Committed data
/// is durable in the WAL already; a checkpoint only keeps the WAL short.
fn checkpoint_loop(conn: &Connection, stop: &std::sync::mpsc::Receiver<()>, maintenance: &Maintenance) {
    let mut last_prune = std::time::Instant::now();
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; will try again");
        }
        if last_prune.elapsed() >= PRUNE_INTERVAL {
            last_prune = std::time::Instant::now();
            maintenance.prune();
        }
    }
    // Last one on the way out, so a clean shutdown leaves a short WAL.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

/// How long events, dedup keys and finished outbound messages are kept by default. Providers
/// retry for up to 7 days (WhatsApp), so dedup keys must outlive that.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// How often old rows are looked for.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Most events one prune command deletes, so the writer is never held for long.
const PRUNE_CHUNK: i64 = 5000;

/// Deletes what is older than the retention, through the writer (one writer, no lock fights).
struct Maintenance {
    writer: mpsc::WeakSender<Command>,
    retention: Duration,
}

impl Maintenance {
    fn prune(&self) {
        let cutoff = Utc::now() - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        loop {
            let Some(writer) = self.writer.upgrade() else { return };
            let (tx, rx) = oneshot::channel();
            if writer.blocking_send(Command::Prune(cutoff.timestamp_micros(), tx)).is_err() {
                return;
            }
            drop(writer);
            match rx.blocking_recv() {
                Ok(Ok(deleted)) if deleted >= PRUNE_CHUNK as u64 => continue,
                Ok(Ok(_)) => return,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "pruning old queue rows failed; will try again");
                    return;
                }
                Err(_) => return,
            }
        }
    }
}

/// Work counters shared by the writer and syncer threads.
#[derive(Debug, Default)]
struct Stats {
    batches: AtomicU64,
    commands: AtomicU64,
    syncs: AtomicU64,
    sync_micros: AtomicU64,
}

/// A committed batch waiting for its fsync.
struct Committed {
    answers: Vec<(Command, Result<Answer, QueueError>)>,
    last_seq: u64,
}

/// The WAL file next to the database.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Makes committed batches durable, then answers them.
struct Syncer {
    wal_path: PathBuf,
    wal: Option<std::fs::File>,
    durable: watch::Sender<u64>,
    stats: Arc<Stats>,
}

impl Syncer {
    fn run(mut self, rx: &std::sync::mpsc::Receiver<Committed>) {
        while let Ok(first) = rx.recv() {
            let mut ready = vec![first];
            ready.extend(rx.try_iter());
            let started = std::time::Instant::now();
            let synced = self.sync();
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
            self.stats.sync_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            match synced {
                Ok(()) => {
                    let last = ready.iter().map(|c| c.last_seq).max().unwrap_or(0);
                    if last > *self.durable.borrow() {
                        self.durable.send_replace(last);
                    }
                    for (cmd, result) in ready.into_iter().flat_map(|c| c.answers) {
                        answer(cmd, result);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "fsync of the WAL failed; the batch is not acknowledged");
                    for (cmd, _) in ready.into_iter().flat_map(|c| c.answers) {
                        answer(cmd, Err(QueueError::Storage(format!("fsync failed: {e}"))));
                    }
                }
            }
        }
    }

    /// `fdatasync` of the WAL. The file is reopened if SQLite replaced it (checked by inode),
    /// so a sync never lands on a stale file.
    fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let current = std::fs::metadata(&self.wal_path)?.ino();
        let stale = match &self.wal {
            Some(f) => f.metadata()?.ino() != current,
            None => true,
        };
        if stale {
            self.wal = Some(std::fs::File::open(&self.wal_path)?);
        }
        match &self.wal {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    last_seq: u64,
    /// Committed batches go to the syncer, which answers them once they are on disk.
    to_syncer: std::sync::mpsc::Sender<Committed>,
    /// Latest inbound message time per chat, gathered during a batch and written once per chat.
    windows: HashMap<(Channel, String, String), i64>,
    stats: Arc<Stats>,
}

/// A command's result, held until the batch commits.
enum Answer {
    Append(AppendOutcome),
    Enqueue(Enqueued),
    Count(u64),
    Unit,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            self.apply_batch(&mut batch);
        }
    }

    /// Applies a batch in one transaction and answers every command after the commit.
    ///
    /// Fast path: all commands in one go. If one fails, the transaction is rolled back and the
    /// batch is applied again with each command in its own savepoint, so one bad command fails
    /// alone and the others still commit.
    fn apply_batch(&mut self, batch: &mut Vec<Command>) {
        let seq_before = self.last_seq;
        let mut results = self.run_batch(batch, false);
        if results.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.last_seq = seq_before;
            self.windows.clear();
            results = self.run_batch(batch, true);
        }
        let committed = results.and_then(|r| {
            self.conn
                .execute_batch("COMMIT")
                .map(|()| r)
                .map_err(|e| QueueError::Storage(format!("commit failed: {e}")))
        });
        match committed {
            Ok(results) => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.commands.fetch_add(batch.len() as u64, Ordering::Relaxed);
                let answers = batch.drain(..).zip(results).collect();
                if let Err(std::sync::mpsc::SendError(lost)) =
                    self.to_syncer.send(Committed { answers, last_seq: self.last_seq })
                {
                    for (cmd, _) in lost.answers {
                        answer(cmd, Err(QueueError::Closed));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "queue commit failed; the whole batch is refused");
                let _ = self.conn.execute_batch("ROLLBACK");
                self.last_seq = seq_before;
                self.windows.clear();
                for cmd in batch.drain(..) {
                    answer(cmd, Err(QueueError::Storage(e.to_string())));
                }
            }
        }
    }

    /// Runs every command inside `BEGIN IMMEDIATE` (left open). Without `isolate` the first error
    /// aborts the run; with it each command runs in a savepoint and its error is its own.
    fn run_batch(&mut self, batch: &[Command], isolate: bool) -> Result<Vec<Result<Answer, QueueError>>, QueueError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut results = Vec::with_capacity(batch.len());
        for cmd in batch {
            if !isolate {
                results.push(Ok(self.apply(cmd)?));
                continue;
            }
            self.conn.execute_batch("SAVEPOINT cmd")?;
            let seq_before = self.last_seq;
            let result = self.apply(cmd).and_then(|a| self.flush_windows().map(|()| a));
            if result.is_err() {
                self.last_seq = seq_before;
                self.windows.clear();
                self.conn.execute_batch("ROLLBACK TO cmd")?;
            }
            self.conn.execute_batch("RELEASE cmd")?;
            results.push(result);
        }
        self.flush_windows()?;
        Ok(results)
    }

    fn apply(&mut self, cmd: &Command) -> Result<Answer, QueueError> {
        match cmd {
            Command::Append(records, _) => self.append(records).map(Answer::Append),
            Command::Enqueue(id, req, _) => self.enqueue(*id, req).map(Answer::Enqueue),
            Command::Attempt(id, attempt, _) => self.attempt(*id, attempt).map(|()| Answer::Unit),
            Command::Block(channel, account, customer, blocked, _) => {
                self.block(*channel, account, customer, *blocked).map(|()| Answer::Unit)
            }
            Command::Prune(cutoff, _) => self.prune(*cutoff).map(Answer::Count),
        }
    }

    /// Writes the gathered messaging-window times.
    fn flush_windows(&mut self) -> Result<(), QueueError> {
        if self.windows.is_empty() {
            return Ok(());
        }
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO windows (channel, account, chat_id, last_us) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (channel, account, chat_id) DO UPDATE SET last_us = MAX(last_us, excluded.last_us)",
        )?;
        for ((channel, account, chat), at) in self.windows.drain() {
            stmt.execute(params![channel.as_str(), account, chat, at])?;
        }
        Ok(())
    }

    fn push_event(&mut self, body: &str) -> Result<u64, QueueError> {
        self.conn
            .prepare_cached("INSERT INTO events (body, at_us) VALUES (?1, ?2)")?
            .execute(params![body, Utc::now().timestamp_micros()])?;
        let seq = self.conn.last_insert_rowid() as u64;
        self.last_seq = seq;
        Ok(seq)
    }

    fn append(&mut self, records: &[(InboundRecord, String)]) -> Result<AppendOutcome, QueueError> {
        let mut out = AppendOutcome::default();
        for (record, json) in records {
            let event = &record.event;
            let account_key = format!("{}/{}", event.channel, event.account);
            if let Some(key) = &record.dedup_key {
                let inserted = self
                    .conn
                    .prepare_cached("INSERT OR IGNORE INTO dedup (account, key, at_us) VALUES (?1, ?2, ?3)")?
                    .execute(params![account_key, key, event.received_at.timestamp_micros()])?;
                if inserted == 0 {
                    out.duplicates += 1;
                    continue;
                }
            }
            match (event.kind, &event.status) {
                (EventKind::Status, Some(info)) => self.apply_receipt(event, json, info, &mut out)?,
                _ => {
                    if event.kind == EventKind::Message {
                        let at = event.received_at.timestamp_micros();
                        let slot = self
                            .windows
                            .entry((event.channel, event.account.clone(), event.chat_id.clone()))
                            .or_insert(at);
                        *slot = (*slot).max(at);
                    }
                    out.seqs.push(self.push_event(json)?);
                }
            }
        }
        Ok(out)
    }

    /// Merges a provider receipt into the outbox and logs the status events it causes.
    /// `json` is `event` already serialised by the caller; it is stored as is when the receipt is forwarded unchanged.
    fn apply_receipt(
        &mut self,
        event: &Event,
        json: &str,
        info: &StatusInfo,
        out: &mut AppendOutcome,
    ) -> Result<(), QueueError> {
        let targets: Vec<(String, Option<String>)> = match (&info.external_id, info.up_to) {
            (Some(external), _) => {
                let found: Option<String> = self
                    .conn
                    .prepare_cached(
                        "SELECT message_id FROM external_ids WHERE channel = ?1 AND account = ?2 AND external_id = ?3",
                    )?
                    .query_row(params![event.channel.as_str(), event.account, external], |r| r.get(0))
                    .optional()?;
                match found {
                    Some(id) => vec![(id, Some(external.clone()))],
                    None => {
                        // Not one of ours (or sent before this store existed): forward as received.
                        out.seqs.push(self.push_event(json)?);
                        return Ok(());
                    }
                }
            }
            (None, Some(up_to)) => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT id FROM messages WHERE channel = ?1 AND account = ?2 AND chat_id = ?3
                     AND sent_us IS NOT NULL AND sent_us <= ?4 AND status IN ('sent', 'delivered') ORDER BY rowid",
                )?;
                let ids = stmt
                    .query_map(
                        params![event.channel.as_str(), event.account, event.chat_id, up_to.timestamp_micros()],
                        |r| r.get::<_, String>(0),
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                ids.into_iter().map(|id| (id, None)).collect()
            }
            (None, None) => {
                out.seqs.push(self.push_event(json)?);
                return Ok(());
            }
        };
        if targets.is_empty() {
            // A watermark that covers none of our messages still says something to the core.
            out.seqs.push(self.push_event(json)?);
            return Ok(());
        }
        for (id, external) in targets {
            let changed = self.merge_status(&id, info.status, info.error.as_ref(), event.received_at)?;
            match changed {
                Some(status) => {
                    let mut logged = event.clone();
                    logged.id = Uuid::now_v7();
                    logged.status = Some(StatusInfo {
                        message_id: Some(parse_uuid(&id)?),
                        external_id: external.clone(),
                        status,
                        error: info.error.clone(),
                        up_to: info.up_to,
                    });
                    let body = serde_json::to_string(&logged).map_err(|e| QueueError::Storage(e.to_string()))?;
                    out.seqs.push(self.push_event(&body)?);
                }
                None => out.unchanged_statuses += 1,
            }
        }
        Ok(())
    }

    /// Moves a message's status forward; returns the new status if it changed.
    fn merge_status(
        &mut self,
        id: &str,
        reported: Status,
        error: Option<&ErrorInfo>,
        at: DateTime<Utc>,
    ) -> Result<Option<Status>, QueueError> {
        let current: Option<String> = self
            .conn
            .prepare_cached("SELECT status FROM messages WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let Some(current) = current.as_deref().and_then(Status::parse) else {
            return Ok(None);
        };
        let next = current.merge(reported);
        if next == current {
            return Ok(None);
        }
        let (code, text) = match (next, error) {
            (Status::Failed, Some(e)) => (Some(e.code.as_str()), Some(e.message.as_str())),
            _ => (None, None),
        };
        let done = i64::from(next == Status::Failed);
        self.conn
            .prepare_cached(
                "UPDATE messages SET status = ?2, error_code = COALESCE(?3, error_code), error_text = COALESCE(?4, error_text),
                 done = MAX(done, ?5) WHERE id = ?1",
            )?
            .execute(params![id, next.as_str(), code, text, done])?;
        self.conn
            .prepare_cached("INSERT INTO message_history (message_id, status, at_us) VALUES (?1, ?2, ?3)")?
            .execute(params![id, next.as_str(), at.timestamp_micros()])?;
        Ok(Some(next))
    }

    fn enqueue(&mut self, id: Uuid, request: &OutboundRequest) -> Result<Enqueued, QueueError> {
        if let Some(key) = &request.idempotency_key {
            let existing: Option<(String, String, String)> = self
                .conn
                .prepare_cached(
                    "SELECT id, status, request FROM messages WHERE channel = ?1 AND account = ?2 AND idem_key = ?3",
                )?
                .query_row(params![request.channel.as_str(), request.account, key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            if let Some((existing, status, stored)) = existing {
                let existing = parse_uuid(&existing)?;
                let same = serde_json::from_str::<OutboundRequest>(&stored).is_ok_and(|s| &s == request);
                if !same {
                    return Err(QueueError::IdempotencyConflict { existing });
                }
                return Ok(Enqueued {
                    id: existing,
                    status: Status::parse(&status).unwrap_or(Status::Queued),
                    created: false,
                });
            }
        }
        let now = Utc::now();
        let body = serde_json::to_string(&request).map_err(|e| QueueError::Storage(e.to_string()))?;
        self.conn
            .prepare_cached(
                "INSERT INTO messages (id, channel, account, chat_id, request, idem_key, status, created_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
            )?
            .execute(params![
                id.to_string(),
                request.channel.as_str(),
                request.account,
                request.chat_id,
                body,
                request.idempotency_key,
                now.timestamp_micros()
            ])?;
        self.conn
            .prepare_cached("INSERT INTO message_history (message_id, status, at_us) VALUES (?1, 'queued', ?2)")?
            .execute(params![id.to_string(), now.timestamp_micros()])?;
        self.log_status(id, request, Status::Queued, None, None, now)?;
        Ok(Enqueued { id, status: Status::Queued, created: true })
    }

    fn log_status(
        &mut self,
        id: Uuid,
        request: &OutboundRequest,
        status: Status,
        external_id: Option<String>,
        error: Option<ErrorInfo>,
        at: DateTime<Utc>,
    ) -> Result<u64, QueueError> {
        let mut event =
            Event::new(EventKind::Status, request.channel, request.account.clone(), request.chat_id.clone());
        event.received_at = at;
        event.status = Some(StatusInfo { message_id: Some(id), external_id, status, error, up_to: None });
        let body = serde_json::to_string(&event).map_err(|e| QueueError::Storage(e.to_string()))?;
        self.push_event(&body)
    }

    fn load_request(&mut self, id: &str) -> Result<OutboundRequest, QueueError> {
        let body: String = self
            .conn
            .prepare_cached("SELECT request FROM messages WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| QueueError::Storage(format!("no message {id}")))?;
        serde_json::from_str(&body).map_err(|e| QueueError::Storage(e.to_string()))
    }

    fn attempt(&mut self, id: Uuid, attempt: &Attempt) -> Result<(), QueueError> {
        let key = id.to_string();
        let now = Utc::now();
        match attempt {
            Attempt::PartSent { index, external_id, status, last } => {
                let request = self.load_request(&key)?;
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO external_ids (channel, account, external_id, message_id, part) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![request.channel.as_str(), request.account, external_id, key, index])?;
                self.conn
                    .prepare_cached(
                        "UPDATE messages SET parts_done = MAX(parts_done, ?2), sent_us = COALESCE(sent_us, ?3), done = MAX(done, ?4) WHERE id = ?1",
                    )?
                    .execute(params![key, i64::from(*index) + 1, now.timestamp_micros(), i64::from(*last)])?;
                if let Some(next) = self.merge_status(&key, *status, None, now)? {
                    self.log_status(id, &request, next, Some(external_id.clone()), None, now)?;
                }
                Ok(())
            }
            Attempt::Retry { next_at: _, error } => {
                self.conn
                    .prepare_cached("UPDATE messages SET attempts = attempts + 1, error_text = ?2 WHERE id = ?1")?
                    .execute(params![key, error])?;
                Ok(())
            }
            Attempt::Failed { error } => {
                let request = self.load_request(&key)?;
                self.conn
                    .prepare_cached("UPDATE messages SET done = 1, error_code = ?2, error_text = ?3 WHERE id = ?1")?
                    .execute(params![key, error.code.as_str(), error.message])?;
                if let Some(next) = self.merge_status(&key, Status::Failed, Some(error), now)? {
                    self.log_status(id, &request, next, None, Some(error.clone()), now)?;
                }
                Ok(())
            }
        }
    }

    /// Deletes events, dedup keys and finished outbound messages older than `cutoff` (µs), at
    /// most [`PRUNE_CHUNK`] events at a time; returns how many events went.
    fn prune(&mut self, cutoff: i64) -> Result<u64, QueueError> {
        // Events are in time order by seq: look only at the oldest chunk, never the whole log.
        let last_old: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT MAX(seq) FROM (SELECT seq, at_us FROM events ORDER BY seq LIMIT ?2) WHERE at_us < ?1",
            )?
            .query_row(params![cutoff, PRUNE_CHUNK], |r| r.get(0))?;
        let events = match last_old {
            // The newest event always stays: sequence numbers continue from it (SQLite would
            // reuse numbers after the largest row is gone, and the core's cursor would skip them).
            Some(seq) => self
                .conn
                .prepare_cached("DELETE FROM events WHERE seq <= ?1 AND seq < (SELECT MAX(seq) FROM events)")?
                .execute([seq])? as u64,
            None => 0,
        };
        self.conn.prepare_cached("DELETE FROM dedup WHERE at_us < ?1")?.execute([cutoff])?;
        let old_messages = "SELECT id FROM messages WHERE done = 1 AND created_us < ?1";
        self.conn
            .prepare_cached(&format!("DELETE FROM message_history WHERE message_id IN ({old_messages})"))?
            .execute([cutoff])?;
        self.conn
            .prepare_cached(&format!("DELETE FROM external_ids WHERE message_id IN ({old_messages})"))?
            .execute([cutoff])?;
        self.conn.prepare_cached("DELETE FROM messages WHERE done = 1 AND created_us < ?1")?.execute([cutoff])?;
        self.conn.prepare_cached("DELETE FROM windows WHERE last_us < ?1")?.execute([cutoff])?;
        if events > 0 {
            tracing::info!(events, "pruned events past the retention period");
        }
        Ok(events)
    }

    fn block(&mut self, channel: Channel, account: &str, customer: &str, blocked: bool) -> Result<(), QueueError> {
        let sql = if blocked {
            "INSERT OR IGNORE INTO blocks (channel, account, customer_id) VALUES (?1, ?2, ?3)"
        } else {
            "DELETE FROM blocks WHERE channel = ?1 AND account = ?2 AND customer_id = ?3"
        };
        self.conn.prepare_cached(sql)?.execute(params![channel.as_str(), account, customer])?;
        Ok(())
    }
}

/// Sends a command's result to its caller. A caller that went away (client disconnected) is
/// not an error of the store.
fn answer(cmd: Command, result: Result<Answer, QueueError>) {
    let mismatch = || QueueError::Storage("internal: answer does not fit the command".into());
    match cmd {
        Command::Append(_, tx) => drop(tx.send(result.and_then(|a| match a {
            Answer::Append(o) => Ok(o),
            _ => Err(mismatch()),
        }))),
        Command::Enqueue(_, _, tx) => drop(tx.send(result.and_then(|a| match a {
            Answer::Enqueue(e) => Ok(e),
            _ => Err(mismatch()),
        }))),
        Command::Attempt(_, _, tx) | Command::Block(_, _, _, _, tx) => drop(tx.send(result.map(|_| ()))),
        Command::Prune(_, tx) => drop(tx.send(result.and_then(|a| match a {
            Answer::Count(n) => Ok(n),
            _ => Err(mismatch()),
        }))),
    }
}

/// Puts `"seq":N` first into a stored envelope.
fn with_seq(seq: u64, body: &str) -> String {
    match body.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"seq\":{seq}}}"),
        Some(rest) => format!("{{\"seq\":{seq},{rest}"),
        None => body.to_owned(),
    }
}

fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn parse_uuid(s: &str) -> Result<Uuid, QueueError> {
    Uuid::parse_str(s).map_err(|e| QueueError::Storage(format!("bad id {s}: {e}")))
}
