//! Trace context across processes: the W3C `traceparent` of the current span is written
//! with each outbox message (`NewMessage::trace`), travels in the envelope, and the step
//! that receives it adopts it as its parent, so one scan is one trace from the API
//! process through every worker. The store knows no tracing backend: the binary installs
//! one ([`install`], OpenTelemetry when `telemetry.otlp_endpoint` is set); without it
//! both functions do nothing.

use std::sync::OnceLock;

/// What a tracing backend provides.
#[derive(Debug, Clone, Copy)]
pub struct Hooks {
    /// The current span's `traceparent`, if it is sampled and exported.
    pub current: fn() -> Option<String>,
    /// Makes `traceparent` the parent of `span`.
    pub adopt: fn(&tracing::Span, &str),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the backend, once per process.
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// Whether a backend is installed: without one, the spans that exist only for traces
/// (one per delivery and per commit) are not made at all, off the hot path.
pub fn enabled() -> bool {
    HOOKS.get().is_some()
}

/// `make()`'s span when a backend is installed, else `Span::none()`: for spans that
/// exist only for traces.
pub fn span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() {
        make()
    } else {
        tracing::Span::none()
    }
}

/// The current span's `traceparent`, when a backend is installed.
pub fn traceparent() -> Option<String> {
    HOOKS.get().and_then(|hooks| (hooks.current)())
}

/// Makes the sender's `traceparent` the parent of `span`, when a backend is installed.
pub fn adopt(span: &tracing::Span, traceparent: &str) {
    if let Some(hooks) = HOOKS.get() {
        (hooks.adopt)(span, traceparent);
    }
}
