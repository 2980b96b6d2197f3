//! Every refusal the server gives, and the one place each becomes an HTTP answer.
//!
//! - [`ApiError`]: the core API. Each variant has one [`ErrorCode`] and one status; the answer is
//!   `{"error": {"code", "message", ...details}}`. Handlers return `Result<_, ApiError>` and use `?`
//!   on queue errors, limit violations and query rejections.
//! - [`WebhookRejection`]: the webhook route. Providers get a short plain-text body; details go to
//!   the log only.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatgate_adapter::WebhookError;
use chatgate_model::{AttachmentKind, Channel, ErrorCode, LimitViolation};
use chatgate_queue::QueueError;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Where a name in a request came from. A path names a resource, so an unknown one is 404; a body
/// names the target of a request, so an unknown one makes the request unprocessable (422).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Path,
    Body,
}

/// A refused core API request.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// No valid bearer token.
    Unauthorized,
    /// The body is not JSON.
    InvalidJson(String),
    /// A query string, path or body that cannot be a request of this route.
    InvalidRequest {
        message: String,
        status: StatusCode,
        index: Option<usize>,
    },
    /// No such message, media reference, ...
    NotFound(&'static str),
    UnknownChannel {
        name: String,
        place: Place,
    },
    UnknownAccount {
        channel: Channel,
        account: String,
        place: Place,
    },
    /// An outbound message breaks a limit; `index` names the attachment.
    Limit {
        violation: LimitViolation,
        index: Option<usize>,
    },
    CustomerBlocked,
    WindowClosed {
        last_inbound_at: Option<DateTime<Utc>>,
        window: Duration,
    },
    TemplateUnsupported(Channel),
    IdempotencyConflict {
        existing: Uuid,
    },
    /// The store failed; the caller may retry. Details go to the log, not the client.
    StoreUnavailable,
    MediaTooLarge {
        limit: u64,
    },
    MediaUnavailable(String),
    ProviderUnavailable(String),
    // The web channel's visitor routes.
    OriginNotAllowed,
    VisitorTokenInvalid,
    IdentityRequired,
    IdentityInvalid,
    RateLimited {
        retry_after: Duration,
    },
    UploadTooLarge {
        limit: u64,
        kind: Option<AttachmentKind>,
    },
    UploadKindUnsupported(String),
    /// A request field its channel does not take (`feedback` outside the web channel).
    FieldUnsupported(String),
    /// Buttons break the channel's limits (`too_many_buttons`, `button_title_too_long`,
    /// `button_payload_too_long`, or `invalid_request` for a malformed button).
    Buttons(chatgate_model::ButtonViolation),
    /// The channel has no such marker (typing, read).
    UnsupportedByChannel(String),
    /// A provider refused a marker or could not be reached (typing, read): its code and message.
    Provider {
        code: ErrorCode,
        message: String,
    },
}

impl ApiError {
    /// A request body field that is wrong (422).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest { message: message.into(), status: StatusCode::UNPROCESSABLE_ENTITY, index: None }
    }

    /// The same, about one attachment.
    pub fn invalid_at(index: usize, message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest {
            message: message.into(),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            index: Some(index),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::InvalidJson(_) => ErrorCode::InvalidJson,
            ApiError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::UnknownChannel { .. } => ErrorCode::UnknownChannel,
            ApiError::UnknownAccount { .. } => ErrorCode::UnknownAccount,
            ApiError::Limit { violation, .. } => violation.code(),
            ApiError::CustomerBlocked => ErrorCode::CustomerBlocked,
            ApiError::WindowClosed { .. } => ErrorCode::WindowClosed,
            ApiError::TemplateUnsupported(_) => ErrorCode::TemplateUnsupported,
            ApiError::IdempotencyConflict { .. } => ErrorCode::IdempotencyConflict,
            ApiError::StoreUnavailable => ErrorCode::StoreUnavailable,
            ApiError::MediaTooLarge { .. } => ErrorCode::MediaTooLarge,
            ApiError::MediaUnavailable(_) => ErrorCode::MediaUnavailable,
            ApiError::ProviderUnavailable(_) => ErrorCode::ProviderUnavailable,
            ApiError::OriginNotAllowed => ErrorCode::OriginNotAllowed,
            ApiError::VisitorTokenInvalid => ErrorCode::VisitorTokenInvalid,
            ApiError::IdentityRequired => ErrorCode::IdentityRequired,
            ApiError::IdentityInvalid => ErrorCode::IdentityInvalid,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::UploadTooLarge { .. } => ErrorCode::UploadTooLarge,
            ApiError::UploadKindUnsupported(_) => ErrorCode::UploadKindUnsupported,
            ApiError::FieldUnsupported(_) => ErrorCode::FieldUnsupported,
            ApiError::Buttons(v) => v.code(),
            ApiError::UnsupportedByChannel(_) => ErrorCode::UnsupportedByChannel,
            ApiError::Provider { code, .. } => *code,
        }
    }

    pub fn status(&self) -> StatusCode {
        let by_place = |place: &Place| match place {
            Place::Path => StatusCode::NOT_FOUND,
            Place::Body => StatusCode::UNPROCESSABLE_ENTITY,
        };
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidRequest { status, .. } => *status,
            ApiError::NotFound(_) | ApiError::MediaUnavailable(_) => StatusCode::NOT_FOUND,
            ApiError::UnknownChannel { place, .. } | ApiError::UnknownAccount { place, .. } => by_place(place),
            ApiError::Limit { .. }
            | ApiError::CustomerBlocked
            | ApiError::WindowClosed { .. }
            | ApiError::TemplateUnsupported(_)
            | ApiError::IdempotencyConflict { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MediaTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
            ApiError::OriginNotAllowed | ApiError::IdentityRequired | ApiError::IdentityInvalid => {
                StatusCode::FORBIDDEN
            }
            ApiError::VisitorTokenInvalid => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UploadKindUnsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::FieldUnsupported(_) | ApiError::Buttons(_) | ApiError::UnsupportedByChannel(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Provider { code: ErrorCode::ProviderUnavailable, .. } => StatusCode::BAD_GATEWAY,
            ApiError::Provider { code: ErrorCode::InvalidRequest, .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Provider { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The human message.
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthorized => "a valid bearer token is required".to_owned(),
            ApiError::InvalidJson(m) | ApiError::InvalidRequest { message: m, .. } => m.clone(),
            ApiError::NotFound(what) => format!("{what} not found"),
            ApiError::UnknownChannel { name, .. } => format!("no channel `{name}` is configured"),
            ApiError::UnknownAccount { channel, account, .. } => format!("no {channel} account `{account}`"),
            ApiError::Limit { violation, .. } => violation.to_string(),
            ApiError::CustomerBlocked => "this customer is blocked".to_owned(),
            ApiError::WindowClosed { .. } => {
                "the customer has not written within the messaging window; send a template".to_owned()
            }
            ApiError::TemplateUnsupported(channel) => format!("{channel} does not take templates"),
            ApiError::IdempotencyConflict { .. } => "this idempotency key was used for a different message".to_owned(),
            ApiError::StoreUnavailable => "the store could not take the request; retry".to_owned(),
            ApiError::MediaTooLarge { limit } => format!("the file is larger than {limit} bytes"),
            ApiError::MediaUnavailable(m) | ApiError::ProviderUnavailable(m) => m.clone(),
            ApiError::OriginNotAllowed => "this site is not allowed to use this widget".to_owned(),
            ApiError::VisitorTokenInvalid => "the visitor token is missing, forged or of another widget".to_owned(),
            ApiError::IdentityRequired => "this widget requires a verified user id".to_owned(),
            ApiError::IdentityInvalid => "the user hash does not match the user id".to_owned(),
            ApiError::RateLimited { retry_after } => {
                format!("too many requests; retry in {} s", retry_after.as_secs().max(1))
            }
            ApiError::UploadTooLarge { limit, kind } => match kind {
                Some(k) => format!("{} files may be at most {limit} bytes", k.as_str()),
                None => format!("uploads may be at most {limit} bytes"),
            },
            ApiError::UploadKindUnsupported(what) => format!("{what} cannot be uploaded"),
            ApiError::FieldUnsupported(m) => m.clone(),
            ApiError::Buttons(v) => v.to_string(),
            ApiError::UnsupportedByChannel(m) => m.clone(),
            ApiError::Provider { message, .. } => message.clone(),
        }
    }

    /// The answer's body: `{"error": {"code", "message", ...details}}`.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), self.code().as_str().into());
        error.insert("message".into(), self.message().into());
        error.extend(self.details());
        json!({ "error": error })
    }

    /// Fields beside `code` and `message`.
    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        match self {
            ApiError::InvalidRequest { index: Some(i), .. } => {
                d.insert("index".into(), (*i).into());
            }
            ApiError::Limit { violation, index } => {
                match violation {
                    LimitViolation::TextTooLong { limit, actual } => {
                        d.insert("limit".into(), (*limit).into());
                        d.insert("actual".into(), (*actual).into());
                    }
                    LimitViolation::AttachmentTooLarge { kind, limit, actual } => {
                        d.insert("limit".into(), (*limit).into());
                        d.insert("kind".into(), kind.as_str().into());
                        if let Some(a) = actual {
                            d.insert("actual".into(), (*a).into());
                        }
                    }
                    LimitViolation::AttachmentKindUnsupported { kind } => {
                        d.insert("kind".into(), kind.as_str().into());
                    }
                    LimitViolation::EmptyMessage => {}
                }
                if let Some(i) = index {
                    d.insert("index".into(), (*i).into());
                }
            }
            ApiError::WindowClosed { last_inbound_at, window } => {
                d.insert("last_inbound_at".into(), last_inbound_at.map(|t| t.to_rfc3339()).into());
                d.insert("window_seconds".into(), window.as_secs().into());
            }
            ApiError::IdempotencyConflict { existing } => {
                d.insert("id".into(), existing.to_string().into());
            }
            ApiError::MediaTooLarge { limit } => {
                d.insert("limit".into(), (*limit).into());
            }
            ApiError::UploadTooLarge { limit, kind } => {
                d.insert("limit".into(), (*limit).into());
                if let Some(k) = kind {
                    d.insert("kind".into(), k.as_str().into());
                }
            }
            ApiError::RateLimited { retry_after } => {
                d.insert("retry_after".into(), retry_after.as_secs().max(1).into());
            }
            ApiError::Buttons(v) => {
                use chatgate_model::ButtonViolation as V;
                if let V::TooMany { limit, actual }
                | V::TitleTooLong { limit, actual, .. }
                | V::PayloadTooLong { limit, actual, .. } = v
                {
                    d.insert("limit".into(), (*limit).into());
                    d.insert("actual".into(), (*actual).into());
                }
                if let Some(i) = v.index() {
                    d.insert("index".into(), i.into());
                }
            }
            _ => {}
        }
        d
    }
}

impl From<LimitViolation> for ApiError {
    fn from(violation: LimitViolation) -> ApiError {
        ApiError::Limit { violation, index: None }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        match e {
            QueueError::IdempotencyConflict { existing } => ApiError::IdempotencyConflict { existing },
            e => {
                tracing::error!(error = %e, "store error in the core API");
                ApiError::StoreUnavailable
            }
        }
    }
}

impl From<chatgate_adapter::visitor::VisitorError> for ApiError {
    fn from(e: chatgate_adapter::visitor::VisitorError) -> ApiError {
        use chatgate_adapter::visitor::VisitorError;
        match e {
            VisitorError::TokenInvalid => ApiError::VisitorTokenInvalid,
            VisitorError::IdentityRequired => ApiError::IdentityRequired,
            VisitorError::IdentityInvalid => ApiError::IdentityInvalid,
            VisitorError::InvalidJson(m) => ApiError::InvalidJson(m),
            VisitorError::Invalid(m) => ApiError::invalid(m),
            VisitorError::Limit(violation) => ApiError::Limit { violation, index: None },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::InvalidRequest { message: e.body_text(), status: StatusCode::BAD_REQUEST, index: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A webhook request that is not answered 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WebhookRejection {
    /// No such channel or account in the URL.
    UnknownAccount,
    /// The body is over the channel's cap (declared or counted).
    TooLarge,
    /// The body could not be read off the connection.
    UnreadableBody,
    /// The adapter refused it (authentication, format, handshake, method).
    Refused(WebhookError),
    /// Authentic and readable, but the store could not commit it: the provider must retry.
    NotStored,
    /// Authentic and readable, but too many webhooks already wait for the store
    /// ([`crate::Settings::max_pending_webhooks`]): nothing stored, the provider must retry.
    Overloaded,
}

/// What a provider is told to wait after [`WebhookRejection::NotStored`] or
/// [`WebhookRejection::Overloaded`].
const NOT_STORED_RETRY_AFTER: Duration = Duration::from_secs(1);

impl WebhookRejection {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            WebhookRejection::UnknownAccount => StatusCode::NOT_FOUND,
            WebhookRejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookRejection::UnreadableBody => StatusCode::BAD_REQUEST,
            WebhookRejection::Refused(e) => match e {
                WebhookError::MissingSignature | WebhookError::BadSignature => StatusCode::UNAUTHORIZED,
                WebhookError::Malformed(_) => StatusCode::BAD_REQUEST,
                WebhookError::HandshakeRefused => StatusCode::FORBIDDEN,
                WebhookError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            },
            WebhookRejection::NotStored | WebhookRejection::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn text(&self) -> &'static str {
        match self {
            WebhookRejection::UnknownAccount => "unknown channel or account",
            WebhookRejection::TooLarge => "body too large",
            WebhookRejection::UnreadableBody => "could not read the body",
            WebhookRejection::Refused(e) => match e {
                WebhookError::MissingSignature | WebhookError::BadSignature => "unauthorized",
                WebhookError::Malformed(_) => "malformed body",
                WebhookError::HandshakeRefused => "forbidden",
                WebhookError::MethodNotAllowed => "method not allowed",
            },
            WebhookRejection::NotStored => "not stored; retry",
            WebhookRejection::Overloaded => "overloaded; retry",
        }
    }
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        let mut response = match self {
            // The one webhook refusal with a code: the same body as the core API's errors, so a
            // load balancer or a log reader can tell shedding from a store failure.
            WebhookRejection::Overloaded => (self.status(), axum::Json(overloaded_body(self.text()))).into_response(),
            _ => (self.status(), self.text()).into_response(),
        };
        if matches!(self, WebhookRejection::NotStored | WebhookRejection::Overloaded) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(NOT_STORED_RETRY_AFTER.as_secs()));
        }
        response
    }
}

/// The body of every `503 overloaded`, webhook or connection: the core API's error shape.
fn overloaded_body(message: &str) -> Value {
    json!({"error": {"code": ErrorCode::Overloaded.as_str(), "message": message}})
}

/// What a client refused at a connection cap is told.
const TOO_MANY_CONNECTIONS: &str = "too many connections; retry";

/// The answer to a request on a connection chosen to be shed as the request began (see `serve`):
/// `503 overloaded` with `Retry-After`, and the connection closes.
pub(crate) fn too_many_connections() -> Response {
    let headers = [
        (header::RETRY_AFTER, HeaderValue::from(NOT_STORED_RETRY_AFTER.as_secs())),
        (header::CONNECTION, HeaderValue::from_static("close")),
    ];
    (StatusCode::SERVICE_UNAVAILABLE, headers, axum::Json(overloaded_body(TOO_MANY_CONNECTIONS))).into_response()
}

/// [`too_many_connections`] as the bytes of a whole HTTP/1.1 answer, for a connection refused at
/// a cap, which is answered without the HTTP stack.
pub(crate) fn too_many_connections_raw() -> &'static str {
    static RAW: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RAW.get_or_init(|| {
        let body = overloaded_body(TOO_MANY_CONNECTIONS).to_string();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {}\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            NOT_STORED_RETRY_AFTER.as_secs(),
            body.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_in_the_path_is_not_found_and_in_the_body_unprocessable() {
        let path = ApiError::UnknownChannel { name: "x".into(), place: Place::Path };
        let body = ApiError::UnknownChannel { name: "x".into(), place: Place::Body };
        assert_eq!((path.status(), body.status()), (StatusCode::NOT_FOUND, StatusCode::UNPROCESSABLE_ENTITY));
        assert_eq!(path.code(), ErrorCode::UnknownChannel);
    }

    #[test]
    fn limit_violations_keep_their_code_and_numbers() {
        let e = ApiError::Limit { violation: LimitViolation::TextTooLong { limit: 2000, actual: 2001 }, index: None };
        assert_eq!((e.code(), e.status()), (ErrorCode::TextTooLong, StatusCode::UNPROCESSABLE_ENTITY));
        let d = e.details();
        assert_eq!((d["limit"].as_u64(), d["actual"].as_u64()), (Some(2000), Some(2001)));
    }

    #[test]
    fn a_store_failure_tells_the_provider_to_retry() {
        let r = WebhookRejection::NotStored.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(WebhookRejection::Refused(WebhookError::BadSignature).status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn shedding_tells_the_provider_to_retry_with_a_code() {
        let r = WebhookRejection::Overloaded.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
