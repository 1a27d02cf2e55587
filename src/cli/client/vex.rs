//! `stella vex import`: a VEX document (OpenVEX or CycloneDX VEX), for the tenant or
//! global.

use std::path::PathBuf;

use clap::Subcommand;

use super::http::{Client, ClientError};
use super::{unreadable, Run, Subcommands};

pub(crate) type Vex = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Import a VEX document: for the tenant, or global with an administrator token and
    /// no tenant.
    Import {
        /// The VEX document (JSON).
        file: PathBuf,
    },
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let Self::Import { file } = self;
        let bytes = std::fs::read(file).map_err(|err| unreadable(file, err))?;
        client.print(
            &client.post_bytes("/vex", &[], "application/json", bytes)?,
            &["sha256", "format", "statements", "scope", "created"],
        );
        Ok(())
    }
}
