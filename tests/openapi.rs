//! The OpenAPI document: committed and current, served, every documented operation routed (and
//! nothing routed undocumented), and the handlers' real answers fit the documented types.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use chatgate_model::MessageRecord;
use chatgate_server::openapi::{self, ErrorBody, EventsPage, Readiness};
use chatgate_server::{Accepted, AccountList, BlockState, ConversationState};
use chatgate_testkit::account_settings;
use chatgate_testkit::gateway::{Harness, TOKEN};
use chatgate_testkit::workspace_root;
use serde_json::{Value, json};

const REGENERATE: &str = "cargo run -p chatgate -- openapi > schema/openapi.json";

async fn harness() -> Harness {
    let factory = chatgate::registry::factory("telegram").unwrap();
    Harness::start(vec![factory.build("test", account_settings("telegram")).unwrap()]).await
}

#[test]
fn committed_document_matches_the_routes_and_types() {
    let path = workspace_root().join("schema/openapi.json");
    let committed = std::fs::read_to_string(&path).expect("schema/openapi.json is committed");
    // The test never writes the file: a changed API is a reviewed, deliberate commit.
    assert!(
        committed == openapi::json_text(),
        "a route or a body type changed without the OpenAPI document: run `{REGENERATE}`, review the diff and commit it"
    );
    let doc: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for name in ["OutboundRequest", "MessageRecord", "EventsPage", "ErrorBody", "Accepted", "AccountList"] {
        assert!(doc["components"]["schemas"].get(name).is_some(), "{name} is not in components.schemas");
    }
}

/// A concrete path for a documented template.
fn concrete(template: &str) -> String {
    template
        .replace("{channel}", "telegram")
        .replace("{account}", "test")
        .replace("{customer_id}", "42")
        .replace("{chat_id}", "42")
        .replace("{id}", "0190e5a2-0000-7000-8000-000000000001")
        .replace("{reference}", "telegram:test:file-1")
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_routed_method_documented() {
    let h = harness().await;
    let doc = openapi::document();
    let auth = format!("Bearer {TOKEN}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let mut checked = 0;
    for (template, operations) in doc["paths"].as_object().unwrap() {
        let uri = concrete(template);
        for method in ["get", "post", "put", "delete", "patch"] {
            let documented = operations.get(method).is_some();
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = h.request(m, &uri, &headers, Body::from("{}")).await;
            if documented {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {template} is documented but not routed");
                assert!(
                    !(status == StatusCode::NOT_FOUND && body.is_empty()),
                    "{method} {template} is documented but no route matches"
                );
                let code = status.as_u16().to_string();
                let responses = &operations[method]["responses"];
                assert!(responses.get(&code).is_some(), "{method} {template} answered {code}, not documented: {body}");
                checked += 1;
            } else if template.starts_with("/v1") {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {template} is routed but not documented");
            }
        }
    }
    assert!(checked >= 11, "only {checked} operations checked");
}

#[tokio::test]
async fn the_document_is_served_behind_the_token() {
    let h = harness().await;
    let (status, text) = h.get_authorized("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, openapi::json_text());
    let (status, _) = h.request(Method::GET, "/v1/openapi.json", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Parses an answer as the documented type; `deny_unknown_fields` makes an extra field fail too.
fn fits<T: serde::de::DeserializeOwned>(what: &str, value: &Value) -> T {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what} does not fit its documented type: {e}\n{value}"))
}

#[tokio::test]
async fn real_answers_fit_the_documented_types() {
    let h = harness().await;
    let update = json!({"update_id": 1, "message": {"message_id": 5, "date": 1718000000, "text": "hi",
        "from": {"id": 42, "is_bot": false, "first_name": "Ann"}, "chat": {"id": 42, "type": "private", "first_name": "Ann"}}});
    let (status, _) = h.webhook(&update.to_string(), &[]).await;
    assert_eq!(status, StatusCode::OK);

    let page: EventsPage = fits("GET /v1/events", &h.events_after(0).await);
    assert_eq!((page.events.len(), page.next_after), (1, page.events[0].seq));

    let (status, accepted) =
        h.send(json!({"channel": "telegram", "account": "test", "chat_id": "42", "text": "hello"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let accepted: Accepted = fits("POST /v1/messages", &accepted);
    let _: MessageRecord = fits("GET /v1/messages/{id}", &h.message(&accepted.id.to_string()).await);

    let (_, block) = h.api(Method::PUT, "/v1/blocks/telegram/test/42", None).await;
    let block: BlockState = fits("PUT /v1/blocks/...", &block);
    assert!(block.blocked);
    let (_, conversation) = h.api(Method::GET, "/v1/conversations/telegram/test/42", None).await;
    let conversation: ConversationState = fits("GET /v1/conversations/...", &conversation);
    assert!(conversation.blocked && conversation.last_inbound_at.is_some());
    let (_, accounts) = h.api(Method::GET, "/v1/accounts", None).await;
    let accounts: AccountList = fits("GET /v1/accounts", &accounts);
    assert_eq!(accounts.accounts.len(), 1);

    for (method, uri, body) in [
        (
            Method::POST,
            "/v1/messages",
            Some(json!({"channel": "telegram", "account": "test", "chat_id": "1", "text": "x".repeat(2001)})),
        ),
        (Method::POST, "/v1/messages", Some(json!({"channel": "fax", "account": "test", "chat_id": "1", "text": "x"}))),
        (Method::GET, "/v1/messages/0190e5a2-0000-7000-8000-000000000001", None),
        (Method::GET, "/v1/events?after=x", None),
        (Method::PUT, "/v1/blocks/fax/test/1", None),
    ] {
        let (status, error) = h.api(method.clone(), uri, body).await;
        let error: ErrorBody = fits(&format!("{method} {uri} ({status})"), &error);
        let doc = openapi::document();
        let template = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .find(|t| {
                let pattern = t.split('/').map(|s| if s.starts_with('{') { "*" } else { s }).collect::<Vec<_>>();
                let path = uri.split('?').next().unwrap().split('/').collect::<Vec<_>>();
                pattern.len() == path.len() && pattern.iter().zip(&path).all(|(p, s)| *p == "*" || p == s)
            })
            .unwrap()
            .clone();
        let documented = &doc["paths"][&template][method.as_str().to_lowercase()]["responses"][status.as_str()];
        let example = &documented["content"]["application/json"]["examples"][error.error.code.as_str()];
        assert!(
            example.is_object(),
            "{method} {uri}: {status} `{}` has no documented example",
            error.error.code.as_str()
        );
    }

    let (status, ready) = h.request(Method::GET, "/readyz", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let _: Readiness = fits("GET /readyz", &serde_json::from_str(&ready).unwrap());
}
