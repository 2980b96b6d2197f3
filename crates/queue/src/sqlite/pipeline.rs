//! The group-commit pipeline: the commands callers send, and the writer thread that applies every
//! waiting command in one transaction, commits, `fdatasync`s the WAL and only then answers the
//! callers and advances the durable sequence readers see.
//!
//! One thread does all of it: a second thread for the fsync would let the next batch be applied
//! during the sync, but every hand-off between threads costs a wake-up, and on a busy 2-core
//! machine a wake-up waits for a core. Measured with `chatgate-bench ingest`, the single thread
//! keeps more requests per second and a lower p99. Commands that arrive during a sync wait in the
//! channel and go together in the next transaction, so each commit's fixed WAL pages (page 1, the
//! tails of the tables and indexes, rewritten whole) are paid once per fsync.
//!
//! What each command does to the tables lives with its role (`inbound`, `outbox`, `blocks`,
//! `maintenance`); this file only batches, commits, syncs and answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chatgate_model::{Conversation, OutboundRequest};
use chrono::Utc;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::blocks::Block;
use super::maintenance::{Pruned, take_frames_written};
use crate::types::{AppendOutcome, Attempt, Enqueued, InboundRecord, QueueError, VisitorAppend, VisitorAppended};

/// The most commands one transaction takes.
pub(super) const MAX_BATCH: usize = 4096;

/// What callers ask of the writer. Each variant carries a [`Call`] whose reply type is that
/// command's answer, so a command can only ever be answered with its own kind of result.
#[derive(Debug)]
pub(super) enum Command {
    /// Records with their envelope JSON, serialised by the caller (off the writer thread).
    Append(Call<Vec<(InboundRecord, String)>, AppendOutcome>),
    Enqueue(Call<(Uuid, Box<OutboundRequest>), Enqueued>),
    Attempt(Call<(Uuid, Attempt), ()>),
    Block(Call<Block, ()>),
    /// Delete one chunk of what is older than this time (µs).
    Prune(Call<i64, Pruned>),
    /// An item for a visitor's stream with the events it echoes (their JSON serialised by the caller).
    Visitor(Call<Box<VisitorArgs>, Box<VisitorAppended>>),
    /// A visitor's profile (account, visitor, JSON); the first stays.
    Profile(Call<(String, String, String), ()>),
    /// Moves a named cursor forward (name, seq).
    Cursor(Call<(String, u64), ()>),
}

/// A visitor item with the events it echoes (their JSON serialised by the caller).
pub(super) type VisitorArgs = (VisitorAppend, Vec<(InboundRecord, String)>);

/// One command's arguments, its caller's reply channel and, once the writer has applied it, its
/// outcome, held until the batch is durable.
#[derive(Debug)]
pub(super) struct Call<A, R> {
    args: A,
    reply: oneshot::Sender<Result<R, QueueError>>,
    outcome: Option<Result<R, QueueError>>,
}

impl<A, R> Call<A, R> {
    pub(super) fn new(args: A, reply: oneshot::Sender<Result<R, QueueError>>) -> Self {
        Call { args, reply, outcome: None }
    }

    /// Applies the command and keeps its value for the answer. An error is handed back to the
    /// batch (which retries with savepoints, see [`Writer::run_batch`]), not kept.
    fn run(&mut self, apply: impl FnOnce(&A) -> Result<R, QueueError>) -> Result<(), QueueError> {
        self.outcome = Some(Ok(apply(&self.args)?));
        Ok(())
    }

    /// Sends the kept outcome. A command that was never applied has none: its reply channel is
    /// dropped, which the caller sees as [`QueueError::Closed`]. A caller that went away (client
    /// disconnected) is not an error of the store.
    fn answer(self) {
        if let Some(outcome) = self.outcome {
            let _ = self.reply.send(outcome);
        }
    }

    fn fail(self, error: QueueError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Runs `$body` with `$call` bound to the [`Call`] inside any command.
macro_rules! each_call {
    ($cmd:expr, $call:ident => $body:expr) => {
        match $cmd {
            Command::Append($call) => $body,
            Command::Enqueue($call) => $body,
            Command::Attempt($call) => $body,
            Command::Block($call) => $body,
            Command::Prune($call) => $body,
            Command::Visitor($call) => $body,
            Command::Profile($call) => $body,
            Command::Cursor($call) => $body,
        }
    };
}

impl Command {
    /// Answers the caller with the outcome the writer kept (after the batch's fsync).
    fn answer(self) {
        each_call!(self, call => call.answer())
    }

    /// Answers the caller with `error`, whatever the writer kept.
    fn fail(self, error: QueueError) {
        each_call!(self, call => call.fail(error))
    }

    /// Keeps `error` as this command's outcome (it failed alone inside its savepoint).
    fn keep_error(&mut self, error: QueueError) {
        each_call!(self, call => call.outcome = Some(Err(error)))
    }
}

/// Work counters of the writer, read by `stats()`.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) batches: AtomicU64,
    pub(super) commands: AtomicU64,
    pub(super) syncs: AtomicU64,
    pub(super) sync_micros: AtomicU64,
    /// Bytes of WAL frames the commits wrote (each a page and its 24-byte frame header).
    pub(super) wal_bytes: AtomicU64,
    /// Checkpoints the writer ran between batches to restart the WAL, and their time (µs).
    pub(super) writer_checkpoints: AtomicU64,
    pub(super) writer_checkpoint_micros: AtomicU64,
}

/// A committed batch waiting for its fsync; every command holds its outcome.
pub(super) struct Committed {
    commands: Vec<Command>,
    last_seq: u64,
    /// The last visitor item id written (see `visitors`).
    last_item: u64,
}

/// The WAL file next to the database.
pub(super) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Makes a committed batch durable, then answers it: the writer's last step for each batch.
pub(super) struct Syncer {
    pub(super) wal_path: PathBuf,
    pub(super) wal: Option<std::fs::File>,
    pub(super) durable: watch::Sender<u64>,
    /// The last visitor item id that is on disk; visitor stream reads see nothing after it.
    pub(super) durable_items: watch::Sender<u64>,
    pub(super) stats: Arc<Stats>,
}

impl Syncer {
    /// `fdatasync`s the WAL, then advances what readers see and answers every command, or fails
    /// them all if the sync failed.
    fn complete(&mut self, committed: Committed) {
        let started = std::time::Instant::now();
        let synced = self.sync();
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.stats.sync_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match synced {
            Ok(()) => {
                if committed.last_item > *self.durable_items.borrow() {
                    self.durable_items.send_replace(committed.last_item);
                }
                if committed.last_seq > *self.durable.borrow() {
                    self.durable.send_replace(committed.last_seq);
                }
                for cmd in committed.commands {
                    cmd.answer();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "fsync of the WAL failed; the batch is not acknowledged");
                for cmd in committed.commands {
                    cmd.fail(QueueError::Storage(format!("fsync failed: {e}")));
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
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) last_seq: u64,
    /// The last visitor item id written.
    pub(super) last_item: u64,
    /// Makes each committed batch durable and answers it.
    pub(super) syncer: Syncer,
    /// Latest inbound message time per chat, gathered during a batch and written once per chat.
    pub(super) windows: HashMap<Conversation, i64>,
    pub(super) stats: Arc<Stats>,
    /// Bytes of one WAL frame: the page size plus the frame header.
    pub(super) frame_bytes: u64,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        self.watch_wal();
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
            self.bound_wal();
        }
    }

    /// Applies a batch in one transaction, commits it, makes it durable and answers it.
    ///
    /// Fast path: all commands in one go. If one fails, the transaction is rolled back and the
    /// batch is applied again with each command in its own savepoint, so one bad command fails
    /// alone and the others still commit.
    fn apply_batch(&mut self, batch: &mut Vec<Command>) {
        let seq_before = self.last_seq;
        let item_before = self.last_item;
        let mut ran = self.run_batch(batch, false);
        if ran.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.last_seq = seq_before;
            self.last_item = item_before;
            self.windows.clear();
            ran = self.run_batch(batch, true);
        }
        let committed = ran.and_then(|()| {
            self.conn.execute_batch("COMMIT").map_err(|e| QueueError::Storage(format!("commit failed: {e}")))
        });
        match committed {
            Ok(()) => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.commands.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.wal_bytes.fetch_add(take_frames_written() * self.frame_bytes, Ordering::Relaxed);
                // Moved into a vector of their own size; `batch` keeps its capacity for the next one.
                let mut commands = Vec::with_capacity(batch.len());
                commands.append(batch);
                self.syncer.complete(Committed { commands, last_seq: self.last_seq, last_item: self.last_item });
            }
            Err(e) => {
                tracing::error!(error = %e, "queue commit failed; the whole batch is refused");
                let _ = self.conn.execute_batch("ROLLBACK");
                self.last_seq = seq_before;
                self.last_item = item_before;
                self.windows.clear();
                for cmd in batch.drain(..) {
                    cmd.fail(QueueError::Storage(e.to_string()));
                }
            }
        }
    }

    /// Runs every command inside `BEGIN IMMEDIATE` (left open), each keeping its outcome.
    /// Without `isolate` the first error aborts the run; with it each command runs in a
    /// savepoint and its error is its own.
    fn run_batch(&mut self, batch: &mut [Command], isolate: bool) -> Result<(), QueueError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        for cmd in batch.iter_mut() {
            if !isolate {
                self.apply(cmd)?;
                continue;
            }
            self.conn.execute_batch("SAVEPOINT cmd")?;
            let seq_before = self.last_seq;
            let item_before = self.last_item;
            if let Err(e) = self.apply(cmd).and_then(|()| self.flush_windows()) {
                self.last_seq = seq_before;
                self.last_item = item_before;
                self.windows.clear();
                self.conn.execute_batch("ROLLBACK TO cmd")?;
                cmd.keep_error(e);
            }
            self.conn.execute_batch("RELEASE cmd")?;
        }
        self.flush_windows()
    }

    fn apply(&mut self, cmd: &mut Command) -> Result<(), QueueError> {
        match cmd {
            Command::Append(call) => call.run(|records| self.append(records)),
            Command::Enqueue(call) => call.run(|(id, request)| self.enqueue(*id, request)),
            Command::Attempt(call) => call.run(|(id, attempt)| self.attempt(*id, attempt)),
            Command::Block(call) => call.run(|block| self.block(block)),
            Command::Prune(call) => call.run(|cutoff| self.prune(*cutoff)),
            Command::Visitor(call) => call.run(|args| self.append_visitor(&args.0, &args.1).map(Box::new)),
            Command::Profile(call) => call.run(|(account, visitor, data)| self.set_profile(account, visitor, data)),
            Command::Cursor(call) => call.run(|(name, seq)| self.set_cursor(name, *seq)),
        }
    }

    /// Appends one envelope to the event log; returns its sequence number.
    pub(super) fn push_event(&mut self, body: &str) -> Result<u64, QueueError> {
        self.conn
            .prepare_cached("INSERT INTO events (body, at_us) VALUES (?1, ?2)")?
            .execute(params![body, Utc::now().timestamp_micros()])?;
        let seq = self.conn.last_insert_rowid() as u64;
        self.last_seq = seq;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_answers_with_what_it_kept() {
        let (tx, mut rx) = oneshot::channel();
        let mut call = Call::new(7_i64, tx);
        call.run(|cutoff| Ok(Pruned { events: *cutoff as u64 * 2, more: true })).unwrap();
        Command::Prune(call).answer();
        assert_eq!(rx.try_recv().unwrap().unwrap(), Pruned { events: 14, more: true });
    }

    #[test]
    fn a_failed_command_answers_its_error_and_a_refused_batch_overrides_the_kept_value() {
        let (tx, mut rx) = oneshot::channel();
        let mut cmd = Command::Prune(Call::new(1, tx));
        cmd.keep_error(QueueError::Storage("bad row".into()));
        cmd.answer();
        assert!(matches!(rx.try_recv().unwrap(), Err(QueueError::Storage(m)) if m == "bad row"));

        let (tx, mut rx) = oneshot::channel();
        let mut call = Call::new(1_i64, tx);
        call.run(|_| Ok(Pruned::default())).unwrap();
        Command::Prune(call).fail(QueueError::Closed);
        assert!(matches!(rx.try_recv().unwrap(), Err(QueueError::Closed)));
    }

    #[test]
    fn an_error_while_applying_is_handed_to_the_batch_not_kept() {
        let (tx, mut rx) = oneshot::channel::<Result<Pruned, QueueError>>();
        let mut call = Call::new(1_i64, tx);
        assert!(call.run(|_| Err(QueueError::Storage("constraint".into()))).is_err());
        // Never applied: the reply channel is dropped, which the caller reads as `Closed`.
        call.answer();
        assert!(rx.try_recv().is_err());
    }
}
