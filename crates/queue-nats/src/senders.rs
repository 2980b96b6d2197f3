//! Which instances send for which accounts: one entry per instance in `senders`,
//! `{until, accounts}`, rewritten by its instance when they change. Delivery divides an
//! account's provider rate limit by the number of live instances sending for it, so that together
//! they stay within it. An entry whose `until` has passed belongs to an instance that died (or
//! hangs): it no longer counts, and a later reader removes it.
//!
//! Each instance watches the bucket (a KV watch), so an announcement reaches the others within
//! milliseconds and reading the others costs nothing; an instance rewrites its own entry only
//! when its accounts change or half of the entry's lifetime has passed. While the watch is down,
//! every announcement writes and reads the bucket instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chatgate_model::Channel;
use chatgate_queue::QueueError;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::setup::storage;
use crate::{NatsQueue, kv};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Senders {
    until_us: i64,
    accounts: Vec<(Channel, String)>,
}

/// How long after its `until` a dead instance's entry is left before a reader deletes it (a
/// clock a little behind on the instance that wrote it must not get a live entry deleted).
const STALE_GRACE_US: i64 = 60_000_000;

/// What this instance last wrote: its entry is rewritten when the accounts change or half of its
/// lifetime has passed, not on every announcement.
#[derive(Debug, Default)]
pub(crate) struct Written(Mutex<Option<Senders>>);

impl NatsQueue {
    pub(crate) async fn announce(
        &self,
        accounts: &[(Channel, String)],
        ttl: Duration,
    ) -> Result<HashMap<(Channel, String), u32>, QueueError> {
        let (store, view, written) = (&self.inner.senders, &self.inner.senders_view, &self.inner.senders_written);
        view.follow(store);
        let me = &self.inner.options.instance;
        let now = Utc::now().timestamp_micros();
        let ttl_us = ttl.as_micros() as i64;
        let snapshot = view.snapshot();
        let fresh = written
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|w| w.accounts == accounts && w.until_us - now > ttl_us / 2);
        if !fresh || snapshot.is_none() {
            let mine = Senders { until_us: now + ttl_us, accounts: accounts.to_vec() };
            kv::put(store, me, &mine).await?;
            *written.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(mine);
        }
        let entries = match snapshot {
            Some(entries) => entries,
            None => {
                let mut read = Vec::new();
                for key in kv::keys(store).await? {
                    if let Some((entry, rev)) = kv::load::<Senders>(store, &key).await? {
                        read.push((key, entry, rev));
                    }
                }
                read
            }
        };
        let mut others = HashMap::new();
        for (key, entry, rev) in entries {
            if &key == me {
                continue;
            }
            if entry.until_us < now {
                if entry.until_us + STALE_GRACE_US < now {
                    // Only if it is still that dead entry.
                    let _ = store.delete_expect_revision(&key, Some(rev)).await;
                }
                continue;
            }
            for account in entry.accounts {
                *others.entry(account).or_insert(0) += 1;
            }
        }
        Ok(others)
    }

    pub(crate) async fn withdraw(&self) -> Result<(), QueueError> {
        self.inner.senders.delete(&self.inner.options.instance).await.map_err(storage)?;
        Ok(())
    }
}
