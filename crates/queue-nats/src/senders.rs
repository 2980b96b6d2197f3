//! Which instances send for which accounts: one entry per instance in `senders`,
//! `{until, accounts}`, rewritten by its instance every announcement. Delivery divides an
//! account's provider rate limit by the number of live instances sending for it, so that together
//! they stay within it. An entry whose `until` has passed belongs to an instance that died (or
//! hangs): it no longer counts, and a later reader removes it.
//!
//! Each instance watches the bucket (a KV watch), so an announcement reaches the others within
//! milliseconds and reading the others costs nothing; an instance rewrites its own entry only
//! when its accounts change or half of the entry's lifetime has passed. While the watch is down,
//! every announcement writes and reads the bucket instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{Operation, Store};
use chatgate_model::Channel;
use chatgate_queue::QueueError;
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::setup::storage;
use crate::{NatsQueue, kv};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Senders {
    until_us: i64,
    accounts: Vec<(Channel, String)>,
}

/// How long after its `until` a dead instance's entry is left before a reader deletes it (a
/// clock a little behind on the instance that wrote it must not get a live entry deleted).
const STALE_GRACE_US: i64 = 60_000_000;

/// The bucket as the watch last saw it: instance → (its entry, revision).
#[derive(Debug, Default)]
pub(crate) struct SendersView {
    entries: Mutex<HashMap<String, (Senders, u64)>>,
    /// The watch has delivered the bucket's state and is following it.
    current: std::sync::atomic::AtomicBool,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// What this instance last wrote: its entry is rewritten when the accounts change or half
    /// of its lifetime has passed, not on every announcement.
    written: Mutex<Option<Senders>>,
}

impl Drop for SendersView {
    fn drop(&mut self) {
        if let Some(task) = self.watcher.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

impl SendersView {
    fn is_current(&self) -> bool {
        self.current.load(std::sync::atomic::Ordering::Acquire)
    }

    fn set_current(&self, current: bool) {
        self.current.store(current, std::sync::atomic::Ordering::Release);
    }

    /// Starts following the bucket (once).
    fn watch(view: &Arc<SendersView>, store: Store) {
        let mut watcher = view.watcher.lock().unwrap_or_else(|e| e.into_inner());
        if watcher.is_some() {
            return;
        }
        let weak = Arc::downgrade(view);
        *watcher = Some(tokio::spawn(async move {
            loop {
                match store.watch_with_history(">").await {
                    Ok(mut entries) => {
                        while let Some(entry) = entries.next().await {
                            let Some(view) = weak.upgrade() else { return };
                            let Ok(entry) = entry else { break };
                            let mut map = view.entries.lock().unwrap_or_else(|e| e.into_inner());
                            match (entry.operation, serde_json::from_slice::<Senders>(&entry.value)) {
                                (Operation::Put, Ok(senders)) => {
                                    map.insert(entry.key, (senders, entry.revision));
                                }
                                _ => {
                                    map.remove(&entry.key);
                                }
                            }
                            if entry.seen_current {
                                view.set_current(true);
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "could not watch the senders bucket"),
                }
                let Some(view) = weak.upgrade() else { return };
                view.set_current(false);
                view.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
                drop(view);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
}

impl NatsQueue {
    pub(crate) async fn announce(
        &self,
        accounts: &[(Channel, String)],
        ttl: Duration,
    ) -> Result<HashMap<(Channel, String), u32>, QueueError> {
        let (store, view) = (&self.inner.senders, &self.inner.senders_view);
        SendersView::watch(view, store.clone());
        let me = &self.inner.options.instance;
        let now = Utc::now().timestamp_micros();
        let ttl_us = ttl.as_micros() as i64;
        let fresh = view
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|w| w.accounts == accounts && w.until_us - now > ttl_us / 2);
        if !fresh || !view.is_current() {
            let mine = Senders { until_us: now + ttl_us, accounts: accounts.to_vec() };
            kv::put(store, me, &mine).await?;
            *view.written.lock().unwrap_or_else(|e| e.into_inner()) = Some(mine);
        }
        let entries: Vec<(String, Senders, u64)> = if view.is_current() {
            let map = view.entries.lock().unwrap_or_else(|e| e.into_inner());
            map.iter().map(|(k, (s, rev))| (k.clone(), s.clone(), *rev)).collect()
        } else {
            let mut read = Vec::new();
            for key in kv::keys(store).await? {
                if let Some((entry, rev)) = kv::load::<Senders>(store, &key).await? {
                    read.push((key, entry, rev));
                }
            }
            read
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
