//! The job kind API: what a feature implements to become a durable job.
//!
//! A kind is a Rust type ([`Kind`]): its name, its typed parameters, its steps as an enum
//! ([`Step`], each step naming the role that runs it) and one `run` for all steps. The
//! runtime never sees a kind's types: the [`Registry`](super::Registry) erases them
//! behind [`ErasedKind`], decoding parameters and step names once, here, so a mistyped
//! step is a compile error in the kind and a corrupt row is a permanent failure with a
//! message, never a panic.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;
use stella_store::mailbox::{Envelope, Role};
use stella_store::repo::{Effect, Job};
use stella_store::{JobId, Store, StoreError, TenantId};

/// The job whose step is running: what a step and the runner read of it. Not the whole
/// [`Job`] row: a worker holds one per job in flight (100,000 in the memory benchmark),
/// and the row's result, error, key and timestamps would be carried by every running
/// step for nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    pub tenant: TenantId,
    pub id: JobId,
    pub kind: String,
    /// The step being run.
    pub step: String,
    /// Attempts of this step, the running one included.
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at: DateTime<Utc>,
}

impl From<Job> for RunningJob {
    fn from(job: Job) -> Self {
        Self {
            tenant: job.tenant,
            id: job.id,
            kind: job.kind,
            step: job.step,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            created_at: job.created_at,
        }
    }
}

/// What a step sees, and where it stages the store writes that commit with its outcome.
#[derive(Debug)]
pub struct StepContext<'a> {
    pub store: &'a Store,
    /// The job whose step this is (its parameters come to the step typed).
    pub job: &'a RunningJob,
    /// The attempt being run, counting from 1.
    pub attempt: u32,
    pub now: DateTime<Utc>,
    effects: Vec<Effect>,
}

impl<'a> StepContext<'a> {
    pub fn new(store: &'a Store, job: &'a RunningJob, attempt: u32, now: DateTime<Utc>) -> Self {
        Self {
            store,
            job,
            attempt,
            now,
            effects: Vec::new(),
        }
    }

    /// Stages a store write to commit in the same transaction as this step's outcome
    /// and its next message: a crash leaves either none of them or all of them, and the
    /// effect's unique key makes a second commit of it impossible. Staged writes of a
    /// step that fails or is cancelled are dropped.
    pub fn stage(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// The writes staged so far (for the runner).
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }
}

/// The steps of one kind, as an enum: the names and roles are Rust items, so the runtime
/// can only be told about steps that exist.
pub trait Step: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// Every step; the first one starts a job.
    const ALL: &'static [Self];

    /// The step's name in job rows and messages (stable: stored).
    fn name(self) -> &'static str;

    /// The role whose workers run this step.
    fn role(self) -> Role;

    /// The step called `name`.
    fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|step| step.name() == name)
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome<S> {
    /// The job is done, with this result.
    Done(Value),
    /// Continue with this step (run by its role).
    Next(S),
    /// Continue with this step, not before this time (a digest window's end, the end of
    /// quiet hours). Waiting spends no attempt.
    Later(S, DateTime<Utc>),
}

/// Whether and when a failed step may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient: retried with the runtime's back-off until the attempts run out.
    Backoff,
    /// Transient, and the other side said when (a `429 Retry-After`): retried after
    /// this long, still within the attempts.
    After(Duration),
    /// Permanent: the job fails now.
    Never,
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a step failed: a message for the job's `last_error`, whether and when to retry,
/// and the error that caused it (kept for logs and for callers that inspect it).
#[derive(Debug)]
pub struct StepError {
    message: String,
    retry: Retry,
    source: Option<Source>,
}

impl StepError {
    /// A transient failure, retried with back-off.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: Retry::Backoff,
            source: None,
        }
    }

    /// A transient failure whose retry must wait `after` (for example `Retry-After`), up
    /// to the runtime's longest back-off (`runtime.retry_max_delay_ms`).
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        Self {
            message: message.into(),
            retry: Retry::After(after),
            source: None,
        }
    }

    /// A permanent failure: the job fails now.
    pub fn abort(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: Retry::Never,
            source: None,
        }
    }

    /// Keeps the error that caused this one.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn retry_kind(&self) -> Retry {
        self.retry
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for StepError {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.retry == other.retry
    }
}

impl From<StoreError> for StepError {
    fn from(err: StoreError) -> Self {
        StepError::of_store(err.to_string(), err)
    }
}

impl StepError {
    /// A store error with what the step was doing (`context: error`): retried when it is
    /// transient, permanent otherwise, as [`From<StoreError>`] does.
    pub fn store(context: impl std::fmt::Display, err: StoreError) -> Self {
        StepError::of_store(format!("{context}: {err}"), err)
    }

    fn of_store(message: String, err: StoreError) -> Self {
        let error = if err.is_transient() {
            StepError::retry(message)
        } else {
            StepError::abort(message)
        };
        error.with_source(err)
    }
}

/// Who may submit a job kind through `POST /api/v1/jobs`. A kind says so itself, so a
/// new kind cannot be opened to tenants by forgetting a check in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitters {
    /// Nobody: Stella starts these itself or through their own route.
    Internal,
    /// Administrator tokens only (acting on a tenant they name).
    Administrators,
    /// Any token with `jobs:write`.
    Tenants,
}

/// Parameters refused at submission: where (the field's path inside the parameters,
/// `sources[0]`; empty for the parameters as a whole) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidParams {
    pub field: String,
    pub message: String,
}

impl InvalidParams {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A durable job kind. Implemented by a feature's kind type (which holds what its steps
/// need); registered once per process in a [`Registry`](super::Registry).
///
/// Steps keep their effects idempotent: delivery is at least once. A store write that
/// must happen exactly when the step commits is staged with [`StepContext::stage`].
#[async_trait]
pub trait Kind: Send + Sync + fmt::Debug + 'static {
    /// The kind's name in job rows and the API (stable: stored).
    const NAME: &'static str;
    /// Who may submit it through `POST /jobs`.
    const SUBMITTERS: Submitters;
    /// Its parameters, fixed at submission.
    type Params: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Its steps.
    type Step: Step;

    /// Checks parameters at submission beyond decoding them (the default: nothing more).
    fn check(&self, _params: &Self::Params) -> Result<(), InvalidParams> {
        Ok(())
    }

    /// Runs one step.
    async fn run(
        &self,
        step: Self::Step,
        params: &Self::Params,
        ctx: &mut StepContext<'_>,
    ) -> Result<StepOutcome<Self::Step>, StepError>;

    /// The store writes that commit with the job's failure (when a step fails for good,
    /// or its deliveries were abandoned): an event saying so, for example. The default:
    /// none. `job` is the job as it was when it failed (its step names where).
    fn failed(&self, _job: &Job, _error: &str) -> Vec<Effect> {
        Vec::new()
    }
}

/// A step's outcome with the kind's types erased: what the runner commits.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Done(Value),
    Next {
        step: &'static str,
        role: Role,
        not_before: Option<DateTime<Utc>>,
    },
}

/// A [`Kind`] with its types erased, as the registry and the runner hold it.
#[async_trait]
pub(crate) trait ErasedKind: Send + Sync + fmt::Debug {
    fn submitters(&self) -> Submitters;
    /// The first step and its role.
    fn first_step(&self) -> (&'static str, Role);
    fn check(&self, params: &Value) -> Result<(), InvalidParams>;
    /// Runs one step with the job's parameters as JSON text, taken out of `ctx.job` by
    /// the runner and dropped once decoded: while the step runs the handler holds them
    /// typed, and nothing holds the text (a worker runs up to `runtime.concurrency` steps).
    async fn run(
        &self,
        step: &str,
        params: Box<str>,
        ctx: &mut StepContext<'_>,
    ) -> Result<Outcome, StepError>;
    fn failed(&self, job: &Job, error: &str) -> Vec<Effect>;
}

#[derive(Debug)]
pub(crate) struct Typed<K>(pub(crate) K);

impl<K: Kind> Typed<K> {
    fn decode(params: &Value) -> Result<K::Params, String> {
        K::Params::deserialize(params).map_err(Self::invalid)
    }

    fn invalid(err: serde_json::Error) -> String {
        format!("invalid {} parameters: {err}", K::NAME)
    }
}

#[async_trait]
impl<K: Kind> ErasedKind for Typed<K> {
    fn submitters(&self) -> Submitters {
        K::SUBMITTERS
    }

    fn first_step(&self) -> (&'static str, Role) {
        // A kind with no steps cannot be registered (see `Registry::register`).
        let first = K::Step::ALL[0];
        (first.name(), first.role())
    }

    fn check(&self, params: &Value) -> Result<(), InvalidParams> {
        let params = Self::decode(params).map_err(|message| InvalidParams::new("", message))?;
        self.0.check(&params)
    }

    fn failed(&self, job: &Job, error: &str) -> Vec<Effect> {
        self.0.failed(job, error)
    }

    async fn run(
        &self,
        step: &str,
        params: Box<str>,
        ctx: &mut StepContext<'_>,
    ) -> Result<Outcome, StepError> {
        let Some(current) = K::Step::named(step) else {
            return Err(StepError::abort(format!(
                "no handler for step {step:?} of job kind {:?}",
                K::NAME
            )));
        };
        let decoded = serde_json::from_str::<K::Params>(&params);
        drop(params);
        let params = decoded.map_err(|err| StepError::abort(Self::invalid(err)))?;
        match self.0.run(current, &params, ctx).await? {
            StepOutcome::Done(result) => Ok(Outcome::Done(result)),
            // The next step's message is deduplicated by `{job}:{step}`: a step naming
            // itself would be dropped, so it is refused loudly instead.
            StepOutcome::Next(next) | StepOutcome::Later(next, _) if next == current => {
                Err(StepError::abort(format!(
                    "step {:?} names itself as the next step; use a retry instead",
                    next.name()
                )))
            }
            StepOutcome::Next(next) => Ok(Outcome::Next {
                step: next.name(),
                role: next.role(),
                not_before: None,
            }),
            StepOutcome::Later(next, at) => Ok(Outcome::Next {
                step: next.name(),
                role: next.role(),
                not_before: Some(at),
            }),
        }
    }
}

/// Handles a plain message (one that is not a job step): no job state, just the
/// envelope. Used for fire-and-forget work and for benchmarking the mailbox path.
#[async_trait]
pub trait MessageHandler: Send + Sync + fmt::Debug {
    async fn handle(&self, envelope: &Envelope) -> Result<(), StepError>;
}
