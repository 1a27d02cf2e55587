//! `stella targets`: the named images or applications re-scans evaluate.

use clap::Subcommand;
use serde_json::json;

use super::http::{segment as seg, Client, ClientError};
use super::{Run, Subcommands};
use crate::cli::args::PageArgs;

const COLUMNS: &[&str] = &["id", "name", "sbom_sha256", "last_scan_id", "updated_at"];

pub(crate) type Targets = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// The tenant's targets.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One target, by name or id.
    Get {
        /// The target's name or id.
        target: String,
    },
    /// Register a target (or point it at a new SBOM): from a scan, or a stored SBOM.
    Set {
        /// The target's name.
        name: String,
        /// A scan of this tenant (its SBOM; it becomes the target's latest scan).
        #[arg(long, conflicts_with = "sbom", required_unless_present = "sbom")]
        scan: Option<String>,
        /// The sha256 of an SBOM this tenant stored.
        #[arg(long)]
        sbom: Option<String>,
    },
    /// Remove a target.
    Delete {
        /// The target's name or id.
        target: String,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let target = match self {
            Self::List { page } => client.list("/targets", page.query(), page.all)?,
            Self::Get { target } => client.get(&format!("/targets/{}", seg(target)), &[])?,
            Self::Set { name, scan, sbom } => {
                let mut body = json!({ "name": name });
                if let Some(scan) = scan {
                    body["scan_id"] = scan.clone().into();
                }
                if let Some(sbom) = sbom {
                    body["sbom_sha256"] = sbom.clone().into();
                }
                client.post("/targets", &body)?
            }
            Self::Delete { target } => {
                client.delete(&format!("/targets/{}", seg(target)))?;
                return Ok(());
            }
        };
        client.print(&target, COLUMNS);
        Ok(())
    }
}
