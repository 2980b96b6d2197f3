//! The outbox: outbound messages from the core, enqueued once per idempotency key, their parts
//! sent and external ids, delivery attempts, and their status history — a status only ever moves
//! forward (`Status::merge`), and each change is logged as a status event. Also the reads that
//! resume unfinished deliveries and show one message.

use chatgate_model::{ErrorInfo, Event, EventKind, MessageRecord, OutboundRequest, Status, StatusChange, StatusInfo};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::pipeline::Writer;
use super::{from_us, parse_uuid};
use crate::types::{AccountHold, Attempt, Enqueued, PendingMessage, QueueError};

impl Writer {
    pub(super) fn enqueue(&mut self, id: Uuid, request: &OutboundRequest) -> Result<Enqueued, QueueError> {
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

    pub(super) fn attempt(&mut self, id: Uuid, attempt: &Attempt) -> Result<(), QueueError> {
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
            Attempt::Retry { next_at, error, whole_account } => {
                let next_us = next_at.timestamp_micros();
                self.conn
                    .prepare_cached(
                        "UPDATE messages SET attempts = attempts + 1, error_text = ?2, next_us = ?3 WHERE id = ?1",
                    )?
                    .execute(params![key, error, next_us])?;
                if *whole_account {
                    let request = self.load_request(&key)?;
                    self.conn
                        .prepare_cached(
                            "INSERT INTO account_holds (channel, account, until_us) VALUES (?1, ?2, ?3)
                             ON CONFLICT (channel, account) DO UPDATE SET until_us = MAX(until_us, excluded.until_us)",
                        )?
                        .execute(params![request.channel.as_str(), request.account, next_us])?;
                }
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

    /// Moves a message's status forward; returns the new status if it changed.
    pub(super) fn merge_status(
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
}

/// Messages whose delivery is not finished, oldest first.
pub(super) fn pending_messages(conn: &Connection) -> Result<Vec<PendingMessage>, QueueError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, request, parts_done, attempts, created_us, next_us FROM messages WHERE done = 0 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Option<i64>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, request, parts_done, attempts, created, next) = row?;
        out.push(PendingMessage {
            id: parse_uuid(&id)?,
            request: serde_json::from_str(&request).map_err(|e| QueueError::Storage(e.to_string()))?,
            parts_done: parts_done as u32,
            attempts: attempts as u32,
            created_at: from_us(created),
            next_at: next.map(from_us),
        });
    }
    Ok(out)
}

/// Every account hold (a provider's wait for a whole account).
pub(super) fn account_holds(conn: &Connection) -> Result<Vec<AccountHold>, QueueError> {
    let mut stmt = conn.prepare_cached("SELECT channel, account, until_us FROM account_holds")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (channel, account, until) = row?;
        // A channel this build does not know cannot have messages to hold back.
        if let Ok(channel) = channel.parse() {
            out.push(AccountHold { channel, account, until: from_us(until) });
        }
    }
    Ok(out)
}

/// One outbound message with its history and external ids.
pub(super) fn message(conn: &Connection, id: Uuid) -> Result<Option<MessageRecord>, QueueError> {
    let key = id.to_string();
    let row = conn
        .prepare_cached("SELECT request, status, error_code, error_text, created_us FROM messages WHERE id = ?1")?
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
    let request: OutboundRequest = serde_json::from_str(&request).map_err(|e| QueueError::Storage(e.to_string()))?;
    let mut stmt =
        conn.prepare_cached("SELECT status, at_us FROM message_history WHERE message_id = ?1 ORDER BY rowid")?;
    let history = stmt
        .query_map([&key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .filter_map(|row| row.ok())
        .filter_map(|(s, at)| Some(StatusChange { status: Status::parse(&s)?, at: from_us(at) }))
        .collect();
    let mut stmt = conn.prepare_cached("SELECT external_id FROM external_ids WHERE message_id = ?1 ORDER BY part")?;
    let external_ids = stmt.query_map([&key], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(Some(MessageRecord {
        id,
        channel: request.channel,
        account: request.account.clone(),
        chat_id: request.chat_id.clone(),
        status: Status::parse(&status).unwrap_or(Status::Queued),
        external_ids,
        error: code.map(|code: String| ErrorInfo {
            // Every code ever stored is an `ErrorCode`; a foreign one reads as a bare failure.
            code: code.parse().unwrap_or(chatgate_model::ErrorCode::ProviderFailed),
            message: text.unwrap_or_default(),
        }),
        history,
        created_at: from_us(created),
        request,
    }))
}
