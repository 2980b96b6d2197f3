#![no_main]

use std::sync::{Arc, OnceLock};

use chatgate_adapter::Adapter;
use libfuzzer_sys::fuzz_target;

static ACCOUNT: OnceLock<Arc<dyn Adapter>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    chatgate_fuzz::run(chatgate_fuzz::account(&ACCOUNT, &chatgate_channel_web::FACTORY), data);
});
