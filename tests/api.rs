//! The public contract: the envelope's JSON Schema is committed and current, and envelopes
//! written by earlier versions (golden files) still load.

use chatgate_model::Event;
use chatgate_testkit::workspace_root;

#[test]
fn committed_schema_matches_the_types() {
    let path = workspace_root().join("schema/envelope-v1.json");
    let generated = chatgate::commands::schema().unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("schema/envelope-v1.json (UPDATE_GOLDEN=1 writes it)");
    assert!(committed == generated, "the envelope types changed: review and commit the schema (UPDATE_GOLDEN=1)");
}

#[test]
fn every_golden_envelope_still_loads() {
    let root = workspace_root().join("fixtures");
    let mut loaded = 0;
    for channel in std::fs::read_dir(&root).unwrap() {
        let channel = channel.unwrap().path();
        if !channel.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&channel).unwrap() {
            let path = file.unwrap().path();
            if !path.to_string_lossy().ends_with(".golden.json") {
                continue;
            }
            let golden: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for e in golden["events"].as_array().unwrap() {
                let mut event = e["event"].clone();
                event["id"] = "0190e5a2-0000-7000-8000-000000000000".into();
                event["received_at"] = "2026-01-01T00:00:00Z".into();
                let parsed: Event =
                    serde_json::from_value(event.clone()).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                assert_eq!(serde_json::to_value(&parsed).unwrap(), event, "{} does not round-trip", path.display());
                loaded += 1;
            }
        }
    }
    assert!(loaded > 20, "only {loaded} golden envelopes found");
}
