//! The dedup repair sweep: it closes the window between publishing an inbound event and writing
//! its dedup key (steps 2 and 3 in `inbound`).
//!
//! Every event published with a dedup key carries `Nats-Msg-Id: d-<h>`, so the events stream
//! itself says which key each event needs. The sweep reads the stream from a stored position with
//! a headers-only consumer (no payloads cross the wire) and, for every `d-<h>`, creates
//! `dedup[h] = <stream sequence>` when it is missing; then it moves the position forward
//! (compare-and-set, only forward). A key that exists is left alone: it holds the same sequence.
//!
//! It runs (a) when the queue opens, up to the stream's last sequence, before `connect` returns,
//! so an instance never takes webhooks while keys from before its start are missing; and (b) on
//! every instance every quarter of the duplicate window, up to the last sequence seen one tick
//! earlier (so it does not race the key write of an append still in flight), by the one instance
//! holding the sweep lease. An event left without its key by a crash at time T is repaired by
//! T + 3/4 of the window plus one sweep's run while any instance runs: before JetStream forgets
//! its message id, so a redelivery is caught by step 2 until then and by its key after.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use chatgate_queue::QueueError;
use futures_util::{StreamExt, TryStreamExt};

use crate::setup::storage;
use crate::{Inner, NatsQueue, kv};

/// The sweep's position in the `cursors` bucket (push cursors are `cursor.<name>`: no collision).
const POSITION: &str = "sweep.dedup";
/// The sweep's lease in the `leases` bucket (chat leases are 40 hex characters: no collision).
const LEASE: &str = "sweep.dedup";
/// Headers read per fetch.
const BATCH: usize = 1000;
/// Dedup keys looked up at once.
const IN_FLIGHT: usize = 32;

/// What one sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    /// The position after the sweep (an event sequence).
    pub(crate) to: u64,
    /// Keys that were missing and are now written.
    pub(crate) repaired: u64,
}

/// How often the background sweep runs: a quarter of the duplicate window.
pub(crate) fn interval(duplicate_window: Duration) -> Duration {
    duplicate_window / 4
}

impl NatsQueue {
    /// Sweeps the events after the stored position up to `upto` (inclusive).
    pub(crate) async fn sweep_dedup(&self, upto: u64, trigger: &'static str) -> Result<Swept, QueueError> {
        let from = kv::load::<u64>(&self.inner.cursors, POSITION).await?.map_or(0, |(seq, _)| seq);
        if from >= upto {
            return Ok(Swept { to: from, repaired: 0 });
        }
        let (consumer, name) = self.reader(from, true).await?;
        let swept = async {
            let (mut to, mut repaired) = (from, 0);
            loop {
                let mut batch = consumer.fetch().max_messages(BATCH).messages().await.map_err(storage)?;
                let mut needed = Vec::new();
                let mut read = 0;
                while let Some(m) = batch.next().await {
                    let m = m.map_err(storage)?;
                    let seq = m.info().map_err(storage)?.stream_sequence;
                    read += 1;
                    if seq > upto {
                        continue;
                    }
                    to = to.max(seq);
                    let id = m.headers.as_ref().and_then(|h| h.get(NATS_MESSAGE_ID)).map(|v| v.as_str());
                    if let Some(h) = id.and_then(|id| id.strip_prefix("d-")) {
                        needed.push((h.to_owned(), seq));
                    }
                }
                repaired += self.ensure_keys(needed).await?;
                // An empty fetch: nothing more is stored (events past their retention are gone).
                if read == 0 || to >= upto {
                    return Ok::<_, QueueError>((to, repaired));
                }
            }
        }
        .await;
        self.drop_reader(name);
        let (to, repaired) = swept?;
        kv::modify::<u64>(&self.inner.cursors, POSITION, |stored| match stored {
            Some(at) if *at >= to => None,
            _ => Some(to),
        })
        .await?;
        if repaired > 0 {
            self.inner.repaired.fetch_add(repaired, Ordering::Relaxed);
            tracing::info!(repaired, from, to, trigger, "dedup sweep wrote keys missing after a crash");
        }
        Ok(Swept { to, repaired })
    }

    /// Creates `dedup[h] = seq` for each pair whose key is missing; how many it created.
    async fn ensure_keys(&self, needed: Vec<(String, u64)>) -> Result<u64, QueueError> {
        let dedup = &self.inner.dedup;
        futures_util::stream::iter(needed)
            .map(|(h, seq)| async move {
                if dedup.get(h.as_str()).await.map_err(storage)?.is_some() {
                    return Ok(false);
                }
                // Create-only: a key written meanwhile (by the append itself or another sweep) stays.
                kv::save(dedup, &h, &seq, None).await
            })
            .buffer_unordered(IN_FLIGHT)
            .try_fold(0, |n, created| async move { Ok(n + u64::from(created)) })
            .await
    }
}

/// The background sweep of one instance, until the queue is dropped (which aborts it).
pub(crate) async fn run(inner: Weak<Inner>, every: Duration, mut seen: u64) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { continue };
        let queue = NatsQueue { inner };
        // Up to what was stored a tick ago: appends in flight have written their keys by now.
        let upto = seen;
        let result = async {
            seen = queue.last_seq().await?;
            if upto == 0 || !queue.take_lease(LEASE, every).await? {
                return Ok(None);
            }
            queue.sweep_dedup(upto, "interval").await.map(Some)
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "dedup sweep failed; retrying at the next interval");
        }
    }
}
