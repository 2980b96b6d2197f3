//! The block list: customers the core has blocked, per channel and account.

use chatgate_model::CustomerRef;
use rusqlite::{Connection, params};

use super::pipeline::Writer;
use crate::types::QueueError;

/// Blocks or unblocks one customer.
#[derive(Debug)]
pub(super) struct Block {
    pub(super) customer: CustomerRef,
    pub(super) blocked: bool,
}

impl Writer {
    pub(super) fn block(&mut self, change: &Block) -> Result<(), QueueError> {
        let sql = if change.blocked {
            "INSERT OR IGNORE INTO blocks (channel, account, customer_id) VALUES (?1, ?2, ?3)"
        } else {
            "DELETE FROM blocks WHERE channel = ?1 AND account = ?2 AND customer_id = ?3"
        };
        let c = &change.customer;
        self.conn.prepare_cached(sql)?.execute(params![c.channel.as_str(), c.account, c.customer_id])?;
        Ok(())
    }
}

/// Every blocked customer; rows whose channel is not a valid name are skipped.
pub(super) fn blocked(conn: &Connection) -> Result<Vec<CustomerRef>, QueueError> {
    let mut stmt = conn.prepare_cached("SELECT channel, account, customer_id FROM blocks")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (channel, account, customer) = row?;
        if let Ok(channel) = channel.parse() {
            out.push(CustomerRef::new(channel, account, customer));
        }
    }
    Ok(out)
}
