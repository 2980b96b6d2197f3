//! Every registered channel × its folder of the shared real-webhook corpus
//! (`$CHATGATE_REAL_WEBHOOKS`, else `../shared/real-webhooks`; under `CI=true` it must be there).
//! Each payload, re-signed for the channel's test account, must be accepted; every event it gives
//! carries a dedup key, and an `unsupported` one keeps the raw object. What the known payloads
//! must become is data below. Channel-specific checks (items not lost, ids, details) stay in each
//! channel crate's `tests/real_webhooks.rs`.

use chatgate::registry::CHANNELS;
use chatgate_model::EventKind::{self, *};
use chatgate_testkit::corpus::corpus_kinds;
use chatgate_testkit::{account_settings, has_provider_webhooks, kind_of, post_signed, real_webhooks};
use serde_json::Value;

/// What one channel's corpus folder must hold.
struct Expect {
    kind: &'static str,
    /// The number of payloads, when the folder is pinned to exactly these.
    payloads: Option<usize>,
    /// Settings of the test account taken from each payload: (settings key, payload key).
    /// VK checks the `group_id` a callback names, and the corpus comes from several communities.
    from_payload: &'static [(&'static str, &'static str)],
    /// File stem → the kinds of the events it gives, in order. Every stem listed must be there.
    kinds: &'static [(&'static str, &'static [EventKind])],
}

const EXPECT: &[Expect] = &[
    Expect {
        kind: "telegram",
        payloads: None,
        from_payload: &[],
        kinds: &[
            ("animation-gif", &[Message]),
            ("audio-mp3", &[Message]),
            ("callback-query-inaccessible-message", &[Postback]),
            ("callback-query-inline-message", &[Postback]),
            ("callback-query-with-message", &[Postback]),
            ("dice-emoji", &[Unsupported]),
            ("document-pdf", &[Message]),
            ("edited-message-text", &[MessageEdited]),
            ("forwarded-from-channel", &[Message]),
            ("forwarded-from-user", &[Message]),
            ("forwarded-sticker", &[Message]),
            ("inline-query-numeric-id", &[Unsupported]),
            ("message-reaction", &[Reaction]),
            ("my-chat-member-kicked-bot-blocked", &[CustomerUnsubscribed]),
            ("photo-with-caption", &[Message]),
            ("pinned-message-service", &[Unsupported]),
            ("private-text-message", &[Message]),
            ("reply-to-message-command", &[Message]),
            ("sticker", &[Message]),
            ("supergroup-command-reply-to-story", &[Message]),
            ("text-with-entities", &[Message]),
            ("unknown-update-kind", &[Unsupported]),
            ("video", &[Message]),
            ("voice-ogg", &[Message]),
        ],
    },
    Expect {
        kind: "whatsapp",
        payloads: None,
        from_payload: &[],
        kinds: &[
            ("text", &[Message]),
            ("voice", &[Message]),
            ("contacts", &[Message]),
            ("interactive-button-reply", &[Postback]),
            ("template-quick-reply-button", &[Postback]),
            ("reaction-removed", &[Reaction]),
            ("message-edited", &[MessageEdited]),
            ("message-deleted-revoke", &[MessageDeleted]),
            ("status-failed", &[Status]),
            ("unsupported-type", &[Unsupported]),
            ("system-identity-change", &[Unsupported]),
        ],
    },
    Expect {
        kind: "messenger",
        payloads: Some(31),
        from_payload: &[],
        kinds: &[
            ("batched-two-entries-page-changes", &[Unsupported, Unsupported]),
            ("delivery-receipt", &[Status]),
            ("delivery-watermark-only", &[Status]),
            ("echo-page-sent", &[Status]),
            ("echo-template", &[Status]),
            ("read-receipt", &[Status]),
            ("standby-echo", &[Status]),
            ("fallback-attachment", &[Message]),
            ("image-attachment", &[Message]),
            ("location-attachment", &[Message]),
            ("multi-attachment-image-fallback-location", &[Message]),
            ("reply-to-message", &[Message]),
            ("signed-text-sha1-raw-body", &[Message]),
            ("sticker-thumbs-up", &[Message]),
            ("sticker", &[Message]),
            ("text-nonascii-nlp", &[Message]),
            ("text", &[Message]),
            ("message-deleted", &[MessageDeleted]),
            ("message-edit", &[MessageEdited]),
            ("optin", &[CustomerSubscribed]),
            ("referral", &[CustomerSubscribed]),
            ("referral-ad", &[CustomerSubscribed]),
            ("postback", &[Postback]),
            ("postback-get-started-referral", &[Postback]),
            ("quick-reply", &[Postback]),
            ("reaction-react", &[Reaction]),
            ("reaction-unreact", &[Reaction]),
            ("policy-enforcement-block", &[Unsupported]),
            ("unknown-event-type", &[Unsupported]),
            ("unsupported-message", &[Unsupported]),
            ("wrong-object-type", &[Unsupported]),
        ],
    },
    Expect {
        kind: "instagram",
        payloads: Some(10),
        from_payload: &[],
        kinds: &[
            ("comments-change-non-dm", &[Unsupported]),
            ("mentions-change-non-dm", &[Unsupported]),
            ("unsupported-attachment", &[Unsupported]),
            // A restfb fixture of an Instagram story reply in a `page` envelope: not read as Instagram.
            ("story-reply-page-envelope", &[Unsupported]),
            ("meta-dashboard-test-text", &[Message]),
            ("post-share-doc", &[Message]),
            ("share-attachment", &[Message]),
            ("story-mention", &[Message]),
            ("message-unsent-is-deleted", &[MessageDeleted]),
            ("seen", &[Status]),
        ],
    },
    Expect {
        kind: "viber",
        payloads: Some(12),
        from_payload: &[],
        kinds: &[
            ("client-status-payment", &[Unsupported]),
            ("conversation-started", &[CustomerSubscribed]),
            ("delivered", &[Status]),
            ("failed", &[Status]),
            ("message-picture", &[Message]),
            ("message-text-unicode", &[Message]),
            ("message-text", &[Message]),
            ("seen", &[Status]),
            ("subscribed", &[CustomerSubscribed]),
            ("unsubscribed", &[CustomerUnsubscribed]),
            // The `set_webhook` probe: answered, no event.
            ("webhook-bigint-token-raw", &[]),
            ("webhook-signed-raw-body", &[]),
        ],
    },
    // What each VK payload becomes is read from the payload itself: crates/channel-vk/tests/real_webhooks.rs.
    Expect { kind: "vk", payloads: None, from_payload: &[("group_id", "group_id")], kinds: &[] },
];

#[test]
fn the_corpus_has_a_folder_for_every_registered_channel_and_no_other() {
    let Some(folders) = corpus_kinds() else { return };
    // Channels whose provider is the gateway itself (the web widget) receive no provider webhooks:
    // they have no corpus (their requests are covered by fixtures/web and tests/web.rs).
    let mut registered: Vec<String> =
        CHANNELS.iter().filter(|f| has_provider_webhooks(**f)).map(|f| kind_of(*f)).collect();
    registered.sort();
    assert_eq!(folders, registered);
    let mut expected: Vec<&str> = EXPECT.iter().map(|e| e.kind).collect();
    expected.sort_unstable();
    assert_eq!(expected, registered, "EXPECT names every registered channel once");
}

#[test]
fn every_real_payload_of_every_channel_is_accepted_as_expected() {
    let mut checked = 0;
    for factory in CHANNELS.iter().filter(|f| has_provider_webhooks(**f)) {
        let kind = kind_of(*factory);
        let expect = EXPECT.iter().find(|e| e.kind == kind).unwrap_or_else(|| panic!("{kind} is not in EXPECT"));
        let Some(payloads) = real_webhooks(&kind) else { return };
        if let Some(n) = expect.payloads {
            assert_eq!(payloads.len(), n, "{kind}: the corpus changed; update EXPECT");
        }
        for (stem, _) in expect.kinds {
            assert!(payloads.iter().any(|p| p.stem() == *stem), "{kind}/{stem} is not in the corpus");
        }
        for payload in &payloads {
            let at = format!("{kind}/{}", payload.stem());
            let mut settings = account_settings(&kind);
            let json: Value = payload.json();
            for (key, from) in expect.from_payload {
                if let Some(value) = json.get(*from) {
                    settings[*key] = value.clone();
                }
            }
            let adapter = factory.build("test", settings).unwrap_or_else(|e| panic!("{at}: {e}"));
            let inbound = post_signed(&*adapter, payload.body.clone()).unwrap_or_else(|e| panic!("{at}: {e:?}"));
            for e in &inbound.events {
                assert!(e.dedup_key.as_deref().is_some_and(|k| !k.is_empty()), "{at}: no dedup key");
                if e.event.kind == Unsupported {
                    assert!(e.event.raw.is_some(), "{at}: unsupported keeps the raw object");
                }
            }
            if let Some((_, kinds)) = expect.kinds.iter().find(|(stem, _)| *stem == payload.stem()) {
                let got: Vec<EventKind> = inbound.events.iter().map(|e| e.event.kind).collect();
                assert_eq!(&got, kinds, "{at}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 100, "only {checked} real payloads checked");
}
