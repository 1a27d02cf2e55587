//! `write`: the plan's items through the format's writer, into files. What every format
//! needs is here ([`WriteRun`]): the plan, reading a scan's findings a page at a time,
//! temporary files to write into, storing a finished file, and progress. The formats
//! themselves are in `formats/`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use stella_domain::export::manifest::FileEntry;
use stella_domain::export::{ExportFinding, ExportScan};
use stella_store::object::{ContentRef, ContentSpool, ObjectKey, Sha256Digest};
use stella_store::repo::{Effect, FindingRecord, FindingRow};
use stella_store::JobId;
use stella_supervisor::{StepContext, StepError, StepOutcome};

use super::formats;
use super::plan::{ExportPlan, PlannedScan};
use super::{ExportDeps, ExportStep};

/// Findings read from the store at a time.
const PAGE: u32 = 500;

/// Items written between two progress reports.
const PROGRESS_EVERY: u64 = 1_000;

/// `write` (exporter): every file of the plan's format, each stored content-addressed
/// and recorded with the step's outcome.
pub(super) async fn write(
    deps: &ExportDeps,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<ExportStep>, StepError> {
    let (plan, _) = ExportPlan::load(deps, ctx).await?;
    let format = plan.format()?;
    let mut run = WriteRun {
        deps,
        ctx,
        plan: &plan,
        files: Vec::new(),
        counts: BTreeMap::new(),
        done: 0,
        reported: 0,
    };
    if format.exports_scans() {
        run.count("scans", plan.scans.len() as u64);
    }
    formats::write(format, &mut run).await?;
    run.report().await?;
    let counts = serde_json::to_value(&run.counts)
        .map_err(|err| StepError::abort(format!("counts: {err}")))?;
    let files = std::mem::take(&mut run.files);
    ctx.store
        .tenant(&ctx.job.tenant)
        .export_runs()
        .set_counts(&ctx.job.id, &counts)
        .await?;
    for entry in files {
        ctx.stage(Effect::ExportFile {
            name: entry.name,
            size_bytes: entry.size,
            sha256: entry.sha256,
        });
    }
    Ok(StepOutcome::Next(ExportStep::Seal))
}

/// A `write` step in progress: what a format's writer reads and where its files go.
pub(super) struct WriteRun<'a, 'c> {
    pub(crate) deps: &'a ExportDeps,
    pub(crate) ctx: &'a StepContext<'c>,
    pub(crate) plan: &'a ExportPlan,
    files: Vec<FileEntry>,
    counts: BTreeMap<String, u64>,
    done: u64,
    reported: u64,
}

impl WriteRun<'_, '_> {
    /// A spool to write an export file into (buffered, hashed as it is written), stored
    /// with [`Self::store`].
    pub(crate) fn spool(&self) -> Result<ContentSpool, StepError> {
        Ok(self.deps.objects.spool()?)
    }

    /// Stores a written spool content-addressed as the export's file `name`: nothing is
    /// read back, and on the folder store nothing is copied.
    pub(crate) async fn store(
        &mut self,
        spool: ContentSpool,
        name: impl Into<String>,
    ) -> Result<FileEntry, StepError> {
        let stored = self.deps.objects.put_spool(spool).await?;
        self.add_stored(stored, name.into())
    }

    /// A temporary file for a writer that needs a `File` of its own (the report
    /// renderers), and a handle to write with; stored with [`Self::store_file`].
    pub(crate) fn spool_file(&self) -> Result<(tempfile::NamedTempFile, std::fs::File), StepError> {
        let spool = tempfile::NamedTempFile::new()
            .map_err(|err| StepError::retry(format!("a temporary file: {err}")).with_source(err))?;
        let file = spool
            .reopen()
            .map_err(|err| StepError::retry(format!("a temporary file: {err}")).with_source(err))?;
        Ok((spool, file))
    }

    /// Stores a file written through [`Self::spool_file`] content-addressed as the
    /// export's file `name`.
    pub(crate) async fn store_file(
        &mut self,
        spool: &tempfile::NamedTempFile,
        name: impl Into<String>,
    ) -> Result<FileEntry, StepError> {
        let stored = self.deps.objects.put_content_file(spool.path()).await?;
        self.add_stored(stored, name.into())
    }

    fn add_stored(&mut self, stored: ContentRef, name: String) -> Result<FileEntry, StepError> {
        let entry = FileEntry {
            name,
            size: stored.size,
            sha256: stored.digest.to_string(),
        };
        self.add(entry.clone())?;
        Ok(entry)
    }

    fn add(&mut self, entry: FileEntry) -> Result<(), StepError> {
        if self.files.iter().any(|f| f.name == entry.name) {
            return Err(StepError::abort(format!(
                "the export writes {:?} twice",
                entry.name
            )));
        }
        self.files.push(entry);
        Ok(())
    }

    /// Adds `n` to the count `name` of the manifest's counts (`findings` and one per
    /// disposition are counted by [`Self::each_finding`]).
    pub(crate) fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_owned()).or_default() += n;
    }

    /// Counts `n` items written; reports progress every [`PROGRESS_EVERY`].
    pub(crate) async fn advance(&mut self, n: u64) -> Result<(), StepError> {
        self.done += n;
        if self.done - self.reported >= PROGRESS_EVERY {
            self.report().await?;
        }
        Ok(())
    }

    async fn report(&mut self) -> Result<(), StepError> {
        self.reported = self.done;
        self.ctx
            .store
            .tenant(&self.ctx.job.tenant)
            .export_runs()
            .progress(&self.ctx.job.id, self.done)
            .await?;
        Ok(())
    }

    /// Records an object the store already holds (an SBOM, by its digest) as the
    /// export's file `name`, without copying it: the files are content-addressed, so it
    /// is the same object either way. Its absence is transient (a store coming back).
    pub(crate) async fn store_existing(
        &mut self,
        name: impl Into<String>,
        sha256: &str,
        size: u64,
    ) -> Result<FileEntry, StepError> {
        let digest = Sha256Digest::parse(sha256)?;
        if self
            .deps
            .objects
            .store()
            .head(&ObjectKey::content(&digest))
            .await?
            != Some(size)
        {
            return Err(StepError::retry(format!(
                "object sha256/{sha256} of {size} bytes is not in the object store"
            )));
        }
        let entry = FileEntry {
            name: name.into(),
            size,
            sha256: sha256.to_owned(),
        };
        self.add(entry.clone())?;
        Ok(entry)
    }

    /// [`Self::store_existing`] for an object whose size the caller does not hold (an
    /// attestation, a VEX document): the store is asked.
    pub(crate) async fn store_existing_object(
        &mut self,
        name: impl Into<String>,
        sha256: &str,
    ) -> Result<FileEntry, StepError> {
        let digest = Sha256Digest::parse(sha256)?;
        let size = self
            .deps
            .objects
            .store()
            .head(&ObjectKey::content(&digest))
            .await?
            .ok_or_else(|| {
                StepError::retry(format!("object sha256/{sha256} is not in the object store"))
            })?;
        self.store_existing(name, sha256, size).await
    }

    /// Stores bytes held in memory (a document of kilobytes to a few megabytes) as the
    /// export's file `name`.
    pub(crate) async fn store_bytes(
        &mut self,
        bytes: Vec<u8>,
        name: impl Into<String>,
    ) -> Result<FileEntry, StepError> {
        let stored = self.deps.objects.put_content(Bytes::from(bytes)).await?;
        self.add_stored(stored, name.into())
    }

    /// Whether the file `name` is written already.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.files.iter().any(|f| f.name == name)
    }

    /// Calls `each` with every finding of `scan` the selectors keep, in ordinal order,
    /// reading a page at a time, and its disposition. The findings of a [`Pass::Counted`]
    /// count as read items (progress) and, those kept, in the manifest's counts; a
    /// format that reads a scan twice counts one pass.
    pub(crate) async fn each_finding(
        &mut self,
        scan: &PlannedScan,
        pass: Pass,
        each: impl FnMut(&ExportFinding<'_>, &str) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        let plan = self.plan;
        self.each_finding_of(plan, scan, pass, each).await
    }

    /// [`Self::each_finding`] for a scan of another plan (a report's previous run), with
    /// that plan's selectors; never [`Pass::Counted`] but for this run's plan.
    pub(crate) async fn each_finding_of(
        &mut self,
        plan: &ExportPlan,
        scan: &PlannedScan,
        pass: Pass,
        mut each: impl FnMut(&ExportFinding<'_>, &str) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        self.each_stored_of(plan, scan, pass, |finding, record| {
            each(finding, &record.disposition)
        })
        .await
    }

    /// [`Self::each_finding`] with the stored finding itself (its ordinal and the JSON
    /// the evaluator recorded: the trace, the claims and their evidence), for the formats
    /// that write more than the export view holds.
    pub(crate) async fn each_stored(
        &mut self,
        scan: &PlannedScan,
        pass: Pass,
        each: impl FnMut(&ExportFinding<'_>, &FindingRecord) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        let plan = self.plan;
        self.each_stored_of(plan, scan, pass, each).await
    }

    /// [`Self::each_stored`] for a scan of `plan` (this run's, or a previous run's).
    async fn each_stored_of(
        &mut self,
        plan: &ExportPlan,
        scan: &PlannedScan,
        pass: Pass,
        mut each: impl FnMut(&ExportFinding<'_>, &FindingRecord) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        // A copy of the reference, so reading it does not borrow `self`.
        let ctx = self.ctx;
        let dispositions: BTreeSet<&str> = plan
            .definition
            .selectors
            .dispositions
            .iter()
            .map(String::as_str)
            .collect();
        let tenant = &ctx.job.tenant;
        let id = JobId::parse(&scan.id)
            .map_err(|err| StepError::abort(format!("scan {:?}: {err}", scan.id)))?;
        let scans = ctx.store.tenant(tenant).scans();
        let about = ExportScan {
            tenant: tenant.as_str(),
            scan_id: scan.id.as_str(),
            target: &scan.target,
        };
        let mut cursor: Option<String> = None;
        loop {
            let page = scans.findings(&id, cursor.as_deref(), PAGE).await?;
            for record in &page.items {
                if !dispositions.is_empty() && !dispositions.contains(record.disposition.as_str()) {
                    continue;
                }
                let finding =
                    ExportFinding::from_finding_json(about, &record.finding).map_err(|err| {
                        StepError::abort(format!(
                            "finding {} of scan {}: {err}",
                            record.ordinal, scan.id
                        ))
                    })?;
                if !plan.definition.selectors.keeps(
                    finding.severity(),
                    finding.vulnerability_id,
                    &finding.aliases,
                ) {
                    continue;
                }
                each(&finding, record)?;
                if pass == Pass::Counted {
                    self.count("findings", 1);
                    self.count(&record.disposition, 1);
                }
            }
            if pass == Pass::Counted {
                self.advance(page.items.len() as u64).await?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }
}

impl WriteRun<'_, '_> {
    /// Calls `each` with every finding of `scan` the selectors keep, as stored (its
    /// JSON text unparsed), in ordinal order, a page at a time: for the formats that copy
    /// findings rather than read them. A finding is parsed only when the selectors look
    /// into it (a minimum severity, vulnerability ids); dispositions are read off the row.
    pub(crate) async fn each_row(
        &mut self,
        scan: &PlannedScan,
        pass: Pass,
        mut each: impl FnMut(&FindingRow) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        let ctx = self.ctx;
        let selectors = &self.plan.definition.selectors;
        let looks_inside =
            selectors.min_severity.is_some() || !selectors.vulnerabilities.is_empty();
        let dispositions: BTreeSet<&str> =
            selectors.dispositions.iter().map(String::as_str).collect();
        let tenant = &ctx.job.tenant;
        let id = JobId::parse(&scan.id)
            .map_err(|err| StepError::abort(format!("scan {:?}: {err}", scan.id)))?;
        let scans = ctx.store.tenant(tenant).scans();
        let about = ExportScan {
            tenant: tenant.as_str(),
            scan_id: scan.id.as_str(),
            target: &scan.target,
        };
        let mut cursor: Option<String> = None;
        loop {
            let page = scans.finding_rows(&id, cursor.as_deref(), PAGE).await?;
            for row in &page.items {
                if !dispositions.is_empty() && !dispositions.contains(row.disposition.as_str()) {
                    continue;
                }
                if looks_inside {
                    let value: serde_json::Value =
                        serde_json::from_str(&row.text).map_err(|err| {
                            StepError::abort(format!(
                                "finding {} of scan {}: {err}",
                                row.ordinal, scan.id
                            ))
                        })?;
                    let finding =
                        ExportFinding::from_finding_json(about, &value).map_err(|err| {
                            StepError::abort(format!(
                                "finding {} of scan {}: {err}",
                                row.ordinal, scan.id
                            ))
                        })?;
                    if !selectors.keeps(
                        finding.severity(),
                        finding.vulnerability_id,
                        &finding.aliases,
                    ) {
                        continue;
                    }
                }
                each(row)?;
                if pass == Pass::Counted {
                    self.count("findings", 1);
                    self.count(&row.disposition, 1);
                }
            }
            if pass == Pass::Counted {
                self.advance(page.items.len() as u64).await?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }
}

/// Whether a pass over a scan's findings counts them as written (see
/// [`WriteRun::each_finding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    Counted,
    Again,
}

/// A failed write to a temporary file: transient (the disk may have room again).
pub(super) fn io_error(err: std::io::Error) -> StepError {
    StepError::retry(format!("writing the export: {err}")).with_source(err)
}
