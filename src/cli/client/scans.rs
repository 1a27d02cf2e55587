//! `stella scan SBOM` (submit, and with `--wait` the verdict: exit code 1 when the policy
//! blocks) and `stella scans` (list, show, findings, attestation).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use super::http::{segment as seg, Client, ClientError, ExitKind};
use super::{unreadable, Run, Subcommands};
use crate::cli::args::{PageArgs, MAX_WAIT_SECS};
use crate::cli::output::{outln, terminal_safe, write_out_bytes, Format};

const FINDING_COLUMNS: &[&str] = &[
    "vulnerability_id",
    "purl",
    "severity",
    "disposition",
    "aliases",
];

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["sbom", "rootfs", "image"])))]
pub(crate) struct Scan {
    /// The SBOM file (CycloneDX or SPDX JSON), or a container image (a `docker save` or
    /// OCI archive, or an OCI layout folder), whose SBOM is made on this machine first
    /// (`stella sbom`).
    sbom: Option<PathBuf>,
    /// Scan an unpacked root filesystem (a folder): its SBOM is made on this machine.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Scan an image uploaded before (`stella images upload`), by its digest.
    #[arg(long, value_name = "DIGEST")]
    image: Option<String>,
    /// With an image archive: send the archive itself to the server, which makes and
    /// keeps its SBOM and the image (`stella images upload`), instead of making the SBOM
    /// here.
    #[arg(long, requires = "sbom")]
    upload: bool,
    /// What the SBOM describes (default: its own subject or document name).
    #[arg(long)]
    name: Option<String>,
    /// Evaluation time, RFC 3339 (default: now); fix it to replay a scan exactly.
    #[arg(long)]
    evaluated_at: Option<String>,
    /// Register (or re-point) this target with the SBOM; scheduled re-scans and
    /// drift re-evaluations then cover it.
    #[arg(long)]
    target: Option<String>,
    /// Wait for the verdict.
    #[arg(long)]
    wait: bool,
    /// With `--wait`: give up after this many seconds (exit code 1).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
    timeout_secs: u64,
}

impl Run for Scan {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let mut query: Vec<(&str, String)> = [
            ("target", &self.target),
            ("name", &self.name),
            ("evaluated_at", &self.evaluated_at),
            ("image", &self.image),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value.clone()?)))
        .collect();
        let made_here = |made: anyhow::Result<(Value, String)>| {
            let (document, summary) =
                made.map_err(|err| ClientError::new(ExitKind::Invalid, format!("{err:#}")))?;
            crate::cli::output::errln!("{summary}");
            serde_json::to_vec(&document)
                .map_err(|err| ClientError::new(ExitKind::Failure, err.to_string()))
        };
        let bytes = match (&self.sbom, &self.rootfs) {
            (Some(path), _) if self.upload => {
                if !crate::cli::sbom::is_tar(path) {
                    return Err(ClientError::new(
                        ExitKind::Invalid,
                        format!(
                            "--upload sends an image archive (a tar file); {} is not one \
                             (an OCI layout folder is scanned here without --upload, or \
                             packed with `tar -C DIR -cf image.tar .` first)",
                            path.display()
                        ),
                    ));
                }
                let image = super::images::upload(client, path, self.name.as_deref())?;
                query.push(("image", image.digest));
                Vec::new()
            }
            (Some(path), _) if crate::cli::sbom::is_image(path) => made_here(
                crate::cli::sbom::image_sbom(path, crate::cli::sbom::SbomFormat::Cyclonedx),
            )?,
            (Some(path), _) => std::fs::read(path).map_err(|err| unreadable(path, err))?,
            (None, Some(dir)) => made_here(crate::cli::sbom::read_rootfs(dir).map(|image| {
                crate::cli::sbom::sbom_of(&image, crate::cli::sbom::SbomFormat::Cyclonedx)
            }))?,
            (None, None) => Vec::new(),
        };
        let accepted = client.post_bytes("/scans", &query, "application/json", bytes)?;
        if !self.wait {
            client.print(&accepted, &["job_id", "status", "sbom_sha256"]);
            return Ok(());
        }
        let scan = match accepted.get("job_id").and_then(Value::as_str) {
            Some(id) => wait_scan(client, id, Duration::from_secs(self.timeout_secs))?,
            None => accepted,
        };
        print_scan(client, &scan)?;
        if scan.get("disposition").and_then(Value::as_str) == Some("block") {
            return Err(ClientError::new(
                ExitKind::Failure,
                format!(
                    "scan {} is blocked by the policy",
                    scan["id"].as_str().unwrap_or("?")
                ),
            ));
        }
        Ok(())
    }
}

/// Waits for a scan to be evaluated, following its event stream (polling where the server
/// offers none); one that failed or was cancelled is exit code 1.
fn wait_scan(client: &Client, id: &str, timeout: Duration) -> Result<Value, ClientError> {
    if client.follow(
        &format!("/scans/{}/stream", seg(id)),
        &format!("scan {id}"),
        timeout,
    )? {
        let scan = client.get(&format!("/scans/{}", seg(id)), &[])?;
        let status = scan["status"].as_str().unwrap_or("").to_owned();
        if status != "completed" {
            let error = scan.get("error").and_then(Value::as_str).unwrap_or("");
            return Err(ClientError::new(
                ExitKind::Failure,
                format!("scan {id} {status}: {error}"),
            ));
        }
        return Ok(scan);
    }
    let (scan, status) = client.wait_until(
        &format!("/scans/{}", seg(id)),
        &format!("scan {id}"),
        &["completed", "failed", "cancelled"],
        (Duration::from_millis(100), timeout),
        |scan| {
            let status = scan.get("status").and_then(Value::as_str).unwrap_or("");
            let step = scan.get("step").and_then(Value::as_str).unwrap_or("");
            (status.to_owned(), format!("{status} ({step})"))
        },
    )?;
    if status != "completed" {
        let error = scan.get("error").and_then(Value::as_str).unwrap_or("");
        return Err(ClientError::new(
            ExitKind::Failure,
            format!("scan {id} {status}: {error}"),
        ));
    }
    Ok(scan)
}

pub(crate) type Scans = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// The tenant's scans.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// A scan's status and verdict.
    Get {
        /// The scan's id.
        id: String,
    },
    /// A scan's findings, with their traces in JSON output.
    Findings {
        /// The scan's id.
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// A scan's attestation (DSSE envelope), byte for byte, to stdout or a file.
    Attestation {
        /// The scan's id.
        id: String,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output_file: Option<PathBuf>,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::List { page } => client.print(
                &client.list("/scans", page.query(), page.all)?,
                &["id", "name", "status", "disposition", "created_at"],
            ),
            Self::Get { id } => {
                print_scan(client, &client.get(&format!("/scans/{}", seg(id)), &[])?)?;
            }
            Self::Findings { id, page } => client.print(
                &client.list(
                    &format!("/scans/{}/findings", seg(id)),
                    page.query(),
                    page.all,
                )?,
                FINDING_COLUMNS,
            ),
            Self::Attestation { id, output_file } => {
                let bytes = client.get_bytes(&format!("/scans/{}/attestation", seg(id)))?;
                match output_file {
                    Some(path) => std::fs::write(path, &bytes).map_err(|err| {
                        ClientError::new(
                            ExitKind::Failure,
                            format!("cannot write {}: {err}", path.display()),
                        )
                    })?,
                    None => write_out_bytes(&bytes),
                }
            }
        }
        Ok(())
    }
}

/// A scan as a summary, then (table output, once evaluated) its findings.
fn print_scan(client: &Client, scan: &Value) -> Result<(), ClientError> {
    if client.format == Format::Json {
        client.print(scan, &[]);
        return Ok(());
    }
    let counts = &scan["counts"];
    let summary = &scan["sbom_summary"];
    let field = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        // A scan's name comes from the SBOM: whoever wrote it chose the characters.
        Value::String(s) => terminal_safe(s).into_owned(),
        other => other.to_string(),
    };
    for (label, value) in [
        ("scan", field(&scan["id"])),
        ("name", field(&scan["name"])),
        ("status", field(&scan["status"])),
        ("disposition", field(&scan["disposition"])),
        ("components", field(&counts["components"])),
        (
            "not matchable",
            format!(
                "{} without purl, {} invalid purl, {} unsupported ecosystem",
                field(&summary["no_purl"]),
                field(&summary["invalid_purl"]),
                field(&summary["unsupported_ecosystem"])
            ),
        ),
        (
            "findings",
            format!(
                "{} ({} block, {} warn, {} pass, {} with conflicts)",
                field(&counts["findings"]),
                field(&counts["block"]),
                field(&counts["warn"]),
                field(&counts["pass"]),
                field(&counts["conflicts"])
            ),
        ),
        ("inputs hash", field(&scan["inputs_hash"])),
        ("attestation", field(&scan["attestation_sha256"])),
    ] {
        outln!("{label:14} {value}");
    }
    if scan["counts"]["findings"].as_u64().unwrap_or(0) > 0 {
        if let Some(id) = scan["id"].as_str() {
            outln!();
            let findings = client.list(
                &format!("/scans/{}/findings", seg(id)),
                vec![("limit", "500".to_owned())],
                true,
            )?;
            client.print(&findings, FINDING_COLUMNS);
        }
    }
    Ok(())
}
