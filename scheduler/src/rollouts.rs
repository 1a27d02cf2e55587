//! The leader's part of pack rollouts (step 7 of a pass): for each rollout that is due,
//! the one move its state calls for, fenced by the lease like every write of the leader.
//!
//! - **shadow**: every tenant of the wave needs a shadow result of the rollout's current
//!   generation; the missing ones get a `rollout` job each (idempotency key per
//!   generation, so a new leader re-submitting submits nothing twice). When all are in,
//!   the wave's gate judges their summed diff: passed activates the wave (500 tenants per
//!   commit, each with its `policy.updated` event) and starts its bake time; failed,
//!   inconclusive or awaiting approval pauses the rollout, saying why.
//! - **bake** over: the next wave's shadow starts, or the rollout completes.
//! - **rolling back**: activated tenants get their previous pack back, 500 per commit;
//!   then the rollout is rolled back.
//!
//! A wave without tenants (a small percentage of few tenants) has nothing to judge or
//! activate and passes to its bake time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use stella_actors::rollout::{Rollout, RolloutParams};
use stella_domain::rollout::{GateResult, RolloutSpec};
use stella_domain::shadow::DiffSummary;
use stella_store::repo::{
    rollout_phase, rollout_state, LeaderMove, RolloutRecord, SchedulerChanges,
};
use stella_store::{Store, StoreError, TenantId};
use stella_supervisor::{prepare, JobRequest, Registry};

/// Tenants activated or rolled back per commit.
const BATCH: usize = 500;

/// Shadowings whose jobs this process has submitted while leading (rollout, generation):
/// a pass does not submit them again; a new leader does, once, and the jobs' keys make
/// that a no-op.
#[derive(Debug, Clone, Default)]
pub(crate) struct Submitted(Arc<Mutex<HashSet<(String, u64)>>>);

impl Submitted {
    fn first_time(&self, rollout: &RolloutRecord) -> bool {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        set.insert((rollout.id.to_string(), rollout.generation))
    }

    fn forget(&self, rollout: &RolloutRecord) {
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        set.remove(&(rollout.id.to_string(), rollout.generation));
    }
}

/// Moves every due rollout one step; returns how many moved (or had jobs submitted).
pub(crate) async fn drive(
    store: &Store,
    registry: &Registry,
    submitted: &Submitted,
    job_max_attempts: u32,
    token: i64,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut moved = 0;
    for rollout in store.rollouts().due(now).await? {
        let spec: RolloutSpec = match serde_json::from_value(rollout.spec.clone()) {
            Ok(spec) => spec,
            Err(err) => {
                tracing::error!(rollout = %rollout.id, error = %err, "a stored rollout does not decode; it stays as it is");
                continue;
            }
        };
        let step = match (rollout.state.as_str(), rollout.phase.as_str()) {
            (rollout_state::ROLLING_BACK, _) => {
                let tenants = store
                    .rollouts()
                    .tenants(&rollout.id, None)
                    .await?
                    .into_iter()
                    .filter(|t| t.activated_at.is_some() && t.rolled_back_at.is_none())
                    .take(BATCH)
                    .map(|t| t.tenant)
                    .collect();
                Some(LeaderMove::RollBack { tenants })
            }
            (rollout_state::RUNNING, rollout_phase::BAKE) => {
                let next = usize::try_from(rollout.wave + 1).unwrap_or(usize::MAX);
                if next < spec.waves.len() {
                    Some(LeaderMove::NextWave {
                        wave_name: spec.wave_name(next),
                    })
                } else {
                    Some(LeaderMove::Complete)
                }
            }
            (rollout_state::RUNNING, rollout_phase::SHADOW) => {
                shadow_step(
                    store,
                    registry,
                    submitted,
                    job_max_attempts,
                    token,
                    &rollout,
                    &spec,
                    now,
                )
                .await?
            }
            _ => None,
        };
        if let Some(step) = step {
            store.rollouts().lead(token, &rollout, &step, now).await?;
            if matches!(step, LeaderMove::Pause { .. }) {
                submitted.forget(&rollout);
            }
        }
        moved += 1;
    }
    Ok(moved)
}

/// A wave being shadowed: submit the missing jobs, or judge the gate when all are in.
#[allow(clippy::too_many_arguments)]
async fn shadow_step(
    store: &Store,
    registry: &Registry,
    submitted: &Submitted,
    job_max_attempts: u32,
    token: i64,
    rollout: &RolloutRecord,
    spec: &RolloutSpec,
    now: DateTime<Utc>,
) -> Result<Option<LeaderMove>, StoreError> {
    let tenants = store
        .rollouts()
        .tenants(&rollout.id, Some(rollout.wave))
        .await?;
    let current = |t: &&stella_store::repo::RolloutTenantRecord| {
        t.shadow
            .as_ref()
            .is_some_and(|s| s.generation == rollout.generation)
    };
    // Tenants activated by an earlier batch of this wave keep the shadow that let them in.
    let missing: Vec<&TenantId> = tenants
        .iter()
        .filter(|t| t.activated_at.is_none() && !current(t))
        .map(|t| &t.tenant)
        .collect();
    if !missing.is_empty() {
        if submitted.first_time(rollout) {
            let params = RolloutParams {
                rollout: rollout.id.to_string(),
                generation: rollout.generation,
                pack: rollout.pack.clone(),
                version: rollout.version,
            };
            let request = JobRequest::of::<Rollout>(&params)?
                .with_key(params.key())
                .with_attempts(job_max_attempts);
            let mut changes = SchedulerChanges::default();
            for tenant in missing {
                changes.jobs.push(prepare(registry, tenant, &request, now)?);
            }
            if let Err(err) = store.scheduling().apply(token, &changes, now).await {
                submitted.forget(rollout);
                return Err(err);
            }
        }
        return Ok(None);
    }
    let mut summary = DiffSummary::default();
    for tenant in &tenants {
        if let Some(shadow) = &tenant.shadow {
            let one: DiffSummary = serde_json::from_value(shadow.summary.clone())
                .map_err(|e| StoreError::Corrupt(format!("shadow summary: {e}")))?;
            summary.merge(&one);
        }
    }
    let wave = usize::try_from(rollout.wave).unwrap_or(usize::MAX);
    let gate = spec.gate_of(wave);
    let result = if tenants.is_empty() {
        GateResult::Passed
    } else {
        gate.judge(&summary, rollout.approved_wave == Some(rollout.wave))
    };
    let mut judged = serde_json::to_value(&result)
        .map_err(|e| StoreError::Invalid(format!("gate result: {e}")))?;
    judged["summary"] = json!(summary);
    judged["gate"] = json!(gate);
    judged["wave"] = json!(rollout.wave);
    judged["tenants"] = json!(tenants.len());
    Ok(Some(match result {
        GateResult::Passed => LeaderMove::Activate {
            tenants: tenants
                .iter()
                .filter(|t| t.activated_at.is_none())
                .take(BATCH)
                .map(|t| t.tenant.clone())
                .collect(),
            gate: judged,
            bake_until: now
                + Duration::seconds(i64::try_from(spec.bake_seconds).unwrap_or(i64::MAX / 1000)),
        },
        _ => LeaderMove::Pause { gate: judged },
    }))
}
