//! Files of web visitors (uploads) and for them (operator attachments), on disk in the data dir:
//! `{dir}/{account}/{ref}` with `{ref}.json` beside it (visitor, name, type, kind, size). A file is
//! written and fsynced before its reference is answered. References are 128 random bits.

use std::path::PathBuf;

use chatgate_model::AttachmentKind;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What is kept about a stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileMeta {
    /// The visitor whose conversation it belongs to (only they may read it through `/web/...`).
    pub visitor: String,
    pub name: String,
    pub mime: String,
    pub kind: AttachmentKind,
    pub size: u64,
}

/// The file store.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    dir: PathBuf,
}

/// A reference is 32 lowercase hex digits.
pub(crate) fn is_reference(r: &str) -> bool {
    r.len() == 32 && r.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_account(a: &str) -> bool {
    !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Files {
    pub(crate) fn new(dir: PathBuf) -> Files {
        Files { dir }
    }

    /// Stores a file; its reference.
    pub(crate) async fn store(&self, account: &str, meta: &FileMeta, bytes: &[u8]) -> std::io::Result<String> {
        if !is_account(account) {
            return Err(std::io::Error::other("bad account id"));
        }
        let reference: String = hex_of(rand::rng().random::<[u8; 16]>());
        let dir = self.dir.join(account);
        let meta_json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        let bytes = bytes.to_vec();
        let r = reference.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            for (path, content) in [(dir.join(&r), &bytes), (dir.join(format!("{r}.json")), &meta_json)] {
                let mut f = std::fs::File::create(path)?;
                f.write_all(content)?;
                f.sync_all()?;
            }
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(reference)
    }

    /// A stored file's metadata.
    pub(crate) async fn meta(&self, account: &str, reference: &str) -> Option<FileMeta> {
        if !is_account(account) || !is_reference(reference) {
            return None;
        }
        let bytes = tokio::fs::read(self.dir.join(account).join(format!("{reference}.json"))).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A stored file's metadata and bytes.
    pub(crate) async fn read(&self, account: &str, reference: &str) -> Option<(FileMeta, Vec<u8>)> {
        let meta = self.meta(account, reference).await?;
        let bytes = tokio::fs::read(self.dir.join(account).join(reference)).await.ok()?;
        Some((meta, bytes))
    }
}

fn hex_of(bytes: [u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
