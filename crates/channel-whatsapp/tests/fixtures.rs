//! The signature and handshake vectors of WhatsApp, and facts about its recorded webhooks in
//! `fixtures/whatsapp/`. (Every fixture against its reviewed snapshot, and the fixtures the set
//! must contain: `tests/fixtures.rs` of the `chatgate` package.)

use std::sync::Arc;

use chatgate_adapter::{Adapter, ChannelFactory, Reply, WebhookError, WebhookRequest};
use chatgate_channel_whatsapp::FACTORY;
use chatgate_model::{EventKind, Status as DeliveryStatus};
use chatgate_testkit::{Fixture, account_settings, fixtures, handle, test_account};
use http::{HeaderMap, HeaderValue, Method};

const SIGNATURE: &str = "x-hub-signature-256";

fn settings() -> serde_json::Value {
    account_settings("whatsapp")
}

fn adapter() -> Arc<dyn Adapter> {
    test_account(&FACTORY)
}

fn fixture(name: &str) -> Fixture {
    chatgate_testkit::fixture("whatsapp", name)
}

#[test]
fn batch_of_three_messages_and_two_statuses_gives_five_events() {
    let inbound = handle(&*adapter(), &fixture("batch").request()).unwrap();
    let kinds: Vec<_> = inbound.events.iter().map(|e| e.event.kind).collect();
    use EventKind::*;
    assert_eq!(kinds, [Message, Message, Status, Message, Status]);
    let keys: Vec<_> = inbound.events.iter().map(|e| e.dedup_key.as_deref().unwrap()).collect();
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 5, "dedup keys must differ: {keys:?}");
    // Each message is attributed to its own sender, named from the contacts of its own change.
    let names: Vec<_> = inbound.events.iter().map(|e| e.event.customer.as_ref().and_then(|c| c.name.clone())).collect();
    assert_eq!(names[0].as_deref(), Some("Erika Mustermann"));
    assert_eq!(names[1].as_deref(), Some("Tomáš Novák"));
    assert_eq!(names[3].as_deref(), Some("Amara Okafor"));
    assert_eq!(inbound.events[4].event.status.as_ref().unwrap().status, DeliveryStatus::Read);
}

#[test]
fn handshake_echoes_the_challenge_only_for_our_token() {
    let adapter = adapter();
    let good = fixture("handshake");
    assert_eq!(handle(&*adapter, &good.request()).unwrap().reply, Reply::Text("1158201444".into()));
    let headers = HeaderMap::new();
    let get =
        |query: &'static str| WebhookRequest { method: &Method::GET, headers: &headers, query: Some(query), body: b"" };
    for query in [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong-token",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=test-verify-toke",
        "hub.mode=subscribe&hub.challenge=1158201444",
        "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=test-verify-token",
    ] {
        assert_eq!(adapter.handshake(&get(query)), Err(WebhookError::HandshakeRefused), "{query}");
    }
}

/// Verifies `body` with the given signature header (or none) against `adapter`.
fn verify(adapter: &dyn Adapter, body: &[u8], signature: Option<&str>) -> Result<(), WebhookError> {
    let mut headers = HeaderMap::new();
    if let Some(s) = signature {
        headers.insert(SIGNATURE, HeaderValue::from_str(s).unwrap());
    }
    adapter.verify(&WebhookRequest { method: &Method::POST, headers: &headers, query: None, body })
}

#[test]
fn signature_vectors() {
    let adapter = adapter();
    let f = fixture("text");
    let good = f.headers.get(SIGNATURE).unwrap().to_str().unwrap().to_owned();
    assert_eq!(verify(&*adapter, &f.body, Some(&good)), Ok(()));

    // One flipped byte in the body.
    let mut flipped = f.body.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 0x01;
    assert_eq!(verify(&*adapter, &flipped, Some(&good)), Err(WebhookError::BadSignature));

    // Missing header.
    assert_eq!(verify(&*adapter, &f.body, None), Err(WebhookError::MissingSignature));

    // Right digest, wrong prefix; no prefix; not hex.
    let hex = good.strip_prefix("sha256=").unwrap();
    assert_eq!(verify(&*adapter, &f.body, Some(&format!("sha1={hex}"))), Err(WebhookError::BadSignature));
    assert_eq!(verify(&*adapter, &f.body, Some(hex)), Err(WebhookError::BadSignature));
    assert_eq!(verify(&*adapter, &f.body, Some("sha256=zz")), Err(WebhookError::BadSignature));

    // The same JSON re-serialised (pretty-printed) no longer verifies: signatures are over raw bytes.
    let value: serde_json::Value = serde_json::from_slice(&f.body).unwrap();
    let reserialised = serde_json::to_vec_pretty(&value).unwrap();
    assert_ne!(reserialised, f.body);
    assert_eq!(verify(&*adapter, &reserialised, Some(&good)), Err(WebhookError::BadSignature));

    // Signed with another app secret.
    let mut other = settings();
    other["app_secret"] = "another-app-secret".into();
    let other = FACTORY.build("other", other).unwrap();
    assert_eq!(verify(&*other, &f.body, Some(&good)), Err(WebhookError::BadSignature));

    // sign() produces what verify() accepts.
    let mut headers = HeaderMap::new();
    let body = adapter.sign(&mut headers, f.body.clone());
    assert_eq!(body, f.body);
    assert_eq!(headers.get(SIGNATURE).unwrap().to_str().unwrap(), good);
}

/// The real signed body from pywa's tests, with its app secret and signature (from the shared corpus).
#[test]
fn real_signed_vector_from_the_shared_corpus() {
    let Some(corpus) = chatgate_testkit::real_webhooks("whatsapp") else { return };
    let real = corpus
        .iter()
        .find(|w| w.path.file_name().is_some_and(|n| n == "signed-text-raw-body.json"))
        .expect("signed-text-raw-body.json in the corpus");
    let secret = real.meta["app_secret"].as_str().expect("app_secret in .meta.json");
    let header = real.meta["headers"]["X-Hub-Signature-256"].as_str().expect("signature in .meta.json");
    assert_eq!(header, "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441");
    let mut s = settings();
    s["app_secret"] = secret.into();
    let adapter = FACTORY.build("real", s).unwrap();
    assert_eq!(verify(&*adapter, &real.body, Some(header)), Ok(()));
    let mut tampered = real.body.clone();
    tampered.push(b'\n');
    assert_eq!(verify(&*adapter, &tampered, Some(header)), Err(WebhookError::BadSignature));
    assert_eq!(verify(&*adapter, &real.body, None), Err(WebhookError::MissingSignature));
    let inbound = adapter
        .parse(&WebhookRequest { method: &Method::POST, headers: &HeaderMap::new(), query: None, body: &real.body })
        .unwrap();
    assert_eq!(inbound.events.len(), 1);
    let message = inbound.events[0].event.message.as_ref().unwrap();
    assert_eq!(message.text.as_deref(), Some("Hey there! I am using PyWa."));
}

#[test]
fn limits_capabilities_and_rates() {
    let adapter = adapter();
    assert_eq!(adapter.facts().max_body_bytes, 3 * 1024 * 1024);
    let caps = adapter.facts().capabilities;
    assert!(caps.native_reply && caps.templates);
    assert_eq!(caps.messaging_window, Some(std::time::Duration::from_secs(24 * 3600)));
    let rates = adapter.facts().rate_limits;
    assert_eq!(rates.per_account, Some(chatgate_adapter::Rate::per_second(80)));
    assert!(rates.per_chat.is_some());
    let limits = adapter.facts().limits;
    assert_eq!(limits.image_bytes, Some(5 * 1024 * 1024));
    assert_eq!(limits.sticker_bytes, Some(500 * 1024));
    let mut qr = settings();
    qr["profile"] = "qr".into();
    let qr = FACTORY.build("qr", qr).unwrap();
    assert_eq!(qr.facts().limits.video_bytes, Some(64 * 1024 * 1024));
}

/// `parse` never panics: every prefix of every fixture body, and each body with one byte
/// changed at a time, gives events or `Malformed`.
#[test]
fn damaged_bodies_never_panic() {
    let adapter = adapter();
    let headers = HeaderMap::new();
    for f in fixtures("whatsapp") {
        let parse = |body: &[u8]| {
            let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body };
            match adapter.parse(&request) {
                Ok(_) | Err(WebhookError::Malformed(_)) => {}
                Err(other) => panic!("{}: unexpected {other:?}", f.name),
            }
        };
        for end in 0..f.body.len() {
            parse(&f.body[..end]);
        }
        for i in 0..f.body.len() {
            for replacement in [b'"', b'1', b'{', b'x'] {
                let mut damaged = f.body.clone();
                damaged[i] = replacement;
                parse(&damaged);
            }
        }
    }
}
