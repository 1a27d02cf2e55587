//! Starting an export run: a profile revision (the latest unless one is named) becomes an
//! `export` job.

use chrono::{DateTime, Utc};
use stella_store::repo::Job;
use stella_store::{Store, StoreError, TenantId};
use stella_supervisor::{submit, JobRequest, Kind, Registry};

use super::{Export, ExportParams};

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartRunError {
    /// No such profile (or revision) for this tenant.
    #[error("{0}")]
    NotFound(String),
    /// The tenant has `limit` runs queued or running already.
    #[error("{active} export runs are queued or running, the most a tenant may have at once; start this one when one of them ends")]
    Limit { active: u64, limit: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts a run of `profile` (at `revision`, or its latest) as of `as_of`. Starting again
/// with the same `idempotency_key` returns the first run.
#[allow(clippy::too_many_arguments)]
pub async fn start_run(
    store: &Store,
    registry: &Registry,
    tenant: &TenantId,
    profile: &str,
    revision: Option<u64>,
    as_of: DateTime<Utc>,
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
    let params = ExportParams {
        profile: record.name,
        revision: record.revision,
        as_of,
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
        idempotency_key,
        max_attempts,
    )
    .await
}
