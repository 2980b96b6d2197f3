//! The shared corpus of real WhatsApp webhooks: every payload, re-signed with our test secret,
//! must verify and parse, and yield exactly one event per `messages[]`, `statuses[]` and
//! `errors[]` item (one `unsupported` event per change that has none of them).

use chatgate_adapter::{ChannelFactory, WebhookRequest};
use chatgate_channel_whatsapp::FACTORY;
use chatgate_model::EventKind;
use chatgate_testkit::{handle, real_webhooks, workspace_root};
use http::{HeaderMap, Method};
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
    let Some(corpus) = real_webhooks("whatsapp") else {
        eprintln!("shared real-webhook corpus not present; nothing to check");
        return;
    };
    assert!(!corpus.is_empty(), "the whatsapp corpus folder is empty");
    let settings: Value =
        serde_json::from_slice(&std::fs::read(workspace_root().join("fixtures/whatsapp/account.json")).unwrap())
            .unwrap();
    let adapter = FACTORY.build("real", settings).unwrap();
    let mut total = 0;
    for webhook in &corpus {
        let name = webhook.path.display();
        let mut headers = HeaderMap::new();
        let body = adapter.sign(&mut headers, webhook.body.clone());
        let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body };
        let inbound = handle(&*adapter, &request).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let json: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        assert_eq!(inbound.events.len(), expected_events(&json), "{name}: events lost or invented");
        for e in &inbound.events {
            assert!(e.dedup_key.is_some(), "{name}: every WhatsApp event has a dedup key");
            if e.event.kind == EventKind::Unsupported {
                assert!(e.event.raw.is_some(), "{name}: unsupported events keep the raw object");
            }
        }
        let kinds: Vec<_> = inbound.events.iter().map(|e| e.event.kind).collect();
        eprintln!("{name}: {kinds:?}");
        total += inbound.events.len();
    }
    eprintln!("{} real payloads, {total} events", corpus.len());
}

/// What the corpus payloads we model turn into (one spot check per kind).
#[test]
fn real_payloads_become_the_expected_kinds() {
    let Some(corpus) = real_webhooks("whatsapp") else {
        eprintln!("shared real-webhook corpus not present; nothing to check");
        return;
    };
    let settings: Value =
        serde_json::from_slice(&std::fs::read(workspace_root().join("fixtures/whatsapp/account.json")).unwrap())
            .unwrap();
    let adapter = FACTORY.build("real", settings).unwrap();
    let kinds_of = |file: &str| -> Option<Vec<EventKind>> {
        let webhook = corpus.iter().find(|w| w.path.file_name().is_some_and(|n| n == file))?;
        let request =
            WebhookRequest { method: &Method::POST, headers: &HeaderMap::new(), query: None, body: &webhook.body };
        Some(adapter.parse(&request).unwrap().events.iter().map(|e| e.event.kind).collect())
    };
    use EventKind::*;
    for (file, kinds) in [
        ("text.json", vec![Message]),
        ("voice.json", vec![Message]),
        ("contacts.json", vec![Message]),
        ("interactive-button-reply.json", vec![Postback]),
        ("template-quick-reply-button.json", vec![Postback]),
        ("reaction-removed.json", vec![Reaction]),
        ("message-edited.json", vec![MessageEdited]),
        ("message-deleted-revoke.json", vec![MessageDeleted]),
        ("status-failed.json", vec![Status]),
        ("unsupported-type.json", vec![Unsupported]),
        ("system-identity-change.json", vec![Unsupported]),
    ] {
        match kinds_of(file) {
            Some(actual) => assert_eq!(actual, kinds, "{file}"),
            None => eprintln!("{file} not in the corpus; skipped"),
        }
    }
}
