//! Web visitor streams on KV, under `hash(account, visitor)` = `b`:
//! `b.head` holds the last item (its `n` and the item itself), `b.i.<n>` every item,
//! `b.k.<hash(key)>` the `n` of a keyed item, `b.profile` the profile.
//!
//! An append first copies the current head's item to `b.i.<n>` (idempotent), then moves the
//! head to the new item with compare-and-set: numbering has no gaps and no two appends get one
//! `n`, whichever instances make them; a crash after the head moved leaves the item readable
//! from the head until the next append copies it.

use chatgate_queue::{AppendOutcome, QueueError, VisitorAppend, VisitorAppended, VisitorItem};
use serde::{Deserialize, Serialize};

use crate::keys::hashed;
use crate::{NatsQueue, from_us, kv};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    n: u64,
    key: Option<String>,
    kind: String,
    data: String,
    at_us: i64,
}

impl From<Item> for VisitorItem {
    fn from(i: Item) -> VisitorItem {
        VisitorItem { n: i.n, key: i.key, kind: i.kind, data: i.data, at: from_us(i.at_us) }
    }
}

fn base(account: &str, visitor: &str) -> String {
    hashed(&[account, visitor])
}

impl NatsQueue {
    pub(crate) async fn visitor_append(&self, append: VisitorAppend) -> Result<VisitorAppended, QueueError> {
        let b = base(&append.account, &append.visitor);
        if let Some(k) = &append.key
            && let Some(existing) = self.visitor_find(&append.account, &append.visitor, k).await?
        {
            return Ok(VisitorAppended { item: existing, duplicate: true, events: AppendOutcome::default() });
        }
        // The echoed events carry their own dedup keys: a retry after a crash stores them once.
        let events = self.append(append.events.clone()).await?;
        let head_key = format!("{b}.head");
        let item = loop {
            let head = kv::load::<Item>(&self.inner.visitors, &head_key).await?;
            if let Some((h, _)) = &head {
                kv::put(&self.inner.visitors, &format!("{b}.i.{}", h.n), h).await?;
            }
            let item = Item {
                n: head.as_ref().map_or(1, |(h, _)| h.n + 1),
                key: append.key.clone(),
                kind: append.kind.clone(),
                data: append.data.clone(),
                at_us: chrono::Utc::now().timestamp_micros(),
            };
            if kv::save(&self.inner.visitors, &head_key, &item, head.map(|(_, rev)| rev)).await? {
                break item;
            }
        };
        kv::put(&self.inner.visitors, &format!("{b}.i.{}", item.n), &item).await?;
        if let Some(k) = &append.key {
            kv::put(&self.inner.visitors, &format!("{b}.k.{}", hashed(&[k])), &item.n).await?;
        }
        Ok(VisitorAppended { item: item.into(), duplicate: false, events })
    }

    pub(crate) async fn visitor_read(
        &self,
        account: &str,
        visitor: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<VisitorItem>, QueueError> {
        let b = base(account, visitor);
        let Some((head, _)) = kv::load::<Item>(&self.inner.visitors, &format!("{b}.head")).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for n in (after + 1)..=head.n {
            if out.len() >= limit {
                break;
            }
            if n == head.n {
                out.push(head.clone().into());
            } else if let Some((item, _)) = kv::load::<Item>(&self.inner.visitors, &format!("{b}.i.{n}")).await? {
                out.push(item.into());
            }
        }
        Ok(out)
    }

    pub(crate) async fn visitor_find(
        &self,
        account: &str,
        visitor: &str,
        key: &str,
    ) -> Result<Option<VisitorItem>, QueueError> {
        let b = base(account, visitor);
        let Some((n, _)) = kv::load::<u64>(&self.inner.visitors, &format!("{b}.k.{}", hashed(&[key]))).await? else {
            return Ok(None);
        };
        Ok(self.visitor_read(account, visitor, n - 1, 1).await?.into_iter().next())
    }

    pub(crate) async fn visitor_set_profile(
        &self,
        account: &str,
        visitor: &str,
        data: String,
    ) -> Result<(), QueueError> {
        // The first profile stays: create-only.
        kv::save(&self.inner.visitors, &format!("{}.profile", base(account, visitor)), &data, None).await?;
        Ok(())
    }

    pub(crate) async fn visitor_get_profile(&self, account: &str, visitor: &str) -> Result<Option<String>, QueueError> {
        Ok(kv::load::<String>(&self.inner.visitors, &format!("{}.profile", base(account, visitor)))
            .await?
            .map(|(d, _)| d))
    }
}
