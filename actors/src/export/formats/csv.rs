//! `csv`: one row per finding of every planned scan, in one `findings.csv` (RFC 4180,
//! UTF-8, formula injection neutralised; see [`CsvWriter`]).

use std::io::Write;

use stella_domain::export::csv::CsvWriter;
use stella_supervisor::StepError;

use crate::export::write::{io_error, Pass, WriteRun};

pub(super) async fn write(run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    let spool = run.spool()?;
    let mut writer = CsvWriter::new(spool).map_err(io_error)?;
    let plan = run.plan;
    for scan in &plan.scans {
        run.each_finding(scan, Pass::Counted, |finding, _| {
            writer.write(finding).map_err(io_error)
        })
        .await?;
    }
    let mut out = writer.finish().map_err(io_error)?;
    out.flush().map_err(io_error)?;
    run.store(out, "findings.csv").await?;
    Ok(())
}
