//! "No event without content", one property over every registered channel × every fixture in
//! `fixtures/<kind>/` and every payload of the shared real-webhook corpus: each event is a usable
//! message (something to show; every attachment has a `url` or a `media` reference its account
//! resolves through `/v1/media/{ref}`), another kind carrying its own payload, or `unsupported`
//! with the raw object kept; and an event that names a sender has a usable `chat_id` and
//! `customer.id`. The property itself is `chatgate_testkit::content::check_event`.

use chatgate::registry::CHANNELS;
use chatgate_adapter::Inbound;
use chatgate_testkit::content::check_event;
use chatgate_testkit::{
    account_settings, fixtures, handle, has_provider_webhooks, kind_of, post_signed, real_webhooks, test_account,
};

fn check_all(at: &str, adapter: &dyn chatgate_adapter::Adapter, inbound: &Inbound, failures: &mut Vec<String>) {
    for (i, item) in inbound.events.iter().enumerate() {
        if let Err(reason) = check_event(adapter, &item.event) {
            failures.push(format!("{at} event {i} ({:?}): {reason}", item.event.kind));
        }
    }
}

#[test]
fn every_event_of_every_fixture_and_real_payload_is_usable_or_kept_raw() {
    let mut failures = Vec::new();
    let (mut fixtures_checked, mut payloads_checked, mut events) = (0, 0, 0);
    for factory in CHANNELS {
        let kind = kind_of(*factory);
        let adapter = test_account(*factory);
        for fixture in fixtures(&kind) {
            let at = format!("fixtures/{kind}/{}", fixture.name);
            let inbound = handle(&*adapter, &fixture.request()).unwrap_or_else(|e| panic!("{at}: {e:?}"));
            check_all(&at, &*adapter, &inbound, &mut failures);
            events += inbound.events.len();
            fixtures_checked += 1;
        }
        if !has_provider_webhooks(*factory) {
            continue;
        }
        let Some(payloads) = real_webhooks(&kind) else { continue };
        for payload in payloads {
            let at = format!("real-webhooks/{kind}/{}", payload.stem());
            let mut settings = account_settings(&kind);
            // VK checks the community a callback names; the corpus comes from several.
            if let (Some(group), Some(_)) = (payload.json().get("group_id").cloned(), settings.get("group_id")) {
                settings["group_id"] = group;
            }
            let adapter = factory.build("test", settings).unwrap_or_else(|e| panic!("{at}: {e}"));
            let inbound = post_signed(&*adapter, payload.body.clone()).unwrap_or_else(|e| panic!("{at}: {e:?}"));
            check_all(&at, &*adapter, &inbound, &mut failures);
            events += inbound.events.len();
            payloads_checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} events are not usable:\n{}", failures.len(), failures.join("\n"));
    assert!(fixtures_checked >= 150 && events >= 200, "only {fixtures_checked} fixtures, {events} events checked");
    if chatgate_testkit::real_webhooks_dir().is_some() {
        assert!(payloads_checked >= 100, "only {payloads_checked} real payloads checked");
    }
}
