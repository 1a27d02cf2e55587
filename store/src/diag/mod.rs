//! Diagnostics: code that measures the store rather than being part of it. Nothing on
//! the production path calls into this module; `stella bench` and the diagnostic `noop`
//! job kind do.
//!
//! - [`bench`](mod@bench): raw-SQL baselines, so a benchmark reports the store against what the
//!   same tables do with none of its guarantees;
//! - [`noop`]: the `noop` job kind's records (its effect and its executions), which the
//!   crash tests and `stella diag noop` count.

pub mod bench;
pub mod noop;
