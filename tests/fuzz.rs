//! Fuzzing every channel's verifier and parser on the stable toolchain: a seeded mutation engine
//! over the recorded fixtures, structure-aware (it edits the JSON tree: other types, huge and
//! negative numbers, long strings, deep nesting, repeated array items, unknown keys) and at the
//! byte level (flips, cuts, splices of two fixtures, bytes JSON parsers trip on).
//!
//! Properties, for every input:
//! - `verify` and `parse` never panic; an answer is a typed result;
//! - what comes out is bounded by what went in (events and their JSON), so no input makes the
//!   gateway allocate without bound;
//! - a body signed for the account never fails as unauthenticated (except VK, whose secret is
//!   inside the body the mutation may change), and a changed body never verifies with the
//!   original signature where the provider signs the body (WhatsApp, Messenger, Instagram, Viber);
//! - an authentic body that parsed still parses when an unknown key is added anywhere (never
//!   fail on the unknown).
//!
//! CI runs 2 s per channel. The long run (README, "Reliability"):
//! `CHATGATE_FUZZ_SECONDS=1800 cargo test --release -p chatgate --test fuzz -- --nocapture`
//! (seconds per channel; `CHATGATE_FUZZ_SEED` picks the seed). A failing input is written to
//! `target/fuzz-failures/<channel>-<seed>-<iteration>.body` before the test fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use chatgate::registry::CHANNELS;
use chatgate_adapter::{Adapter, WebhookError, WebhookRequest};
use chatgate_testkit::{Fixture, fixtures, kind_of, post_signed, test_account};
use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

fn seconds() -> u64 {
    std::env::var("CHATGATE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2)
}

fn seed() -> u64 {
    std::env::var("CHATGATE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed)
}

/// Channels whose signature covers the body bytes.
const BODY_SIGNED: &[&str] = &["whatsapp", "messenger", "instagram", "viber"];

/// Values JSON readers and provider types stumble on.
fn odd_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..16) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(u64::MAX),
        3 => json!(i64::MIN),
        4 => serde_json::from_str("18446744073709551616123").unwrap_or(Value::Null),
        5 => json!(-1),
        6 => json!(1e308),
        7 => json!(0.5),
        8 => json!(""),
        9 => json!("x".repeat(rng.random_range(1..20_000))),
        10 => json!("\u{0}\u{feff}\u{10ffff}\"\\"),
        11 => json!([]),
        12 => json!({}),
        13 => json!(9007199254740993_u64),
        14 if depth < 3 => {
            let mut m = Map::new();
            for i in 0..rng.random_range(0..4) {
                m.insert(format!("k{i}"), odd_value(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => {
            // Deep nesting, bounded well under serde_json's recursion limit of 128.
            let mut v = json!(1);
            for _ in 0..rng.random_range(1..100) {
                v = json!([v]);
            }
            v
        }
    }
}

/// A random node of the tree (by a walk from the root).
fn pick<'a>(rng: &mut StdRng, root: &'a mut Value) -> &'a mut Value {
    let mut node = root;
    loop {
        let len = match &*node {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if len == 0 || rng.random_bool(0.25) {
            return node;
        }
        let i = rng.random_range(0..len);
        node = match node {
            Value::Object(m) => m.values_mut().nth(i).unwrap(),
            Value::Array(a) => &mut a[i],
            _ => unreachable!(),
        };
    }
}

/// One structure-aware edit of the tree.
fn mutate_tree(rng: &mut StdRng, root: &mut Value) {
    let node = pick(rng, root);
    match rng.random_range(0..6) {
        0 | 1 => *node = odd_value(rng, 0),
        2 => {
            if let Value::Object(m) = node
                && !m.is_empty()
            {
                let key = m.keys().nth(rng.random_range(0..m.len())).unwrap().clone();
                m.remove(&key);
            }
        }
        3 => {
            if let Value::Array(a) = node
                && let Some(first) = a.first().cloned()
            {
                // Many repeats of one item: output must stay proportional to input.
                a.extend(std::iter::repeat_n(first, rng.random_range(1..300)));
            }
        }
        4 => {
            // A number as a string, a string as a number.
            *node = match &*node {
                Value::Number(n) => json!(n.to_string()),
                Value::String(s) => s.parse::<f64>().map(|f| json!(f)).unwrap_or(json!(12345)),
                other => json!([other.clone()]),
            }
        }
        _ => {
            if let Value::String(s) = node {
                // An unknown kind name where a type tag may be.
                *s = format!("{s}_future_kind");
            }
        }
    }
}

/// Adds an unknown key to a random object of the tree; false when there is none.
fn add_unknown_key(rng: &mut StdRng, root: &mut Value) -> bool {
    for _ in 0..20 {
        if let Value::Object(m) = pick(rng, root) {
            m.insert(format!("x_unknown_{}", rng.random::<u16>()), odd_value(rng, 2));
            return true;
        }
    }
    false
}

const TRICKY: &[&[u8]] =
    &[b"\"", b"\\", b"{", b"}", b"[", b"]", b",", b":", b"\0", b"1e999", b"-0", b"\\ud800", b"\xff\xfe", b"null"];

/// One byte-level edit (cuts, flips, inserts, a splice with another body).
fn mutate_bytes(rng: &mut StdRng, body: &mut Vec<u8>, other: &[u8]) {
    let len = body.len().max(1);
    match rng.random_range(0..5) {
        0 => body.truncate(rng.random_range(0..len)),
        1 => {
            if !body.is_empty() {
                let i = rng.random_range(0..body.len());
                body[i] ^= 1 << rng.random_range(0..8);
            }
        }
        2 => {
            let at = rng.random_range(0..=body.len());
            let what = TRICKY[rng.random_range(0..TRICKY.len())];
            body.splice(at..at, what.iter().copied());
        }
        3 => {
            let at = rng.random_range(0..=body.len());
            let from = rng.random_range(0..=other.len());
            body.truncate(at);
            body.extend_from_slice(&other[from..]);
        }
        _ => {
            if !body.is_empty() {
                let start = rng.random_range(0..body.len());
                let end = rng.random_range(start..=body.len());
                body.drain(start..end);
            }
        }
    }
}

/// What one input may produce at most: events and their JSON are bounded by the input.
fn check_bounded(
    kind: &str,
    body: &[u8],
    result: &Result<chatgate_adapter::Inbound, WebhookError>,
) -> Result<(), String> {
    let Ok(inbound) = result else { return Ok(()) };
    // Every entry, change or item may be its own event (`-1,` is one), each with a bounded
    // envelope around its share of the input: linear, never more.
    let events = inbound.events.len();
    if events > 1 + body.len() / 2 {
        return Err(format!("{kind}: {events} events from {} bytes", body.len()));
    }
    let out: usize = inbound.events.iter().map(|e| serde_json::to_string(&e.event).map_or(0, |s| s.len())).sum();
    if out > 16 * body.len() + 2048 * events + (1 << 20) {
        return Err(format!("{kind}: {out} bytes of envelopes from {} bytes", body.len()));
    }
    Ok(())
}

/// Runs one input through `check`; a panic or a broken property is written out and returned.
fn run_one(
    kind: &str,
    iteration: u64,
    seed: u64,
    body: &[u8],
    check: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|panic| {
        let text = panic.downcast_ref::<String>().cloned().or(panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(format!("panicked: {}", text.unwrap_or_default()))
    });
    if let Err(problem) = &outcome {
        let dir = chatgate_testkit::workspace_root().join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{kind}-{seed}-{iteration}.body"));
        let _ = std::fs::write(&path, body);
        return Err(format!("{problem} (input in {})", path.display()));
    }
    outcome
}

/// Fuzzes one channel for the time budget; returns (inputs, parsed, refused) or the first problem.
fn fuzz_channel(
    adapter: &dyn Adapter,
    kind: &str,
    corpus: &[Fixture],
    budget: Duration,
    seed: u64,
) -> Result<(u64, u64, u64), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let posts: Vec<&Fixture> = corpus.iter().filter(|f| f.method == Method::POST && !f.body.is_empty()).collect();
    assert!(!posts.is_empty(), "fixtures/{kind} has no POST fixture to start from");
    let started = Instant::now();
    let (mut inputs, mut parsed, mut refused) = (0u64, 0u64, 0u64);
    let mut slowest = (Duration::ZERO, 0);
    while started.elapsed() < budget {
        inputs += 1;
        let one = Instant::now();
        let base = posts[rng.random_range(0..posts.len())];
        let other = &posts[rng.random_range(0..posts.len())].body;
        let structured = serde_json::from_slice::<Value>(&base.body).ok().filter(|_| rng.random_bool(0.6));
        let body = match structured {
            Some(mut tree) => {
                for _ in 0..rng.random_range(1..4) {
                    mutate_tree(&mut rng, &mut tree);
                }
                serde_json::to_vec(&tree).unwrap()
            }
            None => {
                let mut body = base.body.clone();
                for _ in 0..rng.random_range(1..4) {
                    mutate_bytes(&mut rng, &mut body, other);
                }
                body
            }
        };
        let iteration = inputs;
        let mut ok = false;
        run_one(kind, iteration, seed, &body, || {
            // Signed for the account: authentic.
            let result = post_signed(adapter, body.clone());
            check_bounded(kind, &body, &result)?;
            match &result {
                Ok(_) => ok = true,
                Err(WebhookError::MissingSignature | WebhookError::BadSignature) if kind != "vk" => {
                    return Err(format!("{kind}: a body signed for the account was refused as unauthenticated"));
                }
                Err(_) => {}
            }
            // With the recorded signature: a changed body must not verify where the body is signed.
            let request = WebhookRequest { method: &Method::POST, headers: &base.headers, query: None, body: &body };
            let original =
                WebhookRequest { method: &Method::POST, headers: &base.headers, query: None, body: &base.body };
            if BODY_SIGNED.contains(&kind)
                && body != base.body
                && adapter.verify(&original).is_ok()
                && adapter.verify(&request).is_ok()
            {
                return Err(format!("{kind}: a changed body verified with the original signature"));
            }
            let _ = adapter.parse(&request);
            Ok(())
        })?;
        if one.elapsed() > slowest.0 {
            slowest = (one.elapsed(), body.len());
        }
        if ok {
            parsed += 1;
        } else {
            refused += 1;
        }
        // Never fail on the unknown: an extra key keeps an authentic, parsed body parsed.
        if ok
            && let Ok(mut tree) = serde_json::from_slice::<Value>(&body)
            && add_unknown_key(&mut rng, &mut tree)
        {
            let extended = serde_json::to_vec(&tree).unwrap();
            run_one(kind, iteration, seed, &extended, || match post_signed(adapter, extended.clone()) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("{kind}: an unknown key made a parsed body fail: {e}")),
            })?;
        }
    }
    println!("fuzz {kind}: slowest input {:?} ({} bytes)", slowest.0, slowest.1);
    Ok((inputs, parsed, refused))
}

#[test]
fn every_channel_verifier_and_parser_survive_mutated_webhooks() {
    let budget = Duration::from_secs(seconds());
    let seed = seed();
    let mut problems = Vec::new();
    for factory in CHANNELS {
        let kind = kind_of(*factory);
        let adapter = test_account(*factory);
        let corpus = fixtures(&kind);
        let started = Instant::now();
        match fuzz_channel(adapter.as_ref(), &kind, &corpus, budget, seed) {
            Ok((inputs, parsed, refused)) => println!(
                "fuzz {kind}: seed={seed} inputs={inputs} parsed={parsed} refused={refused} in {:?} ({} fixtures)",
                started.elapsed(),
                corpus.len()
            ),
            Err(problem) => problems.push(problem),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
