//! The checks every channel's `Config::from_settings` runs on an account table, written once.
//!
//! Each returns a [`BuildError`] that names the channel and the key, e.g.
//! ``viber: `auth_token` must not be empty``, so a bad `channels.toml` points at its own line.

use std::fmt::Display;

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
    fn empty_and_blank_values_are_refused_by_name() {
        assert!(non_empty("vk", "secret", &Secret::new("s3")).is_ok());
        let error = non_empty("messenger", "app_secret", &Secret::new("")).unwrap_err();
        assert_eq!(error.to_string(), "messenger: `app_secret` must not be empty");
        assert!(non_empty("vk", "secret", &Secret::new("  \t")).is_err());
        assert!(non_empty_text("messenger", "page_id", "").is_err());
        assert!(non_empty_text("messenger", "page_id", "1065").is_ok());
    }
}
