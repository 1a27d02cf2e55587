//! The `export` job kind: a profile revision in, files out, as a durable job of four
//! steps, each run by the exporter role:
//!
//! 1. `plan` resolves the profile's selectors to scans and fixes them, with the number
//!    of items to write, as the run's plan (an object, recorded with the step's outcome
//!    in `export_runs`), so later steps and their retries export the same scans (a
//!    mirror plan fixes the generations of advisories and VEX it is as of, and its base);
//! 2. `write` streams the plan's items through the format's writer ([`formats`]) into
//!    temporary files and stores them content-addressed, reporting progress;
//! 3. `seal` writes the manifest `export.json` over the written files (size and SHA-256
//!    of each, canonical JSON), its DSSE signature `export.json.dsse` and the in-toto
//!    provenance `provenance.json` with its signature; a bundle format
//!    (`formats::bundle`) packs them all into one reproducible `tar.zst`;
//! 4. `distribute` copies every file where the profile sends them (download only, a
//!    prefix of the tenant's objects, or a destination the operator declared and opened
//!    to the tenant: `destination`).
//!
//! Every file a step stores is recorded with that step's outcome (a staged
//! [`Effect::ExportFile`](stella_store::repo::Effect::ExportFile)), so a redelivered
//! step lists each file once; the files are content-addressed and their bytes a
//! function of the plan and `as_of` (fixed at submission), so a retried run stores the
//! same objects again, not new ones.
//!
//! Layout: this file (the kind, its parameters, steps and formats), `profile` (profiles:
//! checking and storing revisions), `destination` (the operator's named destinations and
//! who may use them), `run` (starting a run), one file per step (`plan`,
//! `write`, `seal`, `distribute`), `cited` (what the findings cite: the advisory records
//! and VEX statements the document formats read), `bundle` (packing a run's files into
//! one `tar.zst` for the bundle formats) and `formats/` with one file per format
//! (`report` writes both `report:pdf` and `report:xlsx`). Adding a format: a variant of
//! [`Format`], a file in `formats/` with its `write`, one arm in `formats::write`, and
//! for a bundle format one in `formats::bundle`.

mod bundle;
mod cited;
mod destination;
mod distribute;
mod formats;
mod metrics;
mod plan;
mod profile;
mod run;
mod seal;
mod write;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stella_domain::dsse::SigningKey;
use stella_store::object::Objects;
use stella_store::repo::{Effect, Job, NewEvent};
use stella_supervisor::{Kind, Step, StepContext, StepError, StepOutcome, Submitters};

pub use destination::{Destination, Destinations};
pub use metrics::ExportMetrics;
pub use plan::{ExportPlan, PlannedScan, PreviousRun};
pub use profile::{
    check_name, put_profile, Distribution, InvalidProfile, ProfileDefinition, PutProfileError,
    Selectors, Trigger,
};
pub use run::{start_run, start_run_limited, StartRunError};

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
    /// The export a `mirror:delta` is taken since (its id); no other kind has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// The formats (profile kinds) an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row per finding (RFC 4180, formulas neutralised): `findings.csv`.
    Csv,
    /// SARIF 2.1.0 for GitHub code scanning, one log per scan: `scan-<id>.sarif`.
    Sarif,
    /// The scans' inputs as stored: `raw.json` (SBOM digests, the advisory observations
    /// and VEX statements the findings cite), and the SBOMs as `sbom-<sha256>.json` with
    /// `options.include_sboms`.
    JsonRaw,
    /// Verdicts, findings with their explain traces, the policies evaluated with:
    /// `policy.json`.
    JsonPolicy,
    /// CycloneDX 1.6 JSON, one BOM per scan with its vulnerabilities and VEX analysis:
    /// `scan-<id>.cdx.json`.
    CycloneDx,
    /// SPDX 2.3 JSON, one document per scan with its findings as security references and
    /// annotations: `scan-<id>.spdx.json`.
    Spdx,
    /// A report for people as PDF: `report.pdf`.
    ReportPdf,
    /// A report for people as an Excel workbook: `report.xlsx`.
    ReportXlsx,
    /// The documents the verdicts rest on (SBOMs, verdicts, attestations, findings, the
    /// advisory observations, VEX documents and policies they cite), sealed and packed
    /// into one reproducible `evidence-<profile>-r<revision>.tar.zst`.
    Evidence,
    /// Every advisory and VEX document the tenant reads, for an instance with no
    /// network: `mirror.tar.zst` (see [`stella_domain::export::mirror`]).
    MirrorFull,
    /// What changed since a base mirror export: added, changed, withdrawn.
    MirrorDelta,
}

impl Format {
    /// Every format this version writes.
    pub const ALL: &'static [Format] = &[
        Format::JsonRaw,
        Format::JsonPolicy,
        Format::Csv,
        Format::Sarif,
        Format::CycloneDx,
        Format::Spdx,
        Format::ReportPdf,
        Format::ReportXlsx,
        Format::Evidence,
        Format::MirrorFull,
        Format::MirrorDelta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Sarif => "sarif",
            Format::JsonRaw => "json:raw",
            Format::JsonPolicy => "json:policy",
            Format::CycloneDx => "cyclonedx",
            Format::Spdx => "spdx",
            Format::ReportPdf => "report:pdf",
            Format::ReportXlsx => "report:xlsx",
            Format::Evidence => "evidence",
            Format::MirrorFull => "mirror:full",
            Format::MirrorDelta => "mirror:delta",
        }
    }

    /// Whether it is a report for people, which compares with the profile's previous run.
    pub fn is_report(self) -> bool {
        matches!(self, Format::ReportPdf | Format::ReportXlsx)
    }

    /// Whether the format exports scans (and its profiles must select some): the
    /// mirror formats export advisories and VEX instead, and take no scan selectors.
    pub fn exports_scans(self) -> bool {
        !self.is_mirror()
    }

    /// `mirror:full` or `mirror:delta`.
    pub fn is_mirror(self) -> bool {
        matches!(self, Format::MirrorFull | Format::MirrorDelta)
    }

    /// The format called `name`; an error message saying what is known otherwise.
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(format) = Self::ALL.iter().copied().find(|f| f.name() == name) {
            return Ok(format);
        }
        let known = Self::ALL
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ");
        Err(format!(
            "unknown export kind {name:?}; this version writes: {known}"
        ))
    }
}

/// What the export kind's steps need besides the store.
#[derive(Debug, Clone)]
pub struct ExportDeps {
    pub objects: Objects,
    pub signing_key: Arc<SigningKey>,
    pub metrics: ExportMetrics,
    /// The operator's named destinations (`[export.destinations]`).
    pub destinations: Destinations,
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

/// The export's steps, each run by the exporter role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStep {
    /// Fix what the run exports: the profile's selectors resolved to scans, as a plan.
    Plan,
    /// Stream the plan's items through the format's writer into files.
    Write,
    /// The manifest over the written files, the provenance, their signatures.
    Seal,
    /// Copy the files where the profile sends them.
    Distribute,
}

impl Step for ExportStep {
    const ALL: &'static [Self] = &[
        ExportStep::Plan,
        ExportStep::Write,
        ExportStep::Seal,
        ExportStep::Distribute,
    ];

    fn name(self) -> &'static str {
        match self {
            ExportStep::Plan => "plan",
            ExportStep::Write => "write",
            ExportStep::Seal => "seal",
            ExportStep::Distribute => "distribute",
        }
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
            ExportStep::Plan => plan::plan(&self.deps, params, ctx).await,
            ExportStep::Write => write::write(&self.deps, ctx).await,
            ExportStep::Seal => seal::seal(&self.deps, ctx).await,
            ExportStep::Distribute => distribute::distribute(&self.deps, ctx).await,
        }
    }

    /// `export.failed` on the tenant's events stream, and the failure metric.
    fn failed(&self, job: &Job, error: &str) -> Vec<Effect> {
        self.deps
            .metrics
            .failures
            .with_label_values(&[job.step.as_str()])
            .inc();
        let params = serde_json::from_value::<ExportParams>(job.params.clone()).ok();
        vec![Effect::Event(NewEvent {
            kind: "export.failed".to_owned(),
            dedupe_key: format!("export.failed:{}:{}", job.tenant, job.id),
            payload: serde_json::json!({
                "export_id": job.id.as_str(),
                "profile": params.as_ref().map(|p| p.profile.as_str()),
                "revision": params.as_ref().map(|p| p.revision),
                "error_code": job.step,
                "error": error,
            }),
        })]
    }
}
