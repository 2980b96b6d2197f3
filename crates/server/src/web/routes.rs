//! The visitor routes under `/web/{account}/` (see `crates/channel-web/PROTOCOL.md`).
//!
//! Every dynamic route runs the same gate first: the widget exists, the origin is allowed, the
//! widget and IP budgets allow one more request; routes of a session then authenticate the
//! visitor and count the visitor's budget. Answers carry CORS headers for the allowed origin.
//! Writes answer only after the queue has committed them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chatgate_adapter::visitor::{AvatarRole, SessionRequest, Visitor, VisitorRoute, Visitors};
use chatgate_model::{Attachment, Source};
use chatgate_queue::{InboundRecord, VisitorAppend};
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{self, check_origin, cors, widget};
use super::files::{self, FileMeta};
use crate::{ApiError, Shared};

/// Items one stream read takes from the store.
const STREAM_BATCH: usize = 200;
/// Keep-alive comment interval of visitor streams.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A gated request: the widget, the allowed origin (for CORS).
struct Gate<'a> {
    visitors: &'a dyn Visitors,
    origin: Option<String>,
}

fn gate<'a>(
    shared: &'a Shared,
    account: &str,
    headers: &HeaderMap,
    connect: Option<&ConnectInfo<SocketAddr>>,
) -> Result<Gate<'a>, ApiError> {
    let visitors = widget(shared, account)?;
    let origin = check_origin(visitors, headers)?;
    if let Some(l) = shared.web.limiters.get(account) {
        l.check_ip(access::peer(connect))?;
    }
    Ok(Gate { visitors, origin })
}

fn authed(shared: &Shared, account: &str, g: &Gate<'_>, headers: &HeaderMap) -> Result<Visitor, ApiError> {
    let visitor = access::visitor(g.visitors, headers)?;
    if let Some(l) = shared.web.limiters.get(account) {
        l.check_visitor(&visitor.id)?;
    }
    Ok(visitor)
}

/// Answers `result` with CORS for the gate's origin (errors too, so the widget can read them).
fn answer(origin: Option<&str>, result: Result<Response, ApiError>) -> Response {
    cors(result.unwrap_or_else(IntoResponse::into_response), origin)
}

fn origin_of(headers: &HeaderMap) -> Option<String> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Runs a gated handler: errors before the origin is known are answered without CORS.
macro_rules! gated {
    ($shared:expr, $account:expr, $headers:expr, $connect:expr, |$g:ident| $body:expr) => {{
        match gate(&$shared, &$account, &$headers, $connect.as_ref()) {
            Ok($g) => {
                let origin = $g.origin.clone();
                let result: Result<Response, ApiError> = async { $body }.await;
                answer(origin.as_deref(), result)
            }
            // A refused origin gets no CORS headers; other refusals go back to an allowed origin.
            Err(e @ ApiError::OriginNotAllowed) => e.into_response(),
            Err(e) => {
                let allowed =
                    widget(&$shared, &$account).ok().zip(origin_of(&$headers)).filter(|(v, o)| v.origin_allowed(o));
                answer(allowed.map(|(_, o)| o).as_deref(), Err(e))
            }
        }
    }};
}

type Connect = Option<ConnectInfo<SocketAddr>>;

fn connect_of(request_extensions: &axum::http::Extensions) -> Connect {
    request_extensions.get::<ConnectInfo<SocketAddr>>().cloned()
}

/// `GET /web/{account}/config`: the widget's public settings, with the account's effective limits.
pub(crate) async fn config(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    let (headers, connect) = (request.headers().clone(), connect_of(request.extensions()));
    gated!(shared, account, headers, connect, |g| {
        let mut config = g.visitors.public_config();
        if let Some(a) = shared.accounts.iter().find(|a| a.adapter.account() == account) {
            let l = a.limits;
            config["limits"] = json!({
                "text_max_chars": l.text_max_chars,
                "image_bytes": l.image_bytes,
                "audio_bytes": l.audio_bytes,
                "video_bytes": l.video_bytes,
                "file_bytes": l.file_bytes,
            });
        }
        Ok(axum::Json(config).into_response())
    })
}

/// `POST /web/{account}/sessions`.
pub(crate) async fn session(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    let (headers, connect) = (request.headers().clone(), connect_of(request.extensions()));
    let body = match body_of(request).await {
        Ok(b) => b,
        Err(e) => return cors(e.into_response(), origin_of(&headers).as_deref()),
    };
    gated!(shared, account, headers, connect, |g| {
        let session = g.visitors.open_session(&SessionRequest { body: &body })?;
        if let Some(l) = shared.web.limiters.get(&account) {
            l.check_visitor(&session.visitor.id)?;
        }
        if let Some(source) = &session.source {
            let profile = serde_json::to_string(source).map_err(|e| ApiError::invalid(e.to_string()))?;
            shared.queue.set_visitor_profile(&account, &session.visitor.id, profile).await?;
        }
        let records: Vec<InboundRecord> =
            session.events.into_iter().map(|e| InboundRecord { dedup_key: e.dedup_key, event: e.event }).collect();
        if !records.is_empty() {
            shared.queue.append_inbound(records).await?;
        }
        Ok(axum::Json(json!({
            "token": session.token,
            "visitor_id": session.visitor.id,
            "identity": if session.visitor.user_id.is_some() { "verified" } else { "anonymous" },
            "messenger_links": g.visitors.session_links(&session.visitor.id),
        }))
        .into_response())
    })
}

async fn body_of(request: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(request.into_body(), chatgate_channel_web_max_body()).await.map_err(|_| {
        ApiError::InvalidRequest {
            message: format!("the body is larger than {} bytes", chatgate_channel_web_max_body()),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            index: None,
        }
    })
}

/// The JSON body cap of visitor routes (the channel's `max_body_bytes`).
fn chatgate_channel_web_max_body() -> usize {
    64 * 1024
}

/// The profile kept for a visitor (their source), to put on their events.
async fn profile(shared: &Shared, account: &str, visitor: &str) -> Option<Source> {
    let json = shared.queue.visitor_profile(account, visitor).await.ok()??;
    serde_json::from_str(&json).ok()
}

/// `POST /web/{account}/messages`: stored (event + echo on the visitor's stream) before the answer;
/// the same `client_id` again answers the first result and stores nothing.
pub(crate) async fn message(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    let (headers, connect) = (request.headers().clone(), connect_of(request.extensions()));
    let body = match body_of(request).await {
        Ok(b) => b,
        Err(e) => return cors(e.into_response(), origin_of(&headers).as_deref()),
    };
    gated!(shared, account, headers, connect, |g| {
        let visitor = authed(&shared, &account, &g, &headers)?;
        let uploads = resolve_uploads(&shared, &account, &visitor, &body).await;
        let lookup = |r: &str| uploads.get(r).cloned();
        let inbound = g.visitors.receive(&visitor, VisitorRoute::Message, &body, &lookup)?;
        let client_id = inbound.client_id.clone().unwrap_or_default();
        let source = profile(&shared, &account, &visitor.id).await;
        let mut records = Vec::new();
        let mut echo = None;
        for mut e in inbound.events {
            e.event.source = source.clone();
            if echo.is_none() {
                echo = g.visitors.echo(&e.event);
            }
            records.push(InboundRecord { dedup_key: e.dedup_key, event: e.event });
        }
        let (kind, data) = echo.ok_or_else(|| ApiError::invalid("nothing to store"))?;
        let stored = shared
            .queue
            .append_visitor(VisitorAppend {
                account: account.clone(),
                visitor: visitor.id.clone(),
                key: Some(format!("in:{client_id}")),
                kind,
                data: data.to_string(),
                events: records,
            })
            .await?;
        shared.web.hub.notify(&account, &visitor.id, stored.item.n);
        let stored_data: Value = serde_json::from_str(&stored.item.data).unwrap_or(Value::Null);
        Ok(axum::Json(json!({ "id": stored_data["id"], "seq": stored.item.n, "duplicate": stored.duplicate }))
            .into_response())
    })
}

/// The visitor's own uploads named in a message body, as attachments.
async fn resolve_uploads(
    shared: &Shared,
    account: &str,
    visitor: &Visitor,
    body: &[u8],
) -> HashMap<String, Attachment> {
    #[derive(Deserialize)]
    struct Refs {
        #[serde(default)]
        attachments: Vec<Value>,
    }
    let refs = serde_json::from_slice::<Refs>(body).map(|r| r.attachments).unwrap_or_default();
    let mut out = HashMap::new();
    for r in refs.iter().filter_map(Value::as_str).take(20) {
        if let Some(meta) = shared.web.files.meta(account, r).await.filter(|m| m.visitor == visitor.id) {
            out.insert(
                r.to_owned(),
                Attachment {
                    kind: meta.kind,
                    mime: Some(meta.mime),
                    size: Some(meta.size),
                    name: Some(meta.name),
                    media: Some(format!("web:{account}:{r}")),
                    url: None,
                    duration: None,
                    variant: None,
                },
            );
        }
    }
    out
}

/// `POST pageviews`, `POST feedback`, `POST receipts`, `POST postbacks`: events stored before the answer.
async fn events_route(shared: Arc<Shared>, account: String, route: VisitorRoute, request: Request) -> Response {
    let (headers, connect) = (request.headers().clone(), connect_of(request.extensions()));
    let body = match body_of(request).await {
        Ok(b) => b,
        Err(e) => return cors(e.into_response(), origin_of(&headers).as_deref()),
    };
    gated!(shared, account, headers, connect, |g| {
        let visitor = authed(&shared, &account, &g, &headers)?;
        let inbound = g.visitors.receive(&visitor, route, &body, &|_| None)?;
        let mut records = Vec::new();
        let mut ignored = 0;
        let mut settle = crate::rich::Settle::default();
        for e in inbound.events {
            // A receipt counts only for an operator message on this visitor's own stream.
            if let Some(id) = e.event.status.as_ref().and_then(|s| s.external_id.as_deref()) {
                let own = shared.queue.visitor_item(&account, &visitor.id, &format!("out:{id}")).await?.is_some();
                if !own {
                    ignored += 1;
                    continue;
                }
            }
            let e = shared.rich.inbound(e, &mut settle);
            records.push(InboundRecord { dedup_key: e.dedup_key, event: e.event });
        }
        let accepted = records.len();
        if !records.is_empty() {
            shared.queue.append_inbound(records).await?;
            shared.rich.settled(None, settle);
        }
        Ok(axum::Json(json!({ "accepted": accepted, "ignored": ignored })).into_response())
    })
}

pub(crate) async fn page_view(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    events_route(shared, account, VisitorRoute::PageView, request).await
}

pub(crate) async fn feedback(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    events_route(shared, account, VisitorRoute::Feedback, request).await
}

/// `POST postbacks`: a press on a button of an operator message.
pub(crate) async fn postback(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    events_route(shared, account, VisitorRoute::Postback, request).await
}

pub(crate) async fn receipts(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    request: Request,
) -> Response {
    events_route(shared, account, VisitorRoute::Receipts, request).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct UploadQuery {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /web/{account}/uploads?name=...`: the raw file; its kind decided by content.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Response {
    let (headers, connect) = (request.headers().clone(), connect_of(request.extensions()));
    gated!(shared, account, headers, connect, |g| {
        let visitor = authed(&shared, &account, &g, &headers)?;
        let limits = shared.accounts.iter().find(|a| a.adapter.account() == account).map(|a| a.limits);
        let limits = limits.ok_or(ApiError::NotFound("web widget"))?;
        let largest = [limits.image_bytes, limits.audio_bytes, limits.video_bytes, limits.file_bytes]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0);
        let declared =
            headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > largest) {
            return Err(ApiError::UploadTooLarge { limit: largest, kind: None });
        }
        let bytes = axum::body::to_bytes(request.into_body(), largest as usize)
            .await
            .map_err(|_| ApiError::UploadTooLarge { limit: largest, kind: None })?;
        let name = sanitize_name(query.name.as_deref());
        let (mime, kind) = classify(&name, &bytes)?;
        let limit = limits.for_kind(kind).ok_or(ApiError::UploadKindUnsupported(format!("{} files", kind.as_str())))?;
        if bytes.len() as u64 > limit {
            return Err(ApiError::UploadTooLarge { limit, kind: Some(kind) });
        }
        if bytes.is_empty() {
            return Err(ApiError::invalid("the file is empty"));
        }
        let meta = FileMeta { visitor: visitor.id.clone(), name, mime, kind, size: bytes.len() as u64 };
        let reference = shared.web.files.store(&account, &meta, &bytes).await.map_err(|e| {
            tracing::error!(%account, error = %e, "storing an upload failed");
            ApiError::StoreUnavailable
        })?;
        Ok(axum::Json(json!({
            "ref": reference, "kind": meta.kind.as_str(), "size": meta.size, "mime": meta.mime, "name": meta.name,
        }))
        .into_response())
    })
}

/// A file name safe to keep and show: its last path segment, printable, at most 200 characters.
fn sanitize_name(name: Option<&str>) -> String {
    let base = name.unwrap_or("file").rsplit(['/', '\\']).next().unwrap_or("file");
    let clean: String = base.chars().filter(|c| !c.is_control() && *c != '"').take(200).collect();
    if clean.trim().is_empty() { "file".to_owned() } else { clean }
}

/// Names that claim a media kind: their content must be of it.
const MEDIA_EXTENSIONS: &[(&str, &str)] = &[
    ("png", "image"),
    ("jpg", "image"),
    ("jpeg", "image"),
    ("gif", "image"),
    ("webp", "image"),
    ("mp3", "audio"),
    ("ogg", "audio"),
    ("oga", "audio"),
    ("wav", "audio"),
    ("m4a", "audio"),
    ("mp4", "video"),
    ("webm", "video"),
    ("mov", "video"),
];

/// The content type and kind by content; a name that claims a media kind the content is not, and
/// content types browsers would run (HTML, SVG, scripts), are refused.
fn classify(name: &str, bytes: &[u8]) -> Result<(String, chatgate_model::AttachmentKind), ApiError> {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let claimed = MEDIA_EXTENSIONS.iter().find(|(e, _)| *e == ext).map(|(_, k)| *k);
    let refused = ["html", "htm", "svg", "xhtml", "js", "mjs", "xml"];
    if refused.contains(&ext.as_str()) {
        return Err(ApiError::UploadKindUnsupported(format!(".{ext} files")));
    }
    match chatgate_channel_web_sniff(bytes) {
        Some((mime, kind)) => {
            if claimed.is_some_and(|c| c != kind.as_str()) {
                return Err(ApiError::UploadKindUnsupported(format!("a {} named {name}", kind.as_str())));
            }
            Ok((mime.to_owned(), kind))
        }
        None if claimed.is_some() => Err(ApiError::UploadKindUnsupported(format!(
            "{name}: the content is not the {} its name says",
            claimed.unwrap_or("file")
        ))),
        None => Ok(("application/octet-stream".to_owned(), chatgate_model::AttachmentKind::File)),
    }
}

/// Content sniffing (`chatgate_model::limits::sniff`, shared with the web channel's avatar check):
/// PNG/JPEG/GIF/WebP, MP3/OGG/WAV/M4A, MP4/WebM, PDF.
fn chatgate_channel_web_sniff(bytes: &[u8]) -> Option<(&'static str, chatgate_model::AttachmentKind)> {
    chatgate_model::limits::sniff(bytes)
}

/// `GET /web/{account}/files/{ref}`: a file of the visitor's conversation.
pub(crate) async fn file(
    State(shared): State<Arc<Shared>>,
    Path((account, reference)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (headers, connect) = (request.headers().clone(), connect_of(request.extensions()));
    gated!(shared, account, headers, connect, |g| {
        let visitor = authed(&shared, &account, &g, &headers)?;
        if !files::is_reference(&reference) {
            return Err(ApiError::NotFound("file"));
        }
        let (meta, bytes) = shared.web.files.read(&account, &reference).await.ok_or(ApiError::NotFound("file"))?;
        if meta.visitor != visitor.id {
            return Err(ApiError::NotFound("file"));
        }
        Ok(file_response(meta, bytes))
    })
}

/// A stored file as an attachment download that browsers never run.
pub(crate) fn file_response(meta: FileMeta, bytes: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&meta.mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    let ascii: String = meta.name.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    #[serde(default)]
    after: Option<u64>,
}

/// `GET /web/{account}/stream`: the visitor's items after `Last-Event-ID` (or `?after=`), then new
/// ones as they are stored; keep-alive comments every 15 s; ends at shutdown (the widget resumes).
pub(crate) async fn stream(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Query(query): Query<StreamQuery>,
    request: Request,
) -> Response {
    let (headers, connect) = (request.headers().clone(), connect_of(request.extensions()));
    gated!(shared, account, headers, connect, |g| {
        let visitor = authed(&shared, &account, &g, &headers)?;
        let last_id =
            headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let after = last_id.or(query.after).unwrap_or(0);
        let connection = shared.web.hub.connect(&account, &visitor.id);
        let state = StreamState {
            shared: shared.clone(),
            account: account.clone(),
            visitor: visitor.id,
            after,
            connection,
            pending: Vec::new(),
        };
        let events = futures_util::stream::unfold(state, next_item);
        let mut response =
            Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("ka")).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(response)
    })
}

struct StreamState {
    shared: Arc<Shared>,
    account: String,
    visitor: String,
    after: u64,
    connection: super::Connection,
    pending: Vec<chatgate_queue::VisitorItem>,
}

async fn next_item(mut s: StreamState) -> Option<(Result<SseEvent, Infallible>, StreamState)> {
    loop {
        if !s.pending.is_empty() {
            let item = s.pending.remove(0);
            s.after = item.n;
            let event = SseEvent::default().id(item.n.to_string()).event(item.kind).data(item.data);
            return Some((Ok(event), s));
        }
        if *s.connection.closing.borrow() {
            return None;
        }
        // Mark what we have seen before reading, so an item stored in between wakes us again.
        s.connection.updates.borrow_and_update();
        match s.shared.queue.read_visitor(&s.account, &s.visitor, s.after, STREAM_BATCH).await {
            Ok(items) if !items.is_empty() => {
                s.pending = items;
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(account = %s.account, error = %e, "reading a visitor stream failed; the widget will resume");
                return None;
            }
        }
        // Items reach the store only through `Queue::append_visitor`, and both of its callers (the
        // visitor routes and the mailbox) notify the hub once the item is durable: no polling.
        tokio::select! {
            changed = s.connection.updates.changed() => if changed.is_err() { return None },
            _ = s.connection.closing.changed() => return None,
        }
    }
}

/// `GET /web/{account}/widget.js`: the loader (public, cacheable, no cookies).
pub(crate) async fn loader(State(shared): State<Arc<Shared>>, Path(account): Path<String>) -> Response {
    match widget(&shared, &account).ok().and_then(|v| v.asset("widget.js")) {
        Some((bytes, mime)) => static_file(bytes, mime),
        None => ApiError::NotFound("web widget").into_response(),
    }
}

/// `GET /web/assets/{file}`: the UI module and styles (the same for every widget).
pub(crate) async fn asset(State(shared): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let found = shared.accounts.iter().filter_map(|a| a.adapter.visitors()).find_map(|v| v.asset(&file));
    match found {
        Some((bytes, mime)) if file != "widget.js" => static_file(bytes, mime),
        _ => ApiError::NotFound("asset").into_response(),
    }
}

/// `GET /web/{account}/avatars/{role}`.
pub(crate) async fn avatar(
    State(shared): State<Arc<Shared>>,
    Path((account, role)): Path<(String, String)>,
) -> Response {
    let role = match role.as_str() {
        "bot" => AvatarRole::Bot,
        "operator" => AvatarRole::Operator,
        "user" => AvatarRole::User,
        _ => return ApiError::NotFound("avatar").into_response(),
    };
    match widget(&shared, &account) {
        Ok(v) => {
            let (bytes, mime) = v.avatar(role);
            let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
            static_headers(response.headers_mut(), mime);
            response
        }
        Err(e) => e.into_response(),
    }
}

fn static_file(bytes: &'static [u8], mime: &'static str) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    static_headers(response.headers_mut(), mime);
    response
}

/// Public static files: any site may load them (they carry no data), browsers may cache them briefly.
fn static_headers(h: &mut HeaderMap, mime: &'static str) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}
