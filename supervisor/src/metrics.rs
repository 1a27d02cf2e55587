use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The runtime's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct RuntimeMetrics {
    /// Entries ready, pending, delayed and dead per role (`state` label).
    pub mailbox: IntGaugeVec,
    /// Seconds the oldest ready entry of a role has waited (the queue's age).
    pub mailbox_oldest: prometheus::GaugeVec,
    /// Ready entries of the tenants with the most (at most ten per role).
    pub mailbox_tenant_ready: IntGaugeVec,
    /// Entries handed out again after their consumer died or stalled.
    pub redeliveries: IntCounterVec,
    pub dead_letters: IntCounterVec,
    /// Handler runs by kind and outcome (`completed`, `retrying`, `failed`, `stale`).
    pub executions: IntCounterVec,
    pub actor_restarts: IntCounterVec,
    pub quarantined: IntGauge,
    pub step_seconds: HistogramVec,
    pub in_flight: IntGauge,
    pub outbox_relayed: IntCounterVec,
}

impl RuntimeMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let mailbox = IntGaugeVec::new(
            Opts::new(
                "stella_mailbox_entries",
                "Mailbox entries per role and state",
            ),
            &["role", "state"],
        )?;
        let redeliveries = IntCounterVec::new(
            Opts::new(
                "stella_mailbox_redeliveries_total",
                "Entries taken over from a consumer that died or stalled",
            ),
            &["role"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "stella_mailbox_dead_letters_total",
                "Entries moved to the dead letters",
            ),
            &["role"],
        )?;
        let executions = IntCounterVec::new(
            Opts::new(
                "stella_job_executions_total",
                "Job step handler runs by outcome",
            ),
            &["kind", "outcome"],
        )?;
        let actor_restarts = IntCounterVec::new(
            Opts::new(
                "stella_actor_restarts_total",
                "Actor failures (handler panics) counted against the restart intensity",
            ),
            &["actor"],
        )?;
        let quarantined = IntGauge::new(
            "stella_actors_quarantined",
            "Tenant actors quarantined after exceeding the restart intensity",
        )?;
        let step_seconds = HistogramVec::new(
            HistogramOpts::new("stella_job_step_duration_seconds", "Duration of job steps")
                .buckets(vec![0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 60.0]),
            &["kind", "step"],
        )?;
        let in_flight = IntGauge::new(
            "stella_jobs_in_flight",
            "Deliveries held by this process (running or queued for a tenant)",
        )?;
        let outbox_relayed = IntCounterVec::new(
            Opts::new(
                "stella_outbox_relayed_total",
                "Outbox rows moved into the mailbox",
            ),
            &["role"],
        )?;
        let mailbox_oldest = prometheus::GaugeVec::new(
            Opts::new(
                "stella_mailbox_oldest_ready_seconds",
                "How long the oldest entry ready for a role has waited to be received",
            ),
            &["role"],
        )?;
        registry.register(Box::new(mailbox.clone()))?;
        registry.register(Box::new(mailbox_oldest.clone()))?;
        let mailbox_tenant_ready = IntGaugeVec::new(
            Opts::new(
                "stella_mailbox_tenant_ready_entries",
                "Ready entries of the tenants with the most, at most ten per role",
            ),
            &["role", "tenant"],
        )?;
        registry.register(Box::new(mailbox_tenant_ready.clone()))?;
        registry.register(Box::new(redeliveries.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(executions.clone()))?;
        registry.register(Box::new(actor_restarts.clone()))?;
        registry.register(Box::new(quarantined.clone()))?;
        registry.register(Box::new(step_seconds.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(outbox_relayed.clone()))?;
        Ok(Self {
            mailbox,
            mailbox_oldest,
            mailbox_tenant_ready,
            redeliveries,
            dead_letters,
            executions,
            actor_restarts,
            quarantined,
            step_seconds,
            in_flight,
            outbox_relayed,
        })
    }
}
