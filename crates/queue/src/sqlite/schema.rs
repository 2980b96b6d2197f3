//! The SQLite schema. Times are microseconds since the Unix epoch (UTC).

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    seq   INTEGER PRIMARY KEY,
    body  TEXT NOT NULL,
    at_us INTEGER
);
CREATE TABLE IF NOT EXISTS dedup (
    account TEXT NOT NULL,
    key     TEXT NOT NULL,
    at_us   INTEGER,
    PRIMARY KEY (account, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id          TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    request     TEXT NOT NULL,
    idem_key    TEXT,
    status      TEXT NOT NULL,
    error_code  TEXT,
    error_text  TEXT,
    parts_done  INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    done        INTEGER NOT NULL DEFAULT 0,
    created_us  INTEGER NOT NULL,
    sent_us     INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_idem ON messages (channel, account, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_chat ON messages (channel, account, chat_id, sent_us);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (done) WHERE done = 0;
CREATE TABLE IF NOT EXISTS message_history (
    message_id TEXT NOT NULL,
    status     TEXT NOT NULL,
    at_us      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS message_history_id ON message_history (message_id);
CREATE TABLE IF NOT EXISTS external_ids (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    part        INTEGER NOT NULL,
    PRIMARY KEY (channel, account, external_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS external_ids_message ON external_ids (message_id, part);
CREATE TABLE IF NOT EXISTS windows (
    channel   TEXT NOT NULL,
    account   TEXT NOT NULL,
    chat_id   TEXT NOT NULL,
    last_us   INTEGER NOT NULL,
    PRIMARY KEY (channel, account, chat_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (channel, account, customer_id)
) WITHOUT ROWID;
"#;

/// Brings a database written by an earlier version up to [`SCHEMA`]: columns added later are
/// added, and rows that lack a time get "now" (they are kept for a whole retention period).
pub fn migrate(conn: &rusqlite::Connection, now_us: i64) -> rusqlite::Result<()> {
    for table in ["events", "dedup"] {
        let has_at: bool =
            conn.prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = 'at_us'"))?.exists([])?;
        if !has_at {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN at_us INTEGER"))?;
        }
        conn.execute(&format!("UPDATE {table} SET at_us = ?1 WHERE at_us IS NULL"), [now_us])?;
    }
    // What retention deletes by, so pruning never scans a whole table.
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS dedup_at ON dedup (at_us);
         CREATE INDEX IF NOT EXISTS messages_done_created ON messages (created_us) WHERE done = 1;
         CREATE INDEX IF NOT EXISTS windows_last ON windows (last_us);",
    )
}
