//! Mirror bundles end to end, on the real Go advisory database and a real SBOM.
//!
//! Instance A (its own store: the embedded default, or PostgreSQL + S3 + Valkey) imports
//! advisories and VEX, exports `mirror:full`, then imports more (new records, a withdrawal,
//! a tenant's VEX) and exports `mirror:delta` since the full one. A fresh instance B
//! (SQLite and a folder, no network) imports both bundles; the same SBOM scanned on A and
//! on B at the same evaluation time gives the same verdict, findings and inputs hash,
//! after the full bundle and again after the delta. Both bundles are also read without
//! Stella (Python). Then the refusals: an older bundle (and the same one forced with a
//! reason, audited), a delta whose base was never imported, a tampered bundle and one
//! signed by an untrusted key (both quarantined, nothing imported).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stella_actors::export::{put_profile, start_run, PutProfileError, StartRunError};
use stella_actors::mirror::{import_bundle, quarantine_key, ImportOptions, MirrorImportError};
use stella_actors::scan::{Intake, SbomSource, ScanDeps, ScanOptions};
use stella_domain::dsse::SigningKey;
use stella_domain::export::manifest::ExportManifest;
use stella_domain::export::tar::{write_tar_zst, zstd_encoder};
use stella_domain::export::verify::{read_bundle_keeping, ReadLimits, Rejected};
use stella_domain::osv::{split_collection, Limits, RawEntry};
use stella_store::mailbox::Mailbox;
use stella_store::object::{ObjectKey, ObjectStore, Objects, Sha256Digest};
use stella_store::repo::{FindingRecord, JobState, VexDocumentRecord};
use stella_store::{JobId, Store, TenantId};
use stella_supervisor::{Registry, Runtime};

const SOURCE: &str = "osv:Go-all";
const SBOM: &str = "sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json";
/// Records of the Go database that A imports only after its full export.
const HELD_BACK: usize = 25;

fn data(path: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(path);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} not found", path.display());
        None
    }
}

fn evaluated_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// Raw OSV records as one JSON array collection.
fn collection(entries: &[&RawEntry]) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&entry.bytes);
    }
    out.push(b']');
    out
}

/// One Stella instance: its store and objects, its signing key, a runtime running every
/// role, and tenant `acme`.
struct Instance {
    store: Store,
    objects: Objects,
    key: Arc<SigningKey>,
    registry: Registry,
    runtime: Runtime,
    intake: Intake,
    tenant: TenantId,
}

async fn instance(
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
    objects: Arc<dyn ObjectStore>,
    seed: u8,
) -> Instance {
    let objects = Objects::new(objects);
    let key = Arc::new(SigningKey::generate([seed; 32]));
    let scan_deps = ScanDeps::new(objects.clone(), key.clone());
    let (registry, runtime) = support::start_runtime(store, mailbox, &scan_deps).await;
    let tenant = TenantId::parse("acme").unwrap();
    store
        .tenants()
        .ensure(&tenant, "Acme", Utc::now())
        .await
        .unwrap();
    let intake = Intake::new(store.clone(), scan_deps, registry.clone(), 1_000);
    Instance {
        store: store.clone(),
        objects,
        key,
        registry,
        runtime,
        intake,
        tenant,
    }
}

async fn wait_done(store: &Store, tenant: &TenantId, id: &JobId) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = store.tenant(tenant).jobs().get(id).await.unwrap();
        if job.state.is_terminal() {
            assert_eq!(job.state, JobState::Succeeded, "{:?}", job.last_error);
            return;
        }
        assert!(Instant::now() < deadline, "job {id} still {}", job.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a scan concluded: disposition, counts, inputs hash, and every finding.
#[derive(Debug, PartialEq)]
struct Outcome {
    disposition: Option<String>,
    counts: Option<Value>,
    inputs_hash: Option<String>,
    findings: Vec<(String, String, String, Value)>,
}

impl Instance {
    async fn scan(&self, sbom: &[u8]) -> Outcome {
        self.scan_with_id(sbom).await.1
    }

    /// A scan of `sbom`: its id and what it concluded.
    async fn scan_with_id(&self, sbom: &[u8]) -> (JobId, Outcome) {
        let (sha, name) = self
            .intake
            .sbom(
                &self.tenant,
                SbomSource::Body(Bytes::copy_from_slice(sbom)),
                None,
            )
            .await
            .unwrap();
        let options = ScanOptions {
            evaluated_at: evaluated_at(),
            idempotency_key: None,
            max_attempts: 3,
        };
        let scan = self
            .intake
            .submit(&self.tenant, sha, name, &options)
            .await
            .unwrap();
        wait_done(&self.store, &self.tenant, &scan.job.id).await;
        let scans = self.store.tenant(&self.tenant).scans();
        let record = scans
            .get_without_analysis(&scan.job.id)
            .await
            .unwrap()
            .unwrap();
        let mut findings = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = scans
                .findings(&scan.job.id, cursor.as_deref(), 500)
                .await
                .unwrap();
            findings.extend(
                page.items
                    .into_iter()
                    .map(|f: FindingRecord| (f.vulnerability_id, f.purl, f.disposition, f.finding)),
            );
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let outcome = Outcome {
            disposition: record.disposition,
            counts: record.counts,
            inputs_hash: record.inputs_hash,
            findings,
        };
        (scan.job.id, outcome)
    }

    /// Runs a `kind` export of `scan` to its end; its files by name, with their bytes.
    async fn export_scan(&self, kind: &str, scan: &JobId) -> BTreeMap<String, Bytes> {
        let profile = kind.replace(':', "-");
        put_profile(
            &self.store,
            &Default::default(),
            &self.tenant,
            &profile,
            kind,
            &json!({"selectors": {"scans": [scan.as_str()]}}),
            "ci",
            Utc::now(),
        )
        .await
        .unwrap();
        let run = start_run(
            &self.store,
            &self.registry,
            &self.tenant,
            &profile,
            None,
            Utc::now(),
            None,
            None,
            3,
        )
        .await
        .unwrap();
        wait_done(&self.store, &self.tenant, &run.id).await;
        let job = self
            .store
            .tenant(&self.tenant)
            .jobs()
            .get(&run.id)
            .await
            .unwrap();
        assert_eq!(
            job.state,
            JobState::Succeeded,
            "{kind}: {:?}",
            job.last_error
        );
        let mut out = BTreeMap::new();
        for file in self
            .store
            .tenant(&self.tenant)
            .export_files()
            .list(&run.id)
            .await
            .unwrap()
        {
            let digest = Sha256Digest::parse(&file.sha256).unwrap();
            out.insert(file.name, self.objects.read_content(&digest).await.unwrap());
        }
        out
    }

    /// A VEX document for `tenant` (`None`: global), as the API imports one.
    async fn import_vex(&self, tenant: Option<&TenantId>, document: &[u8]) {
        let statements = stella_domain::vex::parse(document).unwrap();
        let stored = self
            .objects
            .put_content(Bytes::copy_from_slice(document))
            .await
            .unwrap();
        let record = VexDocumentRecord {
            tenant: tenant.map(ToString::to_string),
            sha256: stored.digest.to_string(),
            format: "openvex".into(),
            statement_count: statements.len() as u64,
            statements: serde_json::to_value(&statements).unwrap(),
            created_at: Utc::now(),
        };
        assert!(self.store.vex().import(tenant, &record).await.unwrap());
    }

    /// Runs `profile` (with `base` for a delta) as of `as_of`; its id, its manifest, and
    /// the bundle written to `dir`.
    async fn export(
        &self,
        profile: &str,
        as_of: DateTime<Utc>,
        base: Option<&JobId>,
        dir: &Path,
    ) -> (JobId, ExportManifest, PathBuf) {
        let base = base.map(ToString::to_string);
        let run = start_run(
            &self.store,
            &self.registry,
            &self.tenant,
            profile,
            None,
            as_of,
            base.as_deref(),
            None,
            3,
        )
        .await
        .unwrap();
        wait_done(&self.store, &self.tenant, &run.id).await;
        let files = self
            .store
            .tenant(&self.tenant)
            .export_files()
            .list(&run.id)
            .await
            .unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "advisories.jsonl",
                "export.json",
                "export.json.dsse",
                "mirror.tar.zst",
                "provenance.json",
                "provenance.json.dsse",
                "vex.jsonl"
            ]
        );
        let read = |name: &str| {
            let file = files.iter().find(|f| f.name == name).unwrap();
            let digest = Sha256Digest::parse(&file.sha256).unwrap();
            let objects = self.objects.clone();
            async move { objects.read_content(&digest).await.unwrap() }
        };
        let manifest = ExportManifest::from_json(&read("export.json").await).unwrap();
        let path = dir.join(format!("{}.tar.zst", run.id));
        std::fs::write(&path, read("mirror.tar.zst").await).unwrap();
        // Progress: the plan counted what the writers wrote.
        let progress = self
            .store
            .tenant(&self.tenant)
            .export_runs()
            .get(&run.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(progress.items_done, progress.items_total);
        (run.id, manifest, path)
    }
}

fn options<'a>(
    force_reason: Option<&'a str>,
    vex_tenant: Option<&'a TenantId>,
) -> ImportOptions<'a> {
    ImportOptions {
        force_reason,
        vex_tenant,
        imported_by: "test",
        now: Utc::now(),
    }
}

/// The Python with `zstandard`, `cryptography` and `securesystemslib`
/// (`STELLA_TEST_SECURESYSTEMSLIB_PYTHON`, the venv `ops/services.sh up` fills): required
/// with the services, else the check is skipped.
fn python() -> Option<String> {
    match std::env::var("STELLA_TEST_SECURESYSTEMSLIB_PYTHON") {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!(
                "STELLA_TEST_SECURESYSTEMSLIB_PYTHON must be set when STELLA_TEST_SERVICES is set"
            )
        }
        _ => {
            eprintln!(
                "skipping the independent bundle check: STELLA_TEST_SECURESYSTEMSLIB_PYTHON is not set"
            );
            None
        }
    }
}

/// Reads a bundle as someone without Stella would: `zstandard` and `tarfile` unpack it,
/// `hashlib` checks every file `export.json` lists, `securesystemslib` verifies
/// `export.json.dsse` with the exporter's public key, and every JSON Lines member is
/// parsed by `json` and must come in increasing key order, each key once.
const CHECKER: &str = r#"
import hashlib, io, json, sys, tarfile, zstandard
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

bundle, pem, keyid = sys.argv[1:4]
with open(bundle, "rb") as f:
    plain = zstandard.ZstdDecompressor().stream_reader(f).read()
tar = tarfile.open(fileobj=io.BytesIO(plain), mode="r:")
members = tar.getmembers()
files = {m.name: tar.extractfile(m).read() for m in members}
problems = []
manifest = json.loads(files["export.json"])
for f in manifest["files"]:
    body = files.get(f["name"])
    if body is None or len(body) != f["size"] or hashlib.sha256(body).hexdigest() != f["sha256"]:
        problems.append(f"{f['name']}: not as export.json lists it")
with open(pem, "rb") as f:
    key = SSlibKey.from_crypto(load_pem_public_key(f.read()), keyid=keyid, scheme="ed25519")
envelope = Envelope.from_dict(json.loads(files["export.json.dsse"]))
try:
    envelope.verify([key], 1)
    if envelope.payload != files["export.json"]:
        problems.append("export.json: not what export.json.dsse signs")
except Exception as e:
    problems.append(f"export.json.dsse: {type(e).__name__}")
records = {}
for member, key_of in (("advisories.jsonl", lambda r: (r["source"], r["id"])),
                       ("vex.jsonl", lambda r: (r["scope"], r["sha256"]))):
    text = files[member].decode("utf-8")
    lines = text.split("\n")
    if lines[-1] != "":
        problems.append(f"{member}: the last line has no newline")
    keys = [key_of(json.loads(line)) for line in lines[:-1]]
    if keys != sorted(set(keys)):
        problems.append(f"{member}: records not in increasing key order")
    records[member] = len(keys)
print(json.dumps({
    "problems": problems,
    "records": records,
    "names": [m.name for m in members],
    "owners": sorted({(m.uid, m.gid, m.mode) for m in members}),
    "mirror": manifest.get("mirror"),
}))
"#;

fn python_check(python: &str, bundle: &Path, key: &SigningKey) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("exporter.pem");
    std::fs::write(&pem, key.public_key().to_pem()).unwrap();
    let output = std::process::Command::new(python)
        .args(["-c", CHECKER])
        .arg(bundle)
        .arg(&pem)
        .arg(key.key_id())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the check did not run: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every member of a bundle, in order, read by the export verifier's own reader.
fn members(bundle: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut kept = Vec::new();
    let contents = read_bundle_keeping(
        std::fs::File::open(bundle).unwrap(),
        &ReadLimits::default(),
        |name| {
            let path = dir.path().join(kept.len().to_string());
            kept.push((name.to_owned(), path.clone()));
            std::fs::File::create(path).map(Some)
        },
    )
    .unwrap();
    let mut files: Vec<(String, Vec<u8>)> = kept
        .into_iter()
        .map(|(name, path)| (name, std::fs::read(path).unwrap()))
        .chain(contents.seal)
        .collect();
    files.sort();
    files
}

/// A `tar.zst` of one entry named `name`, which `TarWriter` would never write.
fn hostile_bundle(name: &str) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[124..135].copy_from_slice(b"00000000004");
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut plain = h.to_vec();
    plain.extend_from_slice(b"evil");
    plain.resize(2048, 0);
    let mut z = zstd_encoder(Vec::new()).unwrap();
    std::io::Write::write_all(&mut z, &plain).unwrap();
    z.finish().unwrap()
}

/// `bundle` with one letter of its advisories member changed, re-packed as a valid
/// archive of valid JSON Lines: only the checksum against `export.json` can tell.
fn tampered(bundle: &Path, out: &Path) {
    let mut files = members(bundle);
    let advisories = &mut files
        .iter_mut()
        .find(|(name, _)| name == "advisories.jsonl")
        .unwrap()
        .1;
    // A letter of the first summary changes case: still valid JSON, other bytes.
    let pattern = b"\"summary\":\"";
    let start = advisories
        .windows(pattern.len())
        .position(|w| w == pattern)
        .unwrap()
        + pattern.len();
    let at = start
        + advisories[start..]
            .iter()
            .position(u8::is_ascii_alphabetic)
            .unwrap();
    advisories[at] ^= 0x20;
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let bytes = write_tar_zst(Vec::new(), 0, &refs).unwrap();
    std::fs::write(out, bytes).unwrap();
}

async fn mirror_round_trip(
    store_a: &Store,
    mailbox_a: Arc<dyn Mailbox>,
    objects_a: Arc<dyn ObjectStore>,
) {
    let (Some(go), Some(sbom)) = (data("advisories/Go-all.zip"), data(SBOM)) else {
        return;
    };
    let sbom = std::fs::read(sbom).unwrap();
    let entries = split_collection(&std::fs::read(go).unwrap(), Limits::default()).unwrap();
    let (early, late) = entries.split_at(entries.len() - HELD_BACK);
    let dir = tempfile::tempdir().unwrap();

    let a = instance(store_a, mailbox_a, objects_a, 1).await;
    stella_actors::advisory_sync::import_advisories(
        &a.store,
        &a.objects,
        SOURCE,
        &collection(&early.iter().collect::<Vec<_>>()),
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    let global_vex = json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://vendor.example/vex/1",
        "author": "vendor",
        "timestamp": "2025-06-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2099-0001"},
            "products": [{"@id": "pkg:golang/example.com/none"}],
            "status": "not_affected",
            "justification": "component_not_present"
        }]
    });
    a.import_vex(None, global_vex.to_string().as_bytes()).await;

    // Mirror profiles take no scan selectors and a delta needs a base: refused by field.
    let refused = put_profile(
        &a.store,
        &Default::default(),
        &a.tenant,
        "feeds",
        "mirror:full",
        &json!({"selectors": {"targets": ["app"]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, PutProfileError::Invalid(i) if i.field == "selectors.targets"),
        "{refused}"
    );
    for (name, kind) in [("feeds", "mirror:full"), ("feeds-delta", "mirror:delta")] {
        put_profile(
            &a.store,
            &Default::default(),
            &a.tenant,
            name,
            kind,
            &json!({"selectors": {}}),
            "ci",
            Utc::now(),
        )
        .await
        .unwrap();
    }
    let no_base = start_run(
        &a.store,
        &a.registry,
        &a.tenant,
        "feeds-delta",
        None,
        Utc::now(),
        None,
        None,
        3,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(no_base, StartRunError::Invalid { field: "base", .. }),
        "{no_base}"
    );

    let before = a.scan(&sbom).await;
    assert!(
        before.findings.len() >= 2,
        "bridge 1.6.3 has findings in the Go database"
    );
    let full_as_of = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    let (full_id, full, full_path) = a.export("feeds", full_as_of, None, dir.path()).await;
    // The same export again: the same bytes (and so the same single object).
    let (_, _, again) = a.export("feeds", full_as_of, None, dir.path()).await;
    assert_eq!(
        std::fs::read(&full_path).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let section = full.mirror.clone().unwrap();
    assert_eq!(full.kind, "mirror:full");
    assert!(section.base.is_none() && section.from.is_none());
    assert_eq!(
        full.counts["advisories"],
        (entries.len() - HELD_BACK) as u64
    );
    assert_eq!(full.counts["vex_documents"], 1);

    // A moves on: the held-back records, one advisory behind a finding withdrawn, and
    // the tenant's own VEX ruling another finding out.
    let (withdrawn_id, vex_id, vex_purl) = {
        let mut ids = before.findings.iter().map(|f| (&f.0, &f.1));
        let (first, _) = ids.next().unwrap();
        let (second, purl) = ids.find(|(id, _)| *id != first).unwrap();
        (first.clone(), second.clone(), purl.clone())
    };
    let record = early
        .iter()
        .find(|entry| {
            serde_json::from_slice::<Value>(&entry.bytes).unwrap()["id"] == withdrawn_id.as_str()
        })
        .unwrap();
    let mut withdrawn: Value = serde_json::from_slice(&record.bytes).unwrap();
    withdrawn["withdrawn"] = json!("2026-01-15T00:00:00Z");
    withdrawn["modified"] = json!("2026-01-15T00:00:00Z");
    let withdrawn = RawEntry {
        name: "withdrawn".into(),
        bytes: withdrawn.to_string().into_bytes(),
    };
    let mut more: Vec<&RawEntry> = late.iter().collect();
    more.push(&withdrawn);
    stella_actors::advisory_sync::import_advisories(
        &a.store,
        &a.objects,
        SOURCE,
        &collection(&more),
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    let tenant_vex = json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://acme.example/vex/1",
        "author": "acme security",
        "timestamp": "2025-06-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": vex_id},
            "products": [{"@id": vex_purl}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path"
        }]
    });
    a.import_vex(Some(&a.tenant), tenant_vex.to_string().as_bytes())
        .await;
    let after = a.scan(&sbom).await;
    assert_ne!(before.inputs_hash, after.inputs_hash);
    assert_ne!(
        before.findings, after.findings,
        "the changes reach the scan"
    );

    let (_, delta, delta_path) = a
        .export(
            "feeds-delta",
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            Some(&full_id),
            dir.path(),
        )
        .await;
    let delta_section = delta.mirror.clone().unwrap();
    assert_eq!(
        delta_section.base.as_ref().unwrap().export_id,
        full_id.to_string()
    );
    assert_eq!(delta_section.from, Some(section.to));
    assert_eq!(delta.counts["advisories_added"], HELD_BACK as u64);
    assert_eq!(delta.counts["advisories_withdrawn"], 1);
    assert_eq!(delta.counts["vex_documents"], 1, "only the new document");
    assert_eq!(delta.counts["advisories_changed"], 0);

    // Both bundles as a reader without Stella sees them.
    if let Some(python) = python() {
        for (path, manifest) in [(&full_path, &full), (&delta_path, &delta)] {
            let report = python_check(&python, path, &a.key);
            assert_eq!(report["problems"], json!([]), "{report}");
            assert_eq!(
                report["records"]["advisories.jsonl"],
                manifest.counts["advisories"]
            );
            assert_eq!(report["owners"], json!([[0, 0, 0o644]]), "{report}");
            assert_eq!(report["mirror"], json!(manifest.mirror), "{report}");
        }
        let bad = dir.path().join("tampered-for-python.tar.zst");
        tampered(&full_path, &bad);
        let report = python_check(&python, &bad, &a.key);
        assert_eq!(
            report["problems"],
            json!(["advisories.jsonl: not as export.json lists it"]),
            "{report}"
        );
    }

    // B: a fresh embedded instance with no network, trusting A's key.
    let db_b = common::sqlite().await;
    let mailbox_b: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::EmbeddedMailbox::new(
        db_b.store.clone(),
        common::mailbox_config(),
    ));
    let objects_b = common::folder();
    let b = instance(&db_b.store, mailbox_b, objects_b.store.clone(), 2).await;
    let trusted = [a.key.public_key().clone()];
    let report = import_bundle(
        &b.store,
        &b.objects,
        &trusted,
        &full_path,
        options(None, None),
    )
    .await
    .unwrap();
    assert_eq!(report.status, "imported");
    assert_eq!(report.origin, a.key.key_id());
    assert_eq!(
        report.advisories_new,
        (entries.len() - HELD_BACK) as u64,
        "{report:?}"
    );
    assert_eq!(
        b.scan(&sbom).await,
        before,
        "B after the full bundle is A before"
    );

    // The delta holds the tenant's own VEX: it needs a tenant to go to.
    let err = import_bundle(
        &b.store,
        &b.objects,
        &trusted,
        &delta_path,
        options(None, None),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--vex-tenant"), "{err}");
    let report = import_bundle(
        &b.store,
        &b.objects,
        &trusted,
        &delta_path,
        options(None, Some(&b.tenant)),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            report.advisories_new,
            report.advisories_changed,
            report.vex_documents_new
        ),
        (HELD_BACK as u64, 1, 1)
    );
    let (b_scan, b_after) = b.scan_with_id(&sbom).await;
    assert_eq!(b_after, after, "B after the delta is A after");

    // B's exports cite the mirrored advisories as A's would: the raw records came in the
    // bundles, hashed, and were stored as B's own observations' records.
    let cited: BTreeSet<&str> = after.findings.iter().map(|f| f.0.as_str()).collect();
    let policy = b.export_scan("json:policy", &b_scan).await;
    let policy: Value = serde_json::from_slice(&policy["policy.json"]).unwrap();
    let text = policy.to_string();
    for id in &cited {
        assert!(text.contains(id), "policy.json does not cite {id}");
    }
    let evidence = b.export_scan("evidence", &b_scan).await;
    let records: Vec<(&String, Value)> = evidence
        .iter()
        .filter(|(name, _)| name.starts_with("advisories/"))
        .map(|(name, bytes)| (name, serde_json::from_slice(bytes).unwrap()))
        .collect();
    let ids: BTreeSet<&str> = records
        .iter()
        .map(|(_, record)| record["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|id| cited.contains(id)),
        "evidence cites {ids:?}, the findings {cited:?}"
    );
    for (name, _) in &records {
        let bytes = &evidence[*name];
        assert_eq!(
            name.as_str(),
            format!("advisories/{}.json", hex::encode(Sha256::digest(bytes))),
            "a record hashes to the digest A's scans named"
        );
    }
    let again = import_bundle(
        &b.store,
        &b.objects,
        &trusted,
        &delta_path,
        options(None, Some(&b.tenant)),
    )
    .await
    .unwrap();
    assert_eq!(again.status, "already-imported");

    // Versions only move forward: the full bundle again is older than the delta.
    let err = import_bundle(
        &b.store,
        &b.objects,
        &trusted,
        &full_path,
        options(None, None),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, MirrorImportError::Older { .. }), "{err}");
    assert_eq!(b.scan(&sbom).await, after, "nothing went back");
    // Forced with a reason it goes in, and the audit log says so.
    let report = import_bundle(
        &b.store,
        &b.objects,
        &trusted,
        &full_path,
        options(Some("the delta's feed was bad"), None),
    )
    .await
    .unwrap();
    assert!(report.forced);
    let audit = b.store.audit().list(None, None, 100).await.unwrap().items;
    let forced = audit
        .iter()
        .find(|e| e.entry.action == "import_mirror_bundle_forced")
        .expect("the forced import is audited");
    assert_eq!(
        forced.entry.details["forced"]["reason"],
        "the delta's feed was bad"
    );
    assert_eq!(forced.entry.target, report.manifest_sha256);

    // C: a delta whose base it never imported, a tampered bundle, an untrusted signer.
    let db_c = common::sqlite().await;
    let objects_c = common::folder();
    let c_objects = Objects::new(objects_c.store.clone());
    let c = &db_c.store;
    let err = import_bundle(c, &c_objects, &trusted, &delta_path, options(None, None))
        .await
        .unwrap_err();
    match &err {
        MirrorImportError::MissingBase { export_id, .. } => {
            assert_eq!(export_id, &full_id.to_string());
            assert!(err.to_string().contains(&full_id.to_string()));
        }
        other => panic!("{other}"),
    }
    let bad = dir.path().join("tampered.tar.zst");
    tampered(&full_path, &bad);
    let err = import_bundle(c, &c_objects, &trusted, &bad, options(None, None))
        .await
        .unwrap_err();
    let MirrorImportError::Quarantined {
        failure,
        object_key,
        bundle_sha256,
    } = &err
    else {
        panic!("{err}")
    };
    assert!(
        matches!(failure, Rejected::Checksum { file, .. } if file == "advisories.jsonl"),
        "{failure}"
    );
    assert_eq!(object_key, &quarantine_key(bundle_sha256));
    assert_eq!(
        objects_c
            .store
            .head(&ObjectKey::parse(object_key).unwrap())
            .await
            .unwrap(),
        Some(std::fs::metadata(&bad).unwrap().len()),
        "the bundle is kept aside"
    );
    let other = SigningKey::generate([9; 32]);
    let err = import_bundle(
        c,
        &c_objects,
        &[other.public_key().clone()],
        &full_path,
        options(None, None),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, MirrorImportError::Quarantined { failure: Rejected::Signature { file, .. }, .. } if file == "export.json.dsse"),
        "{err}"
    );
    // An entry no Stella bundle holds (here one that climbs out of the folder) is
    // refused by the verifier's reader before its bytes are read, and quarantined.
    let hostile = dir.path().join("hostile.tar.zst");
    std::fs::write(&hostile, hostile_bundle("../advisories.jsonl")).unwrap();
    let err = import_bundle(c, &c_objects, &trusted, &hostile, options(None, None))
        .await
        .unwrap_err();
    let MirrorImportError::Quarantined { failure, .. } = &err else {
        panic!("{err}")
    };
    assert!(matches!(failure, Rejected::Unreadable(_)), "{failure}");
    assert_eq!(failure.file(), "../advisories.jsonl");
    let quarantined = c.mirror_imports().quarantined().await.unwrap();
    assert_eq!(quarantined.len(), 3);
    assert!(
        quarantined
            .iter()
            .any(|q| q.file == "../advisories.jsonl" && q.reason.contains("traversal")),
        "{quarantined:?}"
    );
    assert!(
        c.advisories().all().await.unwrap().is_empty(),
        "nothing imported"
    );
    assert!(c.mirror_imports().list().await.unwrap().is_empty());
    // The genuine bundle still goes in.
    import_bundle(c, &c_objects, &trusted, &full_path, options(None, None))
        .await
        .unwrap();
    assert_eq!(
        c.advisories().all().await.unwrap().len(),
        entries.len() - HELD_BACK
    );

    b.runtime.shutdown(Duration::from_secs(5)).await;
    a.runtime.shutdown(Duration::from_secs(5)).await;
    db_c.finish().await;
    objects_c.finish().await;
    objects_b.finish().await;
    db_b.finish().await;
}

#[actix_rt::test]
async fn a_mirror_round_trips_from_the_embedded_default_to_another_instance() {
    let db = common::sqlite().await;
    let mailbox: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::EmbeddedMailbox::new(
        db.store.clone(),
        common::mailbox_config(),
    ));
    let objects = common::folder();
    mirror_round_trip(&db.store, mailbox, objects.store.clone()).await;
    objects.finish().await;
    db.finish().await;
}

#[actix_rt::test]
async fn a_mirror_round_trips_from_postgres_s3_valkey_to_an_embedded_instance() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some(mailbox) = common::valkey_mailbox().await else {
        return;
    };
    let Some(objects) = common::s3().await else {
        return;
    };
    mirror_round_trip(&db.store, mailbox.mailbox.clone(), objects.store.clone()).await;
    objects.finish().await;
    mailbox.finish().await;
    db.finish().await;
}
