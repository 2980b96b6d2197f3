//! Inbound: appending provider events to the log, dedup keys, the customers' messaging windows,
//! and provider receipts — merged into the outbox through the monotonic `Status::merge`, with
//! watermarks expanded into one status event per covered message. Also the reads of the log and
//! of the windows.

use chatgate_model::{Conversation, Event, EventKind, StatusInfo};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::pipeline::Writer;
use super::{from_us, parse_uuid};
use crate::types::{AppendOutcome, InboundRecord, QueueError, StoredEvent};

impl Writer {
    pub(super) fn append(&mut self, records: &[(InboundRecord, String)]) -> Result<AppendOutcome, QueueError> {
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
                            .entry(Conversation::new(event.channel, event.account.clone(), event.chat_id.clone()))
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

    /// Writes the gathered messaging-window times.
    pub(super) fn flush_windows(&mut self) -> Result<(), QueueError> {
        if self.windows.is_empty() {
            return Ok(());
        }
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO windows (channel, account, chat_id, last_us) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (channel, account, chat_id) DO UPDATE SET last_us = MAX(last_us, excluded.last_us)",
        )?;
        for (c, at) in self.windows.drain() {
            stmt.execute(params![c.channel.as_str(), c.account, c.chat_id, at])?;
        }
        Ok(())
    }
}

/// Up to `limit` events with `after < seq <= durable`, in order.
pub(super) fn read_events(
    conn: &Connection,
    after: u64,
    limit: usize,
    durable: u64,
) -> Result<Vec<StoredEvent>, QueueError> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 AND seq <= ?3 ORDER BY seq LIMIT ?2")?;
    let rows = stmt.query_map(params![after as i64, limit as i64, durable as i64], |r| {
        let seq = r.get::<_, i64>(0)? as u64;
        let body: String = r.get(1)?;
        Ok(StoredEvent { seq, json: with_seq(seq, &body) })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// When the customer last sent a message in this chat.
pub(super) fn last_inbound(conn: &Connection, c: &Conversation) -> Result<Option<DateTime<Utc>>, QueueError> {
    Ok(conn
        .prepare_cached("SELECT last_us FROM windows WHERE channel = ?1 AND account = ?2 AND chat_id = ?3")?
        .query_row(params![c.channel.as_str(), c.account, c.chat_id], |r| r.get::<_, i64>(0))
        .optional()?
        .map(from_us))
}

/// Puts `"seq":N` first into a stored envelope.
fn with_seq(seq: u64, body: &str) -> String {
    match body.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"seq\":{seq}}}"),
        Some(rest) => format!("{{\"seq\":{seq},{rest}"),
        None => body.to_owned(),
    }
}
