//! The `evidence` kind through the real runtime: two targets' scans (advisories, a VEX
//! statement and a tenant policy behind their verdicts) exported as a sealed,
//! reproducible `tar.zst`. Checked as a verifier would: every member against the signed
//! manifest (the domain's `verify`, the code behind `stella export verify`), each
//! document against what the signed attestations pin (the findings' digest, the
//! advisory observations' and VEX documents' digests, the policy), two runs byte for
//! byte, and the same bundle on SQLite + folder + embedded mailbox as on PostgreSQL + S3
//! + Valkey.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use stella_actors::export::{put_profile, start_run};
use stella_actors::scan::{Intake, SbomSource, ScanDeps, ScanOptions};
use stella_domain::canonical::sha256_hex;
use stella_domain::dsse::{Envelope, SigningKey};
use stella_domain::export::verify::{check, read_bundle, ReadLimits, Signatures};
use stella_domain::osv::Limits;
use stella_domain::policy::Policy;
use stella_store::mailbox::Mailbox;
use stella_store::object::{ObjectStore, Objects, Sha256Digest};
use stella_store::repo::{Job, JobState, VexDocumentRecord};
use stella_store::{JobId, Store, TenantId};

const POLICY: &str = "name = \"strict\"\nversion = 1\ndefault = \"warn\"\n\n[[rules]]\nid = \"no-chalk\"\nwhen = { packages = [\"pkg:npm/chalk\"] }\noutcome = \"block\"\nbecause = \"banned\"\n";

fn advisories() -> Vec<u8> {
    let record = |id: &str, name: &str, fixed: &str| {
        json!({
            "id": id,
            "modified": "2024-01-01T00:00:00Z",
            "summary": format!("{name} is vulnerable"),
            "affected": [{
                "package": {"ecosystem": "npm", "name": name},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
            }]
        })
    };
    json!([
        record("T-1", "left-pad", "1.3.1"),
        record("T-2", "chalk", "5.0.0"),
        record("T-3", "lodash", "4.17.21"),
    ])
    .to_string()
    .into_bytes()
}

/// OpenVEX: left-pad 1.3.0 is affected by T-1 (a claim the findings then cite).
fn vex() -> Vec<u8> {
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/acme-1",
        "author": "acme security",
        "timestamp": "2025-06-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "T-1"},
            "products": [{"@id": "pkg:npm/left-pad@1.3.0"}],
            "status": "affected",
            "action_statement": "upgrade to 1.3.1"
        }]
    })
    .to_string()
    .into_bytes()
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

/// What one backend's run gave: the run's files (name → sha256, size) and the bundle.
#[derive(Debug)]
struct Exported {
    files: BTreeMap<String, (String, u64)>,
    bundle: Vec<u8>,
}

/// Everything from an empty store to two runs of one evidence profile; the runs'
/// files, checked equal, and what a verifier finds in the bundle.
async fn evidence_on(
    store: &Store,
    mailbox: Arc<dyn Mailbox>,
    object_store: Arc<dyn ObjectStore>,
) -> Exported {
    let objects = Objects::new(object_store);
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
        &advisories(),
        Limits::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    // The tenant's VEX document and policy, stored as the API stores them.
    let vex = vex();
    let statements = stella_domain::vex::parse(&vex).unwrap();
    let stored = objects.put_content(Bytes::from(vex.clone())).await.unwrap();
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
    let policy_digest = Policy::parse(POLICY).unwrap().digest();
    support::activate_policy(store, &tenant, POLICY, &policy_digest).await;

    // Two targets, each scanned once: left-pad (T-1, with VEX) in both, chalk (T-2,
    // blocked by the policy) in one; lodash's advisory names no scanned package.
    let intake = Intake::new(store.clone(), scan_deps, registry.clone(), 1_000);
    let evaluated_at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for (target, extra) in [("api", "chalk"), ("web", "debug")] {
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
                Some(target.to_owned()),
            )
            .await
            .unwrap();
        let options = ScanOptions {
            evaluated_at,
            idempotency_key: None,
            max_attempts: 3,
        };
        let scan = intake
            .submit(&tenant, sha.clone(), name, &options)
            .await
            .unwrap();
        let done = wait_done(store, &tenant, &scan.job.id).await;
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
        let targets = store.tenant(&tenant).targets();
        let registered = targets.put(target, &sha, &[], Utc::now()).await.unwrap();
        targets
            .set_last_scan(&registered.id, &scan.job.id)
            .await
            .unwrap();
    }

    // Selected by target, so nothing in the profile names this instance's scan ids.
    let (profile, created) = put_profile(
        store,
        &Default::default(),
        &tenant,
        "audit",
        "evidence",
        &json!({"selectors": {"targets": ["web", "api"]}}),
        "ci",
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(created && profile.revision == 1);
    let as_of: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = start_run(
            store, &registry, &tenant, "audit", None, as_of, None, None, 3,
        )
        .await
        .unwrap();
        let done = wait_done(store, &tenant, &run.id).await;
        assert_eq!(done.state, JobState::Succeeded, "{:?}", done.last_error);
        let files: BTreeMap<String, (String, u64)> = store
            .tenant(&tenant)
            .export_files()
            .list(&run.id)
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.name, (f.sha256, f.size_bytes)))
            .collect();
        runs.push(files);
    }
    assert_eq!(runs[0], runs[1], "two runs of one revision: the same files");
    let files = runs.remove(0);
    let read = |name: &str| {
        let (sha, size) = files
            .get(name)
            .unwrap_or_else(|| panic!("{name} in {files:?}"))
            .clone();
        let objects = objects.clone();
        async move {
            let bytes = objects
                .read_content(&Sha256Digest::parse(&sha).unwrap())
                .await
                .unwrap();
            assert_eq!(bytes.len() as u64, size);
            bytes.to_vec()
        }
    };

    // Per scan: SBOM, attestation, verdict and findings, named by content.
    let kinds = |prefix: &str| files.keys().filter(|n| n.starts_with(prefix)).count();
    assert_eq!(kinds("sboms/"), 2, "{files:?}");
    assert_eq!(kinds("attestations/"), 2);
    assert_eq!(kinds("verdicts/"), 2);
    assert_eq!(kinds("findings/"), 2);
    assert_eq!(kinds("vex/"), 1);
    assert_eq!(kinds("policy/"), 1);
    let bundle_name = "evidence-audit-r1.tar.zst";
    let bundle = read(bundle_name).await;

    let mut findings_total = 0;
    let mut pinned = std::collections::BTreeSet::new();
    for name in files.keys().filter(|n| n.starts_with("attestations/")) {
        let attestation = name
            .strip_prefix("attestations/")
            .and_then(|n| n.strip_suffix(".dsse.json"))
            .unwrap();
        let envelope = read(name).await;
        assert_eq!(sha256_hex(&envelope), attestation, "named by its digest");
        let statement: Value = serde_json::from_slice(
            &Envelope::from_json(&envelope)
                .unwrap()
                .payload_unverified()
                .unwrap(),
        )
        .unwrap();
        let predicate = &statement["predicate"];
        // The findings file is every finding: its digest is the one the attestation signs.
        let findings_file = read(&format!("findings/{attestation}.json")).await;
        assert_eq!(
            format!("sha256:{}", sha256_hex(&findings_file)),
            predicate["verdict"]["findings_digest"].as_str().unwrap()
        );
        let findings: Vec<Value> = serde_json::from_slice(&findings_file).unwrap();
        findings_total += findings.len();
        // The verdict as stored, with the inputs the attestation names.
        let verdict: Value =
            serde_json::from_slice(&read(&format!("verdicts/{attestation}.json")).await).unwrap();
        assert_eq!(verdict["inputs"], predicate["inputs"]);
        assert_eq!(verdict["inputs_hash"], predicate["inputs_hash"]);
        assert_eq!(verdict["attestation_sha256"], attestation);
        let sbom = verdict["sbom_sha256"].as_str().unwrap();
        assert_eq!(sha256_hex(&read(&format!("sboms/{sbom}.json")).await), sbom);
        pinned.extend(
            predicate["inputs"]["advisories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned()),
        );
        let policy = predicate["verdict"]["policy_digest"].as_str().unwrap();
        assert_eq!(policy, policy_digest);
    }
    assert_eq!(findings_total, 3, "left-pad twice, chalk once");
    // Every advisory observation in the bundle is one a signed verdict's inputs pin.
    for advisory in files.keys().filter(|n| n.starts_with("advisories/")) {
        let digest = sha256_hex(&read(advisory).await);
        assert_eq!(advisory, &format!("advisories/{digest}.json"));
        assert!(
            pinned.contains(&format!("sha256:{digest}")),
            "{advisory}: {pinned:?}"
        );
    }
    // Cited only: T-1 and T-2, never lodash's T-3.
    let advisories: Vec<Value> = {
        let mut out = Vec::new();
        for name in files.keys().filter(|n| n.starts_with("advisories/")) {
            out.push(serde_json::from_slice(&read(name).await).unwrap());
        }
        out
    };
    let mut ids: Vec<&str> = advisories
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["T-1", "T-2"]);
    assert_eq!(
        read(&format!("vex/{}.json", stored.digest)).await,
        vex,
        "the VEX document as imported"
    );
    let hex = policy_digest.strip_prefix("sha256:").unwrap();
    assert_eq!(read(&format!("policy/{hex}.toml")).await, POLICY.as_bytes());

    // The bundle holds every other file of the run, and checks out against its signed
    // manifest as `stella export verify` checks it.
    let contents = read_bundle(&bundle[..], &ReadLimits::default()).unwrap();
    let report = check(&contents, Some(&[key.public_key().clone()][..])).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        report.signatures,
        Signatures::Verified {
            key_ids: vec![key.key_id().to_owned()]
        }
    );
    let mut members: Vec<&String> = contents.files.keys().chain(contents.seal.keys()).collect();
    members.sort();
    let others: Vec<&String> = files.keys().filter(|n| *n != bundle_name).collect();
    assert_eq!(members, others);
    for (name, entry) in &contents.files {
        assert_eq!(files[name], (entry.sha256.clone(), entry.size), "{name}");
    }
    let manifest: Value = serde_json::from_slice(&contents.seal["export.json"]).unwrap();
    assert_eq!(manifest["kind"], "evidence");
    assert_eq!(manifest["counts"]["findings"], 3);
    assert_eq!(manifest["counts"]["advisories"], 2);
    assert_eq!(manifest["counts"]["vex_documents"], 1);
    assert_eq!(manifest["selectors"], json!({"targets": ["web", "api"]}));

    runtime.shutdown(Duration::from_secs(5)).await;
    Exported { files, bundle }
}

#[actix_rt::test]
async fn evidence_bundles_are_sealed_and_byte_identical_on_every_backend() {
    let db = common::sqlite().await;
    let mailbox: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::EmbeddedMailbox::new(
        db.store.clone(),
        common::mailbox_config(),
    ));
    let folder = common::folder();
    let embedded = evidence_on(&db.store, mailbox, folder.store.clone()).await;
    db.finish().await;
    folder.finish().await;

    let (Some(db), Some(mailbox), Some(s3)) = (
        common::postgres().await,
        common::valkey_mailbox().await,
        common::s3().await,
    ) else {
        return;
    };
    let served = evidence_on(&db.store, mailbox.mailbox.clone(), s3.store.clone()).await;
    mailbox.finish().await;
    db.finish().await;
    s3.finish().await;
    assert_eq!(
        sha256_hex(&served.bundle),
        sha256_hex(&embedded.bundle),
        "the same evidence, byte for byte, on SQLite/folder/embedded and PostgreSQL/S3/Valkey"
    );
    assert_eq!(served.files, embedded.files);
}
