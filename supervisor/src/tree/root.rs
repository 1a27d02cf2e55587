//! `RootSupervisor`: one per process. Routes each delivery to its tenant's supervisor,
//! starting one on demand, and forgets tenant supervisors that stop when idle.
//!
//! Handles: [`Dispatch`], [`TenantIdle`], [`Observe`]. State: the tenant supervisors by
//! tenant. An idle tenant supervisor asks to stop; the root first removes it from its
//! routes, then tells it to stop if still idle, so every delivery reaches a live actor
//! (messages from the root arrive in order). Restart: none needed; it holds no work.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use futures::future::join_all;
use stella_store::TenantId;

use super::messages::{Dispatch, StopIfIdle, TenantIdle};
use super::tenant::TenantSupervisor;
use crate::shared::Shared;
use crate::snapshot::{ActorSnapshot, Observe};

pub(crate) struct RootSupervisor {
    shared: Arc<Shared>,
    /// Each live tenant supervisor, with its incarnation.
    tenants: HashMap<TenantId, (Addr<TenantSupervisor>, u64)>,
    started: u64,
}

impl RootSupervisor {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            tenants: HashMap::new(),
            started: 0,
        }
    }
}

impl Actor for RootSupervisor {
    type Context = Context<Self>;
}

impl Handler<Dispatch> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Dispatch, ctx: &mut Self::Context) {
        // One message per tenant, in the order the tenants first appear in the batch (the
        // mailbox interleaves tenants rank by rank, so that order is already fair).
        let mut by_tenant: Vec<(TenantId, Vec<_>)> = Vec::new();
        for (delivery, permit) in msg.deliveries {
            let tenant = &delivery.envelope.tenant;
            match by_tenant.iter_mut().find(|(t, _)| t == tenant) {
                Some((_, batch)) => batch.push((delivery, permit)),
                None => by_tenant.push((tenant.clone(), vec![(delivery, permit)])),
            }
        }
        for (tenant, deliveries) in by_tenant {
            let addr = match self.tenants.get(&tenant) {
                Some((addr, _)) if addr.connected() => addr.clone(),
                _ => {
                    self.started += 1;
                    let addr = TenantSupervisor::new(
                        tenant.clone(),
                        self.started,
                        self.shared.clone(),
                        ctx.address().recipient(),
                    )
                    .start();
                    self.tenants.insert(tenant, (addr.clone(), self.started));
                    addr
                }
            };
            addr.do_send(Dispatch { deliveries });
        }
    }
}

impl Handler<TenantIdle> for RootSupervisor {
    type Result = ();

    fn handle(&mut self, msg: TenantIdle, _: &mut Self::Context) {
        if self.tenants.get(&msg.tenant).map(|(_, n)| *n) == Some(msg.incarnation) {
            self.tenants.remove(&msg.tenant);
        }
        msg.stop.do_send(StopIfIdle);
    }
}

impl Handler<Observe> for RootSupervisor {
    type Result = ResponseFuture<ActorSnapshot>;

    fn handle(&mut self, _: Observe, _: &mut Self::Context) -> Self::Result {
        let mut tenants: Vec<_> = self.tenants.iter().collect();
        tenants.sort_by(|a, b| a.0.cmp(b.0));
        let children: Vec<_> = tenants.iter().map(|(_, (a, _))| a.send(Observe)).collect();
        let consumer = self.shared.consumer.to_string();
        let held = self
            .shared
            .held_by_role()
            .values()
            .map(Vec::len)
            .sum::<usize>() as u64;
        Box::pin(async move {
            ActorSnapshot {
                name: consumer,
                kind: "root".into(),
                in_flight: held,
                children: join_all(children).await.into_iter().flatten().collect(),
                ..ActorSnapshot::default()
            }
        })
    }
}
