//! `stella bench jobs`: single-step durable `noop` jobs on the configured store, against
//! the store's raw commit rate measured in the same run.

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
    pub ratio: f64,
}

/// Single-step durable `noop` jobs end to end in this process: submit (job row + outbox),
/// relay, receive, run, commit, acknowledge. The baseline is the store's raw commit rate.
pub async fn run(services: &Services, jobs: u64, tenants: u32) -> Result<JobsReport, String> {
    let run = crate::diag::NoopRun {
        count: jobs,
        tenants,
        params: stella_actors::diag::NoopParams::default(),
        max_attempts: 5,
        timeout: Duration::from_secs(1800),
        run_worker: true,
    };
    let report = crate::diag::noop(services, &run).await?;
    if report.timed_out || report.completed != jobs {
        return Err(format!(
            "only {} of {jobs} jobs completed",
            report.completed
        ));
    }
    let parallel = services.settings.database.max_connections as usize;
    let raw =
        stella_store::diag::bench::RawSql::new(&services.store, &format!("jobs-{}", run_id()));
    let started = Instant::now();
    raw.commits(jobs, parallel)
        .await
        .map_err(|e| e.to_string())?;
    let baseline = jobs as f64 / started.elapsed().as_secs_f64();
    let jobs_per_sec = jobs as f64 / report.seconds;
    Ok(JobsReport {
        store: services.store.backend().id().to_owned(),
        jobs,
        tenants,
        seconds: report.seconds,
        jobs_per_sec: jobs_per_sec.round(),
        baseline_commits_per_sec: baseline.round(),
        ratio: round(jobs_per_sec / baseline),
    })
}
