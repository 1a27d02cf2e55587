//! `stella verify`: an attestation (DSSE envelope) checked offline with a public key, or
//! with the keys the server publishes.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use stella_domain::dsse::{Envelope, PublicKey};
use stella_domain::intoto::Statement;

use super::http::{Client, ClientError, ExitKind};
use super::Run;
use crate::cli::output::{outln, terminal_safe, Format};

#[derive(Debug, clap::Args)]
pub(crate) struct Verify {
    /// The envelope (JSON).
    file: PathBuf,
    /// A public key (PEM); without it, the keys from the server's `/api/v1/keys`.
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
}

impl Run for Verify {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let report = verify(client, &self.file, self.key.as_deref())?;
        match client.format {
            Format::Json => client.print(&report, &[]),
            Format::Table => {
                // The envelope is the file's author's text, signed or not.
                let text =
                    |v: &Value, default| terminal_safe(v.as_str().unwrap_or(default)).into_owned();
                outln!(
                    "verified: signed by key {}; subject {} {}; {} disposition {}",
                    text(&report["key_ids"][0], "?"),
                    text(&report["subject"]["name"], "?"),
                    text(&report["subject"]["digest"], "?"),
                    text(&report["predicate_type"], "?"),
                    text(&report["disposition"], "-"),
                )
            }
        }
        Ok(())
    }
}

/// Verifies a DSSE envelope file with a PEM public key, or with the server's keys.
fn verify(client: &Client, file: &Path, key: Option<&Path>) -> Result<Value, ClientError> {
    let invalid = |message: String| ClientError::new(ExitKind::Failure, message);
    let bytes = std::fs::read(file)
        .map_err(|err| invalid(format!("cannot read {}: {err}", file.display())))?;
    let envelope = Envelope::from_json(&bytes)
        .map_err(|err| invalid(format!("{} is not a DSSE envelope: {err}", file.display())))?;
    let keys = match key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|err| invalid(format!("cannot read {}: {err}", path.display())))?;
            vec![PublicKey::from_pem(&pem)
                .map_err(|err| invalid(format!("{}: {err}", path.display())))?]
        }
        None => {
            let listed = client.get("/keys", &[])?;
            listed["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k["public_key_pem"].as_str())
                .filter_map(|pem| PublicKey::from_pem(pem).ok())
                .collect()
        }
    };
    let verified = Statement::verify(&envelope, &keys)
        .map_err(|err| invalid(format!("verification failed: {err}")))?;
    let statement = &verified.statement;
    let subject = statement.subjects().first();
    Ok(json!({
        "verified": true,
        "key_ids": verified.key_ids,
        "predicate_type": statement.predicate_type(),
        "subject": {
            "name": subject.map(|s| s.name.clone()),
            "digest": subject.and_then(|s| s.sha256()).map(|d| d.to_string()),
        },
        "disposition": statement.predicate().pointer("/verdict/disposition"),
        "inputs_hash": statement.predicate().get("inputs_hash"),
    }))
}
