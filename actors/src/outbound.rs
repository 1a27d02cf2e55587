//! The one way Stella fetches a URL on someone's behalf (advisory sources with
//! [`Outbound::download`], notification webhooks with [`Outbound::post`], mirrors later).
//! A URL a user names could point anywhere the server can reach: its own `/metrics`,
//! PostgreSQL's port, a cloud metadata endpoint. The guard:
//!
//! - accepts `http` and `https` only, and no URL that names credentials;
//! - resolves the host itself and connects only to the addresses it checked (so a DNS
//!   answer that changes between check and connect cannot slip through): loopback,
//!   private, link-local, CGNAT, metadata, multicast, documentation and other reserved
//!   ranges are refused unless an administrator allow-listed the host
//!   (`outbound.allow_hosts`);
//! - checks every redirect of a download the same way, up to `outbound.max_redirects`;
//!   a POST follows no redirect at all (a webhook that moved is a configuration to fix,
//!   and re-sending a signed body to wherever a receiver points is not ours to decide),
//!   but its `Location` is still checked so that a redirect into a forbidden range is
//!   reported as [`FetchError::Forbidden`];
//! - bounds the connection time, the whole fetch's time and the body's size, streaming
//!   the body to a temporary file, never into memory (a POST reads at most
//!   [`POST_READ_LIMIT`] bytes of the answer and keeps [`BODY_HEAD_BYTES`] of them);
//! - never ignores the proxy settings by accident: it uses no proxy at all, since a proxy
//!   would resolve names where the guard cannot check them;
//! - answers with errors that say what kind of failure it was, but never echo the remote
//!   body, the port or the operating system's connection error (those made a refused
//!   fetch a port scanner); the details go to the log.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use stella_config::OutboundSettings;

/// Why a fetch did not deliver a body, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL, or an address it resolves or redirects to, is one Stella does not fetch.
    #[error("{0}")]
    Forbidden(String),
    /// The server answered, but not with a body we take: a client error (4xx) or a body
    /// over the size limit. Trying again gives the same answer.
    #[error("{0}")]
    Refused(String),
    /// A network failure, a time-out or a server error (5xx): worth a retry.
    #[error("{0}")]
    Transient(String),
}

/// Resolves host names to addresses. The system resolver in production; tests give a
/// fixed table so that no test ever asks a real name server.
#[async_trait]
pub trait HostResolver: Send + Sync + std::fmt::Debug {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait]
impl HostResolver for SystemResolver {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|addr| addr.ip())
            .collect())
    }
}

/// Why an address is not fetched from, or `None` if it is a public address.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "the unspecified network 0.0.0.0/8",
        (10, _, _) => "the private network 10.0.0.0/8",
        (100, 64..=127, _) => "the shared (CGNAT) network 100.64.0.0/10",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local (and cloud metadata) 169.254.0.0/16",
        (172, 16..=31, _) => "the private network 172.16.0.0/12",
        (192, 0, 0) => "the IETF protocol network 192.0.0.0/24",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation network",
        (192, 88, 99) => "the 6to4 relay network 192.88.99.0/24",
        (192, 168, _) => "the private network 192.168.0.0/16",
        (198, 18..=19, _) => "the benchmarking network 198.18.0.0/15",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "the reserved network 240.0.0.0/4",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4).or(Some("an IPv4-mapped address"));
    }
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "the unspecified address ::",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback",
        // IPv4-compatible (deprecated) addresses reach IPv4 hosts.
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address",
        [0x64, 0xff9b, ..] => "the NAT64 network 64:ff9b::/96",
        [0x100, 0, 0, 0, ..] => "the discard network 100::/64",
        [0x2001, 0xdb8, ..] => "the documentation network 2001:db8::/32",
        [0x2001, 0..=0x1ff, ..] => "the IETF protocol network 2001::/23",
        [0x2002, ..] => "the 6to4 network 2002::/16",
        [x, ..] if x & 0xfe00 == 0xfc00 => "the unique-local network fc00::/7",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local fe80::/10",
        [x, ..] if x & 0xffc0 == 0xfec0 => "the site-local network fec0::/10",
        [x, ..] if x & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// What the guard allows, shared by the resolver and the redirect policy.
#[derive(Debug)]
struct Policy {
    allow_hosts: Vec<String>,
    resolver: Arc<dyn HostResolver>,
}

impl Policy {
    fn allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allow_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
    }

    /// The checks that need no name resolution: scheme, credentials, and a host that is
    /// an IP address (those are connected to without asking the resolver).
    fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Forbidden(format!(
                "only http and https URLs are fetched, not {}:",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::Forbidden(
                "URLs with credentials in them are not fetched".into(),
            ));
        }
        let host = match url.host() {
            None => return Err(FetchError::Forbidden("the URL has no host".into())),
            Some(url::Host::Domain(_)) => return Ok(()),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        };
        if self.allowed(&host.to_string()) {
            return Ok(());
        }
        match forbidden_range(host) {
            Some(range) => Err(FetchError::Forbidden(format!(
                "the address {host} is in {range}, which Stella does not fetch from \
                 (an administrator can allow the host with outbound.allow_hosts)"
            ))),
            None => Ok(()),
        }
    }
}

/// The error the resolver hands to reqwest when every address is forbidden; found again
/// in the error's source chain to report it precisely.
#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

/// Plugs the policy into reqwest's connector: the addresses it returns are the only ones
/// reqwest connects to.
#[derive(Debug)]
struct GuardedResolver(Arc<Policy>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = policy.resolver.resolve(&host).await.map_err(|err| {
                tracing::debug!(%host, error = %err, "outbound name resolution failed");
                Box::new(std::io::Error::other(format!(
                    "the host {host} does not resolve"
                ))) as Box<dyn std::error::Error + Send + Sync>
            })?;
            let allowed = policy.allowed(&host);
            let mut refused = None;
            let addrs: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| match forbidden_range(*ip) {
                    Some(range) if !allowed => {
                        refused.get_or_insert(range);
                        false
                    }
                    _ => true,
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if addrs.is_empty() {
                let why = match refused {
                    Some(range) => format!(
                        "the host {host} resolves only to addresses Stella does not fetch from ({range}; \
                         an administrator can allow the host with outbound.allow_hosts)"
                    ),
                    None => format!("the host {host} resolves to no address"),
                };
                return Err(Box::new(Blocked(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A body fetched to a temporary file (deleted when dropped).
#[derive(Debug)]
pub struct Download {
    pub file: tempfile::NamedTempFile,
    pub len: u64,
}

/// How much of a POST's answer is read (the rest is dropped with the connection).
pub const POST_READ_LIMIT: usize = 4 * 1024;
/// How much of a POST's answer is kept for the receipt.
pub const BODY_HEAD_BYTES: usize = 512;

/// What a receiver answered to a POST, whatever the status: the caller decides what a
/// status means (a delivery is done on 2xx, retried on 429/5xx, failed on other 4xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireResponse {
    pub status: u16,
    /// From sending the request to the answer's headers.
    pub latency: Duration,
    /// The first [`BODY_HEAD_BYTES`] bytes of the answer, as lossy UTF-8.
    pub body_head: String,
    /// The `Retry-After` header as sent (seconds or an HTTP date), if any.
    pub retry_after: Option<String>,
}

impl WireResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The wait `Retry-After` asks for, seen from `now`: delay-seconds or an HTTP date
    /// (a date in the past is no wait). `None` when absent or unreadable.
    pub fn retry_after_delay(&self, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
        let raw = self.retry_after.as_deref()?.trim();
        if let Ok(secs) = raw.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
        Some(
            (at.with_timezone(&chrono::Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// The guarded HTTP client.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    /// The same guard without redirects, for [`Outbound::post`].
    post_client: reqwest::Client,
    policy: Arc<Policy>,
    max_bytes: u64,
}

impl Outbound {
    /// A guard with the settings' limits and the system resolver.
    pub fn new(settings: &OutboundSettings) -> Self {
        Self::with_resolver(settings, Arc::new(SystemResolver))
    }

    pub fn with_resolver(settings: &OutboundSettings, resolver: Arc<dyn HostResolver>) -> Self {
        let policy = Arc::new(Policy {
            allow_hosts: settings.allowed_hosts(),
            resolver,
        });
        let max_redirects = settings.max_redirects as usize;
        let redirect_policy = policy.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                let error = FetchError::Refused(format!(
                    "more than {max_redirects} redirects (outbound.max_redirects)"
                ));
                return attempt.error(error);
            }
            match redirect_policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(err) => attempt.error(err),
            }
        });
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
                .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
                .timeout(Duration::from_secs(settings.timeout_secs))
                .user_agent(concat!("stella/", env!("CARGO_PKG_VERSION")))
        };
        // A failed build would fall back to a client without the guard: impossible with
        // these options (no TLS backend choice, no files), so it is a programming error.
        let client = builder()
            .redirect(redirects)
            .build()
            .unwrap_or_else(|err| unreachable!("the guarded client builds: {err}"));
        let post_client = builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|err| unreachable!("the guarded client builds: {err}"));
        Self {
            client,
            post_client,
            policy,
            max_bytes: settings.max_bytes,
        }
    }

    /// Checks a URL without fetching it (at submission: a bad URL is refused at once).
    pub fn check(&self, raw: &str) -> Result<Url, FetchError> {
        let url = Url::parse(raw)
            .map_err(|err| FetchError::Forbidden(format!("not a valid URL: {err}")))?;
        self.policy.check_url(&url)?;
        Ok(url)
    }

    /// Fetches `raw` with GET into a temporary file in `dir`, within every limit.
    pub async fn download(&self, raw: &str, dir: &std::path::Path) -> Result<Download, FetchError> {
        let url = self.check(raw)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|err| classify(&err, &host, "fetching from"))?;
        let status = response.status();
        if status.is_redirection() {
            // reqwest hands back, unfollowed, a redirect to a scheme it does not speak.
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| response.url().join(v).ok());
            if let Some(next) = location {
                self.policy.check_url(&next)?;
            }
            return Err(FetchError::Refused(format!(
                "{host} answered {status} with a redirect that is not followed"
            )));
        }
        if status.is_client_error() {
            return Err(FetchError::Refused(format!("{host} answered {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Transient(format!("{host} answered {status}")));
        }
        let too_large = || {
            FetchError::Refused(format!(
                "the body from {host} is larger than {} bytes (outbound.max_bytes)",
                self.max_bytes
            ))
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes)
        {
            return Err(too_large());
        }
        let local = |err: std::io::Error| {
            FetchError::Transient(format!(
                "cannot spool the download to a temporary file: {err}"
            ))
        };
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(local)?;
        let mut len = 0u64;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|err| classify(&err, &host, "fetching from"))?;
            let Some(chunk) = chunk else { break };
            len += chunk.len() as u64;
            if len > self.max_bytes {
                return Err(too_large());
            }
            file.write_all(&chunk).map_err(local)?;
        }
        file.flush().map_err(local)?;
        Ok(Download { file, len })
    }

    /// POSTs `body` to `raw` with `headers`, within `timeout` for the whole exchange, and
    /// answers with whatever status the receiver sent. No redirect is followed: a 3xx is
    /// [`FetchError::Forbidden`] when its `Location` is an address the guard refuses
    /// (checked without connecting to it), else [`FetchError::Refused`]. A time-out or a
    /// connection failure is [`FetchError::Transient`]; a bad header is
    /// [`FetchError::Refused`].
    pub async fn post(
        &self,
        raw: &str,
        headers: &[(String, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<WireResponse, FetchError> {
        let url = self.check(raw)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut header_map = reqwest::header::HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                FetchError::Refused(format!("{name:?} is not a valid HTTP header name"))
            })?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                FetchError::Refused(format!("the value of the header {name} is not valid"))
            })?;
            header_map.append(name, value);
        }
        let started = Instant::now();
        let mut response = self
            .post_client
            .post(url)
            .headers(header_map)
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| classify(&err, &host, "posting to"))?;
        let latency = started.elapsed();
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| response.url().join(v).ok());
            if let Some(next) = location {
                self.policy.check_resolved(&next).await?;
            }
            return Err(FetchError::Refused(format!(
                "{host} answered {status}: webhook deliveries follow no redirect \
                 (set the channel's URL to where it points)"
            )));
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut head = Vec::with_capacity(BODY_HEAD_BYTES);
        let mut read = 0usize;
        while read < POST_READ_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    let room = BODY_HEAD_BYTES.saturating_sub(head.len());
                    head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(err) => {
                    // The status is what counts; an answer cut short keeps what came.
                    tracing::debug!(%host, error = %err, "reading a webhook answer failed");
                    break;
                }
            }
        }
        Ok(WireResponse {
            status: status.as_u16(),
            latency,
            body_head: String::from_utf8_lossy(&head).into_owned(),
            retry_after,
        })
    }
}

impl Policy {
    /// [`Policy::check_url`], and for a host name the addresses it resolves to: the check
    /// for a URL that is reported on but not connected to (a redirect a POST does not
    /// follow). A name that does not resolve passes: nothing will connect to it.
    async fn check_resolved(&self, url: &Url) -> Result<(), FetchError> {
        self.check_url(url)?;
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        if self.allowed(host) {
            return Ok(());
        }
        let Ok(ips) = self.resolver.resolve(host).await else {
            return Ok(());
        };
        let refused: Vec<&str> = ips.iter().filter_map(|ip| forbidden_range(*ip)).collect();
        match refused.first() {
            Some(range) if refused.len() == ips.len() => Err(FetchError::Forbidden(format!(
                "the host {host} resolves only to addresses Stella does not fetch from \
                 ({range}; an administrator can allow the host with outbound.allow_hosts)"
            ))),
            _ => Ok(()),
        }
    }
}

/// A reqwest error as a [`FetchError`]: our own refusals (from the resolver or the
/// redirect policy) keep their words; network failures say only what kind they were.
fn classify(err: &reqwest::Error, host: &str, doing: &str) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(fetch) = cause.downcast_ref::<FetchError>() {
            return fetch.clone();
        }
        if let Some(blocked) = cause.downcast_ref::<Blocked>() {
            return FetchError::Forbidden(blocked.0.clone());
        }
        source = cause.source();
    }
    tracing::warn!(%host, error = %err, "outbound fetch failed");
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_redirect() {
        "redirected badly"
    } else {
        "failed"
    };
    FetchError::Transient(format!("{doing} {host} {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or_else(|_| unreachable!("a valid address literal"))
    }

    #[test]
    fn every_internal_range_is_forbidden_and_public_addresses_are_not() {
        for forbidden in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.100.100.200",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2002:7f00:1::",
        ] {
            assert!(forbidden_range(ip(forbidden)).is_some(), "{forbidden}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(forbidden_range(ip(public)), None, "{public}");
        }
    }
}
