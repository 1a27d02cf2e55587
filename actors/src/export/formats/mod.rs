//! The formats, one file each: a format's `write` reads the plan through a
//! [`WriteRun`] and stores its files with it. Counts for the manifest come from the
//! plan; a format writes bytes only.

mod csv;
mod cyclonedx;
mod evidence;
mod json_policy;
mod json_raw;
mod mirror;
mod report;
mod sarif;
mod spdx;

use stella_domain::sbom::{self, Sbom};
use stella_store::object::Sha256Digest;
use stella_supervisor::StepError;

use super::plan::ExportPlan;
use super::write::WriteRun;
use super::{ExportDeps, Format};

/// Writes the plan's files in `format`.
pub(super) async fn write(format: Format, run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    match format {
        Format::Csv => csv::write(run).await,
        Format::Sarif => sarif::write(run).await,
        Format::JsonPolicy => json_policy::write(run).await,
        Format::JsonRaw => json_raw::write(run).await,
        Format::CycloneDx => cyclonedx::write(run).await,
        Format::Spdx => spdx::write(run).await,
        Format::ReportPdf => report::write(run, report::Kind::Pdf).await,
        Format::ReportXlsx => report::write(run, report::Kind::Xlsx).await,
        Format::Evidence => evidence::write(run).await,
        Format::MirrorFull | Format::MirrorDelta => mirror::write(run).await,
    }
}

/// The name of the one `tar.zst` a bundle format packs every written file and the seal
/// files into (`seal` writes it, see `bundle`); `None` for formats whose files are
/// fetched one by one.
pub(super) fn bundle(format: Format, plan: &ExportPlan) -> Option<String> {
    match format {
        Format::Evidence => Some(format!(
            "evidence-{}-r{}.tar.zst",
            plan.profile, plan.revision
        )),
        Format::MirrorFull | Format::MirrorDelta => {
            Some(stella_domain::export::mirror::BUNDLE.to_owned())
        }
        Format::Csv
        | Format::Sarif
        | Format::JsonRaw
        | Format::JsonPolicy
        | Format::CycloneDx
        | Format::Spdx
        | Format::ReportPdf
        | Format::ReportXlsx => None,
    }
}

/// A scanned SBOM read back from the object store (verified against its digest) and
/// parsed into its inventory, on the blocking pool: the document formats list its
/// components, which the stored analysis keeps only in part.
async fn stored_sbom(deps: &ExportDeps, sha256: &str) -> Result<Sbom, StepError> {
    let digest = Sha256Digest::parse(sha256)?;
    let bytes = deps.objects.read_content(&digest).await?;
    tokio::task::spawn_blocking(move || sbom::parse(&bytes))
        .await
        .map_err(|err| StepError::retry(format!("reading the SBOM did not finish: {err}")))?
        .map_err(|err| StepError::abort(format!("the stored SBOM sha256/{sha256}: {err}")))
}
