//! `stella keys`: the public keys that sign attestations and exports, from the server's
//! `GET /api/v1/keys` (public: no token needed), as a table, or with `--pem` as the PEM
//! files `verify --key` and `export verify --key` take.

use serde_json::Value;
use stella_domain::dsse::PublicKey;

use super::http::{Client, ClientError, ExitKind};
use super::Run;
use crate::cli::output::out;

#[derive(Debug, clap::Args)]
pub(crate) struct Keys {
    /// Print each key as PEM (SubjectPublicKeyInfo), e.g. `stella keys --pem > stella.pub.pem`.
    #[arg(long)]
    pem: bool,
}

impl Run for Keys {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let listed = client.get("/keys", &[])?;
        if !self.pem {
            client.print(&listed, &["key_id", "algorithm"]);
            return Ok(());
        }
        let items = listed["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for item in items {
            // Parsed and written again: what reaches the terminal or file is a key.
            let key = item["public_key_pem"]
                .as_str()
                .map(PublicKey::from_pem)
                .and_then(Result::ok)
                .ok_or_else(|| {
                    ClientError::new(
                        ExitKind::Failure,
                        format!(
                            "the server listed a key that is not an Ed25519 PEM: {}",
                            item.get("key_id").unwrap_or(&Value::Null)
                        ),
                    )
                })?;
            out!("{}", key.to_pem());
        }
        Ok(())
    }
}
