//! `stella schedules`: cron re-scans and advisory syncs; create, list, pause, resume,
//! run now, delete.

use clap::Subcommand;
use serde_json::json;

use super::http::{segment as seg, Client, ClientError};
use super::runs::COLUMNS as RUN_COLUMNS;
use super::{Run, Subcommands};
use crate::cli::args::{PageArgs, MAX_JITTER_SECS};

const COLUMNS: &[&str] = &[
    "id",
    "name",
    "cron",
    "timezone",
    "kind",
    "enabled",
    "next_fire_at",
    "last_run_id",
];

pub(crate) type Schedules = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// The tenant's schedules with their next fire times.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One schedule, by name or id.
    Get {
        /// The schedule's name or id.
        schedule: String,
    },
    /// Create a schedule.
    Create {
        /// The schedule's name, unique in the tenant.
        name: String,
        /// Cron expression: 5 fields (`minute hour day-of-month month day-of-week`), 6
        /// with seconds first, or @daily, @hourly...
        #[arg(long)]
        cron: String,
        /// IANA timezone the cron is read in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// `rescan`, `advisory-sync` or `export`.
        #[arg(long, default_value = "rescan")]
        kind: String,
        /// Target names (comma-separated); default: every target.
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// Source URLs for `advisory-sync` (comma-separated).
        #[arg(long, value_delimiter = ',')]
        sources: Vec<String>,
        /// The export profile an `export` schedule runs (its latest revision, as of each
        /// due time).
        #[arg(long)]
        profile: Option<String>,
        /// Jitter window in seconds (0 disables); default: the server's.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..=MAX_JITTER_SECS))]
        jitter_seconds: Option<i64>,
        /// Missed-fire policy: `skip` or `fire-once`.
        #[arg(long)]
        missed: Option<String>,
        /// Overlap policy: `skip` or `queue`.
        #[arg(long)]
        overlap: Option<String>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Pause a schedule.
    Pause {
        /// The schedule's name or id.
        schedule: String,
    },
    /// Resume a paused schedule.
    Resume {
        /// The schedule's name or id.
        schedule: String,
    },
    /// Run a schedule now.
    Run {
        /// The schedule's name or id.
        schedule: String,
    },
    /// Delete a schedule (its runs stay).
    Delete {
        /// The schedule's name or id.
        schedule: String,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let schedule = match self {
            Self::List { page } => client.list("/schedules", page.query(), page.all)?,
            Self::Get { schedule } => client.get(&format!("/schedules/{}", seg(schedule)), &[])?,
            Self::Create {
                name,
                cron,
                timezone,
                kind,
                targets,
                sources,
                profile,
                jitter_seconds,
                missed,
                overlap,
                paused,
            } => {
                let mut body = json!({
                    "name": name, "cron": cron, "timezone": timezone, "kind": kind,
                    "enabled": !paused,
                });
                if !targets.is_empty() {
                    body["targets"] = json!(targets);
                }
                if !sources.is_empty() {
                    body["sources"] = json!(sources);
                }
                if let Some(profile) = profile {
                    body["profile"] = json!(profile);
                }
                if let Some(jitter) = jitter_seconds {
                    body["jitter_seconds"] = (*jitter).into();
                }
                if let Some(missed) = missed {
                    body["missed"] = missed.clone().into();
                }
                if let Some(overlap) = overlap {
                    body["overlap"] = overlap.clone().into();
                }
                client.post("/schedules", &body)?
            }
            Self::Pause { schedule } => {
                client.post_empty(&format!("/schedules/{}/pause", seg(schedule)))?
            }
            Self::Resume { schedule } => {
                client.post_empty(&format!("/schedules/{}/resume", seg(schedule)))?
            }
            Self::Run { schedule } => {
                let run = client.post_empty(&format!("/schedules/{}/run", seg(schedule)))?;
                client.print(&run, RUN_COLUMNS);
                return Ok(());
            }
            Self::Delete { schedule } => {
                client.delete(&format!("/schedules/{}", seg(schedule)))?;
                return Ok(());
            }
        };
        client.print(&schedule, COLUMNS);
        Ok(())
    }
}
