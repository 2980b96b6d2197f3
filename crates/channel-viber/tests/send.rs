//! Sending through a mock Viber API: request shape per kind, the reply quote line, the 30 KB cap
//! and the mapping of Viber's answers to retry decisions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatgate_adapter::Rate;
use chatgate_adapter::{Adapter, ChannelFactory, Media, OutboundPart, PartBody, SendErrorKind, WebhookRequest};
use chatgate_channel_viber::{Config, FACTORY, FACTS};
use chatgate_model::ErrorCode;
use chatgate_model::limits::MB;
use chatgate_model::{AttachmentKind, Status, Template};
use chatgate_testkit::mock::MockApi;
use http::{HeaderMap, Method};
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "send-test-token-4f1c2b7e9a0d3e51";
const CHAT: &str = "gKk1aVm8QbO7i3Gdx0Zs2w==";
const MESSAGE_ID: Uuid = Uuid::from_u128(0x0193a5f2_7c1e_7d3a_9b4f_2e8c1a6d5f01);

fn ok() -> (u16, Value) {
    (
        200,
        json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721087u64, "chat_hostname": "SN-CHAT-01_", "billing_status": 1}),
    )
}

fn build(base_url: &str) -> Arc<dyn Adapter> {
    FACTORY
        .build(
            "test",
            json!({"auth_token": TOKEN, "sender_name": "Acme Support", "sender_avatar": "https://cdn.example.com/a.jpg",
                   "api_base_url": format!("{base_url}/pa")}),
        )
        .unwrap()
}

fn part(body: PartBody) -> OutboundPart {
    OutboundPart { message_id: MESSAGE_ID, index: 0, chat_id: CHAT.into(), reply_to: None, body }
}

fn media(kind: AttachmentKind, name: &str, url: &str, len: usize) -> PartBody {
    PartBody::Media {
        media: Media {
            kind,
            name: name.into(),
            mime: None,
            bytes: Bytes::from(vec![7u8; len]),
            source_url: url.into(),
        },
        caption: None,
    }
}

/// Sends one part to a mock answering `ok()` and returns the JSON the mock received.
async fn sent_json(body: PartBody) -> Value {
    let mock = MockApi::start(|_| ok()).await;
    let receipt = build(&mock.base_url).send(&part(body)).await.expect("sent");
    assert_eq!(receipt.external_id, "5741311803571721087");
    assert_eq!(receipt.status, Status::Sent);
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    requests[0].json()
}

/// The fields every message carries, plus `fields`.
fn expected(fields: Value) -> Value {
    let mut v = json!({"receiver": CHAT, "sender": {"name": "Acme Support", "avatar": "https://cdn.example.com/a.jpg"},
                       "tracking_data": MESSAGE_ID.to_string()});
    for (k, val) in fields.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

#[tokio::test]
async fn text_goes_to_send_message_with_the_auth_header() {
    let mock = MockApi::start(|_| ok()).await;
    let adapter = build(&mock.base_url);
    let receipt = adapter.send(&part(PartBody::Text("Hello, Olena!".into()))).await.unwrap();
    assert_eq!(receipt.external_id, "5741311803571721087", "a token above 2^53 keeps every digit");
    let r = &mock.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/pa/send_message"));
    assert_eq!(r.headers["x-viber-auth-token"], TOKEN);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.json(), expected(json!({"type": "text", "text": "Hello, Olena!"})));
}

#[tokio::test]
async fn picture_goes_by_url_with_a_text_field() {
    let url = "https://files.example.com/o/4521/photo.jpg";
    assert_eq!(
        sent_json(media(AttachmentKind::Image, "photo.jpg", url, 1000)).await,
        expected(json!({"type": "picture", "text": "", "media": url}))
    );
    let PartBody::Media { media, .. } = media(AttachmentKind::Image, "photo.jpg", url, 1000) else { unreachable!() };
    assert_eq!(
        sent_json(PartBody::Media { media, caption: Some("Your parcel".into()) }).await,
        expected(json!({"type": "picture", "text": "Your parcel", "media": url}))
    );
}

#[tokio::test]
async fn video_and_file_carry_their_size() {
    let video = "https://files.example.com/o/4521/unboxing.mp4";
    assert_eq!(
        sent_json(media(AttachmentKind::Video, "unboxing.mp4", video, 3861)).await,
        expected(json!({"type": "video", "media": video, "size": 3861}))
    );
    let file = "https://files.example.com/o/4521/invoice.pdf?sig=abc";
    assert_eq!(
        sent_json(media(AttachmentKind::File, "Invoice 4521.pdf", file, 120)).await,
        expected(json!({"type": "file", "media": file, "size": 120, "file_name": "Invoice 4521.pdf"}))
    );
    // Without a name, the URL's last path segment names the file.
    assert_eq!(
        sent_json(media(AttachmentKind::File, "", file, 120)).await,
        expected(json!({"type": "file", "media": file, "size": 120, "file_name": "invoice.pdf"}))
    );
}

#[tokio::test]
async fn audio_goes_as_a_file() {
    let url = "https://files.example.com/o/4521/answer.mp3";
    assert_eq!(
        sent_json(media(AttachmentKind::Audio, "answer.mp3", url, 2048)).await,
        expected(json!({"type": "file", "media": url, "size": 2048, "file_name": "answer.mp3"}))
    );
}

#[tokio::test]
async fn sticker_is_sent_by_the_id_in_its_name() {
    assert_eq!(
        sent_json(media(AttachmentKind::Sticker, "40133", "https://files.example.com/stickers/40133.png", 10)).await,
        expected(json!({"type": "sticker", "sticker_id": "40133"}))
    );
}

/// Feeds an inbound text message to the adapter the way the server does (verify, then parse).
fn receive_text(adapter: &dyn Adapter, token: u64, text: &str) {
    let body = serde_json::to_vec(&json!({"event": "message", "timestamp": 1732190405000u64, "message_token": token,
        "sender": {"id": CHAT, "name": "Olena"}, "message": {"type": "text", "text": text}}))
    .unwrap();
    let mut headers = HeaderMap::new();
    let body = adapter.sign(&mut headers, body);
    let inbound = chatgate_testkit::handle(
        adapter,
        &WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body },
    )
    .unwrap();
    assert_eq!(inbound.events.len(), 1);
}

#[tokio::test]
async fn reply_is_prefixed_with_a_quote_of_the_remembered_message() {
    let mock = MockApi::start(|_| ok()).await;
    let adapter = build(&mock.base_url);
    receive_text(&*adapter, 5741311803571721105, "Where is my order #4521?\nI ordered it last week.");
    receive_text(&*adapter, 5741311803571721106, &"a very long question ".repeat(10));

    let reply = |reply_to: &str, body: PartBody| OutboundPart { reply_to: Some(reply_to.into()), ..part(body) };
    adapter.send(&reply("5741311803571721105", PartBody::Text("It ships today.".into()))).await.unwrap();
    adapter.send(&reply("5741311803571721106", PartBody::Text("Answer.".into()))).await.unwrap();
    // Not remembered (another instance got it, or before a restart): no quote line at all.
    adapter.send(&reply("1234", PartBody::Text("Hello.".into()))).await.unwrap();
    // A picture carries the quote in its text.
    adapter
        .send(&reply("5741311803571721105", media(AttachmentKind::Image, "p.png", "https://f.example.com/p.png", 5)))
        .await
        .unwrap();
    // Video has no text field, so no quote.
    adapter
        .send(&reply("5741311803571721105", media(AttachmentKind::Video, "v.mp4", "https://f.example.com/v.mp4", 5)))
        .await
        .unwrap();

    let sent: Vec<Value> = mock.requests().iter().map(|r| r.json()).collect();
    assert_eq!(sent[0]["text"], "> Where is my order #4521?\nIt ships today.");
    let long = format!("> {}…\nAnswer.", "a very long question ".repeat(3)[..60].to_owned());
    assert_eq!(sent[1]["text"], long.as_str());
    assert_eq!(sent[2]["text"], "Hello.");
    assert_eq!(sent[3]["text"], "> Where is my order #4521?");
    assert_eq!(sent[4].get("text"), None);
    assert_eq!(sent[4]["type"], "video");
}

#[tokio::test]
async fn viber_status_codes_and_http_errors_map_to_retry_decisions() {
    let cases: Vec<((u16, Value), SendErrorKind)> = vec![
        (
            (200, json!({"status": 6, "status_message": "receiverNotSubscribed"})),
            SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed),
        ),
        (
            (200, json!({"status": 5, "status_message": "receiverNotRegistered"})),
            SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed),
        ),
        (
            (200, json!({"status": 12, "status_message": "Too many requests", "message_token": "1234567890"})),
            SendErrorKind::AccountRetryAfter(Duration::from_secs(60)),
        ),
        (
            (200, json!({"status": 2, "status_message": "invalidAuthToken"})),
            SendErrorKind::Failed(ErrorCode::ProviderUnauthorized),
        ),
        (
            (200, json!({"status": 9, "status_message": "publicAccountSuspended"})),
            SendErrorKind::Failed(ErrorCode::ProviderUnauthorized),
        ),
        ((200, json!({"status": 3, "status_message": "badData"})), SendErrorKind::Failed(ErrorCode::ProviderRejected)),
        (
            (200, json!({"status": 11, "status_message": "receiverNoSuitableDevice"})),
            SendErrorKind::Failed(ErrorCode::ProviderRejected),
        ),
        ((200, json!({"status": 0, "status_message": "ok"})), SendErrorKind::Transient),
        ((200, json!("not the answer object")), SendErrorKind::Transient),
        ((429, json!({})), SendErrorKind::AccountRetryAfter(Duration::from_secs(60))),
        ((500, json!({})), SendErrorKind::Transient),
        ((503, json!({})), SendErrorKind::Transient),
        ((401, json!({})), SendErrorKind::Failed(ErrorCode::ProviderUnauthorized)),
        ((404, json!({})), SendErrorKind::Failed(ErrorCode::ProviderRejected)),
    ];
    for (answer, kind) in cases {
        let shown = format!("{answer:?}");
        let mock = MockApi::start(move |_| answer.clone()).await;
        let error = build(&mock.base_url).send(&part(PartBody::Text("hi".into()))).await.unwrap_err();
        assert_eq!(error.kind, kind, "{shown}");
        assert!(!error.message.contains(TOKEN), "{}", error.message);
        assert_eq!(mock.requests().len(), 1);
    }
}

#[tokio::test]
async fn an_unreachable_api_is_transient_and_the_token_stays_out_of_the_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = build(&base).send(&part(PartBody::Text("hi".into()))).await.unwrap_err();
    assert_eq!(error.kind, SendErrorKind::Transient);
    assert!(!error.message.contains(TOKEN), "{}", error.message);
}

#[tokio::test]
async fn requests_over_30_kb_are_refused_before_sending() {
    let mock = MockApi::start(|_| ok()).await;
    let adapter = build(&mock.base_url);
    // Just under the cap passes; the envelope around the text is under 200 bytes.
    adapter.send(&part(PartBody::Text("a".repeat(30 * 1024 - 300)))).await.unwrap();
    let error = adapter.send(&part(PartBody::Text("a".repeat(30 * 1024)))).await.unwrap_err();
    assert_eq!(error.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    // 8000 characters of 4-byte emoji are 32000 bytes of JSON.
    let error = adapter.send(&part(PartBody::Text("😀".repeat(8000)))).await.unwrap_err();
    assert_eq!(error.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    assert_eq!(mock.requests().len(), 1, "refused parts never reach Viber");
}

#[tokio::test]
async fn refused_before_sending() {
    let mock = MockApi::start(|_| ok()).await;
    let adapter = build(&mock.base_url);
    let kind = |body| {
        let adapter = adapter.clone();
        async move { adapter.send(&part(body)).await.unwrap_err().kind }
    };
    assert_eq!(
        kind(media(AttachmentKind::File, "setup.EXE", "https://f.example.com/setup.exe", 5)).await,
        SendErrorKind::Failed(ErrorCode::AttachmentKindUnsupported)
    );
    assert_eq!(
        kind(media(AttachmentKind::Sticker, " ", "https://f.example.com/s.png", 5)).await,
        SendErrorKind::Failed(ErrorCode::ProviderRejected)
    );
    let PartBody::Media { media: video, .. } = media(AttachmentKind::Video, "v.mp4", "https://f.example.com/v.mp4", 5)
    else {
        unreachable!()
    };
    assert_eq!(
        kind(PartBody::Media { media: video, caption: Some("look".into()) }).await,
        SendErrorKind::Failed(ErrorCode::ProviderRejected)
    );
    let PartBody::Media { media: picture, .. } =
        media(AttachmentKind::Image, "p.png", "https://f.example.com/p.png", 5)
    else {
        unreachable!()
    };
    assert_eq!(
        kind(PartBody::Media { media: picture, caption: Some("x".repeat(769)) }).await,
        SendErrorKind::Failed(ErrorCode::ProviderRejected)
    );
    let template = Template { name: "t".into(), language: "en".into(), components: vec![] };
    assert_eq!(kind(PartBody::Template(template)).await, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    assert!(mock.requests().is_empty());
}

#[test]
fn limits_rates_and_capabilities_are_viber_s() {
    let adapter = build("http://127.0.0.1:9");
    let limits = adapter.facts().limits;
    assert_eq!(limits, FACTS.limits);
    assert_eq!(limits.text_max_chars, 2000);
    assert_eq!(limits.image_bytes, Some(MB));
    assert_eq!(limits.video_bytes, Some(26 * MB));
    assert_eq!(limits.video_bytes, Some(27_262_976), "Viber states 26 MB as 27262976 bytes");
    assert_eq!(limits.file_bytes, Some(52_428_800));
    assert_eq!(limits.audio_bytes, limits.file_bytes, "audio goes as a file");
    let rates = adapter.facts().rate_limits;
    assert_eq!(rates.per_account, Some(Rate::per_second(50)));
    assert_eq!(rates.per_chat, None);
    let caps = adapter.facts().capabilities;
    assert!(!caps.native_reply && !caps.templates && caps.messaging_window.is_none());
    assert_eq!(adapter.channel(), chatgate_model::Channel::from_static("viber"));
    assert_eq!(adapter.account(), "test");
}

#[test]
fn debug_output_never_shows_the_token() {
    let settings = json!({"auth_token": TOKEN, "sender_name": "Acme Support"});
    let config = Config::from_settings(settings).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}
