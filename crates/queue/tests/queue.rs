//! The embedded queue against its contract: order, dedup, durability across reopen,
//! idempotent enqueue, monotonic receipts, watermarks, blocks.

use std::time::Duration;

use chatgate_model::{
    Channel, Conversation, CustomerRef, ErrorInfo, Event, EventKind, Message, OutboundRequest, Status, StatusInfo,
};
use chatgate_queue::{AccountHold, Attempt, InboundRecord, Queue, QueueError, SqliteQueue};
use chrono::{DateTime, Utc};
use uuid::Uuid;

fn text_event(chat: &str, text: &str) -> Event {
    let mut e = Event::new(EventKind::Message, Channel::from_static("telegram"), "main", chat);
    e.message = Some(Message { external_id: format!("m-{text}"), text: Some(text.into()), ..Message::default() });
    e
}

fn record(key: Option<&str>, event: Event) -> InboundRecord {
    InboundRecord { dedup_key: key.map(str::to_owned), event }
}

fn receipt(chat: &str, external: Option<&str>, status: Status, up_to: Option<chrono::DateTime<Utc>>) -> Event {
    let mut e = Event::new(EventKind::Status, Channel::from_static("telegram"), "main", chat);
    e.status =
        Some(StatusInfo { message_id: None, external_id: external.map(str::to_owned), status, error: None, up_to });
    e
}

fn request(chat: &str, text: &str, key: Option<&str>) -> OutboundRequest {
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

fn statuses(events: &[chatgate_queue::StoredEvent]) -> Vec<(Option<String>, String)> {
    events
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.json).unwrap())
        .filter(|v| v["type"] == "status")
        .map(|v| {
            (v["status"]["message_id"].as_str().map(str::to_owned), v["status"]["status"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn events_come_back_in_order_with_their_seq() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
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

#[tokio::test]
async fn duplicates_are_stored_once_even_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = SqliteQueue::open(dir.path()).unwrap();
        let out = q.append_inbound(vec![record(Some("update:7"), text_event("1", "a"))]).await.unwrap();
        assert_eq!((out.seqs.len(), out.duplicates), (1, 0));
        let again = q.append_inbound(vec![record(Some("update:7"), text_event("1", "a"))]).await.unwrap();
        assert_eq!((again.seqs.len(), again.duplicates), (0, 1));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let q = SqliteQueue::open(dir.path()).unwrap();
    let out = q
        .append_inbound(vec![record(Some("update:7"), text_event("1", "a")), record(None, text_event("1", "b"))])
        .await
        .unwrap();
    assert_eq!((out.seqs, out.duplicates), (vec![2], 1));
    assert_eq!(q.read_events(0, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_appends_are_all_acknowledged_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
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

#[tokio::test]
async fn long_poll_wakes_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.wait_events(0, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.append_inbound(vec![record(None, text_event("1", "x"))]).await.unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap(), 1);
    assert_eq!(q.wait_events(1, Duration::from_millis(20)).await, 1);
}

#[tokio::test]
async fn idempotency_key_returns_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
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

#[tokio::test]
async fn receipts_move_status_forward_only() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
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

#[tokio::test]
async fn watermark_marks_exactly_the_earlier_sent_messages_of_that_chat() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
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

#[tokio::test]
async fn failure_is_final_and_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
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

#[tokio::test]
async fn a_providers_wait_survives_a_reopen_per_message_and_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros() + 5_000_000).unwrap();
    let (single, held) = {
        let q = SqliteQueue::open(dir.path()).unwrap();
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
    let q = SqliteQueue::open(dir.path()).unwrap();
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

#[tokio::test]
async fn windows_and_blocks_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = SqliteQueue::open(dir.path()).unwrap();
        assert_eq!(
            q.last_inbound(&Conversation::new(Channel::from_static("telegram"), "main", "9")).await.unwrap(),
            None
        );
        q.append_inbound(vec![record(None, text_event("9", "hi"))]).await.unwrap();
        q.set_blocked(&CustomerRef::new(Channel::from_static("vk"), "grp", "77"), true).await.unwrap();
        q.set_blocked(&CustomerRef::new(Channel::from_static("vk"), "grp", "78"), true).await.unwrap();
        q.set_blocked(&CustomerRef::new(Channel::from_static("vk"), "grp", "78"), false).await.unwrap();
    }
    let q = SqliteQueue::open(dir.path()).unwrap();
    assert!(q.last_inbound(&Conversation::new(Channel::from_static("telegram"), "main", "9")).await.unwrap().is_some());
    assert_eq!(q.blocked().await.unwrap(), vec![CustomerRef::new(Channel::from_static("vk"), "grp", "77")]);
}

#[tokio::test]
async fn a_failing_command_fails_alone_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
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

#[tokio::test]
async fn retention_prunes_old_rows_but_keeps_the_sequence_and_unfinished_work() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
    for i in 0..5 {
        q.append_inbound(vec![record(Some(&format!("old{i}")), text_event("c", "old"))]).await.unwrap();
    }
    let done = q.enqueue(Uuid::now_v7(), request("c", "finished", None)).await.unwrap().id;
    q.record_attempt(done, Attempt::PartSent { index: 0, external_id: "x".into(), status: Status::Sent, last: true })
        .await
        .unwrap();
    let pending = q.enqueue(Uuid::now_v7(), request("c", "still queued", None)).await.unwrap().id;
    let last_seq = q.read_events(0, 100).await.unwrap().last().unwrap().seq;

    tokio::time::sleep(Duration::from_millis(5)).await;
    let deleted = q.prune_older_than(Utc::now()).await.unwrap();
    assert_eq!(deleted, last_seq - 1, "everything but the newest event");
    let left = q.read_events(0, 100).await.unwrap();
    assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![last_seq]);
    assert!(q.message(done).await.unwrap().is_none(), "a finished message past retention is gone");
    assert!(q.message(pending).await.unwrap().is_some(), "unfinished work is never pruned");
    assert_eq!(q.pending_messages().await.unwrap().len(), 1);

    // Sequence numbers continue; a pruned dedup key is a new event again.
    let again = q.append_inbound(vec![record(Some("old0"), text_event("c", "new"))]).await.unwrap();
    assert_eq!(again.seqs, vec![last_seq + 1]);
    // Nothing recent is pruned.
    assert_eq!(q.prune_older_than(Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(q.read_events(0, 100).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_database_from_before_retention_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("chatgate.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE dedup (account TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (account, key)) WITHOUT ROWID;
             INSERT INTO events (body) VALUES ('{\"v\":1}');
             INSERT INTO dedup VALUES ('telegram/main', 'update:1');",
        )
        .unwrap();
    }
    let q = SqliteQueue::open(dir.path()).unwrap();
    assert_eq!(q.read_events(0, 10).await.unwrap().len(), 1);
    let dup = q.append_inbound(vec![record(Some("update:1"), text_event("c", "x"))]).await.unwrap();
    assert_eq!(dup.duplicates, 1, "old dedup keys still count");
    // Old rows got a time at migration: an hour-old cutoff keeps them.
    assert_eq!(q.prune_older_than(Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 0);
}

/// The layout chatgate wrote before versioned migrations (`user_version` 0).
const UNVERSIONED_SCHEMA: &str = include_str!("fixtures/unversioned_schema.sql");

fn user_version(conn: &rusqlite::Connection) -> u32 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn a_database_written_before_versioned_migrations_opens_with_all_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now().timestamp_micros();
    let hour = 3_600_000_000_i64;
    let (sent, queued) = (Uuid::now_v7(), Uuid::now_v7());
    {
        let conn = rusqlite::Connection::open(dir.path().join("chatgate.db")).unwrap();
        conn.execute_batch(UNVERSIONED_SCHEMA).unwrap();
        // Two events from long ago and a recent one; their times must survive the migration.
        for (body, at) in [("{\"v\":1,\"n\":1}", 1), ("{\"v\":1,\"n\":2}", 2), ("{\"v\":1,\"n\":3}", now)] {
            conn.execute("INSERT INTO events (body, at_us) VALUES (?1, ?2)", rusqlite::params![body, at]).unwrap();
        }
        conn.execute("INSERT INTO dedup VALUES ('telegram/main', 'update:1', ?1)", [now]).unwrap();
        for (id, text, status, done, sent_us) in
            [(sent, "hello", "sent", 0, Some(now - hour)), (queued, "later", "queued", 0, None)]
        {
            let body = serde_json::to_string(&request("c", text, None)).unwrap();
            conn.execute(
                "INSERT INTO messages (id, channel, account, chat_id, request, status, done, created_us, sent_us)
                 VALUES (?1, 'telegram', 'main', 'c', ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![id.to_string(), body, status, done, now - 2 * hour, sent_us],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO message_history VALUES (?1, 'queued', ?2)",
                rusqlite::params![id.to_string(), now - 2 * hour],
            )
            .unwrap();
        }
        conn.execute("INSERT INTO message_history VALUES (?1, 'sent', ?2)", rusqlite::params![sent.to_string(), now])
            .unwrap();
        conn.execute("INSERT INTO external_ids VALUES ('telegram', 'main', 'ext-1', ?1, 0)", [sent.to_string()])
            .unwrap();
        conn.execute("INSERT INTO windows VALUES ('telegram', 'main', 'c', ?1)", [now - hour]).unwrap();
        conn.execute("INSERT INTO blocks VALUES ('vk', 'grp', '77')", []).unwrap();
        assert_eq!(user_version(&conn), 0);
    }

    let q = SqliteQueue::open(dir.path()).unwrap();
    let events = q.read_events(0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.json.as_str()).collect::<Vec<_>>(),
        ["{\"seq\":1,\"v\":1,\"n\":1}", "{\"seq\":2,\"v\":1,\"n\":2}", "{\"seq\":3,\"v\":1,\"n\":3}"]
    );
    let dup = q.append_inbound(vec![record(Some("update:1"), text_event("c", "x"))]).await.unwrap();
    assert_eq!(dup.duplicates, 1, "old dedup keys still count");
    assert_eq!(
        q.last_inbound(&Conversation::new(Channel::from_static("telegram"), "main", "c"))
            .await
            .unwrap()
            .map(|t| t.timestamp_micros()),
        Some(now - hour)
    );
    assert_eq!(q.blocked().await.unwrap(), vec![CustomerRef::new(Channel::from_static("vk"), "grp", "77")]);
    let pending: Vec<Uuid> = q.pending_messages().await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(pending, vec![sent, queued]);
    let record_before = q.message(sent).await.unwrap().unwrap();
    assert_eq!(record_before.status, Status::Sent);
    assert_eq!(record_before.external_ids, vec!["ext-1".to_owned()]);
    assert_eq!(record_before.history.iter().map(|h| h.status).collect::<Vec<_>>(), vec![Status::Queued, Status::Sent]);

    // The old external id and send time still route receipts and watermarks.
    let out = q.append_inbound(vec![record(None, receipt("c", Some("ext-1"), Status::Delivered, None))]).await.unwrap();
    assert_eq!((out.seqs, out.unchanged_statuses), (vec![4], 0), "seq continues after the old log");
    let out = q.append_inbound(vec![record(None, receipt("c", None, Status::Read, Some(Utc::now())))]).await.unwrap();
    assert_eq!(out.seqs.len(), 1);
    assert_eq!(q.message(sent).await.unwrap().unwrap().status, Status::Read);

    // The old times were kept, not reset by the migration: the two old events are past an hour-old cutoff.
    assert_eq!(q.prune_older_than(Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 2);

    drop(q);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let conn = rusqlite::Connection::open(dir.path().join("chatgate.db")).unwrap();
    assert!(user_version(&conn) > 0, "the database now carries its schema version");
}

#[tokio::test]
async fn reopening_does_no_migration_work() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = SqliteQueue::open(dir.path()).unwrap();
        q.append_inbound(vec![record(Some("u1"), text_event("c", "a"))]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let path = dir.path().join("chatgate.db");
    let version = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // A row without a time: any migration step that ran again would give it one.
        conn.execute("UPDATE events SET at_us = NULL", []).unwrap();
        user_version(&conn)
    };
    assert!(version > 0);

    let q = SqliteQueue::open(dir.path()).unwrap();
    assert_eq!(q.read_events(0, 10).await.unwrap().len(), 1);
    drop(q);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let at: Option<i64> = conn.query_row("SELECT at_us FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(at, None, "no step ran on reopen");
    assert_eq!(user_version(&conn), version);
}
