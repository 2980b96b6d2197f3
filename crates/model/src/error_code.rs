//! [`ErrorCode`]: every error code the core can see, in one enum.
//!
//! The core meets these codes in three places: the `error.code` of a refused API request, the
//! `error.code` of a failed outbound message (`GET /v1/messages/{id}` and status events), and the
//! `error.code` of a provider's failure receipt. The string forms are stable; the README lists them all
//! (a test checks it).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $code:literal,)*) => {
        /// A stable, snake_case error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The string form, as the core sees it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    // Outbound validation: `POST /v1/messages` answers 422 with these.
    /// The text is longer than the account's cap (2000 characters by default).
    TextTooLong => "text_too_long",
    /// An attachment is larger than the channel takes (also a delivery failure when the size was only known on download).
    AttachmentTooLarge => "attachment_too_large",
    /// The channel does not take this kind of attachment.
    AttachmentKindUnsupported => "attachment_kind_unsupported",
    /// No text, attachment or template.
    EmptyMessage => "empty_message",
    /// The customer is blocked (also a delivery failure when blocked after queueing).
    CustomerBlocked => "customer_blocked",
    /// No account of this channel is configured (or the name is no channel).
    UnknownChannel => "unknown_channel",
    /// No such account of this channel (also a delivery failure when the account was removed).
    UnknownAccount => "unknown_account",
    /// The messaging window is closed (WhatsApp 24 h rule); also a provider failure.
    WindowClosed => "window_closed",
    /// The channel does not take templates.
    TemplateUnsupported => "template_unsupported",
    /// The idempotency key was used for a different message.
    IdempotencyConflict => "idempotency_conflict",
    /// The request is well-formed JSON but not a valid request.
    InvalidRequest => "invalid_request",
    /// The body is not JSON (400).
    InvalidJson => "invalid_json",
    // Access and availability of the core API.
    /// No valid bearer token (401).
    Unauthorized => "unauthorized",
    /// No such message, media reference or route (404).
    NotFound => "not_found",
    /// The store could not take or read the request; retry (503).
    StoreUnavailable => "store_unavailable",
    /// Webhook: more webhooks are waiting for the store than the gateway admits at once; nothing
    /// was stored, retry after `Retry-After` (503).
    Overloaded => "overloaded",
    // `GET /v1/media/{ref}`.
    /// The file is larger than the gateway passes through (413).
    MediaTooLarge => "media_too_large",
    /// The provider no longer has the file, or refuses it (404).
    MediaUnavailable => "media_unavailable",
    /// The provider could not be reached; retry (502).
    ProviderUnavailable => "provider_unavailable",
    // Delivery failures and provider receipts.
    /// The customer blocked the bot, unsubscribed or never allowed messages.
    CustomerUnsubscribed => "customer_unsubscribed",
    /// The provider refused the request (bad chat id, bad content, ...).
    ProviderRejected => "provider_rejected",
    /// The provider refused our credentials (token revoked, ...).
    ProviderUnauthorized => "provider_unauthorized",
    /// The provider reported a failure without saying why (Viber's `failed` callback).
    ProviderFailed => "provider_failed",
    /// Transient errors went on past the retry horizon (24 h).
    RetriesExhausted => "retries_exhausted",
    /// An attachment URL points at an address downloads may not reach (internal, or not http/https).
    AttachmentUrlForbidden => "attachment_url_forbidden",
    /// An attachment could not be downloaded.
    AttachmentUnavailable => "attachment_unavailable",
    // The web channel's visitor API (`/web/{account}/...`) and its delivery.
    /// The request's `Origin` is not in the widget's `allowed_origins` (403).
    OriginNotAllowed => "origin_not_allowed",
    /// The visitor token is missing, forged, or of another widget (401).
    VisitorTokenInvalid => "visitor_token_invalid",
    /// The widget requires a verified user id (`identity = "required"`) and none was given (403).
    IdentityRequired => "identity_required",
    /// The `user_hash` does not match the user id (403).
    IdentityInvalid => "identity_invalid",
    /// Too many requests from this address, visitor or widget; see `Retry-After` (429).
    RateLimited => "rate_limited",
    /// An upload is larger than its kind's limit (413).
    UploadTooLarge => "upload_too_large",
    /// An upload's content is of a kind the widget does not take (415).
    UploadKindUnsupported => "upload_kind_unsupported",
    /// Delivery failure: the web visitor had no open stream within the grace period (`gone_after_seconds`).
    VisitorGone => "visitor_gone",
    /// The request uses a field its channel does not support.
    FieldUnsupported => "field_unsupported",
    // Rich replies.
    /// More buttons than the product's cap of 20 (422).
    TooManyButtons => "too_many_buttons",
    /// A button title is longer than the channel takes (422).
    ButtonTitleTooLong => "button_title_too_long",
    /// A button payload is longer than the channel takes (422).
    ButtonPayloadTooLong => "button_payload_too_long",
    /// The channel has no such marker or action (typing, read): nothing was sent (422).
    UnsupportedByChannel => "unsupported_by_channel",
}

/// The string is none of the [`ErrorCode`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code `{0}`")]
pub struct ParseErrorCodeError(pub String);

impl std::str::FromStr for ErrorCode {
    type Err = ParseErrorCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s).ok_or_else(|| ParseErrorCodeError(s.to_owned()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../../../README.md");
        let missing: Vec<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).filter(|c| !readme.contains(&format!("| `{c}` |"))).collect();
        assert!(missing.is_empty(), "README.md's error code table lacks {missing:?}");
    }

    #[test]
    fn string_forms_are_the_serde_forms_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
            assert_eq!(serde_json::from_value::<ErrorCode>(code.as_str().into()).unwrap(), *code);
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
    }
}
