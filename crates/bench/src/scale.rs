//! `chatgate-bench scale`: whether chatgate's costs grow with the size of its store, and what
//! retention costs the ingest while it prunes a day of a big store.
//!
//! ```text
//! cargo run --release -p chatgate-bench -- scale [--events 10000000] [--days 10] [--seconds 10] [--connections 64] [--store DIR]
//! ```
//!
//! 1. **Generate** a store of `--events` events (in `TMPDIR`, deleted at the end; `--store DIR`
//!    keeps it and reuses it on the next run): [`chatgate_queue::SqliteQueue`] creates the schema,
//!    then rows are bulk-inserted into the same tables in big transactions, as chatgate stores
//!    them: the event JSON of a real Telegram update (the real adapter's parse, with its own
//!    event id, chat, message id and time per row), its dedup key `update:<id>` and the chats'
//!    messaging windows, spread evenly over the last `--days` days of `at_us`. Prints the time
//!    it took, the database size and bytes per event.
//! 2. **Empty beside big**: chatgate on a new store, then on the generated one, each under the
//!    `ingest` load (`--connections` closed-loop connections, 2 s warm-up, `--seconds` measured):
//!    requests/s, p50/p99, memory. Then on the same server `pull` reads 100 pages of 1,000 events
//!    from the oldest and 100 pages from 100,000 events before the tail. Durability as in
//!    `ingest` (`lost=0`). The `ratio big/empty` line compares them (goal: ≈ 1, cost does not grow
//!    with the store). Then outbound: the `lifted` round of `chatgate-bench outbound` (20,000
//!    messages from 64 submitters to 1,000 chats of 10 bots, limits lifted, a mock Bot API) on
//!    an empty store and on the big one, and their ratio of messages/s.
//! 3. **Retention**: chatgate on the big store with a retention of `--days` − 1 days, so the
//!    oldest day (`--events` ÷ `--days` events and their dedup keys) has expired when it starts;
//!    the ingest load runs in one-second windows while the bench watches the store (read-only)
//!    until the oldest event and the oldest dedup key are inside the retention. Prints how long
//!    the prune took and its rate, the ingest figures of the windows during the prune and of as
//!    many seconds after it, and their ratio (goal: p99 during ≤ 10 ms).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chatgate_adapter::{ChannelFactory, WebhookRequest};
use rusqlite::{Connection, OpenFlags, params};
use serde_json::json;

use crate::Memory;
use crate::child::ChildServer;
use crate::ingest::{Client, durability, file_len, load_average, mib, page, per};
use crate::load::{self, Load, Report};
use crate::outbound::OutboundLoad;
use crate::serve::{self, SECRET_TOKEN};

/// What to generate and how hard to push.
#[derive(Debug, Clone)]
pub struct ScaleLoad {
    pub events: u64,
    pub days: u64,
    pub seconds: u64,
    pub connections: usize,
    pub store: Option<PathBuf>,
}

/// The generated events' update ids start here, far from the load's (which start at 1).
const FIRST_GENERATED_ID: u64 = 1_000_000_000;
/// Chats the generated events are spread over.
const CHATS: u64 = 100_000;
/// Rows per transaction while generating.
const ROWS_PER_TRANSACTION: u64 = 200_000;
/// Pages of 1,000 events each pull reads.
const PULL_PAGES: u64 = 100;
/// The longest the retention round waits for the prune to finish.
const PRUNE_TIMEOUT: Duration = Duration::from_secs(900);

const DAY_US: i64 = 86_400_000_000;

pub fn run(load: &ScaleLoad) -> anyhow::Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "scale: {} events over {} days, {} connections, {} s measured per store, {cores} cores, load average {}",
        load.events,
        load.days,
        load.connections,
        load.seconds,
        load_average()
    );
    let temporary = match &load.store {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating the big store's directory")?),
    };
    let big = match (&load.store, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => unreachable!("one of them is set"),
    };
    let db = big.join("chatgate.db");
    let existing = if db.exists() { count(&db, "SELECT COUNT(*) FROM events")? } else { 0 };
    if existing < load.events {
        anyhow::ensure!(existing == 0, "{} holds {existing} events, fewer than --events; remove it", db.display());
        let started = Instant::now();
        generate(&big, load.events, load.days)?;
        let took = started.elapsed();
        println!(
            "generate  events={} in {:.1}s: rows/s={:.0}",
            load.events,
            took.as_secs_f64(),
            load.events as f64 / took.as_secs_f64().max(1e-9)
        );
    } else {
        println!("generate  reusing {} ({existing} events)", db.display());
    }
    let size = file_len(&db);
    println!("store     db={} bytes_per_event={:.0}", mib(size), per(size, load.events.max(existing)));

    let runtime = serve::runtime()?;
    let mut failed = false;
    let ingest = Load {
        connections: load.connections,
        warmup: Duration::from_secs(2),
        measure: Duration::from_secs(load.seconds),
    };

    let empty_dir = tempfile::tempdir().context("creating the empty store's directory")?;
    let (empty, ok) = round(&runtime, "empty", empty_dir.path(), &ingest)?;
    failed |= !ok;
    empty_dir.close().context("removing the empty store")?;
    let (large, ok) = round(&runtime, "big", &big, &ingest)?;
    failed |= !ok;

    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    println!(
        "ratio big/empty: requests/s={:.3} p99={:.3} pull_oldest={:.3} pull_tail={:.3} rss={:.3}",
        ratio(large.ingest.requests_per_second(), empty.ingest.requests_per_second()),
        ratio(large.ingest.percentile_ms(0.99), empty.ingest.percentile_ms(0.99)),
        ratio(large.pull_oldest, empty.pull_oldest),
        ratio(large.pull_tail, empty.pull_tail),
        ratio(large.memory.rss_mib(), empty.memory.rss_mib()),
    );

    // Outbound, lifted limits, as `chatgate-bench outbound` runs it, on an empty and on the big store.
    let outbound = OutboundLoad { messages: 20_000, submitters: 64, accounts: 10, chats: 1000, paced_rate: 5000 };
    let empty_dir = tempfile::tempdir().context("creating the empty store's directory")?;
    let on_empty = crate::outbound::lifted_on(&runtime, &outbound, empty_dir.path())?;
    empty_dir.close().context("removing the empty store")?;
    println!("empty     outbound {}", on_empty.line);
    let on_big = crate::outbound::lifted_on(&runtime, &outbound, &big)?;
    println!("big       outbound {}", on_big.line);
    failed |= !(on_empty.ok && on_big.ok);
    println!("ratio big/empty: outbound messages/s={:.3}", ratio(on_big.rate, on_empty.rate));

    failed |= !retention(&runtime, load, &big)?;

    match temporary {
        Some(t) => t.close().context("removing the big store")?,
        None => println!("store     kept in {}", big.display()),
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Counts with one `SELECT COUNT(*)`-like query, read-only.
fn count(db: &Path, sql: &str) -> anyhow::Result<u64> {
    let conn = read_only(db)?;
    let n: Option<i64> = conn.query_row(sql, [], |r| r.get(0)).with_context(|| sql.to_owned())?;
    Ok(n.unwrap_or(0) as u64)
}

fn read_only(db: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", db.display()))?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    Ok(conn)
}

/// Writes `events` events spread over the last `days` days into a new store in `dir`.
fn generate(dir: &Path, events: u64, days: u64) -> anyhow::Result<()> {
    // The schema, exactly as chatgate creates it.
    drop(chatgate_queue::SqliteQueue::open(dir).context("creating the store")?);
    let path = dir.join("chatgate.db");
    let mut conn = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    // Bulk load: no journal, no syncs (a crash here only loses the benchmark's store).
    // The queue's threads close their connections shortly after it is dropped.
    let waiting = Instant::now();
    while let Err(e) = conn.pragma_update(None, "journal_mode", "OFF") {
        anyhow::ensure!(waiting.elapsed() < Duration::from_secs(10), "switching the journal off: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let template = Template::new()?;
    let now_us = chrono::Utc::now().timestamp_micros();
    let span_us = days as i64 * DAY_US;
    let first_us = now_us - span_us;
    let mut row = 0u64;
    let mut last_in_chat = vec![0i64; CHATS as usize];
    while row < events {
        let end = (row + ROWS_PER_TRANSACTION).min(events);
        let tx = conn.transaction()?;
        {
            let mut event = tx.prepare_cached("INSERT INTO events (body, at_us) VALUES (?1, ?2)")?;
            let mut dedup = tx.prepare_cached("INSERT INTO dedup (account, key, at_us) VALUES (?1, ?2, ?3)")?;
            for i in row..end {
                // Evenly spread, oldest first, as seq grows.
                let at_us = first_us + (span_us as i128 * i as i128 / events as i128) as i64;
                let chat = i % CHATS;
                let update_id = FIRST_GENERATED_ID + i;
                event.execute(params![template.body(i, update_id, chat, at_us), at_us])?;
                dedup.execute(params!["telegram/bench", format!("update:{update_id}"), at_us])?;
                last_in_chat[chat as usize] = at_us;
            }
        }
        tx.commit()?;
        row = end;
    }
    let tx = conn.transaction()?;
    {
        let mut window = tx.prepare_cached(
            "INSERT INTO windows (channel, account, chat_id, last_us) VALUES ('telegram', 'bench', ?1, ?2)",
        )?;
        for (chat, last) in last_in_chat.iter().enumerate().filter(|(_, l)| **l > 0) {
            window.execute(params![Template::chat_id(chat as u64), last])?;
        }
    }
    tx.commit()?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(())
}

/// The stored JSON of a real Telegram text update, with the per-event parts left open.
struct Template {
    /// The JSON split at the id, chat, message id and time.
    pieces: Vec<String>,
    holes: Vec<Hole>,
}

#[derive(Debug, Clone, Copy)]
enum Hole {
    Id,
    Chat,
    Message,
    Time,
}

impl Template {
    const ID: &'static str = "01234567-89ab-7def-8123-456789abcdef";
    const CHAT: &'static str = "731904215";
    const MESSAGE: &'static str = "MESSAGE-ID";
    const TIME: &'static str = "TIME";

    fn new() -> anyhow::Result<Template> {
        let adapter = chatgate_channel_telegram::FACTORY
            .build(
                "bench",
                json!({"bot_token": "123456:bench-token", "secret_token": SECRET_TOKEN, "api_base_url": "http://127.0.0.1:9"}),
            )
            .context("building the Telegram account")?;
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-telegram-bot-api-secret-token", SECRET_TOKEN.parse()?);
        let body = load::body(1);
        let request = WebhookRequest { method: &axum::http::Method::POST, headers: &headers, query: None, body: &body };
        let inbound = chatgate_adapter::webhook::receive(adapter.as_ref(), &request).context("parsing the update")?;
        let mut event = inbound.events.into_iter().next().context("no event")?.event;
        event.id = Self::ID.parse()?;
        if let Some(m) = event.message.as_mut() {
            m.external_id = Self::MESSAGE.into();
        }
        let mut text = serde_json::to_string(&event)?;
        let time = serde_json::to_string(&event.received_at)?;
        text = text.replace(time.trim_matches('"'), Self::TIME);
        let (mut pieces, mut holes) = (Vec::new(), Vec::new());
        let mut rest = text.as_str();
        loop {
            let next = [
                (Self::ID, Hole::Id),
                (Self::CHAT, Hole::Chat),
                (Self::MESSAGE, Hole::Message),
                (Self::TIME, Hole::Time),
            ]
            .into_iter()
            .filter_map(|(s, h)| rest.find(s).map(|at| (at, s.len(), h)))
            .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, len, hole)) => {
                    pieces.push(rest[..at].to_owned());
                    holes.push(hole);
                    rest = &rest[at + len..];
                }
                None => {
                    pieces.push(rest.to_owned());
                    break;
                }
            }
        }
        anyhow::ensure!(holes.len() >= 4, "the template lacks a part: {text}");
        Ok(Template { pieces, holes })
    }

    fn chat_id(chat: u64) -> String {
        format!("{}", 5_000_000_000 + chat)
    }

    /// Event `row` of the store.
    fn body(&self, row: u64, update_id: u64, chat: u64, at_us: i64) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(768);
        let at = chrono::DateTime::from_timestamp_micros(at_us).unwrap_or_default();
        // A UUIDv7 layout: milliseconds, version 7, variant, then the row.
        let id =
            uuid::Uuid::from_u128(((at_us / 1000) as u128) << 80 | 0x7u128 << 76 | 0b10u128 << 62 | u128::from(row));
        for (piece, hole) in self.pieces.iter().zip(self.holes.iter().map(Some).chain(std::iter::repeat(None))) {
            out.push_str(piece);
            let _ = match hole {
                Some(Hole::Id) => write!(out, "{id}"),
                Some(Hole::Chat) => write!(out, "{}", Self::chat_id(chat)),
                Some(Hole::Message) => write!(out, "{update_id}"),
                Some(Hole::Time) => write!(out, "{}", at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                None => Ok(()),
            };
        }
        out
    }
}

/// What one store gave.
struct Round {
    ingest: Report,
    memory: Memory,
    pull_oldest: f64,
    pull_tail: f64,
}

/// chatgate on `dir` under the ingest load, then pulls; prints its lines.
fn round(runtime: &tokio::runtime::Runtime, name: &str, dir: &Path, load: &Load) -> anyhow::Result<(Round, bool)> {
    let db = dir.join("chatgate.db");
    let before = if db.exists() { count(&db, "SELECT MAX(seq) FROM events")? } else { 0 };
    let chatgate =
        ChildServer::spawn("chatgate", &["serve-chatgate".as_ref(), "--data-dir".as_ref(), dir.as_os_str()])?;
    let pid = chatgate.pid();
    let mut memory = None;
    let ingest = runtime.block_on(load::run(chatgate.port, load, || memory = Some(Memory::read(pid))))?;
    let memory = memory.context("the measured phase did not end")??;
    println!("{name:<9} {}  rss={:.1}MiB hwm={:.1}MiB", ingest.summary(), memory.rss_mib(), memory.hwm_mib());
    let last = count(&db, "SELECT MAX(seq) FROM events")?;
    let oldest = runtime.block_on(pull(chatgate.port, 0))?;
    let tail = runtime.block_on(pull(chatgate.port, last.saturating_sub(PULL_PAGES * 1000)))?;
    let after = Memory::read(pid)?;
    println!(
        "{name:<9} pull events/s: oldest={oldest:.0} tail={tail:.0} (pages of 1000, {PULL_PAGES} pages each)  rss={:.1}MiB",
        after.rss_mib()
    );
    chatgate.kill()?;
    let stored = count(&db, &format!("SELECT COUNT(*) FROM events WHERE seq > {before}"))?;
    let ok = durability(name, stored, ingest.acknowledged, ingest.transport_errors);
    Ok((Round { ingest, memory, pull_oldest: oldest, pull_tail: tail }, ok))
}

/// Reads [`PULL_PAGES`] pages of 1,000 from `after`; events/s.
async fn pull(port: u16, mut after: u64) -> anyhow::Result<f64> {
    let mut client = Client::connect(port).await?;
    let started = Instant::now();
    let mut events = 0;
    for _ in 0..PULL_PAGES {
        let (n, next) = page(&client.events(&format!("after={after}&limit=1000")).await?)?;
        if n == 0 {
            break;
        }
        events += n;
        after = next;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// The retention round on the big store; whether nothing acknowledged was lost.
fn retention(runtime: &tokio::runtime::Runtime, load: &ScaleLoad, dir: &Path) -> anyhow::Result<bool> {
    let db = dir.join("chatgate.db");
    let keep_us = (load.days as i64 - 1) * DAY_US;
    let before_seq = count(&db, "SELECT MAX(seq) FROM events")?;
    let oldest_before = count(&db, "SELECT MIN(seq) FROM events")?;
    let retention = format!("{}", keep_us / 1_000_000);
    let started = Instant::now();
    let chatgate = ChildServer::spawn(
        "chatgate",
        &[
            "serve-chatgate".as_ref(),
            "--data-dir".as_ref(),
            dir.as_os_str(),
            "--retention-seconds".as_ref(),
            retention.as_ref(),
        ],
    )?;
    let cutoff_us = chrono::Utc::now().timestamp_micros() - keep_us;
    let (began, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let watcher = {
        let (db, began, done) = (db.clone(), began.clone(), done.clone());
        std::thread::spawn(move || -> anyhow::Result<(Duration, Duration)> {
            let conn = read_only(&db)?;
            let mut first = None;
            loop {
                let oldest = |sql: &str| -> anyhow::Result<i64> {
                    Ok(conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?.unwrap_or(i64::MAX))
                };
                let seq = oldest("SELECT MIN(seq) FROM events")?;
                let event = oldest("SELECT at_us FROM events ORDER BY seq LIMIT 1")?;
                let key = oldest("SELECT MIN(at_us) FROM dedup")?;
                if first.is_none() && (seq as u64 != oldest_before || key >= cutoff_us) {
                    first = Some(started.elapsed());
                    began.store(true, Ordering::SeqCst);
                }
                if event >= cutoff_us && key >= cutoff_us {
                    done.store(true, Ordering::SeqCst);
                    let first = first.unwrap_or_default();
                    return Ok((first, started.elapsed() - first));
                }
                anyhow::ensure!(started.elapsed() < PRUNE_TIMEOUT, "the prune did not finish within {PRUNE_TIMEOUT:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let window = Load { connections: load.connections, warmup: Duration::ZERO, measure: Duration::from_secs(1) };
    // Windows with the prune under way at any moment, and the others (before it began, after it ended).
    let (mut during, mut after) = (Report::default(), Report::default());
    let mut acknowledged = 0;
    let mut transport_errors = 0;
    // Update ids of this round: far above the earlier rounds' and the generated ones.
    let mut first_id = 1 << 41;
    while after.measured < Duration::from_secs(load.seconds) || !done.load(Ordering::SeqCst) {
        let finished_before = done.load(Ordering::SeqCst);
        let report = runtime.block_on(load::run_from(chatgate.port, &window, first_id, || {}))?;
        first_id += 10_000_000;
        acknowledged += report.acknowledged;
        transport_errors += report.transport_errors;
        if began.load(Ordering::SeqCst) && !finished_before {
            during.merge(report);
        } else {
            after.merge(report);
        }
        if watcher.is_finished() && !done.load(Ordering::SeqCst) {
            break;
        }
    }
    let (waited, took) = watcher.join().map_err(|_| anyhow::anyhow!("the prune watcher panicked"))??;
    let memory = Memory::read(chatgate.pid())?;
    let oldest_after = count(&db, "SELECT MIN(seq) FROM events")?;
    let pruned = oldest_after - oldest_before;
    println!(
        "retention pruned={pruned} events and their dedup keys in {:.1}s, begun {:.1}s after the start: events/s={:.0}  hwm={:.1}MiB",
        took.as_secs_f64(),
        waited.as_secs_f64(),
        pruned as f64 / took.as_secs_f64().max(1e-9),
        memory.hwm_mib(),
    );
    println!("during    {}", during.summary());
    println!("without   {}", after.summary());
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    println!(
        "ratio during/without: requests/s={:.3} p99={:.3}",
        ratio(during.requests_per_second(), after.requests_per_second()),
        ratio(during.percentile_ms(0.99), after.percentile_ms(0.99)),
    );
    chatgate.kill()?;
    let stored = count(&db, &format!("SELECT COUNT(*) FROM events WHERE seq > {before_seq}"))?;
    Ok(durability("retention", stored, acknowledged, transport_errors))
}
