//! Stella's scheduler: per-tenant cron schedules, advisory-drift re-evaluation, and one
//! firing per due time across many processes.
//!
//! Layout:
//! - [`cron`]: crontab expressions in an IANA timezone (DST gaps and repeats);
//! - [`spec`]: a schedule's definition and the pure firing decision (missed-fire and
//!   overlap policies, deterministic jitter);
//! - [`diff`]: new, resolved and changed findings between two scans;
//! - [`Scheduler`] (`engine`): the leader's pass — lease, fire, follow events, plan,
//!   track;
//! - `rollouts`: the leader's moves of pack rollouts (shadow jobs, gates, waves, rollback);
//! - [`manage`]: what the API and the CLI do to schedules, runs and targets;
//! - [`clock`]: the clock the loop reads; everything else takes `now` as an argument.

pub mod clock;
pub mod cron;
pub mod diff;
mod engine;
pub mod manage;
mod metrics;
mod rollouts;
pub mod spec;

pub use clock::{AcceleratedClock, Clock, SystemClock};
pub use engine::{Scheduler, SchedulerConfig, TickReport};
pub use metrics::SchedulerMetrics;
