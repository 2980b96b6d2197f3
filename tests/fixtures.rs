//! Every registered channel × every recorded webhook in `fixtures/<kind>/`: the fixture runs
//! through the webhook steps (`chatgate_testkit::handle`, as the server does) for the account
//! built from `fixtures/<kind>/account.json`, and its envelopes must equal the reviewed snapshot
//! `fixtures/<kind>/<name>.snap`. What each channel's set must contain is data below.
//!
//! A changed output leaves `<name>.snap.new` beside the fixture (not under CI): review it with
//! `cargo insta review`, or accept with `INSTA_UPDATE=always` and read the `git diff`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use chatgate::registry::CHANNELS;
use chatgate_testkit::snapshot::assert_envelopes;
use chatgate_testkit::{fixture_kinds, fixtures, handle, kind_of, test_account};
use http::HeaderMap;

/// What one channel's fixture set must hold, beyond matching its snapshots.
struct Expect {
    kind: &'static str,
    /// At least this many fixtures.
    at_least: usize,
    /// Fixtures that must be there by name.
    required: &'static [&'static str],
    /// Events each fixture gives, when the channel fixes it (one Telegram update is one event).
    events_each: Option<usize>,
}

const EXPECT: &[Expect] = &[
    Expect { kind: "telegram", at_least: 20, required: &[], events_each: Some(1) },
    Expect {
        kind: "whatsapp",
        at_least: 27,
        required: &[
            "text",
            "image",
            "audio",
            "voice",
            "video",
            "document",
            "sticker",
            "location",
            "contacts",
            "interactive-button-reply",
            "interactive-list-reply",
            "template-quick-reply-button",
            "reaction",
            "reaction-removed",
            "reply",
            "forwarded",
            "referral",
            "message-edited",
            "message-deleted",
            "batch",
            "status-sent",
            "status-delivered",
            "status-read",
            "status-failed",
            "errors",
            "unsupported-type",
            "handshake",
        ],
        events_each: None,
    },
    Expect { kind: "messenger", at_least: 30, required: &[], events_each: None },
    Expect { kind: "instagram", at_least: 20, required: &[], events_each: None },
    Expect { kind: "viber", at_least: 19, required: &[], events_each: None },
    Expect { kind: "vk", at_least: 25, required: &[], events_each: None },
    Expect {
        kind: "web",
        at_least: 6,
        required: &["message-text", "page-view", "feedback-5", "receipts"],
        events_each: None,
    },
];

#[test]
fn every_registered_channel_has_fixtures_and_every_fixture_folder_a_channel() {
    let registered: Vec<String> = CHANNELS.iter().map(|f| kind_of(*f)).collect();
    let mut expected: Vec<&str> = EXPECT.iter().map(|e| e.kind).collect();
    let mut sorted = registered.clone();
    sorted.sort();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "EXPECT names every registered channel once");
    assert_eq!(fixture_kinds(), sorted, "fixtures/ has one folder per registered channel");
}

#[test]
fn every_fixture_of_every_channel_matches_its_snapshot() {
    let mut failed = Vec::new();
    let mut checked = 0;
    for factory in CHANNELS {
        let kind = kind_of(*factory);
        let expect = EXPECT.iter().find(|e| e.kind == kind).unwrap_or_else(|| panic!("{kind} is not in EXPECT"));
        let adapter = test_account(*factory);
        let all = fixtures(&kind);
        assert!(all.len() >= expect.at_least, "{kind}: {} fixtures, expected at least {}", all.len(), expect.at_least);
        for name in expect.required {
            assert!(all.iter().any(|f| f.name == *name), "{kind}: fixture `{name}` is missing");
        }
        for fixture in &all {
            let at = format!("{kind}/{}", fixture.name);
            let inbound = handle(&*adapter, &fixture.request()).unwrap_or_else(|e| {
                let mut signed = HeaderMap::new();
                adapter.sign(&mut signed, fixture.body.clone());
                panic!("{at}: {e:?} (signed for the test account it would carry {signed:?})")
            });
            for event in &inbound.events {
                assert!(event.dedup_key.is_some(), "{at}: every event is deduplicable");
            }
            if let Some(n) = expect.events_each {
                assert_eq!(inbound.events.len(), n, "{at}: events per fixture");
            }
            if catch_unwind(AssertUnwindSafe(|| assert_envelopes(fixture, &inbound))).is_err() {
                failed.push(at);
            }
            checked += 1;
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {checked} fixtures differ from their snapshots: {failed:?}\n\
         review the `.snap.new` files beside them (`cargo insta review`, or INSTA_UPDATE=always and git diff)",
        failed.len()
    );
    assert!(checked >= 150, "only {checked} fixtures checked");
}
