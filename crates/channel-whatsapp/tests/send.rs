//! Sending against a recording stand-in for the Cloud API: the calls made and the error mapping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chatgate_adapter::{Adapter, ChannelFactory, Media, OutboundPart, PartBody, SendErrorKind};
use chatgate_channel_whatsapp::FACTORY;
use chatgate_model::ErrorCode;
use chatgate_model::{AttachmentKind, Status, Template};
use chatgate_testkit::mock::{MockApi, Recorded};
use serde_json::{Value, json};
use uuid::Uuid;

const PHONE_NUMBER_ID: &str = "109876543210987";
const TOKEN: &str = "test-access-token";
const CUSTOMER: &str = "4915112345678";

fn adapter(base_url: &str) -> Arc<dyn Adapter> {
    let settings = json!({
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": TOKEN,
        "app_secret": "test-app-secret",
        "verify_token": "test-verify-token",
        "api_base_url": format!("{base_url}/v26.0"),
    });
    FACTORY.build("test", settings).unwrap()
}

fn part(body: PartBody, reply_to: Option<&str>) -> OutboundPart {
    OutboundPart {
        message_id: Uuid::now_v7(),
        index: 0,
        chat_id: CUSTOMER.into(),
        reply_to: reply_to.map(str::to_owned),
        body,
    }
}

fn media(kind: AttachmentKind, name: &str, mime: Option<&str>) -> Media {
    Media {
        kind,
        name: name.into(),
        mime: mime.map(str::to_owned),
        bytes: Bytes::from_static(b"\x89PNG-not-really-a-file-0123456789"),
        source_url: "https://core.example/files/1".into(),
    }
}

/// A Cloud API stand-in: `/media` answers `{"id": "media-<n>"}`, `/messages` a wamid.
async fn happy_api() -> MockApi {
    let uploads = AtomicUsize::new(0);
    MockApi::start(move |r: &Recorded| {
        if r.path.ends_with("/media") {
            let n = uploads.fetch_add(1, Ordering::SeqCst) + 1;
            (200, json!({"id": format!("media-{n}")}))
        } else {
            (200, json!({"messaging_product": "whatsapp", "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}], "messages": [{"id": "wamid.OUT1", "message_status": "accepted"}]}))
        }
    })
    .await
}

fn assert_authorised(r: &Recorded) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.headers.get("authorization").unwrap(), &format!("Bearer {TOKEN}"));
}

#[tokio::test]
async fn text_is_posted_to_messages() {
    let mock = happy_api().await;
    let receipt =
        adapter(&mock.base_url).send(&part(PartBody::Text("Your order ships today.".into()), None)).await.unwrap();
    assert_eq!(receipt.external_id, "wamid.OUT1");
    assert_eq!(receipt.status, Status::Sent);
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, format!("/v26.0/{PHONE_NUMBER_ID}/messages"));
    assert_authorised(&requests[0]);
    assert_eq!(
        requests[0].json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "text",
            "text": {"body": "Your order ships today."}
        })
    );
}

/// A customer known only by a business-scoped user id (the chat id a username sender's events
/// carry) is addressed with `recipient`, never `to`, for text and for media.
#[tokio::test]
async fn a_bsuid_chat_is_sent_to_as_recipient() {
    let mock = happy_api().await;
    let adapter = adapter(&mock.base_url);
    for bsuid in ["BR.1502576394655843", "US.ENT.11815799212886844830"] {
        let text = OutboundPart { chat_id: bsuid.into(), ..part(PartBody::Text("Olá!".into()), Some("wamid.IN1")) };
        adapter.send(&text).await.unwrap();
        let image = OutboundPart {
            chat_id: bsuid.into(),
            ..part(
                PartBody::Media { media: media(AttachmentKind::Image, "a.png", Some("image/png")), caption: None },
                None,
            )
        };
        adapter.send(&image).await.unwrap();
    }
    let sent: Vec<Value> = mock.requests().iter().filter(|r| r.path.ends_with("/messages")).map(|r| r.json()).collect();
    assert_eq!(sent.len(), 4);
    assert_eq!(
        sent[0],
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "recipient": "BR.1502576394655843",
               "context": {"message_id": "wamid.IN1"}, "type": "text", "text": {"body": "Olá!"}})
    );
    for (request, bsuid) in sent.iter().zip([
        "BR.1502576394655843",
        "BR.1502576394655843",
        "US.ENT.11815799212886844830",
        "US.ENT.11815799212886844830",
    ]) {
        assert_eq!(request["recipient"], bsuid, "{request}");
        assert!(request.get("to").is_none(), "a BSUID is never sent as `to`: {request}");
    }
    // A phone number, with or without `+`, stays `to`.
    let plus = OutboundPart { chat_id: "+4915112345678".into(), ..part(PartBody::Text("hi".into()), None) };
    adapter.send(&plus).await.unwrap();
    let last = mock.requests().last().unwrap().json();
    assert_eq!((last["to"].as_str(), last.get("recipient")), (Some("+4915112345678"), None));
}

#[tokio::test]
async fn each_attachment_kind_is_uploaded_then_sent_by_id() {
    let cases = [
        (AttachmentKind::Image, "photo.png", Some("image/png"), "image", "image/png"),
        (AttachmentKind::Audio, "note.mp3", None, "audio", "audio/mpeg"),
        (AttachmentKind::Video, "clip.mp4", Some("video/mp4"), "video", "video/mp4"),
        (AttachmentKind::File, "invoice.pdf", Some("application/pdf"), "document", "application/pdf"),
        (AttachmentKind::Sticker, "smile.webp", None, "sticker", "image/webp"),
    ];
    for (kind, name, mime, wire_type, declared) in cases {
        let mock = happy_api().await;
        let body = PartBody::Media { media: media(kind, name, mime), caption: None };
        let receipt = adapter(&mock.base_url).send(&part(body, None)).await.unwrap();
        assert_eq!(receipt.external_id, "wamid.OUT1", "{wire_type}");
        let requests = mock.requests();
        assert_eq!(requests.len(), 2, "{wire_type}: upload, then send");

        let upload = &requests[0];
        assert_eq!(upload.path, format!("/v26.0/{PHONE_NUMBER_ID}/media"));
        assert_authorised(upload);
        let content_type = upload.headers.get("content-type").unwrap().to_str().unwrap();
        assert!(content_type.starts_with("multipart/form-data; boundary="), "{content_type}");
        assert!(upload.body_contains("name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"), "{wire_type}");
        assert!(upload.body_contains(&format!("name=\"type\"\r\n\r\n{declared}\r\n")), "{wire_type}");
        assert!(upload.body_contains(&format!("name=\"file\"; filename=\"{name}\"")), "{wire_type}");
        assert!(upload.body_contains(&format!("Content-Type: {declared}")), "{wire_type}");
        assert!(upload.body_contains("PNG-not-really-a-file-0123456789"), "{wire_type}: file bytes");

        let send = &requests[1];
        assert_eq!(send.path, format!("/v26.0/{PHONE_NUMBER_ID}/messages"));
        assert_authorised(send);
        let mut object = json!({"id": "media-1"});
        if kind == AttachmentKind::File {
            object["filename"] = json!(name);
        }
        assert_eq!(
            send.json(),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": wire_type, wire_type: object}),
            "{wire_type}"
        );
    }
}

#[tokio::test]
async fn captions_go_only_where_whatsapp_takes_them() {
    let mock = happy_api().await;
    let adapter = adapter(&mock.base_url);
    let image =
        PartBody::Media { media: media(AttachmentKind::Image, "a.jpg", None), caption: Some("Front side".into()) };
    adapter.send(&part(image, None)).await.unwrap();
    let audio = PartBody::Media { media: media(AttachmentKind::Audio, "a.ogg", None), caption: Some("ignored".into()) };
    adapter.send(&part(audio, None)).await.unwrap();
    let requests = mock.requests();
    assert_eq!(requests[1].json()["image"], json!({"id": "media-1", "caption": "Front side"}));
    assert!(requests[2].body_contains("audio/ogg"));
    assert_eq!(requests[3].json()["audio"], json!({"id": "media-2"}));
}

#[tokio::test]
async fn reply_to_becomes_a_native_context() {
    let mock = happy_api().await;
    let adapter = adapter(&mock.base_url);
    adapter.send(&part(PartBody::Text("Yes".into()), Some("wamid.IN42"))).await.unwrap();
    let file = PartBody::Media { media: media(AttachmentKind::File, "terms.pdf", None), caption: None };
    adapter.send(&part(file, Some("wamid.IN43"))).await.unwrap();
    let requests = mock.requests();
    assert_eq!(requests[0].json()["context"], json!({"message_id": "wamid.IN42"}));
    assert_eq!(requests[2].json()["context"], json!({"message_id": "wamid.IN43"}));
    assert_eq!(requests[2].json()["document"], json!({"id": "media-1", "filename": "terms.pdf"}));
}

#[tokio::test]
async fn template_is_sent_with_language_and_components() {
    let mock = happy_api().await;
    let components = vec![json!({"type": "body", "parameters": [{"type": "text", "text": "4711"}]})];
    let template = Template { name: "order_update".into(), language: "de".into(), components: components.clone() };
    let receipt = adapter(&mock.base_url).send(&part(PartBody::Template(template), None)).await.unwrap();
    assert_eq!(receipt.external_id, "wamid.OUT1");
    let bare = Template { name: "hello_world".into(), language: "en_US".into(), components: Vec::new() };
    adapter(&mock.base_url).send(&part(PartBody::Template(bare), None)).await.unwrap();
    let requests = mock.requests();
    assert_eq!(
        requests[0].json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": CUSTOMER,
            "type": "template",
            "template": {"name": "order_update", "language": {"code": "de"}, "components": components}
        })
    );
    assert_eq!(requests[1].json()["template"], json!({"name": "hello_world", "language": {"code": "en_US"}}));
}

/// A Graph API error answer as the Cloud API gives it.
fn graph_error(code: i64, message: &str) -> Value {
    json!({"error": {"message": message, "type": "OAuthException", "code": code, "error_data": {"messaging_product": "whatsapp", "details": message}, "fbtrace_id": "AbCdEf"}})
}

async fn send_text_against(status: u16, answer: Value) -> (chatgate_adapter::SendError, Vec<Recorded>) {
    let mock = MockApi::start(move |_| (status, answer.clone())).await;
    let error = adapter(&mock.base_url).send(&part(PartBody::Text("hi".into()), None)).await.unwrap_err();
    assert!(!error.message.contains(TOKEN), "errors never carry the token: {}", error.message);
    (error, mock.requests())
}

#[tokio::test]
async fn errors_map_to_retry_kinds() {
    let (e, _) = send_text_against(400, graph_error(130429, "(#130429) Rate limit hit")).await;
    assert_eq!(e.kind, SendErrorKind::AccountRetryAfter(Duration::from_secs(1)));
    assert!(e.message.contains("130429"), "{}", e.message);

    let (e, _) = send_text_against(
        400,
        graph_error(131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
    )
    .await;
    assert_eq!(e.kind, SendErrorKind::RetryAfter(Duration::from_secs(6)));

    let (e, _) = send_text_against(400, graph_error(131047, "Re-engagement message")).await;
    assert_eq!(e.kind, SendErrorKind::Failed(ErrorCode::WindowClosed));

    let (e, _) = send_text_against(400, graph_error(131050, "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business")).await;
    assert_eq!(e.kind, SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed));

    let (e, _) = send_text_against(400, graph_error(131026, "Message undeliverable")).await;
    assert_eq!(e.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));

    let (e, _) = send_text_against(400, graph_error(100, "(#100) Invalid parameter")).await;
    assert_eq!(e.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));

    let (e, _) = send_text_against(401, graph_error(190, "Error validating access token: Session has expired")).await;
    assert_eq!(e.kind, SendErrorKind::Failed(ErrorCode::ProviderUnauthorized));

    let (e, _) = send_text_against(500, graph_error(131000, "Something went wrong")).await;
    assert_eq!(e.kind, SendErrorKind::Transient);

    let (e, _) = send_text_against(503, json!({"unexpected": "gateway page"})).await;
    assert_eq!(e.kind, SendErrorKind::Transient);

    let (e, _) = send_text_against(429, json!({})).await;
    assert_eq!(e.kind, SendErrorKind::RetryAfter(Duration::from_secs(10)));
}

#[tokio::test]
async fn a_failed_upload_sends_nothing() {
    let mock = MockApi::start(|_| (400, graph_error(131053, "Media upload error"))).await;
    let body = PartBody::Media { media: media(AttachmentKind::Video, "big.mp4", None), caption: None };
    let e = adapter(&mock.base_url).send(&part(body, None)).await.unwrap_err();
    assert_eq!(e.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].path.ends_with("/media"));
}

#[tokio::test]
async fn success_without_a_message_id_is_not_retried() {
    let mock = MockApi::start(|_| (200, json!({"messaging_product": "whatsapp", "messages": []}))).await;
    let e = adapter(&mock.base_url).send(&part(PartBody::Text("hi".into()), None)).await.unwrap_err();
    assert_eq!(e.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
}

#[tokio::test]
async fn network_errors_are_transient() {
    // Bind a port, then free it, so nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = adapter(&base).send(&part(PartBody::Text("hi".into()), None)).await.unwrap_err();
    assert_eq!(e.kind, SendErrorKind::Transient);
    assert!(!e.message.contains(TOKEN));
}
