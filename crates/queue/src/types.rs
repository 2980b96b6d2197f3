//! Types that cross the [`crate::Queue`] contract.

use chatgate_model::{Channel, ErrorInfo, Event, OutboundRequest, Status};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One inbound event ready to store.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    /// Unique per account for one provider event; `None` is never deduplicated.
    pub dedup_key: Option<String>,
    pub event: Event,
}

/// What [`crate::Queue::append_inbound`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Sequence numbers of the events appended to the log (a watermark receipt may append several).
    pub seqs: Vec<u64>,
    /// Events skipped because their dedup key was stored before.
    pub duplicates: usize,
    /// Status receipts that did not move a message's status forward.
    pub unchanged_statuses: usize,
}

/// An event on the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    /// The envelope JSON with `seq` as its first field.
    pub json: String,
}

/// Items for one web visitor's stream, with the inbound events they echo, written in one transaction.
#[derive(Debug, Clone)]
pub struct VisitorAppend {
    pub account: String,
    pub visitor: String,
    /// Unique per visitor: when an item with this key is stored, nothing is written and that
    /// item is answered (a retried POST, a re-posted operator message).
    pub key: Option<String>,
    /// The stream event type.
    pub kind: String,
    /// The item's JSON.
    pub data: String,
    /// Inbound events stored with the item (appended as [`crate::Queue::append_inbound`] does).
    pub events: Vec<InboundRecord>,
}

/// One item of a visitor's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorItem {
    /// Its position on the visitor's stream, from 1, without gaps.
    pub n: u64,
    pub key: Option<String>,
    pub kind: String,
    pub data: String,
    pub at: DateTime<Utc>,
}

/// What [`crate::Queue::append_visitor`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorAppended {
    /// The item written, or the one stored before under the same key.
    pub item: VisitorItem,
    /// True when the key was stored before (nothing was written).
    pub duplicate: bool,
    /// What the events did.
    pub events: AppendOutcome,
}

/// The result of [`crate::Queue::enqueue`].
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub id: Uuid,
    pub status: Status,
    /// False when the idempotency key matched an existing message.
    pub created: bool,
}

/// The outcome of one delivery attempt of an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Part `index` was accepted by the provider; `last` when it was the message's last part.
    PartSent { index: u32, external_id: String, status: Status, last: bool },
    /// The attempt failed and will be retried at `next_at`. With `whole_account` the provider's
    /// wait applies to every message of the account (kept as an account hold until `next_at`).
    Retry { next_at: DateTime<Utc>, error: String, whole_account: bool },
    /// The message failed for good.
    Failed { error: ErrorInfo },
}

/// A message whose delivery is not finished.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMessage {
    pub id: Uuid,
    pub request: OutboundRequest,
    /// Parts already sent; delivery resumes after them.
    pub parts_done: u32,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// Not to be tried before this time (a provider's wait or the backoff, from before a restart).
    pub next_at: Option<DateTime<Utc>>,
}

/// A provider's wait that applies to a whole account, until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountHold {
    pub channel: Channel,
    pub account: String,
    pub until: DateTime<Utc>,
}

/// A store failure. Nothing it was asked to write is acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("storage error: {0}")]
    Storage(String),
    /// The idempotency key was used before for a different message.
    #[error("idempotency key was used for a different message ({existing})")]
    IdempotencyConflict { existing: Uuid },
    #[error("the store is shut down")]
    Closed,
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::Storage(e.to_string())
    }
}

/// Counters of the store's work, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Transactions committed (each one group commit).
    pub batches: u64,
    /// Commands those transactions carried.
    pub commands: u64,
    /// WAL fsyncs, and the time they took in microseconds.
    pub syncs: u64,
    pub sync_micros: u64,
    /// Bytes written to the store's write-ahead log (SQLite: WAL frames, each a whole page);
    /// 0 where the backend does not count them (NATS).
    pub log_bytes: u64,
    /// Checkpoints the writer itself ran between two commits to keep the log short, and the
    /// time they held the writer in microseconds (SQLite; 0 on NATS).
    pub writer_checkpoints: u64,
    pub writer_checkpoint_micros: u64,
    /// The last event sequence number that is on disk.
    pub durable_seq: u64,
    /// Dedup keys a repair sweep wrote for events stored without one (a crash between the
    /// event's write and its key's; the NATS backend only, see ARCHITECTURE.md).
    pub dedup_repaired: u64,
}
