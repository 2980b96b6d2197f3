//! The on-disk form of a recorded webhook (`fixtures/<channel>/<name>.body` + `.headers`), shared
//! by `chatgate replay` and the tests.
//!
//! A `.headers` file has one `Name: value` per line; blank lines and `#` comments are skipped; an
//! optional first line `GET ?query` or `POST ?query` sets the method and query (default: `POST`).

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// The request line and headers of a recorded webhook.
#[derive(Debug, Clone)]
pub struct RecordedHead {
    pub method: Method,
    /// The query string without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
}

/// Parses a `.headers` file; the error names the offending line.
pub fn parse_headers(text: &str) -> Result<RecordedHead, String> {
    let mut head = RecordedHead { method: Method::POST, query: None, headers: HeaderMap::new() };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if i == 0 && (line.starts_with("GET") || line.starts_with("POST")) {
            let (method, rest) = line.split_once(' ').unwrap_or((line, ""));
            head.method = method.parse().map_err(|_| format!("line {}: bad method `{method}`", i + 1))?;
            head.query = rest.trim().strip_prefix('?').map(str::to_owned);
            continue;
        }
        let (name, value) =
            line.split_once(':').ok_or_else(|| format!("line {}: `{line}` is not `Name: value`", i + 1))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| format!("line {}: {e}", i + 1))?;
        let value = HeaderValue::from_str(value.trim()).map_err(|e| format!("line {}: {e}", i + 1))?;
        head.headers.append(name, value);
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_method_query_and_headers() {
        let head = parse_headers("GET ?hub.mode=subscribe&x=1\n# comment\nX-A: 1\n\nX-A: 2\n").unwrap();
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.query.as_deref(), Some("hub.mode=subscribe&x=1"));
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        let post = parse_headers("Content-Type: application/json").unwrap();
        assert_eq!((post.method, post.query), (Method::POST, None));
        assert!(parse_headers("X-A 1").unwrap_err().contains("line 1"));
    }
}
