//! The checks every channel's `Config::from_settings` runs on an account table, written once.
//!
//! Each returns a [`BuildError`] that names the channel and the key, e.g.
//! ``viber: `auth_token` must not be empty``, so a bad `channels.toml` points at its own line.

use std::fmt::Display;
use std::time::Duration;

use crate::{BuildError, Secret};

/// Checks an API root setting and returns it without trailing `/`: it must be an `http://` or
/// `https://` URL (tests point it at a mock on 127.0.0.1, production at the provider).
pub fn api_base_url(channel: impl Display, key: &str, value: &str) -> Result<String, BuildError> {
    let trimmed = value.trim_end_matches('/');
    if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
        return Err(BuildError::new(format!("{channel}: `{key}` must be an http(s) URL")));
    }
    Ok(trimmed.to_owned())
}

/// Refuses a secret that is empty or only whitespace: without it a webhook could not be
/// authenticated or a send authorised.
pub fn non_empty(channel: impl Display, key: &str, secret: &Secret) -> Result<(), BuildError> {
    non_empty_text(channel, key, secret.expose())
}

/// [`non_empty`] for a plain (not secret) setting such as an id.
pub fn non_empty_text(channel: impl Display, key: &str, value: &str) -> Result<(), BuildError> {
    if value.trim().is_empty() {
        return Err(BuildError::new(format!("{channel}: `{key}` must not be empty")));
    }
    Ok(())
}

/// The largest `request_timeout_seconds` an account may set: ten minutes.
pub const REQUEST_TIMEOUT_MAX_SECONDS: u64 = 600;

/// `request_timeout_seconds`, the longest one provider call may take in all (connect, upload,
/// answer) before it counts as a transient failure and is retried: 1 to
/// [`REQUEST_TIMEOUT_MAX_SECONDS`]; `None` keeps the channel's own default.
pub fn request_timeout(channel: impl Display, value: Option<u64>, default: Duration) -> Result<Duration, BuildError> {
    match value {
        None => Ok(default),
        Some(seconds @ 1..=REQUEST_TIMEOUT_MAX_SECONDS) => Ok(Duration::from_secs(seconds)),
        Some(_) => Err(BuildError::new(format!(
            "{channel}: `request_timeout_seconds` must be 1 to {REQUEST_TIMEOUT_MAX_SECONDS}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_url_takes_http_and_https_without_trailing_slash() {
        assert_eq!(
            api_base_url("vk", "api_base_url", "https://api.vk.com/method").unwrap(),
            "https://api.vk.com/method"
        );
        assert_eq!(api_base_url("vk", "api_base_url", "http://127.0.0.1:9/pa//").unwrap(), "http://127.0.0.1:9/pa");
        let error = api_base_url("viber", "api_base_url", "chatapi.viber.com").unwrap_err();
        assert_eq!(error.to_string(), "viber: `api_base_url` must be an http(s) URL");
        assert!(api_base_url("vk", "api_base_url", "ftp://example.com").is_err());
        assert!(api_base_url("vk", "api_base_url", "").is_err());
    }

    #[test]
    fn request_timeout_keeps_the_default_or_takes_one_to_six_hundred_seconds() {
        let default = Duration::from_secs(120);
        assert_eq!(request_timeout("vk", None, default).unwrap(), default);
        assert_eq!(request_timeout("vk", Some(1), default).unwrap(), Duration::from_secs(1));
        assert_eq!(request_timeout("vk", Some(600), default).unwrap(), Duration::from_secs(600));
        let error = request_timeout("viber", Some(0), default).unwrap_err();
        assert_eq!(error.to_string(), "viber: `request_timeout_seconds` must be 1 to 600");
        assert!(request_timeout("viber", Some(601), default).is_err());
    }

    #[test]
    fn empty_and_blank_values_are_refused_by_name() {
        assert!(non_empty("vk", "secret", &Secret::new("s3")).is_ok());
        let error = non_empty("messenger", "app_secret", &Secret::new("")).unwrap_err();
        assert_eq!(error.to_string(), "messenger: `app_secret` must not be empty");
        assert!(non_empty("vk", "secret", &Secret::new("  \t")).is_err());
        assert!(non_empty_text("messenger", "page_id", "").is_err());
        assert!(non_empty_text("messenger", "page_id", "1065").is_ok());
    }
}
