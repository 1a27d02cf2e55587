//! `stella jobs`: submit (and wait for), list, show, cancel and wait for jobs.

use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use super::http::{segment as seg, Client, ClientError, ExitKind};
use super::{Run, Subcommands};
use crate::cli::args::{PageArgs, MAX_WAIT_SECS};
use crate::cli::output::{outln, Format};

const COLUMNS: &[&str] = &["id", "kind", "state", "step", "attempts", "last_error"];

pub(crate) type Jobs = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Submit a job.
    Submit {
        /// Job kind, e.g. `noop`.
        #[arg(long)]
        kind: String,
        /// Parameters as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Submitting again with the same key returns the first job; the same key with
        /// another request is refused.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Attempts before the job fails (default: the server's).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        max_attempts: Option<u32>,
        /// Wait for the job to finish (exit code 1 unless it succeeded).
        #[arg(long)]
        wait: bool,
        /// With `--wait`: give up after this many seconds (exit code 1).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
        timeout_secs: u64,
    },
    /// The tenant's jobs, newest first.
    List {
        /// Only jobs in this state: `queued`, `running`, `retrying`, `succeeded`, `failed` or
        /// `cancelled`.
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this kind.
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// A job with its steps and attempts.
    Get {
        /// The job's id.
        id: String,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// The job's id.
        id: String,
    },
    /// Wait until a job finishes (exit code 1 unless it succeeded).
    Wait {
        /// The job's id.
        id: String,
        /// Give up after this many seconds (exit code 1).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
        timeout_secs: u64,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let job = match self {
            Self::Submit {
                kind,
                params,
                idempotency_key,
                max_attempts,
                wait,
                timeout_secs,
            } => {
                let params: Value = serde_json::from_str(params).map_err(|err| {
                    ClientError::new(ExitKind::Invalid, format!("--params is not JSON: {err}"))
                })?;
                let job = client.post(
                    "/jobs",
                    &json!({ "kind": kind, "params": params, "idempotency_key": idempotency_key, "max_attempts": max_attempts }),
                )?;
                match (wait, job.get("id").and_then(Value::as_str)) {
                    (true, Some(id)) => wait_job(client, id, Duration::from_secs(*timeout_secs))?,
                    _ => job,
                }
            }
            Self::List { state, kind, page } => client.list(
                "/jobs",
                page.query_with(&[("state", state.as_ref()), ("kind", kind.as_ref())]),
                page.all,
            )?,
            Self::Get { id } => {
                let job = client.get(&format!("/jobs/{}", seg(id)), &[])?;
                client.print(&job, COLUMNS);
                if client.format == Format::Table {
                    outln!();
                    client.print(
                        &json!({ "items": job.get("events").cloned().unwrap_or_default() }),
                        &[
                            "seq",
                            "from_state",
                            "to_state",
                            "step",
                            "attempt",
                            "error",
                            "at",
                        ],
                    );
                }
                return Ok(());
            }
            Self::Cancel { id } => client.post_empty(&format!("/jobs/{}/cancel", seg(id)))?,
            Self::Wait { id, timeout_secs } => {
                wait_job(client, id, Duration::from_secs(*timeout_secs))?
            }
        };
        client.print(&job, COLUMNS);
        Ok(())
    }
}

/// Waits for a job to finish, following its event stream (polling where the server offers
/// none), with a progress spinner on a terminal; a job that did not succeed is printed
/// whole and is exit code 1.
fn wait_job(client: &Client, id: &str, timeout: Duration) -> Result<Value, ClientError> {
    let (job, state) = if client.follow(
        &format!("/jobs/{}/stream", seg(id)),
        &format!("job {id}"),
        timeout,
    )? {
        let job = client.get(&format!("/jobs/{}", seg(id)), &[])?;
        let state = job["state"].as_str().unwrap_or("").to_owned();
        (job, state)
    } else {
        client.wait_until(
            &format!("/jobs/{}", seg(id)),
            &format!("job {id}"),
            &["succeeded", "failed", "cancelled"],
            (Duration::from_millis(250), timeout),
            |job| {
                let state = job.get("state").and_then(Value::as_str).unwrap_or("");
                let attempts = job.get("attempts").and_then(Value::as_u64).unwrap_or(0);
                (state.to_owned(), format!("{state} (attempt {attempts})"))
            },
        )?
    };
    if state != "succeeded" {
        client.print(&job, &[]);
        let error = job.get("last_error").and_then(Value::as_str).unwrap_or("");
        return Err(ClientError::new(
            ExitKind::Failure,
            format!("job {id} {state}: {error}"),
        ));
    }
    Ok(job)
}
