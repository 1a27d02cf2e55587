//! Stella's roles and job kinds: what the pipeline does, on top of the generic runtime in
//! `stella-supervisor`. Each kind is a folder: `mod.rs` holds the kind with its typed
//! parameters and its step enum (and, while they are short, its steps); a kind that
//! grows gives its steps, its use cases for the API and its caches files of their own,
//! as `scan/` does (`steps.rs`, `intake.rs`, `cache.rs`). The pure work is in
//! `stella-domain`.
//!
//! Not here: the supervision tree and the durable runtime (`stella-supervisor`), HTTP
//! (`stella-api`), cron and drift (`stella-scheduler`).
//!
//! Layout:
//! - [`kinds`]: every job kind a Stella process runs, registered in one place;
//! - [`roles`]: the pipeline's roles ([`Role`], [`ROLES`]);
//! - [`scan`]: the `scan` kind (analyze → evaluate → seal), its intake and caches;
//! - [`advisory_sync`]: the `advisory-sync` kind and advisory imports;
//! - [`diag`]: the diagnostic `noop` kind;
//! - [`export`]: the `export` kind (profiles, runs) in every format: findings documents,
//!   reports, evidence bundles and the mirror bundles of advisories and VEX;
//! - [`mirror`]: importing a mirror bundle on another instance (not a kind: a use case
//!   an administrator runs against the store);
//! - [`notify`]: the `notify` kind (dispatch, deliveries, digests) and its wire;
//! - [`rollout`]: the `rollout` kind (a tenant's shadow evaluation in a pack rollout) and
//!   shadow diffs;
//! - [`outbound`]: the guard every URL fetched on someone's behalf goes through.

pub mod advisory_sync;
pub mod diag;
pub mod export;
pub mod mirror;
pub mod notify;
pub mod outbound;
pub mod roles;
pub mod rollout;
pub mod scan;

pub use roles::{Role, ROLES};

use stella_supervisor::Registry;

/// What the kinds of a full Stella process need.
#[derive(Debug, Clone)]
pub struct KindDeps {
    pub scan: scan::ScanDeps,
    pub outbound: outbound::Outbound,
    /// The exporter's metrics (register them with the process's registry).
    pub export_metrics: export::ExportMetrics,
    /// The operator's named export destinations (`[export.destinations]`).
    pub export_destinations: export::Destinations,
    /// The notifier's wire, secrets and metrics.
    pub notify: notify::NotifyDeps,
    /// Shadow evaluations' metrics (register them with the process's registry).
    pub shadow_metrics: rollout::ShadowMetrics,
}

/// Every job kind a Stella process runs: `noop`, `advisory-sync`, `scan`, `export`,
/// `notify` and `rollout`.
pub fn kinds(deps: &KindDeps) -> Registry {
    let mut registry = diagnostics();
    registry
        .register(advisory_sync::AdvisorySync::new(
            deps.scan.objects.clone(),
            deps.outbound.clone(),
        ))
        .register(scan::Scan::new(deps.scan.clone()))
        .register(export::Export::new(export::ExportDeps {
            objects: deps.scan.objects.clone(),
            signing_key: deps.scan.signing_key.clone(),
            metrics: deps.export_metrics.clone(),
            destinations: deps.export_destinations.clone(),
        }))
        .register(notify::Notify::new(deps.notify.clone()))
        .register(rollout::Rollout::new(
            deps.scan.clone(),
            deps.shadow_metrics.clone(),
        ));
    registry
}

/// The kinds that need nothing but the store (`noop`), for runtime tests and benchmarks.
pub fn diagnostics() -> Registry {
    let mut registry = Registry::default();
    registry.register(diag::Noop);
    registry
}
