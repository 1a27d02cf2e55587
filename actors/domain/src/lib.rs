//! Stella's scan domain as plain functions and types: no I/O, no actix, no clock (time is
//! an argument). The role actors (fetcher, analyzer, evaluator, sealer) are thin wrappers
//! that call this code and the store's ports; everything here is tested directly.
//!
//! Not here: storage, HTTP, scheduling, anything async.
//!
//! Layout:
//! - [`ecosystem`]: the package ecosystems Stella matches in, and their name rules;
//! - [`error`]: [`InputError`], a rejected document with the JSON pointer of the fault;
//! - [`version`]: version ordering per ecosystem and OSV affected-range evaluation.

pub mod ecosystem;
pub mod error;
pub mod version;

pub use ecosystem::{Ecosystem, PackageKey};
pub use error::InputError;
