//! The settings of one WhatsApp account (its table in `channels.toml`) and every check on them;
//! the limit profile picks [`crate::CLOUD_FACTS`] or [`crate::QR_FACTS`].

use std::time::Duration;

use chatgate_adapter::{BuildError, ChannelFacts, Secret, settings};
use serde::Deserialize;

use crate::CHANNEL;

/// The Graph API the Cloud API lives on, with the version we were written against
/// (v26.0, released 2026-07-29; see <https://developers.facebook.com/docs/graph-api/changelog/versions/>).
pub const DEFAULT_API_BASE_URL: &str = "https://graph.facebook.com/v26.0";

/// How long one Cloud API call may take when `request_timeout_seconds` is not set (uploads of up
/// to 100 MB included).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Which set of limits an account enforces. It changes limits only: sending always goes through
/// the Cloud API calls in `send.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// WhatsApp Business Cloud API (the default).
    #[default]
    Cloud,
    /// A number paired by QR code with the WhatsApp app.
    Qr,
}

impl Profile {
    /// The channel's constant facts with this profile's limits.
    pub const fn facts(self) -> &'static ChannelFacts {
        match self {
            Profile::Cloud => &crate::CLOUD_FACTS,
            Profile::Qr => &crate::QR_FACTS,
        }
    }
}

/// The settings of one WhatsApp account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The business phone number's id in the Cloud API (not the phone number itself).
    pub phone_number_id: String,
    /// A system-user or user access token with `whatsapp_business_messaging`.
    pub access_token: Secret,
    /// The Meta app secret: key of the `X-Hub-Signature-256` HMAC.
    pub app_secret: Secret,
    /// The token we chose when subscribing the webhook (`hub.verify_token`).
    pub verify_token: Secret,
    /// Graph API root with version, without trailing slash.
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
    #[serde(default)]
    pub profile: Profile,
    /// The WhatsApp Business Account (WABA) id the number belongs to. Needed only by
    /// `chatgate webhooks` (`/{waba-id}/subscribed_apps`).
    #[serde(default)]
    pub business_account_id: Option<String>,
    /// How long one API call may take in all, in seconds (1 to 600); unset keeps the channel's default.
    #[serde(default)]
    pub request_timeout_seconds: Option<u64>,
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_owned()
}

impl Config {
    /// Reads and checks the settings JSON.
    pub fn from_settings(settings: serde_json::Value) -> Result<Config, BuildError> {
        let mut config: Config = serde_json::from_value(settings)?;
        if config.phone_number_id.is_empty() || !config.phone_number_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(BuildError::new(format!(
                "{CHANNEL}: `phone_number_id` must be the non-empty numeric id of the business phone number"
            )));
        }
        if let Some(id) = &config.business_account_id
            && (id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(BuildError::new(format!(
                "{CHANNEL}: `business_account_id` must be the numeric WhatsApp Business Account id"
            )));
        }
        settings::non_empty(CHANNEL, "access_token", &config.access_token)?;
        settings::non_empty(CHANNEL, "app_secret", &config.app_secret)?;
        settings::non_empty(CHANNEL, "verify_token", &config.verify_token)?;
        config.api_base_url = settings::api_base_url(CHANNEL, "api_base_url", &config.api_base_url)?;
        settings::request_timeout(CHANNEL, config.request_timeout_seconds, DEFAULT_REQUEST_TIMEOUT)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> serde_json::Value {
        json!({"phone_number_id": "1065", "access_token": "tok-SECRET", "app_secret": "app-SECRET", "verify_token": "vt-SECRET"})
    }

    #[test]
    fn defaults_and_redaction() {
        let config = Config::from_settings(settings()).unwrap();
        assert_eq!(config.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(config.profile, Profile::Cloud);
        let debug = format!("{config:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn profile_and_api_base_url() {
        let mut s = settings();
        s["profile"] = json!("qr");
        s["api_base_url"] = json!("http://127.0.0.1:1/v26.0/");
        let config = Config::from_settings(s).unwrap();
        assert_eq!(config.profile, Profile::Qr);
        assert_eq!(config.api_base_url, "http://127.0.0.1:1/v26.0");
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut s = settings();
        s["phone_numbr_id"] = json!("1");
        assert!(Config::from_settings(s).is_err());
        let mut s = settings();
        s["phone_number_id"] = json!("12/../34");
        assert!(Config::from_settings(s).is_err());
        let mut s = settings();
        s["app_secret"] = json!("");
        assert!(Config::from_settings(s).is_err());
        let mut s = settings();
        s["profile"] = json!("web");
        assert!(Config::from_settings(s).is_err());
        let mut s = settings();
        s["api_base_url"] = json!("graph.facebook.com");
        assert!(Config::from_settings(s).is_err());
    }
}
