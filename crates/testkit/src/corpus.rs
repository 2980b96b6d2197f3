//! The shared corpus of real webhooks: `$CHATGATE_REAL_WEBHOOKS`, else `../shared/real-webhooks`
//! beside the clone, one folder per channel kind with `<name>.json` payloads and optional
//! `<name>.meta.json` (source, headers, test secrets) beside them. It is never copied into the repo.
//!
//! Under `CI=true` a missing corpus fails the test that asks for it; elsewhere the test is told
//! `None` after a loud note on stderr, so a developer without the corpus can still run the rest.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;

use crate::snapshot::in_ci;
use crate::{subfolders, workspace_root};

/// The environment variable that names the corpus folder.
pub const ENV: &str = "CHATGATE_REAL_WEBHOOKS";

/// A payload from the shared real-webhook corpus.
#[derive(Debug, Clone)]
pub struct RealWebhook {
    pub path: PathBuf,
    pub body: Vec<u8>,
    /// The sibling `.meta.json` (source, headers, test secrets), or `null`.
    pub meta: serde_json::Value,
}

impl RealWebhook {
    /// The file name without `.json`.
    pub fn stem(&self) -> &str {
        self.path.file_stem().and_then(|s| s.to_str()).unwrap_or_default()
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{} is not JSON: {e}", self.path.display()))
    }
}

/// Where the corpus is looked for: `$CHATGATE_REAL_WEBHOOKS` when set, else `../shared/real-webhooks`.
pub fn expected_dir() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("../shared/real-webhooks"),
    }
}

/// The corpus folder. Missing: panics under `CI=true`, else prints a loud note and gives `None`.
pub fn real_webhooks_dir() -> Option<PathBuf> {
    let dir = expected_dir();
    if dir.is_dir() {
        return Some(dir);
    }
    let message =
        format!("the shared real-webhook corpus is missing: looked in {} (set {ENV} to its folder)", dir.display());
    assert!(!in_ci(), "{message}; CI=true requires it");
    // Written to stderr itself, not through `eprintln!`, so that the test harness does not capture it.
    static NOTE: Once = Once::new();
    NOTE.call_once(|| {
        let note = format!("\n!!!! NOTE: {message}; the corpus checks are NOT run (they fail under CI=true) !!!!\n");
        let _ = std::io::stderr().write_all(note.as_bytes());
    });
    None
}

/// Every payload of one channel kind in the corpus, sorted by path; `None` only when the whole
/// corpus is missing outside CI (see [`real_webhooks_dir`]). A present corpus without a
/// folder for `kind`, or with an empty one, fails.
pub fn real_webhooks(kind: &str) -> Option<Vec<RealWebhook>> {
    let dir = real_webhooks_dir()?.join(kind);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus folder {}: {e}", dir.display()));
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".json") || name.ends_with(".meta.json") {
            continue;
        }
        let meta_path = path.with_file_name(name.replace(".json", ".meta.json"));
        let meta = fs::read(&meta_path)
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{}: {e}", meta_path.display())))
            .unwrap_or(serde_json::Value::Null);
        let body = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push(RealWebhook { body, path, meta });
    }
    assert!(!out.is_empty(), "corpus folder {} has no payloads", dir.display());
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Some(out)
}

/// The folders of the corpus (channel kinds), sorted; `None` as for [`real_webhooks_dir`].
pub fn corpus_kinds() -> Option<Vec<String>> {
    Some(subfolders(&real_webhooks_dir()?))
}
