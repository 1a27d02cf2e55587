//! Stella's supervision tree and durable job runtime, generic over job kinds: it names
//! no kind, role or feature. Features implement [`Kind`] (in `stella-actors`) and a
//! process registers the kinds it runs in a [`Registry`]; this crate delivers their
//! steps from the durable mailbox, runs them behind panic boundaries under per-tenant
//! supervisors, and commits each step's outcome, staged writes and next message together.
//!
//! It closes the two gaps actix leaves open: actix does not catch panics
//! ([`run_guarded`] turns a panic into a failed attempt), and its `Supervisor` restarts
//! forever ([`RestartTracker`] backs off and quarantines past a restart intensity).
//!
//! Not here: what a job does (features), HTTP, the schedule of cron firings.
//!
//! Layout:
//! - `job/`: the kind API ([`Kind`], [`Step`], [`StepContext`], [`StepError`]), the
//!   [`Registry`], submission ([`JobRequest`], [`submit`]) and the [`StepRunner`];
//! - `tree/`: the actors, root → tenant → job, and the messages between them;
//! - `runtime/`: [`Runtime`] (consumer loops, janitor, heartbeat, outbox relay);
//! - `shared`: the state one process's runtime and tree share; `metrics`:
//!   [`RuntimeMetrics`];
//! - `boundary`: [`run_guarded`], [`Panicked`];
//! - `restart`: [`RestartPolicy`], [`RestartTracker`], [`Decision`];
//! - `retry`: [`RetryPolicy`], the backoff schedule of job attempts;
//! - `snapshot`: [`ActorSnapshot`], [`Observe`].

mod boundary;
mod job;
mod metrics;
mod restart;
mod retry;
mod runtime;
mod shared;
mod snapshot;
mod tree;

pub use boundary::{run_guarded, Panicked};
pub use job::{
    prepare, retry_policy, submit, submit_batch, Finish, InvalidParams, JobRequest, Kind, KindInfo,
    MessageHandler, Registry, Retry, RunningJob, Step, StepContext, StepError, StepMessage,
    StepOutcome, StepRunner, Submitters, STEP_MESSAGE,
};
pub use metrics::RuntimeMetrics;
pub use restart::{Decision, RestartPolicy, RestartState, RestartTracker};
pub use retry::RetryPolicy;
pub use runtime::{relay_once, Observer, Runtime, RuntimeConfig};
pub use snapshot::{ActorSnapshot, Observe};
