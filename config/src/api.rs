//! The `[api]` section: limits of the HTTP API.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Largest accepted request body.
    pub max_body_bytes: u64,
    /// Most component entries an uploaded SBOM may list (CycloneDX components, nested
    /// ones included; SPDX packages): bounds a scan's memory and evaluation time.
    pub max_sbom_components: u64,
    /// Largest container image archive `POST /images` accepts (it is streamed to disk,
    /// never held in memory).
    pub max_image_bytes: u64,
    /// Image uploads this process reads at once (each holds a blocking thread while its
    /// body arrives); another is refused with 503 until one ends.
    pub max_concurrent_image_uploads: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Sustained requests per second each tenant may make (0: no limit).
    pub rate_limit_per_second: u64,
    /// Requests a tenant may make at once above the sustained rate.
    pub rate_limit_burst: u64,
    /// Seconds a request body may take to arrive in full (then 408).
    pub body_read_timeout_secs: u64,
    /// Failed authentications per minute one client address may make (0: no limit).
    pub auth_failures_per_minute: u64,
    /// Failed authentications a client address may make at once above that rate.
    pub auth_failure_burst: u64,
    /// Whether tenant tokens may submit the diagnostic `noop` job kind through
    /// `POST /jobs` (administrators always may).
    pub tenant_noop_jobs: bool,
    /// Seconds between heartbeats (`: heartbeat` comments) on an idle event stream.
    pub stream_heartbeat_secs: u64,
    /// Event streams one tenant may hold open at once; another is refused with 429.
    pub max_streams_per_tenant: u64,
    /// Export runs one tenant may have queued or running at once; starting another is
    /// refused with 429 until one ends (0: no limit).
    pub max_export_runs_per_tenant: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 50 * 1024 * 1024,
            max_sbom_components: 200_000,
            max_image_bytes: 8 << 30,
            max_concurrent_image_uploads: 4,
            shutdown_timeout_secs: 5,
            rate_limit_per_second: 50,
            rate_limit_burst: 200,
            body_read_timeout_secs: 30,
            auth_failures_per_minute: 60,
            auth_failure_burst: 20,
            tenant_noop_jobs: false,
            max_export_runs_per_tenant: 4,
            stream_heartbeat_secs: 15,
            max_streams_per_tenant: 32,
        }
    }
}
