//! Web visitor streams: numbering per visitor, idempotent keys, one write with the echoed
//! events, profiles, and everything surviving a reopen.

use chatgate_model::{Channel, Event, EventKind};
use chatgate_queue::{InboundRecord, VisitorAppend};

use super::Backend;

fn append(visitor: &str, key: Option<&str>, data: &str, events: Vec<InboundRecord>) -> VisitorAppend {
    VisitorAppend {
        account: "web".into(),
        visitor: visitor.into(),
        key: key.map(str::to_owned),
        kind: "message".into(),
        data: data.into(),
        events,
    }
}

fn message(visitor: &str, client_id: &str) -> InboundRecord {
    let event = Event::new(EventKind::Message, Channel::from_static("web"), "web", visitor);
    InboundRecord { dedup_key: Some(format!("web:{visitor}:{client_id}")), event }
}

pub async fn items_are_numbered_per_visitor_and_a_key_stores_once(b: &dyn Backend) {
    let q = b.open().await;
    let first = q.append_visitor(append("v_a", Some("in:1"), "{\"a\":1}", vec![message("v_a", "1")])).await.unwrap();
    assert_eq!((first.item.n, first.duplicate, first.events.seqs.len()), (1, false, 1));
    let other = q.append_visitor(append("v_b", None, "{\"b\":1}", vec![])).await.unwrap();
    assert_eq!(other.item.n, 1, "each visitor counts from 1");
    let second = q.append_visitor(append("v_a", Some("out:x.0"), "{\"a\":2}", vec![])).await.unwrap();
    assert_eq!(second.item.n, 2);

    // The same key again: the first item answers, nothing is written, the event is not stored twice.
    let again =
        q.append_visitor(append("v_a", Some("in:1"), "{\"changed\":1}", vec![message("v_a", "1")])).await.unwrap();
    assert!(again.duplicate);
    assert_eq!((again.item.n, again.item.data.as_str()), (1, "{\"a\":1}"));
    assert_eq!(q.read_events(0, 100).await.unwrap().len(), 1);

    let items = q.read_visitor("web", "v_a", 0, 100).await.unwrap();
    assert_eq!(items.iter().map(|i| i.n).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(q.read_visitor("web", "v_a", 1, 100).await.unwrap()[0].data, "{\"a\":2}");
    assert_eq!(q.read_visitor("other", "v_a", 0, 100).await.unwrap(), vec![], "streams are per account");
    assert_eq!(q.visitor_item("web", "v_a", "out:x.0").await.unwrap().map(|i| i.n), Some(2));
    assert_eq!(q.visitor_item("web", "v_b", "out:x.0").await.unwrap(), None);
}

pub async fn streams_and_profiles_survive_a_reopen_and_numbering_continues(b: &dyn Backend) {
    {
        let q = b.open().await;
        q.set_visitor_profile("web", "v_a", "{\"first\":true}".into()).await.unwrap();
        q.set_visitor_profile("web", "v_a", "{\"first\":false}".into()).await.unwrap();
        for i in 0..3 {
            q.append_visitor(append("v_a", Some(&format!("k{i}")), "{}", vec![])).await.unwrap();
        }
    }
    let q = b.open().await;
    assert_eq!(q.visitor_profile("web", "v_a").await.unwrap().as_deref(), Some("{\"first\":true}"));
    assert_eq!(q.visitor_profile("web", "v_b").await.unwrap(), None);
    let items = q.read_visitor("web", "v_a", 0, 100).await.unwrap();
    assert_eq!(items.iter().map(|i| i.n).collect::<Vec<_>>(), [1, 2, 3], "the profile is not on the stream");
    let next = q.append_visitor(append("v_a", None, "{}", vec![])).await.unwrap();
    assert_eq!(next.item.n, 4);
}
