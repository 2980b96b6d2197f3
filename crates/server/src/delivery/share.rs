//! Rate shares when several gateway instances send for one account (the NATS backend).
//!
//! A provider's rate limit covers the account, whichever instance sends. Every quarter second
//! each instance announces the accounts it sends for (those with a chat worker here, or sent for since
//! the last announcement) through `Queue::announce_senders`, and learns how many other live
//! instances send for each account. Its limiter for an account then allows the account's rate
//! divided by the instances sending for it (itself counted), so that together they stay within
//! the limit. A limiter whose share changes is rebuilt; its burst is two calls at most
//! (`delivery::quota`), so a change brings no burst worth the name.
//!
//! What this bounds and what it does not:
//! - An instance that starts sending for an account divides by the others at once (it knows them
//!   from its last announcement) and announces itself at once; the others learn of it at their
//!   next announcement, within [`EVERY`]. Until then the account can get up to its rate once more
//!   (two instances: 1.5×), for that quarter second.
//! - An instance that dies keeps its share for up to [`TTL`] (its entry's lifetime): the others
//!   send less than allowed meanwhile, never more.
//! - Shares are equal: an instance with few chats of an account leaves part of its share unused.
//!
//! With one process (SQLite) none of this runs: the share is always the whole rate.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chatgate_model::Channel;

use crate::Shared;

/// How often each instance announces the accounts it sends for and takes in the others' (the
/// store may write only when something changed; see `Queue::announce_senders`).
pub(super) const EVERY: Duration = Duration::from_millis(250);
/// How long an announcement counts without a newer one.
pub(super) const TTL: Duration = Duration::from_secs(3);

type AccountKey = (Channel, String);

/// This instance's view of who else sends for which account.
#[derive(Debug, Default)]
pub(super) struct Shares {
    /// Other live instances sending for each account, from the last announcement.
    others: Mutex<HashMap<AccountKey, u32>>,
    /// Accounts this instance sent for since the last announcement.
    recent: Mutex<HashSet<AccountKey>>,
    /// Accounts in the last announcement.
    announced: Mutex<HashSet<AccountKey>>,
    /// Wakes the announcer early: this instance started sending for an account it had not announced.
    wake: Arc<tokio::sync::Notify>,
}

impl Shares {
    /// How many instances share the account's rate, this one included.
    pub(super) fn of(&self, channel: Channel, account: &str) -> u32 {
        let others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        others.get(&(channel, account.to_owned())).copied().unwrap_or(0) + 1
    }

    /// Notes that this instance is about to send for the account; one it had not announced is
    /// announced at once, so other instances see it at their next announcement.
    pub(super) fn sending(&self, channel: Channel, account: &str) {
        let key = (channel, account.to_owned());
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.contains(&key) {
            return;
        }
        let new = !self.announced.lock().unwrap_or_else(|e| e.into_inner()).contains(&key);
        recent.insert(key);
        if new {
            self.wake.notify_one();
        }
    }
}

/// Every [`EVERY`]: announces this instance's accounts and takes in the others', and the account
/// holds other instances stored (a provider's wait for the whole account, e.g. after a 429). At
/// shutdown the announcement is withdrawn, so the others take the whole rate again at once.
pub(super) fn announce(shared: Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            let Some(shared) = shared.upgrade() else { return };
            if *shared.shutdown.borrow() {
                if let Err(e) = shared.queue.withdraw_senders().await {
                    tracing::warn!(error = %e, "could not withdraw this instance's rate shares");
                }
                return;
            }
            let engine = &shared.delivery;
            let mut accounts: HashSet<AccountKey> =
                std::mem::take(&mut *engine.shares.recent.lock().unwrap_or_else(|e| e.into_inner()));
            accounts.extend(
                engine
                    .chats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .map(|chat| (chat.channel, chat.account.clone())),
            );
            let mut accounts: Vec<AccountKey> = accounts.into_iter().collect();
            accounts.sort();
            let result = shared.queue.announce_senders(&accounts, TTL).await;
            *engine.shares.announced.lock().unwrap_or_else(|e| e.into_inner()) = accounts.into_iter().collect();
            match result {
                Ok(others) => {
                    let mut current = engine.shares.others.lock().unwrap_or_else(|e| e.into_inner());
                    if *current != others {
                        tracing::debug!(?others, "other instances sending for the same accounts changed");
                        *current = others;
                    }
                }
                // The last view stays: a store that cannot answer cannot be sent through either.
                Err(e) => tracing::warn!(error = %e, "could not announce this instance's rate shares"),
            }
            // A provider's wait for a whole account, met by another instance, holds this one too.
            match shared.queue.account_holds().await {
                Ok(holds) => {
                    let now = chrono::Utc::now();
                    for h in holds.into_iter().filter(|h| h.until > now) {
                        engine.hold(h.channel, h.account, h.until);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not reload the account holds"),
            }
            let mut stop = shared.shutdown.subscribe();
            let wake = engine.shares.wake.clone();
            drop(shared);
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = wake.notified() => {}
                _ = stop.wait_for(|stopping| *stopping) => {}
            }
        }
    });
}
