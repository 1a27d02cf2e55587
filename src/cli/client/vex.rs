//! `stella vex import`: a VEX document (OpenVEX, CycloneDX VEX or CSAF 2.0), for the
//! tenant or global. The server tells the format by the content unless `--format` names it.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

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
        /// The document's format, sent as its content type; without it the server tells
        /// the format by the content.
        #[arg(long, value_enum)]
        format: Option<DocumentFormat>,
    },
}

/// A VEX format named explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DocumentFormat {
    /// OpenVEX (`application/vnd.openvex+json`).
    Openvex,
    /// CycloneDX VEX (`application/vnd.cyclonedx+json`).
    Cyclonedx,
    /// CSAF 2.0 (`application/csaf+json`).
    Csaf,
}

impl DocumentFormat {
    fn content_type(self) -> &'static str {
        match self {
            DocumentFormat::Openvex => "application/vnd.openvex+json",
            DocumentFormat::Cyclonedx => "application/vnd.cyclonedx+json",
            DocumentFormat::Csaf => "application/csaf+json",
        }
    }
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        let Self::Import { file, format } = self;
        let bytes = std::fs::read(file).map_err(|err| unreadable(file, err))?;
        let content_type = format.map_or("application/json", DocumentFormat::content_type);
        client.print(
            &client.post_bytes("/vex", &[], content_type, bytes)?,
            &[
                "sha256",
                "format",
                "statements",
                "without_component_identity",
                "scope",
                "created",
            ],
        );
        Ok(())
    }
}
