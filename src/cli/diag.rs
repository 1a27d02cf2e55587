//! `stella diag`: diagnostics that exercise the runtime end to end (see `crate::diag`).

use clap::Subcommand;
use stella_config::Loaded;

use crate::cli::args::{MAX_COUNT, MAX_TENANTS, MAX_WAIT_SECS};
use crate::cli::connect::with_services;
use crate::cli::output::outln;
use crate::diag::NoopRun;

#[derive(Debug, Subcommand)]
pub(crate) enum DiagCommand {
    /// Submit noop jobs through the normal path, wait for them, print a JSON report
    /// (`submitted`, `completed`, `effects`, `executions`, `dead_lettered`, `seconds`).
    Noop {
        /// Jobs to submit.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        /// Tenants the jobs are spread over.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        tenants: u32,
        /// Each job sleeps this long.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
        sleep_ms: u64,
        /// Each job fails its first K attempts (retryable).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
        fail_first: u32,
        /// Each job panics on attempt K.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
        panic_on: u32,
        /// Each job panics on every attempt.
        #[arg(long)]
        panic_always: bool,
        /// Attempts per job before it fails.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        max_attempts: u32,
        /// Give up waiting after this long (exit code 1).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
        timeout_secs: u64,
        /// Also run workers in this process (otherwise `stella serve`/`stella worker`
        /// processes do the work).
        #[arg(long)]
        run_worker: bool,
        /// Write each job's effect in a statement of its own after the step, as steps
        /// did before effects were committed with the step's outcome (for comparison).
        #[arg(long)]
        separate_effect: bool,
        /// Do not count handler runs (`executions` stays 0): each job only stages its
        /// effect, like a peer queue's no-op job.
        #[arg(long)]
        no_execution_count: bool,
    },
}

impl DiagCommand {
    pub(crate) fn run(self, loaded: &Loaded) -> anyhow::Result<()> {
        let Self::Noop {
            count,
            tenants,
            sleep_ms,
            fail_first,
            panic_on,
            panic_always,
            max_attempts,
            timeout_secs,
            run_worker,
            separate_effect,
            no_execution_count,
        } = self;
        let run = NoopRun {
            count,
            tenants,
            params: stella_actors::diag::NoopParams {
                sleep_ms,
                fail_first,
                panic_on_attempt: panic_on,
                panic_always,
                separate_effect,
                skip_execution_count: no_execution_count,
            },
            max_attempts,
            timeout: std::time::Duration::from_secs(timeout_secs),
            run_worker,
        };
        let report = with_services(loaded, async |services| {
            crate::diag::noop(services, &run).await
        })?;
        // JSON whatever `--output` says: the report is for programs.
        outln!("{}", serde_json::to_string(&report)?);
        if report.timed_out {
            anyhow::bail!(
                "timed out after {}s with {} of {} jobs finished",
                run.timeout.as_secs(),
                report.completed + report.dead_lettered,
                report.submitted
            );
        }
        Ok(())
    }
}
