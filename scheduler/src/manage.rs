//! What the admin API and the CLI do to schedules, runs and targets: validate, compute
//! next times, store. Returns [`ManageError`]s that name the request field at fault.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use stella_domain::analysis::Analysis;
use stella_store::object::Objects;
use stella_store::repo::{NewRun, RunRecord, ScheduleRecord, TargetRecord};
use stella_store::{JobId, RunId, ScheduleId, Store, StoreError, TenantId};

use crate::cron::CronSchedule;
use crate::spec::{
    check_jitter, check_kind, check_name, jitter_offset, next_times, Missed, Overlap, SpecError,
    ADVISORY_SYNC, EXPORT,
};

/// A refused request: a field that is wrong, or the store's answer.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Invalid(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A schedule as a request gives it (create: `name` and `cron` required; update: every
/// field optional, absent ones unchanged).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    pub name: Option<String>,
    pub cron: Option<String>,
    /// IANA name; `UTC` when absent at creation.
    pub timezone: Option<String>,
    /// `rescan` (default) or `advisory-sync`.
    pub kind: Option<String>,
    /// Target names or ids (`rescan`); absent: every target of the tenant.
    pub targets: Option<Vec<String>>,
    /// Source URLs (`advisory-sync`).
    pub sources: Option<Vec<String>>,
    /// The export profile to run (`export`; its latest revision when a run is planned).
    pub profile: Option<String>,
    /// 0 disables jitter; absent: the configured default.
    pub jitter_seconds: Option<i64>,
    /// `skip` (default) or `fire-once`.
    pub missed: Option<String>,
    /// `skip` (default) or `queue`.
    pub overlap: Option<String>,
    /// `false` creates the schedule paused.
    pub enabled: Option<bool>,
}

/// Creates a schedule for `tenant`.
pub async fn create_schedule(
    store: &Store,
    tenant: &TenantId,
    input: ScheduleInput,
    created_by: &str,
    default_jitter_secs: u32,
    now: DateTime<Utc>,
) -> Result<ScheduleRecord, ManageError> {
    let name = input
        .name
        .clone()
        .ok_or_else(|| SpecError::new("name", "is required"))?;
    let cron = input
        .cron
        .clone()
        .ok_or_else(|| SpecError::new("cron", "is required (for example \"0 2 * * *\")"))?;
    let base = ScheduleRecord {
        id: ScheduleId::generate(),
        name,
        cron,
        timezone: "UTC".into(),
        kind: crate::spec::RESCAN.into(),
        targets: None,
        sources: None,
        profile: None,
        jitter_seconds: default_jitter_secs,
        missed: Missed::Skip.as_str().into(),
        overlap: Overlap::Skip.as_str().into(),
        state: "active".into(),
        next_due_at: None,
        next_fire_at: None,
        last_run_id: None,
        created_by: created_by.to_owned(),
        created_at: now,
        updated_at: now,
    };
    let schedule = merge(base, input, now)?;
    store.tenant(tenant).schedules().create(&schedule).await?;
    Ok(schedule)
}

/// Changes the fields `input` gives; the next times are recomputed from `now`.
pub async fn update_schedule(
    store: &Store,
    tenant: &TenantId,
    id: &str,
    input: ScheduleInput,
    now: DateTime<Utc>,
) -> Result<ScheduleRecord, ManageError> {
    let schedules = store.tenant(tenant).schedules();
    let current = schedules.get(id).await?;
    let expected = current.updated_at;
    let schedule = merge(current, input, now)?;
    schedules.update(&schedule, expected).await?;
    Ok(schedule)
}

/// Pauses (no firings; no missed ones counted) or resumes (next due time from `now`).
pub async fn set_enabled(
    store: &Store,
    tenant: &TenantId,
    id: &str,
    enabled: bool,
    now: DateTime<Utc>,
) -> Result<ScheduleRecord, ManageError> {
    update_schedule(
        store,
        tenant,
        id,
        ScheduleInput {
            enabled: Some(enabled),
            ..ScheduleInput::default()
        },
        now,
    )
    .await
}

/// Applies `input` over `schedule`, validates the whole and computes the next times.
fn merge(
    mut schedule: ScheduleRecord,
    input: ScheduleInput,
    now: DateTime<Utc>,
) -> Result<ScheduleRecord, SpecError> {
    let ScheduleInput {
        name,
        cron,
        timezone,
        kind,
        targets,
        sources,
        profile,
        jitter_seconds,
        missed,
        overlap,
        enabled,
    } = input;
    if let Some(name) = name {
        schedule.name = name;
    }
    check_name(&schedule.name)?;
    if let Some(cron) = cron {
        schedule.cron = cron;
    }
    if let Some(timezone) = timezone {
        schedule.timezone = timezone;
    }
    let parsed = CronSchedule::parse(&schedule.cron, &schedule.timezone, now)?;
    // Stored as the zone's canonical name.
    schedule.timezone = parsed.timezone().name().to_owned();
    if let Some(kind) = kind {
        schedule.kind = kind;
    }
    check_kind(&schedule.kind)?;
    if let Some(targets) = targets {
        schedule.targets = Some(targets);
    }
    if let Some(targets) = &schedule.targets {
        if targets.is_empty() || targets.iter().any(|t| t.trim().is_empty()) {
            return Err(SpecError::new(
                "targets",
                "must be a non-empty list of target names (leave it out for every target)",
            ));
        }
    }
    if let Some(sources) = sources {
        schedule.sources = Some(sources);
    }
    if schedule.kind == ADVISORY_SYNC {
        let sources = schedule.sources.as_deref().unwrap_or_default();
        if sources.is_empty() {
            return Err(SpecError::new(
                "sources",
                "an advisory-sync schedule needs at least one source URL",
            ));
        }
        if let Some(bad) = sources
            .iter()
            .find(|s| !(s.starts_with("http://") || s.starts_with("https://")))
        {
            return Err(SpecError::new(
                "sources",
                format!("{bad:?} is not an http(s) URL"),
            ));
        }
    }
    if let Some(profile) = profile {
        schedule.profile = Some(profile);
    }
    if schedule.kind == EXPORT {
        match schedule.profile.as_deref() {
            None => {
                return Err(SpecError::new(
                    "profile",
                    "an export schedule names the export profile it runs",
                ))
            }
            Some(profile) if !stella_store::repo::is_profile_name(profile) => {
                return Err(SpecError::new(
                    "profile",
                    format!("{profile:?} is not a profile name"),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(jitter) = jitter_seconds {
        schedule.jitter_seconds = check_jitter(jitter)?;
    }
    if let Some(missed) = missed {
        schedule.missed = Missed::parse(&missed)?.as_str().into();
    }
    if let Some(overlap) = overlap {
        schedule.overlap = Overlap::parse(&overlap)?.as_str().into();
    }
    if let Some(enabled) = enabled {
        schedule.state = if enabled { "active" } else { "paused" }.into();
    }
    let (due, fire) = if schedule.state == "active" {
        let offset = jitter_offset(schedule.id.as_str(), schedule.jitter_seconds);
        next_times(&parsed, offset, now)
    } else {
        (None, None)
    };
    schedule.next_due_at = due;
    schedule.next_fire_at = fire;
    schedule.updated_at = now;
    Ok(schedule)
}

/// Runs a schedule now (trigger `manual`), whatever its cron and state say.
pub async fn trigger(
    store: &Store,
    tenant: &TenantId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<RunRecord, ManageError> {
    let scope = store.tenant(tenant);
    let schedule = scope.schedules().get(id).await?;
    let run_id = RunId::generate();
    let run = NewRun {
        tenant: tenant.clone(),
        dedupe_key: format!("manual:{run_id}"),
        id: run_id,
        schedule_id: Some(schedule.id.clone()),
        trigger: "manual".into(),
        kind: schedule.kind.clone(),
        state: "planning".into(),
        due_at: now,
        targets: schedule.targets.clone(),
        sources: schedule.sources.clone(),
        profile: schedule.profile.clone(),
        reason: json!({"schedule": schedule.name}),
        counts: json!({}),
        error: None,
    };
    Ok(scope.runs().create(&run, now).await?)
}

/// The impact-index keys of an SBOM's components: `ecosystem/name`, as advisory deltas
/// name packages (duplicates included: the store keeps each once).
pub fn packages_of(analysis: &Analysis) -> Vec<String> {
    analysis
        .components
        .iter()
        .map(|c| format!("{}/{}", c.package.ecosystem.osv_name(), c.package.name))
        .collect()
}

/// Where a target's SBOM comes from.
#[derive(Debug, Clone)]
pub enum TargetSource {
    /// A scan of the tenant: its SBOM, and the scan as the target's latest.
    Scan(JobId),
    /// An SBOM the tenant stored (hex sha256).
    Sbom(String),
    /// A scan being submitted now (`POST /scans?target=`): its SBOM and id.
    Submitted { sbom_sha256: String, scan: JobId },
}

/// A target name: 1–200 characters without control characters.
pub fn check_target_name(name: &str) -> Result<(), SpecError> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(SpecError::new(
            "name",
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// Registers (or re-points) the target `name`; indexes the packages of its SBOM, from
/// `analysis` when the caller has it, otherwise by reading and analyzing the SBOM.
pub async fn put_target(
    store: &Store,
    objects: &Objects,
    tenant: &TenantId,
    name: &str,
    source: TargetSource,
    analysis: Option<std::sync::Arc<Analysis>>,
    now: DateTime<Utc>,
) -> Result<TargetRecord, ManageError> {
    check_target_name(name)?;
    let scope = store.tenant(tenant);
    let (sha256, scan) = match source {
        TargetSource::Sbom(sha256) => (sha256, None),
        TargetSource::Submitted { sbom_sha256, scan } => (sbom_sha256, Some(scan)),
        TargetSource::Scan(id) => {
            let scan = scope
                .scans()
                .get(&id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("scan {id}")))?;
            (scan.sbom_sha256, Some(id))
        }
    };
    scope.scans().sbom(&sha256).await?;
    let packages = match analysis {
        Some(analysis) => packages_of(&analysis),
        None => {
            let digest = stella_store::object::Sha256Digest::parse(&sha256)
                .map_err(|err| SpecError::new("sbom_sha256", err.to_string()))?;
            let bytes = objects.read_content(&digest).await?;
            let analysis = tokio::task::spawn_blocking(move || Analysis::of(&bytes))
                .await
                .map_err(|err| StoreError::Corrupt(format!("SBOM analysis panicked: {err}")))?
                .map_err(|err| {
                    SpecError::new(
                        "sbom_sha256",
                        format!("the stored SBOM does not parse: {err}"),
                    )
                })?;
            packages_of(&analysis)
        }
    };
    let target = scope.targets().put(name, &sha256, &packages, now).await?;
    if let Some(scan) = scan {
        scope.targets().set_last_scan(&target.id, &scan).await?;
        return Ok(scope.targets().get(target.id.as_str()).await?);
    }
    Ok(target)
}
