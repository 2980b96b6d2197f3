//! Every channel chatgate can serve. Adding a channel is one line here.

use chatgate_adapter::ChannelFactory;

/// The channel factories, by the `kind` they build.
pub static CHANNELS: &[&dyn ChannelFactory] = &[
    &chatgate_channel_telegram::FACTORY,
    &chatgate_channel_whatsapp::FACTORY,
    &chatgate_channel_facebook::MESSENGER_FACTORY,
    &chatgate_channel_facebook::INSTAGRAM_FACTORY,
    &chatgate_channel_viber::FACTORY,
    &chatgate_channel_vk::FACTORY,
];

/// The factory for a `kind` value from `channels.toml`.
pub fn factory(kind: &str) -> Option<&'static dyn ChannelFactory> {
    CHANNELS.iter().copied().find(|f| f.kind() == kind)
}

/// The kinds this build knows, for error messages.
pub fn kinds() -> Vec<&'static str> {
    CHANNELS.iter().map(|f| f.kind()).collect()
}
