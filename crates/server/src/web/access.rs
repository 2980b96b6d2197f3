//! Who may call the visitor routes: the widget's allowed origins (checked on every request and
//! stream; CORS answered for those origins only), rate limits per IP, per visitor and per widget
//! (governor; 429 with `Retry-After`), and the visitor's bearer token.
//!
//! A request without `Origin` is served only when the browser marks it same-origin
//! (`Sec-Fetch-Site: same-origin`, which pages cannot forge) and the gateway's own origin is
//! allowed: browsers leave `Origin` off same-origin `GET`s (the demo page).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatgate_adapter::Rate;
use chatgate_adapter::visitor::{Visitor, VisitorRates, Visitors};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{ApiError, Shared};

/// Entries kept per keyed limiter before idle ones are forgotten.
const PRUNE_AT: usize = 10_000;

/// One widget's rate limiters.
pub(crate) struct Limiters {
    ip: DefaultKeyedRateLimiter<IpAddr>,
    visitor: DefaultKeyedRateLimiter<String>,
    widget: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").finish_non_exhaustive()
    }
}

fn quota(rate: Rate) -> Quota {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(rate.per / count.get()).unwrap_or_else(|| Quota::per_second(count)).allow_burst(count)
}

impl Limiters {
    pub(crate) fn new(rates: VisitorRates) -> Limiters {
        Limiters {
            ip: RateLimiter::keyed(quota(rates.per_ip)),
            visitor: RateLimiter::keyed(quota(rates.per_visitor)),
            widget: RateLimiter::direct(quota(rates.per_widget)),
        }
    }

    fn refused(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> ApiError {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited { retry_after: wait.max(Duration::from_secs(1)) }
    }

    /// Counts a request of this widget from `ip`.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.widget.check().map_err(Limiters::refused)?;
        self.ip.check_key(&ip).map_err(Limiters::refused)?;
        if self.ip.len() > PRUNE_AT {
            self.ip.retain_recent();
        }
        Ok(())
    }

    /// Counts a request of this visitor.
    pub(crate) fn check_visitor(&self, visitor: &str) -> Result<(), ApiError> {
        self.visitor.check_key(&visitor.to_owned()).map_err(Limiters::refused)?;
        if self.visitor.len() > PRUNE_AT {
            self.visitor.retain_recent();
        }
        Ok(())
    }
}

/// The peer address (the server runs with connect info; tests without a socket count as one address).
pub(crate) fn peer(connect: Option<&ConnectInfo<SocketAddr>>) -> IpAddr {
    connect.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// A web account's visitor side, or 404 for any other name.
pub(crate) fn widget<'a>(shared: &'a Shared, account: &str) -> Result<&'a dyn Visitors, ApiError> {
    shared
        .accounts
        .iter()
        .find(|a| a.adapter.account() == account)
        .and_then(|a| a.adapter.visitors())
        .ok_or(ApiError::NotFound("web widget"))
}

/// The request's origin if the widget allows it; `Ok(None)` for an allowed same-origin request.
pub(crate) fn check_origin(visitors: &dyn Visitors, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) if visitors.origin_allowed(origin) => Ok(Some(origin.to_owned())),
        Some(_) => Err(ApiError::OriginNotAllowed),
        None => {
            let same_site = headers.get("sec-fetch-site").is_some_and(|v| v == "same-origin");
            let own = url::Url::parse(visitors.public_url()).map(|u| u.origin().ascii_serialization());
            if same_site && own.is_ok_and(|o| visitors.origin_allowed(&o)) {
                Ok(None)
            } else {
                Err(ApiError::OriginNotAllowed)
            }
        }
    }
}

/// Adds the CORS answer for an allowed origin.
pub(crate) fn cors(mut response: Response, origin: Option<&str>) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    }
    response
}

/// `OPTIONS` on a visitor route: answered for allowed origins only.
pub(crate) async fn preflight(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    Path(params): Path<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let account = params.iter().find(|(k, _)| k == "account").map(|(_, v)| v.as_str()).unwrap_or_default();
    let visitors = match widget(&shared, account) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let origin = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) if visitors.origin_allowed(o) => o.to_owned(),
        _ => return ApiError::OriginNotAllowed.into_response(),
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, last-event-id, x-chatgate-client"),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    cors(response, Some(&origin))
}

/// The visitor of the request's bearer token.
pub(crate) fn visitor(visitors: &dyn Visitors, headers: &HeaderMap) -> Result<Visitor, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(chatgate_adapter::verify::bearer_token)
        .ok_or(ApiError::VisitorTokenInvalid)?;
    visitors.authenticate(token).map_err(ApiError::from)
}
