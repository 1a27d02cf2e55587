use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use stella_store::mailbox::{Envelope, Role};
use stella_store::repo::Job;
use stella_store::{Store, StoreError};

/// What a step handler sees.
#[derive(Debug)]
pub struct StepContext<'a> {
    pub store: &'a Store,
    pub job: &'a Job,
    /// The attempt being run, counting from 1.
    pub attempt: u32,
    pub now: DateTime<Utc>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// The job is done, with this result.
    Done(Value),
    /// Continue with `step`, run by `role`.
    Next { step: String, role: Role },
}

/// Why a step failed, and whether trying again can help.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StepError {
    /// Transient: retried with back-off until the attempts run out.
    #[error("{0}")]
    Retry(String),
    /// Permanent: the job fails now.
    #[error("{0}")]
    Abort(String),
}

impl From<StoreError> for StepError {
    fn from(err: StoreError) -> Self {
        if err.is_transient() {
            StepError::Retry(err.to_string())
        } else {
            StepError::Abort(err.to_string())
        }
    }
}

/// One step of a job kind. Handlers keep their effects idempotent (keyed by job id):
/// delivery is at least once.
#[async_trait]
pub trait StepHandler: Send + Sync + std::fmt::Debug {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError>;
}

/// Who may submit a job kind through `POST /api/v1/jobs`. A kind says so itself, so a
/// new kind cannot be opened to tenants by forgetting a check in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitters {
    /// Nobody: Stella starts these itself or through their own route (a scan through
    /// `POST /scans`, an advisory sync from a schedule).
    Internal,
    /// Administrator tokens only (acting on a tenant they name).
    Administrators,
    /// Any token with `jobs:write`.
    Tenants,
}

/// Checks a submitted job's parameters before it is accepted, so a bad request is a 400
/// at once rather than a job that fails later.
pub trait CheckParams: Send + Sync + std::fmt::Debug {
    /// `Err` names what is wrong, as `(field, message)`: the field's path inside the
    /// parameters (`sources[0]`), empty for the parameters as a whole.
    fn check(&self, params: &Value) -> Result<(), (String, String)>;
}

/// A job kind: its first step, the role that runs each step, and the handlers.
#[derive(Debug, Clone)]
pub struct JobKind {
    pub name: &'static str,
    pub first_step: &'static str,
    pub role: Role,
    pub steps: BTreeMap<&'static str, Arc<dyn StepHandler>>,
    pub submitters: Submitters,
    pub params: Option<Arc<dyn CheckParams>>,
}

impl JobKind {
    /// Checks parameters with the kind's own check (none: anything goes).
    pub fn check_params(&self, params: &Value) -> Result<(), (String, String)> {
        match &self.params {
            Some(check) => check.check(params),
            None => Ok(()),
        }
    }
}

/// Handles a plain message (one that is not a job step): no job state, just the
/// envelope. Used for fire-and-forget work and for benchmarking the mailbox path.
#[async_trait]
pub trait MessageHandler: Send + Sync + std::fmt::Debug {
    async fn handle(&self, envelope: &Envelope) -> Result<(), StepError>;
}

/// Every job kind and message kind this process knows.
#[derive(Debug, Clone, Default)]
pub struct Handlers {
    kinds: BTreeMap<&'static str, JobKind>,
    messages: BTreeMap<String, Arc<dyn MessageHandler>>,
    /// What the scan kind's steps share, for the API to hand its SBOM analyses over.
    scan: Option<crate::scan::ScanDeps>,
}

impl Handlers {
    pub fn register(&mut self, kind: JobKind) {
        self.kinds.insert(kind.name, kind);
    }

    pub fn register_message(&mut self, kind: impl Into<String>, handler: Arc<dyn MessageHandler>) {
        self.messages.insert(kind.into(), handler);
    }

    pub fn message(&self, kind: &str) -> Option<Arc<dyn MessageHandler>> {
        self.messages.get(kind).cloned()
    }

    pub fn kind(&self, name: &str) -> Option<&JobKind> {
        self.kinds.get(name)
    }

    pub fn step(&self, kind: &str, step: &str) -> Option<Arc<dyn StepHandler>> {
        self.kinds.get(kind)?.steps.get(step).cloned()
    }

    /// The built-in kinds that need nothing but the store (`noop`).
    pub fn builtin() -> Self {
        let mut handlers = Self::default();
        handlers.register(crate::noop::kind());
        handlers
    }

    /// Every kind a Stella process runs: the built-in ones, the scan pipeline and
    /// advisory syncs (fetching through `outbound`).
    pub fn with_scan(deps: crate::scan::ScanDeps, outbound: crate::outbound::Outbound) -> Self {
        let mut handlers = Self::builtin();
        handlers.register(crate::sync::kind(deps.objects.clone(), outbound));
        handlers.register(crate::scan::kind(deps.clone()));
        handlers.scan = Some(deps);
        handlers
    }

    /// The scan kind's shared state (caches included), if this process has the kind.
    pub fn scan(&self) -> Option<&crate::scan::ScanDeps> {
        self.scan.as_ref()
    }
}
