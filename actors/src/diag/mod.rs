//! The built-in `noop` job kind, for diagnostics and benchmarks: it sleeps, fails or
//! panics on request, and its single effect is an idempotent row keyed by job id.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stella_store::repo::Effect;
use stella_supervisor::{
    InvalidParams, Kind, Step, StepContext, StepError, StepOutcome, Submitters,
};

use crate::roles::Role;

/// The `noop` job kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

/// Its one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoopStep {
    Run,
}

impl Step for NoopStep {
    const ALL: &'static [Self] = &[NoopStep::Run];

    fn name(self) -> &'static str {
        "run"
    }

    fn role(self) -> stella_store::mailbox::Role {
        Role::Diag.mailbox()
    }
}

/// A noop job's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoopParams {
    pub sleep_ms: u64,
    /// Fail attempts 1..=fail_first with a retryable error.
    pub fail_first: u32,
    /// Panic on this attempt (0: never).
    pub panic_on_attempt: u32,
    /// Panic on every attempt.
    pub panic_always: bool,
    /// Write the effect in a statement of its own after the step, as steps did before
    /// effects were staged (`stella bench jobs` compares the two).
    pub separate_effect: bool,
    /// Do not count the handler's runs (a commit of its own per run): the job then does
    /// nothing but stage its effect, like a peer queue's no-op job (`ops/bench/peers.sh`).
    /// The crash tests keep the count, which proves exactly-once effects.
    pub skip_execution_count: bool,
}

/// The longest sleep a noop job may ask for: long enough for any diagnostic, short
/// enough that a forgotten job does not hold a slot for days.
pub const MAX_SLEEP_MS: u64 = 3_600_000;

/// The most attempts a noop job may ask to fail.
pub const MAX_FAIL_FIRST: u32 = 100;

#[async_trait]
impl Kind for Noop {
    const NAME: &'static str = "noop";
    // A diagnostic that can panic and sleep on request: administrators only, unless
    // `api.tenant_noop_jobs` opens it to tenants (the API decides).
    const SUBMITTERS: Submitters = Submitters::Administrators;
    type Params = NoopParams;
    type Step = NoopStep;

    fn check(&self, params: &NoopParams) -> Result<(), InvalidParams> {
        if params.sleep_ms > MAX_SLEEP_MS {
            return Err(InvalidParams::new(
                "sleep_ms",
                format!("sleep_ms must be at most {MAX_SLEEP_MS} (one hour)"),
            ));
        }
        if params.fail_first > MAX_FAIL_FIRST {
            return Err(InvalidParams::new(
                "fail_first",
                format!("fail_first must be at most {MAX_FAIL_FIRST}"),
            ));
        }
        Ok(())
    }

    async fn run(
        &self,
        _step: NoopStep,
        params: &NoopParams,
        ctx: &mut StepContext<'_>,
    ) -> Result<StepOutcome<NoopStep>, StepError> {
        let noop = ctx.store.tenant(&ctx.job.tenant).noop();
        if !params.skip_execution_count {
            noop.count_execution(&ctx.job.id).await?;
        }
        if params.sleep_ms > 0 {
            let sleep = params.sleep_ms.min(MAX_SLEEP_MS);
            tokio::time::sleep(Duration::from_millis(sleep)).await;
        }
        if params.panic_always || params.panic_on_attempt == ctx.attempt {
            panic!("noop job panics on attempt {} as asked", ctx.attempt);
        }
        if ctx.attempt <= params.fail_first {
            return Err(StepError::retry(format!(
                "noop job fails attempt {} of the first {} as asked",
                ctx.attempt, params.fail_first
            )));
        }
        let fresh = if params.separate_effect {
            noop.write_effect(&ctx.job.id, ctx.now).await?
        } else {
            // Committed with the job's success, or not at all: a step that commits
            // always writes it first.
            ctx.stage(Effect::NoopWritten);
            true
        };
        Ok(StepOutcome::Done(json!({ "effect_written": fresh })))
    }
}
