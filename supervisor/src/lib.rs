//! Supervision for Stella's actors, closing the two gaps actix leaves open:
//!
//! - actix does not catch panics (a panicking handler takes the system down):
//!   [`run_guarded`] runs handler work behind a panic boundary and turns a panic into a
//!   failed attempt with the panic's message;
//! - actix's `Supervisor` restarts forever: a [`RestartTracker`] backs restarts off
//!   exponentially and, past a restart intensity (for example 5 in 10 s), quarantines
//!   the actor instead of looping.
//!
//! It also holds the observe protocol every actor answers ([`Observe`] →
//! [`ActorSnapshot`]) and the deterministic retry schedule ([`RetryPolicy`]).
//! Everything here is plain logic with time as an argument; actors use it, it uses no
//! actor.
//!
//! Layout:
//! - `boundary`: [`run_guarded`], [`Panicked`];
//! - `restart`: [`RestartPolicy`], [`RestartTracker`], [`Decision`];
//! - `retry`: [`RetryPolicy`], the backoff schedule of job attempts;
//! - `snapshot`: [`ActorSnapshot`], [`Observe`].

mod boundary;
mod restart;
mod retry;
mod snapshot;

pub use boundary::{run_guarded, Panicked};
pub use restart::{Decision, RestartPolicy, RestartState, RestartTracker};
pub use retry::RetryPolicy;
pub use snapshot::{ActorSnapshot, Observe};
