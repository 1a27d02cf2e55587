//! `stella bench scheduler`: the scheduler's two targets, on the configured store, with a
//! baseline measured in the same run.
//!
//! - **Firing.** `--tenants` tenants, each with one target and one `0 0 * * *` schedule
//!   with a `--jitter`-second window. The live loop is replayed on a fake clock: a pass
//!   every `scheduler.poll_interval_ms` from the due time on, each taking the wall time
//!   it really takes, the next starting late if one overruns. Reported: how long after
//!   the window's end the last run was `queued` (its scan job submitted), the longest
//!   pass, and the passes' total work.
//! - **Drift.** One advisory for a package that `--impacted-percent` of the targets'
//!   SBOMs contain. Timed: the import, and then the pass until every impacted target's
//!   re-scan is queued.
//! - **Baseline:** inserting the same number of scan jobs with their events and outbox
//!   messages straight into the store (`submit_many`, 500 per transaction): the floor
//!   any enqueueing pays. The ratio is baseline time / scheduler time.
//!
//! Time is a fake clock (the schedules' due time is in 2031), so the figures do not
//! depend on when the benchmark runs. The benchmark's schedules are deleted at the end.

use anyhow::Context as _;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use serde_json::json;
use stella_actors::scan::{Scan, ScanParams};
use stella_domain::osv::Limits;
use stella_scheduler::manage::{self, ScheduleInput};
use stella_scheduler::{Scheduler, SchedulerConfig};
use stella_store::repo::SbomRecord;
use stella_store::TenantId;
use stella_supervisor::JobRequest;

use crate::Services;

#[derive(Debug, Clone, Serialize)]
pub struct SchedulerReport {
    pub store: &'static str,
    pub tenants: u32,
    pub jitter_seconds: u32,
    pub setup_seconds: f64,
    /// Runs created, and runs queued (scan jobs submitted), over the window's passes.
    pub fired_runs: usize,
    pub queued_runs: usize,
    /// The passes' time added up: the scheduler's whole work for the firing.
    pub fire_seconds: f64,
    /// The live loop replayed: passes every `scheduler.poll_interval_ms` through the
    /// jitter window, each taking the time it really took, starting when the previous
    /// ended if it overran. How long after the window's end the last pass finished, and
    /// the longest pass.
    pub window_lag_seconds: f64,
    pub window_max_pass_seconds: f64,
    pub window_passes: usize,
    /// The same number of jobs inserted straight into the store.
    pub fire_baseline_seconds: f64,
    pub fire_ratio: f64,
    pub impacted_targets: usize,
    pub drift_runs: usize,
    pub drift_import_seconds: f64,
    pub drift_enqueue_seconds: f64,
    pub drift_baseline_seconds: f64,
    pub drift_ratio: f64,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc.timestamp_opt(0, 0).single().unwrap_or_default())
}

fn config(services: &Services) -> SchedulerConfig {
    SchedulerConfig {
        misfire_grace: Duration::hours(1),
        ..SchedulerConfig::from_settings(&services.settings)
    }
}

/// Inserts `count` scan jobs for one tenant, 500 per transaction: the enqueue floor.
async fn baseline(
    services: &Services,
    tenant: &TenantId,
    count: usize,
    sbom: &str,
) -> anyhow::Result<f64> {
    let evaluated_at =
        chrono::DateTime::parse_from_rfc3339("2031-01-01T00:00:00Z")?.with_timezone(&Utc);
    let requests: Vec<JobRequest> = (0..count)
        .map(|i| {
            let params = ScanParams {
                sbom_sha256: sbom.to_owned(),
                name: format!("baseline-{i}"),
                evaluated_at,
            };
            JobRequest::of::<Scan>(&params).map(|request| request.with_attempts(3))
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    for chunk in requests.chunks(500) {
        stella_supervisor::submit_batch(
            &services.store,
            &services.registry,
            tenant,
            chunk,
            Utc::now(),
        )
        .await
        .context("baseline submit")?;
    }
    Ok(started.elapsed().as_secs_f64())
}

pub async fn run(
    services: &Services,
    tenants: u32,
    jitter_seconds: u32,
    impacted_percent: f64,
) -> anyhow::Result<SchedulerReport> {
    let store = &services.store;
    let run = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let drift_package = format!("bench-drift-{run}");
    let impacted_every = (100.0 / impacted_percent.clamp(0.01, 100.0))
        .round()
        .max(1.0) as u32;
    let created = at("2031-01-01T23:00:00Z");
    let due = at("2031-01-02T00:00:00Z");

    // Two SBOMs: with and without the drift package.
    let sbom = |with_drift: bool| {
        let mut components = vec![
            json!({"type": "library", "name": "left-pad", "version": "1.3.0", "purl": "pkg:npm/left-pad@1.3.0"}),
        ];
        if with_drift {
            components.push(json!({"type": "library", "name": drift_package, "version": "1.0.0", "purl": format!("pkg:npm/{drift_package}@1.0.0")}));
        }
        json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components})
            .to_string()
    };
    let mut digests = Vec::new();
    for with_drift in [false, true] {
        let text = sbom(with_drift);
        let stored = services
            .objects
            .put_content(Bytes::from(text.clone()))
            .await
            .context("sbom object")?;
        digests.push((stored.digest.to_string(), text.len() as u64, with_drift));
    }

    let setup = Instant::now();
    let mut ids = Vec::with_capacity(tenants as usize);
    let mut impacted = 0;
    for i in 0..tenants {
        let tenant = TenantId::parse(&format!("bs-{run}-{i}"))?;
        store
            .tenants()
            .ensure(&tenant, "bench", Utc::now())
            .await
            .context("tenant")?;
        let with_drift = i % impacted_every == 0;
        impacted += usize::from(with_drift);
        let (sha, size, _) = &digests[usize::from(with_drift)];
        let scope = store.tenant(&tenant);
        scope
            .scans()
            .record_sbom(&SbomRecord {
                sha256: sha.clone(),
                name: "app".into(),
                format: "CycloneDX".into(),
                spec_version: "1.5".into(),
                size_bytes: *size,
                created_at: Utc::now(),
            })
            .await
            .context("sbom")?;
        let mut packages = vec!["npm/left-pad".to_owned()];
        if with_drift {
            packages.push(format!("npm/{drift_package}"));
        }
        scope
            .targets()
            .put("app", sha, &packages, Utc::now())
            .await
            .context("target")?;
        let input: ScheduleInput = serde_json::from_value(json!({
            "name": "nightly", "cron": "0 0 * * *", "timezone": "UTC", "jitter_seconds": jitter_seconds
        }))?;
        manage::create_schedule(store, &tenant, input, "bench", jitter_seconds, created)
            .await
            .context("schedule")?;
        ids.push(tenant);
    }
    let setup_seconds = setup.elapsed().as_secs_f64();

    let scheduler = Scheduler::new(
        store.clone(),
        services.registry.clone(),
        format!("bench-{run}"),
        config(services),
    );
    let outcome: anyhow::Result<SchedulerReport> = async {
        // Become the leader and catch up on the events stream before the clock starts.
        let lead = scheduler
            .tick(created + Duration::minutes(30))
            .await
            .context("scheduler")?;
        if !lead.leader {
            return Err(anyhow::anyhow!("another scheduler holds the lease on this store; stop it first"));
        }

        // The live loop, replayed: a pass every poll interval from the due time on, each
        // starting when the previous one ended if it overran.
        let poll = services.settings.scheduler.poll_interval_ms as f64 / 1000.0;
        let window = f64::from(jitter_seconds);
        let (mut fired_runs, mut queued_runs, mut passes) = (0, 0, 0);
        let (mut ended, mut max_pass, mut busy) = (0.0f64, 0.0f64, 0.0f64);
        let mut k = 0u32;
        loop {
            let start = (f64::from(k) * poll).max(ended);
            k += 1;
            let millis = (start * 1000.0).round() as i64;
            let pass = Instant::now();
            let report = scheduler
                .tick(due + Duration::milliseconds(millis))
                .await
                .context("scheduler")?;
            let took = pass.elapsed().as_secs_f64();
            ended = start + took;
            max_pass = max_pass.max(took);
            busy += took;
            passes += 1;
            fired_runs += report.fired;
            queued_runs += report.planned;
            if start >= window && queued_runs >= tenants as usize {
                break;
            }
            if start > window + 3600.0 {
                return Err(anyhow::anyhow!("only {queued_runs} of {tenants} runs queued an hour after the window"));
            }
        }
        let window_lag_seconds = (ended - window).max(0.0);
        let fire_seconds = busy;
        let window_end = due + Duration::seconds(i64::from(jitter_seconds));

        let baseline_tenant = &ids[0];
        let fire_baseline_seconds =
            baseline(services, baseline_tenant, tenants as usize, &digests[0].0).await?;

        // Drift: one advisory for the package 1 % of the targets contain.
        let advisory = json!([{
            "id": format!("BENCH-{run}"),
            "modified": "2031-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "npm", "name": drift_package},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "2.0.0"}]}]}]
        }])
        .to_string();
        let started = Instant::now();
        stella_actors::advisory_sync::import_advisories(
            store,
            &services.objects,
            &format!("bench:{run}"),
            advisory.as_bytes(),
            Limits::default(),
            Utc::now(),
        )
        .await
        .context("import")?;
        let drift_import_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let drift = scheduler
            .tick(window_end + Duration::seconds(1))
            .await
            .context("scheduler")?;
        let drift_enqueue_seconds = started.elapsed().as_secs_f64();
        let drift_baseline_seconds =
            baseline(services, baseline_tenant, impacted, &digests[1].0).await?;

        let ratio = |baseline: f64, measured: f64| {
            if measured > 0.0 {
                baseline / measured
            } else {
                0.0
            }
        };
        Ok(SchedulerReport {
            store: services.store.backend().id(),
            tenants,
            jitter_seconds,
            setup_seconds,
            fired_runs,
            queued_runs,
            window_lag_seconds,
            window_max_pass_seconds: max_pass,
            window_passes: passes,
            fire_seconds,
            fire_baseline_seconds,
            fire_ratio: ratio(fire_baseline_seconds, fire_seconds),
            impacted_targets: impacted,
            drift_runs: drift.triggered,
            drift_import_seconds,
            drift_enqueue_seconds,
            drift_baseline_seconds,
            drift_ratio: ratio(drift_baseline_seconds, drift_enqueue_seconds),
        })
    }
    .await;
    // Leave nothing due behind, and no lease in the benchmark's future.
    for tenant in &ids {
        let schedules = store.tenant(tenant).schedules();
        if let Ok(s) = schedules.get("nightly").await {
            let _ = schedules.delete(&s.id).await;
        }
    }
    scheduler.release().await;
    outcome
}
