//! The OpenAPI 3.1 document of the core API, generated from the types the handlers use.
//!
//! Bodies are the handlers' own serde types (`OutboundRequest`, `MessageRecord`, the answers in
//! `api.rs`, the envelope `Event`) through their `schemars` derives; OpenAPI 3.1 schemas are JSON
//! Schema 2020-12, so they go in as generated. Error answers are documented per operation with
//! the codes it can give, and each code's example is the body [`ApiError`] really renders.
//! Push delivery is documented as the document's `webhooks.events` (a request the gateway makes).
//!
//! The document is committed as `schema/openapi.json` and served at `GET /v1/openapi.json`.
//! Regenerate it after changing a route or a body type with
//! `cargo run -p chatgate -- openapi > schema/openapi.json`; `tests/openapi.rs` fails until the
//! committed file matches, and checks every documented operation against the router.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgate_model::{
    AttachmentKind, Channel, ChatAction, ErrorCode, Event, LimitViolation, MessageRecord, OutboundRequest,
};
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::api::{Accepted, AccountList, BlockState, ConversationState, MarkerBody, MarkerSent};
use crate::error::Place;
use crate::{ApiError, push};

/// How both markers are sent, for their descriptions.
macro_rules! marker_delivery {
    () => {
        " Sent to the provider at once, never queued behind messages; at most one per chat and kind every 2 s. \
         The optional body names the customer's message (`message_id`): WhatsApp needs it, VK reads up to it."
    };
}

/// One event as `GET /v1/events` and push deliver it: the envelope with its `seq` first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StoredEnvelope {
    /// Position on the log; strictly increasing, never reused.
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// `GET /v1/events` and the body of a push: events in order and where to continue.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsPage {
    pub events: Vec<StoredEnvelope>,
    /// The last `seq` in `events` (or the `after` asked with, when there are none): ask with it next.
    pub next_after: u64,
}

/// Every refusal of the core API.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// `code` and `message`, and the details some codes carry.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; may change between releases. Match on `code`.
    pub message: String,
    /// `text_too_long`: the cap in characters; `attachment_too_large`, `media_too_large`,
    /// `upload_too_large`: the cap in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// `text_too_long`: the text's length; `attachment_too_large`: the size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<u64>,
    /// The attachment kind a limit is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AttachmentKind>,
    /// Which attachment (from 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// `window_closed`: when the customer last wrote (RFC 3339), `null` when never.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    pub last_inbound_at: Option<Option<String>>,
    /// `window_closed`: the window's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
    /// `idempotency_conflict`: the message the key belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// `rate_limited`: seconds to wait (also in `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// A field that is present (`Some`), possibly `null` (`Some(None)`); absent is the default `None`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    pub ready: bool,
    /// `queue`, `accounts`, `shutdown`, and `push` when push delivery is configured.
    pub checks: BTreeMap<String, Check>,
}

/// One readiness check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    pub ok: bool,
    /// Why it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `accounts`: how many are enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `push`: the last `seq` the core took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
}

/// `GET /v1/openapi.json`.
pub(crate) async fn serve() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], json_text()).into_response()
}

/// The document as committed: pretty JSON with a final newline.
pub fn json_text() -> String {
    serde_json::to_string_pretty(&document()).unwrap_or_default() + "\n"
}

/// The `/v1` paths the router serves (their methods are checked by probing the router).
pub fn routed_paths() -> Vec<&'static str> {
    crate::api::routes().into_iter().map(|(path, _)| path).collect()
}

/// One operation of the document.
struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    description: &'static str,
    parameters: Vec<Value>,
    body: Option<Value>,
    ok: (u16, &'static str, Option<Value>),
    errors: Vec<ApiError>,
    /// Whether the bearer token is required (every `/v1` route).
    token: bool,
}

/// `POST /v1/chats/{channel}/{account}/{chat_id}/typing` or `/read`: one shape, two markers.
fn marker_operation(
    r#gen: &mut SchemaGenerator,
    action: ChatAction,
    id: &'static str,
    summary: &'static str,
    description: &'static str,
) -> Operation {
    let string = json!({ "type": "string" });
    let channel = r#gen.subschema_for::<Channel>().to_value();
    let (path, unsupported) = match action {
        ChatAction::Typing => ("/v1/chats/{channel}/{account}/{chat_id}/typing", "viber has no typing marker"),
        ChatAction::Read => ("/v1/chats/{channel}/{account}/{chat_id}/read", "viber has no read marker"),
    };
    Operation {
        method: "post",
        path,
        id,
        summary,
        description,
        parameters: vec![
            path_param("channel", "The channel kind (`telegram`, `whatsapp`, ...).", channel),
            path_param("account", "The account id (the table key in `channels.toml`).", string.clone()),
            path_param("chat_id", "The chat id (`chat_id` of events).", string),
        ],
        body: Some(json!({ "required": false, "content": { "application/json": {
            "schema": r#gen.subschema_for::<MarkerBody>().to_value(),
        }}})),
        ok: (200, "The marker was sent", Some(json_content(r#gen.subschema_for::<MarkerSent>().to_value()))),
        errors: vec![
            ApiError::UnknownChannel { name: "fax".into(), place: Place::Path },
            ApiError::UnknownAccount {
                channel: Channel::from_static("telegram"),
                account: "nope".into(),
                place: Place::Path,
            },
            ApiError::UnsupportedByChannel(unsupported.into()),
            ApiError::CustomerBlocked,
            ApiError::RateLimited { retry_after: Duration::from_secs(2) },
            ApiError::Provider { code: ErrorCode::ProviderRejected, message: "the provider refused the marker".into() },
            ApiError::Provider {
                code: ErrorCode::ProviderUnavailable,
                message: "the provider could not be reached".into(),
            },
        ],
        token: true,
    }
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn operations(r#gen: &mut SchemaGenerator) -> Vec<Operation> {
    let channel = r#gen.subschema_for::<Channel>().to_value();
    let string = json!({ "type": "string" });
    let channel_param = path_param("channel", "The channel kind (`telegram`, `whatsapp`, ...).", channel);
    let account_param = path_param("account", "The account id (the table key in `channels.toml`).", string.clone());
    let customer_param =
        path_param("customer_id", "The customer's id on the channel (`customer.id` of events).", string.clone());
    let unknown_path = || {
        vec![
            ApiError::UnknownChannel { name: "fax".into(), place: Place::Path },
            ApiError::UnknownAccount {
                channel: Channel::from_static("telegram"),
                account: "nope".into(),
                place: Place::Path,
            },
        ]
    };
    let id = Uuid::from_u128(0x0190_e5a2_0000_7000_8000_0000_0000_0001);
    vec![
        Operation {
            method: "get",
            path: "/v1/events",
            id: "pullEvents",
            summary: "Events after a sequence number, in order (long-poll)",
            description: "Inbound events and status changes with `seq > after`, oldest first. With `wait`, \
                waits up to that many seconds (at most 60) for the first event when there is none yet. \
                Ask again with `next_after`. Events are kept `[queue] retention_days` (default 14).",
            parameters: vec![
                query_param(
                    "after",
                    "Return events with a larger `seq` (default 0).",
                    json!({ "type": "integer", "minimum": 0 }),
                ),
                query_param(
                    "limit",
                    "Most events to return (1..=1000, default 100).",
                    json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
                ),
                query_param(
                    "wait",
                    "Seconds to wait for the first event (at most 60).",
                    json!({ "type": "integer", "minimum": 0 }),
                ),
            ],
            body: None,
            ok: (200, "Events in order", Some(json_content(r#gen.subschema_for::<EventsPage>().to_value()))),
            errors: vec![
                ApiError::InvalidRequest {
                    message: "Failed to deserialize query string: after: invalid digit found in string".into(),
                    status: StatusCode::BAD_REQUEST,
                    index: None,
                },
                ApiError::StoreUnavailable,
            ],
            token: true,
        },
        Operation {
            method: "post",
            path: "/v1/messages",
            id: "sendMessage",
            summary: "Queue a reply to a customer",
            description: "Validated against the account's limits, stored, and delivered in order per chat with \
                the provider's rate limits and retries. The same `idempotency_key` again answers the same id \
                and sends once. Follow the message with `GET /v1/messages/{id}` or its `status` events.",
            parameters: vec![],
            body: Some(json!({ "required": true, "content": { "application/json": {
                "schema": r#gen.subschema_for::<OutboundRequest>().to_value(),
                "examples": {
                    "text": { "summary": "A text reply", "value": {
                        "channel": "telegram", "account": "support-bot", "chat_id": "123456789",
                        "text": "Hello! How can we help?", "idempotency_key": "ticket-42-reply-1" } },
                    "attachment": { "summary": "An image quoting the customer's message", "value": {
                        "channel": "whatsapp", "account": "wa-main", "chat_id": "15551234567",
                        "attachments": [{ "kind": "image", "url": "https://files.example.com/receipt.png", "size": 120000 }],
                        "reply_to": "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI" } },
                    "template": { "summary": "A template, allowed outside the messaging window", "value": {
                        "channel": "whatsapp", "account": "wa-main", "chat_id": "15551234567",
                        "template": { "name": "order_update", "language": "en_US", "components": [] } } },
                },
            } } })),
            ok: (202, "Queued", Some(json_content(r#gen.subschema_for::<Accepted>().to_value()))),
            errors: vec![
                ApiError::InvalidJson("expected value at line 1 column 1".into()),
                ApiError::Limit { violation: LimitViolation::TextTooLong { limit: 2000, actual: 2001 }, index: None },
                ApiError::Limit {
                    violation: LimitViolation::AttachmentTooLarge {
                        kind: AttachmentKind::Image,
                        limit: 10 * 1024 * 1024,
                        actual: Some(12 * 1024 * 1024),
                    },
                    index: Some(0),
                },
                ApiError::Limit {
                    violation: LimitViolation::AttachmentKindUnsupported { kind: AttachmentKind::Video },
                    index: Some(0),
                },
                ApiError::Limit { violation: LimitViolation::EmptyMessage, index: None },
                ApiError::CustomerBlocked,
                ApiError::UnknownChannel { name: "fax".into(), place: Place::Body },
                ApiError::UnknownAccount {
                    channel: Channel::from_static("telegram"),
                    account: "nope".into(),
                    place: Place::Body,
                },
                ApiError::WindowClosed { last_inbound_at: None, window: Duration::from_secs(24 * 3600) },
                ApiError::TemplateUnsupported(Channel::from_static("telegram")),
                ApiError::IdempotencyConflict { existing: id },
                ApiError::invalid("`chat_id` must not be empty"),
                ApiError::FieldUnsupported("telegram takes no `feedback` requests".into()),
                ApiError::StoreUnavailable,
            ],
            token: true,
        },
        Operation {
            method: "get",
            path: "/v1/messages/{id}",
            id: "getMessage",
            summary: "Where an outbound message stands",
            description: "Its status, the provider's ids of the sent parts, the error of a failed message, \
                the status history with times, and the request.",
            parameters: vec![path_param(
                "id",
                "The id `POST /v1/messages` answered.",
                json!({ "type": "string", "format": "uuid" }),
            )],
            body: None,
            ok: (200, "The message", Some(json_content(r#gen.subschema_for::<MessageRecord>().to_value()))),
            errors: vec![ApiError::NotFound("message"), ApiError::StoreUnavailable],
            token: true,
        },
        Operation {
            method: "put",
            path: "/v1/blocks/{channel}/{account}/{customer_id}",
            id: "blockCustomer",
            summary: "Block a customer",
            description: "A blocked customer's inbound is not forwarded (counted in `/metrics`); outbound to \
                them is refused with `customer_blocked`.",
            parameters: vec![channel_param.clone(), account_param.clone(), customer_param.clone()],
            body: None,
            ok: (200, "The block state now", Some(json_content(r#gen.subschema_for::<BlockState>().to_value()))),
            errors: [unknown_path(), vec![ApiError::StoreUnavailable]].concat(),
            token: true,
        },
        Operation {
            method: "delete",
            path: "/v1/blocks/{channel}/{account}/{customer_id}",
            id: "unblockCustomer",
            summary: "Unblock a customer",
            description: "Inbound is forwarded again and outbound allowed.",
            parameters: vec![channel_param.clone(), account_param.clone(), customer_param.clone()],
            body: None,
            ok: (200, "The block state now", Some(json_content(r#gen.subschema_for::<BlockState>().to_value()))),
            errors: [unknown_path(), vec![ApiError::StoreUnavailable]].concat(),
            token: true,
        },
        Operation {
            method: "get",
            path: "/v1/conversations/{channel}/{account}/{chat_id}",
            id: "getConversation",
            summary: "A chat's messaging window and block state",
            description: "When the customer last wrote, the messaging window where the channel has one \
                (WhatsApp: 24 h; outside it only templates go), and whether the customer is blocked.",
            parameters: vec![
                channel_param.clone(),
                account_param.clone(),
                path_param("chat_id", "The chat id (`chat_id` of events).", string.clone()),
            ],
            body: None,
            ok: (200, "The conversation", Some(json_content(r#gen.subschema_for::<ConversationState>().to_value()))),
            errors: [unknown_path(), vec![ApiError::StoreUnavailable]].concat(),
            token: true,
        },
        Operation {
            method: "get",
            path: "/v1/accounts",
            id: "listAccounts",
            summary: "Configured accounts",
            description: "Every enabled account with its effective limits and capabilities.",
            parameters: vec![],
            body: None,
            ok: (200, "The accounts", Some(json_content(r#gen.subschema_for::<AccountList>().to_value()))),
            errors: vec![],
            token: true,
        },
        marker_operation(
            r#gen,
            ChatAction::Typing,
            "sendTyping",
            "Show the customer that the operator is typing",
            concat!(
                "Telegram `sendChatAction`, Messenger/Instagram `typing_on`, WhatsApp's typing indicator, VK `setActivity`.",
                marker_delivery!()
            ),
        ),
        marker_operation(
            r#gen,
            ChatAction::Read,
            "markRead",
            "Mark the customer's messages read",
            concat!("Messenger/Instagram `mark_seen`, WhatsApp `status: read`, VK `markAsRead`.", marker_delivery!()),
        ),
        Operation {
            method: "get",
            path: "/v1/media/{reference}",
            id: "getMedia",
            summary: "The file behind an inbound attachment's `media` reference",
            description: "Fetched from the provider with the account's credentials (at most 100 MiB) and \
                passed through with its content type and, when known, its file name.",
            parameters: vec![path_param(
                "reference",
                "`<channel>:<account>:<provider ref>`, as in an attachment's `media`.",
                string.clone(),
            )],
            body: None,
            ok: (
                200,
                "The file",
                Some(
                    json!({ "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } }),
                ),
            ),
            errors: [
                vec![ApiError::NotFound("media reference")],
                unknown_path(),
                vec![
                    ApiError::MediaTooLarge { limit: 100 * 1024 * 1024 },
                    ApiError::MediaUnavailable("the provider no longer has this file".into()),
                    ApiError::ProviderUnavailable("the provider could not be reached".into()),
                ],
            ]
            .concat(),
            token: true,
        },
        Operation {
            method: "get",
            path: "/v1/openapi.json",
            id: "getOpenApi",
            summary: "This document",
            description: "The OpenAPI 3.1 document of the core API (committed as `schema/openapi.json`).",
            parameters: vec![],
            body: None,
            ok: (200, "The document", Some(json_content(json!({ "type": "object" })))),
            errors: vec![],
            token: true,
        },
        Operation {
            method: "get",
            path: "/healthz",
            id: "healthz",
            summary: "Liveness: the process answers",
            description: "`ok` as long as the process serves requests. No token.",
            parameters: vec![],
            body: None,
            ok: (200, "Alive", Some(json!({ "text/plain": { "schema": { "const": "ok" } } }))),
            errors: vec![],
            token: false,
        },
        Operation {
            method: "get",
            path: "/readyz",
            id: "readyz",
            summary: "Readiness: the gateway can take traffic",
            description: "The store takes a durable write, at least one account is enabled, the last push to \
                the core succeeded (when push is configured), and the process is not shutting down. \
                `503` with the same body when a check fails. No token.",
            parameters: vec![],
            body: None,
            ok: (
                200,
                "Ready (503 with the same body: not ready)",
                Some(json_content(r#gen.subschema_for::<Readiness>().to_value())),
            ),
            errors: vec![],
            token: false,
        },
    ]
}

/// The document.
pub fn document() -> Value {
    let mut r#gen = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let error_ref = r#gen.subschema_for::<ErrorBody>().to_value();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for op in operations(&mut r#gen) {
        let mut responses = Map::new();
        let (status, description, content) = op.ok;
        let mut ok = json!({ "description": description });
        if let Some(content) = content {
            ok["content"] = content;
        }
        if op.id == "readyz" {
            responses.insert("503".into(), ok.clone());
        }
        responses.insert(status.to_string(), ok);
        let mut errors = op.errors;
        if op.token {
            errors.insert(0, ApiError::Unauthorized);
        }
        let mut by_status: BTreeMap<u16, Vec<ApiError>> = BTreeMap::new();
        for e in errors {
            by_status.entry(e.status().as_u16()).or_default().push(e);
        }
        for (status, errors) in by_status {
            let mut examples = Map::new();
            let mut codes: Vec<&str> = Vec::new();
            for e in &errors {
                let code = e.code().as_str();
                if !codes.contains(&code) {
                    codes.push(code);
                }
                let mut key = code.to_owned();
                let mut n = 2;
                while examples.contains_key(&key) {
                    key = format!("{code}_{n}");
                    n += 1;
                }
                examples.insert(key, json!({ "summary": e.message(), "value": e.body() }));
            }
            let listed = codes.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
            let response = json!({
                "description": format!("Refused: {listed}"),
                "content": { "application/json": { "schema": error_ref.clone(), "examples": examples } },
            });
            responses.insert(status.to_string(), response);
        }
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "description": op.description,
            "responses": responses,
        });
        if !op.parameters.is_empty() {
            operation["parameters"] = Value::Array(op.parameters);
        }
        if let Some(body) = op.body {
            operation["requestBody"] = body;
        }
        if !op.token {
            operation["security"] = json!([]);
        }
        paths.entry(op.path).or_default().insert(op.method.to_owned(), operation);
    }

    let push_body = r#gen.subschema_for::<EventsPage>().to_value();
    let webhooks = json!({
        "events": {
            "post": {
                "operationId": "pushEvents",
                "summary": "Push delivery: the gateway POSTs event batches to `[core] push_url`",
                "description": format!(
                    "Batches in `seq` order, each after the previous one was answered 2xx; any other answer or a \
                     connection error is retried with backoff with the same start, so no batch is skipped. At least \
                     once: keep the last `seq` taken and ignore events at or below it. Verify `{}` = `sha256=` + hex \
                     HMAC-SHA256(push_secret, `{{{}}}.{{raw body}}`) in constant time and refuse old timestamps.",
                    push::SIGNATURE_HEADER,
                    push::TIMESTAMP_HEADER,
                ),
                "parameters": [
                    { "name": push::SIGNATURE_HEADER, "in": "header", "required": true,
                      "description": "`sha256=<hex>`: HMAC-SHA256 keyed with `[core] push_secret` over `{timestamp}.{raw body}`.",
                      "schema": { "type": "string", "pattern": "^sha256=[0-9a-f]{64}$" } },
                    { "name": push::TIMESTAMP_HEADER, "in": "header", "required": true,
                      "description": "Unix time in seconds when the request was signed.",
                      "schema": { "type": "integer" } },
                ],
                "requestBody": { "required": true, "content": json_content(push_body) },
                "responses": {
                    "2XX": { "description": "Taken: the gateway moves its cursor past this batch." },
                    "default": { "description": "Not taken: the same batch comes again after a backoff." },
                },
                "security": [],
            }
        }
    });

    let schemas = r#gen.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "chatgate core API",
            "version": "1",
            "description": "The API the contact-centre core uses: pull events (or receive them by push), send \
                replies and follow their status, block customers, read conversations, accounts and media. \
                Every `/v1` route takes `Authorization: Bearer <CHATGATE_API_TOKEN>`. Errors are \
                `{\"error\": {\"code\", \"message\", ...}}` with a stable `code`.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "webhooks": webhooks,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_api_error() -> Vec<ApiError> {
        let mut all = Vec::new();
        for op in operations(&mut SchemaSettings::draft2020_12().into_generator()) {
            all.extend(op.errors);
        }
        all.extend([
            ApiError::Unauthorized,
            ApiError::OriginNotAllowed,
            ApiError::VisitorTokenInvalid,
            ApiError::IdentityRequired,
            ApiError::IdentityInvalid,
            ApiError::RateLimited { retry_after: Duration::from_secs(3) },
            ApiError::UploadTooLarge { limit: 10, kind: Some(AttachmentKind::Image) },
            ApiError::UploadKindUnsupported("HTML".into()),
        ]);
        all
    }

    #[test]
    fn every_error_body_the_server_renders_fits_the_documented_schema() {
        for e in every_api_error() {
            let body = e.body();
            let parsed: ErrorBody =
                serde_json::from_value(body.clone()).unwrap_or_else(|err| panic!("{body} is not an ErrorBody: {err}"));
            assert_eq!(serde_json::to_value(&parsed).unwrap(), body, "round trip");
            assert_eq!(parsed.error.code, e.code());
        }
    }

    #[test]
    fn request_examples_are_valid_requests() {
        let doc = document();
        let examples = doc["paths"]["/v1/messages"]["post"]["requestBody"]["content"]["application/json"]["examples"]
            .as_object()
            .unwrap();
        assert_eq!(examples.len(), 3);
        for (name, example) in examples {
            let parsed: Result<OutboundRequest, _> = serde_json::from_value(example["value"].clone());
            assert!(parsed.is_ok(), "example {name}: {parsed:?}");
        }
    }

    #[test]
    fn every_error_code_is_in_the_document() {
        let text = json_text();
        for code in ErrorCode::ALL {
            assert!(text.contains(&format!("\"{}\"", code.as_str())), "{} is not in the document", code.as_str());
        }
    }

    #[test]
    fn every_operation_is_on_a_routed_path() {
        let doc = document();
        let routed = routed_paths();
        for (path, _) in doc["paths"].as_object().unwrap() {
            let Some(v1) = path.strip_prefix("/v1") else { continue };
            assert!(routed.contains(&v1), "{path} is documented but not routed");
        }
        for path in routed {
            assert!(doc["paths"].get(format!("/v1{path}")).is_some(), "/v1{path} is routed but not documented");
        }
    }
}
