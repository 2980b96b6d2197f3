//! The steps every webhook goes through, in one function that the server and the tests share.
//!
//! `GET` is a subscription handshake ([`Adapter::handshake`]); `POST` is verified on its raw
//! bytes ([`Adapter::verify`]) and only then parsed ([`Adapter::parse`]); any other method is
//! refused. The server caps and buffers the body before calling [`receive`]; it never parses a
//! body itself.

use http::Method;

use crate::{Adapter, Inbound, WebhookError, WebhookRequest};

/// Whether a request with this method carries a body that [`receive`] will read (only `POST`).
/// The server buffers the body only for these; others are answered from the method alone.
pub fn takes_body(method: &Method) -> bool {
    method == Method::POST
}

/// Runs one webhook request through handshake, or verification then parsing.
///
/// A handshake yields an [`Inbound`] with no events and the handshake's reply.
pub fn receive(adapter: &dyn Adapter, request: &WebhookRequest<'_>) -> Result<Inbound, WebhookError> {
    match *request.method {
        Method::GET => adapter.handshake(request).map(|reply| Inbound { events: Vec::new(), reply }),
        Method::POST => {
            adapter.verify(request)?;
            adapter.parse(request)
        }
        _ => Err(WebhookError::MethodNotAllowed),
    }
}
