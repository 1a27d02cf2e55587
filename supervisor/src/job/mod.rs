//! Durable jobs: the kind API features implement, the registry of a process's kinds,
//! submission, and the step runner.

mod kind;
mod registry;
mod runner;
mod submit;

pub use kind::{
    InvalidParams, Kind, MessageHandler, Retry, RunningJob, Step, StepContext, StepError,
    StepOutcome, Submitters,
};
pub use registry::{KindInfo, Registry};
pub use runner::{retry_policy, Finish, StepRunner};
pub use submit::{prepare, submit, submit_batch, JobRequest, StepMessage, STEP_MESSAGE};
