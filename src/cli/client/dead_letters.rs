//! `stella dead-letters`: list, replay and discard messages that ran out of deliveries.

use clap::Subcommand;

use super::http::{segment as seg, Client, ClientError};
use super::{Run, Subcommands};
use crate::cli::args::PageArgs;

const COLUMNS: &[&str] = &["id", "role", "job_id", "kind", "deliveries", "error"];

pub(crate) type DeadLetters = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// The tenant's dead letters.
    List {
        /// Only this role's dead letters.
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Send a dead letter again as a fresh attempt.
    Replay {
        /// The role whose mailbox held it.
        role: String,
        /// The dead letter's id.
        id: String,
    },
    /// Drop a dead letter for good.
    Discard {
        /// The role whose mailbox held it.
        role: String,
        /// The dead letter's id.
        id: String,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let letters = match self {
            Self::List { role, page } => client.list(
                "/dead-letters",
                page.query_with(&[("role", role.as_ref())]),
                page.all,
            )?,
            Self::Replay { role, id } => {
                client.post_empty(&format!("/dead-letters/{}/{}/replay", seg(role), seg(id)))?
            }
            Self::Discard { role, id } => {
                client.delete(&format!("/dead-letters/{}/{}", seg(role), seg(id)))?
            }
        };
        client.print(&letters, COLUMNS);
        Ok(())
    }
}
