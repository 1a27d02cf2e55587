//! The messages of the supervision tree, in one place so that no actor's file imports
//! another's: a parent holds its children's addresses, a child only a [`Recipient`] of
//! the message it sends up.

use actix::prelude::*;
use stella_store::mailbox::Delivery;
use stella_store::TenantId;
use tokio::sync::OwnedSemaphorePermit;

use crate::job::Finish;

/// Deliveries, each with the capacity permit it holds: to the root from the consumer
/// loops (any tenants), and from the root to a tenant supervisor (its own).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Dispatch {
    pub(crate) deliveries: Vec<(Delivery, OwnedSemaphorePermit)>,
}

/// A tenant supervisor has had no work for a while (to the root). `incarnation` tells
/// this supervisor from a later one of the same tenant.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TenantIdle {
    pub(crate) tenant: TenantId,
    pub(crate) incarnation: u64,
    pub(crate) stop: Recipient<StopIfIdle>,
}

/// Sent by the root once it routes no more work here: stop unless work arrived meanwhile.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StopIfIdle;

/// A job actor finished its delivery (to its tenant supervisor).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct JobFinished {
    pub(crate) delivery: Delivery,
    pub(crate) finish: Result<Finish, String>,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}
