//! The export's step: select, write, seal. Findings are read a page at a time and
//! streamed through the format's writer into a temporary file, so a run never holds its
//! findings as one document.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};

use bytes::Bytes;
use serde_json::json;
use stella_domain::dsse;
use stella_domain::export::csv::CsvWriter;
use stella_domain::export::manifest::{ExportManifest, FileEntry, ProfileRef};
use stella_domain::export::sarif::{SarifPlan, SarifRun, SarifWriter};
use stella_domain::export::{ExportFinding, ExportScan};
use stella_store::repo::{Effect, ScanRecord};
use stella_store::JobId;
use stella_supervisor::{StepContext, StepError, StepOutcome};

use super::{ExportDeps, ExportParams, ExportStep, Format, ProfileDefinition};

/// Findings read from the store at a time.
const PAGE: u32 = 500;

/// The manifest's signature file, next to `export.json`.
const MANIFEST_SIGNATURE: &str = "export.json.dsse";

/// `write` (exporter): the selected scans' findings into the profile's format, then the
/// manifest and its signature. Every file is stored content-addressed and recorded with
/// the step's outcome.
pub(super) async fn write(
    deps: &ExportDeps,
    params: &ExportParams,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<ExportStep>, StepError> {
    let tenant = ctx.job.tenant.clone();
    let record = ctx
        .store
        .tenant(&tenant)
        .export_profiles()
        .revision(&params.profile, params.revision)
        .await?;
    let format = Format::parse(&record.kind).map_err(StepError::abort)?;
    let definition: ProfileDefinition = serde_json::from_str(&record.definition)
        .map_err(|err| StepError::abort(format!("the stored profile: {err}")).with_source(err))?;
    let scans = selected_scans(ctx, &definition).await?;

    let dispositions: BTreeSet<&str> = definition
        .selectors
        .dispositions
        .iter()
        .map(String::as_str)
        .collect();
    let mut counts = Counts::default();
    let mut files = Vec::new();
    match format {
        Format::Csv => {
            let (spool, file) = spool()?;
            let mut writer = CsvWriter::new(BufWriter::new(file)).map_err(io_error)?;
            for scan in &scans {
                each_finding(ctx, scan, &dispositions, |finding, disposition| {
                    writer.write(finding).map_err(io_error)?;
                    counts.add(disposition);
                    Ok(())
                })
                .await?;
            }
            let mut out = writer.finish().map_err(io_error)?;
            out.flush().map_err(io_error)?;
            drop(out);
            files.push(store_file(deps, &spool, "findings.csv".to_owned()).await?);
        }
        Format::Sarif => {
            // One SARIF log per scan (GitHub takes one analysis per target), in two
            // passes over its findings: the rules come before the results.
            let run_id = params
                .as_of
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            for scan in &scans {
                let mut plan = SarifPlan::new();
                each_finding(ctx, scan, &dispositions, |finding, disposition| {
                    plan.add(finding);
                    counts.add(disposition);
                    Ok(())
                })
                .await?;
                let (spool, file) = spool()?;
                let mut run = SarifRun::new(
                    env!("CARGO_PKG_VERSION"),
                    &scan.sbom_name,
                    &run_id,
                    "sbom.json",
                );
                run.artifact_sha256 = Some(&scan.sbom_sha256);
                let mut writer =
                    SarifWriter::start(BufWriter::new(file), &run, plan).map_err(io_error)?;
                each_finding(ctx, scan, &dispositions, |finding, _| {
                    writer
                        .write(finding)
                        .map_err(|err| StepError::abort(format!("SARIF: {err}")))?;
                    Ok(())
                })
                .await?;
                let (mut out, _) = writer
                    .finish()
                    .map_err(|err| StepError::abort(format!("SARIF: {err}")))?;
                out.flush().map_err(io_error)?;
                drop(out);
                files.push(store_file(deps, &spool, format!("scan-{}.sarif", scan.id)).await?);
            }
        }
    }

    let mut manifest = ExportManifest::new(
        ProfileRef {
            name: record.name.clone(),
            revision: u32::try_from(record.revision).unwrap_or(u32::MAX),
        },
        format.name(),
        serde_json::to_value(&definition.selectors)
            .map_err(|err| StepError::abort(format!("selectors: {err}")))?,
        params.as_of,
    );
    manifest
        .count("scans", scans.len() as u64)
        .count("findings", counts.findings)
        .count("pass", counts.pass)
        .count("warn", counts.warn)
        .count("block", counts.block);
    for file in &files {
        manifest
            .add_file(file.clone())
            .map_err(|err| StepError::abort(err.to_string()))?;
    }
    let manifest_bytes = manifest.to_canonical_bytes();
    let signature = dsse::sign(
        stella_domain::export::manifest::MANIFEST_PAYLOAD_TYPE,
        &manifest_bytes,
        &deps.signing_key,
    )
    .to_json();
    let manifest_entry = manifest.entry();
    let signature_entry = FileEntry::of(MANIFEST_SIGNATURE, &signature);
    for (entry, bytes) in [
        (&manifest_entry, manifest_bytes),
        (&signature_entry, signature),
    ] {
        let stored = deps.objects.put_content(Bytes::from(bytes)).await?;
        debug_assert_eq!(stored.digest.to_string(), entry.sha256);
    }
    files.push(manifest_entry.clone());
    files.push(signature_entry);
    for entry in &files {
        ctx.stage(Effect::ExportFile {
            name: entry.name.clone(),
            size_bytes: entry.size,
            sha256: entry.sha256.clone(),
        });
    }
    Ok(StepOutcome::Done(json!({
        "profile": record.name,
        "revision": record.revision,
        "kind": format.name(),
        "counts": manifest.counts,
        "files": files,
        "manifest_sha256": manifest_entry.sha256,
    })))
}

/// Findings written, by disposition.
#[derive(Debug, Default)]
struct Counts {
    findings: u64,
    pass: u64,
    warn: u64,
    block: u64,
}

impl Counts {
    fn add(&mut self, disposition: &str) {
        self.findings += 1;
        match disposition {
            "pass" => self.pass += 1,
            "warn" => self.warn += 1,
            "block" => self.block += 1,
            _ => {}
        }
    }
}

/// A temporary file to write an export file into, and a handle to write with.
fn spool() -> Result<(tempfile::NamedTempFile, std::fs::File), StepError> {
    let spool = tempfile::NamedTempFile::new()
        .map_err(|err| StepError::retry(format!("a temporary file: {err}")).with_source(err))?;
    let file = spool
        .reopen()
        .map_err(|err| StepError::retry(format!("a temporary file: {err}")).with_source(err))?;
    Ok((spool, file))
}

/// Stores a written file content-addressed; its entry for the manifest.
async fn store_file(
    deps: &ExportDeps,
    spool: &tempfile::NamedTempFile,
    name: String,
) -> Result<FileEntry, StepError> {
    let stored = deps.objects.put_content_file(spool.path()).await?;
    Ok(FileEntry {
        name,
        size: stored.size,
        sha256: stored.digest.to_string(),
    })
}

/// Calls `each` with every finding of `scan` the dispositions select (all when empty),
/// in ordinal order, reading a page at a time.
async fn each_finding(
    ctx: &StepContext<'_>,
    scan: &ScanRecord,
    dispositions: &BTreeSet<&str>,
    mut each: impl FnMut(&ExportFinding<'_>, &str) -> Result<(), StepError>,
) -> Result<(), StepError> {
    let tenant = &ctx.job.tenant;
    let scans = ctx.store.tenant(tenant).scans();
    let mut cursor: Option<String> = None;
    loop {
        let page = scans.findings(&scan.id, cursor.as_deref(), PAGE).await?;
        for record in &page.items {
            if !dispositions.is_empty() && !dispositions.contains(record.disposition.as_str()) {
                continue;
            }
            let about = ExportScan {
                tenant: tenant.as_str(),
                scan_id: scan.id.as_str(),
                target: &scan.sbom_name,
            };
            let finding =
                ExportFinding::from_finding_json(about, &record.finding).map_err(|err| {
                    StepError::abort(format!(
                        "finding {} of scan {}: {err}",
                        record.ordinal, scan.id
                    ))
                })?;
            each(&finding, &record.disposition)?;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

fn io_error(err: std::io::Error) -> StepError {
    StepError::retry(format!("writing the export: {err}")).with_source(err)
}

/// The scans a profile selects, each once, in id order (so a rerun writes the same
/// bytes): the named scans and the latest scan of each named target. A scan that is not
/// sealed yet is waited for (a retry); one the tenant does not have fails the run.
async fn selected_scans(
    ctx: &StepContext<'_>,
    definition: &ProfileDefinition,
) -> Result<Vec<ScanRecord>, StepError> {
    let tenant = &ctx.job.tenant;
    let mut ids = BTreeSet::new();
    for scan in &definition.selectors.scans {
        let id =
            JobId::parse(scan).map_err(|err| StepError::abort(format!("scan {scan:?}: {err}")))?;
        ids.insert(id);
    }
    let targets = ctx.store.tenant(tenant).targets();
    for name in &definition.selectors.targets {
        let target = targets.get(name).await.map_err(|err| match err {
            stella_store::StoreError::NotFound(_) => {
                StepError::abort(format!("target {name:?} does not exist"))
            }
            other => StepError::from(other),
        })?;
        match target.last_scan_id {
            Some(id) => {
                ids.insert(id);
            }
            None => {
                return Err(StepError::abort(format!(
                    "target {name:?} has not been scanned"
                )))
            }
        }
    }
    let scans = ctx.store.tenant(tenant).scans();
    let mut selected = Vec::with_capacity(ids.len());
    for id in ids {
        let scan = scans
            .get_without_analysis(&id)
            .await?
            .ok_or_else(|| StepError::abort(format!("scan {id} not found")))?;
        if scan.attestation_sha256.is_none() {
            return Err(StepError::retry(format!("scan {id} has not finished")));
        }
        selected.push(scan);
    }
    Ok(selected)
}
