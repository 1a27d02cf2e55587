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
//!   (its SHA-256 is the digest the verdict's inputs name, whatever was imported since;
//!   read back from its collection by `cited`);
//! - `vex/<sha256>.json`: each VEX document a claim's evidence names, as imported;
//! - `policy/<digest hex>.toml`: the policy each verdict was evaluated with (the stored
//!   document, or the built-in default), named by the policy digest the verdict names.
//!
//! A bundle is evidence, so SBOMs and attestations are always in it (the profile options
//! `include_sboms` / `include_evidence` are for kinds where they are extra).

use std::collections::BTreeSet;
use std::io::Write;

use chrono::SecondsFormat;
use serde_json::{json, Value};
use stella_domain::canonical::canonical_bytes;
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_store::repo::ScanRecord;
use stella_supervisor::StepError;

use crate::export::cited::{Citations, CitedRecords, ScanFacts};
use crate::export::plan::PlannedScan;
use crate::export::write::{io_error, Pass, WriteRun};

pub(super) async fn write(run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    let plan = run.plan;
    // One pass over each scan's findings (counted): what they cite, and the findings
    // file written as they pass.
    let mut scans = Vec::with_capacity(plan.scans.len());
    let mut all = Citations::default();
    let mut digests = BTreeSet::new();
    for scan in &plan.scans {
        let facts = ScanFacts::load(run.ctx, scan).await?;
        let attestation = &scan.attestation_sha256;
        let attestation_file = format!("attestations/{attestation}.dsse.json");
        // Two scans sealed into one attestation (same SBOM, time and inputs) are the same
        // evidence: the second is counted, not written again.
        let fresh = !run.has(&attestation_file);
        if fresh {
            let sbom = format!("sboms/{}.json", scan.sbom_sha256);
            if !run.has(&sbom) {
                run.store_existing_object(sbom, &scan.sbom_sha256).await?;
            }
            run.store_existing_object(attestation_file, attestation)
                .await?;
            run.store_bytes(
                verdict(scan, &facts.record)?,
                format!("verdicts/{attestation}.json"),
            )
            .await?;
        }
        let citations = findings(run, scan, fresh).await?;
        all.extend(&citations);
        digests.extend(facts.advisories.iter().cloned());
        scans.push((facts, citations, fresh));
    }
    let cited = CitedRecords::load(run.deps, run.ctx, &all, &digests).await?;
    let mut advisories = BTreeSet::new();
    let mut policies = BTreeSet::new();
    for (facts, citations, fresh) in &scans {
        if !fresh {
            continue;
        }
        advisories.extend(
            citations
                .ids
                .iter()
                .filter_map(|id| cited.observation(id, facts))
                .map(|a| a.observation.sha256.clone()),
        );
        policies.insert(facts.inputs.policy.clone());
    }
    run.count("advisories", advisories.len() as u64);
    run.count("vex_documents", cited.documents.len() as u64);
    for sha256 in &advisories {
        let record = cited.advisories[sha256].record.clone().into_bytes();
        run.store_bytes(record, format!("advisories/{sha256}.json"))
            .await?;
    }
    for document in cited.documents.keys() {
        run.store_existing_object(format!("vex/{document}.json"), document)
            .await?;
    }
    for digest in &policies {
        write_policy(run, digest).await?;
    }
    Ok(())
}

/// A scan's verdict as stored, with what it was evaluated on: canonical JSON.
fn verdict(scan: &PlannedScan, record: &ScanRecord) -> Result<Vec<u8>, StepError> {
    let verdict: Value = serde_json::from_str(record.verdict.as_deref().unwrap_or("null"))
        .map_err(|err| StepError::abort(format!("scan {}: stored verdict: {err}", scan.id)))?;
    Ok(canonical_bytes(&json!({
        "target": scan.target,
        "sbom_sha256": scan.sbom_sha256,
        "evaluated_at": scan.evaluated_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "disposition": scan.disposition,
        "attestation_sha256": scan.attestation_sha256,
        "verdict": verdict,
        "inputs": record.inputs,
        "inputs_hash": record.inputs_hash,
    })))
}

/// The scan's kept findings as one canonical JSON array, a finding at a time as stored
/// (the text the scan recorded is the finding's canonical JSON, so it is copied, not
/// parsed and written again), and what they cite; `write` false: only what they cite
/// (the scan's findings are in the bundle already).
async fn findings(
    run: &mut WriteRun<'_, '_>,
    scan: &PlannedScan,
    write: bool,
) -> Result<Citations, StepError> {
    let mut out = if write { Some(run.spool()?) } else { None };
    let mut citations = Citations::default();
    let mut first = true;
    if let Some(out) = &mut out {
        out.write_all(b"[").map_err(io_error)?;
    }
    run.each_row(scan, Pass::Counted, |row| {
        citations.add_row(row)?;
        if let Some(out) = &mut out {
            if !first {
                out.write_all(b",").map_err(io_error)?;
            }
            first = false;
            out.write_all(row.text.as_bytes()).map_err(io_error)?;
        }
        Ok(())
    })
    .await?;
    if let Some(mut out) = out {
        out.write_all(b"]").map_err(io_error)?;
        run.store(out, format!("findings/{}.json", scan.attestation_sha256))
            .await?;
    }
    Ok(citations)
}

/// The policy document with digest `digest`, as `policy/<hex>.toml`: the tenant's first
/// version with that digest, or the built-in default.
async fn write_policy(run: &mut WriteRun<'_, '_>, digest: &str) -> Result<(), StepError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
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
                "policy {digest} is named by a verdict but not stored"
            )))
        }
    };
    run.store_bytes(document.into_bytes(), format!("policy/{hex}.toml"))
        .await?;
    Ok(())
}
