use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The scheduler's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct SchedulerMetrics {
    /// 1 while this process holds the leader lease.
    pub leader: IntGauge,
    /// Runs created, by trigger (`cron`, `manual`, `advisory`, `vex`, `policy`, `exception`).
    pub runs_created: IntCounterVec,
    /// Due times that passed without a run of their own (missed-fire policy applied).
    pub missed: IntCounter,
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
        registry.register(Box::new(missed.clone()))?;
        Ok(Self {
            leader,
            runs_created,
            missed,
        })
    }
}
