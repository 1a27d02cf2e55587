//! `TenantSupervisor`: one per active tenant. Runs the tenant's deliveries as job actors,
//! at most `runtime.tenant_concurrency` at once, queueing the rest.
//!
//! Handles: [`Dispatch`], [`JobFinished`], [`Observe`]. State: the queue, the running job
//! actors, a [`RestartTracker`]. A handler panic counts against the restart intensity;
//! past it the tenant is quarantined for `runtime.quarantine_secs`: it starts no work
//! (its queued deliveries stay held and kept alive, so nothing is lost or redelivered),
//! then resumes. Stops itself after `runtime.tenant_idle_secs` without work. Metrics:
//! `stella_actor_restarts_total`, `stella_actors_quarantined`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use stella_store::mailbox::Delivery;
use stella_store::TenantId;
use tokio::sync::OwnedSemaphorePermit;

use super::job_actor::{name_of, JobActor};
use super::messages::{Dispatch, JobFinished, StopIfIdle, TenantIdle};
use crate::restart::{Decision, RestartPolicy, RestartTracker};
use crate::shared::Shared;
use crate::snapshot::{ActorSnapshot, Observe};

pub(crate) struct TenantSupervisor {
    tenant: TenantId,
    incarnation: u64,
    shared: Arc<Shared>,
    root: Recipient<TenantIdle>,
    queue: VecDeque<(Delivery, OwnedSemaphorePermit)>,
    /// The running job actors' names by receipt. Their addresses are not kept: a worker
    /// may run 100,000 of them, and an address costs two allocations each.
    running: HashMap<String, String>,
    /// Given to each job actor for its [`JobFinished`], made once.
    finished: Option<Arc<Recipient<JobFinished>>>,
    tracker: RestartTracker,
    quarantined_until: Option<Instant>,
    last_active: Instant,
}

impl TenantSupervisor {
    pub(crate) fn new(
        tenant: TenantId,
        incarnation: u64,
        shared: Arc<Shared>,
        root: Recipient<TenantIdle>,
    ) -> Self {
        let s = &shared.settings;
        let policy = RestartPolicy {
            max_restarts: s.restart_max,
            within: Duration::from_secs(s.restart_within_secs),
            ..RestartPolicy::default()
        };
        Self {
            tenant,
            incarnation,
            shared,
            root,
            queue: VecDeque::new(),
            running: HashMap::new(),
            finished: None,
            tracker: RestartTracker::new(policy),
            quarantined_until: None,
            last_active: Instant::now(),
        }
    }

    fn quarantined(&mut self) -> bool {
        match self.quarantined_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                tracing::info!(tenant = %self.tenant, "quarantine over; tenant takes work again");
                self.quarantined_until = None;
                self.tracker.release();
                self.shared.metrics.quarantined.dec();
                false
            }
            None => false,
        }
    }

    /// Starts queued deliveries while the tenant has room.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let limit = self.shared.settings.tenant_concurrency as usize;
        while self.running.len() < limit && !self.quarantined() {
            let Some((delivery, permit)) = self.queue.pop_front() else {
                break;
            };
            let key = delivery.receipt.id().to_owned();
            let name = name_of(&delivery);
            let finished = self
                .finished
                .get_or_insert_with(|| Arc::new(ctx.address().recipient()))
                .clone();
            JobActor::new(self.shared.clone(), delivery, permit, finished).start();
            self.running.insert(key, name);
        }
        self.last_active = Instant::now();
    }
}

impl Actor for TenantSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Wake up regularly: to end a quarantine, and to stop when idle.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            act.pump(ctx);
            let idle = Duration::from_secs(act.shared.settings.tenant_idle_secs);
            if act.is_idle() && act.last_active.elapsed() >= idle {
                // The root decides: it stops routing here first, so no delivery can be
                // sent to a stopping actor and lost.
                act.root.do_send(TenantIdle {
                    tenant: act.tenant.clone(),
                    incarnation: act.incarnation,
                    stop: ctx.address().recipient(),
                });
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.quarantined_until.is_some() {
            self.shared.metrics.quarantined.dec();
        }
    }
}

impl TenantSupervisor {
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.running.is_empty()
    }
}

impl Handler<StopIfIdle> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, _: StopIfIdle, ctx: &mut Self::Context) {
        if self.is_idle() {
            ctx.stop();
        }
    }
}

impl Handler<Dispatch> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Dispatch, ctx: &mut Self::Context) {
        self.queue.extend(msg.deliveries);
        self.pump(ctx);
    }
}

impl Handler<JobFinished> for TenantSupervisor {
    type Result = ();

    fn handle(&mut self, msg: JobFinished, ctx: &mut Self::Context) {
        let role = msg.delivery.envelope.role.clone();
        self.running.remove(msg.delivery.receipt.id());
        self.shared.release(&role, &msg.delivery.receipt);
        drop(msg.permit);
        let panicked = match &msg.finish {
            Ok(finish) => finish.panicked().then(|| format!("{finish:?}")),
            Err(error) => {
                // Bookkeeping failed (store or mailbox unreachable): the delivery stays
                // unacknowledged and is taken over once idle.
                tracing::warn!(tenant = %self.tenant, error = %error, "step not committed; it will be redelivered");
                None
            }
        };
        match panicked {
            Some(error) => {
                self.shared
                    .metrics
                    .actor_restarts
                    .with_label_values(&["tenant"])
                    .inc();
                if let Decision::Quarantine = self.tracker.record_failure(Instant::now(), &error) {
                    if self.quarantined_until.is_none() {
                        self.shared.metrics.quarantined.inc();
                        tracing::error!(tenant = %self.tenant, "restart intensity exceeded; tenant quarantined");
                        // Told to the notifier: once per tenant, process and minute.
                        let store = self.shared.runner.store.clone();
                        let tenant = self.tenant.clone();
                        let at = chrono::Utc::now();
                        let event = stella_store::repo::NewEvent {
                            kind: "tenant.quarantined".to_owned(),
                            dedupe_key: format!(
                                "tenant.quarantined:{tenant}:{}:{}",
                                self.shared.consumer,
                                at.timestamp() / 60
                            ),
                            payload: serde_json::json!({
                                "tenant": tenant.as_str(),
                                "worker": self.shared.consumer.to_string(),
                                "error": error,
                                "quarantine_secs": self.shared.settings.quarantine_secs,
                                "severity": "high",
                            }),
                        };
                        actix::spawn(async move {
                            if let Err(err) = store.append_event(Some(&tenant), &event, at).await {
                                tracing::warn!(%tenant, error = %err, "could not record the quarantine event");
                            }
                        });
                    }
                    self.quarantined_until = Some(
                        Instant::now() + Duration::from_secs(self.shared.settings.quarantine_secs),
                    );
                }
            }
            None => self.tracker.record_success(),
        }
        self.pump(ctx);
    }
}

impl Handler<Observe> for TenantSupervisor {
    type Result = MessageResult<Observe>;

    fn handle(&mut self, _: Observe, _: &mut Self::Context) -> Self::Result {
        let state = self.tracker.state();
        let quarantined = self.quarantined_until.is_some();
        // A job actor is running one step: its name is all there is to report, and the
        // tenant has it.
        let children = self
            .running
            .values()
            .map(|name| ActorSnapshot {
                name: name.clone(),
                kind: "job".into(),
                in_flight: 1,
                ..ActorSnapshot::default()
            })
            .collect();
        MessageResult(ActorSnapshot {
            name: self.tenant.to_string(),
            kind: "tenant".into(),
            queue_depth: self.queue.len() as u64,
            in_flight: self.running.len() as u64,
            restarts: state.restarts,
            quarantined,
            last_error: state.last_error,
            children,
        })
    }
}
