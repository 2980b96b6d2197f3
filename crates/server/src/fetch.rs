//! Downloads of outbound attachments: streamed, capped at the channel's limit, and refused
//! for loopback, private, link-local and other internal addresses — checked after DNS
//! resolution and again on every redirect — unless the configured allowlist permits them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Most redirects one download follows.
const MAX_REDIRECTS: usize = 5;

/// An address range, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The text was not an address or range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR range")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().map_err(|_| err())?, Some(p.parse::<u8>().map_err(|_| err())?)),
            None => (s.parse::<IpAddr>().map_err(|_| err())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(err());
        }
        Ok(Cidr { addr, prefix })
    }
}

/// Which internal addresses downloads may reach. Public addresses are always allowed.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    pub allow: Vec<Cidr>,
}

impl FetchPolicy {
    /// Whether a download may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private, link-local, shared, unspecified, broadcast, multicast and documentation ranges.
pub fn is_internal(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || ip.to_ipv4().is_some_and(|v4| ip.segments()[..6] == [0; 6] && is_internal_v4(v4)) // IPv4-compatible
}

/// Why a download failed. `is_transient` says whether a retry may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("attachment URL is not allowed: {0}")]
    Forbidden(String),
    #[error("attachment is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("attachment URL answered {0}")]
    Status(u16),
    #[error("attachment download failed: {0}")]
    Network(String),
}

impl FetchError {
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Network(_) => true,
            FetchError::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            FetchError::Forbidden(_) | FetchError::TooLarge { .. } => false,
        }
    }
}

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub mime: Option<String>,
    /// The last path segment of the final URL, when there is one.
    pub file_name: Option<String>,
}

/// The guarded HTTP client for attachment downloads.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

#[derive(Debug)]
struct GuardedResolver {
    policy: Arc<FetchPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| policy.permits(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves only to addresses that are not allowed").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Fetcher {
        let policy = Arc::new(policy);
        let redirect_policy = {
            let policy = policy.clone();
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error("too many redirects");
                }
                match check_url(attempt.url(), &policy) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(e),
                }
            })
        };
        let client = reqwest::Client::builder()
            .no_proxy() // a proxy would resolve names itself, around the guard
            .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }))
            .redirect(redirect_policy)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent("chatgate")
            .build()
            .expect("the TLS backend initialises");
        Fetcher { client, policy }
    }

    /// Downloads `url`, failing as soon as more than `limit` bytes arrive.
    pub async fn fetch(&self, url: &str, limit: u64) -> Result<Fetched, FetchError> {
        let parsed = url::Url::parse(url).map_err(|e| FetchError::Forbidden(format!("invalid URL: {e}")))?;
        check_url(&parsed, &self.policy).map_err(FetchError::Forbidden)?;
        let response = self.client.get(parsed).send().await.map_err(describe)?;
        let status = response.status();
        // A redirect reqwest did not follow: its target is no http(s) URL (`file://`, `ftp://`, ...).
        if status.is_redirection()
            && let Some(target) = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok())
        {
            let target = response.url().join(target).map_err(|e| FetchError::Forbidden(format!("redirect: {e}")))?;
            check_url(&target, &self.policy).map_err(|e| FetchError::Forbidden(format!("redirect: {e}")))?;
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let file_name =
            response.url().path_segments().and_then(|mut s| s.next_back().map(str::to_owned)).filter(|s| !s.is_empty());
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(describe)?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes: body.freeze(), mime, file_name })
    }
}

/// Scheme and IP-literal checks; host names are checked by the resolver.
fn check_url(url: &url::Url, policy: &FetchPolicy) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not allowed", url.scheme()));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(d)) => match d.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) if d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost") => {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
            Err(_) => return Ok(()),
        },
        None => return Err("the URL has no host".into()),
    };
    if policy.permits(ip) { Ok(()) } else { Err(format!("address {ip} is internal")) }
}

fn describe(e: reqwest::Error) -> FetchError {
    // The whole source chain, URL stripped: the resolver's and redirect policy's refusals are inside.
    let text = chatgate_adapter::transport::describe(e);
    if text.contains("not allowed") || text.contains("is internal") || text.contains("too many redirects") {
        FetchError::Forbidden(text)
    } else {
        FetchError::Network(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} should be internal");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn allowlist_opens_exactly_its_range() {
        let policy = FetchPolicy { allow: vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()] };
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(!policy.permits("127.0.0.2".parse().unwrap()));
        assert!(policy.permits("10.200.0.1".parse().unwrap()));
        assert!(!policy.permits("192.168.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn urls_with_internal_literals_are_refused() {
        let policy = FetchPolicy::default();
        for url in [
            "http://127.0.0.1/x",
            "http://[::1]/x",
            "http://localhost:8080/",
            "http://169.254.169.254/latest",
            "file:///etc/passwd",
            "http://2130706433/",
        ] {
            assert!(check_url(&url::Url::parse(url).unwrap(), &policy).is_err(), "{url}");
        }
        assert!(check_url(&url::Url::parse("https://example.com/a.png").unwrap(), &policy).is_ok());
    }
}
