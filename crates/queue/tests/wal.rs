//! The WAL stays bounded while writes never pause: the store restarts it from its beginning
//! instead of letting every commit append to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chatgate_model::{Channel, Event, EventKind, Message};
use chatgate_queue::{InboundRecord, Queue, SqliteQueue};

/// A message event of about one database page.
fn page_sized_event(n: u64) -> InboundRecord {
    let mut e = Event::new(EventKind::Message, Channel::from_static("telegram"), "main", (n % 50).to_string());
    let text = format!("{n:08} {}", "x".repeat(3000));
    e.message = Some(Message { external_id: format!("m-{n}"), text: Some(text), ..Message::default() });
    InboundRecord { dedup_key: Some(format!("update:{n}")), event: e }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_writes_that_never_pause() {
    const WRITERS: u64 = 32;
    const EVENTS_EACH: u64 = 800;
    let dir = tempfile::tempdir().unwrap();
    let q = SqliteQueue::open(dir.path()).unwrap();
    let wal = dir.path().join("chatgate.db-wal");

    let largest = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (largest, done, wal) = (largest.clone(), done.clone(), wal.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                largest.fetch_max(std::fs::metadata(&wal).map_or(0, |m| m.len()), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let q = q.clone();
            tokio::spawn(async move {
                for i in 0..EVENTS_EACH {
                    q.append_inbound(vec![page_sized_event(w * EVENTS_EACH + i)]).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();

    let stored = WRITERS * EVENTS_EACH;
    assert_eq!(q.read_events(stored - 1, 10).await.unwrap().len(), 1, "every event is stored");
    // Each event fills about a page: the commits wrote at least this much WAL in all.
    let written = stored * 4096;
    let largest = largest.load(Ordering::Relaxed);
    // The writer restarts the WAL once a commit leaves more than 8,192 frames of 4 KiB (and a
    // 24-byte header, 32.2 MiB) in it. While the checkpoint thread holds the checkpoint lock the
    // writer's own checkpoint waits for the next batch, so a slow disk adds some batches on top.
    let bound = 48 << 20;
    assert!(written > 2 * bound, "the test writes more than the bound: {written} bytes");
    assert!(largest <= bound, "the WAL grew to {largest} bytes (bound {bound}) while {written} bytes were committed");

    // What the store reports of that work: every frame it wrote, and the restarts it made.
    let stats = q.stats();
    assert!(stats.log_bytes >= written, "log bytes {} for {written} bytes of events", stats.log_bytes);
    assert!(
        stats.writer_checkpoints >= 2,
        "{} WAL restarts for {written} bytes written with a {bound}-byte bound",
        stats.writer_checkpoints
    );
}
