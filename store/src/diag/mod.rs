//! Diagnostics: code that measures the store rather than being part of it: `stella
//! bench` and the diagnostic `noop` job kind use it, no production kind does. (The
//! `noop` kind's staged effect is written with the other effect families in
//! `repo/effects.rs`, since the batch statement must name every family's table.)
//!
//! - [`bench`](mod@bench): raw-SQL baselines, so a benchmark reports the store against what the
//!   same tables do with none of its guarantees;
//! - [`noop`]: the `noop` job kind's records (its effect and its executions), which the
//!   crash tests and `stella diag noop` count.

pub mod bench;
pub mod noop;
