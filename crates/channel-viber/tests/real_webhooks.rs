//! The shared corpus of real Viber callbacks (`$CHATGATE_REAL_WEBHOOKS/viber`), re-signed with a
//! test token: every payload parses, and each yields the event it should.

use chatgate_adapter::{ChannelFactory, WebhookRequest};
use chatgate_channel_viber::FACTORY;
use chatgate_model::{AttachmentKind, EventKind, Status};
use chatgate_testkit::{handle, real_webhooks};
use http::{HeaderMap, Method};

/// What each corpus file must become: (file name, event kinds in order).
const EXPECTED: &[(&str, &[EventKind])] = &[
    ("client-status-payment.json", &[EventKind::Unsupported]),
    ("conversation-started.json", &[EventKind::CustomerSubscribed]),
    ("delivered.json", &[EventKind::Status]),
    ("failed.json", &[EventKind::Status]),
    ("message-picture.json", &[EventKind::Message]),
    ("message-text-unicode.json", &[EventKind::Message]),
    ("message-text.json", &[EventKind::Message]),
    ("seen.json", &[EventKind::Status]),
    ("subscribed.json", &[EventKind::CustomerSubscribed]),
    ("unsubscribed.json", &[EventKind::CustomerUnsubscribed]),
    ("webhook-bigint-token-raw.json", &[]),
    ("webhook-signed-raw-body.json", &[]),
];

#[test]
fn every_real_payload_parses_to_its_events() {
    let Some(payloads) = real_webhooks("viber") else {
        eprintln!("note: real-webhook corpus not present (set CHATGATE_REAL_WEBHOOKS); nothing to check");
        return;
    };
    let adapter =
        FACTORY.build("real", serde_json::json!({"auth_token": "corpus-test-token", "sender_name": "Corpus"})).unwrap();
    assert_eq!(payloads.len(), EXPECTED.len(), "the corpus changed: update EXPECTED");
    for payload in &payloads {
        let name = payload.path.file_name().unwrap().to_str().unwrap();
        let (_, kinds) =
            EXPECTED.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} is not in EXPECTED"));
        let mut headers = HeaderMap::new();
        let body = adapter.sign(&mut headers, payload.body.clone());
        let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body };
        let inbound = handle(&*adapter, &request).unwrap_or_else(|e| panic!("{name} was refused: {e}"));
        let got: Vec<EventKind> = inbound.events.iter().map(|e| e.event.kind).collect();
        assert_eq!(&got, kinds, "{name}");
        for e in &inbound.events {
            assert!(e.dedup_key.is_some(), "{name}: every real callback carries a message_token");
            if e.event.kind == EventKind::Unsupported {
                assert!(e.event.raw.is_some(), "{name}: unsupported keeps raw");
            }
        }
    }
}

#[test]
fn real_payload_details_survive() {
    let Some(payloads) = real_webhooks("viber") else {
        eprintln!("note: real-webhook corpus not present; nothing to check");
        return;
    };
    let adapter = FACTORY.build("real", serde_json::json!({"auth_token": "t", "sender_name": "Corpus"})).unwrap();
    let parse = |file: &str| {
        let payload = payloads.iter().find(|p| p.path.ends_with(file)).unwrap_or_else(|| panic!("{file} missing"));
        let mut headers = HeaderMap::new();
        let body = adapter.sign(&mut headers, payload.body.clone());
        let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body };
        let mut inbound = handle(&*adapter, &request).unwrap();
        inbound.events.remove(0)
    };

    // message_token 4912661846655238145 > 2^53: every digit survives into ids and dedup keys.
    let delivered = parse("delivered.json");
    let status = delivered.event.status.as_ref().unwrap();
    assert_eq!(status.external_id.as_deref(), Some("4912661846655238145"));
    assert_eq!(status.status, Status::Delivered);
    assert_eq!(delivered.event.chat_id, "jc9HsWTZ2Yf2NkRZ8KcNug==");
    assert_eq!(delivered.dedup_key.as_deref(), Some("delivered:4912661846655238145:jc9HsWTZ2Yf2NkRZ8KcNug=="));

    assert_eq!(parse("seen.json").event.status.unwrap().status, Status::Read);
    let failed = parse("failed.json").event.status.unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.unwrap().message, "message validation failed");

    let started = parse("conversation-started.json").event;
    assert_eq!(started.source.as_ref().and_then(|s| s.reference.as_deref()), Some("context information"));
    assert_eq!(started.source.unwrap().kind, "deep_link");
    assert_eq!(started.raw.unwrap()["subscribed"], false);

    // The picture (converted from a PHP array in its source) keeps caption, URL and tracking data.
    let picture = parse("message-picture.json").event;
    let message = picture.message.as_ref().unwrap();
    assert_eq!(message.external_id, "4912661846655238145");
    assert_eq!(message.text.as_deref(), Some("Photo description"));
    assert_eq!(message.attachments[0].kind, AttachmentKind::Image);
    assert_eq!(message.attachments[0].url.as_deref(), Some("http://www.images.com/img.jpg"));
    assert_eq!(picture.raw.unwrap()["tracking_data"], "tracking data");

    let unicode = parse("message-text-unicode.json").event;
    assert!(unicode.message.unwrap().text.unwrap().starts_with("批封廟根縄華勢田郎報株聞"));
    assert_eq!(unicode.raw.unwrap()["tracking_data"], "אל תעקוב אחרי!");

    // Viber's own example of a text message also carries a location: it is kept.
    let text = parse("message-text.json").event;
    let message = text.message.unwrap();
    assert_eq!(message.text.as_deref(), Some("a message to the service"));
    assert_eq!(message.location.map(|l| (l.latitude, l.longitude)), Some((50.76891, 6.11499)));
    let customer = text.customer.unwrap();
    assert_eq!((customer.country.as_deref(), customer.language.as_deref()), (Some("UK"), Some("en")));
    assert_eq!(message.sent_at.unwrap().timestamp_millis(), 1457764197627);

    let unsubscribed = parse("unsubscribed.json").event;
    assert_eq!(unsubscribed.customer.unwrap().id, "jc9HsWTZ2Yf2NkRZ8KcNug==");
}
