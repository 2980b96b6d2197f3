//! Blocked customers: durable in the queue, mirrored in memory for the hot paths.

use std::collections::HashSet;
use std::sync::RwLock;

use chatgate_model::CustomerRef;
use chatgate_queue::{Queue, QueueError};

#[derive(Debug, Default)]
pub(crate) struct Blocks {
    set: RwLock<HashSet<CustomerRef>>,
}

impl Blocks {
    pub async fn load(queue: &dyn Queue) -> Result<Blocks, QueueError> {
        let set = queue.blocked().await?.into_iter().collect();
        Ok(Blocks { set: RwLock::new(set) })
    }

    /// Whether anyone is blocked at all (lets the webhook path skip building keys).
    pub fn any(&self) -> bool {
        !self.set.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    pub fn is_blocked(&self, customer: &CustomerRef) -> bool {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        !set.is_empty() && set.contains(customer)
    }

    /// Replaces the mirror with what the store holds (when other instances change it too).
    pub async fn reload(&self, queue: &dyn Queue) -> Result<(), QueueError> {
        let fresh: HashSet<CustomerRef> = queue.blocked().await?.into_iter().collect();
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Stores the change durably first, then applies it in memory.
    pub async fn set(&self, queue: &dyn Queue, customer: CustomerRef, blocked: bool) -> Result<(), QueueError> {
        queue.set_blocked(&customer, blocked).await?;
        let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
        if blocked {
            set.insert(customer);
        } else {
            set.remove(&customer);
        }
        Ok(())
    }
}
