//! The `export` job kind (issue 12, first slice): a profile revision in, files out, in one
//! durable step run by the exporter role, `write`: resolve the profile's selectors to
//! scans, stream their findings through the format's writer into a temporary file, store
//! it content-addressed, then the manifest `export.json` (the size and SHA-256 of every
//! file, canonical JSON) and its DSSE signature `export.json.dsse`. The plan →
//! write → seal → distribute split comes with the bundle formats, whose sealing is work
//! of its own.
//!
//! Every file a step stores is recorded with that step's outcome (a staged
//! [`Effect::ExportFile`](stella_store::repo::Effect::ExportFile)), so a redelivered
//! step lists each file once; the files are content-addressed and their bytes a
//! function of the profile revision, the selected scans and `as_of` (fixed at
//! submission), so a retried run stores the same objects again, not new ones.
//!
//! Formats in this slice: `csv` and `sarif` (one log per scan, for GitHub code scanning).
//! The others the issue names are refused when a profile is created, saying so.
//!
//! Layout: this file (the kind, its parameters and steps, the formats), `profile`
//! (profiles: checking and storing revisions), `run` (starting a run), `steps`.

mod profile;
mod run;
mod steps;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stella_domain::dsse::SigningKey;
use stella_store::object::Objects;
use stella_supervisor::{Kind, Step, StepContext, StepError, StepOutcome, Submitters};

pub use profile::{
    check_name, put_profile, InvalidProfile, ProfileDefinition, PutProfileError, Selectors,
};
pub use run::{start_run, StartRunError};

use crate::roles::Role;

/// An export run's parameters, fixed at submission so every attempt writes the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// The profile's name and the revision this run uses.
    pub profile: String,
    pub revision: u64,
    /// What the export is as of: recorded in the manifest, never read from the clock.
    pub as_of: DateTime<Utc>,
}

/// The formats an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row per finding (RFC 4180, formulas neutralised): `findings.csv`.
    Csv,
    /// SARIF 2.1.0 for GitHub code scanning, one log per scan: `scan-<id>.sarif`.
    Sarif,
}

/// The formats the issue names that this slice does not write yet.
const LATER: &[&str] = &[
    "json:raw",
    "json:policy",
    "cyclonedx",
    "spdx",
    "report:pdf",
    "report:xlsx",
    "evidence",
    "mirror:full",
    "mirror:delta",
];

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Sarif => "sarif",
        }
    }

    /// The format called `name`; an error message saying what is known otherwise.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "csv" => Ok(Format::Csv),
            "sarif" => Ok(Format::Sarif),
            later if LATER.contains(&later) => Err(format!(
                "export kind {later:?} is not available yet; this version writes: csv, sarif"
            )),
            other => Err(format!(
                "unknown export kind {other:?}; this version writes: csv, sarif"
            )),
        }
    }
}

/// What the export kind's steps need besides the store.
#[derive(Debug, Clone)]
pub struct ExportDeps {
    pub objects: Objects,
    pub signing_key: Arc<SigningKey>,
}

/// The `export` job kind.
#[derive(Debug, Clone)]
pub struct Export {
    deps: ExportDeps,
}

impl Export {
    pub fn new(deps: ExportDeps) -> Self {
        Self { deps }
    }
}

/// The export's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStep {
    Write,
}

impl Step for ExportStep {
    const ALL: &'static [Self] = &[ExportStep::Write];

    fn name(self) -> &'static str {
        "write"
    }

    fn role(self) -> stella_store::mailbox::Role {
        Role::Exporter.mailbox()
    }
}

#[async_trait]
impl Kind for Export {
    const NAME: &'static str = "export";
    // Started from a profile ([`start_run`]), which checks the revision exists.
    const SUBMITTERS: Submitters = Submitters::Internal;
    type Params = ExportParams;
    type Step = ExportStep;

    async fn run(
        &self,
        step: ExportStep,
        params: &ExportParams,
        ctx: &mut StepContext<'_>,
    ) -> Result<StepOutcome<ExportStep>, StepError> {
        match step {
            ExportStep::Write => steps::write(&self.deps, params, ctx).await,
        }
    }
}
