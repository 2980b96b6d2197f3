//! Facebook Messenger and Instagram channels (Meta Graph webhooks and Send API). (being written).
