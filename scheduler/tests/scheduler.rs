//! The scheduler against a real store (SQLite and PostgreSQL) with a fake clock, no
//! sleeps: two scheduler instances share one database and every due time fires exactly
//! once, across a leader's death; a fenced-out leader writes nothing; missed-fire
//! policies after downtime; a DST gap in the schedule's timezone; drift runs only for the
//! targets an advisory touches; run tracking with diffs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use stella_actors::scan::ScanDeps;
use stella_actors::KindDeps;
use stella_domain::dsse::SigningKey;
use stella_domain::osv::Limits;
use stella_scheduler::manage::{self, ScheduleInput, TargetSource};
use stella_scheduler::{Scheduler, SchedulerConfig};
use stella_store::object::{FolderStore, Objects};
use stella_store::repo::{RunRecord, SbomRecord, SchedulerChanges};
use stella_store::{Store, StoreError, TenantId};
use stella_supervisor::Registry;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct World {
    store: Store,
    objects: Objects,
    registry: Registry,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(store: Store) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::new(Arc::new(FolderStore::open(dir.path()).unwrap()));
        let registry = stella_actors::kinds(&KindDeps {
            scan: ScanDeps::new(objects.clone(), Arc::new(SigningKey::generate([5; 32]))),
            outbound: stella_actors::outbound::Outbound::new(&Default::default()),
            export_metrics: Default::default(),
            export_destinations: Default::default(),
            notify: stella_actors::notify::NotifyDeps::new(
                stella_actors::outbound::Outbound::new(&Default::default()),
                stella_actors::notify::wire::SecretBox::from_key(&[7; 32]),
                &Default::default(),
            ),
            shadow_metrics: Default::default(),
        });
        Self {
            store,
            objects,
            registry,
            _dir: dir,
        }
    }

    fn scheduler(&self, holder: &str) -> Scheduler {
        Scheduler::new(
            self.store.clone(),
            self.registry.clone(),
            holder,
            SchedulerConfig {
                lease_ttl: StdDuration::from_secs(15),
                poll_interval: StdDuration::from_millis(100),
                misfire_grace: Duration::seconds(60),
                job_max_attempts: 3,
            },
        )
    }

    async fn tenant(&self, name: &str) -> TenantId {
        let tenant = TenantId::parse(name).unwrap();
        self.store
            .tenants()
            .ensure(&tenant, name, Utc::now())
            .await
            .unwrap();
        tenant
    }

    async fn schedule(
        &self,
        tenant: &TenantId,
        input: serde_json::Value,
        now: DateTime<Utc>,
    ) -> String {
        let input: ScheduleInput = serde_json::from_value(input).unwrap();
        manage::create_schedule(&self.store, tenant, input, "test", 0, now)
            .await
            .unwrap()
            .id
            .to_string()
    }

    /// Stores an SBOM of npm packages for `tenant` and registers it as target `name`.
    async fn target(&self, tenant: &TenantId, name: &str, packages: &[(&str, &str)]) {
        let components: Vec<_> = packages
            .iter()
            .map(|(n, v)| json!({"type": "library", "name": n, "version": v, "purl": format!("pkg:npm/{n}@{v}")}))
            .collect();
        let sbom =
            json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components});
        let bytes = sbom.to_string();
        let stored = self
            .objects
            .put_content(Bytes::from(bytes.clone()))
            .await
            .unwrap();
        let sha256 = stored.digest.to_string();
        self.store
            .tenant(tenant)
            .scans()
            .record_sbom(&SbomRecord {
                sha256: sha256.clone(),
                name: name.into(),
                format: "CycloneDX".into(),
                spec_version: "1.5".into(),
                size_bytes: bytes.len() as u64,
                created_at: Utc::now(),
            })
            .await
            .unwrap();
        manage::put_target(
            &self.store,
            &self.objects,
            tenant,
            name,
            TargetSource::Sbom(sha256),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
    }

    /// Imports OSV advisories (a JSON array) as the source `osv:test` at `at`.
    async fn import(
        &self,
        advisories: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> stella_actors::advisory_sync::ImportReport {
        stella_actors::advisory_sync::import_advisories(
            &self.store,
            &self.objects,
            "osv:test",
            advisories.to_string().as_bytes(),
            Limits::default(),
            at,
        )
        .await
        .unwrap()
    }

    /// The durable runtime on this world's store (the embedded mailbox), running every
    /// role: the scans and shadow jobs the scheduler submits run at once.
    async fn runtime(&self) -> stella_supervisor::Runtime {
        use stella_store::mailbox::{ConsumerName, Mailbox};
        use stella_supervisor::{Runtime, RuntimeConfig, RuntimeMetrics};
        let mailbox: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::EmbeddedMailbox::new(
            self.store.clone(),
            common::mailbox_config(),
        ));
        Runtime::start(RuntimeConfig {
            store: self.store.clone(),
            mailbox,
            settings: stella_config::RuntimeSettings {
                poll_interval_ms: 5,
                ..Default::default()
            },
            roles: stella_actors::Role::ALL
                .iter()
                .map(|r| r.mailbox())
                .collect(),
            registry: self.registry.clone(),
            metrics: RuntimeMetrics::new(&prometheus::Registry::new()).unwrap(),
            consumer: ConsumerName::generate(),
        })
        .await
        .unwrap()
    }

    async fn runs(&self, tenant: &TenantId) -> Vec<RunRecord> {
        let mut runs = self
            .store
            .tenant(tenant)
            .runs()
            .list(None, None, 500)
            .await
            .unwrap()
            .items;
        runs.reverse();
        runs
    }
}

/// Two schedulers tick every 10 fake seconds over an hour of `*/5 * * * *`; the first
/// dies at 00:22. Every due time has exactly one run, none missed.
async fn each_due_time_fires_once_across_a_leader_death(store: Store) {
    let w = World::new(store).await;
    let tenant = w.tenant("acme").await;
    let start = t("2026-12-01T00:00:00Z");
    w.schedule(
        &tenant,
        json!({"name": "every-5", "cron": "*/5 * * * *", "jitter_seconds": 0}),
        start,
    )
    .await;
    let a = w.scheduler("process-a");
    let b = w.scheduler("process-b");
    let mut now = start;
    let mut leaders = BTreeMap::new();
    while now < t("2026-12-01T01:00:00Z") {
        now += Duration::seconds(10);
        let a_alive = now < t("2026-12-01T00:22:00Z");
        if a_alive {
            let report = a.tick(now).await.unwrap();
            if report.leader {
                *leaders.entry("a").or_insert(0) += 1;
            }
        }
        let report = b.tick(now).await.unwrap();
        if report.leader {
            *leaders.entry("b").or_insert(0) += 1;
        }
    }
    // A led until it died; B took over.
    assert!(leaders["a"] > 0 && leaders["b"] > 0, "{leaders:?}");
    let runs = w.runs(&tenant).await;
    let dues: Vec<String> = runs
        .iter()
        .map(|r| r.due_at.format("%H:%M").to_string())
        .collect();
    let expected: Vec<String> = (1..=12)
        .map(|i| {
            (start + Duration::minutes(5 * i))
                .format("%H:%M")
                .to_string()
        })
        .collect();
    assert_eq!(dues, expected, "each due time once, none missed");
    assert!(runs
        .iter()
        .all(|r| r.trigger == "cron" && r.error.is_none()));
    // No targets: each run completes at once.
    assert!(runs.iter().all(|r| r.state == "completed"), "{runs:?}");
}

/// A process that lost the lease (it paused past its expiry) cannot write with its old
/// token, even in the middle of a pass.
async fn a_fenced_out_leader_writes_nothing(store: Store) {
    let w = World::new(store).await;
    let now = t("2026-12-01T00:00:00Z");
    let scheduling = w.store.scheduling();
    let ttl = StdDuration::from_secs(15);
    let old = scheduling
        .acquire_lease("scheduler", "a", ttl, now)
        .await
        .unwrap()
        .unwrap();
    assert!(scheduling
        .acquire_lease("scheduler", "b", ttl, now)
        .await
        .unwrap()
        .is_none());
    let later = now + Duration::seconds(16);
    let new = scheduling
        .acquire_lease("scheduler", "b", ttl, later)
        .await
        .unwrap()
        .unwrap();
    assert!(new.token > old.token);
    let changes = SchedulerChanges {
        cursor: Some(("scheduler.events".into(), 1_000_000)),
        ..SchedulerChanges::default()
    };
    let refused = scheduling.apply(old.token, &changes, later).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_ne!(
        scheduling.cursor("scheduler.events").await.unwrap(),
        1_000_000
    );
    scheduling.apply(new.token, &changes, later).await.unwrap();
    assert_eq!(
        scheduling.cursor("scheduler.events").await.unwrap(),
        1_000_000
    );
    // Renewing keeps the token; the old holder gets nothing while it is valid.
    let renewed = scheduling
        .acquire_lease("scheduler", "b", ttl, later + Duration::seconds(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.token, new.token);
    assert!(scheduling
        .acquire_lease("scheduler", "a", ttl, later + Duration::seconds(5))
        .await
        .unwrap()
        .is_none());
}

/// Down from 00:30 to 04:30 over an hourly schedule: `fire-once` runs the 04:00 due time
/// once and says three were missed; `skip` records a cancelled run and fires nothing.
async fn missed_fire_policies_after_downtime(store: Store) {
    let w = World::new(store).await;
    let tenant = w.tenant("acme").await;
    let start = t("2026-12-01T00:30:00Z");
    w.schedule(
        &tenant,
        json!({"name": "once", "cron": "0 * * * *", "jitter_seconds": 0, "missed": "fire-once"}),
        start,
    )
    .await;
    w.schedule(
        &tenant,
        json!({"name": "skip", "cron": "0 * * * *", "jitter_seconds": 0, "missed": "skip"}),
        start,
    )
    .await;
    let metrics = stella_scheduler::SchedulerMetrics::new(&prometheus::Registry::new()).unwrap();
    let s = w.scheduler("p").with_metrics(metrics.clone());
    s.tick(start).await.unwrap();
    s.tick(t("2026-12-01T04:30:00Z")).await.unwrap();
    let runs = w.runs(&tenant).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    // The scheduler's lag: both runs of 04:00 were created half an hour late.
    assert_eq!(metrics.fire_lag.get_sample_count(), 2);
    assert!((metrics.fire_lag.get_sample_sum() - 3600.0).abs() < 1e-6);
    let by_name = |name: &str| {
        runs.iter()
            .find(|r| r.reason["schedule"] == name)
            .unwrap()
            .clone()
    };
    let once = by_name("once");
    assert_eq!(once.due_at, t("2026-12-01T04:00:00Z"));
    assert_eq!(once.reason["missed"], 3);
    assert_eq!(once.state, "completed");
    let skip = by_name("skip");
    assert_eq!(skip.state, "cancelled");
    assert!(
        skip.error.as_deref().unwrap().contains("4 due time(s)"),
        "{skip:?}"
    );
    // Both continue at 05:00.
    let schedule = w
        .store
        .tenant(&tenant)
        .schedules()
        .get("skip")
        .await
        .unwrap();
    assert_eq!(schedule.next_due_at, Some(t("2026-12-01T05:00:00Z")));
    s.tick(t("2026-12-01T05:00:01Z")).await.unwrap();
    assert_eq!(w.runs(&tenant).await.len(), 4);
    // Those of 05:00, a second late each.
    assert_eq!(metrics.fire_lag.get_sample_count(), 4);
    assert!((metrics.fire_lag.get_sample_sum() - 3602.0).abs() < 1e-6);
}

/// `30 2 * * *` in Europe/Berlin across the spring-forward night (02:00 → 03:00 on
/// 2026-03-29): that day's run fires once, at 03:00 local (01:00Z), ticking every five minutes.
async fn a_dst_gap_fires_once_when_the_gap_ends(store: Store) {
    let w = World::new(store).await;
    let tenant = w.tenant("acme").await;
    let start = t("2026-03-27T12:00:00Z");
    w.schedule(&tenant, json!({"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "jitter_seconds": 0}), start).await;
    let s = w.scheduler("p");
    let mut now = start;
    while now < t("2026-03-30T12:00:00Z") {
        now += Duration::minutes(5);
        s.tick(now).await.unwrap();
    }
    let dues: Vec<DateTime<Utc>> = w.runs(&tenant).await.iter().map(|r| r.due_at).collect();
    assert_eq!(
        dues,
        [
            t("2026-03-28T01:30:00Z"),
            t("2026-03-29T01:00:00Z"),
            t("2026-03-30T00:30:00Z")
        ]
    );
}

/// An advisory for `left-pad` re-evaluates, in each tenant, only the targets whose SBOM
/// contains it; the run plans one scan per impacted target.
async fn drift_runs_only_impacted_targets(store: Store) {
    let w = World::new(store).await;
    let acme = w.tenant("acme").await;
    let globex = w.tenant("globex").await;
    w.target(&acme, "web", &[("left-pad", "1.3.0"), ("chalk", "2.0.0")])
        .await;
    w.target(&acme, "api", &[("chalk", "2.0.0")]).await;
    w.target(&globex, "shop", &[("left-pad", "1.1.0")]).await;
    w.target(&globex, "blog", &[("express", "4.0.0")]).await;
    let s = w.scheduler("p");
    let now = Utc::now();
    s.tick(now).await.unwrap();
    let advisory = json!([{
        "id": "T-1", "modified": "2024-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]}]
    }]);
    w.import(&advisory, now).await;
    let report = s.tick(now + Duration::seconds(1)).await.unwrap();
    assert_eq!(report.triggered, 2, "{report:?}");
    for (tenant, impacted) in [(&acme, "web"), (&globex, "shop")] {
        let runs = w.runs(tenant).await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        let run = &runs[0];
        assert_eq!(run.trigger, "advisory");
        assert_eq!(run.targets.as_deref(), Some(&[impacted.to_string()][..]));
        assert_eq!(run.state, "queued");
        assert_eq!(run.reason["advisories"][0], "osv:test:T-1");
        let results = w
            .store
            .tenant(tenant)
            .runs()
            .targets(&run.id)
            .await
            .unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].target_name, impacted);
        // One scan job, idempotent per (run, target).
        let job = w
            .store
            .tenant(tenant)
            .jobs()
            .get(&results[0].scan_id)
            .await
            .unwrap();
        assert_eq!(job.kind, "scan");
        assert_eq!(job.params["name"], impacted);
    }
    // The same event is not turned into runs twice.
    let again = s.tick(now + Duration::seconds(2)).await.unwrap();
    assert_eq!(again.triggered, 0);
    // Re-importing the same advisory changes nothing and triggers nothing.
    w.import(&advisory, now).await;
    assert_eq!(
        s.tick(now + Duration::seconds(3)).await.unwrap().triggered,
        0
    );
}

/// Overlap `skip` records a firing while the previous run is active as cancelled; `queue`
/// makes it wait in planning until the previous run ends.
async fn overlap_policies(store: Store) {
    let w = World::new(store).await;
    let tenant = w.tenant("acme").await;
    w.target(&tenant, "web", &[("left-pad", "1.3.0")]).await;
    let start = t("2026-12-01T00:00:30Z");
    w.schedule(
        &tenant,
        json!({"name": "skip", "cron": "* * * * *", "jitter_seconds": 0, "overlap": "skip"}),
        start,
    )
    .await;
    w.schedule(
        &tenant,
        json!({"name": "queue", "cron": "* * * * *", "jitter_seconds": 0, "overlap": "queue"}),
        start,
    )
    .await;
    let s = w.scheduler("p");
    // 00:01 fires both; their scans never run here, so the runs stay queued.
    s.tick(t("2026-12-01T00:01:00Z")).await.unwrap();
    s.tick(t("2026-12-01T00:02:00Z")).await.unwrap();
    let runs = w.runs(&tenant).await;
    let of = |name: &str| -> Vec<(String, String)> {
        runs.iter()
            .filter(|r| r.reason["schedule"] == name)
            .map(|r| (r.due_at.format("%H:%M").to_string(), r.state.clone()))
            .collect()
    };
    assert_eq!(
        of("skip"),
        [
            ("00:01".into(), "queued".into()),
            ("00:02".into(), "cancelled".into())
        ]
    );
    assert_eq!(
        of("queue"),
        [
            ("00:01".into(), "queued".into()),
            ("00:02".into(), "planning".into())
        ]
    );
}

/// A run's counts follow its targets' scans as they end; a failed scan is a failed
/// target, and the run ends when none is left waiting: in error when none succeeded,
/// saying so.
async fn run_progress_follows_the_scans(store: Store) {
    let w = World::new(store).await;
    let tenant = w.tenant("acme").await;
    w.target(&tenant, "api", &[("chalk", "2.0.0")]).await;
    w.target(&tenant, "web", &[("left-pad", "1.3.0")]).await;
    let now = t("2026-12-01T00:00:00Z");
    let id = w
        .schedule(&tenant, json!({"name": "all", "cron": "@daily"}), now)
        .await;
    let run = manage::trigger(&w.store, &tenant, &id, now).await.unwrap();
    let s = w.scheduler("p");
    s.tick(now).await.unwrap();
    let runs = w.store.tenant(&tenant).runs();
    let results = runs.targets(&run.id).await.unwrap();
    assert_eq!(results.len(), 2);
    let cancel = |job: stella_store::JobId| {
        let store = w.store.clone();
        let tenant = tenant.clone();
        async move {
            let transition = stella_store::repo::Transition::new(
                stella_store::repo::JobState::Queued,
                stella_store::repo::JobState::Cancelled,
            );
            store
                .tenant(&tenant)
                .jobs()
                .transition(&job, &transition, &[], Utc::now())
                .await
                .unwrap();
        }
    };
    cancel(results[0].scan_id.clone()).await;
    s.tick(now + Duration::seconds(1)).await.unwrap();
    let mid = runs.get(&run.id).await.unwrap();
    assert!(
        ["queued", "running"].contains(&mid.state.as_str()),
        "{mid:?}"
    );
    assert_eq!(
        (mid.counts["failed"].as_u64(), mid.counts["queued"].as_u64()),
        (Some(1), Some(1)),
        "{mid:?}"
    );
    cancel(results[1].scan_id.clone()).await;
    s.tick(now + Duration::seconds(2)).await.unwrap();
    let end = runs.get(&run.id).await.unwrap();
    assert_eq!(end.state, "error");
    assert_eq!(
        end.error.as_deref(),
        Some("all 2 targets failed; the first: the scan job cancelled"),
        "{end:?}"
    );
    assert_eq!(end.counts["failed"], 2);
    assert_eq!(end.counts["queued"], 0);
    assert!(end.finished_at.is_some());
}

/// An export schedule starts one export job of its profile per due time: the profile's
/// latest revision, as of the due time, so whoever plans the firing exports the same. A
/// profile that is gone ends the run in error, saying so.
async fn an_export_schedule_runs_its_profile_as_of_each_due_time(store: Store) {
    let w = World::new(store).await;
    let tenant = w.tenant("acme").await;
    w.target(&tenant, "api", &[("chalk", "2.0.0")]).await;
    for retention in [30, 7] {
        stella_actors::export::put_profile(
            &w.store,
            &Default::default(),
            &tenant,
            "nightly",
            "csv",
            &json!({"selectors": {"targets": ["api"]}, "retention_days": retention}),
            "test",
            Utc::now(),
        )
        .await
        .unwrap();
    }
    let start = t("2026-12-01T00:00:00Z");
    let refused: Result<ScheduleInput, _> = serde_json::from_value(json!({
        "name": "no-profile", "cron": "0 2 * * *", "kind": "export",
    }));
    let refused = manage::create_schedule(&w.store, &tenant, refused.unwrap(), "test", 0, start)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("profile"), "{refused}");
    w.schedule(
        &tenant,
        json!({"name": "nightly-export", "cron": "0 2 * * *", "kind": "export",
               "profile": "nightly", "jitter_seconds": 0}),
        start,
    )
    .await;
    let s = w.scheduler("p");
    let due = t("2026-12-01T02:00:00Z");
    s.tick(due + Duration::seconds(1)).await.unwrap();
    s.tick(due + Duration::seconds(2)).await.unwrap();
    let runs = w.runs(&tenant).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].profile.as_deref(), Some("nightly"));
    let targets = w
        .store
        .tenant(&tenant)
        .runs()
        .targets(&runs[0].id)
        .await
        .unwrap();
    assert_eq!(targets.len(), 1);
    let job = w
        .store
        .tenant(&tenant)
        .jobs()
        .get(&targets[0].scan_id)
        .await
        .unwrap();
    assert_eq!(job.kind, "export");
    assert_eq!(
        job.params,
        json!({"profile": "nightly", "revision": 2, "as_of": "2026-12-01T02:00:00Z"})
    );

    // The profile's schedule outlives the profile's name: a firing of a name that is
    // not a profile ends in error.
    let mut input: ScheduleInput = serde_json::from_value(json!({
        "name": "orphan", "cron": "0 3 * * *", "kind": "export", "profile": "gone",
        "jitter_seconds": 0,
    }))
    .unwrap();
    input.enabled = Some(true);
    manage::create_schedule(&w.store, &tenant, input, "test", 0, start)
        .await
        .unwrap();
    let due = t("2026-12-01T03:00:00Z");
    s.tick(due + Duration::seconds(1)).await.unwrap();
    s.tick(due + Duration::seconds(2)).await.unwrap();
    let orphan = w
        .runs(&tenant)
        .await
        .into_iter()
        .find(|r| r.profile.as_deref() == Some("gone"))
        .unwrap();
    assert_eq!(orphan.state, "error");
    assert_eq!(
        orphan.error.as_deref(),
        Some("export profile \"gone\" does not exist")
    );
}

/// A profile that follows `scan.completed` of a target starts an export run for each
/// scan of that target, once per event, and not for scans of other targets.
async fn a_profile_triggered_by_scans_runs_after_each_scan_of_its_targets(store: Store) {
    use stella_store::repo::{Effect, JobState, NewEvent, Transition};
    let w = World::new(store).await;
    let tenant = w.tenant("acme").await;
    stella_actors::export::put_profile(
        &w.store,
        &Default::default(),
        &tenant,
        "after-api-scans",
        "csv",
        &json!({"selectors": {"targets": ["api"]},
                "triggers": [{"on": "scan.completed", "targets": ["api"]}]}),
        "test",
        Utc::now(),
    )
    .await
    .unwrap();
    let refused = stella_actors::export::put_profile(
        &w.store,
        &Default::default(),
        &tenant,
        "bad",
        "csv",
        &json!({"selectors": {"targets": ["api"]}, "triggers": [{"on": "scan.started"}]}),
        "test",
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("scan.started"), "{refused}");
    let s = w.scheduler("p");
    let now = Utc::now();
    s.tick(now).await.unwrap();
    // Events on the stream as a scan's seal writes them; here a job's transition writes
    // them (the scheduler reads the stream, whoever wrote it).
    let emit = |target: &'static str, scan: &'static str| {
        let store = w.store.clone();
        let registry = w.registry.clone();
        let tenant = tenant.clone();
        async move {
            let request =
                stella_supervisor::JobRequest::of::<stella_actors::diag::Noop>(&Default::default())
                    .unwrap();
            let job = stella_supervisor::submit(&store, &registry, &tenant, &request, Utc::now())
                .await
                .unwrap()
                .job;
            let mut change = Transition::new(JobState::Queued, JobState::Cancelled);
            change.effects = vec![Effect::Event(NewEvent {
                kind: "scan.completed".into(),
                dedupe_key: format!("scan.completed:{scan}"),
                payload: json!({"scan_id": scan, "name": target}),
            })];
            store
                .tenant(&tenant)
                .jobs()
                .transition(&job.id, &change, &[], Utc::now())
                .await
                .unwrap();
        }
    };
    emit("api", "scan-1").await;
    emit("web", "scan-2").await;
    emit("api", "scan-3").await;
    s.tick(now + Duration::seconds(1)).await.unwrap();
    s.tick(now + Duration::seconds(2)).await.unwrap();
    let runs = w.runs(&tenant).await;
    let exports: Vec<&RunRecord> = runs.iter().filter(|r| r.kind == "export").collect();
    assert_eq!(exports.len(), 2, "{runs:?}");
    for (run, scan) in exports.iter().zip(["scan-1", "scan-3"]) {
        assert_eq!(run.trigger, "event");
        assert_eq!(run.profile.as_deref(), Some("after-api-scans"));
        assert_eq!(run.reason["scan_id"], scan);
        let targets = w
            .store
            .tenant(&tenant)
            .runs()
            .targets(&run.id)
            .await
            .unwrap();
        let job = w
            .store
            .tenant(&tenant)
            .jobs()
            .get(&targets[0].scan_id)
            .await
            .unwrap();
        assert_eq!(job.kind, "export");
    }
    // Ticking again starts nothing more: each event is followed once.
    s.tick(now + Duration::seconds(3)).await.unwrap();
    assert_eq!(w.runs(&tenant).await.len(), runs.len());
}

/// An exception waives a finding from its approval to its expiry: the scheduler
/// re-evaluates the target when it is approved and again when it expires (on its fake
/// clock), the verdict flips to pass and back to warn once each, and the expired
/// exception is in no later verdict's trace.
async fn an_exception_applies_until_it_expires_and_the_verdict_flips_back_once(store: Store) {
    use stella_store::repo::{Actor, ExceptionDecision, NewException};
    let w = World::new(store).await;
    let acme = w.tenant("acme").await;
    w.target(&acme, "web", &[("left-pad", "1.3.0")]).await;
    let advisory = json!([{
        "id": "T-EXC", "modified": "2024-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]}]
    }]);
    // The fake clock runs three hours behind: the scans a run submits are due at the
    // run's time, so the runtime (on the real clock) takes them at once.
    let t0 = Utc::now() - Duration::hours(3);
    w.import(&advisory, t0).await;
    let runtime = w.runtime().await;
    let s = w.scheduler("p");
    // Ticks until the run of `trigger` that the tick at `now` creates has completed;
    // returns the target's scan and how many runs of that trigger exist.
    let settle = |now: DateTime<Utc>, trigger: &'static str| {
        let (s, w, acme) = (&s, &w, &acme);
        async move {
            s.tick(now).await.unwrap();
            let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
            loop {
                let runs: Vec<RunRecord> = w
                    .runs(acme)
                    .await
                    .into_iter()
                    .filter(|r| r.trigger == trigger)
                    .collect();
                if let Some(run) = runs.last().filter(|r| r.state == "completed") {
                    let targets = w.store.tenant(acme).runs().targets(&run.id).await.unwrap();
                    let scan = w
                        .store
                        .tenant(acme)
                        .scans()
                        .get(&targets[0].scan_id)
                        .await
                        .unwrap()
                        .unwrap();
                    return (scan, runs.len());
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no completed {trigger} run: {runs:?}"
                );
                s.tick(now).await.unwrap();
                tokio::time::sleep(StdDuration::from_millis(20)).await;
            }
        }
    };
    // Before: the finding has no severity, so the default policy warns.
    let (before, _) = settle(t0, "advisory").await;
    assert_eq!(before.disposition.as_deref(), Some("warn"));

    let exceptions = w.store.tenant(&acme).exceptions();
    let alice = Actor {
        identity: "alice",
        actor: "alice",
    };
    let bob = Actor {
        identity: "bob",
        actor: "bob",
    };
    let expires = t0 + Duration::hours(1);
    let requested = exceptions
        .request(
            &NewException {
                vulnerability: "T-EXC".into(),
                package: Some("pkg:npm/left-pad".into()),
                target: Some("web".into()),
                kind: "mitigated".into(),
                justification: "The padding path is never reached with user input.".into(),
                expires_at: expires,
            },
            alice,
            t0,
        )
        .await
        .unwrap();
    assert!(matches!(
        exceptions
            .decide(&requested.id, ExceptionDecision::Approve, alice, "", t0)
            .await,
        Err(StoreError::Forbidden(_))
    ));
    exceptions
        .decide(&requested.id, ExceptionDecision::Approve, bob, "ok", t0)
        .await
        .unwrap();

    // Approved: the target is re-evaluated and passes, the exception in its trace.
    let (waived, runs) = settle(t0 + Duration::minutes(1), "exception").await;
    assert_eq!(runs, 1);
    assert_eq!(
        waived.disposition.as_deref(),
        Some("pass"),
        "{:?}",
        waived.verdict
    );
    let text = waived.verdict.clone().unwrap();
    assert!(text.contains(requested.id.as_str()), "{text}");
    assert!(text.contains("bob"), "the approver is in the trace: {text}");
    let inputs = waived.inputs.clone().unwrap();
    assert!(
        inputs["exceptions"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("exception:{}:sha256:", requested.id)),
        "{inputs}"
    );
    assert!(before.inputs.clone().unwrap().get("exceptions").is_none());

    // Not yet expired: nothing happens.
    s.tick(expires - Duration::seconds(1)).await.unwrap();
    assert_eq!(
        exceptions.get(&requested.id).await.unwrap().status,
        "active"
    );

    // At the expiry the scheduler expires it and the verdict flips back, once.
    let (after, runs) = settle(expires + Duration::seconds(1), "exception").await;
    assert_eq!(runs, 2);
    assert_eq!(after.disposition.as_deref(), Some("warn"));
    assert!(!after
        .verdict
        .clone()
        .unwrap()
        .contains(requested.id.as_str()));
    let expired = exceptions.get(&requested.id).await.unwrap();
    assert_eq!(
        (expired.status.as_str(), expired.ended_at),
        ("expired", Some(requested.expires_at))
    );
    for later in 2..5 {
        s.tick(expires + Duration::minutes(later)).await.unwrap();
    }
    let exception_runs = w
        .runs(&acme)
        .await
        .into_iter()
        .filter(|r| r.trigger == "exception")
        .count();
    assert_eq!(exception_runs, 2, "the expiry re-evaluates once");
    runtime.shutdown(StdDuration::from_secs(10)).await;
}

/// The latest scan of each of `tenant`'s targets, by target name, with its findings' texts
/// as stored.
async fn latest_findings(w: &World, tenant: &TenantId) -> BTreeMap<String, (String, Vec<String>)> {
    let targets = w
        .store
        .tenant(tenant)
        .targets()
        .list(None, 500)
        .await
        .unwrap()
        .items;
    let mut out = BTreeMap::new();
    for target in targets {
        let Some(scan_id) = target.last_scan_id else {
            continue;
        };
        let scans = w.store.tenant(tenant).scans();
        let scan = scans.get_without_analysis(&scan_id).await.unwrap().unwrap();
        let rows = scans.finding_rows(&scan_id, None, 500).await.unwrap().items;
        out.insert(
            target.name,
            (
                scan.disposition.unwrap_or_default(),
                rows.into_iter().map(|r| r.text).collect(),
            ),
        );
    }
    out
}

/// A pack rolled out over six tenants in three waves, with real scans run by the
/// runtime and the scheduler on a fake clock: the canary's gate holds and it is
/// activated; the second wave's gate fails (the pack newly blocks a real finding of its
/// tenants) and pauses the rollout with the third wave untouched; resumed with a gate
/// that tolerates it, the rest goes through and the new verdicts name the pack's rule;
/// aborted, every tenant returns to its previous verdict's findings, byte for byte.
async fn a_pack_rolls_out_in_waves_pauses_on_a_failed_gate_and_rolls_back(store: Store) {
    use stella_domain::rollout::RolloutSpec;
    use stella_store::repo::{rollout_state, Actor, NewRollout};
    let w = World::new(store).await;
    let names = ["t1", "t2", "t3", "t4", "t5", "t6"];
    let mut tenants = Vec::new();
    for name in names {
        let tenant = w.tenant(name).await;
        // Wave two's tenants also use lodash, which the pack bans.
        if name == "t3" || name == "t4" {
            w.target(
                &tenant,
                "web",
                &[("left-pad", "1.3.0"), ("lodash", "4.17.0")],
            )
            .await;
        } else {
            w.target(&tenant, "web", &[("left-pad", "1.3.0")]).await;
        }
        tenants.push(tenant);
    }
    let t0 = Utc::now() - Duration::hours(3);
    let advisories = json!([
        {"id": "T-PAD", "modified": "2024-01-01T00:00:00Z",
         "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                       "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]}]},
        {"id": "T-LODASH", "modified": "2024-01-01T00:00:00Z",
         "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                       "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]}
    ]);
    w.import(&advisories, t0).await;
    let runtime = w.runtime().await;
    let s = w.scheduler("p");
    // Ticks at `now` until no run of any tenant is active and `done` holds.
    let settle = |now: DateTime<Utc>, what: &'static str| {
        let (s, w, tenants) = (&s, &w, &tenants);
        async move {
            let deadline = std::time::Instant::now() + StdDuration::from_secs(90);
            // Quiet for two passes in a row: a pass's events become runs in the next.
            let mut quiet = 0;
            loop {
                s.tick(now).await.unwrap();
                let mut active = 0;
                for tenant in tenants {
                    active += w
                        .runs(tenant)
                        .await
                        .iter()
                        .filter(|r| matches!(r.state.as_str(), "planning" | "queued" | "running"))
                        .count();
                }
                let open = w.store.rollouts().open().await.unwrap();
                let shadowing = open.as_ref().is_some_and(|r| {
                    r.state == rollout_state::RUNNING && r.phase == "shadow"
                        || r.state == rollout_state::ROLLING_BACK
                });
                quiet = if active == 0 && !shadowing {
                    quiet + 1
                } else {
                    0
                };
                if quiet == 2 {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: still {active} active runs, rollout {open:?}"
                );
                tokio::time::sleep(StdDuration::from_millis(20)).await;
            }
        }
    };
    settle(t0, "the first scans").await;
    let mut before = BTreeMap::new();
    for tenant in &tenants {
        let findings = latest_findings(&w, tenant).await;
        assert_eq!(findings.len(), 1, "{tenant} has its scan");
        assert_eq!(findings["web"].0, "warn", "{tenant}: {findings:?}");
        before.insert(tenant.to_string(), findings);
    }

    let (pack, _) = w
        .store
        .packs()
        .put(
            "baseline",
            "name = 'baseline'\nversion = 1\n[[rules]]\nid = 'no-lodash'\n\
             when = { packages = ['pkg:npm/lodash'] }\noutcome = 'block'\n\
             because = 'lodash below 4.17.21 is banned'\n",
            "sha256:test-baseline-1",
            "admin",
            t0,
        )
        .await
        .unwrap();
    let spec: RolloutSpec = serde_json::from_value(json!({
        "pack": "baseline", "version": pack.version,
        "waves": [{"tenants": ["t1", "t2"]}, {"tenants": ["t3", "t4"]}, {"tenants": ["t5", "t6"]}],
        "gate": {"max_newly_blocked_percent": 0.0},
        "bake_seconds": 60
    }))
    .unwrap();
    spec.check().unwrap();
    let all: Vec<stella_domain::rollout::TenantInfo> = names
        .iter()
        .map(|n| stella_domain::rollout::TenantInfo::named(n))
        .collect();
    let waves: Vec<Vec<TenantId>> = spec
        .assign(&all)
        .unwrap()
        .into_iter()
        .map(|w| w.iter().map(|t| TenantId::parse(t).unwrap()).collect())
        .collect();
    let admin = Actor {
        identity: "admin",
        actor: "admin",
    };
    let t1 = t0 + Duration::minutes(1);
    let rollouts = w.store.rollouts();
    let rollout = rollouts
        .create(
            &NewRollout {
                pack: "baseline",
                version: pack.version,
                spec: &serde_json::to_value(&spec).unwrap(),
                waves: &waves,
            },
            admin,
            "baseline for everyone",
            t1,
        )
        .await
        .unwrap();
    // A second rollout while this one is open is refused.
    assert!(matches!(
        rollouts
            .create(
                &NewRollout {
                    pack: "baseline",
                    version: pack.version,
                    spec: &serde_json::to_value(&spec).unwrap(),
                    waves: &waves,
                },
                admin,
                "again",
                t1,
            )
            .await,
        Err(StoreError::Conflict(_))
    ));

    // The canary: shadowed (nothing changes for t1, t2: they use no lodash), gate holds,
    // activated, re-evaluated with the pack in the trace and still warning.
    settle(t1, "the canary").await;
    let r = rollouts.get(&rollout.id).await.unwrap();
    assert_eq!(
        (r.state.as_str(), r.wave, r.phase.as_str()),
        ("running", 0, "bake"),
        "{r:?}"
    );
    assert_eq!(r.reason["gate"]["result"], "passed", "{r:?}");
    for tenant in &tenants[..2] {
        let assigned = w.store.packs().assigned(tenant).await.unwrap().unwrap();
        assert_eq!((assigned.name.as_str(), assigned.version), ("baseline", 1));
        let findings = latest_findings(&w, tenant).await;
        assert_eq!(findings["web"].0, "warn");
        assert!(
            findings["web"].1[0].contains("baseline@1"),
            "the trace names the pack: {}",
            findings["web"].1[0]
        );
    }
    for tenant in &tenants[2..] {
        assert!(w.store.packs().assigned(tenant).await.unwrap().is_none());
    }

    // Baked: wave two is shadowed; the pack would block both of its scans, the gate
    // (no newly blocked scan) fails and pauses the rollout.
    let t2 = t1 + Duration::seconds(61);
    settle(t2, "wave two").await;
    let r = rollouts.get(&rollout.id).await.unwrap();
    assert_eq!((r.state.as_str(), r.wave), ("paused", 1), "{r:?}");
    let gate = &r.reason["gate"];
    assert_eq!(gate["result"], "failed", "{gate}");
    assert_eq!(gate["summary"]["newly_blocked_scans"], 2, "{gate}");
    assert!(
        gate["reasons"][0]
            .as_str()
            .unwrap()
            .contains("2 of 2 scans"),
        "{gate}"
    );
    let tenants_state = rollouts.tenants(&rollout.id, None).await.unwrap();
    let shadow = tenants_state
        .iter()
        .find(|t| t.tenant.as_str() == "t3")
        .and_then(|t| t.shadow.clone())
        .unwrap();
    let diff: serde_json::Value = serde_json::from_slice(
        &w.objects
            .read_content(&stella_store::object::Sha256Digest::parse(&shadow.diff_sha256).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    let changed = &diff["scans"][0]["findings"][0];
    assert_eq!(
        (
            changed["vulnerability_id"].as_str(),
            changed["change"].as_str(),
            changed["old"]["disposition"].as_str(),
            changed["new"]["disposition"].as_str()
        ),
        (
            Some("T-LODASH"),
            Some("changed"),
            Some("warn"),
            Some("block")
        ),
        "{diff}"
    );
    for tenant in &tenants[2..] {
        assert!(
            w.store.packs().assigned(tenant).await.unwrap().is_none(),
            "{tenant} is not activated"
        );
        assert_eq!(
            latest_findings(&w, tenant).await,
            before[tenant.as_str()],
            "{tenant}'s verdict is untouched"
        );
    }
    assert!(
        tenants_state
            .iter()
            .filter(|t| t.wave == 2)
            .all(|t| t.shadow.is_none() && t.activated_at.is_none()),
        "the third wave is untouched: {tenants_state:?}"
    );
    let kinds: Vec<String> = w
        .store
        .events_for_notify(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.2)
        .filter(|k| k.starts_with("rollout."))
        .collect();
    assert_eq!(
        kinds,
        [
            "rollout.wave.started",
            "rollout.wave.started",
            "rollout.gate.failed",
            "rollout.paused"
        ]
    );

    // Resumed with a gate that accepts the new blocks: wave two is shadowed again and
    // activated; its scans block, the trace naming the pack's rule.
    let resumed = rollouts
        .resume(
            &rollout.id,
            Some(&json!({"max_newly_blocked_percent": 100.0})),
            admin,
            "lodash is being replaced; blocking it is intended",
            t2,
        )
        .await
        .unwrap();
    assert_eq!(resumed.generation, r.generation + 1);
    settle(t2, "wave two, resumed").await;
    let r = rollouts.get(&rollout.id).await.unwrap();
    assert_eq!(
        (r.state.as_str(), r.wave, r.phase.as_str()),
        ("running", 1, "bake"),
        "{r:?}"
    );
    for tenant in &tenants[2..4] {
        let findings = latest_findings(&w, tenant).await;
        assert_eq!(findings["web"].0, "block", "{tenant}: {findings:?}");
        let lodash = findings["web"]
            .1
            .iter()
            .find(|f| f.contains("T-LODASH"))
            .unwrap();
        assert!(
            lodash.contains("rule:no-lodash") && lodash.contains("baseline@1"),
            "{lodash}"
        );
    }
    // The third wave and completion.
    let t3 = t2 + Duration::seconds(61);
    settle(t3, "wave three").await;
    let t4 = t3 + Duration::seconds(61);
    settle(t4, "completion").await;
    let r = rollouts.get(&rollout.id).await.unwrap();
    assert_eq!(r.state, "completed", "{r:?}");
    for tenant in &tenants {
        assert!(w.store.packs().assigned(tenant).await.unwrap().is_some());
    }

    // Aborted: every tenant returns to no pack, and to its previous verdict's findings.
    rollouts
        .abort(&rollout.id, admin, "the baseline moves to next quarter", t4)
        .await
        .unwrap();
    settle(t4, "the rollback").await;
    let r = rollouts.get(&rollout.id).await.unwrap();
    assert_eq!(r.state, "rolled_back", "{r:?}");
    for tenant in &tenants {
        assert!(w.store.packs().assigned(tenant).await.unwrap().is_none());
        assert_eq!(
            latest_findings(&w, tenant).await,
            before[tenant.as_str()],
            "{tenant}'s findings are back, byte for byte"
        );
    }
    let actions: Vec<String> = rollouts
        .transitions(&rollout.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.action)
        .collect();
    assert_eq!(
        actions,
        [
            "created",
            "wave.started",
            "gate.passed",
            "activated",
            "wave.started",
            "gate.failed",
            "paused",
            "resumed",
            "wave.started",
            "gate.passed",
            "activated",
            "wave.started",
            "gate.passed",
            "activated",
            "completed",
            "aborted",
            "rolled_back"
        ]
    );
    // Each tenant was activated once and rolled back once: one event of each.
    let updates = w
        .store
        .events_for_notify(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.2 == "policy.updated")
        .count();
    assert_eq!(updates, 12);
    runtime.shutdown(StdDuration::from_secs(10)).await;
}

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = super::common::sqlite().await;
                super::$name(db.store.clone()).await;
                db.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = super::common::postgres().await else {
                    return;
                };
                super::$name(db.store.clone()).await;
                db.finish().await;
            }
        }
    };
}

on_both!(each_due_time_fires_once_across_a_leader_death);
on_both!(a_fenced_out_leader_writes_nothing);
on_both!(missed_fire_policies_after_downtime);
on_both!(a_dst_gap_fires_once_when_the_gap_ends);
on_both!(drift_runs_only_impacted_targets);
on_both!(overlap_policies);
on_both!(run_progress_follows_the_scans);
on_both!(an_export_schedule_runs_its_profile_as_of_each_due_time);
on_both!(a_profile_triggered_by_scans_runs_after_each_scan_of_its_targets);
/// The same over both stores, on actix's runtime: the test runs scans, whose actors
/// need it.
mod an_exception_applies_until_it_expires_and_the_verdict_flips_back_once {
    #[actix_rt::test]
    async fn sqlite() {
        let db = super::common::sqlite().await;
        super::an_exception_applies_until_it_expires_and_the_verdict_flips_back_once(
            db.store.clone(),
        )
        .await;
        db.finish().await;
    }

    #[actix_rt::test]
    async fn postgres() {
        let Some(db) = super::common::postgres().await else {
            return;
        };
        super::an_exception_applies_until_it_expires_and_the_verdict_flips_back_once(
            db.store.clone(),
        )
        .await;
        db.finish().await;
    }
}

/// Over both stores, on actix's runtime (the scans' and shadow jobs' actors need it).
mod a_pack_rolls_out_in_waves_pauses_on_a_failed_gate_and_rolls_back {
    #[actix_rt::test]
    async fn sqlite() {
        let db = super::common::sqlite().await;
        super::a_pack_rolls_out_in_waves_pauses_on_a_failed_gate_and_rolls_back(db.store.clone())
            .await;
        db.finish().await;
    }

    #[actix_rt::test]
    async fn postgres() {
        let Some(db) = super::common::postgres().await else {
            return;
        };
        super::a_pack_rolls_out_in_waves_pauses_on_a_failed_gate_and_rolls_back(db.store.clone())
            .await;
        db.finish().await;
    }
}
