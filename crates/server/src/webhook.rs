//! `/webhooks/{channel}/{account}`: authenticate on the raw bytes, parse, store durably, answer.
//!
//! The provider gets 2xx only after the events are committed; anything else makes it retry.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatgate_adapter::{Reply, WebhookError, WebhookRequest};
use chatgate_model::{Channel, CustomerRef, EventKind};
use chatgate_queue::InboundRecord;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::Shared;
use crate::error::WebhookRejection;
use crate::metrics::Counters;

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

    let mut records = Vec::with_capacity(inbound.events.len());
    let mut blocked = 0;
    let mut unsupported = 0;
    let any_blocked = shared.blocks.any();
    for item in inbound.events {
        let customer = item.event.customer.as_ref().map(|c| c.id.as_str());
        let is_blocked = |id: &str| shared.blocks.is_blocked(&CustomerRef::new(channel, account.as_str(), id));
        if any_blocked && item.event.kind != EventKind::Status && customer.is_some_and(is_blocked) {
            blocked += 1;
            tracing::info!(%channel, %account, customer = customer.unwrap_or_default(), kind = ?item.event.kind, "inbound from a blocked customer not forwarded");
            continue;
        }
        if item.event.kind == EventKind::Unsupported {
            unsupported += 1;
        }
        records.push(InboundRecord { dedup_key: item.dedup_key, event: item.event });
    }
    Counters::add(&counters.inbound_blocked, blocked);
    Counters::add(&counters.inbound_unsupported, unsupported);

    match shared.queue.append_inbound(records).await {
        Ok(outcome) => {
            Counters::add(&counters.webhooks_accepted, 1);
            Counters::add(&counters.events_stored, outcome.seqs.len() as u64);
            Counters::add(&counters.inbound_duplicates, outcome.duplicates as u64);
            reply_response(inbound.reply)
        }
        Err(e) => {
            tracing::error!(%channel, %account, error = %e, "could not store webhook events; the provider will retry");
            WebhookRejection::NotStored.into_response()
        }
    }
}

fn reply_response(reply: Reply) -> Response {
    match reply {
        Reply::Empty => StatusCode::OK.into_response(),
        Reply::Text(text) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
    }
}
