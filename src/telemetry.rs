//! Traces across processes: with `otlp_endpoint` set, spans are exported over
//! OTLP/HTTP (protobuf) by a batch processor on its own thread. The W3C `traceparent` of
//! the current span travels with each outbox message (`stella_store::telemetry`), so a
//! step on another process joins its sender's trace: one scan is one trace from the API
//! request through every worker. Off by default: then nothing here runs.
//!
//! Exported are the spans the `log` setting enables (at the default `info`: an HTTP
//! request, a job step with its store start and commit, a mailbox send).
//!
//! The resource names the process: `service.name` `stella`, `service.instance.id`
//! (host and pid) and `stella.command` (`serve`, `worker`, `scheduler`). Spans carry the
//! fields their `info_span!` names (tenant, role, step, job id, request id, route):
//! never a token, a URL with a password or a secret setting.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Flushes the exporter when the process ends.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("stella: flushing traces at exit failed: {err}");
        }
    }
}

/// The tracing layer that exports spans to `endpoint`, and the guard that flushes them.
pub fn layer<S>(
    endpoint: &str,
    command: &str,
) -> anyhow::Result<(Box<dyn Layer<S> + Send + Sync>, Telemetry)>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let endpoint = endpoint.trim_end_matches('/');
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|err| anyhow::anyhow!("invalid value for `otlp_endpoint`: {err}"))?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let resource = Resource::builder()
        .with_service_name("stella")
        .with_attributes([
            KeyValue::new(
                "service.instance.id",
                format!("{host}-{}", std::process::id()),
            ),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("process.pid", i64::from(std::process::id())),
            KeyValue::new("stella.command", command.to_owned()),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("stella");
    // Which spans are exported: those the `log` filter enables (one filter for the
    // whole stack, see `cli::server::init_logging`); at the default `info`, Stella's
    // spans and none of the libraries' debug spans, which carry SQL text.
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
    stella_store::telemetry::install(stella_store::telemetry::Hooks {
        current: current_traceparent,
        adopt: adopt_traceparent,
    });
    Ok((layer, Telemetry { provider }))
}

fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

fn adopt_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}
