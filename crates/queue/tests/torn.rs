//! Torn files after a crash: a WAL whose tail was cut mid-frame or holds garbage is recovered up
//! to its last whole commit; a database file shorter than its header says is refused with a
//! clear error, never half-read.

use chatgate_model::{Channel, Event, EventKind, Message};
use chatgate_queue::{InboundRecord, Queue, SqliteQueue};

fn record(n: u64) -> InboundRecord {
    let mut event = Event::new(EventKind::Message, Channel::from_static("telegram"), "main", "1");
    event.message = Some(Message { external_id: n.to_string(), text: Some(format!("torn {n}")), ..Message::default() });
    InboundRecord { dedup_key: Some(format!("k{n}")), event }
}

/// Appends events one commit each and leaves in `dir` the files as a crash would (copied while
/// the store is open and idle: closing it would checkpoint and remove the WAL).
async fn write(dir: &std::path::Path, range: std::ops::RangeInclusive<u64>) {
    let live = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(live.path()).unwrap();
    for n in range {
        q.append_inbound(vec![record(n)]).await.unwrap();
    }
    for name in ["chatgate.db", "chatgate.db-wal"] {
        let from = live.path().join(name);
        if from.exists() {
            std::fs::copy(&from, dir.join(name)).unwrap();
        }
    }
    drop(q);
}

async fn seqs(q: &SqliteQueue) -> Vec<u64> {
    q.read_events(0, 10_000).await.unwrap().iter().map(|e| e.seq).collect()
}

fn wal(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("chatgate.db-wal")
}

#[tokio::test]
async fn a_wal_cut_mid_frame_is_recovered_up_to_its_last_whole_commit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1..=200).await;
    let len = std::fs::metadata(wal(dir.path())).map(|m| m.len()).unwrap_or(0);
    // Cut into the last frames (a crash during the WAL write of commits never acknowledged).
    let cut = len.saturating_sub(1500);
    std::fs::OpenOptions::new().write(true).open(wal(dir.path())).unwrap().set_len(cut).unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
    let found = seqs(&q).await;
    println!("WAL of {len} bytes cut to {cut}: {} of 200 events recovered", found.len());
    assert!(!found.is_empty() && found.len() <= 200);
    assert_eq!(found, (1..=found.len() as u64).collect::<Vec<_>>(), "a whole prefix, nothing skipped");
    // The log goes on after the recovered prefix.
    let next = q.append_inbound(vec![record(1000)]).await.unwrap();
    assert_eq!(next.seqs, vec![found.len() as u64 + 1]);
}

#[tokio::test]
async fn garbage_after_the_last_wal_commit_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1..=50).await;
    let mut bytes = std::fs::read(wal(dir.path())).unwrap_or_default();
    let before = bytes.len();
    bytes.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(wal(dir.path()), &bytes).unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
    let found = seqs(&q).await;
    println!("WAL of {before} bytes + 5000 garbage bytes: {} of 50 events", found.len());
    assert_eq!(found, (1..=50).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_truncated_database_file_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1..=600).await;
    // Move everything into the database file: open and close it cleanly once.
    drop(SqliteQueue::open(dir.path()).unwrap());
    for _ in 0..200 {
        if !wal(dir.path()).exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!wal(dir.path()).exists(), "closing the store checkpoints and removes the WAL");
    let db = dir.path().join("chatgate.db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(len / 2).unwrap();
    let err = SqliteQueue::open(dir.path()).unwrap_err().to_string();
    println!("database of {len} bytes cut to {}: {err}", len / 2);
    assert!(err.contains("truncated"), "{err}");

    std::fs::write(&db, b"SQLite form").unwrap();
    let err = SqliteQueue::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a whole SQLite database"), "{err}");
}
