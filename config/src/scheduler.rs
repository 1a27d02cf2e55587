//! The `[scheduler]` section.

use serde::{Deserialize, Serialize};

/// The scheduler: cron firings, drift re-evaluation, the leader lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// Whether `stella serve` runs the scheduler (`stella scheduler` always does).
    pub enabled: bool,
    /// How long a leader's lease lasts without renewal: when the leader dies, another
    /// process takes over within this time.
    pub lease_ttl_secs: u64,
    /// How often the scheduler looks for due schedules, new events and ended scans.
    pub poll_interval_ms: u64,
    /// A due time whose fire time passed longer ago than this is *missed* (no scheduler
    /// ran then): the schedule's missed-fire policy decides.
    pub misfire_grace_secs: u64,
    /// The jitter window of a schedule created without `jitter_seconds`.
    pub default_jitter_secs: u64,
    /// Clock speed factor for demos and tests: `60` makes a minute pass in a second.
    /// Only with `clock_origin`, the real instant from which the clock runs faster (so
    /// several processes agree on the time).
    pub clock_speed: u64,
    pub clock_origin: Option<String>,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_ttl_secs: 15,
            poll_interval_ms: 500,
            misfire_grace_secs: 60,
            default_jitter_secs: 60,
            clock_speed: 1,
            clock_origin: None,
        }
    }
}
