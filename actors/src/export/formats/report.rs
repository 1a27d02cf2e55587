//! `report:pdf` and `report:xlsx`: one report for people, `report.pdf` or `report.xlsx`,
//! over every planned scan (see `stella_domain::export::report` for what it shows).
//!
//! The data is gathered while the findings stream past, never as a list of them:
//!
//! 1. the scans' evidence (their SBOM, attestation, inputs and policy digests) from
//!    their rows, the policies those digests name from the tenant's policy versions (or
//!    the built-in default), with their exceptions;
//! 2. the previous report's findings, when the plan names one, as a set of
//!    [`ChangeKey`]s (16 bytes each);
//! 3. the counted pass over this run's findings: the tally, the worst few, the new ones,
//!    the findings each exception decided, and this run's keys;
//! 4. the previous report's findings again: those whose key is gone are resolved;
//! 5. the versions that fix the listed findings, from the advisories of their packages;
//! 6. the writer: for `detailed`, one more pass hands it every finding.
//!
//! A report is a function of the plan (its scans, the previous run it fixed) and of
//! the store's immutable rows, but for one thing: the fixed versions come from the
//! advisories as they are when the report is written, so a run retried after an
//! advisory changed can name a newer fix.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::sync::mpsc::{sync_channel, SyncSender};

use stella_domain::export::report::pdf::PdfReport;
use stella_domain::export::report::xlsx::XlsxReport;
use stella_domain::export::report::{
    ChangeKey, Changes, PreviousReport, ReportData, ReportError, ReportException, ReportFinding,
    ReportPolicy, ReportScan, Tally, Template, Worst, TOP_CHANGES, TOP_FINDINGS,
};
use stella_domain::export::{fixed_versions, ExportFinding};
use stella_domain::osv::Advisory;
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_domain::{PackageKey, Purl};
use stella_store::{JobId, Store};
use stella_supervisor::{StepContext, StepError};

use crate::export::plan::ExportPlan;
use crate::export::write::{io_error, Pass, WriteRun};

/// The file a report is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Pdf,
    Xlsx,
}

/// Policy versions read at a time while looking for the scans' policies.
const POLICY_PAGE: u32 = 100;

pub(super) async fn write(run: &mut WriteRun<'_, '_>, kind: Kind) -> Result<(), StepError> {
    let plan = run.plan;
    let ctx = run.ctx;
    let template =
        Template::parse(plan.definition.options.template.as_deref()).map_err(report_error)?;
    let mut scans = scan_evidence(ctx, plan).await?;
    let (policies, documents) = policies(ctx, &scans).await?;
    let previous = match &plan.previous {
        Some(previous) => Some((
            previous,
            ExportPlan::read(run.deps, &previous.plan_sha256).await?,
        )),
        None => None,
    };

    // The previous report's findings, as keys.
    let mut before: HashSet<ChangeKey> = HashSet::new();
    if let Some((_, earlier)) = &previous {
        for scan in &earlier.scans {
            run.each_finding_of(earlier, scan, Pass::Again, |finding, _| {
                before.insert(ChangeKey::of(finding));
                Ok(())
            })
            .await?;
        }
    }

    // This run's findings: counted, ranked, compared.
    let mut tally = Tally::default();
    let mut worst = Worst::new(TOP_FINDINGS);
    let mut new_worst = Worst::new(TOP_CHANGES);
    let mut new = 0u64;
    let mut now: HashSet<ChangeKey> = HashSet::new();
    let mut decided: HashMap<String, u64> = HashMap::new();
    let mut packages: BTreeSet<PackageKey> = BTreeSet::new();
    for (planned, about) in plan.scans.iter().zip(&mut scans) {
        let at = planned.evaluated_at;
        let mut kept = 0u64;
        run.each_finding(planned, Pass::Counted, |finding, _| {
            kept += 1;
            tally.add(finding);
            worst.offer(finding, at);
            if let Some(rule) = finding.rule_id.filter(|r| r.starts_with("exception:")) {
                *decided.entry(rule.to_owned()).or_default() += 1;
            }
            if previous.is_some() {
                let key = ChangeKey::of(finding);
                if !before.contains(&key) {
                    new += 1;
                    new_worst.offer(finding, at);
                }
                now.insert(key);
            }
            if template == Template::Detailed {
                packages.extend(package_key(finding.package));
            }
            Ok(())
        })
        .await?;
        about.findings = kept;
    }
    drop(before);

    // The previous report's findings that are gone.
    let changes = match &previous {
        None => Changes::First,
        Some((previous, earlier)) => {
            let mut resolved = 0u64;
            let mut resolved_worst = Worst::new(TOP_CHANGES);
            for scan in &earlier.scans {
                let at = scan.evaluated_at;
                run.each_finding_of(earlier, scan, Pass::Again, |finding, _| {
                    if !now.contains(&ChangeKey::of(finding)) {
                        resolved += 1;
                        resolved_worst.offer(finding, at);
                    }
                    Ok(())
                })
                .await?;
            }
            run.count("new", new);
            run.count("resolved", resolved);
            Changes::Since {
                previous: PreviousReport {
                    export_id: previous.export_id.clone(),
                    as_of: previous.as_of,
                },
                new,
                resolved,
                new_top: new_worst.into_vec(),
                resolved_top: resolved_worst.into_vec(),
            }
        }
    };
    drop(now);

    // The versions that fix what the report lists.
    let mut top = worst.into_vec();
    let mut changes = changes;
    let mut fixes = Fixes::default();
    {
        let mut listed: Vec<&mut ReportFinding> = top.iter_mut().collect();
        if let Changes::Since {
            new_top,
            resolved_top,
            ..
        } = &mut changes
        {
            listed.extend(new_top.iter_mut());
            listed.extend(resolved_top.iter_mut());
        }
        packages.extend(listed.iter().filter_map(|f| package_key(&f.package)));
        fixes.load(ctx.store, &packages).await?;
        for finding in listed {
            finding.fixed_versions = fixes.of(&finding.package, &finding.vulnerability_id);
        }
    }

    let mut exceptions = Vec::new();
    for (about, policy) in &documents {
        for mut exception in ReportException::all_of(policy, about) {
            exception.findings = decided
                .get(&format!("exception:{}", exception.id))
                .copied()
                .unwrap_or(0);
            exceptions.push(exception);
        }
    }
    let data = ReportData {
        tenant: ctx.job.tenant.to_string(),
        profile: plan.profile.clone(),
        revision: plan.revision,
        template,
        as_of: plan.as_of,
        export_id: ctx.job.id.to_string(),
        generator: format!("Stella {}", env!("CARGO_PKG_VERSION")),
        scans,
        policies,
        tally,
        changes,
        top,
        exceptions,
    };

    let (spool, file) = run.spool_file()?;
    let (findings, rendered) = render(kind, data, file);
    if template == Template::Detailed {
        let mut stopped = false;
        for planned in &plan.scans {
            let at = planned.evaluated_at;
            let sent = run
                .each_finding(planned, Pass::Again, |finding, _| {
                    findings.send(fixes.finding(finding, at)).map_err(|_| {
                        stopped = true;
                        StepError::abort("the report renderer stopped")
                    })
                })
                .await;
            match sent {
                Ok(()) => {}
                // The renderer failed: its error is what the join below returns.
                Err(_) if stopped => break,
                // Reading failed: the renderer's partial file is left in the spool.
                Err(err) => return Err(err),
            }
        }
    }
    drop(findings);
    rendered
        .await
        .map_err(|err| StepError::retry(format!("the report renderer: {err}")).with_source(err))?
        .map_err(report_error)?;
    let name = match kind {
        Kind::Pdf => "report.pdf",
        Kind::Xlsx => "report.xlsx",
    };
    run.store_file(&spool, name).await?;
    Ok(())
}

/// Findings queued for the renderer at most: a full queue makes the reader wait.
const RENDER_QUEUE: usize = 1_024;

/// Renders the report into `file` on a blocking thread: krilla's document is not `Send`
/// (it cannot wait across an `.await`), and laying out, subsetting fonts and compressing
/// is CPU work that should not hold the runtime. The report's findings (`detailed`) go
/// through the returned queue, in order; dropping it ends the list.
fn render(
    kind: Kind,
    data: ReportData,
    file: std::fs::File,
) -> (
    SyncSender<ReportFinding>,
    tokio::task::JoinHandle<Result<(), ReportError>>,
) {
    let (sender, findings) = sync_channel::<ReportFinding>(RENDER_QUEUE);
    let rendered = tokio::task::spawn_blocking(move || {
        let out = BufWriter::new(file);
        let mut out = match kind {
            Kind::Pdf => {
                let mut report = PdfReport::start(&data)?;
                for finding in findings {
                    report.finding(&finding);
                }
                report.finish(out)?
            }
            Kind::Xlsx => {
                let mut report = XlsxReport::start(&data)?;
                for finding in findings {
                    report.finding(&finding)?;
                }
                report.finish(out)?
            }
        };
        out.flush()?;
        Ok(())
    });
    (sender, rendered)
}

/// A writer's failure: the disk's is transient, the rest is the data's and permanent.
fn report_error(err: ReportError) -> StepError {
    match err {
        ReportError::Io(err) => io_error(err),
        other => StepError::abort(format!("the report: {other}")).with_source(other),
    }
}

/// Each planned scan's evidence: its digests from its row (findings counted later).
async fn scan_evidence(
    ctx: &StepContext<'_>,
    plan: &ExportPlan,
) -> Result<Vec<ReportScan>, StepError> {
    let rows = ctx.store.tenant(&ctx.job.tenant).scans();
    let mut scans = Vec::with_capacity(plan.scans.len());
    for planned in &plan.scans {
        let id = JobId::parse(&planned.id)
            .map_err(|err| StepError::abort(format!("scan {:?}: {err}", planned.id)))?;
        let row = rows
            .get_without_analysis(&id)
            .await?
            .ok_or_else(|| StepError::abort(format!("scan {id} not found")))?;
        let policy_digest = row
            .inputs
            .as_ref()
            .and_then(|inputs| inputs.get("policy"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        scans.push(ReportScan {
            id: planned.id.clone(),
            target: planned.target.clone(),
            evaluated_at: planned.evaluated_at,
            disposition: planned.disposition.clone(),
            findings: 0,
            sbom_sha256: planned.sbom_sha256.clone(),
            attestation_sha256: planned.attestation_sha256.clone(),
            inputs_hash: row.inputs_hash,
            policy_digest,
        });
    }
    Ok(scans)
}

/// The policies the scans were evaluated with, in the order the scans name them, and
/// the documents of those that are known (a stored version, or the built-in default).
async fn policies(
    ctx: &StepContext<'_>,
    scans: &[ReportScan],
) -> Result<(Vec<ReportPolicy>, Vec<(ReportPolicy, Policy)>), StepError> {
    let mut wanted: Vec<&str> = Vec::new();
    for digest in scans.iter().filter_map(|s| s.policy_digest.as_deref()) {
        if !wanted.contains(&digest) {
            wanted.push(digest);
        }
    }
    // The tenant's versions, newest first: a digest stored twice is its newest version.
    let mut found: HashMap<String, (u64, Policy)> = HashMap::new();
    let mut cursor: Option<String> = None;
    let versions = ctx.store.tenant(&ctx.job.tenant).policies();
    while found.len() < wanted.len() {
        let page = versions.list(cursor.as_deref(), POLICY_PAGE).await?;
        for record in page.items {
            if wanted.contains(&record.digest.as_str()) && !found.contains_key(&record.digest) {
                let policy = Policy::parse(&record.document).map_err(|err| {
                    StepError::abort(format!("policy version {}: {err}", record.version))
                })?;
                found.insert(record.digest, (record.version, policy));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let default = Policy::parse(DEFAULT_POLICY)
        .map_err(|err| StepError::abort(format!("the built-in policy: {err}")))?;
    let default_digest = default.digest();
    let mut policies = Vec::new();
    let mut documents = Vec::new();
    for digest in wanted {
        let (version, policy) = match found.remove(digest) {
            Some((version, policy)) => (Some(version), Some(policy)),
            None if digest == default_digest => (None, Some(default.clone())),
            None => (None, None),
        };
        let about = ReportPolicy {
            digest: digest.to_owned(),
            version,
            name: policy.as_ref().map(|p| p.name.clone()),
            document_version: policy.as_ref().map(|p| p.version),
        };
        if let Some(policy) = policy {
            documents.push((about.clone(), policy));
        }
        policies.push(about);
    }
    Ok((policies, documents))
}

/// The matching key of a package purl (`pkg:npm/lodash`); `None` where Stella does not
/// match.
fn package_key(package: &str) -> Option<PackageKey> {
    Purl::parse(package).ok()?.package_key()
}

/// The versions that fix each advisory of some packages, read once per package.
#[derive(Debug, Default)]
struct Fixes {
    /// Package → advisory id → fixed versions (only those with some).
    by_package: HashMap<PackageKey, HashMap<String, Vec<String>>>,
}

impl Fixes {
    /// Reads the current advisories of `packages` not read yet.
    async fn load(
        &mut self,
        store: &Store,
        packages: &BTreeSet<PackageKey>,
    ) -> Result<(), StepError> {
        for key in packages {
            if self.by_package.contains_key(key) {
                continue;
            }
            let stored = store
                .advisories()
                .for_packages(&[(key.ecosystem.osv_name().to_owned(), key.name.clone())])
                .await?;
            let mut fixes: HashMap<String, Vec<String>> = HashMap::new();
            for record in stored {
                let advisory: Advisory = serde_json::from_value(record.normalized)
                    .map_err(|err| StepError::abort(format!("advisory {}: {err}", record.id)))?;
                let fixed = fixed_versions(&advisory, key);
                if fixed.is_empty() {
                    continue;
                }
                let versions = fixes.entry(advisory.id.clone()).or_default();
                for version in fixed {
                    if !versions.iter().any(|v| v == version) {
                        versions.push(version.to_owned());
                    }
                }
            }
            self.by_package.insert(key.clone(), fixes);
        }
        Ok(())
    }

    /// The versions that fix `vulnerability` in `package` (loaded before).
    fn of(&self, package: &str, vulnerability: &str) -> Vec<String> {
        package_key(package)
            .and_then(|key| self.by_package.get(&key))
            .and_then(|fixes| fixes.get(vulnerability))
            .cloned()
            .unwrap_or_default()
    }

    /// The report's copy of `finding` with its fixed versions.
    fn finding(
        &self,
        finding: &ExportFinding<'_>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> ReportFinding {
        let mut report = ReportFinding::of(finding, at);
        report.fixed_versions = self.of(finding.package, finding.vulnerability_id);
        report
    }
}
