//! Delivery when several gateway instances share one store (the NATS backend).
//!
//! A chat is delivered by the instance holding its lease (`Queue::lease_chat`, renewed before
//! every provider call once half of it is used). The worker of a leased chat takes its next
//! message from the store each time — the oldest unfinished message of that chat, with the parts
//! the store records as sent — so a message accepted by another instance, or left half-sent by
//! an instance that died, goes out in order and without repeating a recorded part. A worker that
//! cannot take or renew the lease stops and forgets its local queue (the store keeps the work).
//!
//! Every instance scans the store's unfinished messages every half lease and starts a worker
//! for each chat it is not delivering; a chat whose instance died is therefore taken over within
//! one lease plus half a lease. With one process (SQLite) none of this runs: the lease is always
//! granted and the scan is off.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatgate_model::Conversation;
use chatgate_queue::{PendingMessage, Queue};

use crate::Shared;

/// The leases this instance holds, with when each runs out by the local clock.
#[derive(Debug, Default)]
pub(super) struct Leases {
    held: Mutex<HashMap<Conversation, Instant>>,
}

impl Leases {
    /// Takes or renews the chat's lease when less than half of it is left; false when another
    /// instance holds it (or the store cannot say).
    pub(super) async fn hold(&self, queue: &dyn Queue, chat: &Conversation) -> bool {
        if !queue.shared_by_instances() {
            return true;
        }
        let ttl = queue.lease_ttl();
        let fresh = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(chat)
            .is_some_and(|until| until.saturating_duration_since(Instant::now()) > ttl / 2);
        if fresh {
            return true;
        }
        let asked = Instant::now();
        match queue.lease_chat(chat, ttl).await {
            Ok(true) => {
                self.held.lock().unwrap_or_else(|e| e.into_inner()).insert(chat.clone(), asked + ttl);
                true
            }
            Ok(false) => {
                self.forget(chat);
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take or renew a chat's delivery lease");
                self.forget(chat);
                false
            }
        }
    }

    pub(super) async fn release(&self, queue: &dyn Queue, chat: &Conversation) {
        if queue.shared_by_instances() {
            self.forget(chat);
            if let Err(e) = queue.release_chat(chat).await {
                tracing::warn!(error = %e, "could not release a chat's delivery lease");
            }
        }
    }

    fn forget(&self, chat: &Conversation) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).remove(chat);
    }
}

/// The chat's oldest unfinished message in the store (`Ok(None)`: nothing left).
pub(super) async fn next_of_chat(
    queue: &dyn Queue,
    chat: &Conversation,
) -> Result<Option<PendingMessage>, chatgate_queue::QueueError> {
    Ok(queue.pending_of_chat(chat).await?.into_iter().min_by_key(|m| (m.created_at, m.id)))
}

/// Every half lease: starts a worker for each chat with unfinished messages that this
/// instance does not deliver (its owner died, or it was accepted by an instance that could
/// not take the lease), and reloads the blocks other instances may have set. Ends with the
/// gateway.
pub(super) fn scan(shared: std::sync::Weak<Shared>, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(shared) = shared.upgrade() else { return };
            if *shared.shutdown.borrow() {
                return;
            }
            match shared.queue.pending_messages().await {
                Ok(pending) => {
                    let mut seen = HashSet::new();
                    for m in pending {
                        if seen.insert(m.request.conversation()) {
                            shared.delivery.wake(m);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not scan for unfinished messages"),
            }
            // Blocks set through other instances (their account holds: `share::announce`).
            if let Err(e) = shared.blocks.reload(shared.queue.as_ref()).await {
                tracing::warn!(error = %e, "could not reload the block list");
            }
        }
    });
}
