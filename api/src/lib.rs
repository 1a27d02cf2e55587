//! Stella's HTTP server: liveness, readiness and metrics today; the admin API hangs here
//! as it lands.
//!
//! This crate knows how to answer requests, not how to build the services it answers
//! about: the composition root (`stella` binary) connects the store, object store and
//! mailbox and hands them over in a [`Context`].
//!
//! Layout:
//! - `health`: `GET /healthz` (process up) and `GET /readyz` (dependencies reachable);
//! - `metrics`: `GET /metrics` in Prometheus text format;
//! - [`Context`], [`configure`]: what handlers share and how routes are mounted.

mod health;
mod metrics;

use std::sync::Arc;
use std::time::Instant;

use actix_web::web;
use stella_store::mailbox::Mailbox;
use stella_store::object::Objects;
use stella_store::Store;

pub use metrics::Metrics;

/// What every handler can use.
#[derive(Debug, Clone)]
pub struct Context {
    pub store: Store,
    pub objects: Objects,
    pub mailbox: Arc<dyn Mailbox>,
    pub metrics: Arc<Metrics>,
    pub started_at: Instant,
}

/// Mounts every route.
pub fn configure(context: Context) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(context.clone()))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(metrics::metrics));
    }
}
