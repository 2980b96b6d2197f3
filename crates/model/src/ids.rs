//! Channel identifiers.
//!
//! A [`Channel`] is a short lowercase name (`telegram`, `whatsapp`, ...). The model does not list
//! the channels: each channel crate declares its own name, and the gateway's registry is the one
//! list of the channels a build serves. The type is `Copy` (the name lives inline), so it is as
//! cheap to pass around as an enum.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A messenger kind's name. Its string form is part of URLs, `channels.toml` and the envelope.
///
/// A valid name is 1 to [`Channel::MAX_LEN`] bytes: a lowercase ASCII letter, then lowercase ASCII
/// letters, digits or `_`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Channel {
    len: u8,
    bytes: [u8; Channel::MAX_LEN],
}

impl Channel {
    /// The longest channel name.
    pub const MAX_LEN: usize = 15;

    /// A channel name known at compile time; an invalid name fails the build (in a `const`).
    pub const fn from_static(name: &'static str) -> Channel {
        match Channel::parse_bytes(name.as_bytes()) {
            Some(channel) => channel,
            None => panic!("a channel name is 1-15 bytes of a-z, 0-9 and _, starting with a letter"),
        }
    }

    const fn parse_bytes(name: &[u8]) -> Option<Channel> {
        if name.is_empty() || name.len() > Channel::MAX_LEN || !name[0].is_ascii_lowercase() {
            return None;
        }
        let mut bytes = [0u8; Channel::MAX_LEN];
        let mut i = 0;
        while i < name.len() {
            let b = name[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return None;
            }
            bytes[i] = b;
            i += 1;
        }
        Some(Channel { len: name.len() as u8, bytes })
    }

    /// The string form used in URLs, config and the envelope.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `parse_bytes`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({:?})", self.as_str())
    }
}

impl Ord for Channel {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Channel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The string is not a valid channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a channel name (1-15 characters of a-z, 0-9 and _, starting with a letter)")]
pub struct ParseChannelError(pub String);

impl FromStr for Channel {
    type Err = ParseChannelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::parse_bytes(s.as_bytes()).ok_or_else(|| ParseChannelError(s.to_owned()))
    }
}

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Channel {
    fn schema_name() -> Cow<'static, str> {
        "Channel".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9_]{0,14}$",
            "description": "The channel kind. This release serves: telegram, whatsapp, messenger, instagram, viber, vk. New channels add names; consumers must accept names they do not know."
        })
    }
}

/// One chat of one account: where a message goes to or came from. Naming the three ids together
/// keeps them from being swapped in a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conversation {
    pub channel: Channel,
    pub account: String,
    pub chat_id: String,
}

impl Conversation {
    pub fn new(channel: Channel, account: impl Into<String>, chat_id: impl Into<String>) -> Conversation {
        Conversation { channel, account: account.into(), chat_id: chat_id.into() }
    }
}

/// One customer of one account (what a block applies to).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerRef {
    pub channel: Channel,
    pub account: String,
    pub customer_id: String,
}

impl CustomerRef {
    pub fn new(channel: Channel, account: impl Into<String>, customer_id: impl Into<String>) -> CustomerRef {
        CustomerRef { channel, account: account.into(), customer_id: customer_id.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_alphabetically() {
        const VK: Channel = Channel::from_static("vk");
        let tg: Channel = "telegram".parse().unwrap();
        assert_eq!(tg.as_str(), "telegram");
        assert_eq!(VK.to_string(), "vk");
        assert!(tg < VK && "ab".parse::<Channel>().unwrap() < "b".parse::<Channel>().unwrap());
        assert_eq!(serde_json::to_value(tg).unwrap(), "telegram");
        assert_eq!(serde_json::from_value::<Channel>("telegram".into()).unwrap(), tg);
        assert_eq!(format!("{tg:?}"), "Channel(\"telegram\")");
    }

    #[test]
    fn refuses_what_cannot_be_a_url_segment_or_is_too_long() {
        for bad in ["", "Telegram", "tele gram", "1tg", "tg/x", "abcdefghijklmnop", "тг", "_x"] {
            assert!(bad.parse::<Channel>().is_err(), "{bad:?} was accepted");
            assert!(serde_json::from_value::<Channel>(bad.into()).is_err());
        }
        assert!("abcdefghijklmno".parse::<Channel>().is_ok(), "15 bytes is the limit, inclusive");
    }
}
