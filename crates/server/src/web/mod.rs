//! The web channel's visitor side: routes under `/web/{account}/...` (the wire protocol is
//! `crates/channel-web/PROTOCOL.md`), the visitor streams, the file store, and the demo pages at `/`.
//!
//! - `access.rs`: origin check and CORS for the widget's allowed origins only, rate limits (per
//!   IP, per visitor, per widget; 429 with `Retry-After`), visitor authentication.
//! - `routes.rs`: the visitor routes (sessions, messages, uploads, page views, feedback, receipts,
//!   the SSE stream, files, config, avatars, widget assets).
//! - `files.rs`: uploads and operator files on disk (checked by content, per-kind limits).
//! - `pages.rs`: the demo host page and the operator console, with a strict CSP.
//! - this file: [`Web`] (what the handlers share), the [`Hub`] of open streams and the
//!   [`chatgate_adapter::Mailbox`] the web adapters get at start.

mod access;
pub(crate) mod files;
pub(crate) mod pages;
mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::{get, post};
use chatgate_adapter::visitor::{Mailbox, MailboxItem, Posted};
use chatgate_adapter::{Media, SendError};
use chatgate_queue::{Queue, VisitorAppend};
use tokio::sync::watch;

use crate::Shared;
use crate::accounts::Accounts;

pub(crate) use access::Limiters;
pub(crate) use routes::file_response as routes_file_response;

/// What the visitor routes share.
#[derive(Debug)]
pub(crate) struct Web {
    pub hub: Arc<Hub>,
    pub files: files::Files,
    pub limiters: HashMap<String, Limiters>,
}

impl Web {
    /// Attaches a mailbox to every web account and builds their limiters.
    pub(crate) fn start(accounts: &Accounts, queue: Arc<dyn Queue>, files: files::Files) -> Web {
        let hub = Arc::new(Hub::default());
        let mut limiters = HashMap::new();
        for account in accounts.iter() {
            let Some(visitors) = account.adapter.visitors() else { continue };
            let id = account.adapter.account().to_owned();
            if visitors.allows_any_origin() {
                tracing::warn!(account = %id, "allowed_origins = [\"*\"]: any website may embed this widget");
            }
            visitors.attach_mailbox(Arc::new(WebMailbox {
                queue: queue.clone(),
                hub: hub.clone(),
                files: files.clone(),
            }));
            limiters.insert(id, Limiters::new(visitors.rates()));
        }
        Web { hub, files, limiters }
    }
}

/// The routes of the web channel and the demo pages.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(pages::index))
        .route("/console.js", get(pages::console_js))
        .route("/console.css", get(pages::console_css))
        .route("/demo.css", get(pages::demo_css))
        .route("/web/assets/{file}", get(routes::asset))
        .route("/web/{account}/widget.js", get(routes::loader))
        .route("/web/{account}/avatars/{role}", get(routes::avatar))
        .route("/web/{account}/config", get(routes::config).options(access::preflight))
        .route("/web/{account}/sessions", post(routes::session).options(access::preflight))
        .route("/web/{account}/messages", post(routes::message).options(access::preflight))
        .route(
            "/web/{account}/uploads",
            post(routes::upload).options(access::preflight).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/web/{account}/pageviews", post(routes::page_view).options(access::preflight))
        .route("/web/{account}/feedback", post(routes::feedback).options(access::preflight))
        .route("/web/{account}/receipts", post(routes::receipts).options(access::preflight))
        .route("/web/{account}/postbacks", post(routes::postback).options(access::preflight))
        .route("/web/{account}/stream", get(routes::stream).options(access::preflight))
        .route("/web/{account}/files/{reference}", get(routes::file).options(access::preflight))
}

/// One visitor's open streams and the last item posted to them.
#[derive(Debug)]
struct Slot {
    /// (last item n posted, open streams)
    state: watch::Sender<(u64, usize)>,
}

/// The open visitor streams of this process: who is connected, and wake-ups for new items.
#[derive(Debug)]
pub(crate) struct Hub {
    slots: Mutex<HashMap<(String, String), Slot>>,
    /// Set at shutdown: every open stream ends so the server can stop (widgets resume later).
    closing: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub { slots: Mutex::new(HashMap::new()), closing: watch::channel(false).0 }
    }
}

/// An open stream; dropping it counts the stream as closed.
#[derive(Debug)]
pub(crate) struct Connection {
    hub: Arc<Hub>,
    key: (String, String),
    pub(crate) updates: watch::Receiver<(u64, usize)>,
    pub(crate) closing: watch::Receiver<bool>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut slots = self.hub.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(&self.key) {
            slot.state.send_modify(|(_, open)| *open = open.saturating_sub(1));
            // The last stream gone and nobody waiting: forget the visitor.
            if slot.state.borrow().1 == 0 && slot.state.receiver_count() <= 1 {
                slots.remove(&self.key);
            }
        }
    }
}

impl Hub {
    fn slot<'a>(slots: &'a mut HashMap<(String, String), Slot>, key: &(String, String)) -> &'a Slot {
        slots.entry(key.clone()).or_insert_with(|| Slot { state: watch::channel((0, 0)).0 })
    }

    /// Counts a new open stream of the visitor.
    pub(crate) fn connect(self: &Arc<Self>, account: &str, visitor: &str) -> Connection {
        let key = (account.to_owned(), visitor.to_owned());
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = Hub::slot(&mut slots, &key);
        slot.state.send_modify(|(_, open)| *open += 1);
        let updates = slot.state.subscribe();
        drop(slots);
        Connection { hub: self.clone(), key, updates, closing: self.closing.subscribe() }
    }

    /// Wakes the visitor's open streams for item `n`; whether any is open.
    pub(crate) fn notify(&self, account: &str, visitor: &str, n: u64) -> bool {
        let key = (account.to_owned(), visitor.to_owned());
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(&key) {
            Some(slot) => {
                slot.state.send_modify(|(last, _)| *last = (*last).max(n));
                slot.state.borrow().1 > 0
            }
            None => false,
        }
    }

    /// How many visitors have an open stream (for `/metrics` and the benchmark).
    pub(crate) fn open_visitors(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.values().filter(|s| s.state.borrow().1 > 0).count()
    }

    async fn wait_connected(&self, account: &str, visitor: &str, timeout: Duration) -> bool {
        let key = (account.to_owned(), visitor.to_owned());
        let mut rx = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            Hub::slot(&mut slots, &key).state.subscribe()
        };
        let result = matches!(tokio::time::timeout(timeout, rx.wait_for(|(_, open)| *open > 0)).await, Ok(Ok(_)));
        drop(rx);
        // Forget the slot if nobody connected and nobody else waits.
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(&key)
            && slot.state.borrow().1 == 0
            && slot.state.receiver_count() == 0
        {
            slots.remove(&key);
        }
        result
    }

    /// Ends every open stream (shutdown).
    pub(crate) fn close_all(&self) {
        self.closing.send_replace(true);
    }
}

/// The gateway's side of visitor streams, as web adapters see it.
#[derive(Debug)]
struct WebMailbox {
    queue: Arc<dyn Queue>,
    hub: Arc<Hub>,
    files: files::Files,
}

#[async_trait]
impl Mailbox for WebMailbox {
    async fn post(&self, item: MailboxItem) -> Result<Posted, SendError> {
        let append = VisitorAppend {
            account: item.account.clone(),
            visitor: item.visitor.clone(),
            key: Some(item.key),
            kind: item.kind,
            data: item.data.to_string(),
            events: Vec::new(),
        };
        let stored = self.queue.append_visitor(append).await.map_err(|e| SendError::transient(e.to_string()))?;
        let connected = self.hub.notify(&item.account, &item.visitor, stored.item.n);
        Ok(Posted { n: stored.item.n, first_posted_at: stored.item.at, connected })
    }

    async fn store_file(&self, account: &str, visitor: &str, media: &Media) -> Result<String, SendError> {
        let meta = files::FileMeta {
            visitor: visitor.to_owned(),
            name: media.name.clone(),
            mime: media.mime.clone().unwrap_or_else(|| "application/octet-stream".to_owned()),
            kind: media.kind,
            size: media.bytes.len() as u64,
        };
        self.files.store(account, &meta, &media.bytes).await.map_err(|e| SendError::transient(e.to_string()))
    }

    async fn wait_connected(&self, account: &str, visitor: &str, timeout: Duration) -> bool {
        self.hub.wait_connected(account, visitor, timeout).await
    }
}
