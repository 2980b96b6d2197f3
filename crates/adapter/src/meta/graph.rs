//! Meta's Graph API errors, shared by the WhatsApp Cloud API, Messenger and Instagram: the
//! error object and what its codes mean for retrying.
//!
//! Every Graph call that fails answers `{"error": {"message", "type", "code", "error_subcode",
//! "fbtrace_id", ...}}` (<https://developers.facebook.com/docs/graph-api/guides/error-handling>).
//! [`classify`] reads it in this order, first match wins:
//!
//! | step | codes | kind |
//! |---|---|---|
//! | Graph rate limits | 4 app, 17 user, 32 page, 613 calls within an hour | `AccountRetryAfter(Retry-After, else` [`RATE_LIMIT_WAIT`]`)` |
//! | the channel's own codes | (WhatsApp 131047, Messenger subcodes, ...) | what the channel says |
//! | Graph temporary errors | 1 unknown, 2 service, both without a subcode | `Transient` |
//! | Graph token errors | 190 access token expired or invalid | `Failed(provider_unauthorized)` |
//! | `is_transient: true` | | `Transient` |
//! | no code matched: HTTP status | 429 / 401, 403 / 5xx / other | `RetryAfter(Retry-After, else the channel's wait)` / `Failed(provider_unauthorized)` / `Transient` / `Failed(provider_rejected)` |

use std::time::Duration;

use chatgate_model::ErrorCode;
use serde::Deserialize;

use crate::SendErrorKind;

/// How long to wait after a Graph rate-limit code when Meta sends no `Retry-After` (it usually
/// does not): the app, user, page and hourly limits are rolling windows of minutes to an hour.
pub const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A Graph error answer: `{"error": {...}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    pub error: GraphError,
}

/// The Graph error object. Every field is optional: Meta leaves out what it has nothing for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GraphError {
    pub message: Option<String>,
    /// `OAuthException`, `GraphMethodException`, ...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<i64>,
    pub error_subcode: Option<i64>,
    /// Meta's support id of the failed request.
    pub fbtrace_id: Option<String>,
    /// Meta's own hint that a retry may succeed.
    pub is_transient: bool,
    /// WhatsApp's `error_data.details`: what exactly was wrong.
    pub error_data: Option<ErrorData>,
}

/// `error.error_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ErrorData {
    pub details: Option<String>,
}

/// What an error code means for a send, before `Retry-After` is taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// A rate limit on this message's recipient: wait as long as `Retry-After` says, else this long.
    RateLimited(Duration),
    /// A rate limit on the whole account (the app, the Page token, the phone number): every
    /// message of the account waits as long as `Retry-After` says, else this long.
    AccountLimited(Duration),
    /// Try again with backoff.
    Transient,
    /// Give up with this code.
    Failed(ErrorCode),
}

impl Meaning {
    fn into_kind(self, retry_after: Option<Duration>) -> SendErrorKind {
        match self {
            Meaning::RateLimited(wait) => SendErrorKind::RetryAfter(retry_after.unwrap_or(wait)),
            Meaning::AccountLimited(wait) => SendErrorKind::AccountRetryAfter(retry_after.unwrap_or(wait)),
            Meaning::Transient => SendErrorKind::Transient,
            Meaning::Failed(code) => SendErrorKind::Failed(code),
        }
    }
}

/// Graph's rate-limit codes (4, 17, 32, 613), the same on every Meta API. Each counts the calls
/// of the app, the user or the Page token, not of one recipient, so the wait holds the account.
pub fn rate_limit(code: i64) -> Option<Meaning> {
    matches!(code, 4 | 17 | 32 | 613).then_some(Meaning::AccountLimited(RATE_LIMIT_WAIT))
}

/// Graph's other common codes: 1 and 2 without a subcode are temporary, 190 is a dead token.
pub fn common(code: i64, subcode: Option<i64>) -> Option<Meaning> {
    match (code, subcode) {
        (1 | 2, None) => Some(Meaning::Transient),
        (190, _) => Some(Meaning::Failed(ErrorCode::ProviderUnauthorized)),
        _ => None,
    }
}

/// What the HTTP status alone says, when no code did: 429 waits `Retry-After`, else
/// `throttled_wait`; 401 and 403 are an unusable token; 5xx is transient; the rest is refused.
pub fn by_status(status: u16, retry_after: Option<Duration>, throttled_wait: Duration) -> SendErrorKind {
    match status {
        429 => SendErrorKind::RetryAfter(retry_after.unwrap_or(throttled_wait)),
        401 | 403 => SendErrorKind::Failed(ErrorCode::ProviderUnauthorized),
        500.. => SendErrorKind::Transient,
        _ => SendErrorKind::Failed(ErrorCode::ProviderRejected),
    }
}

/// Classifies a failed Graph call (see the module doc for the order). `channel` maps the
/// channel's own codes and is asked after the Graph rate limits; `throttled_wait` is the wait on
/// HTTP 429 without a code or `Retry-After`.
pub fn classify(
    status: u16,
    error: Option<&GraphError>,
    retry_after: Option<Duration>,
    throttled_wait: Duration,
    channel: impl Fn(&GraphError) -> Option<Meaning>,
) -> SendErrorKind {
    let meaning = error.and_then(|e| {
        let by_code =
            e.code.and_then(|code| rate_limit(code).or_else(|| channel(e)).or_else(|| common(code, e.error_subcode)));
        by_code.or(e.is_transient.then_some(Meaning::Transient))
    });
    match meaning {
        Some(meaning) => meaning.into_kind(retry_after),
        None => by_status(status, retry_after, throttled_wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT_429: Duration = Duration::from_secs(10);

    fn graph(code: i64, subcode: Option<i64>) -> GraphError {
        GraphError { code: Some(code), error_subcode: subcode, ..GraphError::default() }
    }

    fn kind(status: u16, error: Option<&GraphError>, retry_after: Option<Duration>) -> SendErrorKind {
        classify(status, error, retry_after, WAIT_429, |e| {
            (e.code == Some(131047)).then_some(Meaning::Failed(ErrorCode::WindowClosed))
        })
    }

    #[test]
    fn error_objects_read_every_documented_field() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","type":"OAuthException",
                "code":613,"error_subcode":2018022,"fbtrace_id":"AbC","is_transient":true,"error_data":{"details":"d"},"x":1}}"#,
        )
        .unwrap();
        assert_eq!(body.error.code, Some(613));
        assert_eq!(body.error.error_subcode, Some(2018022));
        assert_eq!(body.error.kind.as_deref(), Some("OAuthException"));
        assert_eq!(body.error.fbtrace_id.as_deref(), Some("AbC"));
        assert!(body.error.is_transient);
        assert_eq!(body.error.error_data.and_then(|d| d.details).as_deref(), Some("d"));
        let bare: ErrorBody = serde_json::from_str(r#"{"error":{}}"#).unwrap();
        assert_eq!(bare.error, GraphError::default());
    }

    #[test]
    fn graph_codes_then_channel_codes_then_status() {
        let after = Some(Duration::from_secs(5));
        for code in [4, 17, 32, 613] {
            assert_eq!(kind(400, Some(&graph(code, None)), None), SendErrorKind::AccountRetryAfter(RATE_LIMIT_WAIT));
        }
        assert_eq!(kind(400, Some(&graph(613, None)), after), SendErrorKind::AccountRetryAfter(Duration::from_secs(5)));
        assert_eq!(kind(400, Some(&graph(131047, None)), None), SendErrorKind::Failed(ErrorCode::WindowClosed));
        assert_eq!(kind(500, Some(&graph(2, None)), None), SendErrorKind::Transient);
        assert_eq!(kind(400, Some(&graph(1, Some(99))), None), SendErrorKind::Failed(ErrorCode::ProviderRejected));
        assert_eq!(
            kind(401, Some(&graph(190, Some(463))), None),
            SendErrorKind::Failed(ErrorCode::ProviderUnauthorized)
        );
        let flagged = GraphError { is_transient: true, ..graph(100, None) };
        assert_eq!(kind(400, Some(&flagged), None), SendErrorKind::Transient);
        assert_eq!(kind(400, Some(&graph(100, None)), None), SendErrorKind::Failed(ErrorCode::ProviderRejected));
        assert_eq!(kind(503, Some(&graph(100, None)), None), SendErrorKind::Transient);
    }

    #[test]
    fn without_a_known_code_the_status_decides() {
        assert_eq!(kind(429, None, None), SendErrorKind::RetryAfter(WAIT_429));
        assert_eq!(kind(429, None, Some(Duration::from_secs(3))), SendErrorKind::RetryAfter(Duration::from_secs(3)));
        assert_eq!(kind(401, None, None), SendErrorKind::Failed(ErrorCode::ProviderUnauthorized));
        assert_eq!(
            kind(403, Some(&GraphError::default()), None),
            SendErrorKind::Failed(ErrorCode::ProviderUnauthorized)
        );
        assert_eq!(kind(502, None, None), SendErrorKind::Transient);
        assert_eq!(kind(404, None, None), SendErrorKind::Failed(ErrorCode::ProviderRejected));
    }
}
