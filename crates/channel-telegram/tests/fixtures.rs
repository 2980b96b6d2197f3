//! The secret-header vectors of Telegram, on the recorded `fixtures/telegram/text-entities`.
//! (Every fixture against its reviewed snapshot: `tests/fixtures.rs` of the `chatgate` package.)

use std::sync::Arc;

use chatgate_adapter::{Adapter, WebhookError, WebhookRequest};
use chatgate_channel_telegram::FACTORY;
use chatgate_testkit::{Fixture, assert_kept_as_unsupported, fixture, handle, test_account};
use http::{HeaderMap, HeaderValue, Method};

fn adapter() -> Arc<dyn Adapter> {
    test_account(&FACTORY)
}

fn text_fixture() -> Fixture {
    fixture("telegram", "text-entities")
}

/// Runs the fixture's body with the secret header set to `value` (or removed).
fn with_secret(value: Option<&[u8]>) -> Result<(), WebhookError> {
    let adapter = adapter();
    let fixture = text_fixture();
    let mut headers = fixture.headers.clone();
    headers.remove("x-telegram-bot-api-secret-token");
    if let Some(v) = value {
        headers.insert("x-telegram-bot-api-secret-token", HeaderValue::from_bytes(v).expect("header value"));
    }
    let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &fixture.body };
    adapter.verify(&request)
}

#[test]
fn secret_header_vectors() {
    let fixture = text_fixture();
    let valid = fixture.headers.get("x-telegram-bot-api-secret-token").expect("fixture carries the secret").clone();
    assert_eq!(with_secret(Some(valid.as_bytes())), Ok(()));
    assert_eq!(with_secret(None), Err(WebhookError::MissingSignature));
    assert_eq!(with_secret(Some(b"fixture-secret_7Qw3")), Err(WebhookError::BadSignature), "one character off");
    assert_eq!(
        with_secret(Some(b"FIXTURE-SECRET_7QW2")),
        Err(WebhookError::BadSignature),
        "the secret is case-sensitive"
    );
    assert_eq!(with_secret(Some(b"")), Err(WebhookError::BadSignature), "empty");
    assert_eq!(with_secret(Some(b"fixture-secret_7Qw2 ")), Err(WebhookError::BadSignature), "trailing space");
    assert_eq!(with_secret(Some(b"fixture-secret_7Qw")), Err(WebhookError::BadSignature), "a prefix of the secret");
    assert_eq!(with_secret(Some(b"fixture-secret_7Qw2\xff")), Err(WebhookError::BadSignature), "not UTF-8");
}

#[test]
fn the_header_name_is_case_insensitive() {
    let adapter = adapter();
    let fixture = text_fixture();
    let mut headers = HeaderMap::new();
    // `http` lowercases names; a provider sending any case is the same header.
    headers.insert(
        http::HeaderName::from_bytes(b"X-TELEGRAM-BOT-API-SECRET-TOKEN").unwrap(),
        HeaderValue::from_static("fixture-secret_7Qw2"),
    );
    let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &fixture.body };
    assert_eq!(adapter.verify(&request), Ok(()));
}

#[test]
fn sign_sets_the_secret_header_and_keeps_the_body() {
    let adapter = adapter();
    let fixture = text_fixture();
    let mut headers = HeaderMap::new();
    let body = adapter.sign(&mut headers, fixture.body.clone());
    assert_eq!(body, fixture.body);
    assert_eq!(headers.get("x-telegram-bot-api-secret-token"), fixture.headers.get("x-telegram-bot-api-secret-token"));
    let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body };
    assert_eq!(adapter.verify(&request), Ok(()));
}

#[test]
fn only_non_json_bodies_are_malformed() {
    let adapter = adapter();
    let headers = text_fixture().headers;
    let parse = |body: &[u8]| {
        let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body };
        handle(&*adapter, &request)
    };
    for body in [&b""[..], b"not json", b"{\"update_id\": 1,", b"\xff\xfe"] {
        assert!(matches!(parse(body), Err(WebhookError::Malformed(_))), "{:?}", String::from_utf8_lossy(body));
    }
    // JSON that is no update is authentic: kept whole as `unsupported`.
    for body in [&b"[]"[..], b"42", b"{}", b"{\"update_id\":\"x\",\"message\":7}"] {
        assert_kept_as_unsupported(&parse(body).expect("JSON parses"), body);
    }
}

#[test]
fn get_is_not_a_telegram_method() {
    let adapter = adapter();
    let headers = text_fixture().headers;
    let request = WebhookRequest { method: &Method::GET, headers: &headers, query: Some("x=1"), body: b"" };
    assert_eq!(handle(&*adapter, &request), Err(WebhookError::MethodNotAllowed));
}
