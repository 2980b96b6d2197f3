//! What `NatsQueue::connect` makes of the streams and buckets (a real `nats-server` on a free
//! loopback port): entries that belong to the retention expire with it, also in buckets an
//! earlier version made to keep them forever; blocks and visitor streams never expire.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use chatgate_queue_nats::{NatsOptions, NatsQueue};
use chatgate_testkit::nats::NatsServers;

#[tokio::test]
async fn outbox_entries_expire_with_the_retention_also_in_buckets_made_to_keep_them_forever() {
    let nats = NatsServers::single();
    let url = nats.nodes[0].url();
    let client = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(client);
    // As an earlier version made it: finished messages kept forever.
    js.create_key_value(kv::Config { bucket: "cgset_msgs".into(), history: 1, ..Default::default() }).await.unwrap();
    let mut options = NatsOptions::new(&url);
    options.prefix = "cgset".into();
    options.retention = Duration::from_secs(9 * 24 * 3600);
    let _queue = NatsQueue::connect(options).await.unwrap();
    let max_age = |bucket: &str| {
        let js = js.clone();
        let name = format!("KV_cgset_{bucket}");
        async move { js.get_stream(name).await.unwrap().info().await.unwrap().config.max_age }
    };
    for bucket in ["msgs", "idem", "extids", "chats", "windows", "dedup"] {
        assert_eq!(max_age(bucket).await, Duration::from_secs(9 * 24 * 3600), "bucket {bucket}");
    }
    for bucket in ["blocks", "visitors", "pending", "holds", "cursors"] {
        assert_eq!(max_age(bucket).await, Duration::ZERO, "bucket {bucket} must keep its entries");
    }
}
