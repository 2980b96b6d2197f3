//! The demo at `/`: a host page with the widget of the first web account and a small operator
//! console (it asks for the API token, reads `/v1/events`, answers with `/v1/messages`). The
//! files are `crates/server/assets/`, embedded in the binary, served with a strict CSP.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Shared;

/// The CSP of our own pages: only our own scripts, styles, images and connections; no inline code.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../assets/index.html");
const CONSOLE_JS: &str = include_str!("../../assets/console.js");
const CONSOLE_CSS: &str = include_str!("../../assets/console.css");
const DEMO_CSS: &str = include_str!("../../assets/demo.css");

fn page(body: String, mime: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Text safe inside HTML text and attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /`: the demo page with the first web account's snippet, id and public URL filled in.
pub(crate) async fn index(State(shared): State<Arc<Shared>>) -> Response {
    let web = shared.accounts.iter().find_map(|a| a.adapter.visitors().map(|v| (a.adapter.account(), v)));
    let (snippet, account, public_url) = match web {
        Some((account, v)) => (v.snippet(), account.to_owned(), v.public_url().to_owned()),
        None => (String::new(), String::new(), String::new()),
    };
    let html = INDEX
        .replace("{{snippet}}", &escape_html(&snippet))
        .replace("{{account}}", &escape_html(&account))
        .replace("{{public_url}}", &escape_html(&public_url));
    page(html, "text/html; charset=utf-8")
}

pub(crate) async fn console_js() -> Response {
    page(CONSOLE_JS.to_owned(), "text/javascript; charset=utf-8")
}

pub(crate) async fn console_css() -> Response {
    page(CONSOLE_CSS.to_owned(), "text/css; charset=utf-8")
}

pub(crate) async fn demo_css() -> Response {
    page(DEMO_CSS.to_owned(), "text/css; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::escape_html;

    #[test]
    fn the_snippet_is_shown_as_text() {
        assert_eq!(
            escape_html("<script src=\"x\" async></script>'&"),
            "&lt;script src=&quot;x&quot; async&gt;&lt;/script&gt;&#39;&amp;"
        );
    }
}
