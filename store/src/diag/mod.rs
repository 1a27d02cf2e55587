//! Diagnostics: code that measures the store rather than being part of it. Nothing on
//! the production path calls into this module; `stella bench` does.
//!
//! - [`bench`](mod@bench): raw-SQL baselines, so a benchmark reports the store against what the
//!   same tables do with none of its guarantees.

pub mod bench;
