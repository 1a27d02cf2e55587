//! The scheduler loop. Each pass ([`Scheduler::tick`], given `now`):
//!
//! 1. takes or renews the leader lease (a follower stops here);
//! 2. fires due schedules: one run per (schedule, due time), the missed-fire and overlap
//!    policies applied, the schedule moved to its next due time, in one fenced commit;
//! 3. follows the events stream: an `advisory.delta` creates an `advisory` run per tenant
//!    for the targets whose SBOM contains a named package (the impact index), a VEX
//!    import a `vex` run, a policy change a `policy` run, an exception activated, revoked
//!    or expired (step 2 expires those whose time has come) an `exception` run of the
//!    targets it touches;
//! 4. plans runs in `planning`: resolves their targets and submits one scan job per
//!    target (idempotency key `run:<run>:<target>`, so a re-plan after a crash or a
//!    takeover submits nothing twice), then marks them `queued`;
//! 5. tracks queued and running runs: a target whose scan ended gets its diff against the
//!    target's previous scan; a run whose targets all ended is `completed`, or `error`
//!    when none of its jobs succeeded.
//!
//! 6. notifies: matches new events against the tenants' notification rules, one delivery
//!    per (event, rule, channel), and gives digest groups their jobs (see
//!    `stella_actors::notify::dispatch`).
//!
//! 7. drives pack rollouts: submits each shadowed wave's `rollout` jobs, judges its gate,
//!    activates it, starts the next wave after the bake time, rolls back an aborted one
//!    (see `rollouts`).
//!
//! Steps 3 and 5 also append events for the notifier: `advisory.impact` per tenant an
//! advisory delta touches, and `finding.new`, `finding.resolved` and `verdict.changed`
//! from a target's diff.
//!
//! Every write of steps 2–6 is fenced by the lease token (see `stella_store::repo`), so a
//! process that lost the lease without knowing writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use stella_actors::advisory_sync::{AdvisorySync, SyncParams};
use stella_actors::export::{Export, ExportParams, ProfileDefinition, Trigger};
use stella_actors::notify::dispatch::{digest_jobs, dispatch, EventRow, NOTIFY_CURSOR};
use stella_actors::scan::{Scan, ScanParams};
use stella_store::repo::{
    NewEvent, NewRun, RunRecord, RunTargetRecord, RunUpdate, ScheduleAdvance, SchedulerChanges,
    TargetOutcome, TargetRecord, SCHEDULER_LEASE,
};
use stella_store::{RunId, ScheduleId, Store, StoreError, TenantId};
use stella_supervisor::{prepare, JobRequest, Kind, Registry};

use crate::clock::Clock;
use crate::cron::CronSchedule;
use crate::diff::{diff, Finding};
use crate::metrics::SchedulerMetrics;
use crate::spec::{
    decide, jitter_offset, FirePolicy, Missed, Overlap, ADVISORY_SYNC, EXPORT, RESCAN,
};

/// Where the leader has read the events stream to.
const EVENTS_CURSOR: &str = "scheduler.events";
/// The run-target id of an advisory-sync run's one job (its sources).
const SOURCES: &str = "sources";
/// The run-target id of an export run's one job.
const EXPORT_TARGET: &str = "export";
/// Schedules fired, events read, runs planned or targets tracked per commit.
const BATCH: u32 = 500;

/// The scheduler's knobs (from `[scheduler]` settings).
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub lease_ttl: StdDuration,
    pub poll_interval: StdDuration,
    pub misfire_grace: Duration,
    /// Attempts of the scan jobs runs submit.
    pub job_max_attempts: u32,
}

impl SchedulerConfig {
    pub fn from_settings(settings: &stella_config::Settings) -> Self {
        let s = &settings.scheduler;
        Self {
            lease_ttl: StdDuration::from_secs(s.lease_ttl_secs),
            poll_interval: StdDuration::from_millis(s.poll_interval_ms),
            misfire_grace: Duration::seconds(i64::try_from(s.misfire_grace_secs).unwrap_or(60)),
            job_max_attempts: settings.runtime.max_attempts,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// This process held the lease for the pass.
    pub leader: bool,
    /// The lease token it held.
    pub token: Option<i64>,
    /// Runs created by schedules (cancelled ones included).
    pub fired: usize,
    /// Runs created by events.
    pub triggered: usize,
    /// Runs moved from planning to queued (or straight to completed).
    pub planned: usize,
    /// Run targets whose scan ended.
    pub tracked: usize,
    /// Runs completed.
    pub completed: usize,
    /// Notification deliveries made from events, and digest jobs made.
    pub notified: usize,
    /// Exceptions marked expired.
    pub expired_exceptions: usize,
    /// Rollouts moved (or whose wave's shadow jobs were submitted).
    pub rollouts: usize,
}

/// One scheduler process.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: Store,
    registry: Registry,
    holder: String,
    config: SchedulerConfig,
    metrics: Option<SchedulerMetrics>,
    submitted: crate::rollouts::Submitted,
}

impl Scheduler {
    /// `holder` names this process in the lease (unique per process).
    pub fn new(
        store: Store,
        registry: Registry,
        holder: impl Into<String>,
        config: SchedulerConfig,
    ) -> Self {
        Self {
            store,
            registry,
            holder: holder.into(),
            config,
            metrics: None,
            submitted: crate::rollouts::Submitted::default(),
        }
    }

    pub fn with_metrics(mut self, metrics: SchedulerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs passes every poll interval until `stop` resolves, reading the time from
    /// `clock`; gives the lease up on the way out.
    pub async fn run(&self, clock: Arc<dyn Clock>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut token = None;
        loop {
            match self.tick(clock.now()).await {
                Ok(report) => {
                    if report.leader != token.is_some() {
                        tracing::info!(holder = %self.holder, leader = report.leader, token = ?report.token, "scheduler leadership changed");
                    }
                    token = report.token;
                }
                Err(err) => {
                    tracing::warn!(holder = %self.holder, error = %err, "scheduler pass failed; retrying")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = &mut stop => break,
            }
        }
        if token.is_some() {
            self.release().await;
        }
    }

    /// Gives the lease up, if this process holds it.
    pub async fn release(&self) {
        let released = self
            .store
            .scheduling()
            .release_lease(SCHEDULER_LEASE, &self.holder)
            .await;
        if let Err(err) = released {
            tracing::warn!(holder = %self.holder, error = %err, "could not give the scheduler lease up; it expires by itself");
        }
    }

    /// One pass at `now` (see the module documentation).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, StoreError> {
        let lease = self
            .store
            .scheduling()
            .acquire_lease(SCHEDULER_LEASE, &self.holder, self.config.lease_ttl, now)
            .await?;
        if let Some(m) = &self.metrics {
            m.leader.set(i64::from(lease.is_some()));
        }
        let Some(lease) = lease else {
            return Ok(TickReport::default());
        };
        let mut report = TickReport {
            leader: true,
            token: Some(lease.token),
            ..TickReport::default()
        };
        let result = async {
            report.fired = self.fire_due(lease.token, now).await?;
            // Exceptions whose expiry has come: marked expired with their events, which
            // the next step turns into re-evaluations.
            report.expired_exceptions =
                stella_store::repo::expire_due_exceptions(&self.store, now, BATCH).await?;
            report.triggered = self.follow_events(lease.token, now).await?;
            report.planned = self.plan(lease.token, now).await?;
            let (tracked, completed) = self.track(lease.token, now).await?;
            report.tracked = tracked;
            report.completed = completed;
            report.notified = self.notify(lease.token, now).await?;
            report.rollouts = crate::rollouts::drive(
                &self.store,
                &self.registry,
                &self.submitted,
                self.config.job_max_attempts,
                lease.token,
                now,
            )
            .await?;
            Ok::<_, StoreError>(())
        }
        .await;
        match result {
            Ok(()) => Ok(report),
            // Fenced out mid-pass: another process leads now; nothing of ours committed
            // after the takeover.
            Err(StoreError::Conflict(reason)) if reason.contains("lease") => {
                tracing::info!(holder = %self.holder, %reason, "lost the scheduler lease");
                Ok(TickReport::default())
            }
            Err(err) => Err(err),
        }
    }

    /// Fires every schedule whose fire time has come.
    async fn fire_due(&self, token: i64, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut fired = 0;
        let mut crons: HashMap<(String, String), Result<CronSchedule, crate::cron::CronError>> =
            HashMap::new();
        loop {
            let due = self.store.scheduling().due_schedules(now, BATCH).await?;
            if due.is_empty() {
                return Ok(fired);
            }
            let ids: Vec<&ScheduleId> = due.iter().map(|(_, s)| &s.id).collect();
            let active = self.store.scheduling().active_runs_of(&ids).await?;
            let mut changes = SchedulerChanges::default();
            // When each new run was meant to fire (due time plus the schedule's jitter).
            let mut fire_at: HashMap<RunId, DateTime<Utc>> = HashMap::new();
            for (tenant, schedule) in &due {
                let Some(due_at) = schedule.next_due_at else {
                    continue;
                };
                let offset = jitter_offset(schedule.id.as_str(), schedule.jitter_seconds);
                // Parsed once per pass per (cron, timezone): ten thousand tenants at
                // `0 0 * * *` share one.
                let key = (schedule.cron.clone(), schedule.timezone.clone());
                let parsed = match crons.get(&key) {
                    Some(parsed) => parsed.clone(),
                    None => {
                        let parsed = CronSchedule::parse(&schedule.cron, &schedule.timezone, now);
                        crons.insert(key, parsed.clone());
                        parsed
                    }
                };
                let (cron, policy) = match (
                    parsed,
                    Missed::parse(&schedule.missed),
                    Overlap::parse(&schedule.overlap),
                ) {
                    (Ok(cron), Ok(missed), Ok(overlap)) => (
                        cron,
                        FirePolicy {
                            missed,
                            overlap,
                            grace: self.config.misfire_grace,
                        },
                    ),
                    _ => {
                        // Validated on the way in; a row that no longer parses (a
                        // timezone database change) stops firing rather than loop.
                        tracing::error!(tenant = %tenant, schedule = %schedule.id, "stored schedule does not parse; it stops firing");
                        changes.advances.push(ScheduleAdvance {
                            tenant: tenant.clone(),
                            id: schedule.id.clone(),
                            expected_due: due_at,
                            next_due_at: None,
                            next_fire_at: None,
                            last_run_id: None,
                        });
                        continue;
                    }
                };
                let previous = active.get(&schedule.id).map(RunId::as_str);
                let decision = decide(&cron, offset, due_at, now, policy, previous);
                let mut last_run = None;
                for firing in &decision.firings {
                    let run_id = RunId::generate();
                    fire_at.insert(run_id.clone(), firing.due_at + offset);
                    let mut reason = json!({
                        "schedule": schedule.name,
                        "fire_at": (firing.due_at + offset).to_rfc3339(),
                    });
                    if firing.missed > 0 {
                        reason["missed"] = json!(firing.missed);
                        reason["first_missed"] = json!(firing.first_missed.map(|t| t.to_rfc3339()));
                    }
                    if let (Some(previous), "planning") = (previous, firing.state) {
                        reason["waiting_for"] = json!(previous);
                    }
                    if let Some(m) = &self.metrics {
                        m.missed.inc_by(firing.missed);
                    }
                    changes.new_runs.push(NewRun {
                        tenant: tenant.clone(),
                        id: run_id.clone(),
                        schedule_id: Some(schedule.id.clone()),
                        trigger: "cron".into(),
                        kind: schedule.kind.clone(),
                        state: firing.state.into(),
                        due_at: firing.due_at,
                        dedupe_key: format!(
                            "cron:{}:{}",
                            schedule.id,
                            firing.due_at.timestamp_millis()
                        ),
                        targets: schedule.targets.clone(),
                        sources: schedule.sources.clone(),
                        profile: schedule.profile.clone(),
                        reason,
                        counts: json!({}),
                        error: firing.error.clone(),
                    });
                    last_run = Some(run_id);
                }
                changes.advances.push(ScheduleAdvance {
                    tenant: tenant.clone(),
                    id: schedule.id.clone(),
                    expected_due: due_at,
                    next_due_at: decision.next_due_at,
                    next_fire_at: decision.next_fire_at,
                    last_run_id: last_run,
                });
            }
            let applied = self.store.scheduling().apply(token, &changes, now).await?;
            fired += applied.created_runs.len();
            if let Some(m) = &self.metrics {
                m.runs_created
                    .with_label_values(&["cron"])
                    .inc_by(applied.created_runs.len() as u64);
                for run in &applied.created_runs {
                    if let Some(at) = fire_at.get(run) {
                        let lag = (now - *at).num_milliseconds().max(0);
                        #[allow(clippy::cast_precision_loss)] // far below 2^52 ms
                        m.fire_lag.observe(lag as f64 / 1000.0);
                    }
                }
            }
            if due.len() < BATCH as usize {
                return Ok(fired);
            }
        }
    }

    /// Turns new events into runs of the targets they impact.
    async fn follow_events(&self, token: i64, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let scheduling = self.store.scheduling();
        let mut triggered = 0;
        loop {
            let cursor = scheduling.cursor(EVENTS_CURSOR).await?;
            let events = scheduling.events_after(cursor, BATCH).await?;
            let Some((last, ..)) = events.last() else {
                return Ok(triggered);
            };
            let last = *last;
            let mut changes = SchedulerChanges {
                cursor: Some((EVENTS_CURSOR.into(), last)),
                ..SchedulerChanges::default()
            };
            // The tenants' profiles with triggers, read once per batch.
            let mut triggered_profiles: BTreeMap<TenantId, Vec<(String, Vec<Trigger>)>> =
                BTreeMap::new();
            for (seq, tenant, kind, payload) in &events {
                if kind == "scan.completed" {
                    let Some(tenant) = tenant else { continue };
                    if !triggered_profiles.contains_key(tenant) {
                        let profiles = self.profiles_with_triggers(tenant).await?;
                        triggered_profiles.insert(tenant.clone(), profiles);
                    }
                    let target = payload["name"].as_str().unwrap_or_default();
                    for (profile, triggers) in &triggered_profiles[tenant] {
                        if !triggers.iter().any(|t| t.fires_on_scan_of(target)) {
                            continue;
                        }
                        changes.new_runs.push(NewRun {
                            dedupe_key: format!("export:{seq}:{tenant}:{profile}"),
                            tenant: tenant.clone(),
                            id: RunId::generate(),
                            schedule_id: None,
                            trigger: "event".into(),
                            kind: EXPORT.into(),
                            state: "planning".into(),
                            due_at: now,
                            targets: None,
                            sources: None,
                            profile: Some(profile.clone()),
                            reason: json!({
                                "event": seq,
                                "kind": kind,
                                "scan_id": payload["scan_id"],
                                "target": target,
                            }),
                            counts: json!({}),
                            error: None,
                        });
                    }
                    continue;
                }
                let (trigger, impacted, reason) = match kind.as_str() {
                    "advisory.delta" => {
                        let packages: Vec<String> = payload["packages"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|p| p.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let impacted = scheduling.impacted_targets(&packages).await?;
                        let reason = json!({
                            "event": seq,
                            "advisories": first(&payload["advisories"], 50),
                            "packages": packages.iter().take(50).collect::<Vec<_>>(),
                        });
                        ("advisory", impacted, reason)
                    }
                    "vex.imported" => {
                        // The packages the statements name; a statement about a
                        // `bom-ref` could concern any target, so then all of them.
                        let sha256 = payload["sha256"].as_str().unwrap_or_default();
                        let document = self.store.vex().get(tenant.as_ref(), sha256).await?;
                        let packages = document.as_ref().and_then(|d| vex_packages(&d.statements));
                        let impacted = match (&packages, tenant) {
                            (Some(packages), Some(t)) => scheduling
                                .impacted_targets(packages)
                                .await?
                                .into_iter()
                                .filter(|i| i.tenant == *t)
                                .collect(),
                            (Some(packages), None) => scheduling.impacted_targets(packages).await?,
                            (None, t) => scheduling.all_targets(t.as_ref()).await?,
                        };
                        let reason = json!({"event": seq, "vex": sha256, "packages": packages});
                        ("vex", impacted, reason)
                    }
                    "policy.updated" => {
                        let Some(t) = tenant else { continue };
                        let impacted = scheduling.all_targets(Some(t)).await?;
                        let reason = json!({"event": seq, "policy_version": payload["version"]});
                        ("policy", impacted, reason)
                    }
                    "exception.activated" | "exception.revoked" | "exception.expired" => {
                        // The targets the exception's scope names: one, or all of them.
                        let Some(t) = tenant else { continue };
                        let mut impacted = scheduling.all_targets(Some(t)).await?;
                        if let Some(target) = payload["target"].as_str() {
                            impacted.retain(|i| i.name == target);
                        }
                        let reason = json!({
                            "event": seq,
                            "kind": kind,
                            "exception": payload["exception"],
                            "vulnerability": payload["vulnerability"],
                        });
                        ("exception", impacted, reason)
                    }
                    _ => continue,
                };
                let mut by_tenant: BTreeMap<TenantId, Vec<String>> = BTreeMap::new();
                for target in impacted {
                    by_tenant
                        .entry(target.tenant)
                        .or_default()
                        .push(target.name);
                }
                for (tenant, names) in by_tenant {
                    if trigger == "advisory" {
                        // The tenant's view of the delta, for its notification rules.
                        changes.events.push((
                            Some(tenant.clone()),
                            NewEvent {
                                kind: "advisory.impact".into(),
                                dedupe_key: format!("advisory.impact:{seq}:{tenant}"),
                                payload: json!({
                                    "event": seq,
                                    "advisories": reason["advisories"],
                                    "packages": reason["packages"],
                                    "targets": names.iter().take(200).collect::<Vec<_>>(),
                                    "target_count": names.len(),
                                }),
                            },
                        ));
                    }
                    changes.new_runs.push(NewRun {
                        dedupe_key: format!("{trigger}:{seq}:{tenant}"),
                        tenant,
                        id: RunId::generate(),
                        schedule_id: None,
                        trigger: trigger.into(),
                        kind: RESCAN.into(),
                        state: "planning".into(),
                        due_at: now,
                        targets: Some(names),
                        sources: None,
                        profile: None,
                        reason: reason.clone(),
                        counts: json!({}),
                        error: None,
                    });
                }
            }
            let applied = scheduling.apply(token, &changes, now).await?;
            triggered += applied.created_runs.len();
            if let Some(m) = &self.metrics {
                for run in &changes.new_runs {
                    if applied.created_runs.contains(&run.id) {
                        m.runs_created
                            .with_label_values(&[run.trigger.as_str()])
                            .inc();
                    }
                }
            }
        }
    }

    /// Notifications (step 6): matches new events against the tenants' rules (one
    /// delivery per event, rule and channel, its job submitted in the same commit as the
    /// cursor), then gives each digest group with waiting items its digest job.
    async fn notify(&self, token: i64, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let scheduling = self.store.scheduling();
        let mut made = 0;
        loop {
            let cursor = scheduling.cursor(NOTIFY_CURSOR).await?;
            let rows: Vec<EventRow> = self
                .store
                .events_for_notify(cursor, BATCH)
                .await?
                .into_iter()
                .map(
                    |(seq, tenant, kind, dedupe_key, payload, created_at)| EventRow {
                        seq,
                        tenant,
                        kind,
                        dedupe_key,
                        payload,
                        created_at,
                    },
                )
                .collect();
            let Some(last) = rows.last().map(|r| r.seq) else {
                break;
            };
            let out = dispatch(&self.store, &self.registry, &rows, now).await?;
            made += out.deliveries.len();
            let changes = SchedulerChanges {
                cursor: Some((NOTIFY_CURSOR.into(), last)),
                jobs: out.jobs,
                deliveries: out.deliveries,
                digest_items: out.digest_items,
                ..SchedulerChanges::default()
            };
            scheduling.apply(token, &changes, now).await?;
        }
        let jobs = digest_jobs(&self.store, &self.registry, now).await?;
        if !jobs.is_empty() {
            made += jobs.len();
            let changes = SchedulerChanges {
                jobs,
                ..SchedulerChanges::default()
            };
            scheduling.apply(token, &changes, now).await?;
        }
        Ok(made)
    }

    /// Plans runs in `planning`, a batch at a time: their jobs, run targets and new state
    /// are one commit per batch, across tenants.
    async fn plan(&self, token: i64, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let scheduling = self.store.scheduling();
        let mut planned = 0;
        let mut after: Option<RunId> = None;
        loop {
            let runs = scheduling
                .runs_in_state("planning", after.as_ref(), BATCH)
                .await?;
            let Some(last) = runs.last() else {
                return Ok(planned);
            };
            after = Some(last.id.clone());
            let tenants: BTreeSet<&TenantId> = runs
                .iter()
                .filter(|r| r.kind == RESCAN)
                .map(|r| &r.tenant)
                .collect();
            let tenants: Vec<&TenantId> = tenants.into_iter().collect();
            let targets = scheduling.targets_of(&tenants).await?;
            let mut changes = SchedulerChanges::default();
            for run in &runs {
                if self.waits(run).await? {
                    continue;
                }
                match run.kind.as_str() {
                    RESCAN => {
                        let of_tenant = targets.get(&run.tenant).map_or(&[][..], Vec::as_slice);
                        self.plan_rescan(run, of_tenant, &mut changes)?;
                    }
                    ADVISORY_SYNC => self.plan_sync(run, &mut changes)?,
                    EXPORT => self.plan_export(run, &mut changes).await?,
                    other => finish(
                        run,
                        "error",
                        json!({}),
                        Some(format!("kind {other:?} is not supported by this scheduler")),
                        &mut changes,
                    ),
                }
                planned += 1;
            }
            scheduling.apply(token, &changes, now).await?;
            if runs.len() < BATCH as usize {
                return Ok(planned);
            }
        }
    }

    /// A queued firing (overlap `queue`) waits while the run it follows is active.
    async fn waits(&self, run: &RunRecord) -> Result<bool, StoreError> {
        let Some(previous) = run.reason["waiting_for"].as_str() else {
            return Ok(false);
        };
        let Ok(previous) = RunId::parse(previous) else {
            return Ok(false);
        };
        match self.store.tenant(&run.tenant).runs().get(&previous).await {
            Ok(p) => Ok(matches!(
                p.state.as_str(),
                "planning" | "queued" | "running"
            )),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The run's job (`<run>:<what>` idempotency key), its run-target row, and the run
    /// queued.
    fn queue(
        &self,
        run: &RunRecord,
        jobs: Vec<(JobRequest, RunTargetRecord)>,
        counts: Value,
        changes: &mut SchedulerChanges,
    ) -> Result<(), StoreError> {
        for (request, mut target) in jobs {
            let job = prepare(&self.registry, &run.tenant, &request, run.due_at)?;
            target.scan_id = job.id.clone();
            changes.jobs.push(job);
            changes
                .run_targets
                .push((run.tenant.clone(), run.id.clone(), target));
        }
        changes.run_updates.push(RunUpdate {
            tenant: run.tenant.clone(),
            id: run.id.clone(),
            from: "planning".into(),
            to: "queued".into(),
            counts,
            error: None,
            finished: false,
        });
        Ok(())
    }

    /// One advisory-sync job for the run's sources.
    fn plan_sync(&self, run: &RunRecord, changes: &mut SchedulerChanges) -> Result<(), StoreError> {
        let sources = run.sources.clone().unwrap_or_default();
        if sources.is_empty() {
            finish(
                run,
                "error",
                json!({}),
                Some("no sources to sync".into()),
                changes,
            );
            return Ok(());
        }
        let request = JobRequest::of::<AdvisorySync>(&SyncParams { sources })?
            .with_key(format!("run:{}:sources", run.id))
            .with_attempts(self.config.job_max_attempts);
        let target = RunTargetRecord {
            target_id: SOURCES.into(),
            target_name: "advisory sources".into(),
            scan_id: stella_store::JobId::generate(),
            previous_scan_id: None,
            state: "queued".into(),
            diff: None,
        };
        let counts = json!({"targets": 1, "queued": 1, "completed": 0, "failed": 0});
        self.queue(run, vec![(request, target)], counts, changes)
    }

    /// A tenant's export profiles (latest revisions) that name triggers, with them.
    async fn profiles_with_triggers(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(String, Vec<Trigger>)>, StoreError> {
        let profiles = self.store.tenant(tenant).export_profiles();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = profiles.list(cursor.as_deref(), 500).await?;
            for record in page.items {
                if let Ok(definition) =
                    serde_json::from_str::<ProfileDefinition>(&record.definition)
                {
                    if !definition.triggers.is_empty() {
                        out.push((record.name, definition.triggers));
                    }
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// One export job of the run's profile, at its latest revision, as of the run's due
    /// time (so the firing of one due time exports the same whoever plans it).
    async fn plan_export(
        &self,
        run: &RunRecord,
        changes: &mut SchedulerChanges,
    ) -> Result<(), StoreError> {
        let Some(profile) = run.profile.as_deref() else {
            finish(
                run,
                "error",
                json!({}),
                Some("no export profile".into()),
                changes,
            );
            return Ok(());
        };
        let profiles = self.store.tenant(&run.tenant).export_profiles();
        let Some(latest) = profiles.latest(profile).await? else {
            finish(
                run,
                "error",
                json!({}),
                Some(format!("export profile {profile:?} does not exist")),
                changes,
            );
            return Ok(());
        };
        let params = ExportParams {
            profile: latest.name.clone(),
            revision: latest.revision,
            as_of: run.due_at,
            base: None,
        };
        let request = JobRequest::of::<Export>(&params)?
            .with_key(format!("run:{}:export", run.id))
            .with_attempts(self.config.job_max_attempts);
        let target = RunTargetRecord {
            target_id: EXPORT_TARGET.into(),
            target_name: format!(
                "export profile {} revision {}",
                latest.name, latest.revision
            ),
            scan_id: stella_store::JobId::generate(),
            previous_scan_id: None,
            state: "queued".into(),
            diff: None,
        };
        let counts = json!({"targets": 1, "queued": 1, "completed": 0, "failed": 0});
        self.queue(run, vec![(request, target)], counts, changes)
    }

    /// One scan job per target the run names (all the tenant's when it names none).
    fn plan_rescan(
        &self,
        run: &RunRecord,
        all: &[TargetRecord],
        changes: &mut SchedulerChanges,
    ) -> Result<(), StoreError> {
        let named = |t: &TargetRecord| {
            run.targets
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| *n == t.name || n == t.id.as_str()))
        };
        let targets: Vec<&TargetRecord> = all.iter().filter(|t| named(t)).collect();
        let missing: Vec<&String> = run
            .targets
            .iter()
            .flatten()
            .filter(|n| {
                !all.iter()
                    .any(|t| t.name == **n || t.id.as_str() == n.as_str())
            })
            .collect();
        let mut counts =
            json!({"targets": targets.len(), "queued": targets.len(), "completed": 0, "failed": 0});
        if !missing.is_empty() {
            counts["missing_targets"] = json!(missing);
        }
        if targets.is_empty() {
            let error = (!missing.is_empty()).then(|| "none of the run's targets exist".to_owned());
            let state = if error.is_some() {
                "error"
            } else {
                "completed"
            };
            finish(run, state, counts, error, changes);
            return Ok(());
        }
        let jobs = targets
            .iter()
            .map(|target| {
                let params = ScanParams {
                    sbom_sha256: target.sbom_sha256.clone(),
                    name: target.name.clone(),
                    evaluated_at: run.due_at,
                };
                let request = JobRequest::of::<Scan>(&params)?
                    .with_key(format!("run:{}:{}", run.id, target.id))
                    .with_attempts(self.config.job_max_attempts);
                let row = RunTargetRecord {
                    target_id: target.id.to_string(),
                    target_name: target.name.clone(),
                    scan_id: stella_store::JobId::generate(),
                    previous_scan_id: target.last_scan_id.clone(),
                    state: "queued".into(),
                    diff: None,
                };
                Ok((request, row))
            })
            .collect::<Result<_, StoreError>>()?;
        self.queue(run, jobs, counts, changes)
    }

    /// Records ended scans with their diffs; completes runs with nothing left to wait for.
    async fn track(&self, token: i64, now: DateTime<Utc>) -> Result<(usize, usize), StoreError> {
        let scheduling = self.store.scheduling();
        if !scheduling
            .runs_in_state("queued", None, 1)
            .await?
            .is_empty()
        {
            scheduling.start_running_runs(token, now).await?;
        }
        let ended = scheduling.ended_run_targets(BATCH).await?;
        if ended.is_empty() {
            return Ok((0, 0));
        }
        let mut changes = SchedulerChanges::default();
        let mut runs = BTreeSet::new();
        for e in &ended {
            let sync = e.target.target_id == SOURCES;
            let export = e.target.target_id == EXPORT_TARGET;
            let (state, diff) = if e.job_state == "succeeded" && !sync && !export {
                let current = findings(&self.store, &e.tenant, &e.target.scan_id).await?;
                let previous = match &e.target.previous_scan_id {
                    Some(p) => Some(findings(&self.store, &e.tenant, p).await?),
                    None => None,
                };
                let d = diff(previous.as_deref(), &current);
                changes
                    .events
                    .extend(diff_events(&self.store, e, &d).await?);
                ("completed", d)
            } else {
                // An advisory sync's outcome is its result; a failed job's is why it
                // ended, as the job itself records it, naming which job it was.
                let job = self
                    .store
                    .tenant(&e.tenant)
                    .jobs()
                    .get(&e.target.scan_id)
                    .await?;
                if e.job_state == "succeeded" {
                    ("completed", job.result.unwrap_or(Value::Null))
                } else {
                    let what = if sync {
                        AdvisorySync::NAME
                    } else if export {
                        Export::NAME
                    } else {
                        Scan::NAME
                    };
                    let error = match job.last_error {
                        Some(reason) => format!("the {what} job {}: {reason}", e.job_state),
                        None => format!("the {what} job {}", e.job_state),
                    };
                    ("failed", json!({ "error": error }))
                }
            };
            changes.outcomes.push(TargetOutcome {
                tenant: e.tenant.clone(),
                run_id: e.run_id.clone(),
                target_id: e.target.target_id.clone(),
                scan_id: e.target.scan_id.clone(),
                state: state.into(),
                diff,
            });
            runs.insert((e.tenant.clone(), e.run_id.clone()));
        }
        scheduling.apply(token, &changes, now).await?;
        // Each touched run's progress; a run with nothing left to wait for completes.
        let mut updates = SchedulerChanges::default();
        let mut completed = 0;
        for (tenant, id) in &runs {
            let scope = self.store.tenant(tenant);
            let run = scope.runs().get(id).await?;
            if !matches!(run.state.as_str(), "queued" | "running") {
                continue;
            }
            let targets = scope.runs().targets(id).await?;
            let count = |state: &str| targets.iter().filter(|t| t.state == state).count();
            let sum = |field: &str| {
                targets
                    .iter()
                    .filter_map(|t| t.diff.as_ref()?.get(field)?.as_u64())
                    .sum::<u64>()
            };
            let waiting = count("queued");
            let mut counts = run.counts.clone();
            counts["queued"] = json!(waiting);
            counts["completed"] = json!(count("completed"));
            counts["failed"] = json!(count("failed"));
            counts["new_findings"] = json!(sum("new_count"));
            counts["resolved_findings"] = json!(sum("resolved_count"));
            counts["changed_findings"] = json!(sum("changed_count"));
            let done = waiting == 0;
            completed += usize::from(done);
            // A run none of whose jobs succeeded did not complete: it ended in error, with
            // the first job's reason (an advisory sync has one job; a re-scan says how
            // many of its targets failed).
            let all_failed = done && count("completed") == 0 && count("failed") > 0;
            let error = all_failed.then(|| {
                let first = targets
                    .iter()
                    .find_map(|t| t.diff.as_ref()?.get("error")?.as_str())
                    .unwrap_or("the job failed");
                if targets.len() == 1 {
                    first.to_owned()
                } else {
                    format!("all {} targets failed; the first: {first}", targets.len())
                }
            });
            updates.run_updates.push(RunUpdate {
                tenant: tenant.clone(),
                id: id.clone(),
                from: run.state.clone(),
                to: match (done, all_failed) {
                    (true, true) => "error".into(),
                    (true, false) => "completed".into(),
                    (false, _) => run.state.clone(),
                },
                counts,
                error,
                finished: done,
            });
        }
        if !updates.run_updates.is_empty() {
            scheduling.apply(token, &updates, now).await?;
        }
        Ok((ended.len(), completed))
    }
}

/// A run ended at planning time (nothing to do, or an error).
fn finish(
    run: &RunRecord,
    state: &str,
    counts: Value,
    error: Option<String>,
    changes: &mut SchedulerChanges,
) {
    changes.run_updates.push(RunUpdate {
        tenant: run.tenant.clone(),
        id: run.id.clone(),
        from: "planning".into(),
        to: state.into(),
        counts,
        error,
        finished: true,
    });
}

/// The impact-index keys (`ecosystem/name`) of the packages a VEX document's statements
/// name; `None` when a statement names its product otherwise (a `bom-ref`) or a purl
/// outside the supported ecosystems.
fn vex_packages(statements: &Value) -> Option<Vec<String>> {
    use stella_domain::vex::{Product, VexStatement};
    let statements: Vec<VexStatement> = serde_json::from_value(statements.clone()).ok()?;
    let mut packages = BTreeSet::new();
    for statement in &statements {
        let purl = match &statement.product {
            Product::Purl { purl } => purl,
            // Names no component: it matches nothing, so it impacts no target.
            Product::Unidentified { .. } => continue,
            // A BOM ref may name any target's component: all of them.
            _ => return None,
        };
        let key = stella_domain::purl::Purl::parse(purl).ok()?.package_key()?;
        packages.insert(format!("{}/{}", key.ecosystem.osv_name(), key.name));
    }
    Some(packages.into_iter().collect())
}

fn first(value: &Value, n: usize) -> Value {
    value
        .as_array()
        .map(|a| Value::from(a.iter().take(n).cloned().collect::<Vec<_>>()))
        .unwrap_or(Value::Null)
}

/// Every finding of a scan (none if it has no verdict).
async fn findings(
    store: &Store,
    tenant: &TenantId,
    scan: &stella_store::JobId,
) -> Result<Vec<Finding>, StoreError> {
    let scans = store.tenant(tenant).scans();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = scans.findings(scan, cursor.as_deref(), 500).await?;
        out.extend(page.items.into_iter().map(|f| Finding {
            severity: severity_of(&f.finding),
            vex_status: vex_status_of(&f.finding),
            vulnerability_id: f.vulnerability_id,
            purl: f.purl,
            disposition: f.disposition,
        }));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// A stored finding's severity: its advisory's label, or the rating of its CVSS score.
fn severity_of(finding: &Value) -> String {
    if let Some(label) = finding["severity_label"].as_str() {
        let label = label.to_ascii_lowercase();
        if ["critical", "high", "medium", "moderate", "low", "none"].contains(&label.as_str()) {
            return if label == "moderate" {
                "medium".into()
            } else {
                label
            };
        }
    }
    match finding["severity"].as_f64() {
        Some(score) => stella_domain::export::severity_rating(score).to_owned(),
        None => "unknown".to_owned(),
    }
}

/// What the VEX statements a finding cites say, as one status (empty without VEX).
fn vex_status_of(finding: &Value) -> String {
    let claims = finding
        .pointer("/assessment/claims")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            c["evidence"]
                .as_str()
                .is_some_and(|e| e.starts_with("vex:"))
        });
    let mut status = "";
    for claim in claims {
        match (claim["question"].as_str(), claim["value"].as_bool()) {
            (Some("fixed"), Some(true)) => return "fixed".into(),
            (Some("applies"), Some(false)) | (Some("mitigated"), Some(true)) => {
                status = "not_affected";
            }
            (Some("applies"), Some(true)) if status.is_empty() => status = "affected",
            _ => {}
        }
    }
    status.to_owned()
}

/// The events a target's diff makes: `finding.new` and `finding.resolved` (with the
/// findings, at most 200 listed), and `verdict.changed` when the scan's disposition is
/// not the previous scan's. Keyed by the scan, so a re-tracked target makes none twice.
async fn diff_events(
    store: &Store,
    ended: &stella_store::repo::EndedRunTarget,
    diff: &Value,
) -> Result<Vec<(Option<TenantId>, NewEvent)>, StoreError> {
    let tenant = &ended.tenant;
    let target = &ended.target;
    let scan = target.scan_id.as_str();
    let base = json!({
        "scan_id": scan,
        "run_id": ended.run_id.as_str(),
        "target": target.target_name,
        "previous_scan_id": target.previous_scan_id.as_ref().map(|p| p.as_str()),
    });
    let mut events = Vec::new();
    for (kind, list, count) in [
        ("finding.new", "new", "new_count"),
        ("finding.resolved", "resolved", "resolved_count"),
    ] {
        let n = diff[count].as_u64().unwrap_or(0);
        if n == 0 {
            continue;
        }
        let mut payload = base.clone();
        payload["count"] = json!(n);
        payload["findings"] = diff[list].clone();
        events.push((
            Some(tenant.clone()),
            NewEvent {
                kind: kind.into(),
                dedupe_key: format!("{kind}:{tenant}:{scan}"),
                payload,
            },
        ));
    }
    if let Some(previous) = &target.previous_scan_id {
        let scans = store.tenant(tenant).scans();
        let now = scans
            .get(&target.scan_id)
            .await?
            .and_then(|s| s.disposition);
        let was = scans.get(previous).await?.and_then(|s| s.disposition);
        if let (Some(now), Some(was)) = (now, was) {
            if now != was {
                let mut payload = base.clone();
                payload["from"] = json!(was);
                payload["to"] = json!(now);
                payload["previous_disposition"] = json!(was);
                payload["disposition"] = json!(now);
                payload["changed"] = diff["changed"].clone();
                events.push((
                    Some(tenant.clone()),
                    NewEvent {
                        kind: "verdict.changed".into(),
                        dedupe_key: format!("verdict.changed:{tenant}:{scan}"),
                        payload,
                    },
                ));
            }
        }
    }
    Ok(events)
}
