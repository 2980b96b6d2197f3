//! The NATS JetStream backend of the [`Queue`] contract: several gateway instances share one
//! NATS server or cluster.
//!
//! The event log is the stream `<prefix>_EVENTS` (subjects `<prefix>.events.<channel>.<account>`,
//! `seq` = the stream sequence); everything else lives in KV buckets `<prefix>_<role>` (see
//! [`setup`] for the list). A call returns once JetStream has acknowledged every write it made:
//! with `sync_interval: always` on a single server, or 3 replicas on a cluster, that is on disk.
//! There are no transactions across writes, so every multi-write operation is ordered so that
//! a crash between two writes either leaves nothing acknowledged or is finished by the next
//! touch (the provider's redelivery, the core's retry, the next delivery scan). The orders and
//! the one window where a duplicate can slip through are in ARCHITECTURE.md ("NATS backend").
//!
//! One file per role: `setup` (options, connection, streams and buckets), `kv` (CAS helpers),
//! `inbound` (events, dedup, receipts, windows), `sweep` (the dedup repair sweep), `outbox` (messages, idempotency, attempts,
//! holds, blocks), `visitors` (web visitor streams), `lease` (per-chat delivery leases).

mod inbound;
mod keys;
mod kv;
mod lease;
mod outbox;
mod senders;
mod setup;
mod sweep;
mod visitors;
mod watched;

pub use setup::{DUPLICATE_WINDOW_MAX, DUPLICATE_WINDOW_MIN, NatsAuth, NatsOptions, NatsTls, valid_duplicate_window};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv::Store, stream::Stream};
use async_trait::async_trait;
use chatgate_model::{Channel, Conversation, CustomerRef, MessageRecord, OutboundRequest};
use chatgate_queue::{
    AccountHold, AppendOutcome, Attempt, Enqueued, InboundRecord, PendingMessage, Queue, QueueError, QueueStats,
    StoredEvent, VisitorAppend, VisitorAppended, VisitorItem,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::setup::{Names, storage};

/// The queue on NATS JetStream. Cheap to clone; every clone shares one connection.
#[derive(Debug, Clone)]
pub struct NatsQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    js: jetstream::Context,
    names: Names,
    options: NatsOptions,
    events: Stream,
    dedup: Store,
    msgs: Store,
    pending: Store,
    chatpending: Store,
    idem: Store,
    extids: Store,
    chats: Store,
    windows: Store,
    blocks: Store,
    holds: Store,
    visitors: Store,
    leases: Store,
    cursors: Store,
    senders: Store,
    senders_view: Arc<watched::Watched<senders::Senders>>,
    senders_written: senders::Written,
    holds_view: Arc<watched::Watched<outbox::Hold>>,
    /// The highest event seq this instance knows to be acknowledged.
    last_seq: watch::Sender<u64>,
    /// Woken on every event any instance publishes (a core subscription on the events subjects).
    published: Arc<Notify>,
    calls: AtomicU64,
    writes: AtomicU64,
    /// Dedup keys the repair sweep wrote (see `sweep`).
    repaired: AtomicU64,
    /// Windows this instance wrote lately (chat key → the time written, µs): see `note_window`.
    windows_written: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    _listener: tokio::task::JoinHandle<()>,
    _sweeper: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self._listener.abort();
        self._sweeper.abort();
    }
}

impl NatsQueue {
    /// A short-lived pull consumer of the events after `after` (only their headers when
    /// `headers_only`), with its name for [`NatsQueue::drop_reader`]; it also goes by itself
    /// after 30 s unused.
    pub(crate) async fn reader(
        &self,
        after: u64,
        headers_only: bool,
    ) -> Result<(jetstream::consumer::Consumer<jetstream::consumer::pull::Config>, String), QueueError> {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
        let consumer = self
            .inner
            .events
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
                ack_policy: AckPolicy::None,
                headers_only,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(storage)?;
        let name = consumer.cached_info().name.clone();
        Ok((consumer, name))
    }

    /// Deletes a [`NatsQueue::reader`] in the background.
    pub(crate) fn drop_reader(&self, name: String) {
        let events = self.inner.events.clone();
        tokio::spawn(async move {
            let _ = events.delete_consumer(&name).await;
        });
    }

    /// Connects, creates the stream and buckets or checks that the existing ones match the
    /// options (an error names the setting that cannot be kept), then runs the dedup repair
    /// sweep up to the stream's end before returning, and keeps it running in the background.
    pub async fn connect(options: NatsOptions) -> Result<NatsQueue, QueueError> {
        let client = setup::connect(&options).await?;
        let js = jetstream::new(client.clone());
        let names = Names::new(&options.prefix);
        let mut stores = setup::ensure(&js, &names, &options).await?;
        let mut take = |role: &str| {
            let at = stores.iter().position(|(r, _)| r == role).expect("every role is created");
            stores.swap_remove(at).1
        };
        let (dedup, msgs, pending, idem, extids) =
            (take("dedup"), take("msgs"), take("pending"), take("idem"), take("extids"));
        let (chatpending, cursors, senders) = (take("chatpending"), take("cursors"), take("senders"));
        let (chats, windows, blocks, holds, visitors, leases) =
            (take("chats"), take("windows"), take("blocks"), take("holds"), take("visitors"), take("leases"));
        let mut events = js.get_stream(&names.events_stream).await.map_err(storage)?;
        let last = events.info().await.map_err(storage)?.state.last_sequence;
        let published = Arc::new(Notify::new());
        let mut sub = client.subscribe(names.events_subjects()).await.map_err(storage)?;
        let wake = published.clone();
        let listener = tokio::spawn(async move {
            while sub.next().await.is_some() {
                wake.notify_waiters();
            }
        });
        let every = sweep::interval(options.duplicate_window);
        let queue = NatsQueue {
            inner: Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
                js,
                names,
                options,
                events,
                dedup,
                msgs,
                pending,
                chatpending,
                idem,
                extids,
                chats,
                windows,
                blocks,
                holds,
                visitors,
                leases,
                cursors,
                senders,
                senders_view: Arc::default(),
                senders_written: senders::Written::default(),
                holds_view: Arc::default(),
                last_seq: watch::Sender::new(last),
                published,
                calls: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                repaired: AtomicU64::new(0),
                windows_written: std::sync::Mutex::default(),
                _listener: listener,
                _sweeper: tokio::spawn(sweep::run(weak.clone(), every, last)),
            }),
        };
        let swept = queue.sweep_dedup(last, "open").await?;
        tracing::info!(
            prefix = %queue.inner.names.prefix,
            replicas = queue.inner.options.replicas,
            swept_to = swept.to,
            repaired = swept.repaired,
            "NATS queue ready"
        );
        Ok(queue)
    }

    /// The subject the core publishes outbound requests to (see the README).
    pub fn outbound_subject(&self) -> String {
        self.inner.names.outbound_subject()
    }

    /// The NATS client (for serving the outbound subject).
    pub fn client(&self) -> async_nats::Client {
        self.inner.js.client()
    }

    /// This instance's name on leases.
    pub fn instance(&self) -> &str {
        &self.inner.options.instance
    }

    fn saw(&self, seq: u64) {
        self.inner.last_seq.send_if_modified(|last| {
            if seq > *last {
                *last = seq;
                true
            } else {
                false
            }
        });
    }

    /// The last sequence of the events stream, asked of the server.
    async fn last_seq(&self) -> Result<u64, QueueError> {
        let mut events = self.inner.events.clone();
        let last = events.info().await.map_err(storage)?.state.last_sequence;
        self.saw(last);
        Ok(last)
    }
}

/// Puts `"seq":N` first into a stored envelope.
fn with_seq(seq: u64, body: &str) -> String {
    match body.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"seq\":{seq}}}"),
        Some(rest) => format!("{{\"seq\":{seq},{rest}"),
        None => body.to_owned(),
    }
}

fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

#[async_trait]
impl Queue for NatsQueue {
    async fn append_inbound(&self, records: Vec<InboundRecord>) -> Result<AppendOutcome, QueueError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        self.append(records).await
    }

    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, QueueError> {
        if limit == 0 || self.last_seq().await? <= after {
            return Ok(Vec::new());
        }
        let (consumer, name) = self.reader(after, false).await?;
        let mut batch = consumer.fetch().max_messages(limit).messages().await.map_err(storage)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        while let Some(m) = batch.next().await {
            let m = m.map_err(storage)?;
            let seq = m.info().map_err(storage)?.stream_sequence;
            let body = std::str::from_utf8(&m.payload).map_err(storage)?;
            out.push(StoredEvent { seq, json: with_seq(seq, body) });
        }
        self.drop_reader(name);
        Ok(out)
    }

    async fn wait_events(&self, after: u64, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let published = self.inner.published.notified();
            let last = self.last_seq().await.unwrap_or_else(|_| *self.inner.last_seq.borrow());
            let now = tokio::time::Instant::now();
            if last > after || now >= deadline {
                return last;
            }
            // A notification may come before JetStream stored the event: look again soon anyway.
            let nap = (deadline - now).min(Duration::from_millis(250));
            let _ = tokio::time::timeout(nap, published).await;
        }
    }

    async fn enqueue(&self, id: Uuid, request: OutboundRequest) -> Result<Enqueued, QueueError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        self.enqueue_message(id, request).await
    }

    async fn record_attempt(&self, id: Uuid, attempt: Attempt) -> Result<(), QueueError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        self.attempt(id, attempt).await
    }

    async fn pending_messages(&self) -> Result<Vec<PendingMessage>, QueueError> {
        self.pending().await
    }

    async fn pending_of_chat(&self, conversation: &Conversation) -> Result<Vec<PendingMessage>, QueueError> {
        self.chat_pending(conversation).await
    }

    async fn account_holds(&self) -> Result<Vec<AccountHold>, QueueError> {
        self.holds().await
    }

    async fn message(&self, id: Uuid) -> Result<Option<MessageRecord>, QueueError> {
        self.message_record(id).await
    }

    async fn last_inbound(&self, conversation: &Conversation) -> Result<Option<DateTime<Utc>>, QueueError> {
        let key = keys::hashed(&[conversation.channel.as_str(), &conversation.account, &conversation.chat_id]);
        Ok(kv::load::<i64>(&self.inner.windows, &key).await?.map(|(us, _)| from_us(us)))
    }

    async fn set_blocked(&self, customer: &CustomerRef, blocked: bool) -> Result<(), QueueError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        self.block(customer, blocked).await
    }

    async fn blocked(&self) -> Result<Vec<CustomerRef>, QueueError> {
        self.blocked_customers().await
    }

    async fn append_visitor(&self, append: VisitorAppend) -> Result<VisitorAppended, QueueError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        self.visitor_append(append).await
    }

    async fn read_visitor(
        &self,
        account: &str,
        visitor: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<VisitorItem>, QueueError> {
        self.visitor_read(account, visitor, after, limit).await
    }

    async fn visitor_item(&self, account: &str, visitor: &str, key: &str) -> Result<Option<VisitorItem>, QueueError> {
        self.visitor_find(account, visitor, key).await
    }

    async fn set_visitor_profile(&self, account: &str, visitor: &str, data: String) -> Result<(), QueueError> {
        self.visitor_set_profile(account, visitor, data).await
    }

    async fn visitor_profile(&self, account: &str, visitor: &str) -> Result<Option<String>, QueueError> {
        self.visitor_get_profile(account, visitor).await
    }

    async fn lease_chat(&self, conversation: &Conversation, ttl: Duration) -> Result<bool, QueueError> {
        self.lease(conversation, ttl).await
    }

    async fn release_chat(&self, conversation: &Conversation) -> Result<(), QueueError> {
        self.release(conversation).await
    }

    async fn announce_senders(
        &self,
        accounts: &[(Channel, String)],
        ttl: Duration,
    ) -> Result<HashMap<(Channel, String), u32>, QueueError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        self.announce(accounts, ttl).await
    }

    async fn withdraw_senders(&self) -> Result<(), QueueError> {
        self.withdraw().await
    }

    fn shared_by_instances(&self) -> bool {
        true
    }

    async fn cursor(&self, name: &str) -> Result<u64, QueueError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let key = cursor_key(name)?;
        Ok(kv::load::<u64>(&self.inner.cursors, &key).await?.map_or(0, |(seq, _)| seq))
    }

    async fn set_cursor(&self, name: &str, seq: u64) -> Result<(), QueueError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let key = cursor_key(name)?;
        // Compare-and-set: a cursor only moves forward, also when two instances move it at once.
        kv::modify::<u64>(&self.inner.cursors, &key, |stored| match stored {
            Some(at) if *at >= seq => None,
            _ => Some(seq),
        })
        .await
    }

    fn lease_ttl(&self) -> Duration {
        self.inner.options.lease_ttl
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            batches: self.inner.calls.load(Ordering::Relaxed),
            commands: self.inner.writes.load(Ordering::Relaxed),
            syncs: 0,
            sync_micros: 0,
            log_bytes: 0,
            writer_checkpoints: 0,
            writer_checkpoint_micros: 0,
            durable_seq: *self.inner.last_seq.borrow(),
            dedup_repaired: self.inner.repaired.load(Ordering::Relaxed),
        }
    }
}

/// A cursor's KV key: its name, which must be 1 to 64 characters of `A-Z a-z 0-9 _ -`.
fn cursor_key(name: &str) -> Result<String, QueueError> {
    let valid =
        (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !valid {
        return Err(QueueError::Storage(format!("cursor name `{name}` must be 1 to 64 characters of A-Z a-z 0-9 _ -")));
    }
    Ok(format!("cursor.{name}"))
}
