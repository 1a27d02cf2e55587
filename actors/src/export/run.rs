//! Starting an export run: a profile revision (the latest unless one is named) becomes an
//! `export` job.

use chrono::{DateTime, Utc};
use stella_store::repo::{Job, JobState};
use stella_store::{JobId, Store, StoreError, TenantId};
use stella_supervisor::{submit, JobRequest, Kind, Registry};

use super::{Export, ExportParams, Format};

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartRunError {
    /// No such profile (or revision, or base export) for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// The tenant has `limit` runs queued or running already.
    #[error("{active} export runs are queued or running, the most a tenant may have at once; start this one when one of them ends")]
    Limit { active: u64, limit: u64 },
    /// A run parameter that does not fit the profile: `field` names it.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts a run of `profile` (at `revision`, or its latest) as of `as_of`; a
/// `mirror:delta` names the export it is taken since (`base`), which must be a completed
/// mirror export of the tenant. Starting again with the same `idempotency_key` returns
/// the first run.
#[allow(clippy::too_many_arguments)]
pub async fn start_run(
    store: &Store,
    registry: &Registry,
    tenant: &TenantId,
    profile: &str,
    revision: Option<u64>,
    as_of: DateTime<Utc>,
    base: Option<&str>,
    idempotency_key: Option<&str>,
    max_attempts: u32,
) -> Result<Job, StartRunError> {
    let profiles = store.tenant(tenant).export_profiles();
    let record = match revision {
        Some(revision) => match profiles.revision(profile, revision).await {
            Ok(record) => record,
            Err(StoreError::NotFound(what)) => return Err(StartRunError::NotFound(what)),
            Err(err) => return Err(err.into()),
        },
        None => profiles
            .latest(profile)
            .await?
            .ok_or_else(|| StartRunError::NotFound(format!("export profile {profile:?}")))?,
    };
    let format = Format::parse(&record.kind).map_err(|message| StartRunError::Invalid {
        field: "profile",
        message,
    })?;
    match (format, base) {
        (Format::MirrorDelta, None) => {
            return Err(StartRunError::Invalid {
                field: "base",
                message: "a mirror:delta run names the export it is taken since (base)".into(),
            })
        }
        (Format::MirrorDelta, Some(base)) => check_base(store, tenant, base).await?,
        (other, Some(_)) => {
            return Err(StartRunError::Invalid {
                field: "base",
                message: format!("only mirror:delta runs take a base, not {}", other.name()),
            })
        }
        (_, None) => {}
    }
    let params = ExportParams {
        profile: record.name,
        revision: record.revision,
        as_of,
        base: base.map(str::to_owned),
    };
    let mut request = JobRequest::of::<Export>(&params)?.with_attempts(max_attempts);
    request.idempotency_key = idempotency_key.map(|key| format!("{}:{key}", Export::NAME));
    Ok(submit(store, registry, tenant, &request, Utc::now())
        .await?
        .job)
}

/// [`start_run`] unless the tenant has `limit` runs queued or running already (0: no
/// limit). A request repeating an idempotency key gets its first run whatever the count.
/// Two requests at the same moment may both pass the count: the limit bounds a tenant's
/// load, it is not a semaphore.
#[allow(clippy::too_many_arguments)]
pub async fn start_run_limited(
    store: &Store,
    registry: &Registry,
    tenant: &TenantId,
    profile: &str,
    revision: Option<u64>,
    as_of: DateTime<Utc>,
    base: Option<&str>,
    idempotency_key: Option<&str>,
    max_attempts: u32,
    limit: u64,
) -> Result<Job, StartRunError> {
    let jobs = store.tenant(tenant).jobs();
    if let Some(key) = idempotency_key {
        if let Some(job) = jobs
            .find_by_idempotency_key(&format!("{}:{key}", Export::NAME))
            .await?
        {
            return Ok(job);
        }
    }
    if limit > 0 {
        let active = jobs.count_unfinished(Export::NAME).await?;
        if active >= limit {
            return Err(StartRunError::Limit { active, limit });
        }
    }
    start_run(
        store,
        registry,
        tenant,
        profile,
        revision,
        as_of,
        base,
        idempotency_key,
        max_attempts,
    )
    .await
}

/// A delta's base: a completed mirror export of this tenant (another tenant's is
/// `NotFound`, as for any missing id).
async fn check_base(store: &Store, tenant: &TenantId, base: &str) -> Result<(), StartRunError> {
    let invalid = |message: String| StartRunError::Invalid {
        field: "base",
        message,
    };
    let id = JobId::parse(base).map_err(|_| invalid(format!("{base:?} is not an export id")))?;
    let job = match store.tenant(tenant).jobs().get(&id).await {
        Ok(job) if job.kind == Export::NAME => job,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return Err(StartRunError::NotFound(format!("base export {base}")))
        }
        Err(err) => return Err(err.into()),
    };
    if job.state != JobState::Succeeded {
        return Err(invalid(format!(
            "base export {base} has not completed (it is {})",
            job.state
        )));
    }
    let params: ExportParams = serde_json::from_value(job.params)
        .map_err(|err| invalid(format!("base export {base}: {err}")))?;
    let kind = store
        .tenant(tenant)
        .export_profiles()
        .revision(&params.profile, params.revision)
        .await?
        .kind;
    match Format::parse(&kind) {
        Ok(format) if format.is_mirror() => Ok(()),
        _ => Err(invalid(format!(
            "base export {base} is a {kind} export, not a mirror"
        ))),
    }
}
