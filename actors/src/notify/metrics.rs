//! The notifier's Prometheus metrics (for dashboards and alerts; the deliveries table is
//! the account).

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// The notifier's metrics, created once per process and registered with its registry.
#[derive(Debug, Clone)]
pub struct NotifyMetrics {
    /// Wire attempts by channel type and outcome (`delivered`, `retrying`, `failed`).
    pub deliveries: IntCounterVec,
    /// Seconds per wire attempt, by channel type.
    pub latency: HistogramVec,
    /// Deliveries folded into a digest because their channel's window was full.
    pub throttled: IntCounterVec,
    /// Deliveries folded into a digest by quiet hours.
    pub digested: IntCounter,
    /// Deliveries held until quiet hours end.
    pub held: IntCounter,
    /// Notify jobs dead-lettered (failed for good).
    pub dead_lettered: IntCounter,
    /// Messages sent with the shipped template because the tenant's failed to render, by
    /// channel type.
    pub template_fallbacks: IntCounterVec,
}

impl Default for NotifyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NotifyMetrics {
    pub fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter options")
        };
        Self {
            deliveries: counter(
                "stella_notify_deliveries_total",
                "Notification wire attempts by channel type and outcome",
                &["channel_type", "outcome"],
            ),
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "stella_notify_delivery_latency_seconds",
                    "Seconds per notification wire attempt, by channel type",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["channel_type"],
            )
            .expect("valid histogram options"),
            throttled: counter(
                "stella_notify_throttled_total",
                "Deliveries folded into the next digest by their channel's throttle",
                &["channel_type"],
            ),
            digested: IntCounter::new(
                "stella_notify_quiet_digested_total",
                "Deliveries folded into a digest by their channel's quiet hours",
            )
            .expect("valid counter options"),
            held: IntCounter::new(
                "stella_notify_held_total",
                "Deliveries held until their channel's quiet hours end",
            )
            .expect("valid counter options"),
            dead_lettered: IntCounter::new(
                "stella_notify_dead_lettered_total",
                "Notify jobs (deliveries and digests) that failed for good",
            )
            .expect("valid counter options"),
            template_fallbacks: counter(
                "stella_notify_template_fallbacks_total",
                "Messages sent with the shipped template because the tenant's did not render",
                &["channel_type"],
            ),
        }
    }

    /// Registers the metrics with `registry`; registering twice is not an error.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        for collector in [
            Box::new(self.deliveries.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.latency.clone()),
            Box::new(self.throttled.clone()),
            Box::new(self.digested.clone()),
            Box::new(self.held.clone()),
            Box::new(self.dead_lettered.clone()),
            Box::new(self.template_fallbacks.clone()),
        ] {
            match registry.register(collector) {
                Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
