//! The formats, one file each: a format's `write` reads the plan through a
//! [`WriteRun`] and stores its files with it. Counts for the manifest come from the
//! plan; a format writes bytes only.

mod csv;
mod evidence;
mod sarif;

use stella_supervisor::StepError;

use super::plan::ExportPlan;
use super::write::WriteRun;
use super::Format;

/// Writes the plan's files in `format`.
pub(super) async fn write(format: Format, run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    match format {
        Format::Csv => csv::write(run).await,
        Format::Sarif => sarif::write(run).await,
        Format::Evidence => evidence::write(run).await,
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
        Format::Csv | Format::Sarif => None,
    }
}
