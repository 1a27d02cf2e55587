//! `JobActor`: one per delivery in flight. Runs the delivered job step to a committed end
//! (see `job.rs`), reports how it finished to its tenant supervisor, and stops.
//!
//! Handles: nothing; its tenant supervisor reports it in [`Observe`](crate::snapshot::Observe)
//! (a worker holds up to `runtime.concurrency` of these, so each holds no more than its
//! step needs: no address kept by its parent, one shared recipient for the report). State:
//! the delivery and its capacity permit. Restart: none; a failed step is retried through
//! the mailbox, not by restarting the actor. Metrics: `stella_job_executions_total`,
//! `stella_job_step_duration_seconds`.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::Utc;
use stella_store::mailbox::Delivery;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::messages::JobFinished;
use crate::boundary::run_guarded;
use crate::job::Finish;
use crate::shared::Shared;

pub(crate) struct JobActor {
    shared: Arc<Shared>,
    /// Boxed: the actor keeps only the pointer once its step has taken the delivery.
    delivery: Option<Box<Delivery>>,
    permit: Option<OwnedSemaphorePermit>,
    /// The tenant supervisor's, shared by its job actors.
    supervisor: Arc<Recipient<JobFinished>>,
}

impl JobActor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
        supervisor: Arc<Recipient<JobFinished>>,
    ) -> Self {
        Self {
            shared,
            delivery: Some(Box::new(delivery)),
            permit: Some(permit),
            supervisor,
        }
    }
}

/// How a job actor is named in the supervision tree: its job, or its message's id.
pub(crate) fn name_of(delivery: &Delivery) -> String {
    delivery
        .envelope
        .job_id
        .as_ref()
        .map_or_else(|| delivery.envelope.id.clone(), ToString::to_string)
}

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(delivery) = self.delivery.take() else {
            ctx.stop();
            return;
        };
        let shared = self.shared.clone();
        let started = Instant::now();
        // With `otlp_endpoint` set, one span per delivery, a child of the sender's (the
        // API request that submitted the job, or the step before), so a job's steps on
        // any process join one trace. Without it, no span: nothing per delivery is paid
        // for traces nobody exports.
        let span = stella_store::telemetry::span(|| {
            let envelope = &delivery.envelope;
            let step = step_of(&delivery);
            let span = tracing::info_span!(
                "job.step",
                otel.name = %if step.is_empty() { envelope.kind.as_str() } else { step.as_str() },
                tenant = %envelope.tenant,
                role = %envelope.role,
                kind = %envelope.kind,
                step = %step,
                job_id = %name_of(&delivery),
                attempt = envelope.attempt,
            );
            if let Some(traceparent) = &envelope.trace {
                stella_store::telemetry::adopt(&span, traceparent);
            }
            span
        });
        let work = async move {
            // The whole step, bookkeeping included, runs behind the boundary: a bug
            // anywhere fails this delivery, never the arbiter.
            let result = run_guarded(shared.runner.run(&delivery, Utc::now)).await;
            (delivery, result)
        }
        .instrument(span);
        ctx.spawn(
            work.into_actor(self)
                .map(move |(delivery, result), act, ctx| {
                    let finish = match result {
                        Ok(Ok(finish)) => Ok(finish),
                        Ok(Err(err)) => Err(err.to_string()),
                        Err(panic) => Err(panic.to_string()),
                    };
                    let kind = job_kind(&delivery);
                    let outcome = match &finish {
                        Ok(Finish::Completed) => "completed",
                        Ok(Finish::Retrying { .. }) => "retrying",
                        Ok(Finish::Failed { .. }) => "failed",
                        Ok(Finish::Stale) => "stale",
                        Ok(Finish::Cancelled) => "cancelled",
                        Err(_) => "error",
                    };
                    act.shared
                        .metrics
                        .executions
                        .with_label_values(&[kind.as_str(), outcome])
                        .inc();
                    if let Ok(Finish::Failed { .. }) = &finish {
                        act.shared
                            .metrics
                            .dead_letters
                            .with_label_values(&[delivery.envelope.role.as_str()])
                            .inc();
                    }
                    act.shared
                        .metrics
                        .step_seconds
                        .with_label_values(&[kind.as_str(), step_of(&delivery).as_str()])
                        .observe(started.elapsed().as_secs_f64());
                    act.supervisor.do_send(JobFinished {
                        delivery: *delivery,
                        finish,
                        permit: act.permit.take(),
                    });
                    ctx.stop();
                }),
        );
    }
}

fn job_kind(delivery: &Delivery) -> String {
    delivery.envelope.kind.clone()
}

fn step_of(delivery: &Delivery) -> String {
    #[derive(serde::Deserialize)]
    struct Step {
        step: Option<String>,
    }
    delivery
        .envelope
        .payload
        .decode::<Step>()
        .ok()
        .and_then(|s| s.step)
        .unwrap_or_default()
}
