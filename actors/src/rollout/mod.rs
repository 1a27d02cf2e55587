//! The `rollout` job kind: one tenant's shadow evaluation for one wave of a policy pack's
//! rollout. The scheduler's leader drives rollouts (waves, gates, activation, bake time,
//! rollback: `stella_scheduler`'s `rollouts` module over `stella_store::repo::Rollouts`)
//! and submits one of these jobs per tenant of a wave being shadowed; the job evaluates the
//! tenant's latest scans with the candidate pack, stores the per-finding diff as an object
//! and commits the tenant's summary with its outcome (`Effect::RolloutShadowed`). A job
//! that fails for good commits a summary counting the tenant's targets as errors, so a
//! wave never waits for a result that will not come and its gate sees the failure.
//!
//! [`shadow`] is also the use case behind `GET /api/v1/policy/diff`.

mod metrics;
pub mod shadow;

pub use metrics::ShadowMetrics;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stella_domain::shadow::DiffSummary;
use stella_store::repo::{Effect, Job};
use stella_supervisor::{Kind, Step, StepContext, StepError, StepOutcome, Submitters};

use crate::roles::Role;
use crate::scan::{Candidate, ScanDeps};

/// The `rollout` job kind.
#[derive(Debug, Clone)]
pub struct Rollout {
    deps: ScanDeps,
    metrics: ShadowMetrics,
}

impl Rollout {
    pub fn new(deps: ScanDeps, metrics: ShadowMetrics) -> Self {
        Self { deps, metrics }
    }
}

/// Its one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStep {
    Shadow,
}

impl Step for RolloutStep {
    const ALL: &'static [Self] = &[RolloutStep::Shadow];

    fn name(self) -> &'static str {
        "shadow"
    }

    fn role(self) -> stella_store::mailbox::Role {
        Role::Evaluator.mailbox()
    }
}

/// A shadow job's parameters: which rollout, which shadowing of its wave, and the pack
/// version it rolls out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutParams {
    pub rollout: String,
    pub generation: u64,
    pub pack: String,
    pub version: u64,
}

impl RolloutParams {
    /// The job's idempotency key within its tenant: one job per shadowing.
    pub fn key(&self) -> String {
        format!("rollout:{}:{}", self.rollout, self.generation)
    }
}

#[async_trait]
impl Kind for Rollout {
    const NAME: &'static str = "rollout";
    const SUBMITTERS: Submitters = Submitters::Internal;
    type Params = RolloutParams;
    type Step = RolloutStep;

    async fn run(
        &self,
        _step: RolloutStep,
        params: &RolloutParams,
        ctx: &mut StepContext<'_>,
    ) -> Result<StepOutcome<RolloutStep>, StepError> {
        let record = ctx.store.packs().get(&params.pack, params.version).await?;
        let candidate = Candidate::Pack(crate::scan::pack_of(&record)?);
        let tenant = ctx.job.tenant.clone();
        let started = std::time::Instant::now();
        let diff = shadow::diff_tenant(
            ctx.store,
            &self.deps,
            &tenant,
            // Against the verdicts in force: what activating would change for the
            // tenant (its targets are re-scanned on activation).
            shadow::Old::Stored,
            candidate,
            ctx.now,
        )
        .await?;
        self.metrics
            .observe("rollout", &diff, started.elapsed().as_secs_f64());
        let stored = self.deps.objects.put_content(diff.to_bytes()?).await?;
        let sha256 = stored.digest.to_string();
        ctx.stage(Effect::RolloutShadowed {
            rollout_id: params.rollout.clone(),
            generation: params.generation,
            summary: serde_json::to_value(diff.summary)
                .map_err(|err| StepError::abort(format!("shadow summary: {err}")))?,
            diff_sha256: sha256.clone(),
        });
        Ok(StepOutcome::Done(json!({
            "summary": diff.summary,
            "diff_sha256": sha256,
        })))
    }

    fn failed(&self, job: &Job, error: &str) -> Vec<Effect> {
        let Ok(params) = serde_json::from_value::<RolloutParams>(job.params.clone()) else {
            return Vec::new();
        };
        // The wave's gate counts the tenant as one evaluation error.
        let summary = DiffSummary {
            errors: 1,
            ..DiffSummary::default()
        };
        let mut summary = serde_json::to_value(summary).unwrap_or_default();
        summary["error"] = json!(error);
        vec![Effect::RolloutShadowed {
            rollout_id: params.rollout,
            generation: params.generation,
            summary,
            diff_sha256: String::new(),
        }]
    }
}
