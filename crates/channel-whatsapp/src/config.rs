//! Account settings (`channels.toml`) and the limit profiles of a WhatsApp account.
//!
//! Limits: WhatsApp Cloud API "Supported media types"
//! (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types>),
//! restated by AWS End User Messaging Social
//! (<https://docs.aws.amazon.com/social-messaging/latest/userguide/supported-media-types.html>).

use chatgate_adapter::BuildError;
use chatgate_model::Limits;
use serde::Deserialize;

/// The Graph API the Cloud API lives on, with the version we were written against
/// (v26.0, released 2026-07-29; see <https://developers.facebook.com/docs/graph-api/changelog/versions/>).
pub const DEFAULT_API_BASE_URL: &str = "https://graph.facebook.com/v26.0";

/// One kibibyte; WhatsApp's sticker limits are given in KB and read as KiB, like MB as MiB.
const KB: u64 = 1024;

/// Animated sticker limit (webp, 512×512): 500 KB. Static stickers may be at most 100 KB, but we
/// cannot tell an animated webp from a static one without decoding it, so the larger cap is used
/// and Meta refuses an oversized static sticker itself.
pub const STICKER_BYTES: u64 = 500 * KB;

/// Cloud API (WhatsApp Business) limits: image 5 MB, audio 16 MB, video 16 MB, document 100 MB.
pub const CLOUD_LIMITS: Limits =
    Limits { sticker_bytes: Some(STICKER_BYTES), ..Limits::mb(Some(5), Some(16), Some(16), Some(100)) };

/// Limits of a number connected through the WhatsApp app (QR pairing): 64 MB for image, audio and
/// video, 100 MB for files. Stickers are the same webp format in every WhatsApp client, so the
/// sticker cap stays [`STICKER_BYTES`].
pub const QR_LIMITS: Limits =
    Limits { sticker_bytes: Some(STICKER_BYTES), ..Limits::mb(Some(64), Some(64), Some(64), Some(100)) };

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
    pub const fn limits(self) -> Limits {
        match self {
            Profile::Cloud => CLOUD_LIMITS,
            Profile::Qr => QR_LIMITS,
        }
    }
}

pub use chatgate_adapter::Secret;

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
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_owned()
}

impl Config {
    /// Reads and checks the settings JSON.
    pub fn from_settings(settings: serde_json::Value) -> Result<Config, BuildError> {
        let mut config: Config = serde_json::from_value(settings)?;
        if config.phone_number_id.is_empty() || !config.phone_number_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(BuildError::new(
                "phone_number_id must be the non-empty numeric id of the business phone number",
            ));
        }
        for (name, secret) in [
            ("access_token", &config.access_token),
            ("app_secret", &config.app_secret),
            ("verify_token", &config.verify_token),
        ] {
            if secret.expose().is_empty() {
                return Err(BuildError::new(format!("{name} must not be empty")));
            }
        }
        let base = config.api_base_url.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(BuildError::new("api_base_url must be an http(s) URL"));
        }
        config.api_base_url = base.to_owned();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_model::limits::MB;
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
    fn profiles_carry_documented_limits() {
        assert_eq!(CLOUD_LIMITS.image_bytes, Some(5 * MB));
        assert_eq!(CLOUD_LIMITS.audio_bytes, Some(16 * MB));
        assert_eq!(CLOUD_LIMITS.video_bytes, Some(16 * MB));
        assert_eq!(CLOUD_LIMITS.file_bytes, Some(100 * MB));
        assert_eq!(CLOUD_LIMITS.sticker_bytes, Some(500 * 1024));
        assert_eq!(QR_LIMITS.image_bytes, Some(64 * MB));
        assert_eq!(QR_LIMITS.file_bytes, Some(100 * MB));
        let mut s = settings();
        s["profile"] = json!("qr");
        s["api_base_url"] = json!("http://127.0.0.1:1/v26.0/");
        let config = Config::from_settings(s).unwrap();
        assert_eq!(config.profile.limits(), QR_LIMITS);
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
    }
}
