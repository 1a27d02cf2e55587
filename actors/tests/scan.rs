//! The `scan` job kind's steps run one by one, as a crash and a redelivery would run them:
//! each step run twice changes nothing the first run committed, a sealed scan keeps its
//! verdict when advisories change, and there is exactly one attestation and one
//! `scan.completed` event. On SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use serde_json::json;
use stella_actors::scan::{Scan, ScanDeps, ScanParams, ScanStep};
use stella_domain::dsse::SigningKey;
use stella_domain::osv::Limits;
use stella_store::object::{FolderStore, Objects};
use stella_store::{JobId, Store, TenantId};
use stella_supervisor::{submit, JobRequest, Kind, Registry, RunningJob, StepContext, StepOutcome};

fn advisory(id: &str, name: &str, fixed: &str) -> Vec<u8> {
    json!([{
        "id": id,
        "modified": "2024-01-01T00:00:00Z",
        "affected": [{
            "package": {"ecosystem": "npm", "name": name},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
        }]
    }])
    .to_string()
    .into_bytes()
}

/// Runs one step of the scan directly, as its worker would.
async fn run(
    store: &Store,
    scan: &Scan,
    tenant: &TenantId,
    id: &JobId,
    step: ScanStep,
) -> StepOutcome<ScanStep> {
    let job = store.tenant(tenant).jobs().get(id).await.unwrap();
    let params: ScanParams = serde_json::from_value(job.params.clone()).unwrap();
    let job = RunningJob::from(job);
    let mut ctx = StepContext::new(store, &job, 1, Utc::now());
    scan.run(step, &params, &mut ctx)
        .await
        .unwrap_or_else(|err| panic!("{step:?}: {err}"))
}

fn scan_kind(objects: &Objects) -> (Scan, Registry) {
    let scan = Scan::new(ScanDeps::new(
        objects.clone(),
        Arc::new(SigningKey::generate([3; 32])),
    ));
    let mut registry = Registry::default();
    registry.register(scan.clone());
    (scan, registry)
}

async fn redelivered_steps_change_nothing(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::new(Arc::new(FolderStore::open(dir.path()).unwrap()));
    let tenant = TenantId::parse("acme").unwrap();
    store
        .tenants()
        .ensure(&tenant, "Acme", Utc::now())
        .await
        .unwrap();
    let (handlers, registry) = scan_kind(&objects);
    stella_actors::advisory_sync::import_advisories(
        &store,
        &objects,
        "osv:test",
        &advisory("T-1", "left-pad", "1.3.1"),
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    let sbom = json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "components": [
            {"type": "library", "name": "left-pad", "version": "1.3.0", "purl": "pkg:npm/left-pad@1.3.0"},
            {"type": "library", "name": "chalk", "version": "2.0.0", "purl": "pkg:npm/chalk@2.0.0"}
        ]
    });
    let stored = objects
        .put_content(Bytes::from(sbom.to_string()))
        .await
        .unwrap();
    let params = ScanParams {
        sbom_sha256: stored.digest.to_string(),
        name: "app".into(),
        evaluated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    };
    let request = JobRequest::of::<Scan>(&params).unwrap().with_attempts(3);
    let id = submit(&store, &registry, &tenant, &request, Utc::now())
        .await
        .unwrap()
        .job
        .id;
    let scans = store.tenant(&tenant).scans();

    for _ in 0..2 {
        let next = run(&store, &handlers, &tenant, &id, ScanStep::Analyze).await;
        assert!(matches!(next, StepOutcome::Next(ScanStep::Evaluate)));
    }
    let analysis = scans.get(&id).await.unwrap().unwrap().analysis.unwrap();
    let analysis: serde_json::Value = serde_json::from_str(&analysis).unwrap();
    assert_eq!(analysis["components"].as_array().unwrap().len(), 2);

    // The first evaluation takes the analysis this process cached; the second runs as in
    // a restarted process, which decodes the stored one: the verdicts are the same.
    let (restarted, _) = scan_kind(&objects);
    let mut verdicts = Vec::new();
    for handlers in [&handlers, &restarted] {
        let next = run(&store, handlers, &tenant, &id, ScanStep::Evaluate).await;
        assert!(matches!(next, StepOutcome::Next(ScanStep::Seal)));
        verdicts.push(scans.get(&id).await.unwrap().unwrap().verdict.unwrap());
    }
    assert_eq!(verdicts[0], verdicts[1]);
    let evaluated = scans.get(&id).await.unwrap().unwrap();
    assert_eq!(evaluated.counts.as_ref().unwrap()["findings"], 1);
    let page = scans.findings(&id, None, 50).await.unwrap();
    assert_eq!(page.items.len(), 1, "a re-run replaces the findings");
    assert_eq!(page.items[0].vulnerability_id, "T-1");

    let first = run(&store, &handlers, &tenant, &id, ScanStep::Seal).await;
    let objects_after_seal = objects.store().list("").await.unwrap().len();
    // The process died after committing the seal and before acknowledging: the step is
    // delivered again, and so is the evaluation before it.
    let second = run(&store, &handlers, &tenant, &id, ScanStep::Seal).await;
    assert_eq!(first, second, "a resumed seal returns the same attestation");
    let StepOutcome::Done(result) = &first else {
        panic!("seal ends the job: {first:?}");
    };
    assert_eq!(result["disposition"], "warn");
    assert_eq!(
        objects.store().list("").await.unwrap().len(),
        objects_after_seal
    );

    // New advisories do not change a sealed verdict, even on a late redelivery.
    stella_actors::advisory_sync::import_advisories(
        &store,
        &objects,
        "osv:test",
        &advisory("T-2", "chalk", "9.0.0"),
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    run(&store, &handlers, &tenant, &id, ScanStep::Evaluate).await;
    let sealed = scans.get(&id).await.unwrap().unwrap();
    assert_eq!(sealed.verdict, evaluated.verdict);
    assert_eq!(
        Some(result["attestation_sha256"].as_str().unwrap()),
        sealed.attestation_sha256.as_deref()
    );
    let events = store
        .tenant(&tenant)
        .events()
        .list(None, Some("scan.completed"), 50)
        .await
        .unwrap();
    assert_eq!(events.items.len(), 1, "one completion event");
    assert_eq!(events.items[0].payload["scan_id"], id.as_str());

    // A new scan sees the new advisory: the index follows the store's generation.
    let id2 = submit(&store, &registry, &tenant, &request, Utc::now())
        .await
        .unwrap()
        .job
        .id;
    run(&store, &handlers, &tenant, &id2, ScanStep::Analyze).await;
    run(&store, &handlers, &tenant, &id2, ScanStep::Evaluate).await;
    let rescanned = scans.get(&id2).await.unwrap().unwrap();
    assert_eq!(rescanned.counts.unwrap()["findings"], 2);
}

#[tokio::test]
async fn redelivered_scan_steps_change_nothing_sqlite() {
    let db = common::sqlite().await;
    redelivered_steps_change_nothing(db.store.clone()).await;
    db.finish().await;
}

#[tokio::test]
async fn redelivered_scan_steps_change_nothing_postgres() {
    let Some(db) = common::postgres().await else {
        return;
    };
    redelivered_steps_change_nothing(db.store.clone()).await;
    db.finish().await;
}
