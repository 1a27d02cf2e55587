//! `stella policy`: the tenant's active policy, new versions from TOML files, and their
//! lifecycle (draft → submitted → approved → active → archived).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::http::{Client, ClientError};
use super::{unreadable, Run, Subcommands};
use crate::cli::args::PageArgs;
use crate::cli::output::{errln, out, terminal_safe_lines, Format};

const COLUMNS: &[&str] = &[
    "version",
    "status",
    "digest",
    "submitted_by",
    "approved_by",
    "updated_at",
];

pub(crate) type Policy = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// The active policy (the built-in default until one is set).
    Get,
    /// Write a new version from a TOML file, as a draft (an unchanged document already
    /// in play is returned as it is).
    Draft {
        /// The policy (TOML).
        file: PathBuf,
    },
    /// Every version, newest first, with its status.
    Versions {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One version: its document, status and every transition (who, when, why).
    Show {
        /// The version number.
        version: u64,
    },
    /// Submit a draft for review (`policy:author`).
    Submit(Move),
    /// Send a submitted version back to draft; `--reason` says what to change
    /// (`policy:review`).
    RequestChanges(Move),
    /// Approve a submitted version; the identity that submitted it cannot
    /// (`policy:approve`).
    Approve(Move),
    /// Make an approved version the active one: scans use it and the tenant's targets are
    /// re-evaluated (`policy:operate`).
    Activate(Move),
    /// Archive a draft, submitted or approved version (`policy:author`).
    Archive(Move),
}

/// A lifecycle move of one version.
#[derive(Debug, clap::Args)]
pub(crate) struct Move {
    /// The version number.
    version: u64,
    /// Why; kept with the transition (required by `request-changes`).
    #[arg(long, default_value = "")]
    reason: String,
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::Get => {
                let policy = client.get("/policy", &[])?;
                match client.format {
                    Format::Json => client.print(&policy, &[]),
                    Format::Table => {
                        errln!(
                            "# version {} ({}){}",
                            policy["version"],
                            policy["digest"].as_str().unwrap_or("?"),
                            if policy["default"] == json!(true) {
                                ", the built-in default"
                            } else {
                                ""
                            }
                        );
                        out!(
                            "{}",
                            terminal_safe_lines(policy["document"].as_str().unwrap_or(""))
                        );
                    }
                }
            }
            Self::Draft { file } => {
                let document =
                    std::fs::read_to_string(file).map_err(|err| unreadable(file, err))?;
                client.print(
                    &client.post("/policy/versions", &json!({ "document": document }))?,
                    COLUMNS,
                );
            }
            Self::Versions { page } => client.print(
                &client.list("/policy/versions", page.query(), page.all)?,
                COLUMNS,
            ),
            Self::Show { version } => {
                let shown = client.get(&format!("/policy/versions/{version}"), &[])?;
                match client.format {
                    Format::Json => client.print(&shown, &[]),
                    Format::Table => {
                        errln!(
                            "# version {} ({}), {}",
                            shown["version"],
                            shown["digest"].as_str().unwrap_or("?"),
                            shown["status"].as_str().unwrap_or("?")
                        );
                        let transitions = shown["transitions"].clone();
                        client.print(
                            &json!({ "items": transitions }),
                            &["at", "from", "to", "identity", "reason"],
                        );
                        out!(
                            "{}",
                            terminal_safe_lines(shown["document"].as_str().unwrap_or(""))
                        );
                    }
                }
            }
            Self::Submit(m) => m.run(client, "submit")?,
            Self::RequestChanges(m) => m.run(client, "request-changes")?,
            Self::Approve(m) => m.run(client, "approve")?,
            Self::Activate(m) => m.run(client, "activate")?,
            Self::Archive(m) => m.run(client, "archive")?,
        }
        Ok(())
    }
}

impl Move {
    fn run(&self, client: &Client, action: &str) -> Result<(), ClientError> {
        let path = format!("/policy/versions/{}/{action}", self.version);
        client.print(
            &client.post(&path, &json!({ "reason": self.reason }))?,
            COLUMNS,
        );
        Ok(())
    }
}
