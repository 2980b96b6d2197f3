//! The embedded backend: one SQLite file in WAL mode, one writer thread doing group commit, and a
//! reader connection for queries.
//!
//! Group commit: callers send commands to the writer over a channel. The writer takes every
//! command that is waiting (up to `MAX_BATCH`), applies them in one transaction, commits,
//! `fdatasync`s the WAL, and only after that answers the callers and lets readers see the new
//! events. Commands that arrive meanwhile wait in the channel and all go in the next transaction:
//! one commit per fsync.
//!
//! Durability is that of `synchronous=FULL` (the WAL is on disk before anything is
//! acknowledged); SQLite runs with `synchronous=NORMAL` only so that the writer syncs the WAL
//! itself and counts it. SQLite itself still syncs the WAL before every checkpoint and the header
//! whenever the WAL is restarted.
//!
//! One file per role: `pipeline` (commands, writer, sync), `inbound` (log, dedup, windows,
//! receipts), `outbox` (outbound messages and their status), `blocks`, `maintenance`
//! (checkpoints and retention) and `schema` (tables and migrations). This file opens the store,
//! starts the threads and implements [`Queue`] by sending commands or running reads.

mod blocks;
mod cursors;
mod inbound;
mod maintenance;
mod outbox;
mod pipeline;
mod schema;
mod visitors;

pub use maintenance::DEFAULT_RETENTION;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chatgate_model::{Conversation, CustomerRef, MessageRecord, OutboundRequest};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use self::blocks::Block;
use self::maintenance::{Maintenance, WAL_SIZE_LIMIT, checkpoint_loop, prune_loop};
use self::pipeline::{Call, Command, MAX_BATCH, Stats, Syncer, Writer, wal_path};
use crate::Queue;
use crate::types::{
    AccountHold, AppendOutcome, Attempt, Enqueued, InboundRecord, PendingMessage, QueueError, QueueStats, StoredEvent,
    VisitorAppend, VisitorAppended, VisitorItem,
};

/// Bytes of a WAL frame's header (before its page).
const WAL_FRAME_HEADER: u64 = 24;

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
    /// The last visitor stream item on disk.
    committed_items: watch::Receiver<u64>,
    path: PathBuf,
    stats: Arc<Stats>,
    /// Dropping them ends the checkpoint and prune threads.
    _stop_maintenance: Mutex<[std::sync::mpsc::Sender<()>; 2]>,
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
        check_not_truncated(&path)?;
        let mut writer = Connection::open(&path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // The writer fsyncs the WAL itself before any answer (see the module doc).
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.pragma_update(None, "busy_timeout", 5000)?;
        // Checkpoints run on their own thread, off the commit path (see `maintenance`).
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        schema::migrate(&mut writer, Utc::now().timestamp_micros())?;
        let page_size: u64 = writer.pragma_query_value(None, "page_size", |r| r.get::<_, i64>(0))? as u64;
        let last: u64 =
            writer.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get::<_, i64>(0))? as u64;
        let last_item: u64 =
            writer.query_row("SELECT COALESCE(MAX(id), 0) FROM visitor_items", [], |r| r.get::<_, i64>(0))? as u64;

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
        let stats = Arc::new(Stats::default());
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        let checkpoint_stats = stats.clone();
        std::thread::Builder::new()
            .name("chatgate-queue-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &stopped, &checkpoint_stats))
            .map_err(|e| QueueError::Storage(format!("starting the checkpoint thread: {e}")))?;
        let (stop_pruning, stopped) = std::sync::mpsc::channel::<()>();
        let maintenance = Maintenance { writer: tx.downgrade(), retention };
        std::thread::Builder::new()
            .name("chatgate-queue-prune".into())
            .spawn(move || prune_loop(&stopped, &maintenance))
            .map_err(|e| QueueError::Storage(format!("starting the prune thread: {e}")))?;

        let (committed_tx, committed) = watch::channel(last);
        let (items_tx, committed_items) = watch::channel(last_item);
        let syncer =
            Syncer { wal_path, wal: None, durable: committed_tx, durable_items: items_tx, stats: stats.clone() };
        let writer_stats = stats.clone();
        std::thread::Builder::new()
            .name("chatgate-queue-writer".into())
            .spawn(move || {
                Writer {
                    conn: writer,
                    last_seq: last,
                    last_item,
                    syncer,
                    windows: HashMap::new(),
                    stats: writer_stats,
                    frame_bytes: page_size + WAL_FRAME_HEADER,
                }
                .run(rx)
            })
            .map_err(|e| QueueError::Storage(format!("starting the writer thread: {e}")))?;
        Ok(SqliteQueue {
            inner: Arc::new(Inner {
                commands: tx,
                reader: Mutex::new(reader),
                committed,
                committed_items,
                path,
                stats,
                _stop_maintenance: Mutex::new([stop_checkpoints, stop_pruning]),
            }),
        })
    }

    /// Deletes events, dedup keys and finished outbound messages older than `cutoff` now (the
    /// background pruning does the same every minute); returns how many events went.
    pub async fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<u64, QueueError> {
        let mut total = 0;
        loop {
            let chunk = self.call(cutoff.timestamp_micros(), Command::Prune).await?;
            total += chunk.events;
            if !chunk.more {
                return Ok(total);
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Sends one command to the writer and waits for its answer, which comes only after the
    /// batch holding it is on disk.
    async fn call<A, R>(&self, args: A, command: fn(Call<A, R>) -> Command) -> Result<R, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.inner.commands.send(command(Call::new(args, tx))).await.map_err(|_| QueueError::Closed)?;
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
        self.call(prepared, Command::Append).await
    }

    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, QueueError> {
        // Only what is on disk: a committed batch whose fsync is still running stays invisible.
        let durable = *self.inner.committed.borrow();
        self.read(move |conn| inbound::read_events(conn, after, limit, durable)).await
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
        self.call((id, Box::new(request)), Command::Enqueue).await
    }

    async fn record_attempt(&self, id: Uuid, attempt: Attempt) -> Result<(), QueueError> {
        self.call((id, attempt), Command::Attempt).await
    }

    async fn pending_messages(&self) -> Result<Vec<PendingMessage>, QueueError> {
        self.read(outbox::pending_messages).await
    }

    async fn account_holds(&self) -> Result<Vec<AccountHold>, QueueError> {
        self.read(outbox::account_holds).await
    }

    async fn message(&self, id: Uuid) -> Result<Option<MessageRecord>, QueueError> {
        self.read(move |conn| outbox::message(conn, id)).await
    }

    async fn last_inbound(&self, conversation: &Conversation) -> Result<Option<DateTime<Utc>>, QueueError> {
        let conversation = conversation.clone();
        self.read(move |conn| inbound::last_inbound(conn, &conversation)).await
    }

    async fn set_blocked(&self, customer: &CustomerRef, blocked: bool) -> Result<(), QueueError> {
        self.call(Block { customer: customer.clone(), blocked }, Command::Block).await
    }

    fn stats(&self) -> QueueStats {
        let s = &self.inner.stats;
        QueueStats {
            batches: s.batches.load(Ordering::Relaxed),
            commands: s.commands.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            sync_micros: s.sync_micros.load(Ordering::Relaxed),
            log_bytes: s.wal_bytes.load(Ordering::Relaxed),
            writer_checkpoints: s.writer_checkpoints.load(Ordering::Relaxed),
            writer_checkpoint_micros: s.writer_checkpoint_micros.load(Ordering::Relaxed),
            durable_seq: *self.inner.committed.borrow(),
            // One writer, one transaction per append: no key can be missing.
            dedup_repaired: 0,
        }
    }

    async fn blocked(&self) -> Result<Vec<CustomerRef>, QueueError> {
        self.read(blocks::blocked).await
    }

    async fn append_visitor(&self, append: VisitorAppend) -> Result<VisitorAppended, QueueError> {
        let mut prepared = Vec::with_capacity(append.events.len());
        for r in &append.events {
            let json = serde_json::to_string(&r.event).map_err(|e| QueueError::Storage(e.to_string()))?;
            prepared.push((r.clone(), json));
        }
        self.call(Box::new((append, prepared)), Command::Visitor).await.map(|b| *b)
    }

    async fn read_visitor(
        &self,
        account: &str,
        visitor: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<VisitorItem>, QueueError> {
        let durable = *self.inner.committed_items.borrow();
        let (account, visitor) = (account.to_owned(), visitor.to_owned());
        self.read(move |conn| visitors::read(conn, &account, &visitor, after, limit, durable)).await
    }

    async fn visitor_item(&self, account: &str, visitor: &str, key: &str) -> Result<Option<VisitorItem>, QueueError> {
        let durable = *self.inner.committed_items.borrow();
        let (account, visitor, key) = (account.to_owned(), visitor.to_owned(), key.to_owned());
        self.read(move |conn| visitors::find(conn, &account, &visitor, &key, durable)).await
    }

    async fn set_visitor_profile(&self, account: &str, visitor: &str, data: String) -> Result<(), QueueError> {
        self.call((account.to_owned(), visitor.to_owned(), data), Command::Profile).await
    }

    async fn visitor_profile(&self, account: &str, visitor: &str) -> Result<Option<String>, QueueError> {
        let (account, visitor) = (account.to_owned(), visitor.to_owned());
        self.read(move |conn| visitors::profile(conn, &account, &visitor)).await
    }

    async fn cursor(&self, name: &str) -> Result<u64, QueueError> {
        let name = name.to_owned();
        self.read(move |conn| cursors::cursor(conn, &name)).await
    }

    async fn set_cursor(&self, name: &str, seq: u64) -> Result<(), QueueError> {
        self.call((name.to_owned(), seq), Command::Cursor).await
    }
}

/// Refuses a database file shorter than its own header says (a torn copy, a truncated disk
/// image): SQLite would open it and fail only on the missing pages, so some reads would work
/// and others not. A torn WAL tail needs no check: SQLite ignores frames after the last whole
/// commit by their checksums, and those were never acknowledged (acknowledgement waits for
/// the fsync of the whole commit). While the WAL holds frames, the file may legitimately be shorter
/// than its header (a checkpoint stopped half-way copies page 1 before the pages past the old end;
/// the WAL still has them all and SQLite reads them from there), so only a file without a WAL is
/// judged.
fn check_not_truncated(path: &Path) -> Result<(), QueueError> {
    use std::io::Read;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let Ok(mut file) = std::fs::File::open(path) else { return Ok(()) };
    let len = file.metadata().map_err(|e| QueueError::Storage(format!("reading {}: {e}", path.display())))?.len();
    let mut header = [0u8; 100];
    if len == 0 {
        return Ok(());
    }
    if file.read_exact(&mut header).is_err() || !header.starts_with(b"SQLite format 3\0") {
        return Err(QueueError::Storage(format!(
            "{} is not a whole SQLite database ({len} bytes, no valid header); restore it from a backup or move it away",
            path.display()
        )));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes([header[28], header[29], header[30], header[31]]));
    // The size in the header is only valid when the change counter matches "version valid for".
    let valid = header[24..28] == header[92..96];
    if valid && len < pages * page_size {
        return Err(QueueError::Storage(format!(
            "{} is truncated: its header says {pages} pages of {page_size} bytes, the file has {len} bytes; restore it from a backup",
            path.display()
        )));
    }
    Ok(())
}

fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn parse_uuid(s: &str) -> Result<Uuid, QueueError> {
    Uuid::parse_str(s).map_err(|e| QueueError::Storage(format!("bad id {s}: {e}")))
}
