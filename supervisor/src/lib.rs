//! Supervision for Stella's actors: panic boundaries around handler work, exponential
//! restart back-off with a restart-intensity limit, and quarantine instead of restart loops.
//!
//! Not yet built: this crate lands with the durable-runtime issue. It sits between
//! `actors` and `store` in the dependency chain (see docs/ARCHITECTURE.md).
