//! The settings of one VK community account (`[accounts.NAME]` in `channels.toml`) and every
//! check on them.
//!
//! See <https://dev.vk.com/ru/api/callback/getting-started> (Callback API server settings) and
//! <https://dev.vk.com/ru/api/access-token/community-token/in-community-settings> (community token).

use std::time::Duration;

use chatgate_adapter::{BuildError, Secret, settings};
use serde::Deserialize;

use crate::CHANNEL;

/// The API version every call is pinned to. It must match the version set for the Callback
/// server in the community settings, since the shape of `message_new` depends on it (5.103+).
pub const DEFAULT_API_VERSION: &str = "5.199";

/// Where VK's methods live: `POST {api_base_url}/{method}`.
pub const DEFAULT_API_BASE_URL: &str = "https://api.vk.com/method";

/// How long one API call (uploads to VK's upload servers have their own, longer timeout) may take when `request_timeout_seconds` is not set.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of one community.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The community (group) id, positive.
    pub group_id: i64,
    /// The community access token with the `messages` (and `photos`, `docs`) rights.
    pub access_token: Secret,
    /// The Callback API "secret key": VK puts it into the body of every callback.
    pub secret: Secret,
    /// The confirmation string from the Callback API settings, answered to `type: confirmation`.
    pub confirmation: Secret,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
    /// How long one API call may take in all, in seconds (1 to 600); unset keeps the channel's default.
    #[serde(default)]
    pub request_timeout_seconds: Option<u64>,
}

impl Config {
    /// Reads and checks the account table.
    pub fn from_settings(settings: serde_json::Value) -> Result<Config, BuildError> {
        let mut config: Config = serde_json::from_value(settings)?;
        if config.group_id <= 0 {
            return Err(BuildError::new(format!("{CHANNEL}: `group_id` must be the positive community id")));
        }
        // Without a secret key every callback would be unauthenticated: refuse the account.
        settings::non_empty(CHANNEL, "access_token", &config.access_token)?;
        settings::non_empty(CHANNEL, "secret", &config.secret)?;
        settings::non_empty(CHANNEL, "confirmation", &config.confirmation)?;
        config.api_base_url = settings::api_base_url(CHANNEL, "api_base_url", &config.api_base_url)?;
        settings::request_timeout(CHANNEL, config.request_timeout_seconds, DEFAULT_REQUEST_TIMEOUT)?;
        Ok(config)
    }
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_owned()
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_owned()
}
