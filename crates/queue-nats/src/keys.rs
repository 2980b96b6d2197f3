//! Names on NATS: subject tokens, KV keys and message ids made from ids chatgate does not control.
//!
//! Account, chat and customer ids can hold any character, but subject tokens and KV keys cannot
//! (no `.`, `*`, `>`, spaces). KV keys are therefore a hash of the ids; subject tokens keep a safe
//! id as it is (so a core can subscribe to `<prefix>.events.telegram.main`) and hex-encode others.

use sha2::{Digest, Sha256};

/// A KV key for a tuple of ids: 40 hex characters of SHA-256 over the parts, each ended by NUL.
pub(crate) fn hashed(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    hex::encode(&digest[..20])
}

/// A subject token for an id: itself when it is made of `[A-Za-z0-9_-]`, else `x` and its hex.
pub(crate) fn token(id: &str) -> String {
    let safe = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if safe { id.to_owned() } else { format!("x{}", hex::encode(id.as_bytes())) }
}

/// Whether `prefix` can name streams, buckets and subjects: `[A-Za-z0-9_-]`, 1 to 32 characters.
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    (1..=32).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_safe_ids_and_encode_the_rest() {
        assert_eq!(token("main"), "main");
        assert_eq!(token("a.b"), "x612e62");
        assert_eq!(token(""), "x");
        assert_ne!(hashed(&["a", "bc"]), hashed(&["ab", "c"]));
        assert_eq!(hashed(&["a"]).len(), 40);
        assert!(valid_prefix("chatgate") && !valid_prefix("a.b") && !valid_prefix(""));
    }
}
