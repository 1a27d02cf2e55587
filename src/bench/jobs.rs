//! `stella bench jobs`: single-step durable `noop` jobs on the configured store, against
//! the store's raw commit rate measured in the same run, and the same jobs writing their
//! effect in a statement of their own (as steps did before effects were staged), to show
//! what committing the effect with the step's outcome buys.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{round, run_id};
use crate::Services;

#[derive(Debug, Clone, Serialize)]
pub struct JobsReport {
    pub store: String,
    pub jobs: u64,
    pub tenants: u32,
    pub seconds: f64,
    pub jobs_per_sec: f64,
    /// Single-row commits per second on the same store, same parallelism as the
    /// runtime's connection pool.
    pub baseline_commits_per_sec: f64,
    /// `jobs_per_sec` over the baseline.
    pub ratio: f64,
    /// The same jobs with the effect written after the step in its own group-committed
    /// statement instead of with the step's outcome.
    pub separate_effect_jobs_per_sec: f64,
    /// `jobs_per_sec` over `separate_effect_jobs_per_sec`.
    pub staged_over_separate: f64,
}

/// Runs `jobs` noop jobs through the runtime; their seconds.
async fn noop_jobs(
    services: &Services,
    jobs: u64,
    tenants: u32,
    separate_effect: bool,
) -> anyhow::Result<f64> {
    let run = crate::diag::NoopRun {
        count: jobs,
        tenants,
        params: stella_actors::diag::NoopParams {
            separate_effect,
            ..Default::default()
        },
        max_attempts: 5,
        timeout: Duration::from_secs(1800),
        run_worker: true,
    };
    let report = crate::diag::noop(services, &run).await?;
    if report.timed_out || report.completed != jobs || report.effects != jobs {
        return Err(anyhow::anyhow!(
            "only {} of {jobs} jobs completed ({} effects)",
            report.completed,
            report.effects
        ));
    }
    Ok(report.seconds)
}

/// Single-step durable `noop` jobs end to end in this process: submit (job row + outbox),
/// relay, receive, run, commit, acknowledge. The baseline is the store's raw commit rate;
/// the jobs with a separate effect statement run after it.
pub async fn run(services: &Services, jobs: u64, tenants: u32) -> anyhow::Result<JobsReport> {
    let staged = noop_jobs(services, jobs, tenants, false).await?;
    let parallel = services.settings.database.max_connections as usize;
    let raw =
        stella_store::diag::bench::RawSql::new(&services.store, &format!("jobs-{}", run_id()));
    let started = Instant::now();
    raw.commits(jobs, parallel).await?;
    let baseline = jobs as f64 / started.elapsed().as_secs_f64();
    let separate = noop_jobs(services, jobs, tenants, true).await?;
    let jobs_per_sec = jobs as f64 / staged;
    let separate_per_sec = jobs as f64 / separate;
    Ok(JobsReport {
        store: services.store.backend().id().to_owned(),
        jobs,
        tenants,
        seconds: staged,
        jobs_per_sec: jobs_per_sec.round(),
        baseline_commits_per_sec: baseline.round(),
        ratio: round(jobs_per_sec / baseline),
        separate_effect_jobs_per_sec: separate_per_sec.round(),
        staged_over_separate: round(jobs_per_sec / separate_per_sec),
    })
}
