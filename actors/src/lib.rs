//! Stella's actors and durable job runtime.
//!
//! Per process: a root supervisor routes each delivery to its tenant's supervisor
//! (started on demand, stopped when idle), which runs it as a job actor, at most
//! `tenant_concurrency` at once. Deliveries come from the durable mailbox, one consumer
//! loop per role, and are acknowledged only after the step's outcome is committed
//! (`job.rs`). A janitor per role promotes delayed entries and takes over abandoned
//! ones; a heartbeat keeps held entries and the consumer name alive; the outbox relay
//! moves committed messages into the mailbox.
//!
//! Not here: pure domain logic (it is called by step handlers) and HTTP.
//!
//! Layout:
//! - `runtime`: [`Runtime`], the loops, [`ROLES`];
//! - `root`, `tenant`, `job_actor`: the supervision tree, one actor per file;
//! - `job`: durable steps ([`submit`], [`submit_batch`], [`StepRunner`]);
//! - `handler`: the step handler API ([`StepHandler`], [`Handlers`]);
//! - `fetcher`: importing advisory collections into the store;
//! - `noop`: the built-in `noop` job kind;
//! - `outbound`: the guard every URL fetched on someone's behalf goes through;
//! - `scan`: the `scan` job kind (analyze → evaluate → seal) and the advisory index cache;
//! - `relay`: the outbox relay;
//! - `metrics`: [`RuntimeMetrics`].

pub mod fetcher;
mod handler;
mod job;
mod job_actor;
mod metrics;
pub mod noop;
pub mod outbound;
mod relay;
mod root;
mod runtime;
pub mod scan;
mod shared;
pub mod sync;
mod tenant;

pub use handler::{
    CheckParams, Handlers, JobKind, MessageHandler, StepContext, StepError, StepHandler,
    StepOutcome, Submitters,
};
pub use job::{
    prepare, retry_policy, submit, submit_batch, Finish, JobRequest, StepMessage, StepRunner,
    STEP_MESSAGE,
};
pub use metrics::RuntimeMetrics;
pub use relay::relay_once;
pub use runtime::{Observer, Runtime, RuntimeConfig, ROLES};
