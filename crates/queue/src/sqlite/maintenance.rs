//! Maintenance off the commit path: a thread that checkpoints the WAL every
//! [`CHECKPOINT_INTERVAL`] and, every [`PRUNE_INTERVAL`], has the writer delete what is past the
//! retention — events in chunks of [`PRUNE_CHUNK`], always keeping the newest so sequence numbers
//! continue; dedup keys, windows and finished outbound messages by time; unfinished outbound
//! messages never.
//!
//! Keeping the WAL bounded: a checkpoint on this thread copies frames into the database while the
//! writer keeps appending, so under sustained writes it never catches up with the end of the WAL,
//! and SQLite restarts a WAL from its beginning only once every frame has been copied. So the
//! writer itself, when a commit leaves more than [`WAL_RESTART_FRAMES`] frames in the WAL (SQLite's
//! WAL hook tells it), finishes the checkpoint between two batches: no commit can run meanwhile, its
//! checkpoint copies only what this thread has not copied yet, and the next transaction writes the
//! WAL from its beginning again. The WAL file is then reused in place (no new pages to allocate and
//! no file size to journal at each fsync) and never holds much more than [`WAL_RESTART_FRAMES`]
//! frames plus one batch; `journal_size_limit` shrinks it back if it ever grew past
//! [`WAL_SIZE_LIMIT`].

use std::cell::Cell;
use std::ffi::c_int;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::pipeline::{Call, Command, Writer};
use crate::types::QueueError;

/// How long events, dedup keys and finished outbound messages are kept by default. Providers
/// retry for up to 7 days (WhatsApp), so dedup keys must outlive that.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// How often WAL frames are copied back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// WAL frames (pages) past which the writer finishes a checkpoint so that the WAL restarts.
pub(super) const WAL_RESTART_FRAMES: u64 = 4096;
/// The WAL file is truncated back to this size when it restarts after growing past it.
pub(super) const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// How often old rows are looked for.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Most events one prune command deletes, so the writer is never held for long.
pub(super) const PRUNE_CHUNK: i64 = 5000;

/// Deletes what is older than the retention, through the writer (one writer, no lock fights).
pub(super) struct Maintenance {
    pub(super) writer: mpsc::WeakSender<Command>,
    pub(super) retention: Duration,
}

/// Copies the WAL into the database file every [`CHECKPOINT_INTERVAL`] without blocking the
/// writer (`PASSIVE`), so the database file's fsync is not on any commit's path. Committed data
/// is durable in the WAL already; a checkpoint only keeps the WAL short.
pub(super) fn checkpoint_loop(conn: &Connection, stop: &std::sync::mpsc::Receiver<()>, maintenance: &Maintenance) {
    let mut last_prune = Instant::now();
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; will try again");
        }
        if last_prune.elapsed() >= PRUNE_INTERVAL {
            last_prune = Instant::now();
            maintenance.prune();
        }
    }
    // Last one on the way out, so a clean shutdown leaves a short WAL.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

thread_local! {
    /// Frames in the WAL after the last commit on this thread (the writer's), from SQLite's WAL hook.
    static WAL_FRAMES: Cell<u64> = const { Cell::new(0) };
}

/// SQLite's WAL hook: runs on the committing thread after each commit.
fn count_wal_frames(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(u64::try_from(frames).unwrap_or(0));
    Ok(())
}

impl Writer {
    /// Has SQLite tell the writer how long the WAL is after each of its commits. Call on the
    /// writer thread, after `wal_autocheckpoint` is set (that pragma replaces the hook).
    pub(super) fn watch_wal(&self) {
        self.conn.wal_hook(Some(count_wal_frames));
    }

    /// Between two batches: when the WAL has grown past [`WAL_RESTART_FRAMES`], copies the rest of
    /// it into the database so that the next transaction restarts the WAL from its beginning.
    /// A `PASSIVE` checkpoint never waits: if the checkpoint thread holds the lock, the writer
    /// tries again after the next batch.
    pub(super) fn bound_wal(&mut self) {
        if WAL_FRAMES.get() < WAL_RESTART_FRAMES {
            return;
        }
        match self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)) {
            Ok(0) => WAL_FRAMES.set(0),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint on the writer failed; will try again"),
        }
    }
}

impl Maintenance {
    fn prune(&self) {
        let cutoff = Utc::now() - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        loop {
            let Some(writer) = self.writer.upgrade() else { return };
            let (tx, rx) = oneshot::channel();
            if writer.blocking_send(Command::Prune(Call::new(cutoff.timestamp_micros(), tx))).is_err() {
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

impl Writer {
    /// Deletes events, dedup keys and finished outbound messages older than `cutoff` (µs), at
    /// most [`PRUNE_CHUNK`] events at a time; returns how many events went.
    pub(super) fn prune(&mut self, cutoff: i64) -> Result<u64, QueueError> {
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
        self.prune_visitors(cutoff)?;
        if events > 0 {
            tracing::info!(events, "pruned events past the retention period");
        }
        Ok(events)
    }
}
