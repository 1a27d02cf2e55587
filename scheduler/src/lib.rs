//! Stella's scheduler: per-tenant cron schedules, advisory-drift re-evaluation and rollout
//! timers, with one leader across processes.
//!
//! Not yet built: this crate lands with the scheduler issue.
