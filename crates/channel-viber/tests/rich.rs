//! Keyboards, feedback requests and the missing markers against the Viber API mock.

use chatgate_adapter::{Adapter, ChannelFactory, OutboundPart, PartBody, SendErrorKind};
use chatgate_channel_viber::FACTORY;
use chatgate_model::{Button, ChatAction, ErrorCode, FeedbackAsk};
use chatgate_testkit::mock::MockApi;
use serde_json::json;
use uuid::Uuid;

async fn setup() -> (MockApi, std::sync::Arc<dyn Adapter>) {
    let mock = MockApi::start(|_| {
        (200, json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721105_u64}))
    })
    .await;
    let adapter = FACTORY
        .build("test", json!({"auth_token": "t", "sender_name": "Shop", "api_base_url": mock.base_url}))
        .unwrap();
    (mock, adapter)
}

fn part(id: Uuid, body: PartBody) -> OutboundPart {
    OutboundPart { message_id: id, index: 0, chat_id: "gKk1aVm8QbO7i3Gdx0Zs2w==".into(), reply_to: None, body }
}

#[tokio::test]
async fn buttons_are_a_keyboard_whose_presses_come_back_prefixed() {
    let (mock, adapter) = setup().await;
    let buttons = vec![
        Button { title: "Track".into(), payload: Some("TRACK".into()), url: None, notice: None },
        Button { title: "Site".into(), payload: None, url: Some("https://x.example/".into()), notice: None },
    ];
    adapter.send(&part(Uuid::now_v7(), PartBody::Buttons { text: "Pick".into(), buttons, per_row: 2 })).await.unwrap();
    let body = mock.requests()[0].json();
    assert_eq!((body["type"].as_str(), body["text"].as_str()), (Some("text"), Some("Pick")));
    assert_eq!(
        body["keyboard"],
        json!({"Type": "keyboard", "DefaultHeight": false, "Buttons": [
            {"Columns": 3, "Rows": 1, "ActionType": "reply", "ActionBody": "btn:TRACK", "Text": "Track", "Silent": true},
            {"Columns": 3, "Rows": 1, "ActionType": "open-url", "ActionBody": "https://x.example/", "Text": "Site"}]})
    );
}

#[tokio::test]
async fn feedback_requests_on_each_scale() {
    let (mock, adapter) = setup().await;
    let id = Uuid::now_v7();
    for scale in [2u8, 5, 10] {
        adapter.send(&part(id, PartBody::Feedback(FeedbackAsk { scale, prompt: None }))).await.unwrap();
    }
    let r = mock.requests();
    let keys = |i: usize| r[i].json()["keyboard"]["Buttons"].clone();
    assert_eq!(keys(0).as_array().map(Vec::len), Some(2));
    assert_eq!(keys(0)[0]["Columns"], 3);
    assert_eq!(keys(1)[4]["ActionBody"], format!("fb:{id}:5:5"));
    assert_eq!(keys(1)[4]["Columns"], 1);
    assert_eq!(keys(2).as_array().map(Vec::len), Some(10));
    assert_eq!(keys(2)[6]["Text"], "7");
}

#[tokio::test]
async fn viber_has_no_typing_or_read_marker() {
    let (mock, adapter) = setup().await;
    for action in [ChatAction::Typing, ChatAction::Read] {
        let error = adapter.chat_action("gKk1aVm8QbO7i3Gdx0Zs2w==", action, None).await.unwrap_err();
        assert_eq!(error.kind, SendErrorKind::Failed(ErrorCode::UnsupportedByChannel));
    }
    assert!(mock.requests().is_empty());
}
