//! Inbound: provider events onto the events stream, deduplicated across instances and across
//! the providers' redelivery horizon, receipts merged into the outbox, messaging windows.
//!
//! Dedup of one record with a key `k` (KV key `h = hash(channel, account, k)`):
//! 1. `dedup[h]` exists → a duplicate (this covers the whole retention, 7+ days);
//! 2. publish the event with `Nats-Msg-Id: d-h` → JetStream answers `duplicate` for a second
//!    publish within its duplicate window, atomically, whichever instance made it;
//! 3. write `dedup[h] = seq`.
//!
//! A crash between 2 and 3 leaves an event without its key: a redelivery within the duplicate
//! window is still caught by step 2; after it, only the key can catch one. The repair sweep
//! (`sweep`) writes such missing keys from the events' `Nats-Msg-Id` headers, when a queue opens
//! and every quarter of the duplicate window, so the key exists before JetStream forgets the id
//! while any instance runs (what remains is in ARCHITECTURE.md, "The one window"). Receipts are
//! merged first and keyed after: merging is idempotent (a status only moves forward) and the
//! status events carry their own message ids.

use async_nats::jetstream::message::PublishMessage as Publish;
use bytes::Bytes;
use chatgate_model::{Conversation, Event, EventKind, Status, StatusInfo};
use chatgate_queue::{AppendOutcome, InboundRecord, QueueError};
use std::sync::atomic::Ordering;
use uuid::Uuid;

use crate::keys::hashed;
use crate::outbox::ChatIndex;
use crate::setup::storage;
use crate::{NatsQueue, kv};

/// How often one instance writes a busy chat's last-inbound time (see `note_window`).
const WINDOW_GRAIN_US: i64 = 60_000_000;

/// What one publish did.
pub(crate) struct Published {
    pub(crate) seq: u64,
    pub(crate) duplicate: bool,
}

impl NatsQueue {
    /// Publishes one envelope on its account's subject and waits for JetStream's ack.
    pub(crate) async fn publish_event(
        &self,
        channel: &str,
        account: &str,
        body: String,
        msg_id: Option<&str>,
    ) -> Result<Published, QueueError> {
        let subject = self.inner.names.events_subject(channel, account);
        let mut publish = Publish::build().payload(Bytes::from(body));
        if let Some(id) = msg_id {
            publish = publish.message_id(id);
        }
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        let ack = self.inner.js.send_publish(subject, publish).await.map_err(storage)?.await.map_err(storage)?;
        self.saw(ack.sequence);
        Ok(Published { seq: ack.sequence, duplicate: ack.duplicate })
    }

    pub(crate) async fn append(&self, records: Vec<InboundRecord>) -> Result<AppendOutcome, QueueError> {
        let mut out = AppendOutcome::default();
        for record in records {
            let event = &record.event;
            let key = record.dedup_key.as_deref().map(|k| hashed(&[event.channel.as_str(), &event.account, k]));
            if let Some(h) = &key
                && self.inner.dedup.get(h.as_str()).await.map_err(storage)?.is_some()
            {
                out.duplicates += 1;
                continue;
            }
            let json = serde_json::to_string(event).map_err(storage)?;
            let msg_id = key.as_ref().map(|h| format!("d-{h}"));
            let seq = match (event.kind, &event.status) {
                (EventKind::Status, Some(info)) => {
                    self.apply_receipt(event, json, info, msg_id.as_deref(), &mut out).await?;
                    0
                }
                _ => {
                    if event.kind == EventKind::Message {
                        self.note_window(event).await?;
                    }
                    let published =
                        self.publish_event(event.channel.as_str(), &event.account, json, msg_id.as_deref()).await?;
                    if published.duplicate {
                        out.duplicates += 1;
                    } else {
                        out.seqs.push(published.seq);
                    }
                    published.seq
                }
            };
            if let Some(h) = &key {
                kv::put(&self.inner.dedup, h, &seq).await?;
            }
        }
        Ok(out)
    }

    /// Merges a receipt into the outbox; forwards it as received when it is not about one of ours.
    async fn apply_receipt(
        &self,
        event: &Event,
        json: String,
        info: &StatusInfo,
        msg_id: Option<&str>,
        out: &mut AppendOutcome,
    ) -> Result<(), QueueError> {
        let (channel, account) = (event.channel.as_str(), event.account.as_str());
        let targets: Vec<(Uuid, Option<String>)> = match (&info.external_id, info.up_to) {
            (Some(external), _) => {
                match kv::load::<Uuid>(&self.inner.extids, &hashed(&[channel, account, external])).await? {
                    Some((id, _)) => vec![(id, Some(external.clone()))],
                    None => return self.forward(event, json, msg_id, out).await,
                }
            }
            (None, Some(up_to)) => {
                let chat = Conversation::new(event.channel, event.account.clone(), event.chat_id.clone());
                let index = kv::load::<ChatIndex>(&self.inner.chats, &crate::outbox::chat_key(&chat)).await?;
                let cut = up_to.timestamp_micros();
                index
                    .map(|(i, _)| i.sent.into_iter().filter(|(_, at)| *at <= cut).map(|(id, _)| (id, None)).collect())
                    .unwrap_or_default()
            }
            (None, None) => return self.forward(event, json, msg_id, out).await,
        };
        let mut touched = 0;
        for (id, external) in targets {
            let watermark = info.up_to.is_some();
            let (changed, seqs) = self
                .update_message(id, |state| {
                    if watermark && !matches!(state.status, Status::Sent | Status::Delivered) {
                        return None;
                    }
                    Some(state.advance(
                        id,
                        info.status,
                        info.error.as_ref(),
                        event.received_at,
                        Some(event),
                        external.clone(),
                    ))
                })
                .await?;
            match changed {
                None => {}
                Some(Some(_)) => touched += 1,
                Some(None) => {
                    touched += 1;
                    out.unchanged_statuses += 1;
                }
            }
            out.seqs.extend(seqs);
        }
        if touched == 0 {
            // A watermark that covers none of our messages still says something to the core.
            return self.forward(event, json, msg_id, out).await;
        }
        Ok(())
    }

    async fn forward(
        &self,
        event: &Event,
        json: String,
        msg_id: Option<&str>,
        out: &mut AppendOutcome,
    ) -> Result<(), QueueError> {
        let published = self.publish_event(event.channel.as_str(), &event.account, json, msg_id).await?;
        if published.duplicate {
            out.duplicates += 1;
        } else {
            out.seqs.push(published.seq);
        }
        Ok(())
    }

    /// Moves the chat's last-inbound time forward (never back), before the event is acknowledged.
    ///
    /// A chat that writes often is written at most once per [`WINDOW_GRAIN_US`] (a minute) by this instance:
    /// the stored time may then be up to that much older than the last message, which only makes
    /// a 24-hour (or 7-day) messaging window look closed a minute early, never open too long;
    /// it saves a replicated write per message of a busy chat.
    async fn note_window(&self, event: &Event) -> Result<(), QueueError> {
        let key = hashed(&[event.channel.as_str(), &event.account, &event.chat_id]);
        let at = event.received_at.timestamp_micros();
        let recent = {
            let written = self.inner.windows_written.lock().unwrap_or_else(|e| e.into_inner());
            written.get(&key).is_some_and(|w| *w <= at && at - *w < WINDOW_GRAIN_US)
        };
        if recent {
            return Ok(());
        }
        kv::modify::<i64>(&self.inner.windows, &key, |last| match last {
            Some(last) if *last >= at => None,
            _ => Some(at),
        })
        .await?;
        let mut written = self.inner.windows_written.lock().unwrap_or_else(|e| e.into_inner());
        if written.len() >= 100_000 {
            written.clear();
        }
        written.insert(key, at);
        Ok(())
    }
}
