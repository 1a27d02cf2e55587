//! `stella export`: profiles (create or revise, list, show, revisions), runs (start, with
//! `--wait` a progress spinner until it ends; show), downloads (checked against the
//! digest the server lists; `--resume` continues a partial file with `Range`) and
//! `verify`, which checks a bundle or a folder of downloaded files offline
//! (`export_verify.rs`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::http::{segment as seg, Client, ClientError, ExitKind};
use super::{Run, Subcommands};
use crate::cli::args::{PageArgs, MAX_WAIT_SECS};
use crate::cli::output::errln;

const PROFILE_COLUMNS: &[&str] = &["name", "revision", "kind", "created_by", "created_at"];
const FILE_COLUMNS: &[&str] = &["name", "size_bytes", "sha256"];
const RUN_COLUMNS: &[&str] = &[
    "export_id",
    "profile",
    "revision",
    "status",
    "step",
    "items_done",
    "items_total",
    "created_at",
    "finished_at",
];

/// A run's state for the `--wait` spinner: `running: write 1200/5000 items (24 %)`.
fn progress(export: &Value) -> String {
    let status = export["status"].as_str().unwrap_or("?");
    let step = export["step"].as_str().unwrap_or("?");
    match (
        export["items_done"].as_u64(),
        export["items_total"].as_u64(),
    ) {
        (Some(done), Some(total)) if total > 0 => format!(
            "{status}: {step} {done}/{total} items ({} %)",
            done * 100 / total
        ),
        _ => format!("{status}: {step}"),
    }
}

pub(crate) type Export = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Export profiles: what an export selects and writes, one revision per change.
    Profiles {
        // Boxed: `create` has a flag per selector, option and distribution.
        #[command(subcommand)]
        action: Box<ProfileAction>,
    },
    /// Start a run of a profile (its latest revision unless `--revision`).
    Run {
        /// The profile's name.
        profile: String,
        /// The revision to run.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        revision: Option<u64>,
        /// What the export is as of (RFC 3339; default: now): equal inputs and an equal
        /// time give byte-identical files.
        #[arg(long)]
        as_of: Option<String>,
        /// For a `mirror:delta` profile: the id of the mirror export the delta is taken
        /// since.
        #[arg(long, value_name = "EXPORT_ID")]
        base: Option<String>,
        /// Wait until the run ends, then list its files; exit code 1 if it failed.
        #[arg(long)]
        wait: bool,
        /// With `--wait`, give up after this long (exit code 1).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
        timeout_secs: u64,
    },
    /// A run: its status, the revision it used, its progress, counts and files.
    Get {
        /// The export's id.
        id: String,
    },
    /// The tenant's runs, oldest first.
    List {
        /// Only runs in this status: queued, retrying, running, completed, failed,
        /// cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this profile.
        #[arg(long)]
        profile: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Cancel a run that has not finished (files it already wrote stay listed).
    Cancel {
        /// The export's id.
        id: String,
    },
    /// Download a file of a run, checked against the SHA-256 the run lists.
    Download {
        /// The export's id.
        id: String,
        /// The file's name (`findings.csv`, `policy.json`, `scan-<id>.cdx.json`,
        /// `export.json`, ...).
        name: String,
        /// Where to write it (default: the file's name in the current folder).
        #[arg(long, short)]
        output_file: Option<PathBuf>,
        /// Continue a partial download of the same file with `Range`.
        #[arg(long)]
        resume: bool,
    },
    /// Check an export offline, without a server: every file against the SHA-256 and
    /// size `export.json` lists, the provenance, and with `--key` both signatures.
    #[command(after_help = super::export_verify::EXIT_CODES)]
    Verify {
        /// A bundle (`evidence-<profile>-r<revision>.tar.zst`), or a folder holding
        /// `export.json` and the files it lists (other files in it are ignored).
        path: PathBuf,
        /// The signing key's public half (PEM: `stella keys --pem`, or
        /// `public_key_pem` of `GET /api/v1/keys`); without it the signatures are not
        /// checked, and the key id they claim is printed.
        #[arg(long, value_name = "PEM")]
        key: Option<PathBuf>,
    },
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum ProfileAction {
    /// Create a profile, or its next revision when the definition changed.
    Create {
        /// 1-100 characters of a-z, 0-9, `-`, `_`, `.`.
        name: String,
        /// What it writes: `json:raw` (the scans' inputs as stored), `json:policy`
        /// (verdicts with explain traces and policy snapshots), `csv` (one row per
        /// finding), `sarif` (one SARIF 2.1.0 log per scan, for GitHub code scanning),
        /// `cyclonedx` (one CycloneDX 1.6 BOM per scan with vulnerabilities and VEX
        /// analysis), `spdx` (one SPDX 2.3 document per scan), `report:pdf` or
        /// `report:xlsx` (a report for people; `--template`), `evidence` (a signed,
        /// reproducible `tar.zst` of the documents the verdicts rest on), `mirror:full` or
        /// `mirror:delta` (advisories and VEX for an air-gapped instance: no scans or
        /// targets; a delta's run names `--base`).
        #[arg(long, default_value = "csv")]
        kind: String,
        /// The report template (`report:pdf`, `report:xlsx`): `executive` (the summary,
        /// charts and the worst 20 findings; the default) or `detailed` (every finding
        /// too).
        #[arg(long)]
        template: Option<String>,
        /// Scans to export, by id (comma-separated).
        #[arg(long, value_delimiter = ',')]
        scans: Vec<String>,
        /// Targets whose latest scan to export, by name (comma-separated).
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// Only findings with these dispositions (`pass`, `warn`, `block`).
        #[arg(long, value_delimiter = ',')]
        dispositions: Vec<String>,
        /// Only scans evaluated at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only scans evaluated before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Only findings of at least this severity: low, medium, high, critical.
        #[arg(long)]
        min_severity: Option<String>,
        /// Only findings of these vulnerabilities, by advisory id or alias
        /// (comma-separated).
        #[arg(long, value_delimiter = ',')]
        vulnerabilities: Vec<String>,
        /// Put the scanned SBOMs in the export as files of their own (`json:raw`,
        /// `evidence`).
        #[arg(long)]
        include_sboms: bool,
        /// Put the verdicts' signed attestations in the export.
        #[arg(long)]
        include_evidence: bool,
        /// Also copy every run's files into the tenant's objects under this prefix
        /// (`tenants/<tenant>/<prefix>/<export id>/<file>`); default: download only.
        #[arg(long, conflicts_with = "destination")]
        copy_to_prefix: Option<String>,
        /// Also copy every run's files to this export destination, one the operator
        /// declared (`[export.destinations.<name>]`) and opened to the tenant
        /// (`<destination prefix>/<tenant>/[<--destination-prefix>/]<export id>/<file>`).
        #[arg(long)]
        destination: Option<String>,
        /// A prefix of the tenant's part of `--destination`.
        #[arg(long, requires = "destination")]
        destination_prefix: Option<String>,
        /// Days a run's files are kept.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        retention_days: Option<u32>,
    },
    /// The tenant's profiles (latest revisions).
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// A profile's latest revision.
    Get {
        /// The profile's name.
        name: String,
    },
    /// Every revision of a profile, oldest first.
    Revisions {
        /// The profile's name.
        name: String,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::Profiles { action } => action.run(client)?,
            Self::Run {
                profile,
                revision,
                as_of,
                base,
                wait,
                timeout_secs,
            } => {
                let mut body = json!({ "profile": profile });
                if let Some(revision) = revision {
                    body["revision"] = json!(revision);
                }
                if let Some(as_of) = as_of {
                    body["as_of"] = json!(as_of);
                }
                if let Some(base) = base {
                    body["base"] = json!(base);
                }
                let accepted = client.post("/exports", &body)?;
                if !wait {
                    client.print(&accepted, &["export_id", "status"]);
                    return Ok(());
                }
                let id = accepted["export_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                // Follow the run's stream (its steps and items written); the poll below
                // then reads the finished run at once (or waits, on a server without
                // streams).
                client.follow(
                    &format!("/exports/{}/stream", seg(&id)),
                    &format!("export {id}"),
                    Duration::from_secs(*timeout_secs),
                )?;
                let (export, status) = client.wait_until(
                    &format!("/exports/{}", seg(&id)),
                    &format!("export {id}"),
                    &["completed", "failed", "cancelled"],
                    (
                        Duration::from_millis(250),
                        Duration::from_secs(*timeout_secs),
                    ),
                    |export| {
                        let status = export["status"].as_str().unwrap_or("").to_owned();
                        (status.clone(), progress(export))
                    },
                )?;
                print_export(client, &export);
                if status != "completed" {
                    return Err(ClientError::new(
                        ExitKind::Failure,
                        format!(
                            "export {id} {status}: {}",
                            export["error"].as_str().unwrap_or("no reason given")
                        ),
                    ));
                }
            }
            Self::Get { id } => {
                print_export(client, &client.get(&format!("/exports/{}", seg(id)), &[])?);
            }
            Self::List {
                status,
                profile,
                page,
            } => {
                let mut query = page.query();
                if let Some(status) = status {
                    query.push(("status", status.clone()));
                }
                if let Some(profile) = profile {
                    query.push(("profile", profile.clone()));
                }
                client.print(&client.list("/exports", query, page.all)?, RUN_COLUMNS);
            }
            Self::Cancel { id } => {
                let export = client.post(&format!("/exports/{}/cancel", seg(id)), &json!({}))?;
                client.print(&export, &["export_id", "status", "step", "error"]);
            }
            Self::Download {
                id,
                name,
                output_file,
                resume,
            } => download(client, id, name, output_file.as_ref(), *resume)?,
            Self::Verify { path, key } => {
                super::export_verify::verify(client, path, key.as_deref())?;
            }
        }
        Ok(())
    }
}

impl Run for ProfileAction {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::Create {
                name,
                kind,
                template,
                scans,
                targets,
                dispositions,
                since,
                until,
                min_severity,
                vulnerabilities,
                include_sboms,
                include_evidence,
                copy_to_prefix,
                destination,
                destination_prefix,
                retention_days,
            } => {
                let mut selectors = json!({
                    "scans": scans,
                    "targets": targets,
                    "dispositions": dispositions,
                    "vulnerabilities": vulnerabilities,
                });
                for (field, value) in [
                    ("since", since),
                    ("until", until),
                    ("min_severity", min_severity),
                ] {
                    if let Some(value) = value {
                        selectors[field] = json!(value);
                    }
                }
                let mut body = json!({ "name": name, "kind": kind, "selectors": selectors });
                let mut options = json!({});
                if *include_sboms {
                    options["include_sboms"] = json!(true);
                }
                if *include_evidence {
                    options["include_evidence"] = json!(true);
                }
                if let Some(template) = template {
                    options["template"] = json!(template);
                }
                if options != json!({}) {
                    body["options"] = options;
                }
                if let Some(prefix) = copy_to_prefix {
                    body["distribution"] = json!({"to": "objects", "prefix": prefix});
                }
                if let Some(name) = destination {
                    let mut distribution = json!({"to": "destination", "name": name});
                    if let Some(prefix) = destination_prefix {
                        distribution["prefix"] = json!(prefix);
                    }
                    body["distribution"] = distribution;
                }
                if let Some(days) = retention_days {
                    body["retention_days"] = json!(days);
                }
                client.print(&client.post("/export-profiles", &body)?, PROFILE_COLUMNS);
            }
            Self::List { page } => client.print(
                &client.list("/export-profiles", page.query(), page.all)?,
                PROFILE_COLUMNS,
            ),
            Self::Get { name } => client.print(
                &client.get(&format!("/export-profiles/{}", seg(name)), &[])?,
                PROFILE_COLUMNS,
            ),
            Self::Revisions { name } => client.print(
                &client.get(&format!("/export-profiles/{}/revisions", seg(name)), &[])?,
                PROFILE_COLUMNS,
            ),
        }
        Ok(())
    }
}

/// A run: its summary on stderr (tables), its files as the table; the whole object as
/// JSON.
fn print_export(client: &Client, export: &Value) {
    if client.format == crate::cli::output::Format::Json {
        client.print(export, &[]);
        return;
    }
    errln!(
        "# export {} of {} revision {}: {}{}",
        export["export_id"].as_str().unwrap_or("?"),
        export["profile"].as_str().unwrap_or("?"),
        export["revision"],
        export["status"].as_str().unwrap_or("?"),
        export["counts"]
            .get("findings")
            .map(|n| format!(", {n} findings"))
            .unwrap_or_default()
    );
    client.print(&json!({ "items": export["files"] }), FILE_COLUMNS);
}

fn io_failure(path: &std::path::Path, err: std::io::Error) -> ClientError {
    ClientError::new(
        ExitKind::Failure,
        format!("cannot write {}: {err}", path.display()),
    )
}

/// Downloads one file of a run into `output` (resuming a partial one with `Range` and
/// `If-Range`), then checks the whole file's SHA-256 against the one the run lists.
fn download(
    client: &Client,
    id: &str,
    name: &str,
    output: Option<&PathBuf>,
    resume: bool,
) -> Result<(), ClientError> {
    let export = client.get(&format!("/exports/{}", seg(id)), &[])?;
    let listed = export["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["name"] == name))
        .ok_or_else(|| {
            ClientError::new(
                ExitKind::NotFound,
                format!("export {id} has no file {name:?}"),
            )
        })?;
    let sha256 = listed["sha256"].as_str().unwrap_or_default().to_owned();
    // A member of a bundle (`sboms/<sha256>.json`) lands as its last segment.
    let path = output
        .cloned()
        .unwrap_or_else(|| PathBuf::from(name.rsplit('/').next().unwrap_or(name)));
    let have = if resume {
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
    } else {
        0
    };
    let url = format!("/exports/{}/files/{}", seg(id), seg(name));
    let size = listed["size_bytes"].as_u64().unwrap_or(0);
    if have < size || !resume {
        let headers = if have > 0 {
            vec![
                ("range", format!("bytes={have}-")),
                ("if-range", format!("\"{sha256}\"")),
            ]
        } else {
            Vec::new()
        };
        client.get_into(&url, &headers, |status| {
            let file = if status == 206 {
                std::fs::OpenOptions::new().append(true).open(&path)
            } else {
                std::fs::File::create(&path)
            };
            file.map(std::io::BufWriter::new)
                .map_err(|err| io_failure(&path, err))
        })?;
    }
    // The whole file's digest, read in chunks.
    let mut hasher = Sha256::new();
    let written = std::fs::File::open(&path)
        .and_then(|mut file| std::io::copy(&mut file, &mut hasher))
        .map_err(|err| io_failure(&path, err))?;
    let actual = hex::encode(hasher.finalize());
    if actual != sha256 {
        return Err(ClientError::new(
            ExitKind::Failure,
            format!(
                "{} does not match export {id}: sha256 {actual}, the export lists {sha256}",
                path.display()
            ),
        ));
    }
    errln!(
        "{} ({} bytes, sha256 {sha256}) written to {}",
        name,
        written,
        path.display()
    );
    Ok(())
}
