//! The dedup repair sweep against a real `nats-server`: the state a crash between publishing an
//! inbound event and writing its dedup key leaves behind — the event on the stream with
//! `Nats-Msg-Id: d-<h>`, no `dedup[h]` — is made on purpose here, and the provider's redelivery
//! after JetStream's duplicate window must still be a duplicate.

mod connect;

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use chatgate_model::{Channel, Event, EventKind, Message};
use chatgate_queue::{InboundRecord, Queue};
use chatgate_queue_nats::{NatsOptions, NatsQueue};
use chatgate_testkit::nats::NatsServers;
use connect::connect;
use sha2::{Digest, Sha256};

const PREFIX: &str = "sweeptest";

fn options(nats: &NatsServers, window: Duration) -> NatsOptions {
    let mut options = NatsOptions::new(nats.nodes[0].url());
    options.prefix = PREFIX.into();
    options.duplicate_window = window;
    options
}

fn event(text: &str) -> Event {
    let mut e = Event::new(EventKind::Message, Channel::from_static("telegram"), "main", "42");
    e.message = Some(Message { external_id: format!("m-{text}"), text: Some(text.into()), ..Message::default() });
    e
}

fn record(key: &str, text: &str) -> InboundRecord {
    InboundRecord { dedup_key: Some(key.to_owned()), event: event(text) }
}

/// The dedup KV key of `key` on the Telegram account `main`, as stored on NATS: 40 hex
/// characters of SHA-256 over channel, account and key, each ended by NUL.
fn dedup_hash(key: &str) -> String {
    let mut h = Sha256::new();
    for part in ["telegram", "main", key] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..20])
}

/// Publishes an event straight onto the stream, as an append does in its step 2, optionally
/// with a message id; the stream sequence and whether JetStream took it as a duplicate.
async fn publish(js: &jetstream::Context, text: &str, msg_id: Option<&str>) -> (u64, bool) {
    let body = serde_json::to_string(&event(text)).unwrap();
    let mut message = PublishMessage::build().payload(body.into());
    if let Some(id) = msg_id {
        message = message.message_id(id);
    }
    let ack = js.send_publish(format!("{PREFIX}.events.telegram.main"), message).await.unwrap().await.unwrap();
    (ack.sequence, ack.duplicate)
}

async fn stored(q: &NatsQueue, text: &str) -> usize {
    let events = q.read_events(0, 1000).await.unwrap();
    events.iter().filter(|e| e.json.contains(&format!("\"text\":\"{text}\""))).count()
}

#[tokio::test]
async fn an_event_left_without_its_key_is_repaired_when_a_queue_opens_and_its_redelivery_stays_a_duplicate() {
    let nats = NatsServers::single();
    let window = Duration::from_secs(2);
    // The first instance creates the stream and buckets, then dies.
    drop(connect(options(&nats, window)).await);
    let js = jetstream::new(async_nats::connect(nats.nodes[0].url()).await.unwrap());
    let dedup = js.get_key_value(format!("{PREFIX}_dedup")).await.unwrap();
    let h = dedup_hash("update:1");
    // What the crash left: the event with its message id, no key. Around it, events the sweep
    // must leave alone: one without a message id, one with a status event's id.
    publish(&js, "plain", None).await;
    let (seq, _) = publish(&js, "orphan", Some(&format!("d-{h}"))).await;
    publish(&js, "status", Some("st-0190-delivered")).await;
    assert!(dedup.get(&h).await.unwrap().is_none());

    let q = connect(options(&nats, window)).await;
    assert_eq!(q.stats().dedup_repaired, 1, "the sweep at open wrote exactly the missing key");
    assert_eq!(dedup.get(&h).await.unwrap().as_deref(), Some(seq.to_string().as_bytes()));
    // A second instance sweeps from the stored position: nothing left to repair.
    assert_eq!(connect(options(&nats, window)).await.stats().dedup_repaired, 0);

    // The provider redelivers after JetStream's duplicate window: the key catches it.
    tokio::time::sleep(window + Duration::from_millis(500)).await;
    let out = q.append_inbound(vec![record("update:1", "orphan")]).await.unwrap();
    assert_eq!((out.seqs.len(), out.duplicates), (0, 1));
    assert_eq!(stored(&q, "orphan").await, 1);
    // Without the key it would have been stored again: JetStream has forgotten the message id.
    let (_, duplicate) = publish(&js, "orphan", Some(&format!("d-{h}"))).await;
    assert!(!duplicate, "the duplicate window is over");
}

#[tokio::test]
async fn a_running_queue_repairs_a_missing_key_before_the_duplicate_window_ends() {
    let nats = NatsServers::single();
    let window = Duration::from_secs(4);
    let q = connect(options(&nats, window)).await;
    let out = q.append_inbound(vec![record("update:1", "before")]).await.unwrap();
    assert_eq!(out.seqs.len(), 1);
    // Another instance crashes between its publish and its key while this one runs.
    let js = jetstream::new(async_nats::connect(nats.nodes[0].url()).await.unwrap());
    let h = dedup_hash("update:2");
    publish(&js, "orphan", Some(&format!("d-{h}"))).await;
    // Past the duplicate window only the key can catch the redelivery: the background sweep
    // (every quarter of the window) must have written it by then.
    tokio::time::sleep(window + Duration::from_millis(500)).await;
    let out = q.append_inbound(vec![record("update:2", "orphan"), record("update:1", "before")]).await.unwrap();
    assert_eq!((out.seqs.len(), out.duplicates), (0, 2));
    assert_eq!(stored(&q, "orphan").await, 1);
    assert_eq!(q.stats().dedup_repaired, 1);
}

#[tokio::test]
async fn a_shorter_duplicate_window_on_the_stream_is_widened_and_a_longer_one_kept() {
    let nats = NatsServers::single();
    let js = jetstream::new(async_nats::connect(nats.nodes[0].url()).await.unwrap());
    let (nats, js) = (&nats, &js);
    let window = |secs| async move {
        drop(connect(options(nats, Duration::from_secs(secs))).await);
        let mut stream = js.get_stream(format!("{PREFIX}_EVENTS")).await.unwrap();
        stream.info().await.unwrap().config.duplicate_window
    };
    assert_eq!(window(2).await, Duration::from_secs(2));
    assert_eq!(window(60).await, Duration::from_secs(60));
    assert_eq!(window(5).await, Duration::from_secs(60));
    // Outside 2..=3600 seconds the options are refused, naming the setting.
    for secs in [1, 3601] {
        let err = NatsQueue::connect(options(nats, Duration::from_secs(secs))).await.unwrap_err();
        assert!(err.to_string().contains("queue.duplicate_window_seconds"), "{err}");
    }
}
