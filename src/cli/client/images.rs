//! `stella images`: upload a container image archive (the server makes and keeps its
//! SBOM), list the tenant's images, show one.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;

use super::http::{segment as seg, Client, ClientError, ExitKind};
use super::{Run, Subcommands};
use crate::cli::args::PageArgs;
use crate::cli::output::errln;

pub(crate) type Images = Subcommands<Action>;

const COLUMNS: &[&str] = &["digest", "name", "format", "sbom_sha256", "created_at"];

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Upload an image archive (`docker save`, or an OCI archive), streamed; prints its
    /// digest (what `stella scan --image` takes) and what was found in it.
    Upload {
        /// The archive.
        archive: PathBuf,
        /// The image's name (default: the archive's own tag, else its digest).
        #[arg(long)]
        name: Option<String>,
    },
    /// The tenant's images, newest first.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One image: its layers, distribution and packages per type.
    Get {
        /// The image digest (`sha256:…`).
        digest: String,
    },
}

/// An uploaded image as the server answered.
pub(crate) struct Uploaded {
    pub(crate) digest: String,
    pub(crate) view: Value,
}

/// Uploads an image archive and prints a summary line of it to standard error.
pub(crate) fn upload(
    client: &Client,
    archive: &Path,
    name: Option<&str>,
) -> Result<Uploaded, ClientError> {
    let query: Vec<(&str, String)> = name.map(|n| ("name", n.to_owned())).into_iter().collect();
    let view = client.post_file("/images", &query, "application/x-tar", archive)?;
    let digest = view
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::new(ExitKind::Failure, "the server sent no image digest"))?
        .to_owned();
    let summary = &view["summary"];
    errln!(
        "# {digest} ({}), {} layers, {} packages{}",
        view["format"].as_str().unwrap_or("?"),
        summary["layers"].as_array().map_or(0, Vec::len),
        summary["packages"].as_u64().unwrap_or(0),
        match summary["skipped_count"].as_u64() {
            Some(n) if n > 0 => format!("; {n} files unreadable"),
            _ => String::new(),
        }
    );
    Ok(Uploaded { digest, view })
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::Upload { archive, name } => {
                let uploaded = upload(client, archive, name.as_deref())?;
                client.print(&uploaded.view, COLUMNS);
            }
            Self::List { page } => {
                client.print(&client.list("/images", page.query(), page.all)?, COLUMNS)
            }
            Self::Get { digest } => client.print(
                &client.get(&format!("/images/{}", seg(digest)), &[])?,
                COLUMNS,
            ),
        }
        Ok(())
    }
}
