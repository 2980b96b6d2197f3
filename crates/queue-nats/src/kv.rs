//! Compare-and-set on KV entries: every read-modify-write of a bucket goes through [`load`]
//! and [`save`], so two instances changing one entry never lose each other's change.

use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use bytes::Bytes;
use chatgate_queue::QueueError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::setup::storage;

/// The value under `key` and its revision; `None` when absent or deleted.
pub(crate) async fn load<T: DeserializeOwned>(store: &Store, key: &str) -> Result<Option<(T, u64)>, QueueError> {
    match store.entry(key).await.map_err(storage)? {
        Some(e) if e.operation == Operation::Put => {
            let value = serde_json::from_slice(&e.value).map_err(|err| storage(format!("{key}: {err}")))?;
            Ok(Some((value, e.revision)))
        }
        _ => Ok(None),
    }
}

/// Writes `value` if the entry is still at `revision` (`None`: if it does not exist); false
/// when someone else wrote first (load again and retry).
pub(crate) async fn save<T: Serialize>(
    store: &Store,
    key: &str,
    value: &T,
    revision: Option<u64>,
) -> Result<bool, QueueError> {
    let bytes = Bytes::from(serde_json::to_vec(value).map_err(storage)?);
    match revision {
        None => match store.create(key, bytes).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(storage(e)),
        },
        Some(rev) => match store.update(key, bytes, rev).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(storage(e)),
        },
    }
}

/// Writes `value` whatever was there.
pub(crate) async fn put<T: Serialize>(store: &Store, key: &str, value: &T) -> Result<(), QueueError> {
    let bytes = Bytes::from(serde_json::to_vec(value).map_err(storage)?);
    store.put(key, bytes).await.map_err(storage)?;
    Ok(())
}

/// Every key of the bucket (an empty bucket has none).
pub(crate) async fn keys(store: &Store) -> Result<Vec<String>, QueueError> {
    use futures_util::TryStreamExt;
    let keys = store.keys().await.map_err(storage)?;
    keys.try_collect().await.map_err(storage)
}

/// Changes the value under `key` with `f` until the compare-and-set succeeds; `f` gets `None`
/// when there is no value and returns the new one, or `None` to write nothing.
pub(crate) async fn modify<T: Serialize + DeserializeOwned>(
    store: &Store,
    key: &str,
    mut f: impl FnMut(Option<&T>) -> Option<T>,
) -> Result<(), QueueError> {
    loop {
        let current = load::<T>(store, key).await?;
        let Some(next) = f(current.as_ref().map(|(v, _)| v)) else { return Ok(()) };
        if save(store, key, &next, current.map(|(_, rev)| rev)).await? {
            return Ok(());
        }
    }
}
