//! `/webhooks/{channel}/{account}`: authenticate on the raw bytes, parse, store durably, answer.
//!
//! The provider gets 2xx only after the events are committed; anything else makes it retry.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatgate_adapter::{InboundEvent, Reply, WebhookError, WebhookRequest};
use chatgate_model::{Channel, CustomerRef, EventKind};
use chatgate_queue::InboundRecord;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::WebhookRejection;
use crate::metrics::Counters;
use crate::{Account, Shared};

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((channel, account)): Path<(String, String)>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(entry) = channel.parse::<Channel>().ok().and_then(|c| shared.accounts.get(c, &account)) else {
        return WebhookRejection::UnknownAccount.into_response();
    };
    let adapter = entry.adapter.as_ref();
    let channel = adapter.channel();
    let counters = &entry.counters;

    if !chatgate_adapter::webhook::takes_body(&method) {
        let request = WebhookRequest { method: &method, headers: &headers, query: query.as_deref(), body: &[] };
        return match chatgate_adapter::webhook::receive(adapter, &request) {
            Ok(inbound) => reply_response(inbound.reply),
            Err(e) => {
                tracing::warn!(%channel, %account, %method, error = %e, "webhook refused before reading a body");
                WebhookRejection::Refused(e).into_response()
            }
        };
    }

    // The store is saturated: answer 503 before reading and verifying the body. The webhook
    // would almost surely be refused after that work too (see the admission below), and under
    // overload that work is what the CPU is short of.
    if shared.admission.available_permits() == 0 {
        return shed(counters, channel, &account);
    }

    let limit = adapter.facts().max_body_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        Counters::add(&counters.rejected_too_large, 1);
        return WebhookRejection::TooLarge.into_response();
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Counters::add(&counters.rejected_too_large, 1);
            return WebhookRejection::TooLarge.into_response();
        }
        Err(_) => return WebhookRejection::UnreadableBody.into_response(),
    };

    let request = WebhookRequest { method: &method, headers: &headers, query: query.as_deref(), body: &bytes };
    let inbound = match chatgate_adapter::webhook::receive(adapter, &request) {
        Ok(inbound) => inbound,
        Err(e @ (WebhookError::MissingSignature | WebhookError::BadSignature)) => {
            tracing::warn!(%channel, %account, error = %e, "webhook authentication failed; nothing stored");
            Counters::add(&counters.rejected_unauthenticated, 1);
            return WebhookRejection::Refused(e).into_response();
        }
        Err(e) => {
            tracing::warn!(%channel, %account, error = %e, "authentic webhook could not be read; nothing stored");
            Counters::add(&counters.rejected_malformed, 1);
            return WebhookRejection::Refused(e).into_response();
        }
    };

    if let Some(recorder) = &shared.recorder {
        recorder.record(channel, &account, &headers, &bytes);
    }

    let mut records = Vec::with_capacity(inbound.events.len());
    let any_blocked = shared.blocks.any();
    let mut settles = Vec::new();
    for (owner, events) in route(&shared, entry, &request, inbound.events) {
        let mut settle = crate::rich::Settle::default();
        let account = owner.adapter.account();
        let mut blocked = 0;
        let mut unsupported = 0;
        for item in events {
            let customer = item.event.customer.as_ref().map(|c| c.id.as_str());
            let is_blocked = |id: &str| shared.blocks.is_blocked(&CustomerRef::new(channel, account, id));
            if any_blocked && item.event.kind != EventKind::Status && customer.is_some_and(is_blocked) {
                blocked += 1;
                tracing::info!(%channel, %account, customer = customer.unwrap_or_default(), kind = ?item.event.kind, "inbound from a blocked customer not forwarded");
                continue;
            }
            if item.event.kind == EventKind::Unsupported {
                unsupported += 1;
            }
            let item = shared.rich.inbound(item, &mut settle);
            records.push(InboundRecord { dedup_key: item.dedup_key, event: item.event });
        }
        settles.push((owner.adapter.clone(), settle));
        Counters::add(&owner.counters.inbound_blocked, blocked);
        Counters::add(&owner.counters.inbound_unsupported, unsupported);
    }

    // Bounded waiting for the store: past the bound the provider is told to come back, at once,
    // rather than the queue of waiting webhooks (and their latency and memory) growing without
    // limit. Nothing is stored for a refused webhook; its provider retries a 503.
    let Ok(_admitted) = shared.admission.try_acquire() else {
        return shed(counters, channel, &account);
    };
    let committing = std::time::Instant::now();
    match shared.queue.append_inbound(records).await {
        Ok(outcome) => {
            shared.metrics.committed(channel, committing.elapsed());
            Counters::add(&counters.webhooks_accepted, 1);
            Counters::add(&counters.events_stored, outcome.seqs.len() as u64);
            Counters::add(&counters.inbound_duplicates, outcome.duplicates as u64);
            for (adapter, settle) in settles {
                shared.rich.settled(Some(&adapter), settle);
            }
            reply_response(inbound.reply)
        }
        Err(e) => {
            tracing::error!(%channel, %account, error = %e, "could not store webhook events; the provider will retry");
            WebhookRejection::NotStored.into_response()
        }
    }
}

/// Splits a webhook's events by the account they belong to ([`InboundEvent::owner`]).
///
/// Meta posts the items of every Page, Instagram account and WhatsApp number of one app to the
/// app's single callback URL, so the account a body arrived on may not own all of it. Items it
/// owns (or that name no owner) stay with it. Items of another account go to the account of the
/// same channel whose [`chatgate_adapter::Adapter::owner_id`] they name, and only if that account
/// verifies the same signed body (it shares the app secret); it parses the body itself, so its
/// events carry its account id and its media references. Items of no such account are logged,
/// counted (`inbound_unrouted_total` of the receiving account) and dropped: the provider gets its
/// 200 and never retries them, and no account answers another account's customers.
fn route<'a>(
    shared: &'a Shared,
    receiver: &'a Account,
    request: &WebhookRequest<'_>,
    events: Vec<InboundEvent>,
) -> Vec<(&'a Account, Vec<InboundEvent>)> {
    let adapter = receiver.adapter.as_ref();
    // Most webhooks (every channel without owner ids, and Meta bodies of one account) stay whole.
    let Some(id) = adapter.owner_id() else { return vec![(receiver, events)] };
    if events.iter().all(|e| e.owner.as_deref().is_none_or(|o| o == id)) {
        return vec![(receiver, events)];
    }
    let mut own = Vec::with_capacity(events.len());
    let mut foreign: BTreeMap<String, u64> = BTreeMap::new();
    for item in events {
        match item.owner.as_deref() {
            Some(owner) if owner != id => *foreign.entry(owner.to_owned()).or_default() += 1,
            _ => own.push(item),
        }
    }
    let mut groups = vec![(receiver, own)];
    let (channel, account) = (adapter.channel(), adapter.account());
    for (owner, items) in foreign {
        let target = shared.accounts.owned_by(channel, &owner).find(|a| a.adapter.verify(request).is_ok());
        let parsed = target.and_then(|a| Some((a, a.adapter.parse(request).ok()?)));
        match parsed {
            Some((target, inbound)) => {
                tracing::debug!(%channel, %account, %owner, to = target.adapter.account(), items, "webhook items routed to their account");
                let events =
                    inbound.events.into_iter().filter(|e| e.owner.as_deref() == Some(owner.as_str())).collect();
                groups.push((target, events));
            }
            None => {
                tracing::warn!(%channel, %account, %owner, items, "webhook items of an account not served here (or under another app secret) dropped");
                Counters::add(&receiver.counters.inbound_unrouted, items);
            }
        }
    }
    groups
}

/// 503 `overloaded`: too many webhooks wait for the store (see `Settings::max_pending_webhooks`).
/// Nothing is stored; the provider retries.
fn shed(counters: &Counters, channel: Channel, account: &str) -> Response {
    Counters::add(&counters.rejected_overloaded, 1);
    tracing::debug!(%channel, %account, "webhook refused: too many waiting for the store");
    WebhookRejection::Overloaded.into_response()
}

fn reply_response(reply: Reply) -> Response {
    match reply {
        Reply::Empty => StatusCode::OK.into_response(),
        Reply::Text(text) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
    }
}
