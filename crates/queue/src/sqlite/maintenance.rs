//! Maintenance off the commit path: a thread that checkpoints the WAL every
//! [`CHECKPOINT_INTERVAL`] and, every [`PRUNE_INTERVAL`], has the writer delete what is past the
//! retention — events in chunks of [`PRUNE_CHUNK`], always keeping the newest so sequence numbers
//! continue; dedup keys, windows and finished outbound messages by time; unfinished outbound
//! messages never.

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
