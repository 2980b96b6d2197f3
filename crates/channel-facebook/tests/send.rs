//! The Send API against a recording mock: what we send for each part, and how Graph errors
//! map to retry decisions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatgate_adapter::{Adapter, ChannelFactory, Media, OutboundPart, PartBody, SendErrorKind, SendReceipt};
use chatgate_channel_facebook::{DEFAULT_RETRY_AFTER, INSTAGRAM_FACTORY, MESSENGER_FACTORY};
use chatgate_model::ErrorCode;
use chatgate_model::{AttachmentKind, Status, Template};
use chatgate_testkit::mock::{MockApi, Recorded};
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "page-token-never-in-errors";

/// Answers like the Send API; a recipient id `err-<code>[-<subcode>]` or `http-<status>` gets that error.
fn graph(request: &Recorded) -> (u16, Value) {
    let recipient = if request
        .headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"))
    {
        request.json()["recipient"]["id"].as_str().unwrap_or_default().to_owned()
    } else {
        ["err-", "http-", "psid-", "igsid-"]
            .iter()
            .find_map(|prefix| {
                let at = request.body.windows(prefix.len()).position(|w| w == prefix.as_bytes())?;
                let rest = &request.body[at..];
                let end = rest.iter().position(|b| *b == b'"').unwrap_or(rest.len());
                Some(String::from_utf8_lossy(&rest[..end]).into_owned())
            })
            .unwrap_or_default()
    };
    let error = |status: u16, code: i64, subcode: Option<i64>| {
        (
            status,
            json!({"error": {"message": "(#x) mock error", "type": "OAuthException", "code": code,
                                   "error_subcode": subcode, "fbtrace_id": "AbCdEf"}}),
        )
    };
    match recipient.as_str() {
        "err-613" => error(400, 613, None),
        "err-4" => error(400, 4, Some(2018022)),
        "err-1200" => error(500, 1200, None),
        "err-551" => error(400, 551, Some(1545041)),
        "err-10-2018278" => error(400, 10, Some(2018278)),
        "err-10-2534022" => error(400, 10, Some(2534022)),
        "err-190" => error(400, 190, Some(463)),
        "err-100" => error(400, 100, None),
        "err-100-2018109" => error(400, 100, Some(2018109)),
        "http-502" => (502, json!({})),
        "http-200-empty" => (200, json!({})),
        other => (200, json!({"recipient_id": other, "message_id": format!("m_sent_to_{other}")})),
    }
}

async fn setup(factory: &dyn ChannelFactory, page_id: &str) -> (MockApi, Arc<dyn Adapter>) {
    let mock = MockApi::start(graph).await;
    let mut settings = json!({
        "page_id": page_id,
        "page_access_token": TOKEN,
        "app_secret": "s",
        "verify_token": "v",
        "api_base_url": format!("{}/v26.0", mock.base_url),
    });
    if factory.channel() == chatgate_channel_facebook::INSTAGRAM {
        settings["instagram_account_id"] = json!("17841400000000001");
    }
    let adapter = factory.build("test", settings).expect("builds");
    (mock, adapter)
}

fn part(chat_id: &str, body: PartBody, reply_to: Option<&str>) -> OutboundPart {
    OutboundPart {
        message_id: Uuid::now_v7(),
        index: 0,
        chat_id: chat_id.to_owned(),
        reply_to: reply_to.map(str::to_owned),
        body,
    }
}

fn text(chat_id: &str, text: &str) -> OutboundPart {
    part(chat_id, PartBody::Text(text.to_owned()), None)
}

fn media(chat_id: &str, kind: AttachmentKind, name: &str, mime: &str) -> OutboundPart {
    let media = Media {
        kind,
        name: name.to_owned(),
        mime: Some(mime.to_owned()),
        bytes: Bytes::from_static(b"\x89PNG fake bytes of the file"),
        source_url: "https://core.example/files/1".to_owned(),
    };
    part(chat_id, PartBody::Media { media, caption: None }, None)
}

/// The value of a text field of a multipart body.
fn field(request: &Recorded, name: &str) -> String {
    let body = String::from_utf8_lossy(&request.body);
    let start = body.find(&format!("name=\"{name}\"\r\n\r\n")).unwrap_or_else(|| panic!("field {name}"));
    let value = &body[start + name.len() + 11..];
    value[..value.find("\r\n--").expect("boundary")].to_owned()
}

fn assert_authorised(request: &Recorded) {
    assert_eq!(request.headers["authorization"], format!("Bearer {TOKEN}").as_str());
    assert!(request.query.as_deref().is_none_or(|q| !q.contains(TOKEN)), "token stays out of the URL");
}

#[tokio::test]
async fn text_goes_to_the_page_messages_edge() {
    let (mock, adapter) = setup(&MESSENGER_FACTORY, "104060651234567").await;
    let receipt = adapter.send(&text("psid-1", "Your order ships today.")).await.expect("sent");
    assert_eq!(receipt, SendReceipt { external_id: "m_sent_to_psid-1".into(), status: Status::Sent });

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/v26.0/104060651234567/messages"));
    assert_authorised(request);
    assert_eq!(
        request.json(),
        json!({"recipient": {"id": "psid-1"}, "messaging_type": "RESPONSE", "message": {"text": "Your order ships today."}})
    );
}

#[tokio::test]
async fn reply_quotes_the_message_natively() {
    let (mock, adapter) = setup(&INSTAGRAM_FACTORY, "104060659876543").await;
    let quoted = part("igsid-1", PartBody::Text("the blue one".into()), Some("aWdfZAG1_quoted_mid"));
    adapter.send(&quoted).await.expect("sent");
    let body = mock.requests()[0].json();
    assert_eq!(body["reply_to"], json!({"mid": "aWdfZAG1_quoted_mid"}));
    assert_eq!(body["message"], json!({"text": "the blue one"}));

    // A quoted attachment carries reply_to as a multipart field.
    let mut quoted_image = media("igsid-1", AttachmentKind::Image, "photo.png", "image/png");
    quoted_image.reply_to = Some("aWdfZAG1_quoted_mid".into());
    adapter.send(&quoted_image).await.expect("sent");
    let upload = &mock.requests()[1];
    assert_eq!(field(upload, "reply_to"), json!({"mid": "aWdfZAG1_quoted_mid"}).to_string());
}

#[tokio::test]
async fn attachments_are_uploaded_and_sent_in_one_multipart_call() {
    for factory in [&MESSENGER_FACTORY as &dyn ChannelFactory, &INSTAGRAM_FACTORY] {
        let (mock, adapter) = setup(factory, "555").await;
        let cases = [
            (AttachmentKind::Image, "photo.png", "image/png", "image"),
            (AttachmentKind::Audio, "voice.m4a", "audio/mp4", "audio"),
            (AttachmentKind::File, "invoice.pdf", "application/pdf", "file"),
            (AttachmentKind::Sticker, "sticker.webp", "image/webp", "image"),
        ];
        for (kind, name, mime, wire_type) in cases {
            let receipt = adapter.send(&media("psid-7", kind, name, mime)).await.expect("sent");
            assert_eq!(receipt.external_id, "m_sent_to_psid-7");
            let requests = mock.requests();
            let request = requests.last().unwrap();
            assert_eq!(request.path, "/v26.0/555/messages");
            assert_authorised(request);
            assert!(request.headers["content-type"].to_str().unwrap().starts_with("multipart/form-data"));
            for field in ["recipient", "messaging_type", "message", "filedata"] {
                assert!(request.body_contains(&format!("name=\"{field}\"")), "{wire_type}: field {field}");
            }
            assert_eq!(field(request, "recipient"), json!({"id": "psid-7"}).to_string());
            assert_eq!(field(request, "messaging_type"), "RESPONSE");
            let message: Value = serde_json::from_str(&field(request, "message")).unwrap();
            assert_eq!(message, json!({"attachment": {"type": wire_type, "payload": {"is_reusable": false}}}));
            assert!(request.body_contains(&format!("filename=\"{name}\"")));
            assert!(request.body_contains(&format!("Content-Type: {mime}")));
            assert!(request.body_contains("fake bytes of the file"));
        }
        assert_eq!(mock.requests().len(), 4);
    }
}

#[tokio::test]
async fn video_captions_and_templates_are_refused_before_any_call() {
    let (mock, adapter) = setup(&MESSENGER_FACTORY, "555").await;
    let video = adapter.send(&media("psid-1", AttachmentKind::Video, "clip.mp4", "video/mp4")).await.unwrap_err();
    assert_eq!(video.kind, SendErrorKind::Failed(ErrorCode::AttachmentKindUnsupported));

    let mut captioned = media("psid-1", AttachmentKind::Image, "p.png", "image/png");
    if let PartBody::Media { caption, .. } = &mut captioned.body {
        *caption = Some("look".into());
    }
    assert_eq!(adapter.send(&captioned).await.unwrap_err().kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));

    let template = part(
        "psid-1",
        PartBody::Template(Template { name: "t".into(), language: "en".into(), components: vec![] }),
        None,
    );
    assert_eq!(adapter.send(&template).await.unwrap_err().kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn graph_errors_say_whether_to_retry() {
    let (mock, adapter) = setup(&MESSENGER_FACTORY, "555").await;
    let cases = [
        ("err-613", SendErrorKind::AccountRetryAfter(DEFAULT_RETRY_AFTER)),
        ("err-4", SendErrorKind::AccountRetryAfter(DEFAULT_RETRY_AFTER)),
        ("err-1200", SendErrorKind::Transient),
        ("http-502", SendErrorKind::Transient),
        ("err-551", SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed)),
        ("err-10-2018278", SendErrorKind::Failed(ErrorCode::WindowClosed)),
        ("err-10-2534022", SendErrorKind::Failed(ErrorCode::WindowClosed)),
        ("err-190", SendErrorKind::Failed(ErrorCode::ProviderUnauthorized)),
        ("err-100", SendErrorKind::Failed(ErrorCode::ProviderRejected)),
        ("err-100-2018109", SendErrorKind::Failed(ErrorCode::AttachmentTooLarge)),
        ("http-200-empty", SendErrorKind::Failed(ErrorCode::ProviderRejected)),
    ];
    for (chat_id, expected) in &cases {
        let error = adapter.send(&text(chat_id, "hi")).await.unwrap_err();
        assert_eq!(&error.kind, expected, "{chat_id}: {}", error.message);
        assert!(!error.message.contains(TOKEN), "{chat_id}: {}", error.message);
    }
    assert_eq!(mock.requests().len(), cases.len());
    // The Graph code is in the message for the core and the logs.
    let error = adapter.send(&text("err-10-2018278", "hi")).await.unwrap_err();
    assert!(error.message.contains("code 10 subcode 2018278"), "{}", error.message);
}

#[tokio::test]
async fn an_unreachable_api_is_transient_and_leaks_no_token() {
    let settings = json!({
        "page_id": "555", "page_access_token": TOKEN, "app_secret": "s", "verify_token": "v",
        "api_base_url": "http://127.0.0.1:9/v26.0",
    });
    let adapter = MESSENGER_FACTORY.build("test", settings).unwrap();
    let error = tokio::time::timeout(Duration::from_secs(30), adapter.send(&text("psid-1", "hi")))
        .await
        .expect("fails fast")
        .unwrap_err();
    assert_eq!(error.kind, SendErrorKind::Transient);
    assert!(!error.message.contains(TOKEN));
}
