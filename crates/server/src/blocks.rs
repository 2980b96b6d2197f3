//! Blocked customers: durable in the queue, mirrored in memory for the hot paths.

use std::collections::HashSet;
use std::sync::RwLock;

use chatgate_model::Channel;
use chatgate_queue::{Queue, QueueError};

#[derive(Debug, Default)]
pub(crate) struct Blocks {
    set: RwLock<HashSet<String>>,
}

fn key(channel: Channel, account: &str, customer: &str) -> String {
    format!("{channel}\u{0}{account}\u{0}{customer}")
}

impl Blocks {
    pub async fn load(queue: &dyn Queue) -> Result<Blocks, QueueError> {
        let set = queue.blocked().await?.into_iter().map(|(c, a, u)| key(c, &a, &u)).collect();
        Ok(Blocks { set: RwLock::new(set) })
    }

    pub fn is_blocked(&self, channel: Channel, account: &str, customer: &str) -> bool {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        !set.is_empty() && set.contains(&key(channel, account, customer))
    }

    /// Stores the change durably first, then applies it in memory.
    pub async fn set(
        &self,
        queue: &dyn Queue,
        channel: Channel,
        account: &str,
        customer: &str,
        blocked: bool,
    ) -> Result<(), QueueError> {
        queue.set_blocked(channel, account, customer, blocked).await?;
        let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
        if blocked {
            set.insert(key(channel, account, customer));
        } else {
            set.remove(&key(channel, account, customer));
        }
        Ok(())
    }
}
