//! What every fuzz target checks, for one channel's test account (`fixtures/<kind>/account.json`):
//!
//! - the input, signed for the account as the provider would sign it, goes through
//!   `chatgate_adapter::webhook::receive` (verify, then parse) without a panic;
//! - a signed body is never refused as unauthenticated (VK's secret is inside the body, so a VK
//!   body that lost it may be);
//! - the events that come out are bounded by the input (count and envelope bytes), so no input
//!   makes the gateway allocate without bound (libFuzzer's `-rss_limit_mb` backs this up);
//! - the same bytes under a stale signature never verify where the provider signs the body.

use std::sync::{Arc, OnceLock};

use chatgate_adapter::{Adapter, ChannelFactory, WebhookError, WebhookRequest};
use http::{HeaderMap, Method};

/// The test account of `factory`'s channel, built once per process.
pub fn account(cell: &'static OnceLock<Arc<dyn Adapter>>, factory: &dyn ChannelFactory) -> &'static dyn Adapter {
    cell.get_or_init(|| {
        let kind = factory.channel().as_str().to_owned();
        let path = format!("{}/../fixtures/{kind}/account.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let settings = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        factory.build("fuzz", settings).unwrap_or_else(|e| panic!("{path}: {e}"))
    })
    .as_ref()
}

/// Channels whose signature covers the body bytes.
const BODY_SIGNED: &[&str] = &["whatsapp", "messenger", "instagram", "viber"];

/// Runs one input through the account's verifier and parser and checks the properties above.
pub fn run(adapter: &dyn Adapter, data: &[u8]) {
    let channel = adapter.channel();
    let kind = channel.as_str();
    let mut headers = HeaderMap::new();
    let body = adapter.sign(&mut headers, data.to_vec());
    let request = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &body };
    let result = chatgate_adapter::webhook::receive(adapter, &request);
    match &result {
        Err(why @ (WebhookError::MissingSignature | WebhookError::BadSignature)) if kind != "vk" => {
            panic!("{kind}: a body signed for the account was refused: {why}")
        }
        Ok(inbound) => {
            let events = inbound.events.len();
            assert!(events <= 1 + body.len() / 2, "{kind}: {events} events from {} bytes", body.len());
            let out: usize =
                inbound.events.iter().map(|e| serde_json::to_string(&e.event).map_or(0, |s| s.len())).sum();
            assert!(
                out <= 16 * body.len() + 2048 * events + (1 << 20),
                "{kind}: {out} bytes of envelopes from {} bytes",
                body.len()
            );
        }
        Err(_) => {}
    }
    if BODY_SIGNED.contains(&kind) && !body.is_empty() {
        // The signature of this body over one changed byte.
        let mut changed = body.clone();
        let last = changed.len() - 1;
        changed[last] ^= 0x20;
        let forged = WebhookRequest { method: &Method::POST, headers: &headers, query: None, body: &changed };
        assert!(adapter.verify(&forged).is_err(), "{kind}: a changed body verified with the old signature");
    }
}
