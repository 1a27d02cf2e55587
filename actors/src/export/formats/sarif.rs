//! `sarif`: one SARIF 2.1.0 log per planned scan, `scan-<id>.sarif`, for GitHub code
//! scanning (which takes one analysis per target). Two passes over a scan's findings:
//! the rules come before the results.

use std::io::Write;

use stella_domain::export::sarif::{SarifPlan, SarifRun, SarifWriter};
use stella_supervisor::StepError;

use crate::export::write::{io_error, Pass, WriteRun};

pub(super) async fn write(run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    let plan = run.plan;
    let run_id = plan
        .as_of
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for scan in &plan.scans {
        let mut rules = SarifPlan::new();
        run.each_finding(scan, Pass::Counted, |finding, _| {
            rules.add(finding);
            Ok(())
        })
        .await?;
        let spool = run.spool()?;
        let mut about = SarifRun::new(
            env!("CARGO_PKG_VERSION"),
            &scan.target,
            &run_id,
            "sbom.json",
        );
        about.artifact_sha256 = Some(&scan.sbom_sha256);
        let mut writer = SarifWriter::start(spool, &about, rules).map_err(io_error)?;
        run.each_finding(scan, Pass::Again, |finding, _| {
            writer
                .write(finding)
                .map(drop)
                .map_err(|err| StepError::abort(format!("SARIF: {err}")))
        })
        .await?;
        let (mut out, _) = writer
            .finish()
            .map_err(|err| StepError::abort(format!("SARIF: {err}")))?;
        out.flush().map_err(io_error)?;
        run.store(out, format!("scan-{}.sarif", scan.id)).await?;
    }
    Ok(())
}
