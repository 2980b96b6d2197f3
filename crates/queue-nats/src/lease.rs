//! Per-chat delivery leases: one entry per chat in `leases`, `{owner, until}`, taken and
//! renewed with compare-and-set. An instance delivers a chat only while its lease holds; when
//! it dies, the lease runs out after at most `ttl` and another instance takes the chat over.
//! The dedup repair sweep takes a lease of the same kind under its own key (see `sweep`).

use std::time::Duration;

use chatgate_model::Conversation;
use chatgate_queue::QueueError;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::outbox::chat_key;
use crate::setup::storage;
use crate::{NatsQueue, kv};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    owner: String,
    until_us: i64,
}

impl NatsQueue {
    pub(crate) async fn lease(&self, chat: &Conversation, ttl: Duration) -> Result<bool, QueueError> {
        self.take_lease(&chat_key(chat), ttl).await
    }

    /// Takes or renews the lease under `key` for `ttl`; false while another instance holds it.
    pub(crate) async fn take_lease(&self, key: &str, ttl: Duration) -> Result<bool, QueueError> {
        let me = &self.inner.options.instance;
        loop {
            let now = Utc::now().timestamp_micros();
            let current = kv::load::<Lease>(&self.inner.leases, key).await?;
            if let Some((l, _)) = &current
                && &l.owner != me
                && l.until_us > now
            {
                return Ok(false);
            }
            let next = Lease { owner: me.clone(), until_us: now + ttl.as_micros() as i64 };
            if kv::save(&self.inner.leases, key, &next, current.map(|(_, rev)| rev)).await? {
                return Ok(true);
            }
        }
    }

    pub(crate) async fn release(&self, chat: &Conversation) -> Result<(), QueueError> {
        let k = chat_key(chat);
        if let Some((l, rev)) = kv::load::<Lease>(&self.inner.leases, &k).await?
            && l.owner == self.inner.options.instance
        {
            // Only our own lease, and only if nobody took it meanwhile.
            let _ = self.inner.leases.delete_expect_revision(&k, Some(rev)).await.map_err(storage);
        }
        Ok(())
    }
}
