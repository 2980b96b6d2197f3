//! Connecting a test's queue to the nats-server the test started.

use std::time::Duration;

use chatgate_queue_nats::{NatsOptions, NatsQueue};

/// Connects a new queue (a new "instance"), retrying while JetStream starts up.
pub async fn connect(options: NatsOptions) -> NatsQueue {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match NatsQueue::connect(options.clone()).await {
            Ok(q) => return q,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("NATS not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("connecting to NATS: {e}"),
        }
    }
}
