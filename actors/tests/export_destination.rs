//! Runs sent to a named destination the operator declared: a folder on the embedded
//! default (SQLite + embedded mailbox + folder objects), and a second bucket on the S3
//! server with PostgreSQL + Valkey + S3 (`STELLA_TEST_S3_EXPORT_BUCKET`, created by
//! `ops/services.sh`). What landed is read back the way an operator would: the folder
//! walked, the bucket listed with the S3 API; every file once, under
//! `<destination prefix>/<tenant>/<prefix>/<export id>/`, with the run's SHA-256. A
//! redelivered distribute step leaves the copies as they were; a destination withdrawn
//! from the tenant since fails the step, saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use stella_actors::export::{
    put_profile, start_run, Destination, Destinations, Export, ExportDeps, ExportParams,
    ExportStep, PutProfileError,
};
use stella_actors::scan::{Intake, SbomSource, ScanDeps, ScanOptions};
use stella_domain::dsse::SigningKey;
use stella_domain::osv::Limits;
use stella_store::mailbox::Mailbox;
use stella_store::object::{FolderStore, ObjectStore, Objects, S3Store};
use stella_store::repo::{Job, JobState};
use stella_store::{JobId, Store, TenantId};
use stella_supervisor::{Kind, RunningJob, StepContext};

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

/// How the test reads what landed, independently of the exporter.
enum Landed {
    /// Walk the folder.
    Folder(std::path::PathBuf),
    /// List and get with the S3 API: bucket, key prefix.
    S3(aws_sdk_s3::Client, String, String),
}

/// An object that landed: its key below the destination's prefix, its SHA-256, and when
/// it was last written.
type Object = (String, String, String);

impl Landed {
    async fn objects(&self) -> Vec<Object> {
        match self {
            Landed::Folder(root) => {
                let mut out = Vec::new();
                let mut stack = vec![root.clone()];
                while let Some(dir) = stack.pop() {
                    for entry in std::fs::read_dir(&dir).unwrap() {
                        let path = entry.unwrap().path();
                        let name = path.file_name().unwrap().to_string_lossy().to_string();
                        if path.is_dir() {
                            if !name.starts_with('.') {
                                stack.push(path);
                            }
                            continue;
                        }
                        let key = path
                            .strip_prefix(root)
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_owned();
                        let bytes = std::fs::read(&path).unwrap();
                        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                        out.push((
                            key,
                            hex::encode(Sha256::digest(&bytes)),
                            format!("{modified:?}"),
                        ));
                    }
                }
                out.sort();
                out
            }
            Landed::S3(client, bucket, prefix) => {
                let listed = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(format!("{prefix}/"))
                    .send()
                    .await
                    .unwrap();
                let mut out = Vec::new();
                for object in listed.contents() {
                    let key = object.key().unwrap();
                    let body = client
                        .get_object()
                        .bucket(bucket)
                        .key(key)
                        .send()
                        .await
                        .unwrap()
                        .body
                        .collect()
                        .await
                        .unwrap()
                        .into_bytes();
                    out.push((
                        key.strip_prefix(&format!("{prefix}/")).unwrap().to_owned(),
                        hex::encode(Sha256::digest(&body)),
                        format!("{:?}", object.last_modified()),
                    ));
                }
                out.sort();
                out
            }
        }
    }
}

async fn runs_land_in_the_destination(
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
    objects: Objects,
    destination: Destination,
    landed: Landed,
) {
    let key = Arc::new(SigningKey::generate([7; 32]));
    let scan_deps = ScanDeps::new(objects.clone(), key.clone());
    let destinations = Destinations::new([destination.clone()]);
    let (registry, runtime) =
        support::start_runtime_with(store, mailbox, &scan_deps, destinations.clone()).await;
    let acme = TenantId::parse("acme").unwrap();
    let globex = TenantId::parse("globex").unwrap();
    for tenant in [&acme, &globex] {
        store
            .tenants()
            .ensure(tenant, tenant.as_str(), Utc::now())
            .await
            .unwrap();
    }
    let advisory = json!([{
        "id": "T-1", "modified": "2024-01-01T00:00:00Z", "summary": "left-pad is vulnerable",
        "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]}]
    }]);
    stella_actors::advisory_sync::import_advisories(
        store,
        &objects,
        "osv:test",
        advisory.to_string().as_bytes(),
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    let intake = Intake::new(store.clone(), scan_deps, registry.clone(), 1_000);
    let sbom = json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "components": [{"type": "library", "name": "left-pad", "version": "1.3.0",
                        "purl": "pkg:npm/left-pad@1.3.0"}]
    });
    let (sha, name) = intake
        .sbom(
            &acme,
            SbomSource::Body(Bytes::from(sbom.to_string())),
            Some("api".into()),
        )
        .await
        .unwrap();
    let evaluated_at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let options = ScanOptions {
        evaluated_at,
        idempotency_key: None,
        max_attempts: 3,
    };
    let scan = intake.submit(&acme, sha, name, &options).await.unwrap();
    let done = wait_done(store, &acme, &scan.job.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);

    // The tenant wall: globex may not name acme's destination, nor one that does not
    // exist, and hears the same either way.
    let definition = |name: &str| {
        json!({
            "selectors": {"scans": [scan.job.id.as_str()]},
            "distribution": {"to": "destination", "name": name, "prefix": "nightly/csv"},
        })
    };
    let refused = |err: PutProfileError| match err {
        PutProfileError::Invalid(invalid) => (invalid.field, invalid.message),
        other => panic!("{other}"),
    };
    let (field, not_allowed) = refused(
        put_profile(
            store,
            &destinations,
            &globex,
            "archived",
            "csv",
            &definition(&destination.name),
            "ci",
            Utc::now(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(field, "distribution.name");
    let (field, unknown) = refused(
        put_profile(
            store,
            &destinations,
            &globex,
            "archived",
            "csv",
            &definition("nowhere"),
            "ci",
            Utc::now(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(field, "distribution.name");
    assert_eq!(unknown.replace("nowhere", &destination.name), not_allowed);

    put_profile(
        store,
        &destinations,
        &acme,
        "archived",
        "csv",
        &definition(&destination.name),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    let as_of = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
    let run = start_run(
        store, &registry, &acme, "archived", None, as_of, None, None, 3,
    )
    .await
    .unwrap();
    let done = wait_done(store, &acme, &run.id).await;
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
    let files = store
        .tenant(&acme)
        .export_files()
        .list(&run.id)
        .await
        .unwrap();
    assert!(files.iter().any(|f| f.name == "findings.csv"), "{files:?}");
    let expected: BTreeMap<String, String> = files
        .iter()
        .map(|f| {
            (
                format!("acme/nightly/csv/{}/{}", run.id, f.name),
                f.sha256.clone(),
            )
        })
        .collect();
    let first = landed.objects().await;
    let got: BTreeMap<String, String> = first
        .iter()
        .map(|(key, sha, _)| (key.clone(), sha.clone()))
        .collect();
    assert_eq!(got, expected, "one object per file, with the run's digests");
    let result = &done.result.as_ref().unwrap()["distributed_to"];
    assert_eq!(result.as_array().unwrap().len(), files.len(), "{result}");

    // A redelivered distribute step copies nothing again: the same objects, untouched.
    runtime.shutdown(Duration::from_secs(5)).await;
    let deps = ExportDeps {
        objects: objects.clone(),
        signing_key: key.clone(),
        metrics: Default::default(),
        destinations: destinations.clone(),
    };
    let job = store.tenant(&acme).jobs().get(&run.id).await.unwrap();
    let params: ExportParams = serde_json::from_value(job.params.clone()).unwrap();
    let job = RunningJob::from(job);
    let mut ctx = StepContext::new(store, &job, 2, Utc::now());
    Export::new(deps.clone())
        .run(ExportStep::Distribute, &params, &mut ctx)
        .await
        .unwrap();
    assert_eq!(landed.objects().await, first);

    // The operator withdrew the destination from acme since: the step fails, saying so,
    // and writes nothing.
    let withdrawn = Export::new(ExportDeps {
        destinations: Destinations::new([Destination::new(
            &destination.name,
            destination.store.clone(),
            "test",
            &destination.prefix,
            ["globex".to_owned()],
        )]),
        ..deps
    });
    let mut ctx = StepContext::new(store, &job, 3, Utc::now());
    let err = withdrawn
        .run(ExportStep::Distribute, &params, &mut ctx)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is not an export destination of this tenant"),
        "{err}"
    );
    assert_eq!(landed.objects().await, first);
}

#[actix_rt::test]
async fn runs_land_in_a_folder_destination_on_the_embedded_default() {
    let db = common::sqlite().await;
    let mailbox: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::EmbeddedMailbox::new(
        db.store.clone(),
        common::mailbox_config(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::new(Arc::new(
        FolderStore::open(dir.path().join("objects")).unwrap(),
    ));
    let root = dir.path().join("archive");
    let folder: Arc<dyn ObjectStore> = Arc::new(FolderStore::open(&root).unwrap());
    let destination = Destination::new(
        "archive",
        folder,
        "folder",
        "stella/exports",
        ["acme".to_owned()],
    );
    runs_land_in_the_destination(
        &db.store,
        mailbox,
        objects,
        destination,
        Landed::Folder(root.join("stella/exports")),
    )
    .await;
    db.finish().await;
}

#[actix_rt::test]
async fn runs_land_in_a_second_bucket_with_postgres_valkey_s3() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some(mailbox) = common::valkey_mailbox().await else {
        return;
    };
    let Some(main) = common::s3().await else {
        return;
    };
    let bucket = std::env::var("STELLA_TEST_S3_EXPORT_BUCKET")
        .expect("STELLA_TEST_S3_EXPORT_BUCKET must be set with the services (ops/services.sh)");
    let mut target = common::s3_target().unwrap();
    target.bucket = bucket.clone();
    // The test's own prefix in the shared bucket: the destination's prefix.
    let prefix = std::mem::take(&mut target.prefix);
    let store: Arc<dyn ObjectStore> = Arc::new(S3Store::new(&target));
    let destination = Destination::new(
        "archive",
        store.clone(),
        "bucket",
        &prefix,
        ["acme".to_owned()],
    );
    let credentials = aws_sdk_s3::config::Credentials::new(
        target.access_key_id.clone(),
        target.secret_access_key.expose().to_owned(),
        None,
        None,
        "test",
    );
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&target.endpoint)
            .region(aws_sdk_s3::config::Region::new(target.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(true)
            .build(),
    );
    runs_land_in_the_destination(
        &db.store,
        mailbox.mailbox.clone(),
        Objects::new(main.store.clone()),
        destination,
        Landed::S3(client, bucket, prefix.clone()),
    )
    .await;
    for object in store.list(&format!("{prefix}/")).await.unwrap() {
        store.delete(&object.key).await.unwrap();
    }
    main.finish().await;
    mailbox.finish().await;
    db.finish().await;
}
