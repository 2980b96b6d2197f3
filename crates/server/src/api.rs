//! The core-facing API under `/v1` (bearer token).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use chatgate_adapter::SendErrorKind;
use chatgate_adapter::verify::{bearer_token, constant_time_eq};
use chatgate_model::ErrorCode;
use chatgate_model::limits::{check_attachment, check_text};
use chatgate_model::rich::check_buttons;
use chatgate_model::{Channel, ChatAction, Conversation, CustomerRef, LimitViolation, OutboundRequest};
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Place;
use crate::{ApiError, Shared};

/// Most events one `GET /v1/events` returns.
const MAX_EVENTS_PER_PULL: usize = 1000;
/// Longest long-poll wait.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Every `/v1` route: path (under `/v1`) and handlers. The OpenAPI document must name each one
/// (`tests/openapi.rs`); add a route here and to `openapi::operations` together.
pub(crate) fn routes() -> Vec<(&'static str, MethodRouter<Arc<Shared>>)> {
    vec![
        ("/events", get(events)),
        ("/messages", post(send_message)),
        ("/messages/{id}", get(message)),
        ("/blocks/{channel}/{account}/{customer_id}", put(block).delete(unblock)),
        ("/conversations/{channel}/{account}/{chat_id}", get(conversation)),
        ("/accounts", get(accounts)),
        ("/media/{reference}", get(media)),
        ("/chats/{channel}/{account}/{chat_id}/typing", post(typing)),
        ("/chats/{channel}/{account}/{chat_id}/read", post(read)),
        ("/openapi.json", get(crate::openapi::serve)),
    ]
}

pub(crate) async fn require_token(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), shared.settings.api_token.expose().as_bytes()) => {
            next.run(request).await
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    #[serde(default)]
    wait: u64,
}

/// `GET /v1/events?after=SEQ&limit=N&wait=SECONDS`: events with `seq > after`, in order;
/// waits up to `wait` seconds for the first one when there is none yet.
pub(crate) async fn events(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_EVENTS_PER_PULL);
    let mut events = shared.queue.read_events(q.after, limit).await?;
    if events.is_empty() && q.wait > 0 {
        let wait = Duration::from_secs(q.wait).min(MAX_WAIT);
        // Shutdown answers an open long-poll at once, with what there is (usually nothing).
        let mut stopping = shared.shutdown.subscribe();
        tokio::select! {
            _ = shared.queue.wait_events(q.after, wait) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
        events = shared.queue.read_events(q.after, limit).await?;
    }
    let next = events.last().map_or(q.after, |e| e.seq);
    shared.metrics.pulled(q.after);
    Ok(([(header::CONTENT_TYPE, "application/json")], events_body(&events, next)).into_response())
}

/// `{"events": [...], "next_after": SEQ}`: the answer of `GET /v1/events` and the body of a push.
pub(crate) fn events_body(events: &[chatgate_queue::StoredEvent], next: u64) -> String {
    let mut body = String::with_capacity(events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 40);
    body.push_str("{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&e.json);
    }
    body.push_str(&format!("],\"next_after\":{next}}}"));
    body
}

/// `POST /v1/messages`: validate, store in the outbox, answer `202 {id, status}`.
pub(crate) async fn send_message(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let request = parse_request(&shared, &body)?;
    let account = shared.accounts.get(request.channel, &request.account).ok_or_else(|| ApiError::UnknownAccount {
        channel: request.channel,
        account: request.account.clone(),
        place: Place::Body,
    })?;
    if shared.blocks.is_blocked(&request.customer()) {
        return Err(ApiError::CustomerBlocked);
    }
    validate(&request, account)?;
    let caps = account.adapter.facts().capabilities;
    if request.template.is_some() && !caps.templates {
        return Err(ApiError::TemplateUnsupported(request.channel));
    }
    if let (Some(window), None) = (caps.messaging_window, &request.template) {
        let last = shared.queue.last_inbound(&request.conversation()).await?;
        if !window_open(last, window) {
            return Err(ApiError::WindowClosed { last_inbound_at: last, window });
        }
    }
    let enqueued = shared.queue.enqueue(Uuid::now_v7(), request.clone()).await?;
    if enqueued.created {
        let numbered = !caps.button_rules().renders_natively(&request.buttons);
        shared.rich.offered(enqueued.id, &request, numbered);
        shared.delivery.submit(enqueued.id, request);
    }
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted { id: enqueued.id, status: enqueued.status })).into_response())
}

/// `202` of `POST /v1/messages`: the message's id and its status (`queued`, or the current status
/// of the message an idempotency key named before).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    pub id: Uuid,
    pub status: chatgate_model::Status,
}

/// The answer of `PUT`/`DELETE /v1/blocks/{channel}/{account}/{customer_id}`: the state now.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockState {
    pub channel: Channel,
    pub account: String,
    pub customer_id: String,
    pub blocked: bool,
}

/// `GET /v1/conversations/{channel}/{account}/{chat_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationState {
    pub channel: Channel,
    pub account: String,
    pub chat_id: String,
    /// When the customer last wrote in this chat (RFC 3339), `null` when never.
    pub last_inbound_at: Option<String>,
    /// The messaging window, on channels that have one (WhatsApp); `null` elsewhere.
    pub window: Option<MessagingWindow>,
    /// Whether the customer is blocked.
    pub blocked: bool,
}

/// A channel's messaging window in one chat.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagingWindow {
    /// How long the window stays open after the customer's last message.
    pub seconds: u64,
    /// Whether free-form messages may be sent now.
    pub open: bool,
    /// When it closes (RFC 3339), `null` when the customer never wrote.
    pub closes_at: Option<String>,
}

/// `GET /v1/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountList {
    pub accounts: Vec<AccountInfo>,
}

/// One configured account with its effective limits and capabilities.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInfo {
    pub channel: Channel,
    pub account: String,
    pub limits: chatgate_model::Limits,
    /// Replies quote natively (`reply_to`).
    pub native_reply: bool,
    /// The channel takes message templates.
    pub templates: bool,
    /// The messaging window in seconds, `null` when the channel has none.
    pub messaging_window_seconds: Option<u64>,
    /// What `buttons` may hold on this channel (count, title and payload length).
    pub buttons: chatgate_model::ButtonRules,
    /// The channel shows buttons natively; otherwise they go out as a numbered list.
    pub buttons_native: bool,
    /// The channel takes a `feedback` request.
    pub feedback: bool,
    /// `POST /v1/chats/.../typing` is supported.
    pub typing: bool,
    /// `POST /v1/chats/.../read` is supported.
    pub read: bool,
    /// Button presses are answered to the provider (no spinner on the customer's side).
    pub press_answers: bool,
}

pub(crate) fn window_open(last: Option<chrono::DateTime<Utc>>, window: Duration) -> bool {
    last.is_some_and(|t| Utc::now().signed_duration_since(t).to_std().unwrap_or_default() < window)
}

fn parse_request(shared: &Shared, body: &[u8]) -> Result<OutboundRequest, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    // Name the channel problem precisely before the typed parse would only say "invalid value".
    match value.get("channel").and_then(|c| c.as_str()) {
        Some(c) => match c.parse::<Channel>() {
            Ok(ch) if shared.accounts.has_channel(ch) => {}
            _ => return Err(ApiError::UnknownChannel { name: c.to_owned(), place: Place::Body }),
        },
        None => return Err(ApiError::invalid("`channel` is required")),
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid(e.to_string()))
}

fn validate(request: &OutboundRequest, account: &crate::Account) -> Result<(), ApiError> {
    let text = request.text.as_deref().unwrap_or("");
    let caps = account.adapter.facts().capabilities;
    if let Some(ask) = &request.feedback {
        if !caps.feedback {
            return Err(ApiError::FieldUnsupported(format!("{} takes no `feedback` requests", request.channel)));
        }
        if !chatgate_model::Feedback::SCALES.contains(&ask.scale) {
            return Err(ApiError::invalid("`feedback.scale` must be 2, 5 or 10"));
        }
        if let Some(prompt) = &ask.prompt {
            check_text(prompt, &account.limits)?;
            check_button_text(prompt, &caps.button_rules())?;
        }
    }
    if !request.buttons.is_empty() {
        if text.trim().is_empty() {
            return Err(ApiError::invalid("`buttons` need a `text` to go with them"));
        }
        let rules = caps.button_rules();
        check_buttons(&request.buttons, &rules).map_err(ApiError::Buttons)?;
        if rules.renders_natively(&request.buttons) {
            check_button_text(text, &rules)?;
        }
    }
    if request.buttons_per_row == Some(0) {
        return Err(ApiError::invalid("`buttons_per_row` must be at least 1"));
    }
    let has_content = !text.trim().is_empty() || !request.attachments.is_empty();
    if !has_content && request.template.is_none() && request.feedback.is_none() {
        return Err(LimitViolation::EmptyMessage.into());
    }
    if request.chat_id.is_empty() {
        return Err(ApiError::invalid("`chat_id` must not be empty"));
    }
    check_text(text, &account.limits)?;
    for (i, a) in request.attachments.iter().enumerate() {
        check_attachment(a.kind, a.size, &account.limits)
            .map_err(|violation| ApiError::Limit { violation, index: Some(i) })?;
        let scheme_ok = url::Url::parse(&a.url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !scheme_ok {
            return Err(ApiError::invalid_at(i, format!("attachments[{i}].url must be an http(s) URL")));
        }
    }
    Ok(())
}

/// The text that goes with a channel's own buttons (WhatsApp's interactive body takes 1024 characters).
fn check_button_text(text: &str, rules: &chatgate_model::ButtonRules) -> Result<(), ApiError> {
    let actual = text.chars().count();
    if actual > rules.text_max_chars {
        return Err(LimitViolation::TextTooLong { limit: rules.text_max_chars, actual }.into());
    }
    Ok(())
}

/// `GET /v1/messages/{id}`.
pub(crate) async fn message(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("message"))?;
    match shared.queue.message(id).await? {
        Some(record) => Ok(axum::Json(record).into_response()),
        None => Err(ApiError::NotFound("message")),
    }
}

fn account_of(shared: &Shared, channel: &str, account: &str) -> Result<Channel, ApiError> {
    let ch = channel
        .parse::<Channel>()
        .ok()
        .filter(|c| shared.accounts.has_channel(*c))
        .ok_or_else(|| ApiError::UnknownChannel { name: channel.to_owned(), place: Place::Path })?;
    shared.accounts.get(ch, account).map(|_| ch).ok_or_else(|| ApiError::UnknownAccount {
        channel: ch,
        account: account.to_owned(),
        place: Place::Path,
    })
}

/// `PUT /v1/blocks/{channel}/{account}/{customer}`.
pub(crate) async fn block(
    State(shared): State<Arc<Shared>>,
    Path((channel, account, customer)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    set_block(&shared, &channel, &account, &customer, true).await
}

/// `DELETE /v1/blocks/{channel}/{account}/{customer}`.
pub(crate) async fn unblock(
    State(shared): State<Arc<Shared>>,
    Path((channel, account, customer)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    set_block(&shared, &channel, &account, &customer, false).await
}

async fn set_block(
    shared: &Shared,
    channel: &str,
    account: &str,
    customer: &str,
    blocked: bool,
) -> Result<Response, ApiError> {
    let ch = account_of(shared, channel, account)?;
    shared.blocks.set(shared.queue.as_ref(), CustomerRef::new(ch, account, customer), blocked).await?;
    tracing::info!(channel = %ch, %account, %customer, blocked, "block list changed");
    Ok(axum::Json(BlockState { channel: ch, account: account.to_owned(), customer_id: customer.to_owned(), blocked })
        .into_response())
}

/// `GET /v1/conversations/{channel}/{account}/{chat}`: messaging-window and block state.
pub(crate) async fn conversation(
    State(shared): State<Arc<Shared>>,
    Path((channel, account, chat)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let ch = account_of(&shared, &channel, &account)?;
    let caps = shared.accounts.get(ch, &account).map(|a| a.adapter.facts().capabilities).unwrap_or_default();
    let last = shared.queue.last_inbound(&Conversation::new(ch, account.as_str(), chat.as_str())).await?;
    let window = caps.messaging_window.map(|w| MessagingWindow {
        seconds: w.as_secs(),
        open: window_open(last, w),
        closes_at: last.map(|t| (t + chrono::Duration::from_std(w).unwrap_or_default()).to_rfc3339()),
    });
    let blocked = shared.blocks.is_blocked(&CustomerRef::new(ch, account.as_str(), chat.as_str()));
    Ok(axum::Json(ConversationState {
        channel: ch,
        account,
        chat_id: chat,
        last_inbound_at: last.map(|t| t.to_rfc3339()),
        window,
        blocked,
    })
    .into_response())
}

/// `GET /v1/accounts`: what is configured, with effective limits and capabilities.
pub(crate) async fn accounts(State(shared): State<Arc<Shared>>) -> Response {
    let accounts = shared
        .accounts
        .iter()
        .map(|a| {
            let caps = a.adapter.facts().capabilities;
            AccountInfo {
                channel: a.adapter.channel(),
                account: a.adapter.account().to_owned(),
                limits: a.limits,
                native_reply: caps.native_reply,
                templates: caps.templates,
                messaging_window_seconds: caps.messaging_window.map(|w| w.as_secs()),
                buttons: caps.button_rules(),
                buttons_native: caps.buttons.is_some(),
                feedback: caps.feedback,
                typing: caps.typing,
                read: caps.read,
                press_answers: caps.press_answers,
            }
        })
        .collect();
    axum::Json(AccountList { accounts }).into_response()
}

/// `POST /v1/chats/{channel}/{account}/{chat}/typing`: shows "typing" in the customer's chat.
pub(crate) async fn typing(
    State(shared): State<Arc<Shared>>,
    Path((channel, account, chat)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    chat_action(&shared, (&channel, &account, &chat), ChatAction::Typing, &body).await
}

/// `POST /v1/chats/{channel}/{account}/{chat}/read`: marks the customer's messages read.
pub(crate) async fn read(
    State(shared): State<Arc<Shared>>,
    Path((channel, account, chat)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    chat_action(&shared, (&channel, &account, &chat), ChatAction::Read, &body).await
}

/// The optional body of the marker routes.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkerBody {
    /// The provider's id of the customer's message (WhatsApp needs it; VK reads up to it).
    #[serde(default)]
    pub message_id: Option<String>,
}

/// The answer of the marker routes: the marker was handed to the provider.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct MarkerSent {
    pub channel: Channel,
    pub account: String,
    pub chat_id: String,
    pub action: ChatAction,
    /// Always `true`: a marker that could not be sent is an error answer.
    pub sent: bool,
}

/// Sends a marker at once (never queued behind messages), at most one per chat and kind every
/// [`crate::rich::MARKER_INTERVAL`] (`429 rate_limited` with `Retry-After` otherwise).
async fn chat_action(
    shared: &Shared,
    (channel, account, chat): (&str, &str, &str),
    action: ChatAction,
    body: &[u8],
) -> Result<Response, ApiError> {
    let ch = account_of(shared, channel, account)?;
    let adapter = shared.accounts.get(ch, account).map(|a| a.adapter.clone()).ok_or(ApiError::NotFound("account"))?;
    let marker: MarkerBody = if body.iter().all(u8::is_ascii_whitespace) {
        MarkerBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(e.to_string()))?
    };
    if !adapter.facts().capabilities.supports(action) {
        return Err(ApiError::UnsupportedByChannel(format!("{ch} has no {} marker", action.as_str())));
    }
    if chat.is_empty() {
        return Err(ApiError::invalid("the chat id must not be empty"));
    }
    if shared.blocks.is_blocked(&CustomerRef::new(ch, account, chat)) {
        return Err(ApiError::CustomerBlocked);
    }
    shared
        .rich
        .marker_allowed(Conversation::new(ch, account, chat), action)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    match adapter.chat_action(chat, action, marker.message_id.as_deref()).await {
        Ok(()) => Ok(axum::Json(MarkerSent {
            channel: ch,
            account: account.to_owned(),
            chat_id: chat.to_owned(),
            action,
            sent: true,
        })
        .into_response()),
        Err(e) => {
            tracing::warn!(channel = %ch, %account, action = action.as_str(), error = %e, "marker not sent");
            Err(match e.kind {
                SendErrorKind::Failed(ErrorCode::UnsupportedByChannel) => ApiError::UnsupportedByChannel(e.message),
                SendErrorKind::Failed(code) => ApiError::Provider { code, message: e.message },
                SendErrorKind::RetryAfter(after) | SendErrorKind::AccountRetryAfter(after) => {
                    ApiError::RateLimited { retry_after: after }
                }
                SendErrorKind::Transient => {
                    ApiError::Provider { code: ErrorCode::ProviderUnavailable, message: e.message }
                }
            })
        }
    }
}

/// The most bytes `GET /v1/media/...` passes through.
const MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;

/// `GET /v1/media/{reference}`: the file behind an inbound attachment's `media` reference
/// (`<channel>:<account>:<provider ref>`), fetched from the provider with the account's credentials.
pub(crate) async fn media(
    State(shared): State<Arc<Shared>>,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    let mut parts = reference.splitn(3, ':');
    let (Some(channel), Some(account), Some(provider_ref)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::NotFound("media reference"));
    };
    let ch = account_of(&shared, channel, account)?;
    let adapter = shared.accounts.get(ch, account).map(|a| a.adapter.clone()).ok_or(ApiError::NotFound("account"))?;
    if adapter.visitors().is_some() {
        // Web: the gateway stores visitor uploads itself.
        let (meta, bytes) =
            shared.web.files.read(account, provider_ref).await.ok_or(ApiError::NotFound("media reference"))?;
        return Ok(crate::web::routes_file_response(meta, bytes));
    }
    match adapter.fetch_media(provider_ref, MAX_MEDIA_BYTES).await {
        Ok(download) => {
            let mime = download.mime.unwrap_or_else(|| "application/octet-stream".to_owned());
            let mut response = (StatusCode::OK, download.bytes).into_response();
            let headers = response.headers_mut();
            if let Ok(v) = header::HeaderValue::from_str(&mime) {
                headers.insert(header::CONTENT_TYPE, v);
            }
            let disposition = download
                .name
                .filter(|n| n.chars().all(|c| c.is_ascii_graphic() && c != '"'))
                .and_then(|name| header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).ok());
            if let Some(v) = disposition {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(channel = %ch, %account, error = %e, "media could not be fetched");
            Err(match e.kind {
                SendErrorKind::Failed(ErrorCode::AttachmentTooLarge) => {
                    ApiError::MediaTooLarge { limit: MAX_MEDIA_BYTES }
                }
                SendErrorKind::Failed(_) => ApiError::MediaUnavailable(e.message),
                SendErrorKind::RetryAfter(_) | SendErrorKind::AccountRetryAfter(_) | SendErrorKind::Transient => {
                    ApiError::ProviderUnavailable(e.message)
                }
            })
        }
    }
}
