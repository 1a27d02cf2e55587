//! The document kinds (`json:raw`, `json:policy`, `cyclonedx`, `spdx`) through the real
//! runtime, on the embedded default (SQLite + embedded mailbox + folder) and on
//! PostgreSQL + Valkey + S3, from the real data: the Go vulnerability database imported
//! as a collection, proton-bridge 1.6.3 (CycloneDX) and the SPDX 2.3 example scanned
//! through intake and the pipeline, a tenant policy, and a tenant OpenVEX statement about
//! one finding. Each kind runs twice as of one time: both runs succeed, write the same
//! bytes file for file, and their documents pass the official validators
//! (`cyclonedx-python-lib`'s CycloneDX 1.6 schema, `pyspdxtools`, `jsonschema` with the
//! JSON kinds' schemas).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use stella_actors::export::{put_profile, start_run};
use stella_actors::scan::{Intake, SbomSource, ScanDeps, ScanOptions};
use stella_domain::dsse::SigningKey;
use stella_domain::export::{json_policy, json_raw};
use stella_domain::osv::Limits;
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_store::mailbox::Mailbox;
use stella_store::object::{ObjectStore, Objects, Sha256Digest};
use stella_store::repo::{ExportFileRecord, Job, JobState, VexDocumentRecord};
use stella_store::{JobId, Store, TenantId};

const PYTHON_VAR: &str = "STELLA_TEST_DOCUMENTS_PYTHON";

const CHECKER: &str = r#"
import hashlib, json, sys

mode, path = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    data = f.read()
if mode == "cyclonedx":
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode("utf-8"))
    print(json.dumps({"errors": [] if error is None else [str(error)[:2000]]}))
elif mode == "schema":
    import jsonschema
    with open(sys.argv[3], "rb") as f:
        schema = json.load(f)
    document = json.loads(data)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [("/".join(str(p) for p in e.absolute_path)) + ": " + e.message[:300]
              for e in validator.iter_errors(document)]
    records = [hashlib.sha256(a["record"].encode("utf-8")).hexdigest() == a["sha256"]
               for a in document.get("advisories", []) if isinstance(a, dict)]
    print(json.dumps({"errors": errors[:20], "records": records}))
else:
    sys.exit(f"unknown mode {mode}")
"#;

/// The Python with the document validators: required with the services, else the
/// validator checks are skipped (the rest of the test runs).
fn python() -> Option<String> {
    match std::env::var(PYTHON_VAR) {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!("{PYTHON_VAR} must be set when STELLA_TEST_SERVICES is set")
        }
        _ => {
            eprintln!("skipping the document validators: {PYTHON_VAR} is not set");
            None
        }
    }
}

fn data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} not found", dir.display());
        None
    }
}

fn check(python: &str, dir: &Path, args: &[&str]) -> Value {
    let script = dir.join("check.py");
    std::fs::write(&script, CHECKER).unwrap();
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "checker {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The errors of the document at `path` by its validator (none when it is valid).
fn validate(python: &str, dir: &Path, kind: &str, path: &Path) -> Vec<String> {
    let errors = match kind {
        "cyclonedx" => check(python, dir, &["cyclonedx", path.to_str().unwrap()])["errors"].clone(),
        "spdx" => {
            let tool = Path::new(python).with_file_name("pyspdxtools");
            let output = Command::new(&tool)
                .arg("-i")
                .arg(path)
                .args(["--version", "SPDX-2.3"])
                .output()
                .unwrap();
            return if output.status.success() {
                Vec::new()
            } else {
                vec![format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )]
            };
        }
        json_kind => {
            let (name, schema) = match json_kind {
                "json:policy" => ("json-policy.schema.json", json_policy::SCHEMA),
                _ => ("json-raw.schema.json", json_raw::SCHEMA),
            };
            let schema_path = dir.join(name);
            std::fs::write(&schema_path, schema).unwrap();
            let report = check(
                python,
                dir,
                &[
                    "schema",
                    path.to_str().unwrap(),
                    schema_path.to_str().unwrap(),
                ],
            );
            let records = report["records"].as_array().unwrap();
            assert!(records.iter().all(|ok| ok == true), "{report}");
            report["errors"].clone()
        }
    };
    serde_json::from_value(errors).unwrap()
}

async fn wait_done(store: &Store, tenant: &TenantId, id: &JobId) -> Job {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = store.tenant(tenant).jobs().get(id).await.unwrap();
        if job.state.is_terminal() {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still {}", job.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The OpenVEX statement the tenant imports: echo's open redirect does not reach the
/// bridge.
fn vex_document() -> Vec<u8> {
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/proton-bridge-1",
        "author": "proton-bridge maintainers",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "GO-2022-1031"},
            "products": [{"@id": "pkg:golang/github.com/labstack/echo/v4@v4.1.11"}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
            "impact_statement": "the bridge never serves static files with echo"
        }]
    })
    .to_string()
    .into_bytes()
}

async fn documents_export_through_the_runtime(
    data: &Path,
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
    object_store: Arc<dyn ObjectStore>,
) {
    let objects = Objects::new(object_store);
    let key = Arc::new(SigningKey::generate([9; 32]));
    let scan_deps = ScanDeps::new(objects.clone(), key.clone());
    let (registry, runtime) = support::start_runtime(store, mailbox, &scan_deps).await;
    let tenant = TenantId::parse("acme").unwrap();
    store
        .tenants()
        .ensure(&tenant, "Acme", Utc::now())
        .await
        .unwrap();

    // The Go database as the collection it is published as.
    let zip = std::fs::read(data.join("advisories/Go-all.zip")).unwrap();
    stella_actors::advisory_sync::import_advisories(
        store,
        &objects,
        "osv:go",
        &zip,
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    // The tenant's own policy (version 1), and its VEX statement.
    let document = DEFAULT_POLICY.replace("name = \"default\"", "name = \"acme\"");
    let policy = Policy::parse(&document).unwrap();
    let policy_record = support::activate_policy(store, &tenant, &document, &policy.digest()).await;
    let vex_bytes = vex_document();
    let statements = stella_domain::vex::parse(&vex_bytes).unwrap();
    let stored = objects.put_content(Bytes::from(vex_bytes)).await.unwrap();
    store
        .vex()
        .import(
            Some(&tenant),
            &VexDocumentRecord {
                tenant: Some(tenant.to_string()),
                sha256: stored.digest.to_string(),
                format: "openvex".into(),
                statement_count: statements.len() as u64,
                statements: serde_json::to_value(&statements).unwrap(),
                created_at: Utc::now(),
            },
        )
        .await
        .unwrap();

    // Two scans: proton-bridge (CycloneDX, 58 findings) and the SPDX 2.3 example.
    let intake = Intake::new(store.clone(), scan_deps, registry.clone(), 100_000);
    let evaluated_at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut scans = Vec::new();
    let mut sbom_bytes = BTreeMap::new();
    for (file, name) in [
        (
            "sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json",
            "proton-bridge",
        ),
        ("sboms/spdx/SPDXJSONExample-v2.3.spdx.json", "spdx-example"),
    ] {
        let bytes = std::fs::read(data.join(file)).unwrap();
        let (sha, name) = intake
            .sbom(
                &tenant,
                SbomSource::Body(Bytes::from(bytes.clone())),
                Some(name.to_owned()),
            )
            .await
            .unwrap();
        sbom_bytes.insert(sha.clone(), bytes);
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
    let bridge = scans[0].as_str();
    let findings = |id: &JobId| {
        let store = store.clone();
        let tenant = tenant.clone();
        let id = id.clone();
        async move {
            let scan = store
                .tenant(&tenant)
                .scans()
                .get_without_analysis(&id)
                .await
                .unwrap()
                .unwrap();
            scan.counts.unwrap()["findings"].as_u64().unwrap()
        }
    };
    assert_eq!(findings(&scans[0]).await, 58);
    let total = findings(&scans[0]).await + findings(&scans[1]).await;

    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let as_of = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let selectors = json!({"scans": [scans[0].as_str(), scans[1].as_str()]});
    for kind in ["json:raw", "json:policy", "cyclonedx", "spdx"] {
        let profile = kind.replace(':', "-");
        let mut definition = json!({ "selectors": selectors });
        if kind == "json:raw" {
            definition["options"] = json!({"include_sboms": true});
        }
        let (_, created) = put_profile(
            store,
            &Default::default(),
            &tenant,
            &profile,
            kind,
            &definition,
            "ci",
            Utc::now(),
        )
        .await
        .unwrap();
        assert!(created);
        let mut runs: Vec<Vec<ExportFileRecord>> = Vec::new();
        for _ in 0..2 {
            let run = start_run(
                store, &registry, &tenant, &profile, None, as_of, None, None, 3,
            )
            .await
            .unwrap();
            let done = wait_done(store, &tenant, &run.id).await;
            assert_eq!(
                done.state,
                JobState::Succeeded,
                "{kind}: {:?}",
                done.last_error
            );
            let progress = store
                .tenant(&tenant)
                .export_runs()
                .get(&run.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (progress.items_done, progress.items_total),
                (total, total),
                "{kind}"
            );
            runs.push(
                store
                    .tenant(&tenant)
                    .export_files()
                    .list(&run.id)
                    .await
                    .unwrap(),
            );
        }
        let digests = |files: &[ExportFileRecord]| -> Vec<(String, String, u64)> {
            files
                .iter()
                .map(|f| (f.name.clone(), f.sha256.clone(), f.size_bytes))
                .collect()
        };
        assert_eq!(
            digests(&runs[0]),
            digests(&runs[1]),
            "{kind}: two runs, the same bytes"
        );
        let files = &runs[0];
        let names: BTreeSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
        for sealed in [
            "export.json",
            "export.json.dsse",
            "provenance.json",
            "provenance.json.dsse",
        ] {
            assert!(names.contains(sealed), "{kind}: {names:?}");
        }
        let read = |name: String| {
            let file = files
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("{kind}: no {name} in {names:?}"));
            let objects = objects.clone();
            let sha256 = file.sha256.clone();
            async move {
                objects
                    .read_content(&Sha256Digest::parse(&sha256).unwrap())
                    .await
                    .unwrap()
            }
        };
        let manifest: Value = serde_json::from_slice(&read("export.json".into()).await).unwrap();
        assert_eq!(manifest["kind"], kind);
        assert_eq!(manifest["counts"]["findings"], total, "{kind}");

        // The documents: what each kind writes, read as a user would, then validated.
        let documents: Vec<String> = match kind {
            "json:raw" => vec!["raw.json".into()],
            "json:policy" => vec!["policy.json".into()],
            "cyclonedx" => scans.iter().map(|s| format!("scan-{s}.cdx.json")).collect(),
            _ => scans
                .iter()
                .map(|s| format!("scan-{s}.spdx.json"))
                .collect(),
        };
        let mut parsed = Vec::new();
        for name in &documents {
            let bytes = read(name.clone()).await;
            if let Some(python) = &python {
                let path = dir.path().join(name.replace(':', "-"));
                std::fs::write(&path, &bytes).unwrap();
                let errors = validate(python, dir.path(), kind, &path);
                assert!(errors.is_empty(), "{kind} {name}: {errors:?}");
            }
            parsed.push(serde_json::from_slice::<Value>(&bytes).unwrap());
        }
        match kind {
            "json:raw" => {
                let raw = &parsed[0];
                // The SBOMs as files, byte for byte as submitted.
                for (sha, bytes) in &sbom_bytes {
                    assert_eq!(&read(format!("sbom-{sha}.json")).await.to_vec(), bytes);
                }
                let scan = &raw["scans"][0];
                assert_eq!(scan["scan_id"], bridge);
                assert_eq!(
                    scan["sbom"]["file"],
                    format!("sbom-{}.json", scan["sbom"]["sha256"].as_str().unwrap())
                );
                // Every advisory the findings cite, as fetched from the Go database.
                let cited = scan["advisories"].as_array().unwrap().len();
                assert!(cited >= 40, "{cited} advisories cited");
                let advisories = raw["advisories"].as_array().unwrap();
                assert_eq!(advisories.len(), cited);
                assert!(advisories
                    .iter()
                    .all(|a| a["source"] == "osv:go"
                        && a["entry"].as_str().unwrap().ends_with(".json")));
                let echo = advisories
                    .iter()
                    .find(|a| a["id"] == "GO-2022-1031")
                    .unwrap();
                let record: Value = serde_json::from_str(echo["record"].as_str().unwrap()).unwrap();
                assert_eq!(record["id"], "GO-2022-1031");
                assert_eq!(raw["vex"][0]["scope"], "tenant");
                assert_eq!(
                    raw["vex"][0]["statements"][0]["vulnerability"],
                    "GO-2022-1031"
                );
                assert_eq!(manifest["counts"]["sboms"], 2);
            }
            "json:policy" => {
                let doc = &parsed[0];
                assert_eq!(doc["policies"].as_array().unwrap().len(), 1);
                assert_eq!(doc["policies"][0]["version"], policy_record.version);
                assert_eq!(doc["policies"][0]["document"], document);
                let scan = &doc["scans"][0];
                assert_eq!(scan["verdict"]["policy_version"], policy_record.version);
                assert_eq!(scan["findings"].as_array().unwrap().len(), 58);
                assert_eq!(scan["findings_exported"], 58);
                let echo = scan["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["vulnerability_id"] == "GO-2022-1031")
                    .unwrap();
                assert_eq!(echo["disposition"], "pass");
                assert_eq!(echo["explain"]["vex"], json!(["not_affected"]));
            }
            "cyclonedx" => {
                let bom = &parsed[0];
                let vulnerabilities = bom["vulnerabilities"].as_array().unwrap();
                assert_eq!(vulnerabilities.len(), 58);
                // Fixes read back from the records the scan was matched against.
                let upgrades = vulnerabilities
                    .iter()
                    .filter(|v| v.get("recommendation").is_some())
                    .count();
                assert!(upgrades > 50, "{upgrades}");
                let echo = vulnerabilities
                    .iter()
                    .find(|v| v["id"] == "GO-2022-1031")
                    .unwrap();
                assert_eq!(echo["analysis"]["state"], "not_affected");
                assert_eq!(echo["analysis"]["justification"], "code_not_reachable");
                assert_eq!(
                    echo["recommendation"],
                    "Upgrade pkg:golang/github.com/labstack/echo/v4 to 4.9.0."
                );
                let properties: BTreeMap<&str, &str> = bom["metadata"]["properties"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
                    .collect();
                assert_eq!(properties["stella:scan_id"], bridge);
                // The SPDX example becomes a BOM too, with its packages as components.
                assert!(!parsed[1]["components"].as_array().unwrap().is_empty());
            }
            _ => {
                let doc = &parsed[0];
                let security: usize = doc["packages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
                    .filter(|r| r["referenceCategory"] == "SECURITY")
                    .count();
                assert_eq!(security, 58);
                assert_eq!(doc["relationships"][0]["relationshipType"], "DESCRIBES");
                assert!(doc["creationInfo"]["comment"]
                    .as_str()
                    .unwrap()
                    .contains(bridge));
            }
        }
    }
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn document_exports_embedded() {
    let Some(data) = data() else { return };
    let db = common::sqlite().await;
    let objects = common::folder();
    let mailbox: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::EmbeddedMailbox::new(
        db.store.clone(),
        common::mailbox_config(),
    ));
    documents_export_through_the_runtime(&data, &db.store, mailbox, objects.store.clone()).await;
    objects.finish().await;
    db.finish().await;
}

#[actix_rt::test]
async fn document_exports_postgres_valkey_s3() {
    let Some(data) = data() else { return };
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some(mailbox) = common::valkey_mailbox().await else {
        return;
    };
    let Some(objects) = common::s3().await else {
        return;
    };
    documents_export_through_the_runtime(
        &data,
        &db.store,
        mailbox.mailbox.clone(),
        objects.store.clone(),
    )
    .await;
    objects.finish().await;
    mailbox.finish().await;
    db.finish().await;
}
