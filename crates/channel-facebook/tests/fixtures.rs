//! The signature and handshake vectors of Messenger and Instagram, and facts about their
//! recorded webhooks in `fixtures/messenger` and `fixtures/instagram`. (Every fixture against
//! its reviewed snapshot: `tests/fixtures.rs` of the `chatgate` package.)

use std::sync::Arc;

use chatgate_adapter::{Adapter, ChannelFactory, WebhookError, WebhookRequest};
use chatgate_channel_facebook::{INSTAGRAM_FACTORY, MESSENGER_FACTORY};
use chatgate_model::{Channel, EventKind, Status};
use chatgate_testkit::{account_settings, fixture, handle, test_account};
use http::{HeaderMap, HeaderValue, Method};

fn factory(channel: &str) -> &'static dyn ChannelFactory {
    if channel == "messenger" { &MESSENGER_FACTORY } else { &INSTAGRAM_FACTORY }
}

fn adapter(channel: &str) -> Arc<dyn Adapter> {
    test_account(factory(channel))
}

fn post<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest { method: &Method::POST, headers, query: None, body }
}

/// valid, flipped byte, missing header, wrong prefix, malformed hex, re-serialised JSON, wrong secret, legacy SHA-1 only.
fn signature_vectors(channel: &str, name: &str) {
    let adapter = adapter(channel);
    let fixture = fixture(channel, name);
    let valid = fixture.headers.clone();
    assert_eq!(adapter.verify(&post(&valid, &fixture.body)), Ok(()), "valid");

    let mut flipped = fixture.body.clone();
    flipped[10] ^= 0x01;
    assert_eq!(adapter.verify(&post(&valid, &flipped)), Err(WebhookError::BadSignature), "flipped byte");

    let mut missing = valid.clone();
    missing.remove("x-hub-signature-256");
    assert_eq!(adapter.verify(&post(&missing, &fixture.body)), Err(WebhookError::MissingSignature), "missing");

    let hex = valid["x-hub-signature-256"].to_str().unwrap().trim_start_matches("sha256=").to_owned();
    for wrong in [format!("sha1={hex}"), hex.clone(), format!("sha256={}", &hex[..63]), "sha256=zz".to_owned()] {
        let mut headers = valid.clone();
        headers.insert("x-hub-signature-256", HeaderValue::from_str(&wrong).unwrap());
        assert_eq!(adapter.verify(&post(&headers, &fixture.body)), Err(WebhookError::BadSignature), "{wrong}");
    }

    // The same JSON, re-serialised (no `\/` and `\u` escapes, other spacing), is not what Meta signed.
    let value: serde_json::Value = serde_json::from_slice(&fixture.body).unwrap();
    let reserialised = serde_json::to_vec_pretty(&value).unwrap();
    assert_ne!(reserialised, fixture.body);
    assert_eq!(adapter.verify(&post(&valid, &reserialised)), Err(WebhookError::BadSignature), "re-serialised");

    let mut other = account_settings(channel);
    other["app_secret"] = "some-other-app-secret".into();
    let other = factory(channel).build("other", other).unwrap();
    assert_eq!(other.verify(&post(&valid, &fixture.body)), Err(WebhookError::BadSignature), "wrong secret");

    let mut sha1_only = HeaderMap::new();
    sha1_only.insert("x-hub-signature", HeaderValue::from_static("sha1=3daa41999293ff66c3eb313e04bcf77861bb0276"));
    assert_eq!(adapter.verify(&post(&sha1_only, &fixture.body)), Err(WebhookError::MissingSignature), "sha1 only");

    // sign() reproduces Meta's header byte for byte.
    let mut signed = HeaderMap::new();
    let body = adapter.sign(&mut signed, fixture.body.clone());
    assert_eq!(body, fixture.body);
    assert_eq!(signed["x-hub-signature-256"], valid["x-hub-signature-256"]);
}

#[test]
fn messenger_signature_vectors() {
    signature_vectors("messenger", "text-non-ascii");
}

#[test]
fn instagram_signature_vectors() {
    signature_vectors("instagram", "reaction-react");
}

fn handshake_vectors(channel: &str) {
    let adapter = adapter(channel);
    let token = account_settings(channel)["verify_token"].as_str().unwrap().to_owned();
    let headers = HeaderMap::new();
    let get = |query: &str| {
        adapter.handshake(&WebhookRequest { method: &Method::GET, headers: &headers, query: Some(query), body: b"" })
    };
    assert_eq!(
        get(&format!("hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42")),
        Ok(chatgate_adapter::Reply::Text("42".into()))
    );
    assert_eq!(get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=42"), Err(WebhookError::HandshakeRefused));
    assert_eq!(get(&format!("hub.mode=subscribe&hub.verify_token={token}")), Err(WebhookError::HandshakeRefused));
}

#[test]
fn handshakes_echo_the_challenge_only_for_the_verify_token() {
    handshake_vectors("messenger");
    handshake_vectors("instagram");
}

#[test]
fn not_json_is_malformed_but_any_json_is_kept() {
    let adapter = adapter("messenger");
    let mut headers = HeaderMap::new();
    let body = adapter.sign(&mut headers, b"object=page&entry=".to_vec());
    assert!(matches!(adapter.parse(&post(&headers, &body)), Err(WebhookError::Malformed(_))));

    for body in [&b"[]"[..], b"null", b"{\"object\":\"page\",\"entry\":[null, 7, {}]}"] {
        let inbound = adapter.parse(&post(&headers, body)).expect("JSON parses");
        assert!(!inbound.events.is_empty(), "{}", String::from_utf8_lossy(body));
        assert!(inbound.events.iter().all(|e| e.event.kind == EventKind::Unsupported));
    }
}

#[test]
fn both_kinds_declare_their_channel_and_limits() {
    let messenger = adapter("messenger");
    let instagram = adapter("instagram");
    assert_eq!(
        (messenger.channel(), instagram.channel()),
        (Channel::from_static("messenger"), Channel::from_static("instagram"))
    );
    assert_eq!(
        (MESSENGER_FACTORY.channel().as_str(), INSTAGRAM_FACTORY.channel().as_str()),
        ("messenger", "instagram")
    );
    assert_eq!(messenger.facts().limits.text_max_chars, 2000);
    assert_eq!(instagram.facts().limits.text_max_chars, 1000);
    for adapter in [&messenger, &instagram] {
        let limits = adapter.facts().limits;
        assert_eq!(limits.image_bytes, Some(8 * 1024 * 1024));
        assert_eq!(limits.audio_bytes, Some(25 * 1024 * 1024));
        assert_eq!(limits.video_bytes, None);
        assert_eq!(limits.file_bytes, Some(25 * 1024 * 1024));
        assert_eq!(adapter.facts().max_body_bytes, 3 * 1024 * 1024);
        assert_eq!(adapter.facts().rate_limits.per_account, Some(chatgate_adapter::Rate::per_second(300)));
        assert!(adapter.facts().capabilities.native_reply);
    }
}

#[test]
fn settings_are_checked() {
    let mut missing = account_settings("messenger");
    missing.as_object_mut().unwrap().remove("app_secret");
    assert!(MESSENGER_FACTORY.build("x", missing).is_err());
    let mut empty = account_settings("instagram");
    empty["verify_token"] = "".into();
    assert!(INSTAGRAM_FACTORY.build("x", empty).is_err());
    let mut unknown = account_settings("messenger");
    unknown["phone_number_id"] = "1".into();
    assert!(MESSENGER_FACTORY.build("x", unknown).is_err());
}

/// The batch cases the golden files show, asserted as facts too.
#[test]
fn batches_give_one_event_per_item() {
    let adapter = adapter("messenger");
    let batch = fixture("messenger", "batch-two-entries");
    let inbound = handle(&*adapter, &batch.request()).unwrap();
    let kinds: Vec<EventKind> = inbound.events.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Message, EventKind::Message, EventKind::Status, EventKind::Status, EventKind::Postback]
    );
    let delivery = handle(&*adapter, &fixture("messenger", "delivery-mids").request()).unwrap();
    let mids: Vec<_> = delivery
        .events
        .iter()
        .map(|e| e.event.status.as_ref().map(|s| (s.status, s.external_id.clone(), s.up_to)))
        .collect();
    assert_eq!(
        mids,
        [
            Some((Status::Delivered, Some("m_OutboundToA1".to_owned()), None)),
            Some((Status::Delivered, Some("m_OutboundToA2".to_owned()), None))
        ]
    );
}
