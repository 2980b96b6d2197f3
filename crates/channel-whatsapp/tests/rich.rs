//! Buttons, the list fallback, feedback requests on each scale, typing and read: the exact
//! request the Cloud API mock receives.

use std::sync::Arc;

use chatgate_adapter::{Adapter, ChannelFactory, OutboundPart, PartBody, SendErrorKind};
use chatgate_channel_whatsapp::FACTORY;
use chatgate_model::{Button, ChatAction, ErrorCode, FeedbackAsk};
use chatgate_testkit::mock::MockApi;
use serde_json::{Value, json};
use uuid::Uuid;

fn adapter(base_url: &str) -> Arc<dyn Adapter> {
    let settings = json!({"phone_number_id": "1098", "access_token": "tok", "app_secret": "s",
        "verify_token": "v", "api_base_url": base_url});
    FACTORY.build("test", settings).unwrap()
}

async fn mock() -> MockApi {
    MockApi::start(|r| {
        if r.body_contains("\"status\":\"read\"") {
            (200, json!({"success": true}))
        } else {
            (200, json!({"messages": [{"id": "wamid.OUT"}]}))
        }
    })
    .await
}

fn buttons(n: usize) -> Vec<Button> {
    (1..=n)
        .map(|i| Button { title: format!("Option {i}"), payload: Some(format!("P{i}")), url: None, notice: None })
        .collect()
}

fn part(id: Uuid, body: PartBody) -> OutboundPart {
    OutboundPart { message_id: id, index: 0, chat_id: "4915112345678".into(), reply_to: None, body }
}

async fn sent(body: PartBody, id: Uuid) -> Value {
    let mock = mock().await;
    adapter(&mock.base_url).send(&part(id, body)).await.expect("sent");
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/1098/messages");
    requests[0].json()
}

#[tokio::test]
async fn three_buttons_are_reply_buttons_more_a_list_beyond_ten_a_numbered_text() {
    let id = Uuid::now_v7();
    let three = sent(PartBody::Buttons { text: "Pick".into(), buttons: buttons(3), per_row: 1 }, id).await;
    assert_eq!(three["type"], "interactive");
    assert_eq!(
        three["interactive"],
        json!({"type": "button", "body": {"text": "Pick"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "P1", "title": "Option 1"}},
            {"type": "reply", "reply": {"id": "P2", "title": "Option 2"}},
            {"type": "reply", "reply": {"id": "P3", "title": "Option 3"}}]}})
    );
    let four = sent(PartBody::Buttons { text: "Pick".into(), buttons: buttons(4), per_row: 1 }, id).await;
    assert_eq!(four["interactive"]["type"], "list");
    assert_eq!(four["interactive"]["action"]["button"], "Choose");
    assert_eq!(four["interactive"]["action"]["sections"][0]["rows"][3], json!({"id": "P4", "title": "Option 4"}));
    let eleven = sent(PartBody::Buttons { text: "Pick".into(), buttons: buttons(11), per_row: 1 }, id).await;
    assert_eq!(eleven["type"], "text");
    let text = eleven["text"]["body"].as_str().unwrap();
    assert!(text.starts_with("Pick\n\n1. Option 1\n2. Option 2\n"), "{text}");
    assert!(text.ends_with("\n11. Option 11"), "{text}");
}

#[tokio::test]
async fn feedback_requests_on_each_scale() {
    let id = Uuid::now_v7();
    let ask = |scale| PartBody::Feedback(FeedbackAsk { scale, prompt: Some("Rate us".into()) });
    let two = sent(ask(2), id).await;
    assert_eq!(two["interactive"]["type"], "button");
    assert_eq!(two["interactive"]["body"]["text"], "Rate us");
    assert_eq!(
        two["interactive"]["action"]["buttons"][1]["reply"],
        json!({"id": format!("fb:{id}:2:2"), "title": "👍"})
    );
    let five = sent(ask(5), id).await;
    let rows = &five["interactive"]["action"]["sections"][0]["rows"];
    assert_eq!(rows.as_array().unwrap().len(), 5);
    assert_eq!(rows[4], json!({"id": format!("fb:{id}:5:5"), "title": "★★★★★"}));
    let ten = sent(ask(10), id).await;
    let rows = &ten["interactive"]["action"]["sections"][0]["rows"];
    assert_eq!(rows.as_array().unwrap().len(), 10);
    assert_eq!(rows[9], json!({"id": format!("fb:{id}:10:10"), "title": "10"}));
}

#[tokio::test]
async fn typing_and_read_mark_the_customers_message_read() {
    let mock = mock().await;
    let a = adapter(&mock.base_url);
    a.chat_action("4915112345678", ChatAction::Typing, Some("wamid.IN")).await.expect("typing");
    a.chat_action("4915112345678", ChatAction::Read, Some("wamid.IN")).await.expect("read");
    let r = mock.requests();
    assert_eq!(
        r[0].json(),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN", "typing_indicator": {"type": "text"}})
    );
    assert_eq!(r[1].json(), json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}));
    let error = a.chat_action("4915112345678", ChatAction::Typing, None).await.unwrap_err();
    assert_eq!(error.kind, SendErrorKind::Failed(ErrorCode::InvalidRequest));
    assert_eq!(mock.requests().len(), 2, "nothing sent without a message id");
}
