//! The `[outbound]` section: the guard on URLs Stella fetches.

use serde::{Deserialize, Serialize};

/// URLs Stella fetches on someone's behalf (advisory sources today, webhooks later): every
/// such fetch goes through one guard with these limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSettings {
    /// Comma-separated host names or IP addresses that may be fetched from even though
    /// they are (or resolve to) loopback, private, link-local or other internal
    /// addresses, on any port. Empty: only public addresses.
    pub allow_hosts: String,
    /// Seconds to wait for a TCP (and TLS) connection.
    pub connect_timeout_secs: u64,
    /// Seconds one fetch may take in all, body included.
    pub timeout_secs: u64,
    /// Largest body accepted from one URL.
    pub max_bytes: u64,
    /// Redirects followed per fetch (each one checked like the first URL).
    pub max_redirects: u32,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            allow_hosts: String::new(),
            connect_timeout_secs: 5,
            timeout_secs: 120,
            max_bytes: 512 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

impl OutboundSettings {
    /// The allow-listed hosts, lowercased, without empty entries.
    pub fn allowed_hosts(&self) -> Vec<String> {
        self.allow_hosts
            .split(',')
            .map(|h| {
                h.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .filter(|h| !h.is_empty())
            .collect()
    }
}
