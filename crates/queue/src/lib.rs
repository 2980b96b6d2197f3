//! The durable queue contract ([`Queue`]) and its embedded backend ([`SqliteQueue`]).
//!
//! One store holds everything chatgate must not lose: the ordered event log the core pulls
//! (inbound events and status changes), the inbound dedup keys, the outbox of messages from
//! the core with their status history, the customers' messaging windows and the block list.
//! Every write is acknowledged only after it is committed to disk.

mod sqlite;
mod types;

pub use sqlite::{DEFAULT_RETENTION, SqliteQueue};
pub use types::{
    AccountHold, AppendOutcome, Attempt, Enqueued, InboundRecord, PendingMessage, QueueError, QueueStats, StoredEvent,
    VisitorAppend, VisitorAppended, VisitorItem,
};

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chatgate_model::{Channel, Conversation, CustomerRef, MessageRecord, OutboundRequest};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The store behind the gateway. Each method returns once its effect is durable.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug + 'static {
    /// Appends inbound events of one account to the log. Events whose dedup key was seen before
    /// are skipped; status events are merged into the outbox (see [`AppendOutcome`]).
    async fn append_inbound(&self, records: Vec<InboundRecord>) -> Result<AppendOutcome, QueueError>;

    /// Reads up to `limit` events with `seq > after`, in order.
    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, QueueError>;

    /// Waits until an event with `seq > after` is committed or `timeout` passes; returns the last committed seq.
    async fn wait_events(&self, after: u64, timeout: Duration) -> u64;

    /// Stores an outbound message (status `queued`, with a `queued` status event on the log).
    /// The same idempotency key for the same account returns the existing message.
    async fn enqueue(&self, id: Uuid, request: OutboundRequest) -> Result<Enqueued, QueueError>;

    /// Records the outcome of one delivery attempt.
    async fn record_attempt(&self, id: Uuid, attempt: Attempt) -> Result<(), QueueError>;

    /// Messages whose delivery is not finished, oldest first.
    async fn pending_messages(&self) -> Result<Vec<PendingMessage>, QueueError>;

    /// The unfinished messages of one chat, oldest first.
    async fn pending_of_chat(&self, conversation: &Conversation) -> Result<Vec<PendingMessage>, QueueError> {
        let mut all = self.pending_messages().await?;
        all.retain(|m| &m.request.conversation() == conversation);
        Ok(all)
    }

    /// The accounts a provider asked to pause, with until when (past ones included).
    async fn account_holds(&self) -> Result<Vec<AccountHold>, QueueError>;

    /// One outbound message with its history.
    async fn message(&self, id: Uuid) -> Result<Option<MessageRecord>, QueueError>;

    /// When the customer last sent a message in this chat.
    async fn last_inbound(&self, conversation: &Conversation) -> Result<Option<DateTime<Utc>>, QueueError>;

    /// Blocks or unblocks a customer.
    async fn set_blocked(&self, customer: &CustomerRef, blocked: bool) -> Result<(), QueueError>;

    /// Every blocked customer.
    async fn blocked(&self) -> Result<Vec<CustomerRef>, QueueError>;

    /// Web visitor streams: appends one item to a visitor's stream together with the inbound
    /// events it echoes, in one transaction; an item whose key is stored answers that item instead.
    async fn append_visitor(&self, append: VisitorAppend) -> Result<VisitorAppended, QueueError>;

    /// Up to `limit` items of a visitor's stream with `n > after`, in order; only what is on disk.
    async fn read_visitor(
        &self,
        account: &str,
        visitor: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<VisitorItem>, QueueError>;

    /// The item of a visitor's stream stored under `key`.
    async fn visitor_item(&self, account: &str, visitor: &str, key: &str) -> Result<Option<VisitorItem>, QueueError>;

    /// Keeps a visitor's profile (their source when they first opened the chat); the first one stays.
    async fn set_visitor_profile(&self, account: &str, visitor: &str, data: String) -> Result<(), QueueError>;

    /// A visitor's profile, if one was kept.
    async fn visitor_profile(&self, account: &str, visitor: &str) -> Result<Option<String>, QueueError>;

    /// Where the named cursor stands on the event log (0 when never set). Push delivery keeps
    /// the last sequence number the core has taken under a cursor, so a restart resumes after it.
    async fn cursor(&self, name: &str) -> Result<u64, QueueError>;

    /// Moves the named cursor forward to `seq`, durably; a lower `seq` than the stored one
    /// leaves it where it is (a cursor never goes back).
    async fn set_cursor(&self, name: &str, seq: u64) -> Result<(), QueueError>;

    /// Takes (or renews) the right to deliver this chat's messages for `ttl`; false while
    /// another gateway instance holds it. A store used by one process grants it always.
    async fn lease_chat(&self, _conversation: &Conversation, _ttl: Duration) -> Result<bool, QueueError> {
        Ok(true)
    }

    /// How long a chat's lease lasts without renewal (the bound on a takeover).
    fn lease_ttl(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// Gives the chat's lease up (its worker has nothing left to send).
    async fn release_chat(&self, _conversation: &Conversation) -> Result<(), QueueError> {
        Ok(())
    }

    /// Announces, for `ttl`, that this instance sends for `accounts` (channel, account id), and
    /// returns how many *other* live instances announced each account they send for. Delivery
    /// divides an account's provider rate limit by the instances sending for it (see
    /// `delivery::share`). A store used by one process knows no other instance.
    async fn announce_senders(
        &self,
        _accounts: &[(Channel, String)],
        _ttl: Duration,
    ) -> Result<HashMap<(Channel, String), u32>, QueueError> {
        Ok(HashMap::new())
    }

    /// Withdraws this instance's announcement (it stops sending: shutdown).
    async fn withdraw_senders(&self) -> Result<(), QueueError> {
        Ok(())
    }

    /// True when other gateway instances write to the same store: delivery then takes leases
    /// and looks for unfinished messages of chats nobody delivers (see `delivery::lease`).
    fn shared_by_instances(&self) -> bool {
        false
    }

    /// What the store has done so far.
    fn stats(&self) -> QueueStats;
}
