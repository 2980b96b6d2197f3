//! The accounts served, by channel and account id.

use std::collections::HashMap;
use std::sync::Arc;

use chatgate_adapter::Adapter;
use chatgate_model::limits::LimitOverrides;
use chatgate_model::{Channel, Limits};

use crate::metrics::Counters;

/// One configured account: its adapter and its effective limits.
#[derive(Clone)]
pub struct Account {
    pub adapter: Arc<dyn Adapter>,
    /// The adapter's defaults with the config overrides applied.
    pub limits: Limits,
    /// What happened on this account, for `/metrics`.
    pub counters: Arc<Counters>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("channel", &self.adapter.channel())
            .field("account", &self.adapter.account())
            .field("limits", &self.limits)
            .finish()
    }
}

/// Every account, looked up by channel and id.
#[derive(Debug, Default)]
pub struct Accounts {
    by_channel: HashMap<Channel, HashMap<String, Account>>,
}

impl Accounts {
    pub fn new(adapters: Vec<(Arc<dyn Adapter>, LimitOverrides)>) -> Accounts {
        let mut by_channel: HashMap<Channel, HashMap<String, Account>> = HashMap::new();
        for (adapter, overrides) in adapters {
            let limits = adapter.facts().limits.with_overrides(&overrides);
            by_channel
                .entry(adapter.channel())
                .or_default()
                .insert(adapter.account().to_owned(), Account { adapter, limits, counters: Arc::default() });
        }
        Accounts { by_channel }
    }

    pub fn get(&self, channel: Channel, account: &str) -> Option<&Account> {
        self.by_channel.get(&channel)?.get(account)
    }

    /// Whether any account of this channel is configured.
    pub fn has_channel(&self, channel: Channel) -> bool {
        self.by_channel.contains_key(&channel)
    }

    /// The accounts of `channel` whose provider id ([`Adapter::owner_id`]) is `owner`.
    pub fn owned_by<'a, 'o>(
        &'a self,
        channel: Channel,
        owner: &'o str,
    ) -> impl Iterator<Item = &'a Account> + use<'a, 'o> {
        self.by_channel
            .get(&channel)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(move |a| a.adapter.owner_id() == Some(owner))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.by_channel.values().flat_map(|m| m.values())
    }
}
