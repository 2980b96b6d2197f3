//! The SQLite schema as numbered migration steps. Times are microseconds since the Unix epoch (UTC).
//!
//! `PRAGMA user_version` holds how many of [`STEPS`] a database has had. Opening applies the
//! missing ones in order, each in its own transaction together with its new `user_version`, so
//! every step runs exactly once; an up-to-date database costs one pragma read.
//!
//! Databases written before the steps existed have `user_version` 0 but already hold tables
//! (from the first layout without times, from the retention layout with `at_us`, or from the
//! layout with retention indexes). They are recognised by their `events` table and go through
//! every step like a new database; the steps accept each of those layouts (tables and indexes
//! `IF NOT EXISTS`, the time column added only where it is missing), so the data stays as it was.

use rusqlite::{Connection, TransactionBehavior};

use crate::types::QueueError;

/// One migration step: after it, a database is at `user_version` = its position in [`STEPS`] + 1.
struct Step {
    name: &'static str,
    apply: fn(&Connection, i64) -> rusqlite::Result<()>,
}

/// Every step, oldest first. Append new steps; never change or reorder applied ones.
const STEPS: &[Step] = &[
    Step { name: "tables", apply: tables },
    Step { name: "event and dedup times", apply: event_and_dedup_times },
    Step { name: "retention indexes", apply: retention_indexes },
    Step { name: "visitor streams", apply: visitor_streams },
    Step { name: "retry times", apply: retry_times },
    Step { name: "cursors", apply: cursors },
];

/// The `user_version` of a database this build has fully migrated.
pub(super) const VERSION: u32 = STEPS.len() as u32;

/// A schema that could not be brought to [`VERSION`]. Nothing of a failed step is kept.
#[derive(Debug, thiserror::Error)]
pub(super) enum SchemaError {
    #[error("the database is at schema version {found}, newer than this build's {known}")]
    TooNew { found: u32, known: u32 },
    #[error("schema migration step {step} ({name}) failed: {source}")]
    Step {
        step: u32,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("reading the schema version: {0}")]
    Read(#[from] rusqlite::Error),
}

impl From<SchemaError> for QueueError {
    fn from(e: SchemaError) -> Self {
        QueueError::Storage(e.to_string())
    }
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Migrated {
    /// The `user_version` found.
    pub(super) from: u32,
    /// The `user_version` now ([`VERSION`]).
    pub(super) to: u32,
    /// The database was written before versioned migrations.
    pub(super) unversioned: bool,
}

/// Brings the database to [`VERSION`]. `now_us` is the time given to rows that have none yet
/// (they are then kept for a whole retention period).
pub(super) fn migrate(conn: &mut Connection, now_us: i64) -> Result<Migrated, SchemaError> {
    let from: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if from > VERSION {
        return Err(SchemaError::TooNew { found: from, known: VERSION });
    }
    let unversioned = from == 0 && has_table(conn, "events")?;
    if from == VERSION {
        return Ok(Migrated { from, to: VERSION, unversioned });
    }
    if unversioned {
        tracing::info!(to = VERSION, "queue database from before versioned migrations; bringing it up to date");
    }
    for (done, step) in (from..).zip(&STEPS[from as usize..]) {
        let number = done + 1;
        let failed = |source| SchemaError::Step { step: number, name: step.name, source };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        (step.apply)(&tx, now_us).map_err(failed)?;
        tx.pragma_update(None, "user_version", number).map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    tracing::info!(from, to = VERSION, "queue schema migrated");
    Ok(Migrated { from, to: VERSION, unversioned })
}

fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?.exists([name])
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?.exists([table, column])
}

/// Step 1: the event log, dedup keys, outbox with history and external ids, windows, blocks.
fn tables(conn: &Connection, _now_us: i64) -> rusqlite::Result<()> {
    conn.execute_batch(
        r#"
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dedup (
    account TEXT NOT NULL,
    key     TEXT NOT NULL,
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
"#,
    )
}

/// Step 2: when each event and dedup key was stored (`at_us`), what retention deletes by. Rows
/// stored before get `now_us`. Unversioned databases of the retention layout have the column.
fn event_and_dedup_times(conn: &Connection, now_us: i64) -> rusqlite::Result<()> {
    for table in ["events", "dedup"] {
        if !has_column(conn, table, "at_us")? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN at_us INTEGER"))?;
        }
        conn.execute(&format!("UPDATE {table} SET at_us = ?1 WHERE at_us IS NULL"), [now_us])?;
    }
    Ok(())
}

/// Step 3: indexes by time, so retention never scans a whole table.
fn retention_indexes(conn: &Connection, _now_us: i64) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS dedup_at ON dedup (at_us);
         CREATE INDEX IF NOT EXISTS messages_done_created ON messages (created_us) WHERE done = 1;
         CREATE INDEX IF NOT EXISTS windows_last ON windows (last_us);",
    )
}

/// Step 4: the web channel's durable per-visitor streams. `id` (never reused) orders every item
/// for the durability watermark; `n` numbers one visitor's items from 1 (`n = 0` is the visitor's
/// profile, never streamed); `key` makes posting idempotent per visitor.
fn visitor_streams(conn: &Connection, _now_us: i64) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS visitor_items (
            id      INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL,
            visitor TEXT NOT NULL,
            n       INTEGER NOT NULL,
            key     TEXT,
            kind    TEXT NOT NULL,
            data    TEXT NOT NULL,
            at_us   INTEGER NOT NULL
         );
         CREATE UNIQUE INDEX IF NOT EXISTS visitor_items_n ON visitor_items (account, visitor, n);
         CREATE UNIQUE INDEX IF NOT EXISTS visitor_items_key ON visitor_items (account, visitor, key) WHERE key IS NOT NULL;
         CREATE INDEX IF NOT EXISTS visitor_items_at ON visitor_items (at_us);",
    )
}

/// Step 5: when a message may be tried again (`messages.next_us`: a provider's "retry after" or
/// the backoff) and how long a provider asked to pause a whole account (`account_holds`), so both
/// are honoured after a restart.
fn retry_times(conn: &Connection, _now_us: i64) -> rusqlite::Result<()> {
    if !has_column(conn, "messages", "next_us")? {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN next_us INTEGER")?;
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS account_holds (
             channel  TEXT NOT NULL,
             account  TEXT NOT NULL,
             until_us INTEGER NOT NULL,
             PRIMARY KEY (channel, account)
         ) WITHOUT ROWID;",
    )
}

/// Step 6: named cursors over the event log (push delivery's position), moved forward only.
fn cursors(conn: &Connection, _now_us: i64) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS cursors (
             name TEXT PRIMARY KEY,
             seq  INTEGER NOT NULL
         ) WITHOUT ROWID;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout chatgate wrote before versioned migrations (with the retention indexes).
    const UNVERSIONED: &str = include_str!("../../tests/fixtures/unversioned_schema.sql");

    fn user_version(conn: &Connection) -> u32 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    fn objects(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
    }

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid").unwrap();
        stmt.query_map([table], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_new_database_gets_every_step_and_the_unversioned_layout() {
        let mut conn = Connection::open_in_memory().unwrap();
        let done = migrate(&mut conn, 5).unwrap();
        assert_eq!(done, Migrated { from: 0, to: VERSION, unversioned: false });
        assert_eq!(user_version(&conn), VERSION);

        // The same tables, columns and indexes as the layout written before the steps existed,
        // plus what the steps after it add.
        let old = Connection::open_in_memory().unwrap();
        old.execute_batch(UNVERSIONED).unwrap();
        retry_times(&old, 5).unwrap();
        cursors(&old, 5).unwrap();
        let added: Vec<_> = objects(&conn).into_iter().filter(|o| !objects(&old).contains(o)).collect();
        let visitor_objects = [
            ("index", "visitor_items_at"),
            ("index", "visitor_items_key"),
            ("index", "visitor_items_n"),
            ("table", "visitor_items"),
        ];
        assert_eq!(added, visitor_objects.map(|(t, n)| (t.to_owned(), n.to_owned())));
        assert!(objects(&old).iter().all(|o| objects(&conn).contains(o)));
        for (kind, name) in objects(&old) {
            if kind == "table" {
                assert_eq!(columns(&conn, &name), columns(&old, &name), "columns of {name}");
            }
        }
    }

    #[test]
    fn reopening_an_up_to_date_database_does_no_migration_work() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, 5).unwrap();
        // A row without a time: a step that ran again would give it one.
        conn.execute("INSERT INTO events (body, at_us) VALUES ('{}', NULL)", []).unwrap();
        let changes = conn.total_changes();

        let again = migrate(&mut conn, 9).unwrap();
        assert_eq!(again, Migrated { from: VERSION, to: VERSION, unversioned: false });
        assert_eq!(conn.total_changes(), changes, "no row written");
        let at: Option<i64> = conn.query_row("SELECT at_us FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(at, None);
    }

    #[test]
    fn an_unversioned_database_of_each_earlier_layout_is_brought_up_to_date() {
        // The retention layout, before the indexes for dedup, finished messages and windows.
        let retention = format!("{UNVERSIONED}\nDROP INDEX messages_done_created; DROP INDEX windows_last;");
        // The first layout: no times at all.
        let first = format!(
            "{retention}\nDROP INDEX dedup_at; ALTER TABLE events DROP COLUMN at_us; ALTER TABLE dedup DROP COLUMN at_us;"
        );
        for layout in [UNVERSIONED, &retention, &first] {
            let mut conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(layout).unwrap();
            conn.execute_batch(
                "INSERT INTO events (body) VALUES ('{\"v\":1}');
                 INSERT INTO dedup (account, key) VALUES ('telegram/main', 'update:1');",
            )
            .unwrap();
            let done = migrate(&mut conn, 42).unwrap();
            assert_eq!(done, Migrated { from: 0, to: VERSION, unversioned: true });
            assert_eq!(user_version(&conn), VERSION);
            let row: (String, Option<i64>) =
                conn.query_row("SELECT body, at_us FROM events", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            assert_eq!(row, ("{\"v\":1}".to_owned(), Some(42)), "rows without a time get the migration's");
            let key: (String, Option<i64>) =
                conn.query_row("SELECT key, at_us FROM dedup", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            assert_eq!(key, ("update:1".to_owned(), Some(42)));
            assert!(objects(&conn).contains(&("index".to_owned(), "windows_last".to_owned())));
        }
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", VERSION + 1).unwrap();
        let err = migrate(&mut conn, 5).unwrap_err();
        assert!(matches!(err, SchemaError::TooNew { found, known } if found == VERSION + 1 && known == VERSION));
        assert!(objects(&conn).is_empty());
    }
}
