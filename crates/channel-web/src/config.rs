//! The settings of one web widget account (its table in `channels.toml`) and every check on them.
//!
//! ```toml
//! [accounts.web]
//! kind = "web"
//! name = "Support"
//! public_url = "http://127.0.0.1:8080"          # how visitors' browsers reach the gateway
//! allowed_origins = ["http://127.0.0.1:8080"]   # sites that may embed the widget; ["*"] only when written out
//! # token_secret = "${WEB_TOKEN_SECRET}"        # unset: generated once into the data dir
//! identity = "off"                               # "off" | "optional" | "required"
//! # identity_secret = "${WEB_IDENTITY_SECRET}"  # required unless identity = "off"
//! gone_after_seconds = 600
//! knowledge_base_url = "https://example.com/help"
//! [accounts.web.colors]
//! bot = "#5a78c8"; operator = "rgba(60,160,100,1)"; user = "hsla(0,0%,92%,1)"; button = "#1f6feb"; button_text = "#fff"
//! [accounts.web.avatars]
//! bot = "avatars/bot.png"                        # .png or .jpeg, at most 5 MB
//! [accounts.web.feedback]
//! on_close = true; after_seconds = 0; scale = 5; prompt = "How did we do?"
//! [[accounts.web.messenger_links]]
//! kind = "telegram"; url = "https://t.me/acme_bot"; label = "Telegram"
//! [accounts.web.rate_limits]
//! per_ip_per_minute = 120; per_visitor_per_minute = 60; per_widget_per_second = 200
//! ```

use std::time::Duration;

use bytes::Bytes;
use chatgate_adapter::{BuildError, Secret, settings};
use serde::Deserialize;

use crate::CHANNEL;

/// Largest avatar image (the product's documented 5 MB).
pub const AVATAR_MAX_BYTES: u64 = 5 * 1024 * 1024;

/// Default wait for a visitor before an operator's message fails with `visitor_gone`.
pub const DEFAULT_GONE_AFTER_SECONDS: u64 = 600;

/// The shortest secret accepted for signing visitor tokens.
pub const TOKEN_SECRET_MIN_BYTES: usize = 16;

/// One web widget account.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub public_url: String,
    pub allowed_origins: AllowedOrigins,
    pub token_secret: Secret,
    pub identity: Identity,
    pub identity_secret: Option<Secret>,
    pub gone_after: Duration,
    pub knowledge_base_url: Option<String>,
    pub colors: Colors,
    pub avatars: Avatars,
    pub feedback: FeedbackSettings,
    pub messenger_links: Vec<MessengerLink>,
    pub rate_limits: RateSettings,
}

/// Which sites may use the widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `["*"]`, written out: any site (a warning at start).
    Any,
    /// Exact origins (`scheme://host[:port]`, no path).
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o == origin),
        }
    }
}

/// Identity verification of the site's users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// User ids are ignored; every visitor is anonymous.
    Off,
    /// A user id with a valid hash is verified; without one the visitor is anonymous; a wrong hash is refused.
    Optional,
    /// Only visitors with a valid user hash get a session.
    Required,
}

impl Identity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Identity::Off => "off",
            Identity::Optional => "optional",
            Identity::Required => "required",
        }
    }
}

/// Colours of the widget (HEX, RGBA or HSLA).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Colors {
    #[serde(default = "color_bot")]
    pub bot: String,
    #[serde(default = "color_operator")]
    pub operator: String,
    #[serde(default = "color_user")]
    pub user: String,
    #[serde(default = "color_button")]
    pub button: String,
    #[serde(default = "color_button_text")]
    pub button_text: String,
}

fn color_bot() -> String {
    "#e8eefc".to_owned()
}
fn color_operator() -> String {
    "#e6f4ea".to_owned()
}
fn color_user() -> String {
    "#1f6feb".to_owned()
}
fn color_button() -> String {
    "#1f6feb".to_owned()
}
fn color_button_text() -> String {
    "#ffffff".to_owned()
}

impl Default for Colors {
    fn default() -> Self {
        Colors {
            bot: color_bot(),
            operator: color_operator(),
            user: color_user(),
            button: color_button(),
            button_text: color_button_text(),
        }
    }
}

/// Configured avatar images (`None`: the built-in default).
#[derive(Debug, Clone, Default)]
pub struct Avatars {
    pub bot: Option<Image>,
    pub operator: Option<Image>,
    pub user: Option<Image>,
}

/// An image read at start.
#[derive(Debug, Clone)]
pub struct Image {
    pub bytes: Bytes,
    pub mime: &'static str,
}

/// When the widget asks for a satisfaction score by itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackSettings {
    /// Ask when the visitor closes the chat.
    #[serde(default)]
    pub on_close: bool,
    /// Ask this many seconds after the session started (0: never).
    #[serde(default)]
    pub after_seconds: u64,
    /// 2, 5 or 10.
    #[serde(default = "default_scale")]
    pub scale: u8,
    #[serde(default = "default_prompt")]
    pub prompt: String,
}

fn default_scale() -> u8 {
    5
}
fn default_prompt() -> String {
    "How would you rate this conversation?".to_owned()
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        FeedbackSettings { on_close: false, after_seconds: 0, scale: default_scale(), prompt: default_prompt() }
    }
}

/// The messengers a link button may lead to.
pub const MESSENGER_KINDS: &[&str] =
    &["telegram", "whatsapp", "viber", "messenger", "instagram", "vk", "line", "skype", "slack", "wechat", "snapchat"];

/// A button next to the widget's launcher that continues the chat in a messenger.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessengerLink {
    /// One of [`MESSENGER_KINDS`].
    pub kind: String,
    /// The messenger's link (`https://t.me/acme_bot`, `viber://pa?chatURI=acme`, `https://m.me/acme`,
    /// `https://wa.me/15551234567`, ...). Telegram, Viber, Messenger and WhatsApp links get the
    /// visitor's id added by the widget (see `links.rs`).
    pub url: String,
    #[serde(default)]
    pub label: Option<String>,
}

/// Visitor rate limits (governor, one key each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    #[serde(default = "per_ip")]
    pub per_ip_per_minute: u32,
    #[serde(default = "per_visitor")]
    pub per_visitor_per_minute: u32,
    #[serde(default = "per_widget")]
    pub per_widget_per_second: u32,
}

fn per_ip() -> u32 {
    300
}
fn per_visitor() -> u32 {
    120
}
fn per_widget() -> u32 {
    500
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            per_ip_per_minute: per_ip(),
            per_visitor_per_minute: per_visitor(),
            per_widget_per_second: per_widget(),
        }
    }
}

/// The account table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "default_name")]
    name: String,
    public_url: String,
    allowed_origins: Option<Vec<String>>,
    token_secret: Option<Secret>,
    #[serde(default = "default_identity")]
    identity: Identity,
    identity_secret: Option<Secret>,
    #[serde(default = "default_gone_after")]
    gone_after_seconds: u64,
    knowledge_base_url: Option<String>,
    #[serde(default)]
    colors: Colors,
    #[serde(default)]
    avatars: RawAvatars,
    #[serde(default)]
    feedback: FeedbackSettings,
    #[serde(default)]
    messenger_links: Vec<MessengerLink>,
    #[serde(default)]
    rate_limits: RateSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAvatars {
    bot: Option<String>,
    operator: Option<String>,
    user: Option<String>,
}

fn default_name() -> String {
    "Chat".to_owned()
}
fn default_identity() -> Identity {
    Identity::Off
}
fn default_gone_after() -> u64 {
    DEFAULT_GONE_AFTER_SECONDS
}

impl Config {
    /// Reads and checks an account table. Avatar files are read here (paths relative to the
    /// working directory).
    pub fn from_settings(settings: serde_json::Value) -> Result<Config, BuildError> {
        let raw: Raw = serde_json::from_value(settings)?;
        let err = |m: String| BuildError::new(format!("{CHANNEL}: {m}"));
        let public_url = settings::api_base_url(CHANNEL, "public_url", &raw.public_url)?;
        let allowed_origins = match raw.allowed_origins {
            None => return Err(err("`allowed_origins` is required (the sites that may embed the widget)".into())),
            Some(list) if list.is_empty() => {
                return Err(err("`allowed_origins` must name at least one origin (or be [\"*\"])".into()));
            }
            Some(list) if list.iter().any(|o| o == "*") => {
                if list.len() > 1 {
                    return Err(err("`allowed_origins` is either [\"*\"] or a list of origins, not both".into()));
                }
                AllowedOrigins::Any
            }
            Some(list) => {
                for (i, origin) in list.iter().enumerate() {
                    check_origin(origin).map_err(|m| err(format!("`allowed_origins[{i}]` {m}")))?;
                }
                AllowedOrigins::List(list)
            }
        };
        let token_secret = raw.token_secret.ok_or_else(|| {
            err("`token_secret` is required (`chatgate serve` generates one into the data dir when it is unset)".into())
        })?;
        if token_secret.expose().len() < TOKEN_SECRET_MIN_BYTES {
            return Err(err(format!("`token_secret` must be at least {TOKEN_SECRET_MIN_BYTES} bytes")));
        }
        if raw.identity != Identity::Off {
            match &raw.identity_secret {
                Some(s) => settings::non_empty(CHANNEL, "identity_secret", s)?,
                None => {
                    return Err(err(format!(
                        "`identity_secret` is required when identity = \"{}\"",
                        raw.identity.as_str()
                    )));
                }
            }
        }
        if raw.gone_after_seconds == 0 {
            return Err(err("`gone_after_seconds` must be at least 1".into()));
        }
        if let Some(kb) = &raw.knowledge_base_url {
            check_http_url(kb).map_err(|m| err(format!("`knowledge_base_url` {m}")))?;
        }
        for (key, value) in [
            ("bot", &raw.colors.bot),
            ("operator", &raw.colors.operator),
            ("user", &raw.colors.user),
            ("button", &raw.colors.button),
            ("button_text", &raw.colors.button_text),
        ] {
            if !is_color(value) {
                return Err(err(format!("`colors.{key}` = {value:?} is not a HEX, RGBA or HSLA colour")));
            }
        }
        if ![2, 5, 10].contains(&raw.feedback.scale) {
            return Err(err(format!("`feedback.scale` must be 2, 5 or 10, not {}", raw.feedback.scale)));
        }
        for (i, link) in raw.messenger_links.iter().enumerate() {
            if !MESSENGER_KINDS.contains(&link.kind.as_str()) {
                return Err(err(format!(
                    "`messenger_links[{i}].kind` {:?} is none of {}",
                    link.kind,
                    MESSENGER_KINDS.join(", ")
                )));
            }
            let scheme_ok = url::Url::parse(&link.url).is_ok_and(|u| matches!(u.scheme(), "http" | "https" | "viber"));
            if !scheme_ok {
                return Err(err(format!("`messenger_links[{i}].url` must be an http(s) or viber:// URL")));
            }
        }
        let r = raw.rate_limits;
        if r.per_ip_per_minute == 0 || r.per_visitor_per_minute == 0 || r.per_widget_per_second == 0 {
            return Err(err("`rate_limits` values must be at least 1".into()));
        }
        let avatars = Avatars {
            bot: read_avatar("bot", raw.avatars.bot.as_deref()).map_err(err)?,
            operator: read_avatar("operator", raw.avatars.operator.as_deref()).map_err(err)?,
            user: read_avatar("user", raw.avatars.user.as_deref()).map_err(err)?,
        };
        Ok(Config {
            name: raw.name,
            public_url,
            allowed_origins,
            token_secret,
            identity: raw.identity,
            identity_secret: raw.identity_secret,
            gone_after: Duration::from_secs(raw.gone_after_seconds),
            knowledge_base_url: raw.knowledge_base_url,
            colors: raw.colors,
            avatars,
            feedback: raw.feedback,
            messenger_links: raw.messenger_links,
            rate_limits: r,
        })
    }
}

/// An origin as browsers send it: `http(s)://host[:port]`, nothing after.
fn check_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|_| format!("{origin:?} is not an origin"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{origin:?} must be an http(s) origin"));
    }
    if url.origin().ascii_serialization() != origin {
        return Err(format!("{origin:?} must be exactly scheme://host[:port] (as browsers send `Origin`)"));
    }
    Ok(())
}

fn check_http_url(value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("{value:?} must be an http(s) URL")),
    }
}

/// HEX (`#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa`), `rgb()/rgba()` or `hsl()/hsla()` with plain numbers.
pub fn is_color(value: &str) -> bool {
    let v = value.trim();
    if let Some(hex) = v.strip_prefix('#') {
        return matches!(hex.len(), 3 | 4 | 6 | 8) && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    let Some((func, rest)) = v.split_once('(') else { return false };
    let Some(args) = rest.strip_suffix(')') else { return false };
    if !matches!(func.trim(), "rgb" | "rgba" | "hsl" | "hsla") {
        return false;
    }
    let parts: Vec<&str> = args.split([',', ' ', '/']).map(str::trim).filter(|p| !p.is_empty()).collect();
    matches!(parts.len(), 3 | 4)
        && parts.iter().all(|p| {
            let n = p.trim_end_matches(['%']).trim_end_matches("deg");
            !n.is_empty() && n.parse::<f64>().is_ok_and(f64::is_finite)
        })
}

/// Reads an avatar file: PNG or JPEG by content, at most [`AVATAR_MAX_BYTES`].
fn read_avatar(role: &str, path: Option<&str>) -> Result<Option<Image>, String> {
    let Some(path) = path else { return Ok(None) };
    let lower = path.to_ascii_lowercase();
    if !(lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg")) {
        return Err(format!("`avatars.{role}` must be a .png or .jpeg file"));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("`avatars.{role}` {path}: {e}"))?;
    if meta.len() > AVATAR_MAX_BYTES {
        return Err(format!("`avatars.{role}` is {} bytes, more than 5 MB", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("`avatars.{role}` {path}: {e}"))?;
    let mime = match crate::parse::sniff(&bytes) {
        Some(("image/png", _)) => "image/png",
        Some(("image/jpeg", _)) => "image/jpeg",
        _ => return Err(format!("`avatars.{role}` {path} is not a PNG or JPEG image")),
    };
    Ok(Some(Image { bytes: Bytes::from(bytes), mime }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> serde_json::Value {
        json!({
            "public_url": "http://127.0.0.1:8080",
            "allowed_origins": ["http://127.0.0.1:8080"],
            "token_secret": "0123456789abcdef0123",
        })
    }

    fn error(change: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = base();
        change(&mut v);
        Config::from_settings(v).unwrap_err().to_string()
    }

    #[test]
    fn the_minimal_account_builds_with_defaults() {
        let c = Config::from_settings(base()).unwrap();
        assert_eq!(c.identity, Identity::Off);
        assert_eq!(c.gone_after, Duration::from_secs(600));
        assert!(c.allowed_origins.allows("http://127.0.0.1:8080"));
        assert!(!c.allowed_origins.allows("http://127.0.0.1:8081"));
        assert_eq!(format!("{:?}", c.token_secret), "[redacted]");
    }

    #[test]
    fn origins_are_required_exact_and_star_only_alone() {
        assert!(
            error(|v| v.as_object_mut().unwrap().remove("allowed_origins").map(drop).unwrap()).contains("required")
        );
        assert!(error(|v| v["allowed_origins"] = json!([])).contains("at least one"));
        assert!(error(|v| v["allowed_origins"] = json!(["*", "http://a.example"])).contains("not both"));
        assert!(error(|v| v["allowed_origins"] = json!(["http://a.example/"])).contains("allowed_origins[0]"));
        assert!(error(|v| v["allowed_origins"] = json!(["a.example"])).contains("allowed_origins[0]"));
        let mut v = base();
        v["allowed_origins"] = json!(["*"]);
        assert_eq!(Config::from_settings(v).unwrap().allowed_origins, AllowedOrigins::Any);
    }

    #[test]
    fn colours_are_hex_rgba_or_hsla_and_errors_name_the_key() {
        for ok in ["#fff", "#1f6feb", "#1f6feb80", "rgba(31, 111, 235, 0.5)", "rgb(1 2 3)", "hsla(210, 50%, 40%, 1)"] {
            assert!(is_color(ok), "{ok}");
        }
        for bad in ["red", "#ggg", "url(x)", "rgba(1,2)", "expression(alert(1))", "#12345", "rgb(1,2,3;)"] {
            assert!(!is_color(bad), "{bad}");
        }
        assert!(error(|v| v["colors"] = json!({"button": "red"})).contains("`colors.button`"));
    }

    #[test]
    fn identity_needs_its_secret_and_feedback_a_known_scale() {
        assert!(error(|v| v["identity"] = json!("required")).contains("identity_secret"));
        assert!(error(|v| v["identity"] = json!("sometimes")).contains("unknown variant `sometimes`"));
        assert!(error(|v| v["feedback"] = json!({"scale": 3})).contains("2, 5 or 10"));
        assert!(error(|v| v["token_secret"] = json!("short")).contains("at least 16"));
        assert!(error(|v| v["messenger_links"] = json!([{"kind": "icq", "url": "https://icq.com"}])).contains("icq"));
        assert!(error(|v| v["extra"] = json!(1)).contains("extra"));
    }

    #[test]
    fn avatars_are_png_or_jpeg_by_content() {
        let dir = std::env::temp_dir().join(format!("chatgate-web-avatar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("fake.png");
        std::fs::write(&fake, b"<svg onload=alert(1)>").unwrap();
        assert!(error(|v| v["avatars"] = json!({"bot": fake.to_str().unwrap()})).contains("not a PNG or JPEG"));
        let real = dir.join("real.png");
        std::fs::write(&real, include_bytes!("../assets/avatar-bot.png")).unwrap();
        let mut v = base();
        v["avatars"] = json!({"bot": real.to_str().unwrap()});
        let c = Config::from_settings(v).unwrap();
        assert_eq!(c.avatars.bot.map(|i| i.mime), Some("image/png"));
        assert!(error(|v| v["avatars"] = json!({"bot": "x.gif"})).contains(".png or .jpeg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
