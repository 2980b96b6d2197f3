//! placeholder
use axum::response::{IntoResponse, Response};
pub fn document() -> serde_json::Value { serde_json::json!({}) }
pub(crate) async fn serve() -> Response { axum::Json(document()).into_response() }
