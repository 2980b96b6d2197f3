//! Message limits as data: named values with their source, and pure checks.
//!
//! Sizes are in bytes; "MB" in provider documents is read as MiB (2^20 bytes), which is
//! how the providers that give byte counts mean it (Viber: 26 MB = 27262976 bytes).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AttachmentKind;
use crate::ErrorCode;

/// One mebibyte, the unit of every size limit.
pub const MB: u64 = 1024 * 1024;

/// The product's cap on one outbound message's text, counted in Unicode scalar values
/// (`str::chars`), the same on every channel. A channel with a lower cap lowers it.
pub const MESSAGE_TEXT_MAX_CHARS: usize = 2000;

/// The limits one account enforces on outbound messages.
///
/// A `None` size means the channel does not support that kind at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Limits {
    /// Maximum text length in Unicode scalar values.
    pub text_max_chars: usize,
    pub image_bytes: Option<u64>,
    pub audio_bytes: Option<u64>,
    pub video_bytes: Option<u64>,
    pub file_bytes: Option<u64>,
    pub sticker_bytes: Option<u64>,
}

impl Limits {
    /// Limits with the product's text cap and the given sizes in MiB (image, audio, video, file);
    /// stickers share the image limit.
    pub const fn mb(image: Option<u64>, audio: Option<u64>, video: Option<u64>, file: Option<u64>) -> Limits {
        const fn to_bytes(v: Option<u64>) -> Option<u64> {
            match v {
                Some(mb) => Some(mb * MB),
                None => None,
            }
        }
        Limits {
            text_max_chars: MESSAGE_TEXT_MAX_CHARS,
            image_bytes: to_bytes(image),
            audio_bytes: to_bytes(audio),
            video_bytes: to_bytes(video),
            file_bytes: to_bytes(file),
            sticker_bytes: to_bytes(image),
        }
    }

    /// The size limit of `kind`, or `None` if the channel does not take that kind.
    pub const fn for_kind(&self, kind: AttachmentKind) -> Option<u64> {
        match kind {
            AttachmentKind::Image => self.image_bytes,
            AttachmentKind::Audio => self.audio_bytes,
            AttachmentKind::Video => self.video_bytes,
            AttachmentKind::File => self.file_bytes,
            AttachmentKind::Sticker => self.sticker_bytes,
        }
    }

    /// Applies overrides from configuration.
    pub fn with_overrides(mut self, o: &LimitOverrides) -> Limits {
        if let Some(n) = o.text_max_chars {
            self.text_max_chars = n;
        }
        let set = |slot: &mut Option<u64>, v: Option<SizeOverride>| {
            if let Some(v) = v {
                *slot = v.bytes();
            }
        };
        set(&mut self.image_bytes, o.image_mb);
        set(&mut self.audio_bytes, o.audio_mb);
        set(&mut self.video_bytes, o.video_mb);
        set(&mut self.file_bytes, o.file_mb);
        set(&mut self.sticker_bytes, o.sticker_mb);
        self
    }
}

/// Limit overrides of one account in `channels.toml` (`[accounts.NAME.limits]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub text_max_chars: Option<usize>,
    pub image_mb: Option<SizeOverride>,
    pub audio_mb: Option<SizeOverride>,
    pub video_mb: Option<SizeOverride>,
    pub file_mb: Option<SizeOverride>,
    pub sticker_mb: Option<SizeOverride>,
}

/// A size override: MiB as a number (fractions allowed), or `false` to refuse the kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SizeOverride {
    Megabytes(f64),
    Supported(bool),
}

impl SizeOverride {
    fn bytes(self) -> Option<u64> {
        match self {
            SizeOverride::Megabytes(mb) if mb >= 0.0 => Some((mb * MB as f64).round() as u64),
            SizeOverride::Megabytes(_) | SizeOverride::Supported(false) => None,
            // `true` alone gives no number: treat as "no limit of our own".
            SizeOverride::Supported(true) => Some(u64::MAX),
        }
    }
}

/// Why an outbound message breaks a limit. `code()` is the error code the core sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitViolation {
    #[error("text is {actual} characters long; the limit is {limit}")]
    TextTooLong { limit: usize, actual: usize },
    #[error("{} attachment is {} bytes; the limit is {limit} bytes", kind.as_str(), actual.map_or("over the limit".to_owned(), |a| a.to_string()))]
    AttachmentTooLarge { kind: AttachmentKind, limit: u64, actual: Option<u64> },
    #[error("this channel does not take {} attachments", kind.as_str())]
    AttachmentKindUnsupported { kind: AttachmentKind },
    #[error("a message needs text, an attachment or a template")]
    EmptyMessage,
}

impl LimitViolation {
    /// The stable error code.
    pub const fn code(&self) -> ErrorCode {
        match self {
            LimitViolation::TextTooLong { .. } => ErrorCode::TextTooLong,
            LimitViolation::AttachmentTooLarge { .. } => ErrorCode::AttachmentTooLarge,
            LimitViolation::AttachmentKindUnsupported { .. } => ErrorCode::AttachmentKindUnsupported,
            LimitViolation::EmptyMessage => ErrorCode::EmptyMessage,
        }
    }
}

/// Checks a text against the account's cap, counting Unicode scalar values.
pub fn check_text(text: &str, limits: &Limits) -> Result<(), LimitViolation> {
    let limit = limits.text_max_chars;
    let actual = text.chars().count();
    if actual > limit { Err(LimitViolation::TextTooLong { limit, actual }) } else { Ok(()) }
}

/// Checks an attachment's kind and, when known, its size.
pub fn check_attachment(kind: AttachmentKind, size: Option<u64>, limits: &Limits) -> Result<(), LimitViolation> {
    let limit = limits.for_kind(kind).ok_or(LimitViolation::AttachmentKindUnsupported { kind })?;
    match size {
        Some(actual) if actual > limit => Err(LimitViolation::AttachmentTooLarge { kind, limit, actual: Some(actual) }),
        _ => Ok(()),
    }
}

/// The content type and kind of an upload by its first bytes; `None` for anything else (a file).
pub fn sniff(bytes: &[u8]) -> Option<(&'static str, AttachmentKind)> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    let found = if starts(b"\x89PNG\r\n\x1a\n") {
        ("image/png", AttachmentKind::Image)
    } else if starts(b"\xff\xd8\xff") {
        ("image/jpeg", AttachmentKind::Image)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        ("image/gif", AttachmentKind::Image)
    } else if starts(b"RIFF") && at(8, b"WEBP") {
        ("image/webp", AttachmentKind::Image)
    } else if starts(b"RIFF") && at(8, b"WAVE") {
        ("audio/wav", AttachmentKind::Audio)
    } else if starts(b"ID3") || (bytes.len() > 1 && bytes[0] == 0xff && bytes[1] & 0xe0 == 0xe0) {
        ("audio/mpeg", AttachmentKind::Audio)
    } else if starts(b"OggS") {
        ("audio/ogg", AttachmentKind::Audio)
    } else if at(4, b"ftyp") {
        let brand = bytes.get(8..12).unwrap_or_default();
        if brand == b"M4A " || brand == b"M4B " {
            ("audio/mp4", AttachmentKind::Audio)
        } else {
            ("video/mp4", AttachmentKind::Video)
        }
    } else if starts(b"\x1a\x45\xdf\xa3") {
        ("video/webm", AttachmentKind::Video)
    } else if starts(b"%PDF-") {
        ("application/pdf", AttachmentKind::File)
    } else {
        return None;
    };
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TELEGRAM: Limits = Limits::mb(Some(10), Some(50), Some(50), Some(50));

    #[test]
    fn text_cap_counts_scalar_values() {
        assert_eq!(check_text(&"a".repeat(2000), &TELEGRAM), Ok(()));
        assert_eq!(
            check_text(&"a".repeat(2001), &TELEGRAM),
            Err(LimitViolation::TextTooLong { limit: 2000, actual: 2001 })
        );
        // 2000 four-byte scalars (8000 bytes, 4000 UTF-16 units) still fit.
        assert_eq!(check_text(&"😀".repeat(2000), &TELEGRAM), Ok(()));
        // A combining sequence counts each scalar value.
        assert!(check_text(&"e\u{301}".repeat(1001), &TELEGRAM).is_err());
    }

    #[test]
    fn attachment_sizes_are_mebibytes() {
        let ten_mb = 10 * MB;
        assert_eq!(check_attachment(AttachmentKind::Image, Some(ten_mb), &TELEGRAM), Ok(()));
        assert_eq!(
            check_attachment(AttachmentKind::Image, Some(ten_mb + 1), &TELEGRAM),
            Err(LimitViolation::AttachmentTooLarge {
                kind: AttachmentKind::Image,
                limit: ten_mb,
                actual: Some(ten_mb + 1)
            })
        );
        assert_eq!(check_attachment(AttachmentKind::Video, None, &TELEGRAM), Ok(()));
    }

    #[test]
    fn unsupported_kind_is_refused_whatever_the_size() {
        let fb = Limits::mb(Some(8), Some(25), None, Some(25));
        assert_eq!(
            check_attachment(AttachmentKind::Video, Some(1), &fb),
            Err(LimitViolation::AttachmentKindUnsupported { kind: AttachmentKind::Video })
        );
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let o: LimitOverrides =
            serde_json::from_str(r#"{"image_mb": 2.5, "video_mb": false, "text_max_chars": 1000}"#).unwrap();
        let l = TELEGRAM.with_overrides(&o);
        assert_eq!(l.image_bytes, Some(2 * MB + MB / 2));
        assert_eq!(l.video_bytes, None);
        assert_eq!(l.audio_bytes, Some(50 * MB));
        assert_eq!(l.text_max_chars, 1000);
        assert!(serde_json::from_str::<LimitOverrides>(r#"{"imag_mb": 1}"#).is_err());
    }
}
