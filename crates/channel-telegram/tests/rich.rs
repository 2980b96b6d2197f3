//! Inline keyboards, feedback requests, typing and press answers against the Bot API mock.

use chatgate_adapter::{Adapter, ChannelFactory, OutboundPart, PartBody, Press, SendErrorKind};
use chatgate_channel_telegram::FACTORY;
use chatgate_model::{Button, ChatAction, ErrorCode, FeedbackAsk};
use chatgate_testkit::mock::MockApi;
use serde_json::json;
use uuid::Uuid;

const TOKEN: &str = "4242:RichTestToken";

async fn setup() -> (MockApi, std::sync::Arc<dyn Adapter>) {
    let mock = MockApi::start(|r| {
        if r.path.to_ascii_lowercase().ends_with("/sendmessage") {
            (200, json!({"ok": true, "result": {"message_id": 7, "date": 1718000000, "chat": {"id": 5, "type": "private", "first_name": "M"}}}))
        } else {
            (200, json!({"ok": true, "result": true}))
        }
    })
    .await;
    let adapter =
        FACTORY.build("test", json!({"bot_token": TOKEN, "secret_token": "s", "api_base_url": mock.base_url})).unwrap();
    (mock, adapter)
}

fn part(id: Uuid, body: PartBody) -> OutboundPart {
    OutboundPart { message_id: id, index: 0, chat_id: "5".into(), reply_to: None, body }
}

#[tokio::test]
async fn buttons_are_an_inline_keyboard_with_the_layout_hint() {
    let (mock, adapter) = setup().await;
    let buttons = vec![
        Button { title: "Yes".into(), payload: Some("Y".into()), url: None, notice: None },
        Button { title: "No".into(), payload: Some("N".into()), url: None, notice: None },
        Button { title: "Site".into(), payload: None, url: Some("https://example.com/".into()), notice: None },
    ];
    adapter.send(&part(Uuid::now_v7(), PartBody::Buttons { text: "Sure?".into(), buttons, per_row: 2 })).await.unwrap();
    let body = mock.requests()[0].json();
    assert_eq!(body["text"], "Sure?");
    assert_eq!(
        body["reply_markup"]["inline_keyboard"],
        json!([[{"text": "Yes", "callback_data": "Y"}, {"text": "No", "callback_data": "N"}],
               [{"text": "Site", "url": "https://example.com/"}]])
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
    let rows = |i: usize| r[i].json()["reply_markup"]["inline_keyboard"].clone();
    assert_eq!(r[0].json()["text"], "How would you rate this conversation?");
    assert_eq!(
        rows(0),
        json!([[{"text": "👎", "callback_data": format!("fb:{id}:2:1")}, {"text": "👍", "callback_data": format!("fb:{id}:2:2")}]])
    );
    assert_eq!(rows(1).as_array().unwrap().len(), 1);
    assert_eq!(rows(1)[0][2], json!({"text": "★★★", "callback_data": format!("fb:{id}:5:3")}));
    assert_eq!(rows(2).as_array().unwrap().len(), 2, "10 scores in two rows of 5");
    assert_eq!(rows(2)[1][4], json!({"text": "10", "callback_data": format!("fb:{id}:10:10")}));
}

#[tokio::test]
async fn typing_is_send_chat_action_read_is_unsupported_and_presses_are_answered() {
    let (mock, adapter) = setup().await;
    adapter.chat_action("5", ChatAction::Typing, None).await.unwrap();
    let error = adapter.chat_action("5", ChatAction::Read, None).await.unwrap_err();
    assert_eq!(error.kind, SendErrorKind::Failed(ErrorCode::UnsupportedByChannel));
    let press = Press { id: "2249913573901236177".into(), user_id: "5".into(), peer_id: "5".into() };
    adapter.answer_press(&press, Some("Noted")).await.unwrap();
    let r = mock.requests();
    assert_eq!(r.len(), 2);
    assert!(r[0].path.eq_ignore_ascii_case(&format!("/bot{TOKEN}/sendChatAction")));
    assert_eq!(r[0].json(), json!({"chat_id": 5, "action": "typing"}));
    assert!(r[1].path.eq_ignore_ascii_case(&format!("/bot{TOKEN}/answerCallbackQuery")));
    assert_eq!(r[1].json(), json!({"callback_query_id": "2249913573901236177", "text": "Noted"}));
}
