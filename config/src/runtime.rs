//! The `[runtime]` section: the durable actor runtime.

use serde::{Deserialize, Serialize};

/// The durable actor runtime: how workers take, run and retry work.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Entries taken from the mailbox per receive.
    pub batch_size: u32,
    /// Jobs running at once in one process.
    pub concurrency: u32,
    /// Jobs of one tenant running at once in one process.
    pub tenant_concurrency: u32,
    /// An entry unacknowledged this long is taken over from its (presumed dead)
    /// consumer. Must exceed the slowest legitimate handler; running entries are kept
    /// alive by heartbeats, so it bounds only how long a crash goes unnoticed.
    pub min_idle_ms: u64,
    /// Deliveries (crashed or stalled runs) after which an entry is dead-lettered.
    pub max_deliveries: u32,
    /// Handler attempts (failures and panics) after which a job fails.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter, up to the maximum.
    pub retry_min_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    /// A tenant supervisor with no work for this long is stopped.
    pub tenant_idle_secs: u64,
    /// Restart intensity: more panics than this within `restart_within_secs`
    /// quarantine the tenant's actor.
    pub restart_max: u32,
    pub restart_within_secs: u64,
    /// How long a quarantine lasts before the actor takes work again.
    pub quarantine_secs: u64,
    /// How often idle loops (receive, outbox relay) look for work.
    pub poll_interval_ms: u64,
    /// Seconds in-flight jobs get to finish on shutdown; the rest is left to other
    /// processes.
    pub shutdown_timeout_secs: u64,
    /// How long the consumer-name lease lasts without renewal (renewed every 5 s). A
    /// process whose held deliveries' heartbeat has failed this long (a partition, a
    /// stalled link) stops acting and exits: others have taken its deliveries over.
    pub lease_secs: u64,
    /// This process's consumer name; generated (`<host>-<pid>-<random>`) when unset. A
    /// stable name lets a restarted process drain its own unacknowledged entries first;
    /// a name held by a live process is refused.
    pub consumer_name: Option<String>,
    /// Whether `stella serve` runs workers for every role besides the API (`false`: an
    /// API-only process, with the work left to `stella worker`s).
    pub in_serve: bool,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            // A delivery's latency is a few round trips (receive, commit, acknowledge),
            // so throughput is about `concurrency / latency`: hold enough deliveries to
            // keep the backends busy. A held delivery costs a few hundred bytes; a
            // tenant may use an eighth of the process, so eight busy tenants share it.
            batch_size: 256,
            concurrency: 512,
            tenant_concurrency: 64,
            min_idle_ms: 30_000,
            max_deliveries: 5,
            max_attempts: 5,
            retry_min_delay_ms: 2_000,
            retry_max_delay_ms: 300_000,
            tenant_idle_secs: 60,
            restart_max: 5,
            restart_within_secs: 10,
            quarantine_secs: 300,
            poll_interval_ms: 20,
            shutdown_timeout_secs: 5,
            lease_secs: 30,
            consumer_name: None,
            in_serve: true,
        }
    }
}
