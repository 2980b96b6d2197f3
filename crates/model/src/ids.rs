//! Channel identifiers.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A messenger kind. The string form (`telegram`, `whatsapp`, ...) is part of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Telegram,
    Whatsapp,
    Messenger,
    Instagram,
    Viber,
    Vk,
    Web,
}

impl Channel {
    /// Every channel, in the order of the envelope documentation.
    pub const ALL: [Channel; 7] = [
        Channel::Telegram,
        Channel::Whatsapp,
        Channel::Messenger,
        Channel::Instagram,
        Channel::Viber,
        Channel::Vk,
        Channel::Web,
    ];

    /// The string form used in URLs, config and the envelope.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Whatsapp => "whatsapp",
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
            Channel::Viber => "viber",
            Channel::Vk => "vk",
            Channel::Web => "web",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string did not name a known channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel `{0}`")]
pub struct ParseChannelError(pub String);

impl FromStr for Channel {
    type Err = ParseChannelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| ParseChannelError(s.to_owned()))
    }
}
