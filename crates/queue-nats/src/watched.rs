//! A bucket followed through a KV watch: every entry as the watch last saw it, so that reading
//! the whole of a small bucket that every instance reads often costs no round trip. Until the
//! watch has caught up (or while it is down) [`Watched::snapshot`] is `None` and the caller reads
//! the bucket itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{Operation, Store};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// Key → (value, revision), as the watch delivered them.
#[derive(Debug)]
pub(crate) struct Watched<T> {
    entries: Mutex<HashMap<String, (T, u64)>>,
    /// The watch has delivered the bucket's state and follows it.
    current: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl<T> Default for Watched<T> {
    fn default() -> Self {
        Watched { entries: Mutex::default(), current: AtomicBool::new(false), task: Mutex::new(None) }
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Watched<T> {
    /// Starts following `store` (once; later calls do nothing).
    pub(crate) fn follow(self: &Arc<Self>, store: &Store) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.is_some() {
            return;
        }
        let (weak, store) = (Arc::downgrade(self), store.clone());
        *task = Some(tokio::spawn(async move {
            loop {
                match store.watch_with_history(">").await {
                    Ok(mut entries) => {
                        while let Some(entry) = entries.next().await {
                            let Some(view) = weak.upgrade() else { return };
                            let Ok(entry) = entry else { break };
                            let mut map = view.entries.lock().unwrap_or_else(|e| e.into_inner());
                            match (entry.operation, serde_json::from_slice::<T>(&entry.value)) {
                                (Operation::Put, Ok(value)) => {
                                    map.insert(entry.key, (value, entry.revision));
                                }
                                _ => {
                                    map.remove(&entry.key);
                                }
                            }
                            if entry.seen_current {
                                view.current.store(true, Ordering::Release);
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "could not watch a bucket"),
                }
                let Some(view) = weak.upgrade() else { return };
                view.current.store(false, Ordering::Release);
                view.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
                drop(view);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }

    /// Every entry with its revision, when the watch is current.
    pub(crate) fn snapshot(&self) -> Option<Vec<(String, T, u64)>> {
        if !self.current.load(Ordering::Acquire) {
            return None;
        }
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Some(map.iter().map(|(k, (v, rev))| (k.clone(), v.clone(), *rev)).collect())
    }
}
