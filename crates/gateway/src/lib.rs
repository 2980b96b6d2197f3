//! The `chatgate` binary's library: configuration loading, the channel registry and the
//! commands (`serve`, `normalize`, `replay`, `schema`, `webhooks`, `fixtures add`, `health`).

pub mod commands;
pub mod config;
pub mod fixtures_cmd;
pub mod health;
pub mod nats_outbound;
pub mod registry;
pub mod webhooks;
