//! `evidence`: the documents the selected verdicts rest on, each a file of the run (so
//! the API serves them one by one too), which `seal` packs with the manifest, the
//! provenance and their signatures into `evidence-<profile>-r<revision>.tar.zst`.
//!
//! Members are named by content, never by an instance's ids (scan ids, export ids), so
//! the same evidence gives the same bundle on every instance and backend. Per scan:
//! - `sboms/<sha256>.json`: the SBOM as submitted;
//! - `attestations/<sha256>.dsse.json`: the verdict's DSSE envelope as sealed, named by
//!   its own digest;
//! - `verdicts/<attestation sha256>.json`: the verdict as stored with its target,
//!   evaluation time, inputs and inputs hash (canonical JSON);
//! - `findings/<attestation sha256>.json`: the findings the selectors keep, as the
//!   canonical JSON array of the stored findings, streamed; with no finding selectors
//!   its SHA-256 is the attestation's `findings_digest`.
//!
//! and, for the scans together, what their kept findings cite:
//! - `advisories/<sha256>.json`: each advisory observation, the raw record as imported
//!   (its SHA-256 is the digest the verdict's inputs name, whatever was imported since);
//! - `vex/<sha256>.json`: each VEX document an assessment's claim names, as imported;
//! - `policy/<digest hex>.toml`: the policy each verdict was evaluated with (the stored
//!   document, or the built-in default), named by the policy digest the verdict names.
//!
//! A bundle is evidence, so SBOMs and attestations are always in it (the profile options
//! `include_sboms` / `include_evidence` are for kinds where they are extra).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::SecondsFormat;
use serde_json::{json, Value};
use stella_domain::canonical::{canonical_bytes, sha256_hex};
use stella_domain::osv::{visit_collection, CollectionError, Limits, RawEntry};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_domain::scan::InputDigests;
use stella_store::object::Sha256Digest;
use stella_store::repo::Observation;
use stella_store::JobId;
use stella_supervisor::StepError;
use tokio::io::AsyncWriteExt;

use crate::export::plan::PlannedScan;
use crate::export::write::{io_error, Pass, WriteRun};

/// What the kept findings of every scan cite, gathered as the scans are written.
#[derive(Debug, Default)]
struct Cited {
    advisories: BTreeSet<Observation>,
    /// VEX document digests (bare hex).
    vex: BTreeSet<String>,
    /// Policy digests (`sha256:<hex>`).
    policies: BTreeSet<String>,
}

pub(super) async fn write(run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    let plan = run.plan;
    let mut cited = Cited::default();
    for scan in &plan.scans {
        let attestation = &scan.attestation_sha256;
        if run.has(&format!("attestations/{attestation}.dsse.json")) {
            // Two scans sealed into one attestation (same SBOM, time and inputs) are the
            // same evidence.
            run.advance(scan.findings).await?;
            continue;
        }
        write_scan(run, scan, &mut cited).await?;
    }
    run.count("advisories", cited.advisories.len() as u64);
    run.count("vex_documents", cited.vex.len() as u64);
    write_advisories(run, &cited.advisories).await?;
    for document in &cited.vex {
        let name = format!("vex/{document}.json");
        if !run.record_object(&name, document).await? {
            return Err(StepError::abort(format!(
                "VEX document {document} is cited but its bytes are not stored"
            )));
        }
    }
    for digest in &cited.policies {
        write_policy(run, digest).await?;
    }
    Ok(())
}

/// One scan's SBOM, attestation, verdict and kept findings; what they cite into `cited`.
async fn write_scan(
    run: &mut WriteRun<'_, '_>,
    scan: &PlannedScan,
    cited: &mut Cited,
) -> Result<(), StepError> {
    let attestation = &scan.attestation_sha256;
    let sbom = format!("sboms/{}.json", scan.sbom_sha256);
    if !run.has(&sbom) && !run.record_object(&sbom, &scan.sbom_sha256).await? {
        return Err(missing("SBOM", &scan.sbom_sha256));
    }
    if !run
        .record_object(format!("attestations/{attestation}.dsse.json"), attestation)
        .await?
    {
        return Err(missing("attestation", attestation));
    }

    let ctx = run.ctx;
    let id = JobId::parse(&scan.id)
        .map_err(|err| StepError::abort(format!("scan {:?}: {err}", scan.id)))?;
    let record = ctx
        .store
        .tenant(&ctx.job.tenant)
        .scans()
        .get_without_analysis(&id)
        .await?
        .ok_or_else(|| StepError::abort(format!("scan {} not found", scan.id)))?;
    let verdict: Value = serde_json::from_str(record.verdict.as_deref().unwrap_or("null"))
        .map_err(|err| StepError::abort(format!("scan {}: stored verdict: {err}", scan.id)))?;
    let inputs = record.inputs.unwrap_or(Value::Null);
    let digests: InputDigests = serde_json::from_value(inputs.clone())
        .map_err(|err| StepError::abort(format!("scan {}: stored inputs: {err}", scan.id)))?;
    let document = json!({
        "target": scan.target,
        "sbom_sha256": scan.sbom_sha256,
        "evaluated_at": scan.evaluated_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "disposition": scan.disposition,
        "attestation_sha256": attestation,
        "verdict": verdict,
        "inputs": inputs,
        "inputs_hash": record.inputs_hash,
    });
    run.store_bytes(
        canonical_bytes(&document),
        format!("verdicts/{attestation}.json"),
    )
    .await?;

    // The kept findings as one canonical JSON array, a finding at a time.
    let (spool, file) = run.spool()?;
    let mut out = BufWriter::new(file);
    let mut first = true;
    let mut ids = BTreeSet::new();
    out.write_all(b"[").map_err(io_error)?;
    run.each_record(scan, Pass::Counted, |record, finding| {
        if !first {
            out.write_all(b",").map_err(io_error)?;
        }
        first = false;
        out.write_all(&canonical_bytes(&record.finding))
            .map_err(io_error)?;
        ids.insert(finding.vulnerability_id.to_owned());
        cited.vex.extend(cited_vex(&record.finding));
        Ok(())
    })
    .await?;
    out.write_all(b"]").map_err(io_error)?;
    out.flush().map_err(io_error)?;
    drop(out);
    run.store(&spool, format!("findings/{attestation}.json"))
        .await?;

    // The observations of the cited advisories the scan read: those whose digests its
    // inputs name.
    let read: BTreeSet<String> = digests
        .advisories
        .iter()
        .filter_map(|d| d.strip_prefix("sha256:"))
        .map(str::to_owned)
        .collect();
    if !ids.is_empty() {
        let observations = ctx.store.advisories().observations_of(&ids, &read).await?;
        cited.advisories.extend(observations);
    }
    cited.policies.insert(digests.policy);
    Ok(())
}

/// The VEX documents (bare hex digests) a finding's assessment cites: its claims'
/// evidence `vex:sha256:<document>#<pointer>`.
fn cited_vex(finding: &Value) -> impl Iterator<Item = String> + '_ {
    finding
        .pointer("/assessment/claims")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|claim| claim["evidence"].as_str())
        .filter_map(|evidence| evidence.strip_prefix("vex:sha256:"))
        .filter_map(|rest| rest.split('#').next())
        .filter(|hex| Sha256Digest::parse(hex).is_ok())
        .map(str::to_owned)
}

/// Each observation's raw record, as `advisories/<sha256>.json`. A record an earlier
/// export stored on its own is recorded as it is; the others are read out of the
/// collections they were imported in, one collection at a time, and stored.
async fn write_advisories(
    run: &mut WriteRun<'_, '_>,
    observations: &BTreeSet<Observation>,
) -> Result<(), StepError> {
    // Collection → entry → digest of the records still to read.
    let mut wanted: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for observation in observations {
        let name = format!("advisories/{}.json", observation.sha256);
        if run.has(&name) || run.record_object(&name, &observation.sha256).await? {
            continue;
        }
        wanted
            .entry(observation.collection_sha256.as_str())
            .or_default()
            .insert(observation.entry.as_str(), observation.sha256.as_str());
    }
    for (collection, entries) in wanted {
        for (sha256, bytes) in read_records(run, collection, &entries).await? {
            let entry = run
                .store_bytes(bytes, format!("advisories/{sha256}.json"))
                .await?;
            debug_assert_eq!(entry.sha256, sha256);
        }
    }
    Ok(())
}

/// The records `entries` (entry name → digest) of the collection object `collection`,
/// read through a temporary file (an `all.zip` is hundreds of megabytes) on the blocking
/// pool. Every one must be found with its digest.
async fn read_records(
    run: &WriteRun<'_, '_>,
    collection: &str,
    entries: &BTreeMap<&str, &str>,
) -> Result<Vec<(String, Vec<u8>)>, StepError> {
    let digest = Sha256Digest::parse(collection)?;
    let (spool, _) = run.spool()?;
    let mut reader = run.deps.objects.get_content(&digest).await?;
    let mut file = tokio::fs::File::create(spool.path())
        .await
        .map_err(io_error)?;
    tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|err| StepError::retry(format!("reading collection {collection}: {err}")))?;
    file.flush().await.map_err(io_error)?;
    drop(file);
    let wanted: BTreeMap<String, String> = entries
        .iter()
        .map(|(entry, sha)| ((*entry).to_owned(), (*sha).to_owned()))
        .collect();
    let found = tokio::task::spawn_blocking(move || pick(spool.path(), &wanted))
        .await
        .map_err(|err| StepError::retry(format!("reading a collection did not finish: {err}")))?
        .map_err(|err| StepError::abort(format!("advisory collection {collection}: {err}")))?;
    for (entry, sha) in entries {
        if !found.iter().any(|(found, _)| found == sha) {
            return Err(StepError::abort(format!(
                "advisory record {entry:?} with sha256 {sha} is not in collection {collection}"
            )));
        }
    }
    Ok(found)
}

/// The records of the collection file at `path` whose entry and digest are in `wanted`.
fn pick(
    path: &Path,
    wanted: &BTreeMap<String, String>,
) -> Result<Vec<(String, Vec<u8>)>, CollectionError> {
    let file = std::fs::File::open(path).map_err(|err| CollectionError::BadEntry {
        name: String::new(),
        reason: format!("cannot read the collection: {err}"),
    })?;
    let mut found = Vec::new();
    visit_collection(
        std::io::BufReader::new(file),
        Limits::default(),
        |entry: RawEntry| {
            if let Some(sha) = wanted.get(&entry.name) {
                if *sha == sha256_hex(&entry.bytes) {
                    found.push((sha.clone(), entry.bytes));
                }
            }
            Ok::<(), CollectionError>(())
        },
    )?;
    Ok(found)
}

/// The policy document with digest `digest`, as `policy/<hex>.toml`.
async fn write_policy(run: &mut WriteRun<'_, '_>, digest: &str) -> Result<(), StepError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let name = format!("policy/{hex}.toml");
    if run.has(&name) {
        return Ok(());
    }
    let ctx = run.ctx;
    let document = match ctx
        .store
        .tenant(&ctx.job.tenant)
        .policies()
        .by_digest(digest)
        .await?
    {
        Some(record) => record.document,
        None if Policy::parse(DEFAULT_POLICY).is_ok_and(|p| p.digest() == digest) => {
            DEFAULT_POLICY.to_owned()
        }
        None => {
            return Err(StepError::abort(format!(
                "policy {digest} is cited by a verdict but not stored"
            )))
        }
    };
    run.store_bytes(document.into_bytes(), name).await?;
    Ok(())
}

fn missing(what: &str, sha256: &str) -> StepError {
    StepError::abort(format!("{what} sha256 {sha256} is not in the object store"))
}
