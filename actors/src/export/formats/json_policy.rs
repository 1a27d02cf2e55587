//! `json:policy`: one `policy.json` with every planned scan's verdict, its kept findings
//! with their explain traces, and each policy a verdict was evaluated with, once (see
//! [`PolicyWriter`]). A verdict names its policy by digest; the snapshot is the tenant's
//! first policy version with that digest, or the built-in default.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;
use stella_domain::export::json_policy::{PolicyExport, PolicyScan, PolicySnapshot, PolicyWriter};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_supervisor::StepError;

use crate::export::cited::ScanFacts;
use crate::export::write::{io_error, Pass, WriteRun};

/// A policy as a verdict recorded it: its version (none for the default) and document.
struct Snapshot {
    version: Option<u64>,
    document: String,
    form: Value,
}

pub(super) async fn write(run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    let plan = run.plan;
    let mut scans = Vec::with_capacity(plan.scans.len());
    for scan in &plan.scans {
        scans.push(ScanFacts::load(run.ctx, scan).await?);
    }
    let mut policies: BTreeMap<String, Snapshot> = BTreeMap::new();
    let default_digest = Policy::parse(DEFAULT_POLICY)
        .map_err(|err| StepError::abort(format!("the default policy: {err}")))?
        .digest();
    for facts in &scans {
        let digest = &facts.inputs.policy;
        if policies.contains_key(digest) {
            continue;
        }
        let stored = run
            .ctx
            .store
            .tenant(&run.ctx.job.tenant)
            .policies()
            .by_digest(digest)
            .await?;
        let (version, document) = match stored {
            Some(record) => (Some(record.version), record.document),
            None if *digest == default_digest => (None, DEFAULT_POLICY.to_owned()),
            None => {
                return Err(StepError::abort(format!(
                    "scan {} was evaluated with policy {digest}, which the tenant does not have",
                    facts.record.id
                )))
            }
        };
        let policy = Policy::parse(&document)
            .map_err(|err| StepError::abort(format!("stored policy {digest}: {err}")))?;
        let form = serde_json::to_value(&policy)
            .map_err(|err| StepError::abort(format!("policy {digest}: {err}")))?;
        policies.insert(
            digest.clone(),
            Snapshot {
                version,
                document,
                form,
            },
        );
    }
    run.count("policies", policies.len() as u64);
    let snapshots: Vec<PolicySnapshot<'_>> = policies
        .iter()
        .map(|(digest, s)| PolicySnapshot {
            digest,
            version: s.version,
            document: &s.document,
            form: &s.form,
        })
        .collect();

    let spool = run.spool()?;
    let about = PolicyExport {
        tool_version: env!("CARGO_PKG_VERSION"),
        profile: &plan.profile,
        revision: plan.revision,
        as_of: plan.as_of,
    };
    let mut writer = PolicyWriter::start(spool, &about, &snapshots).map_err(io_error)?;
    let null = Value::Null;
    for (scan, facts) in plan.scans.iter().zip(&scans) {
        let record = &facts.record;
        let inputs_hash = record.inputs_hash.as_deref().unwrap_or_default();
        writer
            .begin_scan(&PolicyScan {
                scan_id: &scan.id,
                target: &scan.target,
                sbom_sha256: &scan.sbom_sha256,
                attestation_sha256: &scan.attestation_sha256,
                disposition: &scan.disposition,
                counts: record.counts.as_ref().unwrap_or(&null),
                policy_digest: &facts.inputs.policy,
                policy_version: policies[&facts.inputs.policy].version,
                evaluated_at: scan.evaluated_at,
                inputs_hash,
                inputs: record.inputs.as_ref().unwrap_or(&null),
            })
            .map_err(io_error)?;
        run.each_stored(scan, Pass::Counted, |finding, stored| {
            writer
                .write(stored.ordinal, finding, &stored.finding)
                .map_err(|err| StepError::abort(format!("json:policy: {err}")))
        })
        .await?;
    }
    let mut out = writer.finish().map_err(io_error)?;
    out.flush().map_err(io_error)?;
    run.store(out, "policy.json").await?;
    Ok(())
}
