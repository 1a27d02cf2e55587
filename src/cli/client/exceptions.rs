//! `stella exceptions`: request a waiver for a finding until a date, have another
//! identity approve or reject it, revoke it, and list what is about to lapse.

use clap::Subcommand;
use serde_json::json;

use super::http::{segment, Client, ClientError};
use super::{Run, Subcommands};
use crate::cli::args::PageArgs;

const COLUMNS: &[&str] = &[
    "id",
    "status",
    "vulnerability",
    "package",
    "target",
    "type",
    "expires_at",
    "requested_by",
    "decided_by",
];

pub(crate) type Exceptions = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Request an exception (`policy:author`); another identity decides it.
    Request {
        /// The vulnerability id (or an alias) to waive.
        #[arg(long)]
        vulnerability: String,
        /// Only this package: a package URL without version (`pkg:npm/left-pad`).
        #[arg(long)]
        package: Option<String>,
        /// Only scans of this target.
        #[arg(long)]
        target: Option<String>,
        /// Why it is waived.
        #[arg(long = "type", value_parser = [
            "false_positive", "not_affected", "mitigated", "accepted_risk", "fix_pending",
        ])]
        kind: String,
        /// The justification: at least a sentence.
        #[arg(long)]
        justification: String,
        /// When it stops applying (RFC 3339), at most a year ahead.
        #[arg(
            long,
            conflicts_with = "expires_in_days",
            required_unless_present = "expires_in_days"
        )]
        expires_at: Option<String>,
        /// Or: this many days from now.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=366))]
        expires_in_days: Option<u32>,
    },
    /// The tenant's exceptions, newest first.
    List {
        /// `requested`, `active`, `rejected`, `expired` or `revoked`.
        #[arg(long)]
        status: Option<String>,
        /// Only active exceptions that lapse within this many days.
        #[arg(long)]
        expiring_within_days: Option<u32>,
        /// Only exceptions of this vulnerability id.
        #[arg(long)]
        vulnerability: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One exception.
    Get {
        /// The exception's id.
        id: String,
    },
    /// Approve a requested exception; it applies at once (`policy:approve`, not its
    /// requester).
    Approve(Decide),
    /// Reject a requested exception, saying why (`policy:approve`).
    Reject(Decide),
    /// End an active exception before its expiry, saying why (`policy:approve`).
    Revoke(Decide),
}

#[derive(Debug, clap::Args)]
pub(crate) struct Decide {
    /// The exception's id.
    id: String,
    /// Why (required to reject or revoke).
    #[arg(long, default_value = "")]
    reason: String,
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::Request {
                vulnerability,
                package,
                target,
                kind,
                justification,
                expires_at,
                expires_in_days,
            } => {
                let expires_at = match (expires_at, expires_in_days) {
                    (Some(at), _) => at.clone(),
                    (None, Some(days)) => {
                        (chrono::Utc::now() + chrono::Duration::days(i64::from(*days))).to_rfc3339()
                    }
                    (None, None) => unreachable!("clap requires one"),
                };
                let body = json!({
                    "vulnerability": vulnerability,
                    "package": package,
                    "target": target,
                    "type": kind,
                    "justification": justification,
                    "expires_at": expires_at,
                });
                client.print(&client.post("/exceptions", &body)?, COLUMNS);
            }
            Self::List {
                status,
                expiring_within_days,
                vulnerability,
                page,
            } => {
                let mut query = page.query();
                if let Some(status) = status {
                    query.push(("status", status.clone()));
                }
                if let Some(days) = expiring_within_days {
                    query.push(("expiring_within_days", days.to_string()));
                }
                if let Some(id) = vulnerability {
                    query.push(("vulnerability", id.clone()));
                }
                client.print(&client.list("/exceptions", query, page.all)?, COLUMNS);
            }
            Self::Get { id } => client.print(
                &client.get(&format!("/exceptions/{}", segment(id)), &[])?,
                COLUMNS,
            ),
            Self::Approve(d) => d.run(client, "approve")?,
            Self::Reject(d) => d.run(client, "reject")?,
            Self::Revoke(d) => d.run(client, "revoke")?,
        }
        Ok(())
    }
}

impl Decide {
    fn run(&self, client: &Client, action: &str) -> Result<(), ClientError> {
        let path = format!("/exceptions/{}/{action}", segment(&self.id));
        client.print(
            &client.post(&path, &json!({ "reason": self.reason }))?,
            COLUMNS,
        );
        Ok(())
    }
}
