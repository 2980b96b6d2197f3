//! The delivery engine: messages from the outbox go to their provider one chat at a time,
//! in order, rate-limited per account and per chat, with retries driven by the error kind.
//!
//! Each chat with work has one worker task; a message that waits for a retry holds back the
//! later messages of its chat (order first), never other chats. A message is split into parts
//! (template, text, one part per attachment); the store remembers which parts were sent, so
//! a retry or a restart never repeats a sent part.
//!
//! When several gateway instances share the store (NATS), a chat is delivered only by the
//! instance holding its lease, and its worker takes each next message from the store (`lease`).

mod lease;
mod share;

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chatgate_adapter::{Adapter, Media, OutboundPart, PartBody, Rate, SendErrorKind};
use chatgate_model::ErrorCode;
use chatgate_model::{Channel, Conversation, ErrorInfo, OutboundRequest};
use chatgate_queue::{Attempt, PendingMessage, QueueError};
use chrono::{DateTime, Utc};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::Rng;
use uuid::Uuid;

use crate::fetch::{FetchError, Fetcher};
use crate::metrics::{Counters, RetryKind};
use crate::{Account, Shared};

/// Per-chat rate-limiter entries kept before idle ones are pruned.
const CHAT_LIMITER_PRUNE_AT: usize = 10_000;

#[derive(Debug, Clone)]
struct Job {
    id: Uuid,
    request: OutboundRequest,
    parts_done: u32,
    attempts: u32,
    /// Transient failures in a row (what the backoff grows with); a provider's wait is not one.
    transient: u32,
    created_at: DateTime<Utc>,
    /// Not to be tried before this time (a wait recorded before a restart).
    not_before: Option<DateTime<Utc>>,
}

struct Limiters {
    /// The provider's rate for the whole account, when it has one.
    account_rate: Option<Rate>,
    /// The limiter for this instance's share of `account_rate`, with the number of instances
    /// sharing it (see [`share`]).
    account: Mutex<Option<(u32, Arc<DefaultDirectRateLimiter>)>>,
    chat: Option<DefaultKeyedRateLimiter<String>>,
    /// A chat's budget as the worker mirrors it (see `chat_tat` in `attempt`): how long it takes
    /// to give back one call, and how far ahead of its theoretical arrival time a call may go
    /// (its burst beyond one call).
    chat_pace: Option<(Duration, Duration)>,
    /// The queue of workers waiting for the account's next call (see
    /// [`DeliveryEngine::take_account_call`]).
    account_turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").field("account", &self.account_rate).field("chat", &self.chat.is_some()).finish()
    }
}

impl Limiters {
    /// The account's limiter for a share among `instances` (rebuilt when the share changes),
    /// paced by [`quota`] so that no window of the provider's `per` holds more than the share's
    /// count, and so the instances' shares together no more than the account's.
    fn account(&self, instances: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
        let rate = self.account_rate?;
        let mut current = self.account.lock().unwrap_or_else(|e| e.into_inner());
        match &*current {
            Some((n, limiter)) if *n == instances => return Some(limiter.clone()),
            _ => {}
        }
        let limiter = Arc::new(RateLimiter::direct(quota(share_of(rate, instances))?));
        *current = Some((instances, limiter.clone()));
        Some(limiter)
    }
}

/// One of `instances` equal shares of `rate` (at least one call per period of the share).
fn share_of(rate: Rate, instances: u32) -> Rate {
    if instances <= 1 || rate.count == 0 {
        return rate;
    }
    let count = (rate.count / instances).max(1);
    // count calls per (per × count × instances / rate.count): rate.count / instances per `per`.
    Rate { count, per: rate.per * count * instances / rate.count }
}

/// The outbound delivery engine.
#[derive(Debug)]
pub(crate) struct DeliveryEngine {
    shared: Weak<Shared>,
    fetcher: Fetcher,
    /// Chats with a running worker and the messages waiting behind the one it works on.
    chats: Mutex<HashMap<Conversation, VecDeque<Job>>>,
    limiters: Mutex<HashMap<(Channel, String), Arc<Limiters>>>,
    /// Accounts a provider asked to pause, until when (also stored, so a restart keeps them).
    holds: Mutex<HashMap<(Channel, String), DateTime<Utc>>>,
    /// Provider calls under way; shutdown waits for them (within its grace) so that a part the
    /// provider took is recorded before the process ends.
    sending: AtomicUsize,
    sent_all: tokio::sync::Notify,
    /// Chat leases held, when the store is shared by several instances.
    leases: lease::Leases,
    /// How many instances share each account's rate limit.
    shares: share::Shares,
}

impl From<PendingMessage> for Job {
    fn from(m: PendingMessage) -> Job {
        Job {
            id: m.id,
            request: m.request,
            parts_done: m.parts_done,
            attempts: m.attempts,
            transient: 0,
            created_at: m.created_at,
            not_before: m.next_at,
        }
    }
}

enum Outcome {
    Done,
    /// Shutdown began: the message stays queued for the next start.
    Stopped,
    Retry {
        after: Duration,
        error: String,
        wait: Wait,
    },
    Failed(ErrorInfo),
}

/// Where a retry's delay comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Exponential backoff after a transient error.
    Backoff,
    /// The provider's (or our fixed) wait for this message.
    Message,
    /// The provider's wait for the whole account.
    Account,
}

/// How much longer than a provider's window our budget spreads its calls. We time a call when it
/// leaves, the provider when it arrives; the two differ by the network and the scheduling on both
/// sides, and this margin absorbs that difference.
const RATE_MARGIN: Duration = Duration::from_millis(10);

/// The budget (GCRA) for a provider's `count` calls per `per`: a burst of at most two calls, then
/// one call every `(per + RATE_MARGIN) / (count - 1)` (every `per + RATE_MARGIN` for a count of 1).
///
/// GCRA lets at most `burst + w / period` calls into any window of length `w`, so `count + 1`
/// calls span at least `per + RATE_MARGIN`: no window of `per` as the provider times it holds more
/// than `count`. The one-call slack of the burst lets a worker that wakes a little after its slot
/// (timer granularity, a busy core) take it without losing it; a larger burst would cost rate.
fn quota(rate: Rate) -> Option<Quota> {
    NonZeroU32::new(rate.count)?;
    let burst = rate.count.min(2);
    let period = (rate.per + RATE_MARGIN) / (rate.count + 1 - burst);
    Some(Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?))
}

impl DeliveryEngine {
    pub fn new(shared: Weak<Shared>, fetcher: Fetcher) -> DeliveryEngine {
        DeliveryEngine {
            shared,
            fetcher,
            chats: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
            sending: AtomicUsize::new(0),
            sent_all: tokio::sync::Notify::new(),
            leases: lease::Leases::default(),
            shares: share::Shares::default(),
        }
    }

    /// Waits until no provider call is under way (after shutdown began, none starts).
    pub async fn drain(&self) {
        loop {
            let notified = self.sent_all.notified();
            if self.sending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Re-submits every unfinished message after a restart, oldest first, each not before the
    /// time its last retry named, and restores the providers' account-wide waits.
    pub async fn resume(&self) -> Result<(), QueueError> {
        let Some(shared) = self.shared.upgrade() else { return Ok(()) };
        let now = Utc::now();
        for hold in shared.queue.account_holds().await? {
            if hold.until > now {
                tracing::info!(channel = %hold.channel, account = %hold.account, until = %hold.until, "the provider's wait for this account still holds");
                self.hold(hold.channel, hold.account, hold.until);
            }
        }
        let pending = shared.queue.pending_messages().await?;
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "resuming delivery of queued messages");
        }
        for m in pending {
            self.push(Job::from(m));
        }
        if shared.queue.shared_by_instances() {
            lease::scan(self.shared.clone(), shared.queue.lease_ttl() / 2);
            share::announce(self.shared.clone());
        }
        Ok(())
    }

    /// Starts a worker for the message's chat unless one runs here (the shared store's scan).
    fn wake(&self, m: PendingMessage) {
        if self.chats.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&m.request.conversation()) {
            return;
        }
        self.push(Job::from(m));
    }

    /// With a shared store: the chat's next message, from the store, while this instance holds
    /// the chat's lease; `None` ends the worker (nothing left, or another instance delivers it).
    async fn next_shared(&self, shared: &Shared, key: &Conversation) -> Option<Job> {
        let queue = shared.queue.as_ref();
        loop {
            // The local queue only wakes the worker: the store says what is next.
            if let Some(waiting) = self.chats.lock().unwrap_or_else(|e| e.into_inner()).get_mut(key) {
                waiting.clear();
            }
            let held = self.leases.hold(queue, key).await;
            let next = if held {
                lease::next_of_chat(queue, key).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not read the chat's next message");
                    None
                })
            } else {
                None
            };
            if let Some(next) = next {
                return Some(Job::from(next));
            }
            // Released while the chat is still ours here, so no second local worker can think it
            // holds the lease; a message submitted meanwhile makes this worker look again.
            if held {
                self.leases.release(queue, key).await;
            }
            let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
            if !held || chats.get(key).is_none_or(VecDeque::is_empty) {
                chats.remove(key);
                return None;
            }
        }
    }

    /// Hands a newly stored message to its chat's worker.
    pub fn submit(&self, id: Uuid, request: OutboundRequest) {
        self.push(Job {
            id,
            request,
            parts_done: 0,
            attempts: 0,
            transient: 0,
            created_at: Utc::now(),
            not_before: None,
        });
    }

    /// Holds back every message of an account until `until` (a later hold wins).
    fn hold(&self, channel: Channel, account: String, until: DateTime<Utc>) {
        let mut holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        let entry = holds.entry((channel, account)).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Waits while the account is held by a provider's wait; true when it had to wait.
    async fn wait_for_account(&self, channel: Channel, account: &str) -> bool {
        let mut waited = false;
        loop {
            let until =
                self.holds.lock().unwrap_or_else(|e| e.into_inner()).get(&(channel, account.to_owned())).copied();
            match until.and_then(|t| t.signed_duration_since(Utc::now()).to_std().ok()) {
                Some(left) if !left.is_zero() => {
                    tokio::time::sleep(left).await;
                    waited = true;
                }
                _ => return waited,
            }
        }
    }

    /// Takes one call from the account's budget. Waiters queue in arrival order (tokio's mutex is
    /// fair) and only the first one polls the limiter, sleeping on tokio's timer until the next
    /// slot: each slot wakes one task, not every waiting chat's, and the chats of an account take
    /// turns. The first in line also waits out a provider's wait for the account before each
    /// try, so that no call is taken during the wait: such a call would leave when the wait ends,
    /// together with the calls taken after it, and the provider would see more than its count.
    async fn take_account_call(&self, limiters: &Limiters, channel: Channel, account: &str) {
        if limiters.account_rate.is_none() {
            return;
        }
        let _turn = limiters.account_turn.lock().await;
        loop {
            self.wait_for_account(channel, account).await;
            // This instance's share of the account's rate, as of now (see `share`).
            let Some(l) = limiters.account(self.shares.of(channel, account)) else { return };
            match l.check() {
                Ok(()) => return,
                Err(not_until) => tokio::time::sleep(not_until.wait_time_from(l.clock().now())).await,
            }
        }
    }

    fn push(&self, job: Job) {
        let key = job.request.conversation();
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = chats.get_mut(&key) {
            waiting.push_back(job);
            return;
        }
        chats.insert(key.clone(), VecDeque::from([job]));
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut chat_tat = None;
            while let Some(shared) = shared.upgrade() {
                if *shared.shutdown.borrow() {
                    // The rest of this chat stays queued in the store for the next start.
                    shared.delivery.chats.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                    return;
                }
                let next = if shared.queue.shared_by_instances() {
                    match shared.delivery.next_shared(&shared, &key).await {
                        Some(job) => job,
                        None => return,
                    }
                } else {
                    let mut chats = shared.delivery.chats.lock().unwrap_or_else(|e| e.into_inner());
                    match chats.get_mut(&key).and_then(VecDeque::pop_front) {
                        Some(job) => job,
                        None => {
                            chats.remove(&key);
                            return;
                        }
                    }
                };
                shared.delivery.deliver(&shared, next, &mut chat_tat).await;
            }
        });
    }

    fn limiters(&self, adapter: &dyn Adapter) -> Arc<Limiters> {
        let key = (adapter.channel(), adapter.account().to_owned());
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| {
                let rates = adapter.facts().rate_limits;
                let chat = rates.per_chat.and_then(quota);
                Arc::new(Limiters {
                    account_rate: rates.per_account,
                    account: Mutex::new(None),
                    chat: chat.map(RateLimiter::keyed),
                    chat_pace: chat
                        .map(|q| (q.replenish_interval(), q.replenish_interval() * (q.burst_size().get() - 1))),
                    account_turn: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Delivers one message; `chat_tat` mirrors its chat's budget, from which the worker knows when it may next take a call of the
    /// chat's budget (see [`DeliveryEngine::attempt`]).
    async fn deliver(&self, shared: &Shared, mut job: Job, chat_tat: &mut Option<Instant>) {
        let (channel, account_id) = (job.request.channel, job.request.account.clone());
        let Some(account) = shared.accounts.get(channel, &account_id).cloned() else {
            self.finish(
                shared,
                &job,
                Outcome::Failed(error(ErrorCode::UnknownAccount, "the account is no longer configured")),
            )
            .await;
            return;
        };
        let mut media: Option<Vec<Media>> = None;
        // A wait recorded before a restart still holds.
        if let Some(left) = job.not_before.and_then(|t| t.signed_duration_since(Utc::now()).to_std().ok())
            && !sleep_unless_stopping(shared, left).await
        {
            return;
        }
        loop {
            let outcome = self.attempt(shared, &account, &mut job, &mut media, chat_tat).await;
            match outcome {
                Outcome::Retry { after, error: text, wait } => {
                    job.attempts += 1;
                    if wait == Wait::Backoff {
                        job.transient += 1;
                    }
                    let age = Utc::now().signed_duration_since(job.created_at).to_std().unwrap_or_default();
                    if age + after > shared.settings.max_retry_age {
                        let info = error(
                            ErrorCode::RetriesExhausted,
                            format!("gave up after {} attempts: {text}", job.attempts),
                        );
                        self.finish(shared, &job, Outcome::Failed(info)).await;
                        return;
                    }
                    tracing::warn!(%channel, account = %account_id, message = %job.id, attempt = job.attempts, retry_in = ?after, error = %text, "send failed; will retry");
                    account.counters.retried(match wait {
                        Wait::Message => RetryKind::RetryAfter,
                        Wait::Account => RetryKind::AccountRetryAfter,
                        Wait::Backoff => RetryKind::Transient,
                    });
                    let next_at = Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
                    let whole_account = wait == Wait::Account;
                    if whole_account {
                        self.hold(channel, account_id.clone(), next_at);
                    }
                    let attempt = Attempt::Retry { next_at, error: text, whole_account };
                    if let Err(e) = shared.queue.record_attempt(job.id, attempt).await {
                        tracing::error!(message = %job.id, error = %e, "could not record a retry");
                    }
                    if !sleep_unless_stopping(shared, after).await {
                        return;
                    }
                }
                Outcome::Stopped => return,
                done => {
                    self.finish(shared, &job, done).await;
                    return;
                }
            }
        }
    }

    async fn finish(&self, shared: &Shared, job: &Job, outcome: Outcome) {
        let counters = shared.accounts.get(job.request.channel, &job.request.account).map(|a| a.counters.clone());
        let count = |pick: fn(&Counters) -> &std::sync::atomic::AtomicU64| {
            if let Some(c) = &counters {
                Counters::add(pick(c), 1);
            }
        };
        match outcome {
            Outcome::Done => count(|c| &c.outbound_sent),
            Outcome::Failed(info) => {
                tracing::warn!(channel = %job.request.channel, account = %job.request.account, message = %job.id, code = %info.code, error = %info.message, "message failed");
                count(|c| &c.outbound_failed);
                if let Err(e) = shared.queue.record_attempt(job.id, Attempt::Failed { error: info }).await {
                    tracing::error!(message = %job.id, error = %e, "could not record a failure");
                }
            }
            Outcome::Retry { .. } | Outcome::Stopped => unreachable!("retries and stops are handled by deliver"),
        }
    }

    /// One pass over the parts not yet sent.
    ///
    /// Before each call the worker waits for its chat's budget, then takes the account's, so that
    /// an account call is never taken and then held while the chat's budget refills (which would
    /// lose that call for every chat of the account). Governor cannot tell when a key will be
    /// ready without spending it, and the chat's budget must be spent right before the call (the
    /// provider times the call), so the worker mirrors the chat's budget in `chat_tat` (its
    /// theoretical arrival time, as GCRA keeps it, burst included) to know when the chat's budget
    /// is back after its last call; the chat limiter still guards a chat whose worker is new.
    async fn attempt(
        &self,
        shared: &Shared,
        account: &Account,
        job: &mut Job,
        media: &mut Option<Vec<Media>>,
        chat_tat: &mut Option<Instant>,
    ) -> Outcome {
        let request = &job.request;
        if shared.blocks.is_blocked(&request.customer()) {
            return Outcome::Failed(error(
                ErrorCode::CustomerBlocked,
                "the customer was blocked before the message was sent",
            ));
        }
        if media.is_none() {
            match self.download(account, request).await {
                Ok(files) => *media = Some(files),
                Err(outcome) => return outcome,
            }
        }
        let parts = plan(job.id, request, media.as_deref().unwrap_or_default());
        let adapter = account.adapter.as_ref();
        let caps = adapter.facts().capabilities;
        let limiters = self.limiters(adapter);
        let total = parts.len() as u32;
        for part in parts.into_iter().skip(job.parts_done as usize) {
            if let (Some(window), false) = (caps.messaging_window, matches!(part.body, PartBody::Template(_))) {
                let last = match shared.queue.last_inbound(&request.conversation()).await {
                    Ok(last) => last,
                    Err(e) => {
                        let after = self.backoff(shared, job.transient);
                        return Outcome::Retry { after, error: e.to_string(), wait: Wait::Backoff };
                    }
                };
                if !crate::api::window_open(last, window) {
                    return Outcome::Failed(error(
                        ErrorCode::WindowClosed,
                        "the messaging window closed before the message was sent",
                    ));
                }
            }
            let chat_free_at =
                chat_tat.zip(limiters.chat_pace).map(|(tat, (_, ahead))| tat.checked_sub(ahead).unwrap_or(tat));
            if let Some(left) = chat_free_at.map(|at| at.saturating_duration_since(Instant::now()))
                && !left.is_zero()
                && !sleep_unless_stopping(shared, left).await
            {
                return Outcome::Stopped;
            }
            self.shares.sending(request.channel, &request.account);
            self.take_account_call(&limiters, request.channel, &request.account).await;
            // A provider's wait that began just after the call was taken makes that call stale
            // (see take_account_call): take another once the wait is over.
            while limiters.account_rate.is_some() && self.wait_for_account(request.channel, &request.account).await {
                self.take_account_call(&limiters, request.channel, &request.account).await;
            }
            if let Some(l) = &limiters.chat {
                l.until_key_ready(&request.chat_id).await;
                // One entry per chat ever sent to: forget the ones whose budget is full again.
                if l.len() > CHAT_LIMITER_PRUNE_AT {
                    l.retain_recent();
                }
            }
            // Last before the call: a provider's wait for the account that began after this worker
            // took its call holds it too.
            self.wait_for_account(request.channel, &request.account).await;
            // With a shared store, only the chat's lease holder sends (renewed here when half used).
            if !self.leases.hold(shared.queue.as_ref(), &request.conversation()).await {
                return Outcome::Stopped;
            }
            let sent = {
                let _sending = Sending::start(self);
                if *shared.shutdown.borrow() {
                    return Outcome::Stopped;
                }
                let started = Instant::now();
                *chat_tat = limiters.chat_pace.map(|(period, _)| chat_tat.map_or(started, |t| t.max(started)) + period);
                let sent = adapter.send(&part).await;
                shared.metrics.sent(request.channel, &request.account, started.elapsed());
                sent
            };
            let answered = Instant::now();
            match sent {
                Ok(receipt) => {
                    let last = part.index + 1 == total;
                    let attempt = Attempt::PartSent {
                        index: part.index,
                        external_id: receipt.external_id,
                        status: receipt.status,
                        last,
                    };
                    match shared.queue.record_attempt(job.id, attempt).await {
                        Ok(()) => shared.metrics.recorded(request.channel, &request.account, answered.elapsed()),
                        Err(e) => tracing::error!(message = %job.id, error = %e, "sent, but could not record it"),
                    }
                    job.parts_done = part.index + 1;
                }
                Err(e) => {
                    return match e.kind {
                        SendErrorKind::RetryAfter(after) => {
                            Outcome::Retry { after, error: e.message, wait: Wait::Message }
                        }
                        SendErrorKind::AccountRetryAfter(after) => {
                            Outcome::Retry { after, error: e.message, wait: Wait::Account }
                        }
                        SendErrorKind::Transient => Outcome::Retry {
                            after: self.backoff(shared, job.transient),
                            error: e.message,
                            wait: Wait::Backoff,
                        },
                        SendErrorKind::Failed(code) => Outcome::Failed(error(code, e.message)),
                    };
                }
            }
        }
        Outcome::Done
    }

    /// Downloads every attachment, each capped at its kind's limit.
    async fn download(&self, account: &Account, request: &OutboundRequest) -> Result<Vec<Media>, Outcome> {
        let mut out = Vec::with_capacity(request.attachments.len());
        for a in &request.attachments {
            let Some(limit) = account.limits.for_kind(a.kind) else {
                return Err(Outcome::Failed(error(
                    ErrorCode::AttachmentKindUnsupported,
                    format!("{} does not take {} attachments", request.channel, a.kind.as_str()),
                )));
            };
            match self.fetcher.fetch(&a.url, limit).await {
                Ok(f) => out.push(Media {
                    kind: a.kind,
                    name: a.name.clone().or(f.file_name).unwrap_or_else(|| "file".to_owned()),
                    mime: a.mime.clone().or(f.mime),
                    bytes: f.bytes,
                    source_url: a.url.clone(),
                }),
                Err(e) if e.is_transient() => {
                    return Err(Outcome::Retry {
                        after: Duration::from_secs(5),
                        error: e.to_string(),
                        wait: Wait::Message,
                    });
                }
                Err(e) => {
                    let code = match e {
                        FetchError::TooLarge { .. } => ErrorCode::AttachmentTooLarge,
                        FetchError::Forbidden(_) => ErrorCode::AttachmentUrlForbidden,
                        _ => ErrorCode::AttachmentUnavailable,
                    };
                    return Err(Outcome::Failed(error(code, e.to_string())));
                }
            }
        }
        Ok(out)
    }

    /// Exponential backoff with ±20 % jitter: `base_backoff` after the first transient failure,
    /// doubling with each further transient failure (a provider's wait in between does not count).
    fn backoff(&self, shared: &Shared, attempts: u32) -> Duration {
        let s = &shared.settings;
        let exp = s.base_backoff.saturating_mul(1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX));
        let capped = exp.min(s.max_backoff);
        capped.mul_f64(rand::rng().random_range(0.8..1.2))
    }
}

/// Sleeps `time` unless shutdown begins first; false when it did.
async fn sleep_unless_stopping(shared: &Shared, time: Duration) -> bool {
    let mut stopping = shared.shutdown.subscribe();
    tokio::select! {
        () = tokio::time::sleep(time) => true,
        _ = stopping.wait_for(|stop| *stop) => false,
    }
}

/// Counts one provider call under way for [`DeliveryEngine::drain`].
struct Sending<'a>(&'a DeliveryEngine);

impl<'a> Sending<'a> {
    fn start(engine: &'a DeliveryEngine) -> Sending<'a> {
        engine.sending.fetch_add(1, Ordering::AcqRel);
        Sending(engine)
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if self.0.sending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.sent_all.notify_waiters();
        }
    }
}

/// Splits a message into provider calls: template, text, then one part per attachment.
fn plan(id: Uuid, request: &OutboundRequest, media: &[Media]) -> Vec<OutboundPart> {
    let mut bodies = Vec::new();
    if let Some(t) = &request.template {
        bodies.push(PartBody::Template(t.clone()));
    }
    if let Some(text) = request.text.as_deref().filter(|t| !t.trim().is_empty()) {
        bodies.push(match request.buttons.is_empty() {
            true => PartBody::Text(text.to_owned()),
            false => PartBody::Buttons {
                text: text.to_owned(),
                buttons: request.buttons.clone(),
                per_row: request.buttons_per_row.unwrap_or(1).max(1),
            },
        });
    }
    bodies.extend(media.iter().cloned().map(|m| PartBody::Media { media: m, caption: None }));
    if let Some(ask) = &request.feedback {
        bodies.push(PartBody::Feedback(ask.clone()));
    }
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| OutboundPart {
            message_id: id,
            index: i as u32,
            chat_id: request.chat_id.clone(),
            reply_to: if i == 0 { request.reply_to.clone() } else { None },
            body,
        })
        .collect()
}

fn error(code: ErrorCode, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo { code, message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    /// Takes every call the budget allows, polling each 1 ms (a worker woken by a timer tick)
    /// for `run`; the times of the calls taken.
    fn greedy(rate: Rate, run: Duration) -> Vec<Duration> {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota(rate).expect("a quota"), clock.clone());
        let (mut now, mut taken) = (Duration::ZERO, Vec::new());
        while now < run {
            while limiter.check().is_ok() {
                taken.push(now);
            }
            clock.advance(Duration::from_millis(1));
            now += Duration::from_millis(1);
        }
        taken
    }

    #[test]
    fn no_window_of_the_providers_period_holds_more_than_its_count() {
        let rates = [
            Rate::per_second(30),
            Rate::per_second(1),
            Rate::per_second(80),
            Rate { count: 10, per: Duration::from_secs(60) },
        ];
        for rate in rates {
            let run = rate.per * 20;
            let taken = greedy(rate, run);
            let count = rate.count as usize;
            let shortest = taken.windows(count + 1).map(|w| w[count] - w[0]).min().expect("enough calls");
            assert!(shortest >= rate.per + RATE_MARGIN, "{rate:?}: {} calls within {shortest:?}", count + 1);
            // A poller late by up to a tick loses nothing: one call per period, plus the burst.
            let period = quota(rate).expect("a quota").replenish_interval();
            let steady = (run.as_secs_f64() / period.as_secs_f64()) as usize;
            assert!(
                (steady..=steady + 2).contains(&taken.len()),
                "{rate:?}: {} calls in {run:?}, one per {period:?} would be {steady}",
                taken.len()
            );
        }
    }

    #[test]
    fn a_limit_of_zero_calls_has_no_budget() {
        assert!(quota(Rate { count: 0, per: Duration::from_secs(1) }).is_none());
    }

    #[test]
    fn a_share_divides_the_rate_and_never_reaches_zero() {
        let rate = Rate::per_second(30);
        assert_eq!(share_of(rate, 1), rate);
        assert_eq!(share_of(rate, 2), Rate::per_second(15));
        // 20/s among 3: 6 calls per 0.9 s.
        assert_eq!(share_of(Rate::per_second(20), 3), Rate { count: 6, per: Duration::from_millis(900) });
        // 1/s among 2: one call per 2 s.
        assert_eq!(share_of(Rate::per_second(1), 2), Rate { count: 1, per: Duration::from_secs(2) });
    }

    #[test]
    fn the_account_limiter_is_rebuilt_for_a_new_share() {
        let limiters = Limiters {
            account_rate: Some(Rate::per_second(30)),
            account: Mutex::new(None),
            chat: None,
            chat_pace: None,
            account_turn: tokio::sync::Mutex::new(()),
        };
        let alone = limiters.account(1).unwrap();
        // The whole rate's budget: a burst of two, then one call a period later.
        assert!(alone.check().is_ok() && alone.check().is_ok());
        assert!(alone.check().is_err());
        assert!(Arc::ptr_eq(&alone, &limiters.account(1).unwrap()));
        // A second instance appears: a new limiter for half of the rate.
        let halved = limiters.account(2).unwrap();
        assert!(!Arc::ptr_eq(&alone, &halved));
        assert_eq!(quota(share_of(Rate::per_second(30), 2)), quota(Rate::per_second(15)));
        let none = Limiters {
            account_rate: None,
            account: Mutex::new(None),
            chat: None,
            chat_pace: None,
            account_turn: tokio::sync::Mutex::new(()),
        };
        assert!(none.account(2).is_none());
    }
}
