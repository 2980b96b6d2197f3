//! The embedded queue's own behaviour: retention and schema migrations. The `Queue` contract
//! itself is one suite for both backends: `crates/queue-nats/tests/suite/` (run by `conformance.rs`).

use std::time::Duration;

use chatgate_model::{
    Channel, Conversation, CustomerRef, Event, EventKind, Message, OutboundRequest, Status, StatusInfo,
};
use chatgate_queue::{Attempt, InboundRecord, Queue, SqliteQueue};
use chrono::Utc;
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

    // A retention that keeps the events from 1970: the background prune (which starts at once)
    // must leave them to the explicit prune at the end.
    let q = SqliteQueue::open_with(dir.path(), Duration::from_secs(100 * 365 * 24 * 3600)).unwrap();
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
