//! The outbox on KV: one entry per message in `msgs` holding its request, status, history,
//! sent parts and the status events not yet on the log; `pending` lists unfinished ones,
//! `idem` maps idempotency keys, `extids` maps providers' ids back to messages, `chats` lists
//! each chat's sent-but-unread messages for watermark receipts. Also holds and blocks.
//!
//! A status change and its status event: the change is written (CAS) with the event in the
//! entry's `unlogged` list, then every unlogged event is published with the message id
//! `st-<message>-<status>` and removed from the list. A crash in between leaves the event in
//! the list; the next touch of the message (a retried receipt, a delivery attempt, a pending
//! scan) publishes it, and JetStream's duplicate window drops a second publish.

use chatgate_model::{
    Channel, Conversation, CustomerRef, ErrorInfo, Event, EventKind, MessageRecord, OutboundRequest, Status,
    StatusChange, StatusInfo,
};
use chatgate_queue::{AccountHold, Attempt, Enqueued, PendingMessage, QueueError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::hashed;
use crate::setup::storage;
use crate::{NatsQueue, from_us, kv};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct MessageState {
    pub(crate) request: OutboundRequest,
    pub(crate) status: Status,
    pub(crate) parts_done: u32,
    pub(crate) attempts: u32,
    pub(crate) created_us: i64,
    pub(crate) next_us: Option<i64>,
    pub(crate) sent_us: Option<i64>,
    pub(crate) done: bool,
    pub(crate) error: Option<ErrorInfo>,
    pub(crate) history: Vec<(Status, i64)>,
    /// (part, external id)
    pub(crate) external_ids: Vec<(u32, String)>,
    /// Status events not yet on the log: (Nats-Msg-Id, envelope JSON).
    pub(crate) unlogged: Vec<(String, String)>,
}

impl MessageState {
    /// Moves the status forward; returns the new status if it changed (its event goes to `unlogged`).
    pub(crate) fn advance(
        &mut self,
        id: Uuid,
        reported: Status,
        error: Option<&ErrorInfo>,
        at: DateTime<Utc>,
        receipt: Option<&Event>,
        external_id: Option<String>,
    ) -> Option<Status> {
        let next = self.status.merge(reported);
        if next == self.status {
            return None;
        }
        self.status = next;
        if next == Status::Failed {
            self.done = true;
            if let Some(e) = error {
                self.error = Some(e.clone());
            }
        }
        self.history.push((next, at.timestamp_micros()));
        let r = &self.request;
        let mut event = match receipt {
            Some(e) => {
                let mut logged = e.clone();
                logged.id = Uuid::now_v7();
                logged
            }
            None => {
                let mut e = Event::new(EventKind::Status, r.channel, r.account.clone(), r.chat_id.clone());
                e.received_at = at;
                e
            }
        };
        let up_to = receipt.and_then(|e| e.status.as_ref()).and_then(|s| s.up_to);
        event.status =
            Some(StatusInfo { message_id: Some(id), external_id, status: next, error: error.cloned(), up_to });
        if let Ok(json) = serde_json::to_string(&event) {
            self.unlogged.push((format!("st-{}-{}", id.simple(), next.as_str()), json));
        }
        Some(next)
    }
}

/// A chat's sent messages that a watermark receipt may still move: (id, sent at µs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ChatIndex {
    pub(crate) sent: Vec<(Uuid, i64)>,
}

pub(crate) fn chat_key(c: &Conversation) -> String {
    hashed(&[c.channel.as_str(), &c.account, &c.chat_id])
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hold {
    channel: String,
    account: String,
    until_us: i64,
}

fn key(id: Uuid) -> String {
    id.simple().to_string()
}

fn idem_key(r: &OutboundRequest, k: &str) -> String {
    hashed(&[r.channel.as_str(), &r.account, k])
}

impl NatsQueue {
    /// Changes a message with `f` (compare-and-set), then logs its unlogged status events.
    /// `f` returns `None` to write nothing; the answer is `f`'s and the seqs published.
    pub(crate) async fn update_message<R>(
        &self,
        id: Uuid,
        mut f: impl FnMut(&mut MessageState) -> Option<R>,
    ) -> Result<(Option<R>, Vec<u64>), QueueError> {
        let k = key(id);
        loop {
            let Some((mut state, rev)) = kv::load::<MessageState>(&self.inner.msgs, &k).await? else {
                return Err(QueueError::Storage(format!("no message {id}")));
            };
            let Some(answer) = f(&mut state) else {
                let seqs = if state.unlogged.is_empty() { Vec::new() } else { self.flush(id).await? };
                return Ok((None, seqs));
            };
            if kv::save(&self.inner.msgs, &k, &state, Some(rev)).await? {
                let seqs = self.flush(id).await?;
                if state.done {
                    self.inner.pending.delete(&k).await.map_err(storage)?;
                    kv::modify::<Vec<Uuid>>(&self.inner.chatpending, &chat_key(&state.request.conversation()), |ids| {
                        let ids = ids?;
                        ids.contains(&id).then(|| ids.iter().copied().filter(|m| *m != id).collect())
                    })
                    .await?;
                }
                return Ok((Some(answer), seqs));
            }
        }
    }

    /// Publishes the message's unlogged status events in order and removes them from the entry.
    pub(crate) async fn flush(&self, id: Uuid) -> Result<Vec<u64>, QueueError> {
        let k = key(id);
        let mut seqs = Vec::new();
        let mut published: Vec<String> = Vec::new();
        loop {
            let Some((mut state, rev)) = kv::load::<MessageState>(&self.inner.msgs, &k).await? else {
                return Ok(seqs);
            };
            for (msg_id, body) in &state.unlogged {
                if published.contains(msg_id) {
                    continue;
                }
                let r = &state.request;
                let p = self.publish_event(r.channel.as_str(), &r.account, body.clone(), Some(msg_id)).await?;
                if !p.duplicate {
                    seqs.push(p.seq);
                }
                published.push(msg_id.clone());
            }
            if state.unlogged.is_empty() {
                return Ok(seqs);
            }
            state.unlogged.retain(|(m, _)| !published.contains(m));
            if kv::save(&self.inner.msgs, &k, &state, Some(rev)).await? {
                return Ok(seqs);
            }
        }
    }

    pub(crate) async fn enqueue_message(&self, id: Uuid, request: OutboundRequest) -> Result<Enqueued, QueueError> {
        let mut id = id;
        if let Some(k) = &request.idempotency_key {
            let ik = idem_key(&request, k);
            if !kv::save(&self.inner.idem, &ik, &id, None).await? {
                let (existing, _) = kv::load::<Uuid>(&self.inner.idem, &ik)
                    .await?
                    .ok_or_else(|| storage("an idempotency key vanished"))?;
                match kv::load::<MessageState>(&self.inner.msgs, &key(existing)).await? {
                    Some((state, _)) if state.request == request => {
                        if !state.unlogged.is_empty() {
                            self.flush(existing).await?;
                        }
                        return Ok(Enqueued { id: existing, status: state.status, created: false });
                    }
                    Some(_) => return Err(QueueError::IdempotencyConflict { existing }),
                    // The instance that took the key died before storing the message: finish it.
                    None => id = existing,
                }
            }
        }
        let now = Utc::now();
        let k = key(id);
        // Listed as pending before it exists, so a crash never leaves a stored message nobody delivers.
        kv::put(&self.inner.pending, &k, &now.timestamp_micros()).await?;
        kv::modify::<Vec<Uuid>>(&self.inner.chatpending, &chat_key(&request.conversation()), |ids| {
            let mut ids = ids.cloned().unwrap_or_default();
            (!ids.contains(&id)).then(|| {
                ids.push(id);
                ids
            })
        })
        .await?;
        let mut state = MessageState {
            request: request.clone(),
            status: Status::Queued,
            parts_done: 0,
            attempts: 0,
            created_us: now.timestamp_micros(),
            next_us: None,
            sent_us: None,
            done: false,
            error: None,
            history: vec![(Status::Queued, now.timestamp_micros())],
            external_ids: Vec::new(),
            unlogged: Vec::new(),
        };
        // The `queued` event: `advance` cannot make it (queued is where a message starts).
        let mut event =
            Event::new(EventKind::Status, request.channel, request.account.clone(), request.chat_id.clone());
        event.received_at = now;
        event.status = Some(StatusInfo {
            message_id: Some(id),
            external_id: None,
            status: Status::Queued,
            error: None,
            up_to: None,
        });
        state.unlogged.push((format!("st-{}-queued", id.simple()), serde_json::to_string(&event).map_err(storage)?));
        if !kv::save(&self.inner.msgs, &k, &state, None).await? {
            // Another instance finished the same recovered key first.
            let (state, _) =
                kv::load::<MessageState>(&self.inner.msgs, &k).await?.ok_or_else(|| storage("vanished"))?;
            if state.request != request {
                return Err(QueueError::IdempotencyConflict { existing: id });
            }
            return Ok(Enqueued { id, status: state.status, created: false });
        }
        self.flush(id).await?;
        Ok(Enqueued { id, status: Status::Queued, created: true })
    }

    pub(crate) async fn attempt(&self, id: Uuid, attempt: Attempt) -> Result<(), QueueError> {
        let now = Utc::now();
        match attempt {
            Attempt::PartSent { index, external_id, status, last } => {
                let (state, _) = kv::load::<MessageState>(&self.inner.msgs, &key(id))
                    .await?
                    .ok_or_else(|| QueueError::Storage(format!("no message {id}")))?;
                let r = &state.request;
                kv::put(&self.inner.extids, &hashed(&[r.channel.as_str(), &r.account, &external_id]), &id).await?;
                let (sent, _) = self
                    .update_message(id, |s| {
                        s.parts_done = s.parts_done.max(index + 1);
                        let sent_us = *s.sent_us.get_or_insert(now.timestamp_micros());
                        s.done |= last;
                        if !s.external_ids.iter().any(|(i, _)| *i == index) {
                            s.external_ids.push((index, external_id.clone()));
                            s.external_ids.sort();
                        }
                        s.advance(id, status, None, now, None, Some(external_id.clone()));
                        Some(sent_us)
                    })
                    .await?;
                if let Some(sent_us) = sent {
                    kv::modify::<ChatIndex>(&self.inner.chats, &chat_key(&state.request.conversation()), |index| {
                        let mut index = index.cloned().unwrap_or_default();
                        // Entries a watermark can no longer move are dropped on the way.
                        if index.sent.iter().any(|(m, _)| *m == id) {
                            return None;
                        }
                        index.sent.push((id, sent_us));
                        Some(index)
                    })
                    .await?;
                }
                Ok(())
            }
            Attempt::Retry { next_at, error: _, whole_account } => {
                let (state, _) = self
                    .update_message(id, |s| {
                        s.attempts += 1;
                        s.next_us = Some(next_at.timestamp_micros());
                        Some(s.request.clone())
                    })
                    .await?;
                if whole_account && let Some(r) = state {
                    let until = next_at.timestamp_micros();
                    let hk = hashed(&[r.channel.as_str(), &r.account]);
                    kv::modify::<Hold>(&self.inner.holds, &hk, |hold| match hold {
                        Some(h) if h.until_us >= until => None,
                        _ => Some(Hold {
                            channel: r.channel.as_str().to_owned(),
                            account: r.account.clone(),
                            until_us: until,
                        }),
                    })
                    .await?;
                }
                Ok(())
            }
            Attempt::Failed { error } => {
                self.update_message(id, |s| {
                    s.done = true;
                    s.error = Some(error.clone());
                    s.advance(id, Status::Failed, Some(&error), now, None, None);
                    Some(())
                })
                .await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn pending(&self) -> Result<Vec<PendingMessage>, QueueError> {
        let mut out = Vec::new();
        for k in kv::keys(&self.inner.pending).await? {
            let Ok(id) = Uuid::parse_str(&k) else { continue };
            let Some((state, _)) = kv::load::<MessageState>(&self.inner.msgs, &k).await? else {
                // Listed by an enqueue that never stored its message (it crashed): forget it after a while.
                let age = id.get_timestamp().map(|t| t.to_unix().0).unwrap_or(0);
                if (Utc::now().timestamp() as u64).saturating_sub(age) > 60 {
                    self.inner.pending.delete(&k).await.map_err(storage)?;
                }
                continue;
            };
            if !state.unlogged.is_empty() {
                self.flush(id).await?;
            }
            if state.done {
                self.inner.pending.delete(&k).await.map_err(storage)?;
                continue;
            }
            out.push(pending_message(id, state));
        }
        out.sort_by_key(|m| (m.created_at, m.id));
        Ok(out)
    }

    /// One chat's unfinished messages, oldest first (from its list in `chatpending`).
    pub(crate) async fn chat_pending(&self, chat: &Conversation) -> Result<Vec<PendingMessage>, QueueError> {
        let Some((ids, _)) = kv::load::<Vec<Uuid>>(&self.inner.chatpending, &chat_key(chat)).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for id in ids {
            let Some((state, _)) = kv::load::<MessageState>(&self.inner.msgs, &key(id)).await? else { continue };
            if !state.unlogged.is_empty() {
                self.flush(id).await?;
            }
            if state.done {
                continue;
            }
            out.push(pending_message(id, state));
        }
        out.sort_by_key(|m| (m.created_at, m.id));
        Ok(out)
    }

    /// Every account hold; from the watch of the bucket once it follows it (delivery asks often).
    pub(crate) async fn holds(&self) -> Result<Vec<AccountHold>, QueueError> {
        self.inner.holds_view.follow(&self.inner.holds);
        let holds: Vec<Hold> = match self.inner.holds_view.snapshot() {
            Some(entries) => entries.into_iter().map(|(_, h, _)| h).collect(),
            None => {
                let mut read = Vec::new();
                for k in kv::keys(&self.inner.holds).await? {
                    if let Some((h, _)) = kv::load::<Hold>(&self.inner.holds, &k).await? {
                        read.push(h);
                    }
                }
                read
            }
        };
        Ok(holds
            .into_iter()
            .filter_map(|h| {
                let channel = h.channel.parse::<Channel>().ok()?;
                Some(AccountHold { channel, account: h.account, until: from_us(h.until_us) })
            })
            .collect())
    }

    pub(crate) async fn message_record(&self, id: Uuid) -> Result<Option<MessageRecord>, QueueError> {
        let Some((s, _)) = kv::load::<MessageState>(&self.inner.msgs, &key(id)).await? else { return Ok(None) };
        let r = &s.request;
        Ok(Some(MessageRecord {
            id,
            channel: r.channel,
            account: r.account.clone(),
            chat_id: r.chat_id.clone(),
            status: s.status,
            external_ids: s.external_ids.iter().map(|(_, e)| e.clone()).collect(),
            error: s.error.clone(),
            history: s.history.iter().map(|(status, at)| StatusChange { status: *status, at: from_us(*at) }).collect(),
            created_at: from_us(s.created_us),
            request: s.request.clone(),
        }))
    }

    pub(crate) async fn block(&self, c: &CustomerRef, blocked: bool) -> Result<(), QueueError> {
        let k = hashed(&[c.channel.as_str(), &c.account, &c.customer_id]);
        if blocked {
            let value = (c.channel.as_str(), c.account.as_str(), c.customer_id.as_str());
            kv::put(&self.inner.blocks, &k, &value).await
        } else {
            self.inner.blocks.delete(&k).await.map_err(storage)
        }
    }

    pub(crate) async fn blocked_customers(&self) -> Result<Vec<CustomerRef>, QueueError> {
        let mut out = Vec::new();
        for k in kv::keys(&self.inner.blocks).await? {
            if let Some(((channel, account, customer), _)) =
                kv::load::<(String, String, String)>(&self.inner.blocks, &k).await?
                && let Ok(channel) = channel.parse::<Channel>()
            {
                out.push(CustomerRef::new(channel, account, customer));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// What delivery resumes from: an unfinished message's request and progress.
fn pending_message(id: Uuid, state: MessageState) -> PendingMessage {
    PendingMessage {
        id,
        request: state.request,
        parts_done: state.parts_done,
        attempts: state.attempts,
        created_at: from_us(state.created_us),
        next_at: state.next_us.map(from_us),
    }
}
