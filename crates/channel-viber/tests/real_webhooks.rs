//! The shared corpus of real Viber callbacks (`$CHATGATE_REAL_WEBHOOKS/viber`), re-signed with a
//! test token: what each says survives into the events. (That every payload is accepted and
//! becomes the expected kinds: `tests/real_webhooks.rs` of the `chatgate` package.)

use chatgate_adapter::ChannelFactory;
use chatgate_channel_viber::FACTORY;
use chatgate_model::{AttachmentKind, Status};
use chatgate_testkit::{post_signed, real_webhooks};

#[test]
fn real_payload_details_survive() {
    let Some(payloads) = real_webhooks("viber") else { return };
    let adapter = FACTORY.build("real", serde_json::json!({"auth_token": "t", "sender_name": "Corpus"})).unwrap();
    let parse = |file: &str| {
        let payload = payloads.iter().find(|p| p.path.ends_with(file)).unwrap_or_else(|| panic!("{file} missing"));
        let mut inbound = post_signed(&*adapter, payload.body.clone()).unwrap();
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
