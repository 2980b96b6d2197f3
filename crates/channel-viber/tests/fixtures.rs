//! Viber's signature vectors and what its recorded callbacks in `fixtures/viber/` must survive.
//! (Every fixture against its reviewed snapshot: `tests/fixtures.rs` of the `chatgate` package.)

use std::sync::Arc;

use chatgate_adapter::{Adapter, ChannelFactory, WebhookError, WebhookRequest};
use chatgate_channel_viber::FACTORY;
use chatgate_testkit::{assert_kept_as_unsupported, fixtures, handle, test_account};
use http::{HeaderMap, HeaderValue, Method};

/// Viber's published vector (viber-bot-java `ViberSignatureValidatorTest`, viber-bot-python `test_api.py`).
const VECTOR_BODY: &[u8] = br#"{"event":"webhook","timestamp":4977069964384421269,"message_token":1478683725125}"#;
const VECTOR_TOKEN: &str = "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3";
const VECTOR_SIGNATURE: &str = "d21b343448c8aee33b8e93768ef6ceb64a6ba6163099973a2b8bd028fea510ef";

fn test_adapter() -> Arc<dyn Adapter> {
    test_account(&FACTORY)
}

fn vector_adapter() -> Arc<dyn Adapter> {
    FACTORY.build("vector", serde_json::json!({"auth_token": VECTOR_TOKEN, "sender_name": "Vector"})).unwrap()
}

fn post(headers: &HeaderMap, body: &[u8], adapter: &dyn Adapter) -> Result<chatgate_adapter::Inbound, WebhookError> {
    handle(adapter, &WebhookRequest { method: &Method::POST, headers, query: None, body })
}

fn signed(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-viber-content-signature", HeaderValue::from_str(value).unwrap());
    headers
}

#[test]
fn documented_vector_verifies_and_is_the_webhook_probe() {
    let adapter = vector_adapter();
    let inbound = post(&signed(VECTOR_SIGNATURE), VECTOR_BODY, &*adapter).expect("the documented vector verifies");
    assert!(inbound.events.is_empty(), "the set_webhook probe yields no events");
    assert_eq!(inbound.reply, chatgate_adapter::Reply::Empty);
    // Either case of hex is accepted.
    assert!(post(&signed(&VECTOR_SIGNATURE.to_uppercase()), VECTOR_BODY, &*adapter).is_ok());
}

#[test]
fn vector_against_the_shared_raw_body() {
    let Some(payloads) = chatgate_testkit::real_webhooks("viber") else { return };
    let payload = payloads
        .iter()
        .find(|p| p.path.ends_with("webhook-signed-raw-body.json"))
        .expect("viber/webhook-signed-raw-body.json is in the corpus");
    assert_eq!(payload.body, VECTOR_BODY, "the shared raw body is the documented vector");
    assert_eq!(payload.meta["headers"]["X-Viber-Content-Signature"], VECTOR_SIGNATURE);
    assert!(post(&signed(VECTOR_SIGNATURE), &payload.body, &*vector_adapter()).is_ok());
}

#[test]
fn signature_failures_are_told_apart() {
    let adapter = vector_adapter();
    // Missing header.
    assert_eq!(post(&HeaderMap::new(), VECTOR_BODY, &*adapter), Err(WebhookError::MissingSignature));
    // One flipped body byte.
    let mut flipped = VECTOR_BODY.to_vec();
    flipped[10] ^= 0x01;
    assert_eq!(post(&signed(VECTOR_SIGNATURE), &flipped, &*adapter), Err(WebhookError::BadSignature));
    // The same JSON re-serialised (pretty-printed) does not verify: the signature is over raw bytes.
    let value: serde_json::Value = serde_json::from_slice(VECTOR_BODY).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    assert_eq!(post(&signed(VECTOR_SIGNATURE), &pretty, &*adapter), Err(WebhookError::BadSignature));
    // A wrong secret.
    assert_eq!(post(&signed(VECTOR_SIGNATURE), VECTOR_BODY, &*test_adapter()), Err(WebhookError::BadSignature));
    // A Meta-style prefix, a truncated signature, not hex, empty.
    for bad in [format!("sha256={VECTOR_SIGNATURE}"), VECTOR_SIGNATURE[..63].to_owned(), "zz".repeat(32), String::new()]
    {
        assert_eq!(post(&signed(&bad), VECTOR_BODY, &*adapter), Err(WebhookError::BadSignature), "{bad:?}");
    }
    // A header value that is not visible ASCII.
    let mut headers = HeaderMap::new();
    headers.insert("x-viber-content-signature", HeaderValue::from_bytes(b"d2\xff").unwrap());
    assert_eq!(post(&headers, VECTOR_BODY, &*adapter), Err(WebhookError::BadSignature));
}

#[test]
fn sign_produces_what_verify_accepts() {
    let adapter = vector_adapter();
    let mut headers = HeaderMap::new();
    let body = adapter.sign(&mut headers, VECTOR_BODY.to_vec());
    assert_eq!(body, VECTOR_BODY, "Viber's signature is a header; the body is unchanged");
    assert_eq!(headers["x-viber-content-signature"], VECTOR_SIGNATURE);
}

#[test]
fn only_non_json_is_malformed() {
    let adapter = test_adapter();
    let sign_and_post = |body: &[u8]| {
        let mut headers = HeaderMap::new();
        let body = adapter.sign(&mut headers, body.to_vec());
        post(&headers, &body, &*adapter)
    };
    assert!(matches!(sign_and_post(b"not json"), Err(WebhookError::Malformed(_))));
    assert!(matches!(sign_and_post(b""), Err(WebhookError::Malformed(_))));
    // JSON of shapes chatgate cannot read is kept, never refused or dropped.
    for body in [
        &br#"[1,2,3]"#[..],
        br#"{"no_event":true}"#,
        br#"{"event":"message","message_token":1,"sender":{"id":"u1"}}"#,
        br#"{"event":"message","sender":{"id":"u1"},"message":{"type":"text","text":"no token"}}"#,
        br#"{"event":"message","message_token":4.9e18,"sender":{"id":"u1"},"message":{"type":"text","text":"x"}}"#,
        br#"{"event":"delivered","message_token":5}"#,
        br#"{"event":"message","message_token":7,"sender":{"id":"u1"},"message":{"type":"location"}}"#,
    ] {
        let inbound = sign_and_post(body).unwrap_or_else(|e| panic!("{} refused: {e}", String::from_utf8_lossy(body)));
        assert_kept_as_unsupported(&inbound, body);
    }
}

#[test]
fn truncated_bodies_are_malformed_or_parsed_never_a_panic() {
    let adapter = test_adapter();
    for fixture in fixtures("viber") {
        for cut in 0..fixture.body.len() {
            let body = &fixture.body[..cut];
            let result =
                adapter.parse(&WebhookRequest { method: &Method::POST, headers: &HeaderMap::new(), query: None, body });
            assert!(
                matches!(result, Ok(_) | Err(WebhookError::Malformed(_))),
                "{} cut at {cut}: {result:?}",
                fixture.name
            );
        }
    }
}
