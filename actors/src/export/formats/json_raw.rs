//! `json:raw`: the planned scans' inputs as stored, in one `raw.json` (see [`RawWriter`]):
//! each scan's SBOM (by digest; as a file of the export too, `sbom-<sha256>.json`, when
//! the profile includes SBOMs: the stored object itself, not a copy), the advisory
//! observations its kept findings were matched against, as fetched, and the VEX
//! statements their claims cite, as stored.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::Value;
use stella_domain::export::json_raw::{
    RawAdvisory, RawExport, RawSbom, RawScan, RawVex, RawWriter,
};
use stella_domain::export::parse_vex_evidence;
use stella_store::repo::SbomRecord;
use stella_supervisor::StepError;

use crate::export::cited::gather;
use crate::export::write::{io_error, WriteRun};

fn raw_error(err: stella_domain::export::ExportError) -> StepError {
    StepError::abort(format!("json:raw: {err}"))
}

pub(super) async fn write(run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    let plan = run.plan;
    let (scans, cited) = gather(run).await?;

    // The SBOMs as submitted, each once.
    let mut sboms: BTreeMap<&str, SbomRecord> = BTreeMap::new();
    for scan in &plan.scans {
        if !sboms.contains_key(scan.sbom_sha256.as_str()) {
            let record = run
                .ctx
                .store
                .tenant(&run.ctx.job.tenant)
                .scans()
                .sbom(&scan.sbom_sha256)
                .await?;
            sboms.insert(&scan.sbom_sha256, record);
        }
    }
    let include = plan.definition.options.include_sboms;
    let file_name = |sha256: &str| format!("sbom-{sha256}.json");
    if include {
        for (sha256, record) in &sboms {
            run.store_existing(file_name(sha256), sha256, record.size_bytes)
                .await?;
        }
        run.count("sboms", sboms.len() as u64);
    }

    let spool = run.spool()?;
    let about = RawExport {
        tool_version: env!("CARGO_PKG_VERSION"),
        profile: &plan.profile,
        revision: plan.revision,
        as_of: plan.as_of,
    };
    let mut writer = RawWriter::start(spool, &about).map_err(io_error)?;
    let mut listed: BTreeSet<&str> = BTreeSet::new();
    for (scan, (facts, citations)) in plan.scans.iter().zip(&scans) {
        let sbom = &sboms[scan.sbom_sha256.as_str()];
        let file = include.then(|| file_name(&sbom.sha256));
        let advisories: BTreeSet<&str> = citations
            .ids
            .iter()
            .filter_map(|id| cited.observation(id, facts))
            .map(|a| a.observation.sha256.as_str())
            .collect();
        listed.extend(&advisories);
        let vex: Vec<&str> = citations
            .vex
            .iter()
            .filter(|e| cited.statements.contains_key(*e))
            .map(String::as_str)
            .collect();
        writer
            .scan(&RawScan {
                scan_id: &scan.id,
                target: &scan.target,
                evaluated_at: scan.evaluated_at,
                inputs_hash: facts.record.inputs_hash.as_deref().unwrap_or_default(),
                sbom: RawSbom {
                    sha256: &sbom.sha256,
                    name: &sbom.name,
                    format: &sbom.format,
                    spec_version: &sbom.spec_version,
                    size: sbom.size_bytes,
                    file: file.as_deref(),
                },
                advisories: advisories.into_iter().collect(),
                vex,
            })
            .map_err(raw_error)?;
    }

    // Each observation once, by source, id and digest.
    let mut observations: Vec<_> = listed.iter().map(|d| &cited.advisories[*d]).collect();
    observations.sort_by(|a, b| {
        let key = |x: &&crate::export::cited::CitedAdvisory| {
            (
                x.observation.source.clone(),
                x.observation.id.clone(),
                x.observation.sha256.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    for cited_advisory in &observations {
        let o = &cited_advisory.observation;
        writer
            .advisory(&RawAdvisory {
                source: &o.source,
                id: &o.id,
                sha256: &o.sha256,
                modified: o.modified,
                collection_sha256: &o.collection_sha256,
                entry: &o.entry,
                record: &cited_advisory.record,
            })
            .map_err(raw_error)?;
    }
    run.count("advisories", observations.len() as u64);

    // Each document's cited statements, in document order; documents by scope and digest.
    let mut documents: BTreeMap<(&str, &str), Vec<(usize, &Value)>> = BTreeMap::new();
    for (reference, statement) in &cited.statements {
        let Some((sha256, _)) = parse_vex_evidence(reference) else {
            continue;
        };
        let Some(document) = cited.documents.get(sha256) else {
            continue;
        };
        documents
            .entry((document.scope, sha256))
            .or_default()
            .push((statement.index, &statement.stored));
    }
    let mut statements_total = 0;
    for ((scope, sha256), mut statements) in documents {
        statements.sort_by_key(|(index, _)| *index);
        statements_total += statements.len() as u64;
        let statements: Vec<&Value> = statements.into_iter().map(|(_, s)| s).collect();
        writer
            .vex(&RawVex {
                sha256,
                scope,
                format: &cited.documents[sha256].format,
                statements: &statements,
            })
            .map_err(raw_error)?;
    }
    run.count("vex_statements", statements_total);
    let mut out = writer.finish().map_err(raw_error)?;
    out.flush().map_err(io_error)?;
    run.store(out, "raw.json").await?;
    Ok(())
}
