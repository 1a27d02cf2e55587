//! `stella advisories import`: an OSV collection from a zip, a JSON file, a folder of
//! JSON records or a URL, posted to `/advisories/imports`.

use std::path::Path;

use clap::Subcommand;
use serde_json::Value;

use super::http::{Client, ClientError, ExitKind};
use super::{unreadable, Run, Subcommands};

pub(crate) type Advisories = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Import an OSV collection: a zip such as `all.zip`, a JSON file (one record or an
    /// array), a folder of JSON records, or an http(s) URL of any of those.
    Import {
        /// File, folder or URL.
        from: String,
        /// Source name the records are kept under (default: `osv:` + the file name).
        #[arg(long)]
        source: Option<String>,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let Self::Import { from, source } = self;
        let (bytes, default_name) = read_collection(client, from)?;
        let source = source.clone().unwrap_or_else(|| {
            format!(
                "osv:{}",
                default_name
                    .trim_end_matches(".zip")
                    .trim_end_matches(".json")
            )
        });
        let content_type = if bytes.starts_with(b"PK") {
            "application/zip"
        } else {
            "application/json"
        };
        let report = client.post_bytes(
            "/advisories/imports",
            &[("source", source)],
            content_type,
            bytes,
        )?;
        client.print(
            &report,
            &["source", "records", "new", "changed", "unchanged"],
        );
        Ok(())
    }
}

/// The collection's bytes and the name a source defaults to (the file's or folder's).
fn read_collection(client: &Client, from: &str) -> Result<(Vec<u8>, String), ClientError> {
    if from.starts_with("http://") || from.starts_with("https://") {
        let name = from.rsplit('/').next().unwrap_or(from).to_owned();
        return Ok((client.fetch(from)?, name));
    }
    let invalid = |message: String| ClientError::new(ExitKind::Invalid, message);
    let path = Path::new(from);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| from.to_owned());
    if !path.is_dir() {
        let bytes =
            std::fs::read(path).map_err(|err| invalid(format!("cannot read {from}: {err}")))?;
        return Ok((bytes, name));
    }
    // A folder of records: sent as one JSON array, in name order.
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|err| invalid(format!("cannot read {from}: {err}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut records = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read(&file).map_err(|err| unreadable(&file, err))?;
        let record: Value = serde_json::from_slice(&text)
            .map_err(|err| invalid(format!("{}: {err}", file.display())))?;
        records.push(record);
    }
    Ok((serde_json::to_vec(&records).unwrap_or_default(), name))
}
