//! Named cursors: start at 0, move forward only, survive a reopen, independent of each other.

use chatgate_queue::{Queue, SqliteQueue};

#[tokio::test]
async fn a_cursor_moves_forward_only_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = SqliteQueue::open(dir.path()).unwrap();
        assert_eq!(q.cursor("push").await.unwrap(), 0, "a cursor never set stands at 0");
        q.set_cursor("push", 5).await.unwrap();
        q.set_cursor("push", 9).await.unwrap();
        q.set_cursor("push", 7).await.unwrap();
        assert_eq!(q.cursor("push").await.unwrap(), 9, "a lower value does not move it back");
        q.set_cursor("other", 2).await.unwrap();
        assert_eq!((q.cursor("push").await.unwrap(), q.cursor("other").await.unwrap()), (9, 2));
    }
    let q = SqliteQueue::open(dir.path()).unwrap();
    assert_eq!(q.cursor("push").await.unwrap(), 9, "kept across a reopen");
    assert_eq!(q.cursor("other").await.unwrap(), 2);
}
