//! `send()` against a recording stand-in for api.vk.com and VK's upload servers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatgate_adapter::{Adapter, ChannelFactory, Media, OutboundPart, PartBody, SendErrorKind, SendReceipt};
use chatgate_channel_vk::FACTORY;
use chatgate_channel_vk::random_id;
use chatgate_model::ErrorCode;
use chatgate_model::{AttachmentKind, Status, Template};
use chatgate_testkit::mock::{MockApi, Recorded};
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "test-community-token";
const USER: &str = "512345678";

fn adapter(base: &str) -> Arc<dyn Adapter> {
    FACTORY
        .build(
            "test",
            json!({
                "group_id": 229000001,
                "access_token": TOKEN,
                "secret": "test-secret",
                "confirmation": "a1b2c3d4",
                "api_base_url": format!("{base}/method"),
            }),
        )
        .unwrap()
}

/// A VK stand-in: the upload flow is answered as VK does; `messages.send` by `answer`.
async fn vk(answer: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static) -> MockApi {
    MockApi::start(move |r| {
        let host = r.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
        match r.path.as_str() {
            "/method/photos.getMessagesUploadServer" => (
                200,
                json!({"response": {"album_id": -64, "upload_url": format!("http://{host}/upload/photo?act=do_add&mid=0&aid=-64&gid=229000001&hash=9f1e"), "user_id": 0, "group_id": 229000001}}),
            ),
            "/upload/photo" => (200, json!({"server": 851234, "photo": "[{\"markers_restarted\":true,\"photo\":\"4c7e2a:w\"}]", "hash": "f3a9c1"})),
            "/method/photos.saveMessagesPhoto" => (
                200,
                json!({"response": [{"album_id": -64, "date": 1717236200, "id": 457240555, "owner_id": -229000001, "access_key": "ak1", "sizes": [], "text": ""}]}),
            ),
            "/method/docs.getMessagesUploadServer" => {
                (200, json!({"response": {"upload_url": format!("http://{host}/upload/doc?act=add_doc&mid=0&hash=77a1")}}))
            }
            "/upload/doc" => (200, json!({"file": "512345678|0|0|851234|c1e0|pdf|182733|report.pdf|9f0e|d41d|0|0|0"})),
            "/method/docs.save" => (
                200,
                json!({"response": {"type": "doc", "doc": {"id": 664209999, "owner_id": -229000001, "title": "report.pdf", "size": 5, "ext": "pdf", "url": "https://vk.com/doc-229000001_664209999", "date": 1717236200, "type": 1}}}),
            ),
            "/method/messages.send" => answer(r),
            _ => (404, json!({"error": "unexpected path"})),
        }
    })
    .await
}

fn sent(id: i64) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |_| (200, json!({"response": id}))
}

fn vk_error(code: i64, message: &'static str) -> impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static {
    move |_| {
        (
            200,
            json!({"error": {"error_code": code, "error_msg": message, "request_params": [{"key": "method", "value": "messages.send"}]}}),
        )
    }
}

fn form(r: &Recorded) -> HashMap<String, String> {
    url::form_urlencoded::parse(&r.body).into_owned().collect()
}

fn part(message_id: Uuid, index: u32, chat: &str, body: PartBody) -> OutboundPart {
    OutboundPart { message_id, index, chat_id: chat.to_owned(), reply_to: None, body }
}

fn text(s: &str) -> PartBody {
    PartBody::Text(s.to_owned())
}

fn media(kind: AttachmentKind, name: &str, mime: &str, bytes: &'static [u8]) -> PartBody {
    PartBody::Media {
        media: Media {
            kind,
            name: name.to_owned(),
            mime: Some(mime.to_owned()),
            bytes: Bytes::from_static(bytes),
            source_url: "https://core.example/files/1".to_owned(),
        },
        caption: None,
    }
}

const MESSAGE: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

#[tokio::test]
async fn text_goes_to_messages_send_with_token_version_and_random_id() {
    let mock = vk(sent(2101)).await;
    let receipt = adapter(&mock.base_url).send(&part(MESSAGE, 0, USER, text("Заказ №1042 передан курьеру"))).await;
    assert_eq!(receipt, Ok(SendReceipt { external_id: "2101".into(), status: Status::Sent }));
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("POST", "/method/messages.send"));
    assert_eq!(requests[0].query, None, "nothing, least of all the token, travels in the URL");
    let f = form(&requests[0]);
    assert_eq!(f["peer_id"], USER);
    assert_eq!(f["message"], "Заказ №1042 передан курьеру");
    assert_eq!(f["random_id"], random_id(MESSAGE, 0).to_string());
    assert_eq!(f["access_token"], TOKEN);
    assert_eq!(f["v"], "5.199");
    assert!(!f.contains_key("reply_to") && !f.contains_key("attachment") && !f.contains_key("peer_ids"));
}

#[tokio::test]
async fn reply_to_a_message_id_and_to_a_group_chat_message() {
    let mock = vk(sent(2102)).await;
    let vk_adapter = adapter(&mock.base_url);
    let mut p = part(MESSAGE, 0, USER, text("Да"));
    p.reply_to = Some("2040".into());
    vk_adapter.send(&p).await.unwrap();
    assert_eq!(form(&mock.requests()[0])["reply_to"], "2040");

    let mut p = part(MESSAGE, 0, "2000000007", text("Завтра"));
    p.reply_to = Some("cmid:2000000007:3186".into());
    vk_adapter.send(&p).await.unwrap();
    let f = form(&mock.requests()[1]);
    assert!(!f.contains_key("reply_to"));
    let forward: Value = serde_json::from_str(&f["forward"]).unwrap();
    assert_eq!(forward, json!({"peer_id": 2000000007_i64, "conversation_message_ids": [3186], "is_reply": true}));

    let mut p = part(MESSAGE, 0, USER, text("?"));
    p.reply_to = Some("wamid.XYZ".into());
    let err = vk_adapter.send(&p).await.unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    assert_eq!(mock.requests().len(), 2, "a bad reply_to is refused before calling VK");
}

#[tokio::test]
async fn group_chats_use_peer_ids_and_name_the_conversation_message_id() {
    let mock = vk(|_| {
        (200, json!({"response": [{"peer_id": 2000000007_i64, "message_id": 0, "conversation_message_id": 3190}]}))
    })
    .await;
    let receipt = adapter(&mock.base_url).send(&part(MESSAGE, 0, "2000000007", text("Всем привет"))).await.unwrap();
    assert_eq!(receipt.external_id, "cmid:2000000007:3190");
    let f = form(&mock.requests()[0]);
    assert_eq!(f["peer_ids"], "2000000007");
    assert!(!f.contains_key("peer_id"));

    let mock = vk(|_| (200, json!({"response": [{"peer_id": 2000000007_i64, "error": {"code": 917, "description": "You don't have access to this chat"}}]}))).await;
    let err = adapter(&mock.base_url).send(&part(MESSAGE, 0, "2000000007", text("x"))).await.unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    assert!(err.message.contains("917"), "{}", err.message);
}

#[tokio::test]
async fn photo_goes_through_the_photo_upload_server() {
    let mock = vk(sent(2103)).await;
    let mut body = media(AttachmentKind::Image, "box.png", "image/png", b"\x89PNG\r\n\x1a\nfake");
    if let PartBody::Media { caption, .. } = &mut body {
        *caption = Some("Вот фото".into());
    }
    let receipt = adapter(&mock.base_url).send(&part(MESSAGE, 1, USER, body)).await.unwrap();
    assert_eq!(receipt.external_id, "2103");
    let r = mock.requests();
    let paths: Vec<&str> = r.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/method/photos.getMessagesUploadServer",
            "/upload/photo",
            "/method/photos.saveMessagesPhoto",
            "/method/messages.send"
        ]
    );
    assert_eq!(form(&r[0])["peer_id"], USER);
    assert_eq!(form(&r[0])["access_token"], TOKEN);
    assert_eq!(r[1].query.as_deref(), Some("act=do_add&mid=0&aid=-64&gid=229000001&hash=9f1e"));
    assert!(r[1].body_contains("name=\"photo\""), "multipart field `photo`");
    assert!(r[1].body_contains("filename=\"box.png\""));
    assert!(r[1].body.windows(8).any(|w| w == b"\x89PNG\r\n\x1a\n"), "the file's bytes");
    assert!(!r[1].body_contains(TOKEN), "the upload server gets no token");
    let save = form(&r[2]);
    assert_eq!(save["server"], "851234");
    assert_eq!(save["photo"], "[{\"markers_restarted\":true,\"photo\":\"4c7e2a:w\"}]");
    assert_eq!(save["hash"], "f3a9c1");
    let send = form(&r[3]);
    assert_eq!(send["attachment"], "photo-229000001_457240555_ak1");
    assert_eq!(send["message"], "Вот фото");
    assert_eq!(send["random_id"], random_id(MESSAGE, 1).to_string());
}

#[tokio::test]
async fn files_audio_and_video_go_as_documents() {
    for (kind, name, mime) in [
        (AttachmentKind::File, "report.pdf", "application/pdf"),
        (AttachmentKind::Audio, "note.ogg", "audio/ogg"),
        (AttachmentKind::Video, "clip.mp4", "video/mp4"),
    ] {
        let mock = vk(sent(2104)).await;
        let receipt = adapter(&mock.base_url).send(&part(MESSAGE, 2, USER, media(kind, name, mime, b"%PDF-"))).await;
        assert_eq!(receipt.map(|r| r.external_id), Ok("2104".to_owned()), "{name}");
        let r = mock.requests();
        let paths: Vec<&str> = r.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/method/docs.getMessagesUploadServer", "/upload/doc", "/method/docs.save", "/method/messages.send"]
        );
        let server = form(&r[0]);
        assert_eq!((server["peer_id"].as_str(), server["type"].as_str()), (USER, "doc"));
        assert!(r[1].body_contains("name=\"file\""), "multipart field `file`");
        assert!(r[1].body_contains(&format!("filename=\"{name}\"")));
        assert!(r[1].body_contains(&format!("Content-Type: {mime}")));
        let save = form(&r[2]);
        assert_eq!(save["file"], "512345678|0|0|851234|c1e0|pdf|182733|report.pdf|9f0e|d41d|0|0|0");
        assert_eq!(save["title"], name);
        let send = form(&r[3]);
        assert_eq!(send["attachment"], "doc-229000001_664209999");
        assert!(!send.contains_key("message"), "no caption, no text");
    }
}

#[tokio::test]
async fn upload_refusals_fail_the_part() {
    let mock = MockApi::start(|r| {
        let host = r.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
        match r.path.as_str() {
            "/method/photos.getMessagesUploadServer" | "/method/docs.getMessagesUploadServer" => {
                (200, json!({"response": {"upload_url": format!("http://{host}/upload")}}))
            }
            _ if r.body_contains("name=\"photo\"") => (200, json!({"server": 1, "photo": "[]", "hash": "x"})),
            _ => (200, json!({"error": "ERR_UPLOAD_BAD_FILE_EXTENSION", "error_descr": "mp3 is not allowed"})),
        }
    })
    .await;
    let vk_adapter = adapter(&mock.base_url);
    let err = vk_adapter
        .send(&part(MESSAGE, 0, USER, media(AttachmentKind::Image, "x.bin", "image/png", b"xx")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    let err = vk_adapter
        .send(&part(MESSAGE, 0, USER, media(AttachmentKind::Audio, "song.mp3", "audio/mpeg", b"ID3")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    assert!(err.message.contains("mp3 is not allowed"), "{}", err.message);
    assert!(mock.requests().iter().all(|r| r.path != "/method/messages.send"));
}

#[tokio::test]
async fn stickers_and_templates_are_refused_without_calls() {
    let mock = vk(sent(1)).await;
    let vk_adapter = adapter(&mock.base_url);
    let err = vk_adapter
        .send(&part(MESSAGE, 0, USER, media(AttachmentKind::Sticker, "s.webp", "image/webp", b"RIFF")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::AttachmentKindUnsupported));
    let template = PartBody::Template(Template { name: "t".into(), language: "ru".into(), components: vec![] });
    let err = vk_adapter.send(&part(MESSAGE, 0, USER, template)).await.unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::AttachmentKindUnsupported));
    let err = vk_adapter.send(&part(MESSAGE, 0, "not-a-peer", text("x"))).await.unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Failed(ErrorCode::ProviderRejected));
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn random_id_is_stable_per_part_and_distinct_across_parts() {
    let mock = vk(sent(2105)).await;
    let vk_adapter = adapter(&mock.base_url);
    let first = part(MESSAGE, 0, USER, text("a"));
    vk_adapter.send(&first).await.unwrap();
    vk_adapter.send(&first).await.unwrap(); // a retry of the same part
    vk_adapter.send(&part(MESSAGE, 1, USER, text("b"))).await.unwrap();
    let other = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
    vk_adapter.send(&part(other, 0, USER, text("c"))).await.unwrap();
    let ids: Vec<String> = mock.requests().iter().map(|r| form(r)["random_id"].clone()).collect();
    assert_eq!(ids[0], ids[1], "a retry carries the same random_id");
    assert_ne!(ids[0], ids[2], "another part of the message");
    assert_ne!(ids[0], ids[3], "another message");

    // Always a positive int32 (0 would switch VK's check off), and spread out.
    let mut seen = std::collections::HashSet::new();
    for n in 0..2000u128 {
        let id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n);
        for index in 0..3 {
            let r = random_id(id, index);
            assert!(r > 0, "{r}");
            seen.insert(r);
        }
    }
    assert_eq!(seen.len(), 6000, "no collisions among 6000 parts");
    assert_eq!(random_id(MESSAGE, 0), random_id(MESSAGE, 0));
}

#[tokio::test]
async fn vk_errors_map_to_retry_or_failure() {
    let cases: Vec<(i64, &'static str, SendErrorKind)> = vec![
        (6, "Too many requests per second", SendErrorKind::AccountRetryAfter(Duration::from_secs(1))),
        (9, "Flood control", SendErrorKind::RetryAfter(Duration::from_secs(60))),
        (10, "Internal server error", SendErrorKind::Transient),
        (
            5,
            "User authorization failed: invalid access_token (4).",
            SendErrorKind::Failed(ErrorCode::ProviderUnauthorized),
        ),
        (
            901,
            "Can't send messages for users without permission",
            SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed),
        ),
        (
            902,
            "Can't send messages to this user due to their privacy settings",
            SendErrorKind::Failed(ErrorCode::CustomerUnsubscribed),
        ),
        (914, "Message is too long", SendErrorKind::Failed(ErrorCode::ProviderRejected)),
        (
            100,
            "One of the parameters specified was missing or invalid",
            SendErrorKind::Failed(ErrorCode::ProviderRejected),
        ),
    ];
    for (code, message, kind) in cases {
        let mock = vk(vk_error(code, message)).await;
        let err = adapter(&mock.base_url).send(&part(MESSAGE, 0, USER, text("x"))).await.unwrap_err();
        assert_eq!(err.kind, kind, "error {code}");
        assert!(err.message.contains(&code.to_string()) && err.message.contains(message), "{}", err.message);
        assert!(!err.message.contains(TOKEN));
    }
}

#[tokio::test]
async fn http_failures_are_transient_or_rejected() {
    for (status, kind) in [
        (500, SendErrorKind::Transient),
        (502, SendErrorKind::Transient),
        (429, SendErrorKind::AccountRetryAfter(Duration::from_secs(1))),
        (404, SendErrorKind::Failed(ErrorCode::ProviderRejected)),
    ] {
        let mock = vk(move |_| (status, json!({}))).await;
        let err = adapter(&mock.base_url).send(&part(MESSAGE, 0, USER, text("x"))).await.unwrap_err();
        assert_eq!(err.kind, kind, "HTTP {status}");
    }
    // Nothing listens: a network error, without the URL or the token in the message.
    let unreachable = adapter("http://127.0.0.1:9");
    let err = unreachable.send(&part(MESSAGE, 0, USER, text("x"))).await.unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Transient);
    assert!(!err.message.contains(TOKEN) && !err.message.contains("127.0.0.1:9"), "{}", err.message);
    // An answer VK never gives: retrying is safe thanks to random_id.
    let mock = vk(|_| (200, json!({"response": {"surprise": true}}))).await;
    let err = adapter(&mock.base_url).send(&part(MESSAGE, 0, USER, text("x"))).await.unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Transient);
}
