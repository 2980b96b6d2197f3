//! What Meta's channels (WhatsApp Cloud API, Messenger, Instagram) share: the `GET`
//! subscription handshake, the `X-Hub-Signature-256` body signature (checked, and set for
//! replays and tests), and the Graph API's errors ([`graph`]).
//!
//! See <https://developers.facebook.com/docs/graph-api/webhooks/getting-started>.

pub mod graph;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::verify::{constant_time_eq, hmac_sha256, hmac_sha256_hex_matches};
use crate::{Reply, WebhookError, WebhookRequest};

/// The signature header Meta sets on every webhook `POST`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Answers `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`: the challenge echoed
/// as plain text when the token matches (constant time), [`WebhookError::HandshakeRefused`] otherwise.
pub fn handshake(request: &WebhookRequest<'_>, verify_token: &str) -> Result<Reply, WebhookError> {
    let mut mode = None;
    let mut token = None;
    let mut challenge = None;
    for (key, value) in form_pairs(request.query.unwrap_or("")) {
        match key.as_str() {
            "hub.mode" => mode = Some(value),
            "hub.verify_token" => token = Some(value),
            "hub.challenge" => challenge = Some(value),
            _ => {}
        }
    }
    match (mode.as_deref(), token, challenge) {
        (Some("subscribe"), Some(token), Some(challenge))
            if constant_time_eq(token.as_bytes(), verify_token.as_bytes()) =>
        {
            Ok(Reply::Text(challenge))
        }
        _ => Err(WebhookError::HandshakeRefused),
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` = HMAC-SHA256(app secret, raw body), in constant time.
pub fn verify_signature(request: &WebhookRequest<'_>, app_secret: &str) -> Result<(), WebhookError> {
    let header = request.header(SIGNATURE_HEADER).ok_or(WebhookError::MissingSignature)?;
    let hex = header.strip_prefix("sha256=").ok_or(WebhookError::BadSignature)?;
    if hmac_sha256_hex_matches(app_secret.as_bytes(), request.body, hex) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// The `X-Hub-Signature-256` value Meta sends with `body`: `sha256=<lowercase hex HMAC-SHA256>`.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(app_secret.as_bytes(), body)))
}

/// Sets the signature header for `body` as Meta would, replacing any earlier one.
pub fn sign(headers: &mut HeaderMap, body: &[u8], app_secret: &str) {
    let value = HeaderValue::from_str(&signature(app_secret, body)).expect("hex is a valid header value");
    headers.insert(HeaderName::from_static(SIGNATURE_HEADER), value);
}

/// Splits an `application/x-www-form-urlencoded` query into decoded pairs.
fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Calls a Page's or WhatsApp Business Account's `subscribed_apps` edge (`chatgate webhooks`)
/// with `request` (method, URL, token and body set) and reads the answer: the JSON on success,
/// Graph 190 as [`WebhookAdminError::Unauthorized`], anything else by its status. `context` names
/// the call in errors; every text is stripped of `secrets`.
pub async fn subscribed_apps(
    request: reqwest::RequestBuilder,
    context: &str,
    secrets: &[&str],
) -> Result<serde_json::Value, crate::WebhookAdminError> {
    use crate::webhooks::{answer_json, redact, status_error};
    let (status, answer) = answer_json(request.send().await, context, secrets).await?;
    if (200..300).contains(&status) && answer.get("error").is_none() {
        return Ok(answer);
    }
    let error = answer.get("error");
    let message = error.and_then(|e| e.get("message")).and_then(serde_json::Value::as_str).unwrap_or("no message");
    let code = error.and_then(|e| e.get("code")).and_then(serde_json::Value::as_i64).unwrap_or(0);
    // Graph 190: the access token expired or is invalid.
    if code == 190 {
        return Err(crate::WebhookAdminError::Unauthorized(redact(&format!("{context}: {message}"), secrets)));
    }
    Err(status_error(status, &format!("{context}: Graph error {code}: {message}"), secrets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};

    fn get(query: &str) -> Result<Reply, WebhookError> {
        let headers = HeaderMap::new();
        handshake(&WebhookRequest { method: &Method::GET, headers: &headers, query: Some(query), body: b"" }, "tok en")
    }

    #[test]
    fn handshake_echoes_challenge_only_for_the_right_token() {
        assert_eq!(
            get("hub.mode=subscribe&hub.verify_token=tok+en&hub.challenge=1158201444"),
            Ok(Reply::Text("1158201444".into()))
        );
        assert_eq!(
            get("hub.mode=subscribe&hub.verify_token=tok%20en&hub.challenge=x%2Fy"),
            Ok(Reply::Text("x/y".into()))
        );
        assert_eq!(
            get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"),
            Err(WebhookError::HandshakeRefused)
        );
        assert_eq!(
            get("hub.mode=unsubscribe&hub.verify_token=tok+en&hub.challenge=1"),
            Err(WebhookError::HandshakeRefused)
        );
        assert_eq!(get("hub.mode=subscribe&hub.verify_token=tok+en"), Err(WebhookError::HandshakeRefused));
        assert_eq!(get("%"), Err(WebhookError::HandshakeRefused));
    }

    #[test]
    fn signature_is_checked_on_raw_bytes() {
        let body = br#"{"object":"page"}"#;
        let sig = hex::encode(crate::verify::hmac_sha256(b"s3cret", body));
        let check = |value: Option<&str>, body: &[u8]| {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(v).unwrap());
            }
            verify_signature(&WebhookRequest { method: &Method::POST, headers: &headers, query: None, body }, "s3cret")
        };
        assert_eq!(check(Some(&format!("sha256={sig}")), body), Ok(()));
        assert_eq!(check(None, body), Err(WebhookError::MissingSignature));
        assert_eq!(check(Some(&sig), body), Err(WebhookError::BadSignature));
        assert_eq!(check(Some(&format!("sha1={sig}")), body), Err(WebhookError::BadSignature));
        assert_eq!(check(Some(&format!("sha256={sig}")), br#"{"object": "page"}"#), Err(WebhookError::BadSignature));
        let mut headers = HeaderMap::new();
        sign(&mut headers, body, "s3cret");
        let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body };
        assert_eq!(verify_signature(&request, "s3cret"), Ok(()));
        assert_eq!(headers[SIGNATURE_HEADER], format!("sha256={sig}"));
    }
}
