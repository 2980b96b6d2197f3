//! Rich replies: buttons, feedback requests, typing and read markers, as data and pure functions.
//!
//! Each channel declares its [`ButtonRules`] (how many buttons it renders natively, how long a
//! title and a payload may be). [`check_buttons`] is the check `POST /v1/messages` runs before a
//! message is queued; [`ButtonRules::renders_natively`] is the one decision between the channel's
//! own buttons and the numbered text list ([`numbered_list`]) that every channel falls back to.
//!
//! A press on a feedback button carries its answer in the button's payload
//! ([`feedback_payload`]): the request's id (the outbound message id), the scale and the score, so
//! any channel's press maps back to a typed `feedback` event without state
//! ([`parse_feedback_payload`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ErrorCode, Event, EventKind, Feedback};

/// The product's cap on buttons in one message, rendered natively or as a numbered list.
pub const BUTTONS_MAX: usize = 20;

/// The prefix of a feedback button's payload: `fb:{request id}:{scale}:{score}`.
pub const FEEDBACK_PAYLOAD_PREFIX: &str = "fb:";

/// The longest feedback payload (`fb:` + a hyphenated UUID + `:10:10`), which every channel's
/// payload limit takes.
pub const FEEDBACK_PAYLOAD_MAX_BYTES: usize = 3 + 36 + 6;

/// One button of an outbound message: a reply button (`payload`) or a link (`url`), never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Button {
    /// What the customer sees on the button.
    pub title: String,
    /// What comes back as `postback.payload` when the customer presses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// A link the button opens instead (no postback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Telegram and VK: a short notice shown to the customer when they press it (≤ 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// The longest press notice (Telegram `answerCallbackQuery` `text`: 0-200 characters).
pub const NOTICE_MAX_CHARS: usize = 200;

/// What a channel's own buttons take. Limits are the providers' documented values; each channel
/// declares its rules as a `const` with the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ButtonRules {
    /// Most buttons the channel shows as its own buttons; more go as a numbered text list (up to
    /// [`BUTTONS_MAX`]).
    pub native_max: usize,
    /// Longest button title, in Unicode scalar values.
    pub title_max_chars: usize,
    /// Longest payload in bytes, as the provider counts it (for VK the JSON the payload goes in).
    pub payload_max_bytes: usize,
    /// Link buttons are native; without them a message with a link button goes as a numbered list.
    pub url_buttons: bool,
    /// Most buttons in one row of the channel's keyboard (the `buttons_per_row` hint is capped to it).
    pub per_row_max: usize,
    /// VK: the payload is counted as the JSON object it is sent in (`{"p":"…"}`, escapes included).
    pub payload_as_json: bool,
    /// Longest text (or feedback prompt) that goes with the channel's own buttons, in Unicode
    /// scalar values (WhatsApp's interactive body: 1024); the account's text cap applies too.
    pub text_max_chars: usize,
}

impl ButtonRules {
    /// Whether these buttons go as the channel's own buttons (else as a numbered text list).
    pub fn renders_natively(&self, buttons: &[Button]) -> bool {
        buttons.len() <= self.native_max && (self.url_buttons || buttons.iter().all(|b| b.url.is_none()))
    }
}

/// Why buttons cannot be sent on a channel. `code()` is the error code the core sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ButtonViolation {
    #[error("{actual} buttons; the most this message can carry is {limit}")]
    TooMany { limit: usize, actual: usize },
    #[error("buttons[{index}].title is {actual} characters long; the limit on this channel is {limit}")]
    TitleTooLong { index: usize, limit: usize, actual: usize },
    #[error("buttons[{index}].payload is {actual} bytes long; the limit on this channel is {limit}")]
    PayloadTooLong { index: usize, limit: usize, actual: usize },
    #[error("buttons[{index}]: {reason}")]
    Invalid { index: usize, reason: &'static str },
}

impl ButtonViolation {
    /// The stable error code.
    pub const fn code(&self) -> ErrorCode {
        match self {
            ButtonViolation::TooMany { .. } => ErrorCode::TooManyButtons,
            ButtonViolation::TitleTooLong { .. } => ErrorCode::ButtonTitleTooLong,
            ButtonViolation::PayloadTooLong { .. } => ErrorCode::ButtonPayloadTooLong,
            ButtonViolation::Invalid { .. } => ErrorCode::InvalidRequest,
        }
    }

    /// The button it is about, if one.
    pub const fn index(&self) -> Option<usize> {
        match self {
            ButtonViolation::TooMany { .. } => None,
            ButtonViolation::TitleTooLong { index, .. }
            | ButtonViolation::PayloadTooLong { index, .. }
            | ButtonViolation::Invalid { index, .. } => Some(*index),
        }
    }
}

/// Checks buttons against a channel's rules: count (at most [`BUTTONS_MAX`]), each title and
/// payload, exactly one of `payload` and `url`, an http(s) `url`, a notice of at most
/// [`NOTICE_MAX_CHARS`]. Titles and payloads are checked against the native limits also when the
/// buttons go as a numbered list, so a message is valid or not whatever else it carries.
pub fn check_buttons(buttons: &[Button], rules: &ButtonRules) -> Result<(), ButtonViolation> {
    if buttons.len() > BUTTONS_MAX {
        return Err(ButtonViolation::TooMany { limit: BUTTONS_MAX, actual: buttons.len() });
    }
    for (index, b) in buttons.iter().enumerate() {
        let invalid = |reason| Err(ButtonViolation::Invalid { index, reason });
        if b.title.trim().is_empty() {
            return invalid("a button needs a title");
        }
        let title = b.title.chars().count();
        if title > rules.title_max_chars {
            return Err(ButtonViolation::TitleTooLong { index, limit: rules.title_max_chars, actual: title });
        }
        match (&b.payload, &b.url) {
            (Some(p), None) => {
                if p.is_empty() {
                    return invalid("`payload` must not be empty");
                }
                if p.starts_with(FEEDBACK_PAYLOAD_PREFIX) {
                    return invalid("`payload` must not start with `fb:` (reserved for feedback answers)");
                }
                let actual = payload_bytes(p, rules);
                if actual > rules.payload_max_bytes {
                    return Err(ButtonViolation::PayloadTooLong { index, limit: rules.payload_max_bytes, actual });
                }
            }
            (None, Some(url)) => {
                let lower = url.to_ascii_lowercase();
                if !(lower.starts_with("https://") || lower.starts_with("http://")) || url.len() > 2000 {
                    return invalid("`url` must be an http(s) URL of at most 2000 bytes");
                }
            }
            _ => return invalid("a button has either a `payload` or a `url`"),
        }
        if b.notice.as_ref().is_some_and(|n| n.chars().count() > NOTICE_MAX_CHARS) {
            return invalid("`notice` is longer than 200 characters");
        }
    }
    Ok(())
}

/// A payload's length as its channel counts it: its bytes, or those of the JSON object it goes in.
fn payload_bytes(payload: &str, rules: &ButtonRules) -> usize {
    if rules.payload_as_json { json_payload(payload).len() } else { payload.len() }
}

/// The JSON object a payload goes in where the provider takes JSON payloads only (VK): `{"p":"…"}`.
pub fn json_payload(payload: &str) -> String {
    serde_json::json!({ "p": payload }).to_string()
}

/// The numbered text list a channel sends when it cannot show the buttons itself:
/// `text`, a blank line, then `1. Title` per button (`2. Title: https://...` for a link).
pub fn numbered_list(text: Option<&str>, buttons: &[Button]) -> String {
    let mut out = String::new();
    if let Some(t) = text.filter(|t| !t.trim().is_empty()) {
        out.push_str(t);
        out.push_str("\n\n");
    }
    for (i, b) in buttons.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{}. {}", i + 1, b.title));
        if let Some(url) = &b.url {
            out.push_str(&format!(": {url}"));
        }
    }
    out
}

/// The number a customer typed in answer to a numbered list: `"2"`, ` 2.`, `2)`, or `#2`; 1-based.
pub fn numbered_answer(text: &str) -> Option<usize> {
    let t = text.trim();
    let t = t.strip_prefix('#').unwrap_or(t);
    let t = t.strip_suffix('.').or_else(|| t.strip_suffix(')')).unwrap_or(t).trim();
    if t.is_empty() || t.len() > 2 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok().filter(|n| *n >= 1)
}

/// The payload of the feedback button for `score` of a request on `scale`.
pub fn feedback_payload(request: Uuid, scale: u8, score: u8) -> String {
    format!("{FEEDBACK_PAYLOAD_PREFIX}{request}:{scale}:{score}")
}

/// The feedback answer a button payload carries, if it is a valid one ([`feedback_payload`]).
pub fn parse_feedback_payload(payload: &str) -> Option<Feedback> {
    let rest = payload.strip_prefix(FEEDBACK_PAYLOAD_PREFIX)?;
    let mut parts = rest.split(':');
    let (Some(id), Some(scale), Some(score), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let request = Uuid::parse_str(id).ok()?;
    let (scale, score): (i64, i64) = (scale.parse().ok()?, score.parse().ok()?);
    Feedback::is_valid(score, scale).then(|| Feedback::answer(request.to_string(), score as u8, scale as u8))
}

/// A press as the core gets it: the `postback` event unchanged, or, when its payload is a
/// feedback button's, a `feedback` event with the score (the `postback` dropped).
pub fn typed_press(mut event: Event) -> Event {
    if event.kind == EventKind::Postback
        && let Some(feedback) = event.postback.as_ref().and_then(|p| parse_feedback_payload(&p.payload))
    {
        event.kind = EventKind::Feedback;
        event.feedback = Some(feedback);
        event.postback = None;
    }
    event
}

/// The buttons a feedback request shows: `1` to `scale`, as `★` counts on a 5-point scale,
/// `👎`/`👍` on a 2-point scale and numbers on a 10-point scale.
pub fn feedback_buttons(request: Uuid, scale: u8) -> Vec<Button> {
    (1..=scale)
        .map(|score| Button {
            title: feedback_title(scale, score),
            payload: Some(feedback_payload(request, scale, score)),
            url: None,
            notice: None,
        })
        .collect()
}

/// A score's button title on `scale`.
pub fn feedback_title(scale: u8, score: u8) -> String {
    match (scale, score) {
        (2, 1) => "👎".to_owned(),
        (2, _) => "👍".to_owned(),
        (5, n) => "★".repeat(usize::from(n)),
        (_, n) => n.to_string(),
    }
}

/// A marker the core shows the customer in a chat (`POST /v1/chats/.../typing`, `/read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatAction {
    /// "The operator is typing".
    Typing,
    /// "The operator has read your messages" (up to `message_id`, where the channel needs one).
    Read,
}

impl ChatAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            ChatAction::Typing => "typing",
            ChatAction::Read => "read",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ButtonRules = ButtonRules {
        native_max: 3,
        title_max_chars: 20,
        payload_max_bytes: 10,
        url_buttons: false,
        per_row_max: 1,
        payload_as_json: false,
        text_max_chars: 2000,
    };

    fn reply(title: &str, payload: &str) -> Button {
        Button { title: title.into(), payload: Some(payload.into()), url: None, notice: None }
    }

    #[test]
    fn limits_are_checked_with_their_codes() {
        assert_eq!(check_buttons(&[reply("Yes", "y")], &RULES), Ok(()));
        let many = vec![reply("a", "a"); BUTTONS_MAX + 1];
        assert_eq!(check_buttons(&many, &RULES).unwrap_err().code(), ErrorCode::TooManyButtons);
        let title = check_buttons(&[reply("a", "a"), reply(&"é".repeat(21), "b")], &RULES).unwrap_err();
        assert_eq!(title, ButtonViolation::TitleTooLong { index: 1, limit: 20, actual: 21 });
        assert_eq!(title.code(), ErrorCode::ButtonTitleTooLong);
        let payload = check_buttons(&[reply("a", "ééééé1")], &RULES).unwrap_err();
        assert_eq!(payload, ButtonViolation::PayloadTooLong { index: 0, limit: 10, actual: 11 });
        let both = Button { url: Some("https://x.example".into()), ..reply("a", "b") };
        assert_eq!(check_buttons(&[both], &RULES).unwrap_err().code(), ErrorCode::InvalidRequest);
        assert!(check_buttons(&[reply("a", "fb:x")], &RULES).is_err(), "fb: is reserved");
    }

    #[test]
    fn more_than_native_or_a_link_without_link_buttons_goes_numbered() {
        let four = vec![reply("a", "a"); 4];
        assert!(RULES.renders_natively(&four[..3]));
        assert!(!RULES.renders_natively(&four));
        let link = Button { title: "Site".into(), payload: None, url: Some("https://x.example".into()), notice: None };
        assert!(!RULES.renders_natively(std::slice::from_ref(&link)));
        assert_eq!(
            numbered_list(Some("Pick one"), &[reply("Yes", "y"), link]),
            "Pick one\n\n1. Yes\n2. Site: https://x.example"
        );
    }

    #[test]
    fn numbered_answers_are_small_numbers_only() {
        for (text, n) in [("2", Some(2)), (" 3. ", Some(3)), ("#1", Some(1)), ("4)", Some(4)), ("12", Some(12))] {
            assert_eq!(numbered_answer(text), n, "{text:?}");
        }
        for text in ["0", "", "two", "123", "1 2", "-1", "1.5"] {
            assert_eq!(numbered_answer(text), None, "{text:?}");
        }
    }

    #[test]
    fn feedback_payloads_round_trip_and_fit_every_channel() {
        let id = Uuid::now_v7();
        for scale in Feedback::SCALES {
            for score in 1..=scale {
                let p = feedback_payload(id, scale, score);
                assert!(p.len() <= FEEDBACK_PAYLOAD_MAX_BYTES, "{p}");
                assert_eq!(parse_feedback_payload(&p), Some(Feedback::answer(id.to_string(), score, scale)));
            }
            assert_eq!(feedback_buttons(id, scale).len(), usize::from(scale));
        }
        for bad in ["fb:x:5:1", &format!("fb:{id}:5:6"), &format!("fb:{id}:3:1"), &format!("fb:{id}:5:1:2"), "yes"] {
            assert_eq!(parse_feedback_payload(bad), None, "{bad}");
        }
    }
}
