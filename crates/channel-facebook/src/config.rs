//! The settings of one Messenger or Instagram account (`[accounts.NAME]` in `channels.toml`).
//!
//! Both kinds take the same keys; what `page_id` names differs:
//! - **messenger**: the Facebook Page id. Webhook entries carry it as `entry[].id`.
//! - **instagram** (Messenger API for Instagram, Facebook Login): the id of the Facebook Page linked
//!   to the Instagram professional account. The Send API is called on that Page with the Page
//!   token (<https://developers.facebook.com/docs/messenger-platform/instagram/features/send-message>);
//!   webhook entries carry the Instagram account id instead, so `page_id` is used for sending only
//!   and **`instagram_account_id`** (required for `instagram`, refused for `messenger`) names the
//!   account in webhooks. With the Instagram API with Instagram Login, set
//!   `api_base_url = "https://graph.instagram.com/v26.0"`, `page_id` and `instagram_account_id` to
//!   the Instagram professional account id and `page_access_token` to its Instagram token.
//!
//! Meta posts the webhooks of every Page and Instagram account of one app to one callback URL:
//! `entry[].id` says whose each entry is, and the gateway hands it to the account whose `page_id`
//! (Messenger) or `instagram_account_id` (Instagram) it names (see `Adapter::owner_id`).
//!
//! Every check on the settings is here ([`Config::from_settings`]); errors name the channel
//! (`messenger` or `instagram`) and the key.

use std::time::Duration;

use chatgate_adapter::{BuildError, Secret, settings};
use chatgate_model::Channel;
use serde::Deserialize;

/// Graph API root with the version we call: v26.0 is the newest version in Meta's changelog
/// (released 2026-07-29, <https://developers.facebook.com/docs/graph-api/changelog>).
pub const DEFAULT_API_BASE_URL: &str = "https://graph.facebook.com/v26.0";

/// How long one Send API call, uploads of up to 25 MB included may take when `request_timeout_seconds` is not set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One account's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Page id the Send API is called on (see the module doc for Instagram).
    pub page_id: String,
    /// Instagram only: the Instagram professional account id, `entry[].id` of its webhooks.
    #[serde(default)]
    pub instagram_account_id: Option<String>,
    /// Page access token with `pages_messaging` (Messenger) or `instagram_manage_messages` (Instagram).
    pub page_access_token: Secret,
    /// The Meta app secret: key of the `X-Hub-Signature-256` HMAC.
    pub app_secret: Secret,
    /// The token entered in the App Dashboard, echoed back by Meta in the `GET` handshake.
    pub verify_token: Secret,
    /// Graph API root including the version, without a trailing slash.
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
    /// Reads and checks the settings JSON of a `channel` (`messenger` or `instagram`) account:
    /// the one crate serves two channels, so the caller says which one the errors name.
    pub fn from_settings(channel: Channel, settings: serde_json::Value) -> Result<Config, BuildError> {
        let mut config: Config = serde_json::from_value(settings)?;
        settings::non_empty_text(channel, "page_id", &config.page_id)?;
        match (channel == crate::INSTAGRAM, config.instagram_account_id.as_deref()) {
            (true, Some(id)) => settings::non_empty_text(channel, "instagram_account_id", id)?,
            (true, None) => {
                return Err(BuildError::new(format!(
                    "{channel}: `instagram_account_id` is required: the Instagram professional account id \
                     that webhook entries carry as `entry[].id`"
                )));
            }
            (false, Some(_)) => {
                return Err(BuildError::new(format!(
                    "{channel}: `instagram_account_id` is for instagram accounts only; a Page is named by `page_id`"
                )));
            }
            (false, None) => {}
        }
        settings::non_empty(channel, "page_access_token", &config.page_access_token)?;
        settings::non_empty(channel, "app_secret", &config.app_secret)?;
        settings::non_empty(channel, "verify_token", &config.verify_token)?;
        config.api_base_url = settings::api_base_url(channel, "api_base_url", &config.api_base_url)?;
        settings::request_timeout(channel, config.request_timeout_seconds, DEFAULT_REQUEST_TIMEOUT)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> serde_json::Value {
        json!({"page_id": "1", "page_access_token": "tok-123", "app_secret": "sec-456", "verify_token": "vt-789"})
    }

    #[test]
    fn secrets_never_show_in_debug_and_unknown_keys_are_refused() {
        let config = Config::from_settings(crate::MESSENGER, settings()).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("tok-123") && !debug.contains("sec-456") && !debug.contains("vt-789"), "{debug}");
        assert_eq!(config.api_base_url, DEFAULT_API_BASE_URL);
        let mut unknown = settings();
        unknown["app_secre"] = json!("x");
        assert!(Config::from_settings(crate::MESSENGER, unknown).is_err());
    }

    #[test]
    fn instagram_needs_its_account_id_and_messenger_refuses_it() {
        let error = Config::from_settings(crate::INSTAGRAM, settings()).unwrap_err();
        assert!(error.to_string().starts_with("instagram: `instagram_account_id` is required"), "{error}");
        let mut instagram = settings();
        instagram["instagram_account_id"] = json!("17841400000000001");
        let config = Config::from_settings(crate::INSTAGRAM, instagram.clone()).unwrap();
        assert_eq!(config.instagram_account_id.as_deref(), Some("17841400000000001"));
        let error = Config::from_settings(crate::MESSENGER, instagram).unwrap_err();
        assert!(error.to_string().starts_with("messenger: `instagram_account_id` is for instagram"), "{error}");
        let mut empty = settings();
        empty["instagram_account_id"] = json!(" ");
        assert!(Config::from_settings(crate::INSTAGRAM, empty).is_err());
    }

    #[test]
    fn empty_values_and_odd_urls_are_refused_naming_the_channel() {
        let mut empty = settings();
        empty["page_id"] = json!("");
        let error = Config::from_settings(crate::INSTAGRAM, empty).unwrap_err();
        assert_eq!(error.to_string(), "instagram: `page_id` must not be empty");
        let mut url = settings();
        url["api_base_url"] = json!("http://127.0.0.1:9/v26.0/");
        assert_eq!(Config::from_settings(crate::MESSENGER, url).unwrap().api_base_url, "http://127.0.0.1:9/v26.0");
        let mut url = settings();
        url["api_base_url"] = json!("graph.facebook.com");
        assert!(Config::from_settings(crate::MESSENGER, url).is_err());
    }
}
