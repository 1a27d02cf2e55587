//! Shadow evaluation: a tenant's latest scan of each target evaluated with a candidate
//! policy or pack, enforcing nothing (no verdict, no event, no notification), and diffed
//! finding by finding against the verdict in force or against another candidate.
//!
//! Both sides read the same inputs: the scan's stored analysis, the advisories and VEX as
//! they are now and the tenant's exceptions in force, at one evaluation time. The side
//! "in force" is the scan's stored verdict when it is compared as evaluated
//! ([`Old::Stored`]), so `added` and `removed` show what changed since the scan.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use stella_domain::analysis::Analysis;
use stella_domain::policy::Disposition;
use stella_domain::scan::{self, Finding, ScanInputs};
use stella_domain::shadow::{diff_scan, DiffSummary, ScanDiff};
use stella_domain::vex::{self, VexStatement};
use stella_store::repo::TargetRecord;
use stella_store::{Store, TenantId};
use stella_supervisor::StepError;

use crate::scan::{
    blocking, is_affected, vex_statements, Candidate, Policies, ScanDeps, TenantPolicies,
};

/// What the candidate is compared with.
#[derive(Debug, Clone)]
pub enum Old {
    /// The scans' stored verdicts: what is enforced.
    Stored,
    /// Another candidate, on the same inputs.
    Candidate(Candidate),
}

/// A tenant's shadow diff: one entry per target with a completed scan.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDiff {
    pub tenant: String,
    pub evaluated_at: DateTime<Utc>,
    pub summary: DiffSummary,
    pub scans: Vec<ScanDiff>,
    /// Targets that could not be evaluated, with why.
    pub errors: Vec<TargetError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetError {
    pub target: String,
    pub error: String,
}

impl TenantDiff {
    /// The diff as JSON bytes, as stored.
    pub fn to_bytes(&self) -> Result<Bytes, StepError> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|err| StepError::abort(format!("shadow diff: {err}")))
    }
}

/// Targets read per page.
const PAGE: u32 = 500;

/// Diffs every target of `tenant` that has a completed scan: `new` against `old`, at
/// `at`. A target whose scan cannot be evaluated is counted (and named) as an error; a
/// store that is unavailable fails the whole diff (a retry may pass).
pub async fn diff_tenant(
    store: &Store,
    deps: &ScanDeps,
    tenant: &TenantId,
    old: Old,
    new: Candidate,
    at: DateTime<Utc>,
) -> Result<TenantDiff, StepError> {
    let targets = targets_with_scans(store, tenant).await?;
    let mut out = TenantDiff {
        tenant: tenant.to_string(),
        evaluated_at: at,
        summary: DiffSummary::default(),
        scans: Vec::new(),
        errors: Vec::new(),
    };
    if targets.is_empty() {
        // Nothing to evaluate: no advisory index, VEX or policy to read.
        return Ok(out);
    }
    let index = deps.advisories.current(store).await?;
    let (statements, _) = vex_statements(store, tenant).await?;
    let statements = Arc::new(statements);
    // The tenant's policies are read once and specialised per target (exceptions may be
    // scoped to one).
    let new = TenantPolicies::load(store, tenant, new).await?;
    let old = match old {
        Old::Stored => OldPolicies::Stored,
        Old::Candidate(candidate) => OldPolicies::Evaluate(Box::new(
            TenantPolicies::load(store, tenant, candidate).await?,
        )),
    };
    for target in targets {
        match diff_target(store, tenant, &target, &old, &new, &index, &statements, at).await {
            Ok(diff) => {
                out.summary.add(&diff);
                out.scans.push(diff);
            }
            Err(err) if err.retry_kind() == stella_supervisor::Retry::Never => {
                out.summary.errors += 1;
                out.errors.push(TargetError {
                    target: target.name.clone(),
                    error: err.to_string(),
                });
            }
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

async fn targets_with_scans(
    store: &Store,
    tenant: &TenantId,
) -> Result<Vec<TargetRecord>, StepError> {
    let targets = store.tenant(tenant).targets();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = targets.list(cursor.as_deref(), PAGE).await?;
        out.extend(page.items.into_iter().filter(|t| t.last_scan_id.is_some()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn diff_target(
    store: &Store,
    tenant: &TenantId,
    target: &TargetRecord,
    old: &OldPolicies,
    new: &TenantPolicies,
    index: &Arc<crate::scan::CachedIndex>,
    statements: &Arc<Vec<(VexStatement, String)>>,
    at: DateTime<Utc>,
) -> Result<ScanDiff, StepError> {
    let Some(scan_id) = &target.last_scan_id else {
        return Err(StepError::abort("the target has no completed scan"));
    };
    let scans = store.tenant(tenant).scans();
    let analysis = scans
        .analysis(scan_id)
        .await?
        .ok_or_else(|| StepError::abort(format!("scan {scan_id} has no analysis")))?;
    let new_policies = new.for_target(&target.name)?;
    let old_side = match old {
        OldPolicies::Stored => {
            let record = scans
                .get_without_analysis(scan_id)
                .await?
                .ok_or_else(|| StepError::abort(format!("scan {scan_id} is gone")))?;
            let disposition = match record.disposition.as_deref() {
                Some("pass") => Disposition::Pass,
                Some("warn") => Disposition::Warn,
                Some("block") => Disposition::Block,
                _ => return Err(StepError::abort(format!("scan {scan_id} has no verdict"))),
            };
            OldSide::Stored(disposition, stored_findings(store, tenant, scan_id).await?)
        }
        OldPolicies::Evaluate(policies) => {
            OldSide::Evaluate(Box::new(policies.for_target(&target.name)?))
        }
    };
    let index = index.clone();
    let statements = statements.clone();
    let (scan_id, name) = (scan_id.to_string(), target.name.clone());
    blocking(move || {
        let analysis: Analysis = serde_json::from_str(&analysis)
            .map_err(|err| StepError::abort(format!("stored analysis: {err}")))?;
        let evaluate = |policies: &Policies| {
            let inputs = ScanInputs {
                components: &analysis.components,
                sbom: &analysis.context,
                index: &index.index,
                vex: &statements,
                policy: &policies.policy,
                pack: policies.pack.as_ref(),
                at,
            };
            let verdict = scan::evaluate(&inputs, &is_affected, &vex::generic_compare);
            (verdict.disposition, verdict.findings)
        };
        let (new_disposition, new_findings) = evaluate(&new_policies);
        let (old_disposition, old_findings) = match old_side {
            OldSide::Stored(disposition, findings) => (disposition, findings),
            OldSide::Evaluate(policies) => evaluate(&policies),
        };
        Ok(diff_scan(
            &scan_id,
            &name,
            old_disposition,
            old_findings,
            new_disposition,
            new_findings,
        ))
    })
    .await?
}

/// `Old`, with the tenant's policies read.
enum OldPolicies {
    Stored,
    Evaluate(Box<TenantPolicies>),
}

enum OldSide {
    Stored(Disposition, Vec<Finding>),
    Evaluate(Box<Policies>),
}

/// A scan's stored findings, parsed.
async fn stored_findings(
    store: &Store,
    tenant: &TenantId,
    scan_id: &stella_store::JobId,
) -> Result<Vec<Finding>, StepError> {
    let scans = store.tenant(tenant).scans();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = scans.finding_rows(scan_id, cursor.as_deref(), 500).await?;
        for row in page.items {
            out.push(
                serde_json::from_str(&row.text)
                    .map_err(|err| StepError::abort(format!("stored finding: {err}")))?,
            );
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}
