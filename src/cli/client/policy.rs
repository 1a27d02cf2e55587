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
    /// Evaluate the tenant's latest scans with a candidate version (or pack) in shadow,
    /// enforcing nothing, and print how each scan and finding would change.
    Diff {
        /// The version to compare against (default: the verdicts in force).
        #[arg(long)]
        old: Option<u64>,
        /// The candidate version of the tenant's policy (neither this nor `--pack`: the
        /// policies in force, showing what changed since the scans).
        #[arg(long, conflicts_with = "pack")]
        new: Option<u64>,
        /// A candidate policy pack instead, as `<name>@<version>`.
        #[arg(long)]
        pack: Option<String>,
        /// List every finding that changes, with its old and new rule.
        #[arg(long)]
        findings: bool,
    },
    /// Policy packs: administrator policies tenants receive through rollouts
    /// (administrator token).
    Packs {
        #[command(subcommand)]
        action: PackAction,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PackAction {
    /// Write the next version of a pack from a TOML policy file.
    Put {
        /// The pack's name (a-z, 0-9 and '-').
        name: String,
        /// The policy (TOML); its rules are a floor under each tenant's own policy.
        file: PathBuf,
    },
    /// Every pack, at its newest version.
    List,
    /// The versions of one pack, newest first.
    Versions {
        /// The pack's name.
        name: String,
    },
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
                        if let Some(pack) = policy["pack"].as_object() {
                            errln!(
                                "# pack {}@{} ({}): its rules are a floor under this policy",
                                pack["name"].as_str().unwrap_or("?"),
                                pack["version"],
                                pack["digest"].as_str().unwrap_or("?")
                            );
                        }
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
            Self::Diff {
                old,
                new,
                pack,
                findings,
            } => {
                let mut query = Vec::new();
                if let Some(old) = old {
                    query.push(("old", old.to_string()));
                }
                if let Some(new) = new {
                    query.push(("new", new.to_string()));
                }
                if let Some(pack) = pack {
                    query.push(("pack", pack.clone()));
                }
                let diff = client.get("/policy/diff", &query)?;
                print_diff(client, &diff, *findings);
            }
            Self::Packs { action } => match action {
                PackAction::Put { name, file } => {
                    let document =
                        std::fs::read_to_string(file).map_err(|err| unreadable(file, err))?;
                    client.print(
                        &client.post(
                            "/policy-packs",
                            &json!({ "name": name, "document": document }),
                        )?,
                        PACK_COLUMNS,
                    );
                }
                PackAction::List => client.print(
                    &json!({ "items": client.get("/policy-packs", &[])? }),
                    PACK_COLUMNS,
                ),
                PackAction::Versions { name } => client.print(
                    &json!({ "items": client.get(&format!("/policy-packs/{}", super::http::segment(name)), &[])? }),
                    PACK_COLUMNS,
                ),
            },
        }
        Ok(())
    }
}

const PACK_COLUMNS: &[&str] = &["name", "version", "digest", "created_by", "created_at"];

/// A diff as a table of scans (and of findings with `--findings`), or as JSON.
pub(crate) fn print_diff(client: &Client, diff: &serde_json::Value, findings: bool) {
    if client.format == Format::Json {
        client.print(diff, &[]);
        return;
    }
    let s = &diff["summary"];
    errln!(
        "# {} scans: {} would change, {} newly blocked, {} newly unblocked, {} errors; \
         findings {} added, {} removed, {} changed, {} unchanged",
        s["scans"],
        s["scans_changed"],
        s["newly_blocked_scans"],
        s["newly_unblocked_scans"],
        s["errors"],
        s["findings"]["added"],
        s["findings"]["removed"],
        s["findings"]["changed"],
        s["findings"]["unchanged"]
    );
    let scans: Vec<serde_json::Value> = diff["scans"]
        .as_array()
        .map(|scans| {
            scans
                .iter()
                .map(|scan| {
                    json!({
                        "target": scan["target"],
                        "scan_id": scan["scan_id"],
                        "old": scan["old_disposition"],
                        "new": scan["new_disposition"],
                        "added": scan["counts"]["added"],
                        "removed": scan["counts"]["removed"],
                        "changed": scan["counts"]["changed"],
                        "unchanged": scan["counts"]["unchanged"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    client.print(
        &json!({ "items": scans }),
        &[
            "target",
            "scan_id",
            "old",
            "new",
            "added",
            "removed",
            "changed",
            "unchanged",
        ],
    );
    if findings {
        let rows: Vec<serde_json::Value> = diff["scans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|scan| {
                scan["findings"].as_array().into_iter().flatten().map(|f| {
                    let decided = |side: &serde_json::Value| match side["trace"]
                        .as_array()
                        .and_then(|t| t.iter().rev().find(|s| !s["output"].is_null()))
                    {
                        Some(step) => format!(
                            "{} ({}{})",
                            side["disposition"].as_str().unwrap_or("?"),
                            step["pack"]
                                .as_str()
                                .map(|p| format!("{p} "))
                                .unwrap_or_default(),
                            step["by"].as_str().unwrap_or("?")
                        ),
                        None => "-".to_owned(),
                    };
                    json!({
                        "target": scan["target"],
                        "vulnerability": f["vulnerability_id"],
                        "purl": f["purl"],
                        "change": f["change"],
                        "old": decided(&f["old"]),
                        "new": decided(&f["new"]),
                    })
                })
            })
            .collect();
        client.print(
            &json!({ "items": rows }),
            &["target", "vulnerability", "purl", "change", "old", "new"],
        );
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
