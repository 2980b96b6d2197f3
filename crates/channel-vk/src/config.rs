//! The settings of one VK community account (`[accounts.NAME]` in `channels.toml`).
//!
//! See <https://dev.vk.com/ru/api/callback/getting-started> (Callback API server settings) and
//! <https://dev.vk.com/ru/api/access-token/community-token/in-community-settings> (community token).

use chatgate_adapter::BuildError;
use serde::Deserialize;

/// The API version every call is pinned to. It must match the version set for the Callback
/// server in the community settings, since the shape of `message_new` depends on it (5.103+).
pub const DEFAULT_API_VERSION: &str = "5.199";

/// Where VK's methods live: `POST {api_base_url}/{method}`.
pub const DEFAULT_API_BASE_URL: &str = "https://api.vk.com/method";

/// Settings of one community.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VkConfig {
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
}

impl VkConfig {
    /// Reads and checks the account table.
    pub fn from_settings(settings: serde_json::Value) -> Result<VkConfig, BuildError> {
        let mut config: VkConfig = serde_json::from_value(settings)?;
        if config.group_id <= 0 {
            return Err(BuildError::new("vk: `group_id` must be the positive community id"));
        }
        for (name, value) in
            [("access_token", &config.access_token), ("secret", &config.secret), ("confirmation", &config.confirmation)]
        {
            if value.expose().trim().is_empty() {
                // Without a secret key every callback would be unauthenticated: refuse the account.
                return Err(BuildError::new(format!("vk: `{name}` must not be empty")));
            }
        }
        config.api_base_url = config.api_base_url.trim_end_matches('/').to_owned();
        Ok(config)
    }
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_owned()
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_owned()
}

pub use chatgate_adapter::Secret;
