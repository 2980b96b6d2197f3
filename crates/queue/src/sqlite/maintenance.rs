//! Maintenance off the commit path, on two threads of its own:
//!
//! - the **checkpoint** thread copies WAL frames into the database file as soon as the commits
//!   have written [`CHECKPOINT_STEP`] bytes of them, or at the latest [`CHECKPOINT_INTERVAL`] after
//!   the last write, without blocking the writer (`PASSIVE`);
//! - the **prune** thread, half a second after the start and then every [`PRUNE_INTERVAL`], has
//!   the writer delete what is past the retention — events and dedup keys in chunks of
//!   [`PRUNE_CHUNK`] each, always keeping the newest event so sequence numbers continue; windows
//!   and finished outbound messages by time; unfinished outbound messages never.
//!
//! Pruning shares the writer with the webhooks: while one chunk is deleted no batch commits, so a
//! chunk is small (a few milliseconds of work) and after each one the pruning waits as long as
//! the chunk took, leaving the writer at least half its time for the ingest. It runs on its own
//! thread so that checkpoints go on during a long prune (a day of a 10-million event store, a
//! million events and keys, takes tens of seconds: `chatgate-bench scale`).
//!
//! Keeping the WAL bounded: a checkpoint on the checkpoint thread copies frames into the database
//! while the writer keeps appending, so under sustained writes it never catches up with the end of
//! the WAL, and SQLite restarts a WAL from its beginning only once every frame has been copied. So
//! the writer itself, when a commit leaves more than [`WAL_RESTART_FRAMES`] frames in the WAL
//! (SQLite's WAL hook tells it), finishes the checkpoint between two batches: no commit can run
//! meanwhile, and the next transaction writes the WAL from its beginning again. The WAL file is
//! then reused in place (no new pages to allocate and no file size to journal at each fsync) and
//! never holds much more than [`WAL_RESTART_FRAMES`] frames plus one batch; `journal_size_limit`
//! shrinks it back if it ever grew past [`WAL_SIZE_LIMIT`].
//!
//! That pause of the writer is what the ingest's p99 sees, so the checkpoint thread keeps it
//! short: checkpointing every [`CHECKPOINT_STEP`] leaves the writer only the last few commits'
//! frames to copy, and the database file's sync. Measured with `chatgate-bench ingest` on the
//! 2-core VM: with a checkpoint every 500 ms instead, the writer copied most of each WAL itself,
//! 6.0 ms per restart (0.64 s of 12 s), and the ingest p99 was 6.7–7.2 ms; driven by the bytes
//! written, with restarts at 8,192 instead of 4,096 frames, 2.6–3.1 ms per restart (0.14–0.16 s of
//! 12 s) and a p99 of 3.4–3.8 ms.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::pipeline::{Call, Command, Stats, Writer};
use crate::types::QueueError;

/// How long events, dedup keys and finished outbound messages are kept by default. Providers
/// retry for up to 7 days (WhatsApp), so dedup keys must outlive that.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// The longest time written WAL frames wait for a checkpoint to copy them into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// Bytes of WAL frames written after which a checkpoint runs without waiting for the interval.
const CHECKPOINT_STEP: u64 = 1 << 20;
/// How often the checkpoint thread looks at what was written.
const CHECKPOINT_POLL: Duration = Duration::from_millis(10);
/// WAL frames (pages) past which the writer finishes a checkpoint so that the WAL restarts.
pub(super) const WAL_RESTART_FRAMES: u64 = 8192;
/// The WAL file is truncated back to this size when it restarts after growing past it.
pub(super) const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// How long after the start old rows are first looked for (the store's opening goes first).
const PRUNE_FIRST_DELAY: Duration = Duration::from_millis(500);
/// How often old rows are looked for.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Most events, and most dedup keys, one prune command deletes, so the writer is never held for
/// long.
pub(super) const PRUNE_CHUNK: i64 = 1000;
/// The shortest pause between two prune chunks.
const PRUNE_PAUSE_MIN: Duration = Duration::from_millis(2);

/// What one prune command deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pruned {
    /// Events deleted.
    pub(super) events: u64,
    /// A chunk was full: more may be past the retention.
    pub(super) more: bool,
}

/// Deletes what is older than the retention, through the writer (one writer, no lock fights).
pub(super) struct Maintenance {
    pub(super) writer: mpsc::WeakSender<Command>,
    pub(super) retention: Duration,
}

/// Copies the WAL into the database file once [`CHECKPOINT_STEP`] bytes of frames were written,
/// or [`CHECKPOINT_INTERVAL`] after a smaller write, without blocking the writer (`PASSIVE`), so
/// the database file's fsync is not on any commit's path. Committed data is durable in the WAL
/// already; a checkpoint only keeps the WAL short. Ends when `stop`'s sender is dropped.
pub(super) fn checkpoint_loop(conn: &Connection, stop: &std::sync::mpsc::Receiver<()>, stats: &Stats) {
    let mut copied = stats.wal_bytes.load(Ordering::Relaxed);
    let mut last = Instant::now();
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_POLL) {
        let written = stats.wal_bytes.load(Ordering::Relaxed);
        let pending = written.saturating_sub(copied);
        if pending >= CHECKPOINT_STEP || (pending > 0 && last.elapsed() >= CHECKPOINT_INTERVAL) {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint failed; will try again");
            }
            copied = written;
            last = Instant::now();
        }
    }
    // Last one on the way out, so a clean shutdown leaves a short WAL.
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

/// Prunes [`PRUNE_FIRST_DELAY`] after the start, then every [`PRUNE_INTERVAL`]: a gateway
/// started after a pause (or on an older store) does not keep a day of expired rows for another
/// interval. Ends when `stop`'s sender is dropped.
pub(super) fn prune_loop(stop: &std::sync::mpsc::Receiver<()>, maintenance: &Maintenance) {
    let mut wait = PRUNE_FIRST_DELAY;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(wait) {
        maintenance.prune(stop);
        wait = PRUNE_INTERVAL;
    }
}

thread_local! {
    /// Frames in the WAL after the last commit on this thread (the writer's), from SQLite's WAL hook.
    static WAL_FRAMES: Cell<u64> = const { Cell::new(0) };
    /// Frames the commits on this thread have written since [`take_frames_written`] last ran.
    static FRAMES_WRITTEN: Cell<u64> = const { Cell::new(0) };
}

/// SQLite's WAL hook: runs on the committing thread after each commit.
fn count_wal_frames(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    let frames = u64::try_from(frames).unwrap_or(0);
    // A WAL that restarted holds only this commit's frames.
    let before = WAL_FRAMES.replace(frames);
    let written = if frames >= before { frames - before } else { frames };
    FRAMES_WRITTEN.set(FRAMES_WRITTEN.get() + written);
    Ok(())
}

/// The WAL frames this thread's commits wrote since the last call.
pub(super) fn take_frames_written() -> u64 {
    FRAMES_WRITTEN.replace(0)
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
        let started = Instant::now();
        let checkpointed = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
        self.stats.writer_checkpoints.fetch_add(1, Ordering::Relaxed);
        self.stats.writer_checkpoint_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match checkpointed {
            Ok(0) => WAL_FRAMES.set(0),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint on the writer failed; will try again"),
        }
    }
}

impl Maintenance {
    fn prune(&self, stop: &std::sync::mpsc::Receiver<()>) {
        let cutoff = Utc::now() - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let began = Instant::now();
        let mut events = 0;
        loop {
            let Some(writer) = self.writer.upgrade() else { break };
            let started = Instant::now();
            let (tx, rx) = oneshot::channel();
            if writer.blocking_send(Command::Prune(Call::new(cutoff.timestamp_micros(), tx))).is_err() {
                break;
            }
            drop(writer);
            match rx.blocking_recv() {
                Ok(Ok(chunk)) => {
                    events += chunk.events;
                    if !chunk.more {
                        break;
                    }
                    // Pacing: as long as the chunk took (its wait for the writer included).
                    if !matches!(
                        stop.recv_timeout(started.elapsed().max(PRUNE_PAUSE_MIN)),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    ) {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "pruning old queue rows failed; will try again");
                    break;
                }
                Err(_) => break,
            }
        }
        if events > 0 {
            tracing::info!(events, seconds = began.elapsed().as_secs_f64(), "pruned events past the retention period");
        }
    }
}

impl Writer {
    /// Deletes events, dedup keys and finished outbound messages older than `cutoff` (µs), at
    /// most [`PRUNE_CHUNK`] events and as many dedup keys at a time.
    pub(super) fn prune(&mut self, cutoff: i64) -> Result<Pruned, QueueError> {
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
        // The oldest keys first, by the `dedup_at` index.
        let keys = self
            .conn
            .prepare_cached(
                "DELETE FROM dedup WHERE (account, key) IN
                 (SELECT account, key FROM dedup WHERE at_us < ?1 ORDER BY at_us LIMIT ?2)",
            )?
            .execute(params![cutoff, PRUNE_CHUNK])?;
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
            tracing::debug!(events, keys, "pruned events past the retention period");
        }
        Ok(Pruned { events, more: events >= PRUNE_CHUNK as u64 || keys >= PRUNE_CHUNK as usize })
    }
}
