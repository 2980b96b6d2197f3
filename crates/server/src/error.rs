//! Errors of the core API: one type, one place that decides the HTTP answer.
//!
//! Every rejection is `{"error": {"code", "message", ...}}` with a stable snake_case code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgate_model::LimitViolation;
use serde_json::{Map, Value, json};

/// A typed API error.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More fields for the error object (`limit`, `actual`, `kind`, ...).
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Map::new() }
    }

    /// 422: the request is understood but refused.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// The store failed; the caller may retry. Details go to the log, not the client.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store could not take the request; retry",
        )
    }
}

impl From<LimitViolation> for ApiError {
    fn from(v: LimitViolation) -> ApiError {
        let e = ApiError::unprocessable(v.code(), v.to_string());
        match v {
            LimitViolation::TextTooLong { limit, actual } => e.with("limit", limit).with("actual", actual),
            LimitViolation::AttachmentTooLarge { kind, limit, actual } => {
                let e = e.with("limit", limit).with("kind", kind.as_str());
                match actual {
                    Some(a) => e.with("actual", a),
                    None => e,
                }
            }
            LimitViolation::AttachmentKindUnsupported { kind } => e.with("kind", kind.as_str()),
            LimitViolation::EmptyMessage => e,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.into());
        error.extend(self.details);
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}
