use actix_web::{web, HttpResponse};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::Context;

/// The process's Prometheus registry and the metrics this crate owns.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// 1 if the named dependency answered the last readiness check.
    pub dependency_up: IntGaugeVec,
    /// Requests answered, by method, route template and status.
    pub http_requests: IntCounterVec,
    /// Time to answer, by method and route template.
    pub http_seconds: HistogramVec,
    /// Server-Sent Event streams open now, by stream (`job`, `events`).
    pub open_streams: IntGaugeVec,
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
        let http_requests = IntCounterVec::new(
            Opts::new(
                "stella_http_requests_total",
                "HTTP requests answered, by method, route template and status",
            ),
            &["method", "route", "status"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "stella_http_request_duration_seconds",
                "Time to answer an HTTP request, by method and route template",
            ),
            &["method", "route"],
        )?;
        registry.register(Box::new(http_seconds.clone()))?;
        let open_streams = IntGaugeVec::new(
            Opts::new(
                "stella_api_open_streams",
                "Server-Sent Event streams open now, by stream (job, events)",
            ),
            &["stream"],
        )?;
        registry.register(Box::new(open_streams.clone()))?;
        Ok(Self {
            registry,
            dependency_up,
            http_requests,
            http_seconds,
            open_streams,
        })
    }
}

pub(crate) async fn metrics(context: web::Data<Context>) -> HttpResponse {
    render(&context.metrics.registry)
}

/// `registry` in the Prometheus text format: the `/metrics` answer of every process
/// (`serve` here; `worker` and `scheduler` on `metrics_listen`).
pub fn render(registry: &Registry) -> HttpResponse {
    let mut out = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut out) {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(out),
        Err(err) => HttpResponse::InternalServerError().body(err.to_string()),
    }
}
