//! The settings of one Messenger or Instagram account (`[accounts.NAME]` in `channels.toml`).
//!
//! Both kinds take the same keys; what `page_id` names differs:
//! - **messenger**: the Facebook Page id. Webhook entries carry it as `entry[].id`.
//! - **instagram** (Messenger API for Instagram, Facebook Login): the id of the Facebook Page linked
//!   to the Instagram professional account. The Send API is called on that Page with the Page
//!   token (<https://developers.facebook.com/docs/messenger-platform/instagram/features/send-message>);
//!   webhook entries carry the Instagram account id instead, so `page_id` is used for sending only.
//!   With the Instagram API with Instagram Login, set `api_base_url = "https://graph.instagram.com/v26.0"`,
//!   `page_id` to the Instagram professional account id and `page_access_token` to its Instagram token.

use serde::Deserialize;

/// Graph API root with the version we call: v26.0 is the newest version in Meta's changelog
/// (released 2026-07-29, <https://developers.facebook.com/docs/graph-api/changelog>).
pub const DEFAULT_API_BASE_URL: &str = "https://graph.facebook.com/v26.0";

/// One account's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Page id the Send API is called on (see the module doc for Instagram).
    pub page_id: String,
    /// Page access token with `pages_messaging` (Messenger) or `instagram_manage_messages` (Instagram).
    pub page_access_token: Secret,
    /// The Meta app secret: key of the `X-Hub-Signature-256` HMAC.
    pub app_secret: Secret,
    /// The token entered in the App Dashboard, echoed back by Meta in the `GET` handshake.
    pub verify_token: Secret,
    /// Graph API root including the version, without a trailing slash.
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_owned()
}

pub use chatgate_adapter::Secret;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_and_unknown_keys_are_refused() {
        let settings: Settings = serde_json::from_value(serde_json::json!({
            "page_id": "1", "page_access_token": "tok-123", "app_secret": "sec-456", "verify_token": "vt-789"
        }))
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("tok-123") && !debug.contains("sec-456") && !debug.contains("vt-789"), "{debug}");
        assert_eq!(settings.api_base_url, DEFAULT_API_BASE_URL);
        let unknown = serde_json::from_value::<Settings>(serde_json::json!({
            "page_id": "1", "page_access_token": "t", "app_secret": "s", "verify_token": "v", "app_secre": "x"
        }));
        assert!(unknown.is_err());
    }
}
