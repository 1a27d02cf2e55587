//! Running one delivered step so that a crash at any point resumes at the last committed
//! step and no effect happens twice.
//!
//! A step message carries `{job_id, step}` and the attempt it asks for. Running it:
//! 1. try to start the attempt the delivery asks for with a compare-and-set on state,
//!    step and attempt count (the common case, no read needed); if that does not match,
//!    load the job and decide from its committed state whether this delivery is current
//!    (start the attempt), a redelivery of a run whose process died (take it over), one
//!    whose failure was committed but not yet dead-lettered (finish that), or stale (ack);
//! 2. starts, finishes and the reads go through the store's group commit, so concurrent
//!    deliveries share transactions;
//! 3. run the step behind a panic boundary, while watching for a cancel;
//! 4. commit the outcome together with the writes the step staged and the next message
//!    (outbox), then acknowledge.

use std::time::Duration;

use chrono::{DateTime, Utc};
use stella_store::mailbox::{Delivery, Mailbox};
use stella_store::repo::{Effect, Job, JobState, Transition};
use stella_store::{telemetry, JobId, Store, StoreError};
use tracing::Instrument;

use super::kind::{MessageHandler, Outcome, Retry, RunningJob, StepContext, StepError};
use super::registry::Registry;
use super::submit::{step_message, StepMessage, STEP_MESSAGE};
use crate::boundary::run_guarded;
use crate::retry::RetryPolicy;

/// How a delivery ended, for the supervisor's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The step ran and its outcome is committed.
    Completed,
    /// The attempt failed; a retry is scheduled.
    Retrying { error: String, panicked: bool },
    /// The job failed for good and the delivery is dead-lettered.
    Failed { error: String, panicked: bool },
    /// Nothing to do (the step was already done, or superseded).
    Stale,
    /// The job was cancelled while its step ran; the step was stopped.
    Cancelled,
}

/// When a running step first looks whether its job was cancelled, and the longest it
/// waits between looks: the wait doubles from the first to the last, so a short step
/// reads nothing extra and a process holding many long steps (100,000 sleeping ones)
/// reads each at most every 8 s, through the group commit.
const CANCEL_FIRST_CHECK: Duration = Duration::from_millis(500);
const CANCEL_MAX_CHECK: Duration = Duration::from_secs(8);

/// Returns once the job is no longer running at `attempts` (cancelled through the API,
/// from any process). Held once per running step: between looks it is its timer and a
/// few words (`a_cancel_watcher_holds_little_between_looks`).
async fn until_cancelled(jobs: &stella_store::repo::Jobs<'_>, id: &JobId, attempts: u32) {
    let mut wait = CANCEL_FIRST_CHECK;
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(CANCEL_MAX_CHECK);
        match jobs.get_grouped(id).await {
            Ok(job) if job.state == JobState::Running && job.attempts == attempts => {}
            Ok(_) | Err(StoreError::NotFound(_)) => return,
            // A store hiccup is no reason to stop a step: look again next time.
            Err(_) => {}
        }
    }
}

impl Finish {
    pub fn panicked(&self) -> bool {
        matches!(
            self,
            Finish::Retrying { panicked: true, .. } | Finish::Failed { panicked: true, .. }
        )
    }
}

/// What the runtime needs to run a step.
#[derive(Debug, Clone)]
pub struct StepRunner {
    pub store: Store,
    pub mailbox: std::sync::Arc<dyn Mailbox>,
    pub registry: Registry,
    pub retry: RetryPolicy,
}

enum Plan {
    Start(Transition),
    TakeOver(Transition),
    DeadLetter(String),
    Stale,
}

enum Started {
    Running(Box<Job>),
    Finished(Finish),
}

/// The start [`plan`] makes for a job waiting for `attempt` of `step`, guessing its state
/// from the attempt: a first attempt waits `queued`, a retry `retrying`. The
/// compare-and-set holds exactly when `plan` would have made this same transition.
fn optimistic_start(step: &str, attempt: u32) -> Transition {
    let from = if attempt == 0 {
        JobState::Queued
    } else {
        JobState::Retrying
    };
    let mut start = Transition::new(from, JobState::Running);
    start.expect_step = Some(step.to_owned());
    start.expect_attempts = Some(attempt);
    start.count_attempt = true;
    start
}

fn plan(job: &Job, step: &str, attempt: u32) -> Plan {
    if job.step != step {
        return Plan::Stale;
    }
    match job.state {
        JobState::Queued | JobState::Retrying if job.attempts == attempt => {
            let mut start = Transition::new(job.state, JobState::Running);
            start.expect_step = Some(step.to_owned());
            start.expect_attempts = Some(attempt);
            start.count_attempt = true;
            Plan::Start(start)
        }
        JobState::Running if job.attempts == attempt + 1 => {
            let mut take = Transition::new(JobState::Running, JobState::Running);
            take.expect_step = Some(step.to_owned());
            take.expect_attempts = Some(attempt + 1);
            Plan::TakeOver(take)
        }
        JobState::Failed if job.attempts == attempt + 1 => Plan::DeadLetter(
            job.last_error
                .clone()
                .unwrap_or_else(|| "job failed".into()),
        ),
        _ => Plan::Stale,
    }
}

impl StepRunner {
    /// Runs one delivered step to a committed end. A store error leaves the delivery
    /// unacknowledged: it is taken over and retried once its idle time passes.
    pub async fn run(
        &self,
        delivery: &Delivery,
        now: impl Fn() -> DateTime<Utc>,
    ) -> Result<Finish, StoreError> {
        let envelope = &delivery.envelope;
        let role = &envelope.role;
        if envelope.kind != STEP_MESSAGE {
            if let Some(handler) = self.registry.message(&envelope.kind) {
                // Boxed: held inline, this path's future (432 bytes) set the size of
                // every running step's future (`-Zprint-type-sizes`).
                return Box::pin(self.run_message(handler.as_ref(), delivery, now)).await;
            }
        }
        // Three calls, so that a job in flight holds only what its running step needs:
        // starting (the message, the compare-and-set) and committing (the transition,
        // the outcome) run in futures of their own, boxed, that exist only meanwhile.
        let (running, params) = match Box::pin(self.start(delivery, &now))
            .instrument(telemetry::span(|| tracing::info_span!("store.start")))
            .await?
        {
            Started::Running(job) => {
                // While the step runs, only what it reads of the job is kept; the
                // parameters go to the step as text, which it decodes and drops.
                let mut job = *job;
                let params: Box<str> = std::mem::take(&mut job.params).to_string().into();
                (RunningJob::from(job), params)
            }
            Started::Finished(finish) => return Ok(finish),
        };
        let Some((outcome, effects)) = self.step(&running, params, now()).await else {
            // The job was cancelled (or otherwise ended) while the step ran: the step was
            // dropped at its next await point, nothing of it is committed, and the
            // delivery is done.
            tracing::info!(tenant = %envelope.tenant, job_id = %running.id, step = %running.step, "running step cancelled");
            self.mailbox
                .ack(role, std::slice::from_ref(&delivery.receipt))
                .await?;
            return Ok(Finish::Cancelled);
        };
        // The step's outcome and effects, committed (in a group commit with others').
        Box::pin(self.commit(delivery, &running, outcome, effects, now()))
            .instrument(telemetry::span(|| tracing::info_span!("store.commit")))
            .await
    }

    /// Runs the job's current step behind the panic boundary while watching for a
    /// cancel. `None`: the job was cancelled meanwhile. The step's parameters go to the
    /// handler as text, which it decodes and drops: while the step runs only the typed
    /// parameters exist (a parsed JSON object costs far more than its text, and a worker
    /// holds one per job in flight). A job that fails for good reads them back for its
    /// kind's `failed` hook (see `fail_attempt`).
    async fn step(
        &self,
        running: &RunningJob,
        params: Box<str>,
        now: DateTime<Utc>,
    ) -> Option<(Result<Outcome, (StepError, bool)>, Vec<Effect>)> {
        let Some(kind) = self.registry.erased(&running.kind) else {
            let error = StepError::abort(format!(
                "no handler for step {:?} of job kind {:?}",
                running.step, running.kind
            ));
            return Some((Err((error, false)), Vec::new()));
        };
        let jobs = self.store.tenant(&running.tenant).jobs();
        let (ran, effects) = {
            let mut ctx = StepContext::new(&self.store, running, running.attempts, now);
            let work = run_guarded(kind.run(&running.step, params, &mut ctx));
            let cancelled = until_cancelled(&jobs, &running.id, running.attempts);
            let ran = tokio::select! {
                result = work => Some(result),
                () = cancelled => None,
            };
            (ran, ctx.take_effects())
        };
        let outcome = match ran? {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(err)) => Err((err, false)),
            Err(panic) => Err((StepError::retry(panic.to_string()), true)),
        };
        Some((outcome, effects))
    }

    /// Commits a step's outcome with the writes it staged and its next message, then
    /// acknowledges the delivery.
    async fn commit(
        &self,
        delivery: &Delivery,
        running: &RunningJob,
        outcome: Result<Outcome, (StepError, bool)>,
        effects: Vec<Effect>,
        at: DateTime<Utc>,
    ) -> Result<Finish, StoreError> {
        let role = &delivery.envelope.role;
        let jobs = self.store.tenant(&running.tenant).jobs();
        let mut done = match &outcome {
            Ok(Outcome::Done(_)) => Transition::new(JobState::Running, JobState::Succeeded),
            Ok(Outcome::Next { .. }) => Transition::new(JobState::Running, JobState::Queued),
            Err(_) => Transition::new(JobState::Running, JobState::Retrying),
        };
        done.expect_step = Some(running.step.clone());
        done.expect_attempts = Some(running.attempts);
        let finish = match outcome {
            Ok(Outcome::Done(result)) => {
                done.result = Some(result);
                done.effects = effects;
                jobs.transition_grouped(&running.id, &done, &[], at).await?;
                Finish::Completed
            }
            Ok(Outcome::Next {
                step,
                role: next_role,
                not_before,
            }) => {
                done.step = Some(step.to_owned());
                done.effects = effects;
                done.not_before = not_before;
                let next = step_message(
                    &running.id,
                    step,
                    next_role.as_str(),
                    0,
                    not_before.map_or(at, |t| t.max(at)),
                );
                jobs.transition_grouped(&running.id, &done, &[next], at)
                    .await?;
                Finish::Completed
            }
            Err((err, panicked)) => {
                // Staged writes of a failed attempt are dropped with it.
                drop(effects);
                // Boxed: failures are the rare path.
                let failed =
                    Box::pin(self.fail_attempt(delivery, running, done, err, panicked, at));
                match failed.await? {
                    finish @ Finish::Failed { .. } => return Ok(finish),
                    finish => finish,
                }
            }
        };
        self.mailbox
            .ack(role, std::slice::from_ref(&delivery.receipt))
            .await?;
        Ok(finish)
    }

    /// Starts the attempt a step message asks for, or says how the delivery ends without
    /// running (stale, finished, not a step message).
    async fn start(
        &self,
        delivery: &Delivery,
        now: &impl Fn() -> DateTime<Utc>,
    ) -> Result<Started, StoreError> {
        let envelope = &delivery.envelope;
        let message: StepMessage = match envelope.payload.decode() {
            Ok(message) if envelope.kind == STEP_MESSAGE => message,
            _ => {
                let error = format!(
                    "not a job step message (kind {:?}, payload {})",
                    envelope.kind, envelope.payload
                );
                self.mailbox.dead_letter(delivery, &error, now()).await?;
                return Ok(Started::Finished(Finish::Failed {
                    error,
                    panicked: false,
                }));
            }
        };
        let jobs = self.store.tenant(&envelope.tenant).jobs();
        let attempt = envelope.attempt;
        // The common case first: the job waits for exactly this attempt, so start it
        // without reading it (the compare-and-set checks all plan() would). Anything
        // else (the start lost, a take-over, a stale or unknown job) is decided from the
        // committed job below.
        let guess = optimistic_start(&message.step, attempt);
        match jobs
            .transition_grouped(&message.job_id, &guess, &[], now())
            .await
        {
            Ok(job) => Ok(Started::Running(Box::new(job))),
            Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {
                // Boxed: the rare path stays out of line.
                Box::pin(self.start_from_committed(delivery, &message, now)).await
            }
            Err(err) => Err(err),
        }
    }

    /// Commits a failed attempt: a retry after its back-off, or the job's failure and its
    /// delivery dead-lettered. Returns `Finish::Failed` only when the delivery is already
    /// dead-lettered (nothing left to acknowledge).
    async fn fail_attempt(
        &self,
        delivery: &Delivery,
        running: &RunningJob,
        mut done: Transition,
        err: StepError,
        panicked: bool,
        at: DateTime<Utc>,
    ) -> Result<Finish, StoreError> {
        let envelope = &delivery.envelope;
        let role = &envelope.role;
        let jobs = self.store.tenant(&envelope.tenant).jobs();
        let error = err.to_string();
        if let Some(source) = std::error::Error::source(&err) {
            tracing::debug!(tenant = %envelope.tenant, job_id = %running.id, step = %running.step, error = %error, source = %source, "step failed");
        }
        done.error = Some(error.clone());
        let left = running.attempts < running.max_attempts;
        let delay = match err.retry_kind() {
            Retry::Backoff if left => self.retry.delay(
                &format!("{}:{}", running.id, running.step),
                running.attempts,
            ),
            // The other side's wait, but never longer than the runtime's own
            // longest back-off: a `Retry-After` of a month must not park a job.
            Retry::After(after) if left => Some(after.min(self.retry.max_delay)),
            _ => None,
        };
        let finish = match delay {
            Some(delay) => {
                let not_before = at + chrono::Duration::from_std(delay).unwrap_or_default();
                done.not_before = Some(not_before);
                let next = step_message(
                    &running.id,
                    &running.step,
                    role.as_str(),
                    running.attempts,
                    not_before,
                );
                jobs.transition_grouped(&running.id, &done, &[next], at)
                    .await?;
                Finish::Retrying { error, panicked }
            }
            None => {
                done.to = JobState::Failed;
                // The running step kept only what it reads of the job; the hook gets
                // the job as committed, parameters included (they never change after
                // submit).
                let committed = jobs.get_grouped(&running.id).await?;
                if let Some(kind) = self.registry.erased(&running.kind) {
                    done.effects = kind.failed(&committed, &error);
                }
                done.effects.extend(dead_lettered(&committed, &error));
                jobs.transition_grouped(&running.id, &done, &[], at).await?;
                let reason = format!("job failed after {} attempts: {error}", running.attempts);
                self.mailbox.dead_letter(delivery, &reason, at).await?;
                return Ok(Finish::Failed { error, panicked });
            }
        };
        Ok(finish)
    }

    /// Reads the committed job and acts on the plan for this delivery: starts or takes
    /// over the attempt, or ends the delivery (stale, unknown job, committed failure).
    async fn start_from_committed(
        &self,
        delivery: &Delivery,
        message: &StepMessage,
        now: &impl Fn() -> DateTime<Utc>,
    ) -> Result<Started, StoreError> {
        let envelope = &delivery.envelope;
        let role = &envelope.role;
        let jobs = self.store.tenant(&envelope.tenant).jobs();
        let job = match jobs.get_grouped(&message.job_id).await {
            Ok(job) => job,
            Err(StoreError::NotFound(_)) => {
                tracing::warn!(tenant = %envelope.tenant, job_id = %message.job_id, "step message for an unknown job");
                self.mailbox
                    .ack(role, std::slice::from_ref(&delivery.receipt))
                    .await?;
                return Ok(Started::Finished(Finish::Stale));
            }
            Err(err) => return Err(err),
        };
        match plan(&job, &message.step, envelope.attempt) {
            Plan::Stale => {
                self.mailbox
                    .ack(role, std::slice::from_ref(&delivery.receipt))
                    .await?;
                Ok(Started::Finished(Finish::Stale))
            }
            Plan::DeadLetter(error) => {
                self.mailbox.dead_letter(delivery, &error, now()).await?;
                Ok(Started::Finished(Finish::Failed {
                    error,
                    panicked: false,
                }))
            }
            Plan::Start(change) | Plan::TakeOver(change) => {
                match jobs.transition_grouped(&job.id, &change, &[], now()).await {
                    Ok(job) => Ok(Started::Running(Box::new(job))),
                    // Another delivery of the same attempt won the race: it runs the step.
                    Err(StoreError::Conflict(_)) => {
                        self.mailbox
                            .ack(role, std::slice::from_ref(&delivery.receipt))
                            .await?;
                        Ok(Started::Finished(Finish::Stale))
                    }
                    Err(err) => Err(err),
                }
            }
        }
    }

    /// A plain message: handled, then acknowledged; failures retry with the same
    /// back-off as job steps, then go to the dead letters.
    async fn run_message(
        &self,
        handler: &dyn MessageHandler,
        delivery: &Delivery,
        now: impl Fn() -> DateTime<Utc>,
    ) -> Result<Finish, StoreError> {
        let envelope = &delivery.envelope;
        let (error, panicked) = match run_guarded(handler.handle(envelope)).await {
            Ok(Ok(())) => {
                self.mailbox
                    .ack(&envelope.role, std::slice::from_ref(&delivery.receipt))
                    .await?;
                return Ok(Finish::Completed);
            }
            Ok(Err(err)) => (err, false),
            Err(panic) => (StepError::retry(panic.to_string()), true),
        };
        let attempt = envelope.attempt + 1;
        let delay = match error.retry_kind() {
            Retry::Backoff => self.retry.delay(&envelope.idempotency_key, attempt),
            Retry::After(after) if attempt < self.retry.max_attempts => {
                Some(after.min(self.retry.max_delay))
            }
            _ => None,
        };
        let at = now();
        let error = error.to_string();
        match delay {
            Some(delay) => {
                let next = envelope.next_attempt(
                    at + chrono::Duration::from_std(delay).unwrap_or_default(),
                    at,
                );
                self.mailbox.retry_later(delivery, &next, at).await?;
                Ok(Finish::Retrying { error, panicked })
            }
            None => {
                let reason = format!("message failed after {attempt} attempts: {error}");
                self.mailbox.dead_letter(delivery, &reason, at).await?;
                Ok(Finish::Failed { error, panicked })
            }
        }
    }

    /// Records the failure of a job whose delivery the mailbox dead-lettered after too
    /// many deliveries (its runners kept dying).
    pub async fn fail_abandoned(
        &self,
        envelope: &stella_store::mailbox::Envelope,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Ok(message) = envelope.payload.decode::<StepMessage>() else {
            return Ok(());
        };
        let jobs = self.store.tenant(&envelope.tenant).jobs();
        let job = match jobs.get(&message.job_id).await {
            Ok(job) => job,
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        if job.state.is_terminal() || job.step != message.step {
            return Ok(());
        }
        let mut fail = Transition::new(job.state, JobState::Failed);
        fail.expect_attempts = Some(job.attempts);
        fail.error = Some(reason.to_owned());
        if !job.state.can_become(JobState::Failed) {
            fail.from = job.state;
            fail.to = JobState::Cancelled;
        } else {
            if let Some(kind) = self.registry.erased(&job.kind) {
                fail.effects = kind.failed(&job, reason);
            }
            fail.effects.extend(dead_lettered(&job, reason));
        }
        match jobs.transition(&job.id, &fail, &[], now).await {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// The default retry schedule from settings.
pub fn retry_policy(settings: &stella_config::RuntimeSettings) -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(settings.retry_min_delay_ms),
        factor: 2.0,
        max_delay: Duration::from_millis(settings.retry_max_delay_ms),
        max_attempts: settings.max_attempts,
    }
}

/// The `job.dead_lettered` event of a job that failed for good, for the notifier; none
/// for a `notify` job itself (its failure shows in its delivery, and a broken channel
/// must not feed notifications about itself).
fn dead_lettered(job: &Job, error: &str) -> Option<stella_store::repo::Effect> {
    (job.kind != "notify").then(|| {
        stella_store::repo::Effect::Event(stella_store::repo::NewEvent {
            kind: "job.dead_lettered".to_owned(),
            dedupe_key: format!("job.dead_lettered:{}:{}", job.tenant, job.id),
            payload: serde_json::json!({
                "job_id": job.id.as_str(),
                "job_kind": job.kind,
                "step": job.step,
                "attempts": job.attempts,
                "error": error,
            }),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker holds one cancel watcher per running step (100,000 of them in the
    /// memory benchmark): between looks it is its timer and a few words.
    #[tokio::test]
    async fn a_cancel_watcher_holds_little_between_looks() {
        let db = stella_test_harness::sqlite().await;
        let tenant = stella_store::TenantId::parse("memory").unwrap();
        let jobs = db.store.tenant(&tenant).jobs();
        let id = JobId::generate();
        let watcher = until_cancelled(&jobs, &id, 1);
        let sleep = std::mem::size_of_val(&tokio::time::sleep(CANCEL_FIRST_CHECK));
        let size = std::mem::size_of_val(&watcher);
        eprintln!("the cancel watcher's future: {size} bytes (a timer: {sleep})");
        assert!(
            size <= sleep + 64,
            "the cancel watcher's future is {size} bytes"
        );
    }
}
