//! The group-commit pipeline: the commands callers send, the writer thread that applies every
//! waiting command in one transaction and commits, and the syncer thread that `fdatasync`s the
//! WAL and only then answers the callers and advances the durable sequence readers see.
//!
//! What each command does to the tables lives with its role (`inbound`, `outbox`, `blocks`,
//! `maintenance`); this file only batches, commits, syncs and answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chatgate_model::{Channel, OutboundRequest};
use chrono::Utc;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::types::{AppendOutcome, Attempt, Enqueued, InboundRecord, QueueError};

/// The most commands one transaction takes.
pub(super) const MAX_BATCH: usize = 4096;

#[derive(Debug)]
pub(super) enum Command {
    /// Records with their envelope JSON, serialised by the caller (off the writer thread).
    Append(Vec<(InboundRecord, String)>, oneshot::Sender<Result<AppendOutcome, QueueError>>),
    Enqueue(Uuid, Box<OutboundRequest>, oneshot::Sender<Result<Enqueued, QueueError>>),
    Attempt(Uuid, Attempt, oneshot::Sender<Result<(), QueueError>>),
    Block(Channel, String, String, bool, oneshot::Sender<Result<(), QueueError>>),
    /// Delete what is older than this time (µs); answers how many events it deleted.
    Prune(i64, oneshot::Sender<Result<u64, QueueError>>),
}

/// Work counters shared by the writer and syncer threads.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) batches: AtomicU64,
    pub(super) commands: AtomicU64,
    pub(super) syncs: AtomicU64,
    pub(super) sync_micros: AtomicU64,
}

/// A committed batch waiting for its fsync.
pub(super) struct Committed {
    answers: Vec<(Command, Result<Answer, QueueError>)>,
    last_seq: u64,
}

/// The WAL file next to the database.
pub(super) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Makes committed batches durable, then answers them.
pub(super) struct Syncer {
    pub(super) wal_path: PathBuf,
    pub(super) wal: Option<std::fs::File>,
    pub(super) durable: watch::Sender<u64>,
    pub(super) stats: Arc<Stats>,
}

impl Syncer {
    pub(super) fn run(mut self, rx: &std::sync::mpsc::Receiver<Committed>) {
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
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) last_seq: u64,
    /// Committed batches go to the syncer, which answers them once they are on disk.
    pub(super) to_syncer: std::sync::mpsc::Sender<Committed>,
    /// Latest inbound message time per chat, gathered during a batch and written once per chat.
    pub(super) windows: HashMap<(Channel, String, String), i64>,
    pub(super) stats: Arc<Stats>,
}

/// A command's result, held until the batch commits.
enum Answer {
    Append(AppendOutcome),
    Enqueue(Enqueued),
    Count(u64),
    Unit,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
