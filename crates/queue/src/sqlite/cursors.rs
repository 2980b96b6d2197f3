//! Named cursors over the event log: how far a consumer (push delivery) has got, kept durably.

use rusqlite::{Connection, OptionalExtension, params};

use super::pipeline::Writer;
use crate::types::QueueError;

impl Writer {
    /// Moves cursor `name` forward to `seq`; a lower value leaves it where it is.
    pub(super) fn set_cursor(&mut self, name: &str, seq: u64) -> Result<(), QueueError> {
        self.conn
            .prepare_cached(
                "INSERT INTO cursors (name, seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            )?
            .execute(params![name, seq as i64])?;
        Ok(())
    }
}

/// Where cursor `name` stands; 0 when it was never set.
pub(super) fn cursor(conn: &Connection, name: &str) -> Result<u64, QueueError> {
    let seq: Option<i64> =
        conn.prepare_cached("SELECT seq FROM cursors WHERE name = ?1")?.query_row([name], |r| r.get(0)).optional()?;
    Ok(seq.unwrap_or(0) as u64)
}
