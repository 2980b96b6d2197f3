//! The shared corpus of real WhatsApp webhooks: every payload, re-signed with our test secret,
//! must verify and parse, and yield exactly one event per `messages[]`, `statuses[]` and
//! `errors[]` item (one `unsupported` event per change that has none of them). (The kinds the
//! known payloads become: `tests/real_webhooks.rs` of the `chatgate` package.)

use chatgate_channel_whatsapp::FACTORY;
use chatgate_testkit::{post_signed, real_webhooks, test_account};
use serde_json::Value;

/// How many events a payload must give, counted on the JSON independently of the parser.
fn expected_events(body: &Value) -> usize {
    if body["object"] != "whatsapp_business_account" {
        return 1;
    }
    let entries = body["entry"].as_array().map(Vec::as_slice).unwrap_or_default();
    entries
        .iter()
        .flat_map(|entry| entry["changes"].as_array().map(Vec::as_slice).unwrap_or_default())
        .map(|change| {
            let value = &change["value"];
            let items: usize =
                ["messages", "statuses", "errors"].iter().map(|k| value[*k].as_array().map_or(0, Vec::len)).sum();
            if change["field"] == "messages" && items > 0 { items } else { 1 }
        })
        .sum()
}

#[test]
fn every_real_payload_parses_without_losing_an_item() {
    let Some(corpus) = real_webhooks("whatsapp") else { return };
    let adapter = test_account(&FACTORY);
    for webhook in &corpus {
        let name = webhook.path.display();
        let inbound = post_signed(&*adapter, webhook.body.clone()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(inbound.events.len(), expected_events(&webhook.json()), "{name}: events lost or invented");
    }
}
