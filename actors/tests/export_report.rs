//! Reports for people (`report:pdf`, `report:xlsx`) through the real runtime, on the
//! embedded default (SQLite + embedded mailbox + folder) and on PostgreSQL + Valkey +
//! S3: scans under a tenant policy with an exception, a PDF profile run twice (the first
//! report says so, the second names what is new and what was resolved since), a
//! `detailed` XLSX profile over every scan. What a person would check is read back by
//! poppler (`pdftotext`, `pdftoppm`) and openpyxl; a redelivered `write` step stores the
//! same bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use stella_actors::export::{put_profile, start_run, Export, ExportDeps, ExportParams, ExportStep};
use stella_actors::scan::{Intake, SbomSource, ScanDeps, ScanOptions};
use stella_domain::dsse::SigningKey;
use stella_domain::osv::Limits;
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_store::mailbox::Mailbox;
use stella_store::object::{ObjectStore, Objects, Sha256Digest};
use stella_store::repo::{Effect, ExportFileRecord, Job, JobState};
use stella_store::{JobId, Store, TenantId};
use stella_supervisor::{Kind, Registry, RunningJob, StepContext};

/// An OSV advisory for one npm package, with a CVSS v3.1 vector when given.
fn advisory(id: &str, name: &str, fixed: &str, cvss: Option<&str>) -> Value {
    let mut advisory = json!({
        "id": id,
        "modified": "2024-01-01T00:00:00Z",
        "summary": format!("{name} is vulnerable"),
        "affected": [{
            "package": {"ecosystem": "npm", "name": name},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
        }]
    });
    if let Some(vector) = cvss {
        advisory["severity"] = json!([{"type": "CVSS_V3", "score": vector}]);
    }
    advisory
}

const CRITICAL: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
const MEDIUM: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N";

/// The default policy with an exception for T-2 in force until 2027 and one expired.
fn policy_text() -> String {
    format!(
        r#"{DEFAULT_POLICY}
[[exceptions]]
id = "chalk-accepted"
vulnerabilities = ["T-2"]
packages = ["pkg:npm/chalk"]
reason = "only used by the build"
approver = "alice@example.com"
expires = "2027-01-01T00:00:00Z"

[[exceptions]]
id = "old-waiver"
vulnerabilities = ["T-9"]
reason = "replaced"
approver = "bob@example.com"
expires = "2025-06-01T00:00:00Z"
"#
    )
}

/// A tool from `ops/services.sh`: required with the services, else the check is skipped.
fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!("{var} must be set (by ops/services.sh up) when STELLA_TEST_SERVICES is set")
        }
        _ => {
            eprintln!("skipping the report readers: {var} is not set");
            None
        }
    }
}

fn run_tool(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The PDF's text (poppler's `pdftotext -layout`) and, per page rendered by
/// `pdftoppm`, the share of its pixels that are not white.
fn read_pdf(bytes: &[u8]) -> Option<(String, Vec<f64>)> {
    let pdftotext = tool("STELLA_TEST_PDFTOTEXT")?;
    let pdftoppm = tool("STELLA_TEST_PDFTOPPM")?;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, bytes).unwrap();
    let path = path.to_str().unwrap();
    let text = String::from_utf8(run_tool(&pdftotext, &["-layout", path, "-"])).unwrap();
    let prefix = dir.path().join("page");
    // Gray PGM pages at 30 dpi.
    run_tool(
        &pdftoppm,
        &["-r", "30", "-gray", path, prefix.to_str().unwrap()],
    );
    let mut pages: Vec<(u32, f64)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pgm"))
        .map(|p| {
            let number = p.file_stem().unwrap().to_str().unwrap();
            let number: u32 = number.rsplit('-').next().unwrap().parse().unwrap();
            (number, inked(&std::fs::read(&p).unwrap()))
        })
        .collect();
    pages.sort_by_key(|(n, _)| *n);
    Some((text, pages.into_iter().map(|(_, inked)| inked).collect()))
}

/// The share of a binary PGM's (`P5`, 8 bits) pixels that are not white.
fn inked(pgm: &[u8]) -> f64 {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !pgm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&pgm[start..at]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P5", "255"));
    let pixels = &pgm[at + 1..];
    pixels.iter().filter(|p| **p < 240).count() as f64 / pixels.len() as f64
}

const XLSX_READER: &str = r#"
import datetime, json, sys
import openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
out = {"sheets": wb.sheetnames}
for ws in wb.worksheets:
    out[ws.title] = {"freeze": ws.freeze_panes, "filter": ws.auto_filter.ref, "rows": [
        [{"v": c.value.isoformat() if isinstance(c.value, datetime.datetime) else c.value,
          "t": c.data_type, "date": c.is_date, "quote": bool(c.quotePrefix)} for c in row]
        for row in ws.iter_rows()]}
print(json.dumps(out))
"#;

/// The workbook as openpyxl reads it: sheet names, and per sheet its rows of cells
/// (value, type, whether a date, whether quote-prefixed).
fn read_xlsx(bytes: &[u8]) -> Option<Value> {
    let python = tool("STELLA_TEST_REPORT_PYTHON")?;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xlsx");
    std::fs::write(&path, bytes).unwrap();
    let script = dir.path().join("read.py");
    std::fs::write(&script, XLSX_READER).unwrap();
    let out = run_tool(&python, &[script.to_str().unwrap(), path.to_str().unwrap()]);
    Some(serde_json::from_slice(&out).unwrap())
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

struct World<'a> {
    store: &'a Store,
    objects: Objects,
    registry: Registry,
    intake: Intake,
    tenant: TenantId,
}

impl World<'_> {
    /// Scans an SBOM of npm `packages` (name, version) as `target`; its id.
    async fn scan(&self, target: &str, packages: &[(&str, &str)]) -> JobId {
        let components: Vec<Value> = packages
            .iter()
            .map(|(name, version)| {
                json!({"type": "library", "name": name, "version": version,
                       "purl": format!("pkg:npm/{name}@{version}")})
            })
            .collect();
        let sbom =
            json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components});
        let (sha, name) = self
            .intake
            .sbom(
                &self.tenant,
                SbomSource::Body(Bytes::from(sbom.to_string())),
                Some(target.to_owned()),
            )
            .await
            .unwrap();
        let options = ScanOptions {
            evaluated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            idempotency_key: None,
            max_attempts: 3,
        };
        let scan = self
            .intake
            .submit(&self.tenant, sha, name, &options)
            .await
            .unwrap();
        let done = wait_done(self.store, &self.tenant, &scan.job.id).await;
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
        scan.job.id
    }

    /// Runs `profile` as of `as_of` to success; the run and its files.
    async fn export(&self, profile: &str, as_of: DateTime<Utc>) -> (Job, Vec<ExportFileRecord>) {
        let run = start_run(
            self.store,
            &self.registry,
            &self.tenant,
            profile,
            None,
            as_of,
            None,
            None,
            3,
        )
        .await
        .unwrap();
        let done = wait_done(self.store, &self.tenant, &run.id).await;
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
        let files = self
            .store
            .tenant(&self.tenant)
            .export_files()
            .list(&run.id)
            .await
            .unwrap();
        (done, files)
    }

    async fn read(&self, files: &[ExportFileRecord], name: &str) -> Bytes {
        let file = files
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} in {files:?}"));
        let bytes = self
            .objects
            .read_content(&Sha256Digest::parse(&file.sha256).unwrap())
            .await
            .unwrap();
        assert_eq!(bytes.len() as u64, file.size_bytes);
        bytes
    }
}

async fn reports_for_people(store: &Store, mailbox: Arc<dyn Mailbox>, objects: Objects) {
    let key = Arc::new(SigningKey::generate([9; 32]));
    let scan_deps = ScanDeps::new(objects.clone(), key.clone());
    let (registry, runtime) = support::start_runtime(store, mailbox, &scan_deps).await;
    let tenant = TenantId::parse("acme").unwrap();
    store
        .tenants()
        .ensure(&tenant, "Acme", Utc::now())
        .await
        .unwrap();
    let advisories = json!([
        advisory("T-1", "left-pad", "1.3.1", Some(CRITICAL)),
        advisory("T-2", "chalk", "2.4.2", Some(MEDIUM)),
        advisory("T-3", "debug", "2.6.9", None),
    ]);
    stella_actors::advisory_sync::import_advisories(
        store,
        &objects,
        "osv:test",
        advisories.to_string().as_bytes(),
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    let policy = Policy::parse(&policy_text()).unwrap();
    let stored_policy =
        support::activate_policy(store, &tenant, &policy_text(), &policy.digest()).await;
    let world = World {
        store,
        objects: objects.clone(),
        intake: Intake::new(store.clone(), scan_deps, registry.clone(), 1_000),
        registry: registry.clone(),
        tenant: tenant.clone(),
    };

    // Two targets; the second's name would be a formula in a spreadsheet.
    let odd = "=HYPERLINK(\"x\")";
    let api_1 = world
        .scan("api", &[("left-pad", "1.3.0"), ("chalk", "2.0.0")])
        .await;
    let odd_1 = world
        .scan(odd, &[("left-pad", "1.3.0"), ("debug", "2.0.0")])
        .await;
    let (_, created) = put_profile(
        store,
        &Default::default(),
        &tenant,
        "exec",
        "report:pdf",
        &json!({"selectors": {"scans": [api_1.as_str(), odd_1.as_str()]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(created);

    // The first report: T-1 blocks twice, T-3 warns, T-2 passes by the exception.
    let first_as_of = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    let (first, files) = world.export("exec", first_as_of).await;
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "export.json",
            "export.json.dsse",
            "provenance.json",
            "provenance.json.dsse",
            "report.pdf"
        ]
    );
    let pdf = world.read(&files, "report.pdf").await;
    assert!(pdf.starts_with(b"%PDF-"));
    let manifest: Value = serde_json::from_slice(&world.read(&files, "export.json").await).unwrap();
    assert_eq!(manifest["counts"]["findings"], 4);
    assert_eq!(manifest["counts"]["block"], 2);
    let scans = store.tenant(&tenant).scans();
    if let Some((text, pages)) = read_pdf(&pdf) {
        for expected in [
            "Profile exec (revision 1) for tenant acme",
            "As of 2026-02-01 00:00 UTC",
            "api, =HYPERLINK(\"x\")",
            "4 in total: 2 block, 1 warn, 1 pass",
            "2 critical, 1 medium, 1 unknown",
            "first report",
            "chalk-accepted",
            "in force until 2027-01-01 00:00 UTC",
            "expired 2025-06-01 00:00 UTC",
            "1 in force, 1 expired",
            &format!("v{} \"default\" 1", stored_policy.version),
            &stored_policy.digest,
            "T-1",
            "T-2",
            "T-3",
            "npm/left-pad@1.3.0",
            "1.3.1",
            "2.6.9",
            "decided by exception:chalk-accepted",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        // Every scan's evidence, whole.
        for id in [&api_1, &odd_1] {
            let scan = scans.get_without_analysis(id).await.unwrap().unwrap();
            for digest in [
                format!("sha256:{}", scan.sbom_sha256),
                format!("sha256:{}", scan.attestation_sha256.unwrap()),
                scan.inputs_hash.unwrap(),
            ] {
                assert!(text.contains(&digest), "{digest} in the PDF");
            }
        }
        assert!(!pages.is_empty());
        for (i, inked) in pages.iter().enumerate() {
            assert!(*inked > 0.005, "page {} is blank ({inked})", i + 1);
            assert!(text.contains(&format!("page {}", i + 1)));
        }
    }

    // api upgrades left-pad (T-1 fixed) and adds debug (T-3): one new, one resolved.
    let api_2 = world
        .scan(
            "api",
            &[
                ("left-pad", "1.3.1"),
                ("chalk", "2.0.0"),
                ("debug", "2.0.0"),
            ],
        )
        .await;
    // The profile's next revision selects the new api scan; its run compares with the
    // last run of the profile, whatever its revision.
    let (revision, _) = put_profile(
        store,
        &Default::default(),
        &tenant,
        "exec",
        "report:pdf",
        &json!({"selectors": {"scans": [api_2.as_str(), odd_1.as_str()]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(revision.revision, 2);
    let second_as_of = Utc.with_ymd_and_hms(2026, 2, 8, 0, 0, 0).unwrap();
    let (second, files) = world.export("exec", second_as_of).await;
    let pdf = world.read(&files, "report.pdf").await;
    let manifest: Value = serde_json::from_slice(&world.read(&files, "export.json").await).unwrap();
    assert_eq!(manifest["counts"]["new"], 1);
    assert_eq!(manifest["counts"]["resolved"], 1);
    if let Some((text, _)) = read_pdf(&pdf) {
        let line = format!(
            "1 new, 1 resolved since the previous report (export {} as of 2026-02-01 00:00 UTC)",
            first.id
        );
        // The summary's line may wrap; the changes section has it whole.
        assert!(
            text.replace('\n', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(&line),
            "{line:?} not in:\n{text}"
        );
        assert!(text.contains("New findings (1 of 1 listed)"));
        assert!(text.contains("Resolved findings (1 of 1 listed)"));
        let scan = scans.get_without_analysis(&api_2).await.unwrap().unwrap();
        assert!(text.contains(&scan.sbom_sha256));
    }

    // A redelivered write step stores the same bytes (one object per file).
    let export = Export::new(ExportDeps {
        objects: objects.clone(),
        signing_key: key.clone(),
        metrics: Default::default(),
        destinations: Default::default(),
    });
    let params: ExportParams = serde_json::from_value(second.params.clone()).unwrap();
    let second = RunningJob::from(second);
    let mut ctx = StepContext::new(store, &second, 2, Utc::now());
    export
        .run(ExportStep::Write, &params, &mut ctx)
        .await
        .unwrap();
    let again: Vec<(String, String)> = ctx
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::ExportFile { name, sha256, .. } => Some((name, sha256)),
            _ => None,
        })
        .collect();
    let stored = files.iter().find(|f| f.name == "report.pdf").unwrap();
    assert_eq!(again, [("report.pdf".to_owned(), stored.sha256.clone())]);

    // A detailed workbook over every scan: one row per finding.
    put_profile(
        store,
        &Default::default(),
        &tenant,
        "sheet",
        "report:xlsx",
        &json!({
            "selectors": {"scans": [api_1.as_str(), odd_1.as_str(), api_2.as_str()]},
            "options": {"template": "detailed"}
        }),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    let (run, files) = world.export("sheet", second_as_of).await;
    let progress = store
        .tenant(&tenant)
        .export_runs()
        .get(&run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((progress.items_done, progress.items_total), (6, 6));
    let xlsx = world.read(&files, "report.xlsx").await;
    if let Some(book) = read_xlsx(&xlsx) {
        assert_eq!(
            book["sheets"],
            json!(["Summary", "Findings", "Exceptions", "Evidence"])
        );
        let rows = book["Findings"]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 7, "a header and a row per finding");
        assert_eq!(book["Findings"]["freeze"], "A2");
        assert_eq!(book["Findings"]["filter"], "A1:O7");
        let header: Vec<&str> = rows[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["v"].as_str().unwrap())
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        for row in &rows[1..] {
            assert_eq!(row[col("Evaluated at")]["v"], "2026-01-01T00:00:00");
            assert_eq!(row[col("Evaluated at")]["date"], true);
            let id = row[col("Vulnerability")]["v"].as_str().unwrap();
            let cvss = &row[col("CVSS")];
            match id {
                "T-1" => {
                    assert_eq!(
                        (cvss["v"].as_f64(), cvss["t"].as_str()),
                        (Some(9.8), Some("n"))
                    );
                    assert_eq!(row[col("Fixed versions")]["v"], "1.3.1");
                }
                "T-2" => {
                    assert_eq!(row[col("Decided by")]["v"], "exception:chalk-accepted");
                    assert_eq!(row[col("Disposition")]["v"], "pass");
                }
                "T-3" => assert!(cvss["v"].is_null(), "{cvss}"),
                other => panic!("unexpected finding {other}"),
            }
            let target = &row[col("Target")];
            assert_eq!(target["t"], "s");
            assert_eq!(target["quote"], target["v"] == odd, "{target}");
        }
        let summary = book["Summary"]["rows"].as_array().unwrap();
        let value = |label: &str| summary.iter().find(|r| r[0]["v"] == label).unwrap()[1].clone();
        assert_eq!(value("Findings")["v"], 6);
        assert_eq!(value("Tenant")["v"], "acme");
        assert_eq!(value("Changes")["v"], "first report");
        let exceptions = book["Exceptions"]["rows"].as_array().unwrap();
        let chalk = exceptions
            .iter()
            .find(|r| r[0]["v"] == "chalk-accepted")
            .unwrap();
        assert_eq!(chalk[8]["v"], "2027-01-01T00:00:00");
        assert_eq!(chalk[10]["v"], 2, "decided T-2 in both api scans");
        let evidence = book["Evidence"]["rows"].as_array().unwrap();
        for id in [&api_1, &odd_1, &api_2] {
            let scan = scans.get_without_analysis(id).await.unwrap().unwrap();
            let row = evidence
                .iter()
                .find(|r| r[1]["v"] == id.as_str())
                .unwrap_or_else(|| panic!("scan {id} in the evidence"));
            assert_eq!(row[5]["v"], scan.sbom_sha256.as_str());
            assert_eq!(row[6]["v"], scan.attestation_sha256.unwrap().as_str());
        }
    }
    runtime.shutdown(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn reports_for_people_embedded() {
    let db = common::sqlite().await;
    let mailbox: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::EmbeddedMailbox::new(
        db.store.clone(),
        common::mailbox_config(),
    ));
    let objects = common::folder();
    reports_for_people(&db.store, mailbox, Objects::new(objects.store.clone())).await;
    db.finish().await;
}

#[actix_rt::test]
async fn reports_for_people_postgres_valkey_s3() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some(mailbox) = common::valkey_mailbox().await else {
        return;
    };
    let Some(objects) = common::s3().await else {
        return;
    };
    let store: Arc<dyn ObjectStore> = objects.store.clone();
    reports_for_people(&db.store, mailbox.mailbox.clone(), Objects::new(store)).await;
    objects.finish().await;
    mailbox.finish().await;
    db.finish().await;
}
