//! The exporter's Prometheus metrics. Observed when a run completes or fails; a step
//! redelivered after its observation but before its commit observes again, so these are
//! for dashboards and alerts, not for accounting (the files table is the account).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// The exporter's metrics, created once per process and registered with its registry.
#[derive(Debug, Clone)]
pub struct ExportMetrics {
    /// Seconds from a run's submission to its completion.
    pub run_duration: Histogram,
    /// Bytes of the files completed runs wrote, by kind.
    pub bytes: IntCounterVec,
    /// Runs that failed for good, by the step they failed in (`error_code`).
    pub failures: IntCounterVec,
}

impl Default for ExportMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ExportMetrics {
    pub fn new() -> Self {
        let run_duration = Histogram::with_opts(
            HistogramOpts::new(
                "stella_exporter_run_duration_seconds",
                "Seconds from an export run's submission to its completion",
            )
            .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]),
        )
        .expect("valid histogram options");
        let bytes = IntCounterVec::new(
            Opts::new(
                "stella_exporter_bundle_bytes_total",
                "Bytes of the files completed export runs wrote, by export kind",
            ),
            &["kind"],
        )
        .expect("valid counter options");
        let failures = IntCounterVec::new(
            Opts::new(
                "stella_exporter_run_failures_total",
                "Export runs that failed for good, by error code (the step they failed in)",
            ),
            &["error_code"],
        )
        .expect("valid counter options");
        Self {
            run_duration,
            bytes,
            failures,
        }
    }

    /// Registers the metrics with `registry`; registering twice is not an error.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        for collector in [
            Box::new(self.run_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.bytes.clone()),
            Box::new(self.failures.clone()),
        ] {
            match registry.register(collector) {
                Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
