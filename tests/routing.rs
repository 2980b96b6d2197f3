//! One Meta app, several accounts: Meta posts the webhooks of every Page, Instagram account and
//! WhatsApp number of an app to the app's one callback URL, so a body that arrives on one
//! account's URL may carry items of another. Each item must reach the account that owns it
//! (Page id, Instagram account id, `phone_number_id`), and only an account sharing the app
//! secret may receive it; an item of no such account is logged, counted and answered 200.
//! Through the whole gateway (`Harness`), with two accounts on one app secret.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chatgate_adapter::Adapter;
use chatgate_testkit::gateway::Harness;
use serde_json::{Value, json};

const SHARED_SECRET: &str = "one-app-secret";

fn account(kind: &str, id: &str, settings: Value) -> Arc<dyn Adapter> {
    let factory = chatgate::registry::factory(kind).unwrap();
    factory.build(id, settings).unwrap_or_else(|e| panic!("{kind}/{id}: {e}"))
}

fn page(page_id: &str, app_secret: &str) -> Value {
    json!({"page_id": page_id, "page_access_token": format!("token-{page_id}"), "app_secret": app_secret,
           "verify_token": "vt", "api_base_url": "http://127.0.0.1:9/v26.0"})
}

/// Posts `body` to `/webhooks/{kind}/{account}`, signed with `secret` as Meta signs it.
async fn post(h: &Harness, kind: &str, account: &str, body: &Value, secret: &str) -> (StatusCode, String) {
    let body = serde_json::to_vec(body).unwrap();
    let signature = chatgate_adapter::meta::signature(secret, &body);
    let headers = [("content-type", "application/json"), ("x-hub-signature-256", signature.as_str())];
    h.request(Method::POST, &format!("/webhooks/{kind}/{account}"), &headers, body).await
}

fn text_item(page: &str, sender: &str, mid: &str) -> Value {
    json!({"id": page, "time": 1763712400100_u64, "messaging": [{"sender": {"id": sender}, "recipient": {"id": page},
           "timestamp": 1763712400000_u64, "message": {"mid": mid, "text": format!("to {page}")}}]})
}

/// (account, chat_id, external id) of every event on the log.
async fn stored(h: &Harness) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = h
        .events()
        .await
        .iter()
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (text(&e["account"]), text(&e["chat_id"]), text(&e["message"]["external_id"]))
        })
        .collect();
    out.sort();
    out
}

async fn unrouted(h: &Harness, channel: &str, account: &str) -> String {
    let (_, metrics) = h.request(Method::GET, "/metrics", &[], "").await;
    let prefix = format!("chatgate_inbound_unrouted_total{{channel=\"{channel}\",account=\"{account}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("{prefix}: {metrics}")).to_owned()
}

#[tokio::test]
async fn messenger_entries_reach_the_page_that_owns_them_whichever_url_they_arrive_on() {
    let h = Harness::start(vec![
        account("messenger", "shop", page("1001", SHARED_SECRET)),
        account("messenger", "support", page("1002", SHARED_SECRET)),
        // Same channel, another app: it must never receive the app's items.
        account("messenger", "other-app", page("1003", "another-app-secret")),
    ])
    .await;
    let body = json!({"object": "page", "entry": [
        text_item("1001", "psid-a", "m_a"),
        text_item("1002", "psid-b", "m_b"),
        text_item("1003", "psid-c", "m_c"),
        text_item("1999", "psid-d", "m_d"),
    ]});
    let (status, _) = post(&h, "messenger", "support", &body, SHARED_SECRET).await;
    assert_eq!(status, StatusCode::OK, "items of unknown Pages are answered 200, never retried");
    assert_eq!(
        stored(&h).await,
        [
            ("shop".to_owned(), "psid-a".to_owned(), "m_a".to_owned()),
            ("support".to_owned(), "psid-b".to_owned(), "m_b".to_owned()),
        ]
    );
    assert_eq!(unrouted(&h, "messenger", "support").await, "2", "Page 1003 (another secret) and 1999 (unknown)");
    assert_eq!(unrouted(&h, "messenger", "shop").await, "0");

    // A redelivery on the other account's URL is the same items: stored once.
    let (status, _) = post(&h, "messenger", "shop", &body, SHARED_SECRET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored(&h).await.len(), 2);
    // The account of another app answers its own URL only with its own secret.
    let (status, _) = post(&h, "messenger", "other-app", &body, SHARED_SECRET).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn instagram_entries_are_routed_by_the_instagram_account_id() {
    let ig = |ig_id: &str, page_id: &str| {
        let mut settings = page(page_id, SHARED_SECRET);
        settings["instagram_account_id"] = json!(ig_id);
        settings
    };
    let h = Harness::start(vec![
        account("instagram", "brand-a", ig("17841400000000001", "2001")),
        account("instagram", "brand-b", ig("17841400000000002", "2002")),
    ])
    .await;
    let mut body = json!({"object": "instagram", "entry": [
        text_item("17841400000000001", "igsid-1", "ig_m1"),
        text_item("17841400000000002", "igsid-2", "ig_m2"),
    ]});
    body["entry"][1]["messaging"][0]["message"]["attachments"] =
        json!([{"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"}}]);
    let (status, _) = post(&h, "instagram", "brand-a", &body, SHARED_SECRET).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stored(&h).await,
        [
            ("brand-a".to_owned(), "igsid-1".to_owned(), "ig_m1".to_owned()),
            ("brand-b".to_owned(), "igsid-2".to_owned(), "ig_m2".to_owned()),
        ]
    );
}

#[tokio::test]
async fn whatsapp_changes_reach_their_number_with_their_own_media_references() {
    let number = |id: &str| {
        json!({"phone_number_id": id, "access_token": format!("token-{id}"), "app_secret": SHARED_SECRET,
               "verify_token": "vt", "api_base_url": "http://127.0.0.1:9/v26.0"})
    };
    let h =
        Harness::start(vec![account("whatsapp", "sales", number("5001")), account("whatsapp", "care", number("5002"))])
            .await;
    let change = |number: &str, from: &str, wamid: &str| {
        json!({"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
            "contacts": [{"profile": {"name": "Kim"}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": "1763712009", "type": "image",
                          "image": {"id": format!("media-{wamid}"), "mime_type": "image/jpeg"}}]}})
    };
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "waba-1", "changes": [
        change("5001", "4915100000001", "wamid.S1"),
        change("5002", "4915100000002", "wamid.C1"),
        change("5999", "4915100000003", "wamid.X1"),
    ]}]});
    let (status, _) = post(&h, "whatsapp", "sales", &body, SHARED_SECRET).await;
    assert_eq!(status, StatusCode::OK);
    let events = h.events().await;
    let media: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["account"].as_str().unwrap(), e["message"]["attachments"][0]["media"].as_str().unwrap()))
        .collect();
    assert_eq!(media, [("sales", "whatsapp:sales:media-wamid.S1"), ("care", "whatsapp:care:media-wamid.C1")]);
    assert_eq!(unrouted(&h, "whatsapp", "sales").await, "1");
}
