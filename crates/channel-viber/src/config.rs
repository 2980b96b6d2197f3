//! The settings of one Viber bot account (its table in `channels.toml`) and every check on them.
//!
//! ```toml
//! [accounts.viber-main]
//! kind = "viber"
//! auth_token = "${VIBER_AUTH_TOKEN}"
//! sender_name = "Acme Support"
//! sender_avatar = "https://cdn.example.com/acme-avatar.jpg"
//! # api_base_url = "https://chatapi.viber.com/pa"
//! ```

use std::time::Duration;

use chatgate_adapter::{BuildError, Secret, settings};
use serde::Deserialize;

use crate::CHANNEL;

/// Where Viber's REST Bot API lives (<https://developers.viber.com/docs/api/rest-bot-api/>).
pub const DEFAULT_API_BASE_URL: &str = "https://chatapi.viber.com/pa";

/// How long one `send_message` call may take when `request_timeout_seconds` is not set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `sender.name` of every sent message: "Max 28 characters" (Viber, message data model).
pub const SENDER_NAME_MAX_CHARS: usize = 28;

/// One Viber bot account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The bot's auth token: keys the webhook signature and authenticates API calls
    /// (`X-Viber-Auth-Token`).
    pub auth_token: Secret,
    /// The name shown as the sender of every message we send (1–28 characters).
    pub sender_name: String,
    /// URL of the sender avatar shown with every message we send (Viber: at most 100 KB).
    #[serde(default)]
    pub sender_avatar: Option<String>,
    /// The API root, without a trailing slash; tests point it at a mock.
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
    /// How long one API call may take in all, in seconds (1 to 600); unset keeps the channel's default.
    #[serde(default)]
    pub request_timeout_seconds: Option<u64>,
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_owned()
}

impl Config {
    /// Reads and checks an account table.
    pub fn from_settings(settings: serde_json::Value) -> Result<Config, BuildError> {
        let mut config: Config = serde_json::from_value(settings)?;
        settings::non_empty(CHANNEL, "auth_token", &config.auth_token)?;
        let name_chars = config.sender_name.chars().count();
        if name_chars == 0 || name_chars > SENDER_NAME_MAX_CHARS {
            return Err(BuildError::new(format!(
                "{CHANNEL}: `sender_name` must be 1 to {SENDER_NAME_MAX_CHARS} characters, not {name_chars}"
            )));
        }
        config.api_base_url = settings::api_base_url(CHANNEL, "api_base_url", &config.api_base_url)?;
        settings::request_timeout(CHANNEL, config.request_timeout_seconds, DEFAULT_REQUEST_TIMEOUT)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_checks() {
        let c = Config::from_settings(json!({"auth_token": "t0k", "sender_name": "Acme"})).unwrap();
        assert_eq!(c.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(c.sender_avatar, None);

        let c = Config::from_settings(
            json!({"auth_token": "t0k", "sender_name": "Acme", "api_base_url": "http://127.0.0.1:9/pa/"}),
        )
        .unwrap();
        assert_eq!(c.api_base_url, "http://127.0.0.1:9/pa");

        for bad in [
            json!({"auth_token": "t0k", "sender_name": "Acme", "senderName": "x"}),
            json!({"auth_token": "", "sender_name": "Acme"}),
            json!({"auth_token": "t0k", "sender_name": ""}),
            json!({"auth_token": "t0k", "sender_name": "x".repeat(29)}),
            json!({"auth_token": "t0k", "sender_name": "Acme", "api_base_url": "chatapi.viber.com"}),
            json!({"sender_name": "Acme"}),
        ] {
            assert!(Config::from_settings(bad.clone()).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = Config::from_settings(json!({"auth_token": "very-secret-token", "sender_name": "Acme"})).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret-token"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
