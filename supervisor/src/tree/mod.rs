//! The supervision tree: a root per process, a supervisor per active tenant, an actor
//! per delivery in flight. Parents start children; children report up through a
//! [`Recipient`](actix::Recipient) of a message in `messages`.

mod job_actor;
pub(crate) mod messages;
mod root;
mod tenant;

pub(crate) use root::RootSupervisor;
