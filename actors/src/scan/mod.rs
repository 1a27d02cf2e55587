//! The `scan` job kind: an SBOM in, a sealed verdict out, in three durable steps run by
//! three roles: `analyze` (analyzer: parse the SBOM, keep its matchable components),
//! `evaluate` (evaluator: match against the advisories, join VEX, apply the tenant's
//! policy at the scan's evaluation time) and `seal` (sealer: sign the verdict as an
//! in-toto statement in a DSSE envelope, store it, emit `scan.completed`).
//!
//! The steps (`steps.rs`) are thin: the work is `stella_domain`'s pure functions, run on the
//! blocking pool because parsing and matching are CPU work. Each step's effect is
//! idempotent (the analysis is written once, the verdict is replaced until sealed, the
//! attestation digest and its event are set once), and signing is deterministic
//! (Ed25519, canonical JSON), so a redelivered or resumed step yields the same bytes and
//! never a second attestation.
//!
//! The advisory index is cached per process and rebuilt when the store's `advisories`
//! generation moves (every import that changes a record bumps it), so a warm scan costs
//! one counter read instead of reading the advisory database.
//!
//! An SBOM is parsed once per process: whoever parsed it ([`Intake`], which validates
//! every SBOM it receives) leaves its analysis in the [`AnalysisCache`], and the steps take it
//! from there instead of reading and parsing the SBOM again (`analyze`) or decoding the
//! stored analysis (`evaluate`). The analysis is a pure function of the SBOM's bytes, so
//! the cached one is the stored one; a miss (another process, a restart, an evicted
//! entry) falls back to the store.
//!
//! Layout: this file (the kind, its parameters and steps), `intake` (storing an SBOM and
//! submitting its scan: the use case behind `POST /scans` and `POST /sboms`), `image`
//! (an image archive streamed in, its SBOM made and stored: `POST /images`), `steps`,
//! `cache` (the analysis and advisory-index caches).

mod cache;
mod image;
mod intake;
mod steps;
pub(crate) use steps::{blocking, is_affected};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stella_domain::dsse::SigningKey;
use stella_store::object::Objects;
use stella_supervisor::{Kind, Step, StepContext, StepError, StepOutcome, Submitters};

pub use cache::{AdvisoryCache, AnalysisCache, CachedIndex};
pub use image::{Chunk, ImageChunks, ImageIntake, StoredImage};
pub use intake::{Intake, IntakeError, SbomSource, ScanOptions, StoredSbom, SubmittedScan};
pub use stella_domain::analysis::Analysis;
pub use steps::{
    active_policy, assigned_pack, pack_of, vex_statements, Candidate, Policies, TenantPolicies,
    MAX_FINDINGS_BYTES,
};

use crate::roles::Role;

/// A scan job's parameters, fixed at submission so every attempt evaluates the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanParams {
    /// Hex SHA-256 of the SBOM (the object `sha256/<hex>`).
    pub sbom_sha256: String,
    /// What the SBOM describes, for the attestation's subject name.
    pub name: String,
    /// The evaluation time: exceptions expire against it, and it is part of the inputs
    /// hash. Never read from the clock during the scan.
    pub evaluated_at: DateTime<Utc>,
}

/// What a scan needs besides the store.
#[derive(Debug, Clone)]
pub struct ScanDeps {
    pub objects: Objects,
    pub signing_key: Arc<SigningKey>,
    pub advisories: Arc<AdvisoryCache>,
    pub analyses: Arc<AnalysisCache>,
}

impl ScanDeps {
    pub fn new(objects: Objects, signing_key: Arc<SigningKey>) -> Self {
        Self {
            objects,
            signing_key,
            advisories: Arc::new(AdvisoryCache::default()),
            analyses: Arc::new(AnalysisCache::default()),
        }
    }
}

/// The `scan` job kind.
#[derive(Debug, Clone)]
pub struct Scan {
    deps: ScanDeps,
}

impl Scan {
    pub fn new(deps: ScanDeps) -> Self {
        Self { deps }
    }
}

/// The scan's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStep {
    Analyze,
    Evaluate,
    Seal,
}

impl Step for ScanStep {
    const ALL: &'static [Self] = &[ScanStep::Analyze, ScanStep::Evaluate, ScanStep::Seal];

    fn name(self) -> &'static str {
        match self {
            ScanStep::Analyze => "analyze",
            ScanStep::Evaluate => "evaluate",
            ScanStep::Seal => "seal",
        }
    }

    fn role(self) -> stella_store::mailbox::Role {
        match self {
            ScanStep::Analyze => Role::Analyzer,
            ScanStep::Evaluate => Role::Evaluator,
            ScanStep::Seal => Role::Sealer,
        }
        .mailbox()
    }
}

#[async_trait]
impl Kind for Scan {
    const NAME: &'static str = "scan";
    // Submitted through `POST /scans` ([`Intake`]), which stores and analyzes the SBOM
    // first.
    const SUBMITTERS: Submitters = Submitters::Internal;
    type Params = ScanParams;
    type Step = ScanStep;

    async fn run(
        &self,
        step: ScanStep,
        params: &ScanParams,
        ctx: &mut StepContext<'_>,
    ) -> Result<StepOutcome<ScanStep>, StepError> {
        match step {
            ScanStep::Analyze => steps::analyze(&self.deps, params, ctx).await,
            ScanStep::Evaluate => steps::evaluate(&self.deps, params, ctx).await,
            ScanStep::Seal => steps::seal(&self.deps, params, ctx).await,
        }
    }
}
