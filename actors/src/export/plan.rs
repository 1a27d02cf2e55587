//! `plan`: what a run exports, fixed once. The profile's selectors name scans directly
//! and through targets (their latest scan *now*), so the resolved list is written down
//! before anything is: later steps, and every retry of them, read the plan and export the
//! same scans, and the run's progress has a total.

use std::collections::BTreeSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stella_domain::canonical::canonical_bytes;
use stella_domain::export::manifest::{ExportManifest, MANIFEST_NAME};
use stella_domain::export::mirror::{Generations, MirrorBase, MirrorKind, MirrorSection};
use stella_store::object::Sha256Digest;
use stella_store::repo::{
    Effect, ExportProfileRecord, ExportRunRecord, JobFilter, JobState, ScanRecord,
};
use stella_store::{JobId, StoreError};
use stella_supervisor::{Kind, StepContext, StepError, StepOutcome};

use super::{Export, ExportDeps, ExportParams, ExportStep, Format, ProfileDefinition};

/// A run's plan: the profile revision as it was read, and the scans it exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportPlan {
    pub profile: String,
    pub revision: u64,
    /// The profile's kind (a [`Format`] name).
    pub kind: String,
    pub definition: ProfileDefinition,
    pub as_of: DateTime<Utc>,
    /// In scan id order.
    pub scans: Vec<PlannedScan>,
    /// The items the writers will write: findings, for the finding formats; advisories
    /// and VEX documents, for the mirrors.
    pub items_total: u64,
    /// The run a report compares with (reports only; see [`PreviousRun`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousRun>,
    /// A mirror's section of `export.json` as planned: the generations it is as of and,
    /// for a delta, its base and the generations it is since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorSection>,
}

/// The previous report of a profile: the tenant's latest succeeded export of the same
/// profile created before this run. Fixed in the plan, so every attempt of the run
/// compares with the same one, however the profile's other runs end meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousRun {
    pub export_id: String,
    pub as_of: DateTime<Utc>,
    /// Its plan (object `sha256/<plan_sha256>`): the scans and selectors it reported.
    pub plan_sha256: String,
}

/// One scan a run exports, with what the writers need to know of it up front.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedScan {
    pub id: String,
    /// The scanned SBOM's name (the target).
    pub target: String,
    pub sbom_sha256: String,
    /// The sealed verdict's DSSE envelope (object `sha256/<digest>`).
    pub attestation_sha256: String,
    pub disposition: String,
    pub findings: u64,
    pub evaluated_at: DateTime<Utc>,
}

impl ExportPlan {
    /// The plan's format.
    pub fn format(&self) -> Result<Format, StepError> {
        Format::parse(&self.kind).map_err(StepError::abort)
    }

    /// The plan a run fixed in its `plan` step, with the run's record (progress,
    /// counts), as the later steps read them back.
    pub async fn load(
        deps: &ExportDeps,
        ctx: &StepContext<'_>,
    ) -> Result<(Self, ExportRunRecord), StepError> {
        let run = ctx
            .store
            .tenant(&ctx.job.tenant)
            .export_runs()
            .get(&ctx.job.id)
            .await?
            .ok_or_else(|| StepError::abort(format!("export {} has no plan", ctx.job.id)))?;
        let plan = Self::read(deps, &run.plan_sha256).await?;
        Ok((plan, run))
    }

    /// The plan stored as the object `sha256/<plan_sha256>`.
    pub async fn read(deps: &ExportDeps, plan_sha256: &str) -> Result<Self, StepError> {
        let digest = Sha256Digest::parse(plan_sha256)?;
        let bytes = deps.objects.read_content(&digest).await?;
        serde_json::from_slice(&bytes)
            .map_err(|err| StepError::abort(format!("the stored plan: {err}")).with_source(err))
    }
}

/// `plan` (exporter): resolves the profile revision's selectors and stores the plan.
pub(super) async fn plan(
    deps: &ExportDeps,
    params: &ExportParams,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<ExportStep>, StepError> {
    let record = ctx
        .store
        .tenant(&ctx.job.tenant)
        .export_profiles()
        .revision(&params.profile, params.revision)
        .await?;
    let mut plan = match Format::parse(&record.kind).map_err(StepError::abort)? {
        format if format.is_mirror() => resolve_mirror(deps, ctx, &record, format, params).await?,
        _ => resolve(ctx, &record, params.as_of).await?,
    };
    if plan.format()?.is_report() {
        plan.previous = previous_run(ctx, &params.profile).await?;
    }
    let value =
        serde_json::to_value(&plan).map_err(|err| StepError::abort(format!("the plan: {err}")))?;
    let stored = deps
        .objects
        .put_content(Bytes::from(canonical_bytes(&value)))
        .await?;
    ctx.stage(Effect::ExportPlanned {
        plan_sha256: stored.digest.to_string(),
        items_total: plan.items_total,
    });
    Ok(StepOutcome::Next(ExportStep::Write))
}

/// The plan of `record` as of `as_of`.
async fn resolve(
    ctx: &StepContext<'_>,
    record: &ExportProfileRecord,
    as_of: DateTime<Utc>,
) -> Result<ExportPlan, StepError> {
    let format = Format::parse(&record.kind).map_err(StepError::abort)?;
    let definition: ProfileDefinition = serde_json::from_str(&record.definition)
        .map_err(|err| StepError::abort(format!("the stored profile: {err}")).with_source(err))?;
    let scans = selected_scans(ctx, &definition).await?;
    let mut planned = Vec::with_capacity(scans.len());
    let mut items_total = 0u64;
    for scan in scans {
        let findings = scan
            .counts
            .as_ref()
            .and_then(|counts| counts.get("findings"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        items_total += findings;
        planned.push(PlannedScan {
            id: scan.id.to_string(),
            target: scan.sbom_name,
            sbom_sha256: scan.sbom_sha256,
            attestation_sha256: scan.attestation_sha256.unwrap_or_default(),
            disposition: scan.disposition.unwrap_or_default(),
            findings,
            evaluated_at: scan.evaluated_at,
        });
    }
    Ok(ExportPlan {
        profile: record.name.clone(),
        revision: record.revision,
        kind: format.name().to_owned(),
        definition,
        as_of,
        scans: planned,
        items_total,
        previous: None,
        mirror: None,
    })
}

/// Export jobs read at a time while looking for the previous run.
const JOBS_PAGE: u32 = 500;

/// The tenant's latest succeeded export of `profile` created before this run (job ids
/// grow with creation), with its plan; `None` when there is none.
async fn previous_run(
    ctx: &StepContext<'_>,
    profile: &str,
) -> Result<Option<PreviousRun>, StepError> {
    let tenant = ctx.store.tenant(&ctx.job.tenant);
    let filter = JobFilter {
        state: Some(JobState::Succeeded),
        kind: Some(Export::NAME.to_owned()),
    };
    let mut latest: Option<(JobId, ExportParams)> = None;
    let mut cursor: Option<String> = None;
    'pages: loop {
        let page = tenant
            .jobs()
            .list(&filter, cursor.as_deref(), JOBS_PAGE)
            .await?;
        for job in page.items {
            if job.id >= ctx.job.id {
                break 'pages;
            }
            // A job whose parameters do not read is not a run of this profile.
            let Ok(params) = serde_json::from_value::<ExportParams>(job.params) else {
                continue;
            };
            if params.profile == profile {
                latest = Some((job.id, params));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let Some((id, params)) = latest else {
        return Ok(None);
    };
    let run = tenant.export_runs().get(&id).await?.ok_or_else(|| {
        StepError::abort(format!("the previous export {id} succeeded without a plan"))
    })?;
    Ok(Some(PreviousRun {
        export_id: id.to_string(),
        as_of: params.as_of,
        plan_sha256: run.plan_sha256,
    }))
}

/// The plan of a mirror profile: the generations of advisories and VEX it is as of
/// (read before and after counting, so the count is theirs), and for a delta its base,
/// read from the base's own `export.json`.
async fn resolve_mirror(
    deps: &ExportDeps,
    ctx: &StepContext<'_>,
    record: &ExportProfileRecord,
    format: Format,
    params: &ExportParams,
) -> Result<ExportPlan, StepError> {
    let definition: ProfileDefinition = serde_json::from_str(&record.definition)
        .map_err(|err| StepError::abort(format!("the stored profile: {err}")).with_source(err))?;
    let (kind, base, from) = match (format, &params.base) {
        (Format::MirrorDelta, Some(base)) => {
            let (base, section) = mirror_base(deps, ctx, base).await?;
            (MirrorKind::Delta, Some(base), Some(section.to))
        }
        // Scheduled and triggered runs name no base: a delta follows the profile's
        // previous completed run, so successive deltas chain.
        (Format::MirrorDelta, None) => match previous_run(ctx, &record.name).await? {
            Some(previous) => {
                let (base, section) = mirror_base(deps, ctx, &previous.export_id).await?;
                (MirrorKind::Delta, Some(base), Some(section.to))
            }
            None => {
                return Err(StepError::abort(
                    "a mirror:delta run names its base export, or follows a completed run \
                     of its profile (this profile has none yet: run it once with a base)",
                ))
            }
        },
        _ => (MirrorKind::Full, None, None),
    };
    let source = ctx.store.tenant(&ctx.job.tenant).mirror();
    let to = source.generations().await?;
    let (advisories, vex) = source.counts(from.map(store_generations)).await?;
    if source.generations().await? != to {
        return Err(StepError::retry(
            "advisories or VEX changed while the export was planned",
        ));
    }
    Ok(ExportPlan {
        profile: record.name.clone(),
        revision: record.revision,
        kind: format.name().to_owned(),
        definition,
        as_of: params.as_of,
        scans: Vec::new(),
        items_total: advisories + vex,
        previous: None,
        mirror: Some(MirrorSection {
            kind,
            base,
            from,
            to: Generations {
                advisories: to.advisories,
                vex: to.vex,
            },
        }),
    })
}

/// The store's form of a bundle's generations.
pub(super) fn store_generations(g: Generations) -> stella_store::repo::Generations {
    stella_store::repo::Generations {
        advisories: g.advisories,
        vex: g.vex,
    }
}

/// A delta's base export: its id and the digest of its `export.json`, and the mirror
/// section that manifest holds (the base must be a completed mirror export of this
/// tenant; `start_run` checked so, and its files are what says it completed).
async fn mirror_base(
    deps: &ExportDeps,
    ctx: &StepContext<'_>,
    base: &str,
) -> Result<(MirrorBase, MirrorSection), StepError> {
    let id = JobId::parse(base)
        .map_err(|err| StepError::abort(format!("base export {base:?}: {err}")))?;
    let files = ctx
        .store
        .tenant(&ctx.job.tenant)
        .export_files()
        .list(&id)
        .await?;
    let manifest = files
        .iter()
        .find(|file| file.name == MANIFEST_NAME)
        .ok_or_else(|| StepError::abort(format!("base export {base} has no export.json")))?;
    let bytes = deps
        .objects
        .read_content(&Sha256Digest::parse(&manifest.sha256)?)
        .await?;
    let section = ExportManifest::from_json(&bytes)
        .map_err(|err| StepError::abort(format!("base export {base}'s export.json: {err}")))?
        .mirror
        .ok_or_else(|| StepError::abort(format!("base export {base} is not a mirror export")))?;
    Ok((
        MirrorBase {
            export_id: base.to_owned(),
            manifest_sha256: manifest.sha256.clone(),
        },
        section,
    ))
}

/// The scans a profile selects, each once, in id order (so a rerun writes the same
/// bytes): the named scans and the latest scan of each named target, those evaluated
/// inside the selectors' time range. A scan that is not
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
            StoreError::NotFound(_) => StepError::abort(format!("target {name:?} does not exist")),
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
        if definition.selectors.in_time_range(scan.evaluated_at) {
            selected.push(scan);
        }
    }
    Ok(selected)
}
