//! `stella diag noop`: submits noop jobs through the normal path (job rows and first
//! messages committed together, in batches of up to 64 jobs of one tenant per
//! transaction, relayed by whichever processes run workers), waits for them, and
//! reports what happened as one JSON object.

use anyhow::Context as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use stella_actors::diag::{Noop, NoopParams};
use stella_store::repo::JobState;
use stella_store::{StoreError, TenantId};
use stella_supervisor::JobRequest;

use crate::{all_roles, Services};

/// Jobs of one tenant submitted in one transaction.
const SUBMIT_BATCH: usize = 64;

#[derive(Debug, Clone)]
pub struct NoopRun {
    pub count: u64,
    pub tenants: u32,
    pub params: NoopParams,
    pub max_attempts: u32,
    pub timeout: Duration,
    /// Also run the workers in this process (otherwise other processes must).
    pub run_worker: bool,
}

/// The report; field names are part of the CLI's contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NoopReport {
    pub submitted: u64,
    pub completed: u64,
    pub effects: u64,
    pub executions: u64,
    pub dead_lettered: u64,
    /// From the first submit to the last job finished (the workers start before).
    pub seconds: f64,
    #[serde(skip)]
    pub timed_out: bool,
}

pub async fn noop(services: &Services, run: &NoopRun) -> anyhow::Result<NoopReport> {
    let started = Instant::now();
    let run_id = &uuid_like()[..8];
    let tenants: Vec<TenantId> = (0..run.tenants.max(1))
        .map(|i| TenantId::parse(&format!("diag-{run_id}-{i}")))
        .collect::<Result<_, _>>()?;
    let now = Utc::now();
    for tenant in &tenants {
        services
            .store
            .tenants()
            .ensure(tenant, &format!("diag run {run_id}"), now)
            .await?;
    }
    let metrics = prometheus::Registry::new();
    let runtime = if run.run_worker {
        Some(
            services
                .start_runtime(&all_roles(), &metrics)
                .await
                .map_err(|err| anyhow::anyhow!("{} (check `{}`)", err.message, err.key))?,
        )
    } else {
        None
    };

    let registry = stella_actors::diagnostics();
    let request = JobRequest::of::<Noop>(&run.params)?.with_attempts(run.max_attempts);
    // Job `i` belongs to tenant `i % tenants`; each tenant's jobs are submitted in
    // batches (one transaction each), the tenants' batches interleaved.
    let mut per_tenant: Vec<Vec<u64>> = vec![Vec::new(); tenants.len()];
    for i in 0..run.count {
        per_tenant[(i % tenants.len() as u64) as usize].push(i);
    }
    let mut batches: Vec<(usize, Vec<u64>)> = Vec::new();
    let chunked: Vec<Vec<Vec<u64>>> = per_tenant
        .into_iter()
        .map(|jobs| jobs.chunks(SUBMIT_BATCH).map(<[u64]>::to_vec).collect())
        .collect();
    let rounds = chunked.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        for (tenant, chunks) in chunked.iter().enumerate() {
            if let Some(chunk) = chunks.get(round) {
                batches.push((tenant, chunk.clone()));
            }
        }
    }
    // The clock of `seconds` starts here, with the runtime already up: submitting is part
    // of the measured work, starting the process and its actors is not.
    let submit_started = Instant::now();
    let submitted: u64 = stream::iter(batches)
        .map(|(tenant, indices)| {
            let tenant = &tenants[tenant];
            let store = &services.store;
            let registry = &registry;
            let requests: Vec<JobRequest> = indices
                .iter()
                .map(|i| request.clone().with_key(format!("diag-{i}")))
                .collect();
            async move {
                stella_supervisor::submit_batch(store, registry, tenant, &requests, Utc::now())
                    .await
                    .map(|all| all.iter().map(|s| u64::from(s.created)).sum::<u64>())
            }
        })
        .buffer_unordered(4)
        .try_fold(0u64, |sum, n| async move { Ok::<_, StoreError>(sum + n) })
        .await
        .context("submitting jobs")?;
    eprintln!(
        "diag: submitted {submitted} noop jobs over {} tenants (run {run_id})",
        tenants.len()
    );

    let deadline = started + run.timeout;
    let mut last_report = Instant::now();
    let report = loop {
        let report = measure(services, &tenants, submitted, submit_started).await?;
        if report.completed + report.dead_lettered >= submitted {
            break report;
        }
        if Instant::now() >= deadline {
            break NoopReport {
                timed_out: true,
                ..report
            };
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "diag: {}/{} done ({} failed), {} executions, {:.0}s",
                report.completed + report.dead_lettered,
                submitted,
                report.dead_lettered,
                report.executions,
                report.seconds
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if let Some(runtime) = runtime {
        runtime.shutdown(Duration::from_secs(5)).await;
    }
    Ok(report)
}

async fn measure(
    services: &Services,
    tenants: &[TenantId],
    submitted: u64,
    started: Instant,
) -> anyhow::Result<NoopReport> {
    let mut report = NoopReport {
        submitted,
        ..NoopReport::default()
    };
    for tenant in tenants {
        let scope = services.store.tenant(tenant);
        let jobs = scope.jobs();
        report.completed += jobs.count_in(JobState::Succeeded).await?;
        report.dead_lettered += jobs.count_in(JobState::Failed).await?;
        let totals = scope.noop().totals().await?;
        report.effects += totals.effects;
        report.executions += totals.executions;
    }
    report.seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    Ok(report)
}

fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}
