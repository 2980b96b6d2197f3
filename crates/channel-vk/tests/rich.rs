//! Inline keyboards, feedback requests, typing, read and press answers against the VK API mock.

use chatgate_adapter::{Adapter, ChannelFactory, OutboundPart, PartBody, Press};
use chatgate_channel_vk::FACTORY;
use chatgate_model::{Button, ChatAction, FeedbackAsk};
use chatgate_testkit::mock::{MockApi, Recorded};
use serde_json::{Value, json};
use uuid::Uuid;

async fn setup() -> (MockApi, std::sync::Arc<dyn Adapter>) {
    let mock = MockApi::start(|_| (200, json!({"response": 1}))).await;
    let adapter = FACTORY
        .build(
            "test",
            json!({"group_id": 229000001, "access_token": "tok", "secret": "s", "confirmation": "c", "api_base_url": mock.base_url}),
        )
        .unwrap();
    (mock, adapter)
}

fn form(r: &Recorded, key: &str) -> Option<String> {
    url::form_urlencoded::parse(&r.body).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

fn keyboard(r: &Recorded) -> Value {
    serde_json::from_str(&form(r, "keyboard").expect("a keyboard")).unwrap()
}

fn part(id: Uuid, body: PartBody) -> OutboundPart {
    OutboundPart { message_id: id, index: 0, chat_id: "512345678".into(), reply_to: None, body }
}

#[tokio::test]
async fn buttons_are_callback_buttons_beyond_ten_a_numbered_list() {
    let (mock, adapter) = setup().await;
    let b = |i: usize| Button { title: format!("B{i}"), payload: Some(format!("P{i}")), url: None, notice: None };
    adapter
        .send(&part(Uuid::now_v7(), PartBody::Buttons { text: "Pick".into(), buttons: vec![b(1), b(2)], per_row: 2 }))
        .await
        .unwrap();
    let many: Vec<Button> = (1..=11).map(b).collect();
    adapter
        .send(&part(Uuid::now_v7(), PartBody::Buttons { text: "Pick".into(), buttons: many, per_row: 1 }))
        .await
        .unwrap();
    let r = mock.requests();
    assert_eq!(r[0].path, "/messages.send");
    assert_eq!(
        keyboard(&r[0]),
        json!({"inline": true, "buttons": [[
            {"action": {"type": "callback", "label": "B1", "payload": "{\"p\":\"P1\"}"}},
            {"action": {"type": "callback", "label": "B2", "payload": "{\"p\":\"P2\"}"}}]]})
    );
    assert_eq!(form(&r[1], "keyboard"), None);
    assert!(form(&r[1], "message").unwrap().ends_with("10. B10\n11. B11"));
}

#[tokio::test]
async fn feedback_requests_on_each_scale() {
    let (mock, adapter) = setup().await;
    let id = Uuid::now_v7();
    for scale in [2u8, 5, 10] {
        adapter.send(&part(id, PartBody::Feedback(FeedbackAsk { scale, prompt: Some("Rate".into()) }))).await.unwrap();
    }
    let r = mock.requests();
    assert_eq!(form(&r[0], "message").as_deref(), Some("Rate"));
    assert_eq!(keyboard(&r[0])["buttons"][0].as_array().unwrap().len(), 2);
    assert_eq!(keyboard(&r[1])["buttons"][0][4]["action"]["payload"], json!({"p": format!("fb:{id}:5:5")}).to_string());
    let ten = keyboard(&r[2]);
    assert_eq!(ten["buttons"].as_array().unwrap().len(), 2);
    assert_eq!(ten["buttons"][1][4]["action"]["label"], "10");
}

#[tokio::test]
async fn typing_read_and_press_answers() {
    let (mock, adapter) = setup().await;
    adapter.chat_action("512345678", ChatAction::Typing, None).await.unwrap();
    adapter.chat_action("512345678", ChatAction::Read, Some("1201")).await.unwrap();
    let press = Press { id: "3159dc190b1f".into(), user_id: "512345678".into(), peer_id: "512345678".into() };
    adapter.answer_press(&press, Some("Thanks")).await.unwrap();
    let r = mock.requests();
    assert_eq!(r[0].path, "/messages.setActivity");
    assert_eq!(form(&r[0], "type").as_deref(), Some("typing"));
    assert_eq!(form(&r[0], "peer_id").as_deref(), Some("512345678"));
    assert_eq!(r[1].path, "/messages.markAsRead");
    assert_eq!(form(&r[1], "start_message_id").as_deref(), Some("1201"));
    assert_eq!(r[2].path, "/messages.sendMessageEventAnswer");
    assert_eq!(form(&r[2], "event_id").as_deref(), Some("3159dc190b1f"));
    assert_eq!(
        serde_json::from_str::<Value>(&form(&r[2], "event_data").unwrap()).unwrap(),
        json!({"type": "show_snackbar", "text": "Thanks"})
    );
}
