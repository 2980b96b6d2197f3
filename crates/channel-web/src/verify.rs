//! Visitor tokens signed by the gateway, and the site's identity hashes, both checked in constant time.
//!
//! A token is `v1.{issued_at}.{visitor_id}.{user}.{mac}`: `user` is the verified user id in hex
//! (`-` for an anonymous visitor), `mac` the hex HMAC-SHA256, keyed with the account's
//! `token_secret`, of `v1.{account}.{visitor_id}.{issued_at}.{user}` — so a token of one widget
//! is worthless on another, and nothing in it can be changed without the secret.
//!
//! Identity: the site computes `user_hash = hex(HMAC-SHA256(identity_secret, user_id))` on its
//! server and passes both to the widget. A verified visitor's id is derived from the user id (an
//! HMAC, so it does not reveal it): the same person on another device continues the same conversation.

use chatgate_adapter::verify::{constant_time_eq, hmac_sha256, hmac_sha256_hex_matches};
use chatgate_adapter::visitor::{Visitor, VisitorError};
use rand::Rng;

use crate::config::{Config, Identity};

/// The version prefix of every token.
const VERSION: &str = "v1";

/// Longest user id the site may pass.
pub const USER_ID_MAX_BYTES: usize = 256;

/// Issues a token for `visitor`, now.
pub(crate) fn issue(config: &Config, account: &str, visitor: &Visitor) -> String {
    let issued_at = chrono::Utc::now().timestamp();
    let user = visitor.user_id.as_deref().map_or_else(|| "-".to_owned(), |u| hex::encode(u.as_bytes()));
    let mac = mac(config, account, &visitor.id, issued_at, &user);
    format!("{VERSION}.{issued_at}.{}.{user}.{mac}", visitor.id)
}

fn mac(config: &Config, account: &str, visitor: &str, issued_at: i64, user: &str) -> String {
    let payload = format!("{VERSION}.{account}.{visitor}.{issued_at}.{user}");
    hex::encode(hmac_sha256(config.token_secret.expose().as_bytes(), payload.as_bytes()))
}

/// The visitor of a token, if this account signed it.
pub(crate) fn authenticate(config: &Config, account: &str, token: &str) -> Result<Visitor, VisitorError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [version, issued_at, visitor, user, given] = parts.as_slice() else {
        return Err(VisitorError::TokenInvalid);
    };
    let issued_at: i64 = issued_at.parse().map_err(|_| VisitorError::TokenInvalid)?;
    if *version != VERSION || !is_visitor_id(visitor) {
        return Err(VisitorError::TokenInvalid);
    }
    let expected = mac(config, account, visitor, issued_at, user);
    if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return Err(VisitorError::TokenInvalid);
    }
    let user_id = match *user {
        "-" => None,
        hex_user => {
            let bytes = hex::decode(hex_user).map_err(|_| VisitorError::TokenInvalid)?;
            Some(String::from_utf8(bytes).map_err(|_| VisitorError::TokenInvalid)?)
        }
    };
    // A token issued before the widget required identity does not carry one: refuse it now.
    if config.identity == Identity::Required && user_id.is_none() {
        return Err(VisitorError::IdentityRequired);
    }
    Ok(Visitor { id: (*visitor).to_owned(), user_id })
}

/// A visitor id is `v_` (anonymous) or `u_` (verified) and 24 to 32 lowercase letters or digits.
pub(crate) fn is_visitor_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("v_").or_else(|| id.strip_prefix("u_")) else { return false };
    (24..=32).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A new anonymous visitor id.
pub(crate) fn new_visitor_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let id: String = (0..24).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect();
    format!("v_{id}")
}

/// The visitor id of a verified user of this account: stable, and revealing nothing of the user id.
pub(crate) fn verified_visitor_id(config: &Config, account: &str, user_id: &str) -> String {
    let mac = hmac_sha256(config.token_secret.expose().as_bytes(), format!("user.{account}.{user_id}").as_bytes());
    format!("u_{}", &hex::encode(mac)[..32])
}

/// Checks the site's identity claim against the account's `identity` setting; the verified user
/// id, or `None` for an anonymous visitor.
pub(crate) fn check_identity(
    config: &Config,
    user_id: Option<&str>,
    user_hash: Option<&str>,
) -> Result<Option<String>, VisitorError> {
    let user_id = user_id.filter(|u| !u.is_empty());
    match (config.identity, user_id, &config.identity_secret) {
        (Identity::Off, _, _) => Ok(None),
        (Identity::Required, None, _) => Err(VisitorError::IdentityRequired),
        (Identity::Optional, None, _) => Ok(None),
        (_, Some(user), Some(secret)) => {
            if user.len() > USER_ID_MAX_BYTES {
                return Err(VisitorError::Invalid(format!("user_id is longer than {USER_ID_MAX_BYTES} bytes")));
            }
            let Some(hash) = user_hash else {
                return Err(if config.identity == Identity::Required {
                    VisitorError::IdentityRequired
                } else {
                    VisitorError::IdentityInvalid
                });
            };
            if hmac_sha256_hex_matches(secret.expose().as_bytes(), user.as_bytes(), hash) {
                Ok(Some(user.to_owned()))
            } else {
                Err(VisitorError::IdentityInvalid)
            }
        }
        // `Config::from_settings` refuses identity without a secret; never verify against none.
        (_, Some(_), None) => Err(VisitorError::IdentityInvalid),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(identity: &str) -> Config {
        Config::from_settings(json!({
            "public_url": "http://127.0.0.1:8080",
            "allowed_origins": ["http://127.0.0.1:8080"],
            "token_secret": "token-secret-for-tests-0001",
            "identity": identity,
            "identity_secret": "identity-secret",
        }))
        .unwrap()
    }

    fn anonymous() -> Visitor {
        Visitor { id: new_visitor_id(), user_id: None }
    }

    #[test]
    fn a_token_authenticates_its_visitor_on_its_account_only() {
        let c = config("optional");
        let v = anonymous();
        let token = issue(&c, "web", &v);
        assert_eq!(authenticate(&c, "web", &token).unwrap(), v);
        assert_eq!(authenticate(&c, "other", &token), Err(VisitorError::TokenInvalid));
        let verified = Visitor { id: verified_visitor_id(&c, "web", "user.42"), user_id: Some("user.42".into()) };
        assert_eq!(authenticate(&c, "web", &issue(&c, "web", &verified)).unwrap(), verified);
    }

    #[test]
    fn a_changed_or_foreign_token_is_refused() {
        let c = config("optional");
        let v = anonymous();
        let token = issue(&c, "web", &v);
        let other = anonymous();
        // Another visitor id with the same signature.
        let swapped = token.replace(&v.id, &other.id);
        assert_eq!(authenticate(&c, "web", &swapped), Err(VisitorError::TokenInvalid));
        // Claiming a user id.
        let claimed = token.replace(".-.", &format!(".{}.", hex::encode("admin")));
        assert_eq!(authenticate(&c, "web", &claimed), Err(VisitorError::TokenInvalid));
        // Signed with another secret.
        let mut foreign = config("optional");
        foreign.token_secret = chatgate_adapter::Secret::new("another-secret-0000000");
        assert_eq!(authenticate(&c, "web", &issue(&foreign, "web", &v)), Err(VisitorError::TokenInvalid));
        for junk in ["", "v1", "v1.1.2.3.4", "v2.1.v_aaaaaaaaaaaaaaaaaaaaaaaa.-.00", &token[..token.len() - 1]] {
            assert_eq!(authenticate(&c, "web", junk), Err(VisitorError::TokenInvalid), "{junk}");
        }
    }

    #[test]
    fn identity_off_optional_required() {
        let hash = hex::encode(hmac_sha256(b"identity-secret", b"user-7"));
        let off = config("off");
        assert_eq!(check_identity(&off, Some("user-7"), Some("00")), Ok(None));
        let optional = config("optional");
        assert_eq!(check_identity(&optional, None, None), Ok(None));
        assert_eq!(check_identity(&optional, Some("user-7"), Some(&hash)), Ok(Some("user-7".into())));
        assert_eq!(check_identity(&optional, Some("user-7"), Some(&hash.to_uppercase())), Ok(Some("user-7".into())));
        assert_eq!(check_identity(&optional, Some("user-8"), Some(&hash)), Err(VisitorError::IdentityInvalid));
        assert_eq!(check_identity(&optional, Some("user-7"), None), Err(VisitorError::IdentityInvalid));
        let required = config("required");
        assert_eq!(check_identity(&required, None, None), Err(VisitorError::IdentityRequired));
        assert_eq!(check_identity(&required, Some("user-7"), None), Err(VisitorError::IdentityRequired));
        assert_eq!(check_identity(&required, Some("user-7"), Some("zz")), Err(VisitorError::IdentityInvalid));
        assert_eq!(check_identity(&required, Some("user-7"), Some(&hash)), Ok(Some("user-7".into())));
        // An anonymous token stops working once identity is required.
        let token = issue(&required, "web", &anonymous());
        assert_eq!(authenticate(&required, "web", &token), Err(VisitorError::IdentityRequired));
    }

    #[test]
    fn visitor_ids_have_one_shape() {
        let c = config("optional");
        assert!(is_visitor_id(&new_visitor_id()));
        assert!(is_visitor_id(&verified_visitor_id(&c, "web", "u")));
        assert_eq!(verified_visitor_id(&c, "web", "u"), verified_visitor_id(&c, "web", "u"));
        assert_ne!(verified_visitor_id(&c, "web", "u"), verified_visitor_id(&c, "web2", "u"));
        for bad in ["", "v_", "x_aaaaaaaaaaaaaaaaaaaaaaaa", "v_AAAAAAAAAAAAAAAAAAAAAAAA", "v_aaaa.aaaaaaaaaaaaaaaaaaa"]
        {
            assert!(!is_visitor_id(bad), "{bad}");
        }
    }
}
