//! `stella runs`: runs of schedules and of drift re-evaluations, with what changed per
//! target.

use clap::Subcommand;
use serde_json::json;

use super::http::{segment as seg, Client, ClientError};
use super::{Run, Subcommands};
use crate::cli::args::PageArgs;
use crate::cli::output::{outln, Format};

pub(super) const COLUMNS: &[&str] = &["id", "trigger", "state", "due_at", "counts", "error"];

pub(crate) type Runs = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Runs, newest first.
    List {
        /// Only this schedule's runs, by name or id.
        #[arg(long)]
        schedule: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One run with its per-target results.
    Get {
        /// The run's id.
        id: String,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::List { schedule, page } => client.print(
                &client.list(
                    "/runs",
                    page.query_with(&[("schedule_id", schedule.as_ref())]),
                    page.all,
                )?,
                COLUMNS,
            ),
            Self::Get { id } => {
                let run = client.get(&format!("/runs/{}", seg(id)), &[])?;
                client.print(&run, COLUMNS);
                if client.format == Format::Table {
                    if let Some(results) = run.get("results") {
                        outln!();
                        client.print(
                            &json!({ "items": results }),
                            &["target_name", "state", "scan_id", "diff"],
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
