//! Sending through a recording stand-in for the Bot API: the method per part, the request
//! fields, and how API errors map to retry decisions. No message may ever name the bot token.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatgate_adapter::{Adapter, ChannelFactory, Media, OutboundPart, PartBody, SendErrorKind};
use chatgate_channel_telegram::{Config, FACTORY, TelegramAdapter};
use chatgate_model::ErrorCode;
use chatgate_model::{AttachmentKind, Status, Template};
use chatgate_testkit::mock::{MockApi, Recorded};
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "4242:SendTestToken-xyz";

fn adapter(base_url: &str) -> Arc<dyn Adapter> {
    FACTORY
        .build("test", json!({"bot_token": TOKEN, "secret_token": "s", "api_base_url": base_url}))
        .expect("account builds")
}

/// A mock answering every call with a sent message whose id is 101.
async fn ok_mock() -> MockApi {
    MockApi::start(|_| (200, json!({"ok": true, "result": {"message_id": 101, "date": 1718000000}}))).await
}

fn part(chat_id: &str, reply_to: Option<&str>, body: PartBody) -> OutboundPart {
    OutboundPart {
        message_id: Uuid::now_v7(),
        index: 0,
        chat_id: chat_id.into(),
        reply_to: reply_to.map(Into::into),
        body,
    }
}

fn media(kind: AttachmentKind, name: &str, mime: Option<&str>, bytes: &'static [u8]) -> PartBody {
    PartBody::Media {
        media: Media {
            kind,
            name: name.into(),
            mime: mime.map(Into::into),
            bytes: Bytes::from_static(bytes),
            source_url: "https://files.example.com/x".into(),
        },
        caption: None,
    }
}

fn path(method: &str) -> String {
    format!("/bot{TOKEN}/{method}")
}

/// Whether a request went to `method`. The Bot API's method names are case-insensitive, and
/// teloxide spells them with a capital (`/SendMessage`).
fn called(request: &Recorded, method: &str) -> bool {
    request.path.eq_ignore_ascii_case(&path(method))
}

/// The value of a plain multipart field.
fn field(request: &Recorded, name: &str) -> Option<String> {
    let body = String::from_utf8_lossy(&request.body);
    let start = body.find(&format!("name=\"{name}\"\r\n\r\n"))? + name.len() + 11;
    let len = body[start..].find("\r\n")?;
    Some(body[start..start + len].to_owned())
}

#[tokio::test]
async fn text_is_a_json_send_message_reported_as_delivered() {
    let mock = ok_mock().await;
    let receipt = adapter(&mock.base_url)
        .send(&part("523847190", None, PartBody::Text("Hello, Maria".into())))
        .await
        .expect("sent");
    assert_eq!((receipt.external_id.as_str(), receipt.status), ("101", Status::Delivered));
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert!(called(&requests[0], "sendMessage"), "{}", requests[0].path);
    assert_eq!(requests[0].json(), json!({"chat_id": 523847190, "text": "Hello, Maria"}));
}

#[tokio::test]
async fn a_reply_is_a_native_quote_in_big_negative_chats_too() {
    let mock = ok_mock().await;
    adapter(&mock.base_url)
        .send(&part("-1001876543210", Some("88410"), PartBody::Text("Yes".into())))
        .await
        .expect("sent");
    let body = mock.requests()[0].json();
    assert_eq!(body["chat_id"], json!(-1001876543210_i64));
    assert_eq!(body["reply_parameters"], json!({"message_id": 88410, "allow_sending_without_reply": true}));
}

#[tokio::test]
async fn a_reply_to_that_is_no_message_id_is_left_out() {
    let mock = ok_mock().await;
    adapter(&mock.base_url)
        .send(&part("523847190", Some("wamid.HBgM"), PartBody::Text("Yes".into())))
        .await
        .expect("sent without the quote");
    let body = mock.requests()[0].json();
    assert_eq!(body.get("reply_parameters"), None);
    assert_eq!(body["text"], json!("Yes"));
}

#[tokio::test]
async fn each_attachment_kind_is_a_multipart_upload_to_its_method() {
    let cases = [
        (AttachmentKind::Image, "box.jpg", Some("image/jpeg"), "sendPhoto", "photo"),
        (AttachmentKind::Audio, "hold.mp3", Some("audio/mpeg"), "sendAudio", "audio"),
        (AttachmentKind::Audio, "note.ogg", Some("audio/ogg"), "sendVoice", "voice"),
        (AttachmentKind::Video, "rattle.mp4", Some("video/mp4"), "sendVideo", "video"),
        (AttachmentKind::File, "invoice.pdf", Some("application/pdf"), "sendDocument", "document"),
        (AttachmentKind::Sticker, "hi.webp", Some("image/webp"), "sendSticker", "sticker"),
        (AttachmentKind::File, "notes.txt", None, "sendDocument", "document"),
    ];
    for (kind, name, mime, method, field_name) in cases {
        let mock = ok_mock().await;
        let receipt =
            adapter(&mock.base_url).send(&part("523847190", None, media(kind, name, mime, b"FILE-BYTES-0123"))).await;
        assert_eq!(receipt.map(|r| r.external_id), Ok("101".to_owned()), "{method}");
        let requests = mock.requests();
        let request = &requests[0];
        assert!(called(request, method), "{method}: {}", request.path);
        let content_type = request.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("multipart/form-data; boundary="), "{method}: {content_type}");
        assert_eq!(field(request, "chat_id").as_deref(), Some("523847190"), "{method}: chat_id field");
        // teloxide names the upload in the method's field as `attach://<id>` and sends the file
        // in the part `<id>`, with its name (and no content type of its own).
        let attach = field(request, field_name).unwrap_or_default();
        let id = attach.strip_prefix("attach://").unwrap_or_else(|| panic!("{method}: {field_name} = {attach:?}"));
        assert!(request.body_contains(&format!("name=\"{id}\"; filename=\"{name}\"")), "{method}: file part");
        assert!(request.body_contains("FILE-BYTES-0123"), "{method}: the file's bytes");
        assert!(!request.body_contains("reply_parameters") && !request.body_contains("name=\"caption\""), "{method}");
    }
}

#[tokio::test]
async fn media_carry_caption_and_reply_parameters_as_form_fields() {
    let mock = ok_mock().await;
    let mut body = media(AttachmentKind::Image, "box.jpg", Some("image/jpeg"), b"JPEG");
    if let PartBody::Media { caption, .. } = &mut body {
        *caption = Some("The box".into());
    }
    adapter(&mock.base_url).send(&part("523847190", Some("17"), body)).await.expect("sent");
    let request = &mock.requests()[0];
    assert_eq!(field(request, "caption").as_deref(), Some("The box"));
    let reply: Value = serde_json::from_str(&field(request, "reply_parameters").unwrap()).unwrap();
    assert_eq!(reply, json!({"message_id": 17, "allow_sending_without_reply": true}));
}

#[tokio::test]
async fn templates_are_refused_without_a_call() {
    let mock = ok_mock().await;
    let template = Template { name: "order_update".into(), language: "en".into(), components: vec![] };
    let err = adapter(&mock.base_url).send(&part("1", None, PartBody::Template(template))).await.unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    assert!(err.message.contains("template"), "{}", err.message);
    assert!(mock.requests().is_empty());
}

/// The mock answers with `status` and `body`; the send must fail with `kind`.
async fn expect_error(status: u16, body: Value, kind: SendErrorKind, says: &str) {
    let answer = body.clone();
    let mock = MockApi::start(move |_| (status, answer.clone())).await;
    let err = adapter(&mock.base_url)
        .send(&part("523847190", None, PartBody::Text("x".into())))
        .await
        .expect_err("the API refused");
    assert_eq!(err.kind, kind, "{status} {body}");
    assert!(err.message.contains(says), "{status}: `{}` does not say `{says}`", err.message);
    assert!(!err.message.contains(TOKEN) && !err.message.contains("SendTestToken"), "{}", err.message);
}

fn refusal(code: u16, description: &str) -> Value {
    json!({"ok": false, "error_code": code, "description": description})
}

#[tokio::test]
async fn api_errors_map_to_retry_decisions() {
    let flood = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}});
    // A private chat (positive id): the 429 is the bot's flood limit and holds the whole account.
    expect_error(429, flood, SendErrorKind::AccountRetryAfter(Duration::from_secs(7)), "Too Many Requests").await;
    for blocked in [
        "Forbidden: bot was blocked by the user",
        "Forbidden: user is deactivated",
        "Forbidden: bot can't initiate conversation with a user",
        "Forbidden: bot was kicked from the supergroup chat",
    ] {
        expect_error(403, refusal(403, blocked), SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed), blocked).await;
    }
    let not_member = "Forbidden: bot is not a member of the channel chat";
    expect_error(403, refusal(403, not_member), SendErrorKind::Failed(ErrorCode::ProviderRejected), not_member).await;
    // teloxide reads both token refusals, 401 `Unauthorized` and 404 `Not Found`, as one
    // `ApiError::InvalidToken` ("Invalid bot token").
    let unauthorized = SendErrorKind::Failed(ErrorCode::ProviderUnauthorized);
    expect_error(401, refusal(401, "Unauthorized"), unauthorized.clone(), "Invalid bot token").await;
    expect_error(404, refusal(404, "Not Found"), unauthorized, "Invalid bot token").await;
    let bad = "Bad Request: chat not found";
    expect_error(400, refusal(400, bad), SendErrorKind::Failed(ErrorCode::ProviderRejected), bad).await;
    // teloxide waits 10 seconds after a 5xx answer before it returns: both at once.
    let internal = "Internal Server Error";
    tokio::join!(
        expect_error(500, refusal(500, internal), SendErrorKind::Transient, internal),
        // Not a Bot API answer at all (teloxide does not pass on the HTTP status).
        expect_error(502, json!(null), SendErrorKind::Transient, "unreadable answer"),
    );
}

#[tokio::test]
async fn network_errors_are_transient_and_never_name_the_token() {
    // A loopback port nobody listens on: bind, note the port, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let adapter = adapter(&format!("http://127.0.0.1:{port}"));
    for body in [PartBody::Text("x".into()), media(AttachmentKind::Image, "a.jpg", Some("image/jpeg"), b"x")] {
        let err = adapter.send(&part("1", None, body)).await.expect_err("nothing listens");
        assert_eq!(err.kind, SendErrorKind::Transient, "{}", err.message);
        assert!(err.message.starts_with("telegram send"), "{}", err.message);
        assert!(!err.message.contains(TOKEN) && !err.message.contains("SendTestToken"), "{}", err.message);
        assert!(!format!("{err:?}").contains("SendTestToken"));
    }
}

#[tokio::test]
async fn a_real_length_token_is_kept_out_of_network_errors_too() {
    // teloxide itself redacts only tokens of this shape (a 35-character secret), leaving the
    // rest of the URL; the message must not name it either way.
    let token = "7012345678:AAF7-g0gYncWnm5IyfZlpPRqRRv6kNAGlao";
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let settings = json!({"bot_token": token, "secret_token": "s", "api_base_url": format!("http://127.0.0.1:{port}")});
    let adapter = FACTORY.build("test", settings).expect("account builds");
    let err = adapter.send(&part("1", None, PartBody::Text("x".into()))).await.expect_err("nothing listens");
    assert_eq!(err.kind, SendErrorKind::Transient, "{}", err.message);
    assert!(!err.message.contains("AAF7-g0gYnc") && !err.message.contains("7012345678"), "{}", err.message);
    let err = adapter.fetch_media("AgADphoto", 1024).await.expect_err("nothing listens");
    assert_eq!(err.kind, SendErrorKind::Transient, "{}", err.message);
    assert!(err.message.starts_with("telegram getFile"), "{}", err.message);
    assert!(!err.message.contains("AAF7-g0gYnc") && !err.message.contains("7012345678"), "{}", err.message);
}

#[test]
fn the_adapter_debug_form_hides_both_secrets() {
    let settings = json!({"bot_token": TOKEN, "secret_token": "hush-hush_42"});
    let adapter = TelegramAdapter::new("test", Config::from_settings(settings).unwrap()).unwrap();
    let shown = format!("{adapter:?}");
    assert!(!shown.contains("SendTestToken") && !shown.contains("hush-hush_42"), "{shown}");
}
