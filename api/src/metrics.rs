use actix_web::{web, HttpResponse};
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::Context;

/// The process's Prometheus registry and the metrics this crate owns.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// 1 if the named dependency answered the last readiness check.
    pub dependency_up: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("stella_build_info", "Build of the running stella binary"),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "stella_dependency_up",
                "Whether a dependency answered the last readiness check (1) or not (0)",
            ),
            &["dependency"],
        )?;
        registry.register(Box::new(dependency_up.clone()))?;
        Ok(Self {
            registry,
            dependency_up,
        })
    }
}

pub(crate) async fn metrics(context: web::Data<Context>) -> HttpResponse {
    let mut out = Vec::new();
    match TextEncoder::new().encode(&context.metrics.registry.gather(), &mut out) {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(out),
        Err(err) => HttpResponse::InternalServerError().body(err.to_string()),
    }
}
