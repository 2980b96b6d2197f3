//! Typed errors: the kind, not the message, decides what the server does.

use std::time::Duration;

use chatgate_model::ErrorCode;

/// Why a webhook was not accepted. The server maps each variant to one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature/secret where one is required (401).
    #[error("missing signature or secret")]
    MissingSignature,
    /// The signature/secret does not match (401).
    #[error("signature or secret mismatch")]
    BadSignature,
    /// Authentic, but not readable as the provider's format (400). The text is for logs.
    #[error("malformed webhook body: {0}")]
    Malformed(String),
    /// A handshake that does not match our configuration (403).
    #[error("handshake refused")]
    HandshakeRefused,
    /// The channel does not take this HTTP method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
}

/// Why sending failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendErrorKind {
    /// The provider asked us to wait this long (Telegram `retry_after`, HTTP `Retry-After`).
    RetryAfter(Duration),
    /// The provider asked us to pause the whole account (bot, number, page) this long, not only
    /// this chat: no message of the account is sent before it passes.
    AccountRetryAfter(Duration),
    /// A network error or a provider-side failure (5xx): retry with backoff.
    Transient,
    /// The provider refused the message for good; the code is what the core sees.
    Failed(ErrorCode),
}

/// A send error: a kind that drives retry, and a message for logs and the core.
///
/// The message must never contain secrets: channels whose API puts tokens into URLs
/// strip the URL from transport errors before building one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub kind: SendErrorKind,
    pub message: String,
}

impl SendError {
    pub fn retry_after(after: Duration, message: impl Into<String>) -> SendError {
        SendError { kind: SendErrorKind::RetryAfter(after), message: message.into() }
    }
    pub fn account_retry_after(after: Duration, message: impl Into<String>) -> SendError {
        SendError { kind: SendErrorKind::AccountRetryAfter(after), message: message.into() }
    }
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError { kind: SendErrorKind::Transient, message: message.into() }
    }
    pub fn failed(code: ErrorCode, message: impl Into<String>) -> SendError {
        SendError { kind: SendErrorKind::Failed(code), message: message.into() }
    }
}
