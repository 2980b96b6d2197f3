//! Every channel chatgate can serve: the one list. Adding a channel is one line here (plus its
//! crate as a dependency of this package).
//!
//! A factory names its channel ([`ChannelFactory::channel`]); the adapters it builds report the
//! same channel ([`chatgate_adapter::Adapter::channel`]) and stamp it on their events. The tests
//! below and the fixture test over every channel check both.

use chatgate_adapter::ChannelFactory;
use chatgate_model::Channel;

/// The channel factories, one per channel.
pub static CHANNELS: &[&dyn ChannelFactory] = &[
    &chatgate_channel_telegram::FACTORY,
    &chatgate_channel_whatsapp::FACTORY,
    &chatgate_channel_facebook::MESSENGER_FACTORY,
    &chatgate_channel_facebook::INSTAGRAM_FACTORY,
    &chatgate_channel_viber::FACTORY,
    &chatgate_channel_vk::FACTORY,
    &chatgate_channel_web::FACTORY,
];

/// The factory for a `kind` value from `channels.toml` (or a URL segment).
pub fn factory(kind: &str) -> Option<&'static dyn ChannelFactory> {
    CHANNELS.iter().copied().find(|f| f.channel().as_str() == kind)
}

/// The channels this build serves, for error messages and the core API.
pub fn channels() -> Vec<Channel> {
    CHANNELS.iter().map(|f| f.channel()).collect()
}

/// Their names, joined for error messages.
pub fn kinds() -> String {
    channels().iter().map(Channel::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn every_channel_is_listed_once() {
        let names: HashSet<_> = channels().into_iter().collect();
        assert_eq!(names.len(), CHANNELS.len(), "a channel is registered twice: {}", kinds());
    }

    #[test]
    fn adapters_report_the_channel_of_their_factory() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        for factory in CHANNELS {
            let channel = factory.channel();
            let account = fixtures.join(channel.as_str()).join("account.json");
            let settings = std::fs::read(&account)
                .unwrap_or_else(|e| panic!("{channel} has no fixtures ({}: {e})", account.display()));
            let adapter = factory.build("test", serde_json::from_slice(&settings).unwrap()).unwrap();
            assert_eq!(adapter.channel(), channel, "the {channel} factory builds adapters of another channel");
            assert_eq!(adapter.account(), "test");
        }
    }
}
