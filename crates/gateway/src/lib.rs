//! The `chatgate` binary's library: configuration loading, the channel registry and the
//! commands (`serve`, `normalize`, `replay`, `schema`).

pub mod commands;
pub mod config;
pub mod nats_outbound;
pub mod registry;
