//! Reviewed snapshots of the envelopes a fixture gives, stored with insta beside the fixture.
//!
//! `fixtures/<kind>/<name>.snap` holds `{"events": [{"dedup_key", "event"}], "reply"}` as JSON,
//! with each event's `id` and `received_at` redacted to `"[id]"` and `"[received_at]"` by insta
//! redactions. `reply` is `null` for an empty answer, else `{"text": "..."}`.
//!
//! A changed output fails the test and, outside CI, leaves `<name>.snap.new` beside the fixture
//! for review: `cargo insta review` (with cargo-insta), or `INSTA_UPDATE=always` and `git diff`.
//! Under `CI=true` insta never writes a file; this module also refuses to run there with
//! `INSTA_UPDATE` or `INSTA_FORCE_PASS` set, so that CI cannot accept a snapshot.

use std::fs;
use std::path::PathBuf;

use chatgate_adapter::{Inbound, Reply};
use serde_json::{Value, json};

use crate::Fixture;

/// Whether `CI` says we run in CI (`true` or `1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The reply as snapshot JSON: `null` when empty, else `{"text": ...}`.
pub fn reply_json(reply: &Reply) -> Value {
    match reply {
        Reply::Empty => Value::Null,
        Reply::Text(text) => json!({ "text": text }),
    }
}

/// What a snapshot stores of `inbound`, before redaction.
pub fn envelopes(inbound: &Inbound) -> Value {
    let events: Vec<Value> =
        inbound.events.iter().map(|e| json!({ "dedup_key": e.dedup_key, "event": e.event })).collect();
    json!({ "events": events, "reply": reply_json(&inbound.reply) })
}

/// `<dir>/<name>.snap`, the reviewed snapshot of a fixture.
pub fn snapshot_path(fixture: &Fixture) -> PathBuf {
    fixture.dir.join(format!("{}.snap", fixture.name))
}

/// Compares what `inbound` stores with the fixture's reviewed snapshot (insta).
pub fn assert_envelopes(fixture: &Fixture, inbound: &Inbound) {
    refuse_updates_in_ci();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(&fixture.dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(fixture.body_path());
    settings.bind(|| {
        insta::assert_json_snapshot!(fixture.name.as_str(), envelopes(inbound), {
            ".events[].event.id" => "[id]",
            ".events[].event.received_at" => "[received_at]",
        });
    });
}

/// The reviewed snapshot of a fixture as JSON (ids and receive times still redacted).
pub fn stored_envelopes(fixture: &Fixture) -> Value {
    let path = snapshot_path(fixture);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // An insta file: `---`, a YAML header, `---`, then the snapshot.
    let body = text
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .map(|(_, body)| body)
        .unwrap_or_else(|| panic!("{} has no insta header", path.display()));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// In CI a snapshot must be compared, never written or waved through.
fn refuse_updates_in_ci() {
    if !in_ci() {
        return;
    }
    for var in ["INSTA_UPDATE", "INSTA_FORCE_PASS", "INSTA_FORCE_UPDATE_SNAPSHOTS"] {
        let value = std::env::var(var).unwrap_or_default();
        assert!(value.is_empty() || value == "no", "{var}={value} under CI=true: CI must not accept snapshots");
    }
}
