//! The built-in `noop` job kind, for diagnostics and benchmarks: it sleeps, fails or
//! panics on request, and its single effect is an idempotent row keyed by job id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use stella_store::mailbox::Role;

use crate::handler::{
    CheckParams, JobKind, StepContext, StepError, StepHandler, StepOutcome, Submitters,
};

pub const KIND: &str = "noop";

/// The role that runs noop jobs.
pub fn role() -> Role {
    Role::parse("diag").unwrap_or_else(|_| unreachable!("a valid role literal"))
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
}

/// The longest sleep a noop job may ask for: long enough for any diagnostic, short
/// enough that a forgotten job does not hold a slot for days.
pub const MAX_SLEEP_MS: u64 = 3_600_000;

/// The most attempts a noop job may ask to fail.
pub const MAX_FAIL_FIRST: u32 = 100;

#[derive(Debug)]
struct Check;

impl CheckParams for Check {
    fn check(&self, params: &serde_json::Value) -> Result<(), (String, String)> {
        let params: NoopParams = serde_json::from_value(params.clone())
            .map_err(|err| (String::new(), format!("invalid noop parameters: {err}")))?;
        if params.sleep_ms > MAX_SLEEP_MS {
            return Err((
                "sleep_ms".into(),
                format!("sleep_ms must be at most {MAX_SLEEP_MS} (one hour)"),
            ));
        }
        if params.fail_first > MAX_FAIL_FIRST {
            return Err((
                "fail_first".into(),
                format!("fail_first must be at most {MAX_FAIL_FIRST}"),
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Run;

#[async_trait]
impl StepHandler for Run {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
        let params: NoopParams = serde_json::from_value(ctx.job.params.clone())
            .map_err(|err| StepError::Abort(format!("invalid noop parameters: {err}")))?;
        let noop = ctx.store.tenant(&ctx.job.tenant).noop();
        noop.count_execution(&ctx.job.id).await?;
        if params.sleep_ms > 0 {
            let sleep = params.sleep_ms.min(MAX_SLEEP_MS);
            tokio::time::sleep(Duration::from_millis(sleep)).await;
        }
        if params.panic_always || params.panic_on_attempt == ctx.attempt {
            panic!("noop job panics on attempt {} as asked", ctx.attempt);
        }
        if ctx.attempt <= params.fail_first {
            return Err(StepError::Retry(format!(
                "noop job fails attempt {} of the first {} as asked",
                ctx.attempt, params.fail_first
            )));
        }
        let fresh = noop.write_effect(&ctx.job.id, ctx.now).await?;
        Ok(StepOutcome::Done(json!({ "effect_written": fresh })))
    }
}

pub fn kind() -> JobKind {
    let mut steps: BTreeMap<&'static str, Arc<dyn StepHandler>> = BTreeMap::new();
    steps.insert("run", Arc::new(Run));
    JobKind {
        name: KIND,
        first_step: "run",
        role: role(),
        steps,
        // A diagnostic that can panic and sleep on request: administrators only, unless
        // `api.tenant_noop_jobs` opens it to tenants (the API decides).
        submitters: Submitters::Administrators,
        params: Some(Arc::new(Check)),
    }
}
