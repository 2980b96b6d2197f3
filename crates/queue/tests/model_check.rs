//! Property test against an in-memory model: whatever sequence of appends and reopens,
//! the log holds exactly the acknowledged, non-duplicate events, in order.

use chatgate_model::{Channel, Event, EventKind, Message};
use chatgate_queue::{InboundRecord, Queue, SqliteQueue};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Option<u8>>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(prop::option::of(0u8..12), 1..5).prop_map(Op::Append),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..12)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut q = SqliteQueue::open(dir.path()).unwrap();
            let mut seen = std::collections::HashSet::new();
            let mut model: Vec<String> = Vec::new();
            let mut n = 0u32;
            for op in ops {
                match op {
                    Op::Reopen => {
                        drop(q);
                        q = SqliteQueue::open(dir.path()).unwrap();
                    }
                    Op::Append(keys) => {
                        let mut records = Vec::new();
                        for key in keys {
                            n += 1;
                            let mut e = Event::new(EventKind::Message, Channel::from_static("vk"), "g", "p");
                            e.message = Some(Message { external_id: n.to_string(), ..Message::default() });
                            let key = key.map(|k| format!("event:{k}"));
                            if key.as_ref().is_none_or(|k| seen.insert(k.clone())) {
                                model.push(n.to_string());
                            }
                            records.push(InboundRecord { dedup_key: key, event: e });
                        }
                        q.append_inbound(records).await.unwrap();
                    }
                }
            }
            let stored: Vec<String> = q
                .read_events(0, 10_000)
                .await
                .unwrap()
                .iter()
                .map(|e| serde_json::from_str::<serde_json::Value>(&e.json).unwrap()["message"]["external_id"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(stored, model);
        });
    }
}
