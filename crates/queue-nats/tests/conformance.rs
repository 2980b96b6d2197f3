//! One conformance suite of the `Queue` contract (`tests/suite/`), run against both backends:
//! the embedded SQLite store and NATS JetStream (a real `nats-server` with `sync_interval:
//! always`, started by the test on a free loopback port). Every test exists once, in the suite.

mod connect;
mod suite;

use std::sync::Arc;

use async_trait::async_trait;
use chatgate_queue::{Queue, SqliteQueue};
use chatgate_queue_nats::NatsOptions;
use chatgate_testkit::nats::NatsServers;
use connect::connect;
use suite::Backend;

struct Sqlite(tempfile::TempDir);

#[async_trait]
impl Backend for Sqlite {
    async fn open(&self) -> Arc<dyn Queue> {
        Arc::new(SqliteQueue::open(self.0.path()).unwrap())
    }
}

#[derive(Debug)]
pub struct Nats {
    pub servers: NatsServers,
}

impl Nats {
    pub fn start() -> Nats {
        Nats { servers: NatsServers::single() }
    }
}

#[async_trait]
impl Backend for Nats {
    async fn open(&self) -> Arc<dyn Queue> {
        let mut options = NatsOptions::new(self.servers.nodes[0].url());
        options.prefix = "cgtest".into();
        Arc::new(connect(options).await)
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let backend = super::Sqlite(tempfile::tempdir().unwrap());
                super::suite::$name(&backend).await;
            })*
        }
        mod nats {
            $(#[tokio::test]
            async fn $name() {
                let backend = super::Nats::start();
                super::suite::$name(&backend).await;
            })*
        }
    };
}

conformance!(
    events_come_back_in_order_with_their_seq,
    duplicates_are_stored_once_even_after_reopen,
    concurrent_appends_are_all_acknowledged_and_stored,
    long_poll_wakes_on_commit,
    idempotency_key_returns_the_same_message,
    receipts_move_status_forward_only,
    watermark_marks_exactly_the_earlier_sent_messages_of_that_chat,
    failure_is_final_and_reported_once,
    a_providers_wait_survives_a_reopen_per_message_and_per_account,
    windows_and_blocks_persist,
    a_failing_command_fails_alone_in_its_batch,
    items_are_numbered_per_visitor_and_a_key_stores_once,
    streams_and_profiles_survive_a_reopen_and_numbering_continues,
    a_cursor_moves_forward_only_and_survives_a_reopen,
    instances_sending_for_an_account_count_until_they_withdraw_or_expire,
);
