use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The scheduler's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct SchedulerMetrics {
    /// 1 while this process holds the leader lease.
    pub leader: IntGauge,
    /// Runs created, by trigger (`cron`, `manual`, `advisory`, `vex`, `policy`, `exception`).
    pub runs_created: IntCounterVec,
    /// Due times that passed without a run of their own (missed-fire policy applied).
    pub missed: IntCounter,
    /// How late a cron run was created after its fire time (due time plus jitter): the
    /// scheduler's lag.
    pub fire_lag: Histogram,
}

impl SchedulerMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let leader = IntGauge::new(
            "stella_scheduler_leader",
            "1 while this process holds the scheduler lease",
        )?;
        let runs_created = IntCounterVec::new(
            Opts::new(
                "stella_scheduler_runs_created_total",
                "Runs created by trigger",
            ),
            &["trigger"],
        )?;
        let missed = IntCounter::new(
            "stella_scheduler_missed_due_times_total",
            "Due times that passed while no scheduler ran",
        )?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(runs_created.clone()))?;
        let fire_lag = Histogram::with_opts(
            HistogramOpts::new(
                "stella_scheduler_fire_lag_seconds",
                "How late cron runs were created after their fire time",
            )
            .buckets(vec![
                0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ]),
        )?;
        registry.register(Box::new(missed.clone()))?;
        registry.register(Box::new(fire_lag.clone()))?;
        Ok(Self {
            leader,
            runs_created,
            missed,
            fire_lag,
        })
    }
}
