//! The `Queue` contract, once, for every backend: order, dedup (also across a reopen),
//! idempotent enqueue, monotonic receipts, watermarks, failures, providers' waits, windows,
//! blocks, and web visitor streams. `tests/conformance.rs` runs each test on SQLite and on NATS.

#![allow(dead_code)]

pub mod visitors;

pub use visitors::{
    items_are_numbered_per_visitor_and_a_key_stores_once, streams_and_profiles_survive_a_reopen_and_numbering_continues,
};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatgate_model::{
    Channel, Conversation, CustomerRef, ErrorInfo, Event, EventKind, Message, OutboundRequest, Status, StatusInfo,
};
use chatgate_queue::{AccountHold, Attempt, InboundRecord, Queue, QueueError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A store under test. `open` again opens the same store anew (a restart).
#[async_trait]
pub trait Backend: Send + Sync {
    async fn open(&self) -> Arc<dyn Queue>;
}

pub fn text_event(chat: &str, text: &str) -> Event {
    let mut e = Event::new(EventKind::Message, Channel::from_static("telegram"), "main", chat);
    e.message = Some(Message { external_id: format!("m-{text}"), text: Some(text.into()), ..Message::default() });
    e
}

pub fn record(key: Option<&str>, event: Event) -> InboundRecord {
    InboundRecord { dedup_key: key.map(str::to_owned), event }
}

pub fn receipt(chat: &str, external: Option<&str>, status: Status, up_to: Option<chrono::DateTime<Utc>>) -> Event {
    let mut e = Event::new(EventKind::Status, Channel::from_static("telegram"), "main", chat);
    e.status =
        Some(StatusInfo { message_id: None, external_id: external.map(str::to_owned), status, error: None, up_to });
    e
}

pub fn request(chat: &str, text: &str, key: Option<&str>) -> OutboundRequest {
    OutboundRequest {
        channel: Channel::from_static("telegram"),
        account: "main".into(),
        chat_id: chat.into(),
        text: Some(text.into()),
        attachments: vec![],
        reply_to: None,
        template: None,
        idempotency_key: key.map(str::to_owned),
        feedback: None,
        buttons: vec![],
        buttons_per_row: None,
    }
}

pub fn statuses(events: &[chatgate_queue::StoredEvent]) -> Vec<(Option<String>, String)> {
    events
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.json).unwrap())
        .filter(|v| v["type"] == "status")
        .map(|v| {
            (v["status"]["message_id"].as_str().map(str::to_owned), v["status"]["status"].as_str().unwrap().to_owned())
        })
        .collect()
}

pub async fn events_come_back_in_order_with_their_seq(b: &dyn Backend) {
    let q = b.open().await;
    let out = q
        .append_inbound(vec![record(Some("u1"), text_event("1", "a")), record(Some("u2"), text_event("1", "b"))])
        .await
        .unwrap();
    assert_eq!(out.seqs, vec![1, 2]);
    let events = q.read_events(0, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(events[0].json.starts_with("{\"seq\":1,\"v\":1,"), "{}", events[0].json);
    let v: serde_json::Value = serde_json::from_str(&events[1].json).unwrap();
    assert_eq!(v["message"]["text"], "b");
    assert_eq!(q.read_events(1, 10).await.unwrap().len(), 1);
    assert_eq!(q.read_events(0, 1).await.unwrap().len(), 1);
}

pub async fn duplicates_are_stored_once_even_after_reopen(b: &dyn Backend) {
    {
        let q = b.open().await;
        let out = q.append_inbound(vec![record(Some("update:7"), text_event("1", "a"))]).await.unwrap();
        assert_eq!((out.seqs.len(), out.duplicates), (1, 0));
        let again = q.append_inbound(vec![record(Some("update:7"), text_event("1", "a"))]).await.unwrap();
        assert_eq!((again.seqs.len(), again.duplicates), (0, 1));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let q = b.open().await;
    let out = q
        .append_inbound(vec![record(Some("update:7"), text_event("1", "a")), record(None, text_event("1", "b"))])
        .await
        .unwrap();
    assert_eq!((out.seqs, out.duplicates), (vec![2], 1));
    assert_eq!(q.read_events(0, 10).await.unwrap().len(), 2);
}

pub async fn concurrent_appends_are_all_acknowledged_and_stored(b: &dyn Backend) {
    let q = b.open().await;
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move {
                q.append_inbound(vec![record(Some(&format!("k{i}")), text_event("c", &i.to_string()))]).await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap().unwrap().seqs);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=500).collect::<Vec<u64>>());
    assert_eq!(q.read_events(0, 1000).await.unwrap().len(), 500);
}

pub async fn long_poll_wakes_on_commit(b: &dyn Backend) {
    let q = b.open().await;
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.wait_events(0, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.append_inbound(vec![record(None, text_event("1", "x"))]).await.unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap(), 1);
    assert_eq!(q.wait_events(1, Duration::from_millis(20)).await, 1);
}

pub async fn idempotency_key_returns_the_same_message(b: &dyn Backend) {
    let q = b.open().await;
    let first = q.enqueue(Uuid::now_v7(), request("1", "hi", Some("k1"))).await.unwrap();
    let second = q.enqueue(Uuid::now_v7(), request("1", "hi", Some("k1"))).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.id, second.id);
    match q.enqueue(Uuid::now_v7(), request("1", "other", Some("k1"))).await {
        Err(QueueError::IdempotencyConflict { existing }) => assert_eq!(existing, first.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(q.pending_messages().await.unwrap().len(), 1);
    // One `queued` status event on the log.
    assert_eq!(statuses(&q.read_events(0, 10).await.unwrap()), vec![(Some(first.id.to_string()), "queued".into())]);
}

pub async fn receipts_move_status_forward_only(b: &dyn Backend) {
    let q = b.open().await;
    let id = q.enqueue(Uuid::now_v7(), request("42", "hi", None)).await.unwrap().id;
    q.record_attempt(
        id,
        Attempt::PartSent { index: 0, external_id: "wamid.1".into(), status: Status::Sent, last: true },
    )
    .await
    .unwrap();
    assert!(q.pending_messages().await.unwrap().is_empty());
    let read =
        q.append_inbound(vec![record(Some("r1"), receipt("42", Some("wamid.1"), Status::Read, None))]).await.unwrap();
    assert_eq!(read.seqs.len(), 1);
    let late = q
        .append_inbound(vec![record(Some("d1"), receipt("42", Some("wamid.1"), Status::Delivered, None))])
        .await
        .unwrap();
    assert_eq!((late.seqs.len(), late.unchanged_statuses), (0, 1));
    let unknown =
        q.append_inbound(vec![record(Some("x"), receipt("42", Some("not-ours"), Status::Read, None))]).await.unwrap();
    assert_eq!(unknown.seqs.len(), 1, "a receipt for a message we don't know is forwarded, not lost");

    let record = q.message(id).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Read);
    assert_eq!(record.external_ids, vec!["wamid.1".to_owned()]);
    assert_eq!(
        record.history.iter().map(|h| h.status).collect::<Vec<_>>(),
        vec![Status::Queued, Status::Sent, Status::Read]
    );
    let log = statuses(&q.read_events(0, 10).await.unwrap());
    let ours: Vec<_> =
        log.iter().filter(|(m, _)| m.as_deref() == Some(&id.to_string())).map(|(_, s)| s.as_str()).collect();
    assert_eq!(ours, vec!["queued", "sent", "read"]);
}

pub async fn watermark_marks_exactly_the_earlier_sent_messages_of_that_chat(b: &dyn Backend) {
    let q = b.open().await;
    let mut ids = Vec::new();
    for (chat, text) in [("A", "1"), ("A", "2"), ("B", "3")] {
        let id = q.enqueue(Uuid::now_v7(), request(chat, text, None)).await.unwrap().id;
        q.record_attempt(
            id,
            Attempt::PartSent { index: 0, external_id: format!("mid.{text}"), status: Status::Sent, last: true },
        )
        .await
        .unwrap();
        ids.push(id);
    }
    let mark = Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let later = q.enqueue(Uuid::now_v7(), request("A", "4", None)).await.unwrap().id;
    q.record_attempt(
        later,
        Attempt::PartSent { index: 0, external_id: "mid.4".into(), status: Status::Sent, last: true },
    )
    .await
    .unwrap();
    let unsent = q.enqueue(Uuid::now_v7(), request("A", "5", None)).await.unwrap().id;

    let out = q.append_inbound(vec![record(Some("w"), receipt("A", None, Status::Read, Some(mark)))]).await.unwrap();
    assert_eq!(out.seqs.len(), 2);
    for (id, want) in [
        (ids[0], Status::Read),
        (ids[1], Status::Read),
        (ids[2], Status::Sent),
        (later, Status::Sent),
        (unsent, Status::Queued),
    ] {
        assert_eq!(q.message(id).await.unwrap().unwrap().status, want);
    }
}

pub async fn failure_is_final_and_reported_once(b: &dyn Backend) {
    let q = b.open().await;
    let id = q.enqueue(Uuid::now_v7(), request("1", "hi", None)).await.unwrap().id;
    q.record_attempt(id, Attempt::Retry { next_at: Utc::now(), error: "503".into(), whole_account: false })
        .await
        .unwrap();
    assert_eq!(q.pending_messages().await.unwrap()[0].attempts, 1);
    let error =
        ErrorInfo { code: chatgate_model::ErrorCode::CustomerUnsubscribed, message: "blocked by the user".into() };
    q.record_attempt(id, Attempt::Failed { error: error.clone() }).await.unwrap();
    let record = q.message(id).await.unwrap().unwrap();
    assert_eq!((record.status, record.error), (Status::Failed, Some(error)));
    assert!(q.pending_messages().await.unwrap().is_empty());
}

pub async fn a_providers_wait_survives_a_reopen_per_message_and_per_account(b: &dyn Backend) {
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros() + 5_000_000).unwrap();
    let (single, held) = {
        let q = b.open().await;
        let single = q.enqueue(Uuid::now_v7(), request("1", "one", None)).await.unwrap().id;
        let held = q.enqueue(Uuid::now_v7(), request("2", "two", None)).await.unwrap().id;
        let wait = |whole_account| Attempt::Retry { next_at: at, error: "429".into(), whole_account };
        q.record_attempt(single, wait(false)).await.unwrap();
        assert!(q.account_holds().await.unwrap().is_empty(), "a wait for one message holds no account");
        q.record_attempt(held, wait(true)).await.unwrap();
        // An earlier wait never shortens the account's hold.
        let earlier = Attempt::Retry { next_at: Utc::now(), error: "429".into(), whole_account: true };
        q.record_attempt(held, earlier).await.unwrap();
        (single, held)
    };
    let q = b.open().await;
    let pending = q.pending_messages().await.unwrap();
    let next = |id| pending.iter().find(|m| m.id == id).unwrap().next_at;
    assert_eq!(next(single), Some(at));
    assert!(next(held).is_some_and(|t| t < at), "the message's own time is the latest attempt's");
    let holds = q.account_holds().await.unwrap();
    assert_eq!(
        holds,
        vec![AccountHold { channel: Channel::from_static("telegram"), account: "main".into(), until: at }]
    );
}

pub async fn windows_and_blocks_persist(b: &dyn Backend) {
    {
        let q = b.open().await;
        assert_eq!(
            q.last_inbound(&Conversation::new(Channel::from_static("telegram"), "main", "9")).await.unwrap(),
            None
        );
        q.append_inbound(vec![record(None, text_event("9", "hi"))]).await.unwrap();
        q.set_blocked(&CustomerRef::new(Channel::from_static("vk"), "grp", "77"), true).await.unwrap();
        q.set_blocked(&CustomerRef::new(Channel::from_static("vk"), "grp", "78"), true).await.unwrap();
        q.set_blocked(&CustomerRef::new(Channel::from_static("vk"), "grp", "78"), false).await.unwrap();
    }
    let q = b.open().await;
    assert!(q.last_inbound(&Conversation::new(Channel::from_static("telegram"), "main", "9")).await.unwrap().is_some());
    assert_eq!(q.blocked().await.unwrap(), vec![CustomerRef::new(Channel::from_static("vk"), "grp", "77")]);
}

pub async fn a_failing_command_fails_alone_in_its_batch(b: &dyn Backend) {
    let q = b.open().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            if i % 10 == 0 {
                // No such message: this command fails.
                let r = q
                    .record_attempt(
                        Uuid::now_v7(),
                        Attempt::Failed {
                            error: ErrorInfo { code: chatgate_model::ErrorCode::ProviderRejected, message: "y".into() },
                        },
                    )
                    .await;
                (i, r.is_ok())
            } else {
                let r = q.append_inbound(vec![record(Some(&format!("k{i}")), text_event("c", &i.to_string()))]).await;
                (i, r.is_ok())
            }
        }));
    }
    for t in tasks {
        let (i, ok) = t.await.unwrap();
        assert_eq!(ok, i % 10 != 0, "command {i}");
    }
    assert_eq!(q.read_events(0, 1000).await.unwrap().len(), 180);
    assert!(q.last_inbound(&Conversation::new(Channel::from_static("telegram"), "main", "c")).await.unwrap().is_some());
}

/// Named cursors (push delivery's position): 0 when never set, forward only, independent of
/// each other, kept across a reopen.
pub async fn a_cursor_moves_forward_only_and_survives_a_reopen(b: &dyn Backend) {
    {
        let q = b.open().await;
        assert_eq!(q.cursor("push").await.unwrap(), 0, "a cursor never set stands at 0");
        q.set_cursor("push", 5).await.unwrap();
        q.set_cursor("push", 9).await.unwrap();
        q.set_cursor("push", 7).await.unwrap();
        assert_eq!(q.cursor("push").await.unwrap(), 9, "a lower value does not move it back");
        q.set_cursor("other", 2).await.unwrap();
        assert_eq!((q.cursor("push").await.unwrap(), q.cursor("other").await.unwrap()), (9, 2));
    }
    let q = b.open().await;
    assert_eq!(q.cursor("push").await.unwrap(), 9, "kept across a reopen");
    assert_eq!(q.cursor("other").await.unwrap(), 2);
}

/// Asks `q` (announcing `mine`) until the other instances it reports are `want`, for up to 5 s
/// (an instance learns of the others through a watch that may lag a moment).
async fn others_become(
    q: &dyn Queue,
    mine: &[(Channel, String)],
    want: &std::collections::HashMap<(Channel, String), u32>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = q.announce_senders(mine, Duration::from_secs(30)).await.unwrap();
        if &seen == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "other instances: {seen:?}, expected {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rate shares (`delivery::share`): an instance learns which other live instances send for which
/// account; one that withdraws, or whose announcement runs out, no longer counts. A store used by
/// one process knows no other instance.
pub async fn instances_sending_for_an_account_count_until_they_withdraw_or_expire(b: &dyn Backend) {
    let (x, y) = (b.open().await, b.open().await);
    let tg = (Channel::from_static("telegram"), "main".to_owned());
    let vk = (Channel::from_static("vk"), "club".to_owned());
    x.announce_senders(&[tg.clone(), vk.clone()], Duration::from_secs(30)).await.unwrap();
    let seen = y.announce_senders(std::slice::from_ref(&tg), Duration::from_secs(30)).await.unwrap();
    if !y.shared_by_instances() {
        assert!(seen.is_empty(), "one process, yet other instances: {seen:?}");
        assert!(x.withdraw_senders().await.is_ok());
        return;
    }
    let both = std::collections::HashMap::from([(tg.clone(), 1), (vk.clone(), 1)]);
    others_become(y.as_ref(), std::slice::from_ref(&tg), &both).await;
    others_become(x.as_ref(), &[tg.clone(), vk.clone()], &std::collections::HashMap::from([(tg.clone(), 1)])).await;
    // x stops sending for vk, then leaves.
    x.announce_senders(std::slice::from_ref(&tg), Duration::from_secs(30)).await.unwrap();
    others_become(y.as_ref(), std::slice::from_ref(&tg), &std::collections::HashMap::from([(tg.clone(), 1)])).await;
    x.withdraw_senders().await.unwrap();
    others_become(y.as_ref(), std::slice::from_ref(&tg), &std::collections::HashMap::new()).await;
    // An announcement that is not renewed runs out (an instance that died).
    x.announce_senders(std::slice::from_ref(&vk), Duration::from_millis(300)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let counted = loop {
        let seen = y.announce_senders(std::slice::from_ref(&tg), Duration::from_secs(30)).await.unwrap();
        if seen.contains_key(&vk) || tokio::time::Instant::now() > deadline {
            break seen.contains_key(&vk);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(counted, "a fresh announcement counts");
    tokio::time::sleep(Duration::from_millis(400)).await;
    others_become(y.as_ref(), std::slice::from_ref(&tg), &std::collections::HashMap::new()).await;
}
