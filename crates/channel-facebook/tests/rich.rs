//! Quick replies, the numbered fallback, feedback requests and sender actions against the Send API mock.

use std::sync::Arc;

use chatgate_adapter::{Adapter, ChannelFactory, OutboundPart, PartBody};
use chatgate_channel_facebook::{INSTAGRAM_FACTORY, MESSENGER_FACTORY};
use chatgate_model::{Button, ChatAction, FeedbackAsk};
use chatgate_testkit::mock::MockApi;
use serde_json::{Value, json};
use uuid::Uuid;

async fn setup(factory: &dyn ChannelFactory) -> (MockApi, Arc<dyn Adapter>) {
    let mock = MockApi::start(|_| (200, json!({"recipient_id": "psid-1", "message_id": "m_1"}))).await;
    let mut settings = json!({"page_id": "104060651234567", "page_access_token": "tok", "app_secret": "s",
        "verify_token": "v", "api_base_url": mock.base_url});
    if factory.channel().as_str() == "instagram" {
        settings["instagram_account_id"] = "17841405309211844".into();
    }
    let adapter = factory.build("test", settings).unwrap();
    (mock, adapter)
}

fn part(id: Uuid, body: PartBody) -> OutboundPart {
    OutboundPart { message_id: id, index: 0, chat_id: "psid-1".into(), reply_to: None, body }
}

fn buttons(n: usize) -> Vec<Button> {
    (1..=n)
        .map(|i| Button { title: format!("B{i}"), payload: Some(format!("P{i}")), url: None, notice: None })
        .collect()
}

#[tokio::test]
async fn buttons_are_quick_replies_up_to_13_then_a_numbered_list() {
    let (mock, adapter) = setup(&MESSENGER_FACTORY).await;
    let id = Uuid::now_v7();
    adapter.send(&part(id, PartBody::Buttons { text: "Pick".into(), buttons: buttons(2), per_row: 1 })).await.unwrap();
    adapter.send(&part(id, PartBody::Buttons { text: "Pick".into(), buttons: buttons(14), per_row: 1 })).await.unwrap();
    let link =
        vec![Button { title: "Site".into(), payload: None, url: Some("https://x.example/".into()), notice: None }];
    adapter.send(&part(id, PartBody::Buttons { text: "See".into(), buttons: link, per_row: 1 })).await.unwrap();
    let r = mock.requests();
    assert_eq!(r[0].path, "/104060651234567/messages");
    assert_eq!(
        r[0].json()["message"],
        json!({"text": "Pick", "quick_replies": [
            {"content_type": "text", "title": "B1", "payload": "P1"},
            {"content_type": "text", "title": "B2", "payload": "P2"}]})
    );
    let listed = r[1].json()["message"]["text"].as_str().unwrap().to_owned();
    assert!(listed.starts_with("Pick\n\n1. B1\n") && listed.ends_with("\n14. B14"), "{listed}");
    assert_eq!(r[2].json()["message"], json!({"text": "See\n\n1. Site: https://x.example/"}));
}

#[tokio::test]
async fn feedback_requests_on_each_scale_on_instagram() {
    let (mock, adapter) = setup(&INSTAGRAM_FACTORY).await;
    let id = Uuid::now_v7();
    for scale in [2u8, 5, 10] {
        adapter.send(&part(id, PartBody::Feedback(FeedbackAsk { scale, prompt: Some("Rate".into()) }))).await.unwrap();
    }
    let r = mock.requests();
    let replies = |i: usize| r[i].json()["message"]["quick_replies"].clone();
    assert_eq!(r[0].json()["message"]["text"], "Rate");
    assert_eq!(replies(0)[0], json!({"content_type": "text", "title": "👎", "payload": format!("fb:{id}:2:1")}));
    assert_eq!(replies(1).as_array().map(Vec::len), Some(5));
    assert_eq!(replies(2).as_array().map(Vec::len), Some(10));
    assert_eq!(replies(2)[9]["payload"], Value::from(format!("fb:{id}:10:10")));
}

#[tokio::test]
async fn typing_and_read_are_sender_actions() {
    let (mock, adapter) = setup(&MESSENGER_FACTORY).await;
    adapter.chat_action("psid-1", ChatAction::Typing, None).await.unwrap();
    adapter.chat_action("psid-1", ChatAction::Read, None).await.unwrap();
    let r = mock.requests();
    assert_eq!(r[0].json(), json!({"recipient": {"id": "psid-1"}, "sender_action": "typing_on"}));
    assert_eq!(r[1].json(), json!({"recipient": {"id": "psid-1"}, "sender_action": "mark_seen"}));
}
