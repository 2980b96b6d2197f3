//! The public contract: the envelope's JSON Schema is committed and current, and envelopes
//! written by earlier versions (the reviewed fixture snapshots) still load.

use chatgate_model::Event;
use chatgate_testkit::snapshot::stored_envelopes;
use chatgate_testkit::{fixture_kinds, fixtures, workspace_root};

#[test]
fn committed_schema_matches_the_types() {
    let path = workspace_root().join("schema/envelope-v1.json");
    let generated = chatgate::commands::schema().unwrap();
    let committed = std::fs::read_to_string(&path).expect("schema/envelope-v1.json is committed");
    // The test never writes the file: a changed public contract is a reviewed, deliberate commit.
    assert!(
        committed == generated,
        "the envelope types changed the public schema: run `cargo run -p chatgate -- schema > schema/envelope-v1.json`, \
         review the diff (additive changes only within v1) and commit it"
    );
}

#[test]
fn every_golden_envelope_still_loads() {
    let mut loaded = 0;
    for kind in fixture_kinds() {
        for fixture in fixtures(&kind) {
            let at = format!("{kind}/{}", fixture.name);
            let stored = stored_envelopes(&fixture);
            for e in stored["events"].as_array().unwrap_or_else(|| panic!("{at}: no events array")) {
                let mut event = e["event"].clone();
                event["id"] = "0190e5a2-0000-7000-8000-000000000000".into();
                event["received_at"] = "2026-01-01T00:00:00Z".into();
                let parsed: Event = serde_json::from_value(event.clone()).unwrap_or_else(|err| panic!("{at}: {err}"));
                assert_eq!(serde_json::to_value(&parsed).unwrap(), event, "{at} does not round-trip");
                loaded += 1;
            }
        }
    }
    assert!(loaded > 20, "only {loaded} golden envelopes found");
}
