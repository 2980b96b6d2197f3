//! The settings of one Telegram bot account (its table in `channels.toml`).
//!
//! ```toml
//! [accounts.tg-support]
//! kind = "telegram"
//! bot_token = "${TELEGRAM_BOT_TOKEN}"
//! secret_token = "${TELEGRAM_WEBHOOK_SECRET}"
//! # api_base_url = "https://api.telegram.org"
//! ```
//!
//! `secret_token` is the value given to
//! [`setWebhook`](https://core.telegram.org/bots/api#setwebhook); Telegram sends it back in
//! `X-Telegram-Bot-Api-Secret-Token` on every webhook request.

use std::time::Duration;

use chatgate_adapter::{BuildError, Secret, settings};
use serde::Deserialize;

/// Where the Bot API lives (<https://core.telegram.org/bots/api#making-requests>).
pub const DEFAULT_API_BASE_URL: &str = "https://api.telegram.org";

/// `setWebhook.secret_token`: "1-256 characters. Only characters `A-Z`, `a-z`, `0-9`, `_` and
/// `-` are allowed" (Bot API, setWebhook).
pub const SECRET_TOKEN_MAX_CHARS: usize = 256;

/// How long one Bot API call may take when `request_timeout_seconds` is not set: uploads of up
/// to 50 MB need time.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One Telegram bot account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The token from @BotFather (`123456:ABC-DEF...`). It goes into every API URL.
    pub bot_token: Secret,
    /// The webhook secret registered with `setWebhook`.
    pub secret_token: Secret,
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
    /// Reads and checks an account table: every settings check lives here.
    pub fn from_settings(settings: serde_json::Value) -> Result<Config, BuildError> {
        let mut config: Config = serde_json::from_value(settings)?;
        // The token becomes a URL path segment: refuse anything that would change the URL's shape.
        let token = config.bot_token.expose();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')) {
            return Err(BuildError::new("telegram: `bot_token` must be non-empty and contain only A-Z a-z 0-9 : _ -"));
        }
        let secret = config.secret_token.expose();
        if secret.is_empty()
            || secret.len() > SECRET_TOKEN_MAX_CHARS
            || !secret.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        {
            return Err(BuildError::new(format!(
                "telegram: `secret_token` must be 1 to {SECRET_TOKEN_MAX_CHARS} characters of A-Z a-z 0-9 _ -"
            )));
        }
        config.api_base_url = settings::api_base_url(crate::CHANNEL, "api_base_url", &config.api_base_url)?;
        settings::request_timeout(crate::CHANNEL, config.request_timeout_seconds, DEFAULT_REQUEST_TIMEOUT)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_settings_with_the_real_default_base_url() {
        let c = Config::from_settings(json!({"bot_token": "123:AB-c_d", "secret_token": "s-3_x"})).unwrap();
        assert_eq!(c.api_base_url, "https://api.telegram.org");
        let c = Config::from_settings(
            json!({"bot_token": "123:AB", "secret_token": "s", "api_base_url": "http://127.0.0.1:8/"}),
        )
        .unwrap();
        assert_eq!(c.api_base_url, "http://127.0.0.1:8");
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let bad = [
            json!({"bot_token": "123:AB", "secret_token": "s", "extra": 1}),
            json!({"bot_token": "123:AB"}),
            json!({"bot_token": "", "secret_token": "s"}),
            json!({"bot_token": "123:AB/../x", "secret_token": "s"}),
            json!({"bot_token": "123:AB", "secret_token": ""}),
            json!({"bot_token": "123:AB", "secret_token": "has space"}),
            json!({"bot_token": "123:AB", "secret_token": "x".repeat(257)}),
            json!({"bot_token": "123:AB", "secret_token": "s", "api_base_url": "ftp://x"}),
        ];
        for settings in bad {
            assert!(Config::from_settings(settings.clone()).is_err(), "{settings} was accepted");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Config::from_settings(json!({"bot_token": "999:TOPSECRET", "secret_token": "hush-hush"})).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("TOPSECRET") && !shown.contains("hush-hush"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
