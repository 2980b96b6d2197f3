//! Web visitor streams in the SQLite queue: pruning (the contract is in `crates/queue-nats/tests/suite/`).

use chatgate_queue::{InboundRecord, Queue, SqliteQueue, VisitorAppend};

fn append(visitor: &str, key: Option<&str>, data: &str, events: Vec<InboundRecord>) -> VisitorAppend {
    VisitorAppend {
        account: "web".into(),
        visitor: visitor.into(),
        key: key.map(str::to_owned),
        kind: "message".into(),
        data: data.into(),
        events,
    }
}

#[tokio::test]
async fn pruning_keeps_each_visitors_newest_item_so_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
    for _ in 0..3 {
        q.append_visitor(append("v_a", None, "{}", vec![])).await.unwrap();
    }
    q.prune_older_than(chrono::Utc::now() + chrono::Duration::hours(1)).await.unwrap();
    let left = q.read_visitor("web", "v_a", 0, 100).await.unwrap();
    assert_eq!(left.iter().map(|i| i.n).collect::<Vec<_>>(), [3]);
    assert_eq!(q.append_visitor(append("v_a", None, "{}", vec![])).await.unwrap().item.n, 4);
}
