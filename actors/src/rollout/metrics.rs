//! Shadow evaluations' Prometheus metrics, apart from the scans' own (a shadow changes no
//! verdict, so it must not count as one): every series is `stella_shadow_*` and says
//! where the evaluation came from (`source`: `rollout` for a wave's job, `diff` for
//! `GET /policy/diff`).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Created once per process and registered with its registry.
#[derive(Debug, Clone)]
pub struct ShadowMetrics {
    /// Scans evaluated in shadow, by source and outcome (`unchanged`, `changed`,
    /// `newly_blocked`, `error`).
    pub scans: IntCounterVec,
    /// Seconds to evaluate one tenant's latest scans in shadow, by source.
    pub tenant_seconds: HistogramVec,
}

impl Default for ShadowMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ShadowMetrics {
    pub fn new() -> Self {
        Self {
            scans: IntCounterVec::new(
                Opts::new(
                    "stella_shadow_scans_total",
                    "Scans evaluated in shadow (enforcing nothing), by source and outcome",
                ),
                &["source", "outcome"],
            )
            .expect("valid counter options"),
            tenant_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "stella_shadow_tenant_seconds",
                    "Seconds to evaluate one tenant's latest scans in shadow, by source",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0]),
                &["source"],
            )
            .expect("valid histogram options"),
        }
    }

    /// Registers the metrics with `registry`; registering twice is not an error.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        for collector in [
            Box::new(self.scans.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.tenant_seconds.clone()),
        ] {
            match registry.register(collector) {
                Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Records one tenant's diff from `source`.
    pub fn observe(&self, source: &str, diff: &super::shadow::TenantDiff, seconds: f64) {
        let s = &diff.summary;
        let changed = s.scans_changed.saturating_sub(s.newly_blocked_scans);
        for (outcome, n) in [
            ("unchanged", s.scans.saturating_sub(s.scans_changed)),
            ("changed", changed),
            ("newly_blocked", s.newly_blocked_scans),
            ("error", s.errors),
        ] {
            if n > 0 {
                self.scans.with_label_values(&[source, outcome]).inc_by(n);
            }
        }
        self.tenant_seconds
            .with_label_values(&[source])
            .observe(seconds);
    }
}
