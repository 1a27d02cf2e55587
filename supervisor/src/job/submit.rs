//! Submitting jobs: a typed request, and the job row committed with its first message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_store::repo::{NewJob, NewMessage, NewTenantJob, Submitted};
use stella_store::{JobId, Store, StoreError, TenantId};

use super::kind::Kind;
use super::registry::{KindInfo, Registry};

/// The kind of every job-step envelope.
pub const STEP_MESSAGE: &str = "job.step";

/// The payload of a job-step envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMessage {
    pub job_id: JobId,
    pub step: String,
}

/// A job to submit, built from a kind's typed parameters ([`JobRequest::of`]) or, for
/// the API's generic route, from parameters its kind has checked ([`JobRequest::checked`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    kind: &'static str,
    params: Value,
    /// Submitting twice with the same key yields the first job.
    pub idempotency_key: Option<String>,
    pub max_attempts: u32,
}

/// Attempts a job gets unless its submitter says otherwise.
const DEFAULT_ATTEMPTS: u32 = 5;

impl JobRequest {
    /// A job of kind `K` with these parameters.
    pub fn of<K: Kind>(params: &K::Params) -> Result<Self, StoreError> {
        let params = serde_json::to_value(params)
            .map_err(|err| StoreError::Invalid(format!("{} parameters: {err}", K::NAME)))?;
        Ok(Self {
            kind: K::NAME,
            params,
            idempotency_key: None,
            max_attempts: DEFAULT_ATTEMPTS,
        })
    }

    /// A job of a kind looked up by name, with parameters it accepted.
    pub fn checked(kind: &KindInfo, params: Value) -> Result<Self, super::InvalidParams> {
        kind.check_params(&params)?;
        Ok(Self {
            kind: kind.name,
            params,
            idempotency_key: None,
            max_attempts: DEFAULT_ATTEMPTS,
        })
    }

    /// Submitting again with `key` yields the first job.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Attempts in all, the first included.
    pub fn with_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn params(&self) -> &Value {
        &self.params
    }
}

/// The message that asks for `attempt` of `step` of a job.
pub(crate) fn step_message(
    job_id: &JobId,
    step: &str,
    role: &str,
    attempt: u32,
    not_before: DateTime<Utc>,
) -> NewMessage {
    NewMessage {
        role: role.to_owned(),
        kind: STEP_MESSAGE.to_owned(),
        payload: serde_json::to_value(StepMessage {
            job_id: job_id.clone(),
            step: step.to_owned(),
        })
        .unwrap_or(Value::Null),
        idempotency_key: format!("{job_id}:{step}"),
        attempt,
        not_before,
        trace: stella_store::telemetry::traceparent(),
    }
}

/// The job row of a request and the first step's name and role.
fn new_job(registry: &Registry, request: &JobRequest) -> Result<(NewJob, String), StoreError> {
    let kind = registry
        .erased(request.kind)
        .ok_or_else(|| StoreError::Invalid(format!("unknown job kind {:?}", request.kind)))?;
    let (step, role) = kind.first_step();
    let job = NewJob {
        kind: request.kind.to_owned(),
        step: step.to_owned(),
        params: request.params.clone(),
        max_attempts: request.max_attempts,
        idempotency_key: request.idempotency_key.clone(),
    };
    Ok((job, role.as_str().to_owned()))
}

/// Submits a job of a registered kind: the job row and its first step message are
/// committed together.
pub async fn submit(
    store: &Store,
    registry: &Registry,
    tenant: &TenantId,
    request: &JobRequest,
    now: DateTime<Utc>,
) -> Result<Submitted, StoreError> {
    let (new, role) = new_job(registry, request)?;
    // The job id is only known once inserted; the message refers to it, so the first
    // message is derived inside `submit_with`.
    let jobs = store.tenant(tenant).jobs();
    jobs.submit_with(&new, now, |id| {
        vec![step_message(id, &new.step, &role, 0, now)]
    })
    .await
}

/// Submits many jobs of one tenant in one transaction (see `Jobs::submit_many`): the
/// batch form of [`submit`], with the same guarantees per job. Results are in the order
/// of `requests`.
pub async fn submit_batch(
    store: &Store,
    registry: &Registry,
    tenant: &TenantId,
    requests: &[JobRequest],
    now: DateTime<Utc>,
) -> Result<Vec<Submitted>, StoreError> {
    let mut new = Vec::with_capacity(requests.len());
    let mut roles = std::collections::HashMap::new();
    for request in requests {
        let (job, role) = new_job(registry, request)?;
        roles.insert(request.kind, role);
        new.push(job);
    }
    let jobs = store.tenant(tenant).jobs();
    jobs.submit_many(&new, now, |id, job| {
        roles
            .get(job.kind.as_str())
            .map(|role| vec![step_message(id, &job.step, role, 0, now)])
            .unwrap_or_default()
    })
    .await
}

/// A job of `tenant` ready to be inserted inside another transaction (the scheduler
/// plans runs and submits their jobs in one commit): its id, row and first message.
pub fn prepare(
    registry: &Registry,
    tenant: &TenantId,
    request: &JobRequest,
    now: DateTime<Utc>,
) -> Result<NewTenantJob, StoreError> {
    let (job, role) = new_job(registry, request)?;
    let id = JobId::generate();
    let message = step_message(&id, &job.step, &role, 0, now);
    Ok(NewTenantJob {
        tenant: tenant.clone(),
        id,
        job,
        messages: vec![message],
    })
}
