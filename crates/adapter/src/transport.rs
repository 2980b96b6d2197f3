//! What every channel's HTTP client shares: transport errors without URLs, and `Retry-After`.
//!
//! Some providers put secrets into URLs (Telegram's bot token is a path segment; VK's upload
//! URLs carry signed parameters), so a `reqwest` error is stripped of its URL
//! ([`reqwest::Error::without_url`]) before any text is taken from it. This module holds no
//! client and starts no runtime: it only reads errors and headers.

use std::error::Error as _;
use std::time::Duration;

use crate::{BuildError, SendError};

/// The text of a transport error with its whole source chain (`error sending request: client
/// error (Connect): tcp connect error: Connection refused`), and never its URL.
pub fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A failed request (connect, timeout, a broken body stream) as a [`SendError`]: transient,
/// since the provider may well take the same call a moment later. `context` starts the message,
/// e.g. `VK messages.send`; the rest is [`describe`].
pub fn send_error(context: &str, error: reqwest::Error) -> SendError {
    SendError::transient(format!("{context}: {}", describe(error)))
}

/// A channel's HTTP client could not be built (its TLS backend did not start), as the
/// [`BuildError`] of the account: `<channel>: HTTP client: <describe>`.
pub fn client_error(channel: impl std::fmt::Display, error: reqwest::Error) -> BuildError {
    BuildError::new(format!("{channel}: HTTP client: {}", describe(error)))
}

/// The wait an HTTP `Retry-After` header asks for, in its delay-seconds form (`Retry-After: 30`).
/// `None` when the header is absent or not a number of seconds; no provider we call sends the
/// HTTP-date form.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static(" 42 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(42)));
        headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), None);
    }

    #[tokio::test]
    async fn transport_errors_are_transient_and_carry_no_url() {
        // A port on 127.0.0.1 that nobody listens on: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/bot123:SECRET/getMe");
        let error = reqwest::Client::new().get(url).send().await.unwrap_err();
        assert!(error.url().is_some(), "reqwest keeps the URL until it is stripped");
        let error = send_error("telegram getMe", error);
        assert_eq!(error.kind, crate::SendErrorKind::Transient);
        assert!(error.message.starts_with("telegram getMe: error sending request"), "{}", error.message);
        assert!(!error.message.contains("SECRET"), "{}", error.message);
    }
}
