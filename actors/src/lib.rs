//! Stella's actors: the root and tenant supervisors, the role actors (fetcher, analyzer,
//! evaluator, sealer, notifier, exporter) and one job actor per job in flight. Actors are
//! thin: they call pure domain code and the store's ports.
//!
//! Not yet built: this crate lands with the durable-runtime issue.
