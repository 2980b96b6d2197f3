//! Web visitor streams: one numbered, durable stream of items per visitor (operator messages,
//! echoes of the visitor's own messages, feedback requests), plus a profile row per visitor.
//!
//! An item and the inbound events it echoes are written in one transaction, so a visitor message
//! is either on the event log and the stream or on neither. `key` makes a retried request store
//! nothing new. Every item's `id` (AUTOINCREMENT, never reused) orders items across visitors: the
//! writer publishes the last `id` that is on disk and readers see nothing after it, so a stream
//! never shows an item a crash could take back (and renumber).

use rusqlite::{Connection, OptionalExtension, params};

use super::from_us;
use super::pipeline::Writer;
use crate::types::{InboundRecord, QueueError, VisitorAppend, VisitorAppended, VisitorItem};

/// The `n` of a visitor's profile row (never streamed: streams start at 1).
const PROFILE_N: i64 = 0;

const COLUMNS: &str = "n, key, kind, data, at_us";

fn item(r: &rusqlite::Row<'_>) -> rusqlite::Result<VisitorItem> {
    Ok(VisitorItem {
        n: r.get::<_, i64>(0)? as u64,
        key: r.get(1)?,
        kind: r.get(2)?,
        data: r.get(3)?,
        at: from_us(r.get(4)?),
    })
}

fn by_key(conn: &Connection, account: &str, visitor: &str, key: &str) -> Result<Option<VisitorItem>, QueueError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM visitor_items WHERE account = ?1 AND visitor = ?2 AND key = ?3 AND n > 0"
        ))?
        .query_row(params![account, visitor, key], item)
        .optional()?)
}

impl Writer {
    pub(super) fn append_visitor(
        &mut self,
        append: &VisitorAppend,
        records: &[(InboundRecord, String)],
    ) -> Result<VisitorAppended, QueueError> {
        if let Some(key) = &append.key
            && let Some(existing) = by_key(&self.conn, &append.account, &append.visitor, key)?
        {
            return Ok(VisitorAppended { item: existing, duplicate: true, events: Default::default() });
        }
        let events = self.append(records)?;
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(n), 0) + 1 FROM visitor_items WHERE account = ?1 AND visitor = ?2")?
            .query_row(params![append.account, append.visitor], |r| r.get(0))?;
        let at = chrono::Utc::now();
        self.conn
            .prepare_cached(
                "INSERT INTO visitor_items (account, visitor, n, key, kind, data, at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                append.account,
                append.visitor,
                n,
                append.key,
                append.kind,
                append.data,
                at.timestamp_micros()
            ])?;
        self.last_item = self.conn.last_insert_rowid() as u64;
        let item = VisitorItem {
            n: n as u64,
            key: append.key.clone(),
            kind: append.kind.clone(),
            data: append.data.clone(),
            at: from_us(at.timestamp_micros()),
        };
        Ok(VisitorAppended { item, duplicate: false, events })
    }

    pub(super) fn set_profile(&mut self, account: &str, visitor: &str, data: &str) -> Result<(), QueueError> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO visitor_items (account, visitor, n, key, kind, data, at_us)
                 VALUES (?1, ?2, ?3, NULL, 'profile', ?4, ?5)",
            )?
            .execute(params![account, visitor, PROFILE_N, data, chrono::Utc::now().timestamp_micros()])?;
        if inserted > 0 {
            self.last_item = self.conn.last_insert_rowid() as u64;
        }
        Ok(())
    }

    /// Deletes stream items older than `cutoff` (µs), always keeping each visitor's newest item
    /// so that numbering continues, and profiles of visitors with nothing newer.
    pub(super) fn prune_visitors(&mut self, cutoff: i64) -> Result<u64, QueueError> {
        let items = self
            .conn
            .prepare_cached(
                "DELETE FROM visitor_items WHERE at_us < ?1 AND n > 0 AND n < (SELECT MAX(v.n) FROM visitor_items v
                 WHERE v.account = visitor_items.account AND v.visitor = visitor_items.visitor)",
            )?
            .execute([cutoff])?;
        Ok(items as u64)
    }
}

pub(super) fn read(
    conn: &Connection,
    account: &str,
    visitor: &str,
    after: u64,
    limit: usize,
    durable: u64,
) -> Result<Vec<VisitorItem>, QueueError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM visitor_items WHERE account = ?1 AND visitor = ?2 AND n > ?3 AND id <= ?4 ORDER BY n LIMIT ?5"
    ))?;
    let rows = stmt.query_map(params![account, visitor, after as i64, durable as i64, limit as i64], item)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn find(
    conn: &Connection,
    account: &str,
    visitor: &str,
    key: &str,
    durable: u64,
) -> Result<Option<VisitorItem>, QueueError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM visitor_items WHERE account = ?1 AND visitor = ?2 AND key = ?3 AND n > 0 AND id <= ?4"
        ))?
        .query_row(params![account, visitor, key, durable as i64], item)
        .optional()?)
}

pub(super) fn profile(conn: &Connection, account: &str, visitor: &str) -> Result<Option<String>, QueueError> {
    Ok(conn
        .prepare_cached("SELECT data FROM visitor_items WHERE account = ?1 AND visitor = ?2 AND n = ?3")?
        .query_row(params![account, visitor, PROFILE_N], |r| r.get(0))
        .optional()?)
}
