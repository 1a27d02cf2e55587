//! The formats, one file each: a format's `write` reads the plan through a
//! [`WriteRun`] and stores its files with it. Counts for the manifest come from the
//! plan; a format writes bytes only.

mod csv;
mod mirror;
mod sarif;

use stella_supervisor::StepError;

use super::write::WriteRun;
use super::Format;

/// Writes the plan's files in `format`.
pub(super) async fn write(format: Format, run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    match format {
        Format::Csv => csv::write(run).await,
        Format::Sarif => sarif::write(run).await,
        Format::MirrorFull | Format::MirrorDelta => mirror::write(run).await,
    }
}

/// The file a bundle format packs every written file and the seal (`export.json`, the
/// provenance, their signatures) into, as one reproducible `tar.zst` the `seal` step
/// adds to the run's files; `None` for formats whose files are served as they are.
pub(super) fn bundle(format: Format) -> Option<&'static str> {
    match format {
        Format::MirrorFull | Format::MirrorDelta => Some(stella_domain::export::mirror::BUNDLE),
        Format::Csv | Format::Sarif => None,
    }
}
