//! `stella policy`: the tenant's active policy, a new version from a TOML file, and every
//! version.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::http::{Client, ClientError};
use super::{unreadable, Run, Subcommands};
use crate::cli::args::PageArgs;
use crate::cli::output::{errln, out, terminal_safe_lines, Format};

const COLUMNS: &[&str] = &["version", "digest", "created_by", "created_at"];

pub(crate) type Policy = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// The active policy (the built-in default until one is set).
    Get,
    /// Set the policy from a TOML file (a new version unless unchanged).
    Set {
        /// The policy (TOML).
        file: PathBuf,
    },
    /// Every version, newest first.
    Versions {
        #[command(flatten)]
        page: PageArgs,
    },
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
            Self::Set { file } => {
                let document =
                    std::fs::read_to_string(file).map_err(|err| unreadable(file, err))?;
                client.print(
                    &client.put("/policy", &json!({ "document": document }))?,
                    COLUMNS,
                );
            }
            Self::Versions { page } => client.print(
                &client.list("/policy/versions", page.query(), page.all)?,
                COLUMNS,
            ),
        }
        Ok(())
    }
}
