//! The formats, one file each: a format's `write` reads the plan through a
//! [`WriteRun`] and stores its files with it. Counts for the manifest come from the
//! plan; a format writes bytes only.

mod csv;
mod report;
mod sarif;

use stella_supervisor::StepError;

use super::write::WriteRun;
use super::Format;

/// Writes the plan's files in `format`.
pub(super) async fn write(format: Format, run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    match format {
        Format::Csv => csv::write(run).await,
        Format::Sarif => sarif::write(run).await,
        Format::ReportPdf => report::write(run, report::Kind::Pdf).await,
        Format::ReportXlsx => report::write(run, report::Kind::Xlsx).await,
    }
}
