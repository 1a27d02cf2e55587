//! `cyclonedx`: one CycloneDX 1.6 BOM per planned scan, `scan-<id>.cdx.json` (see
//! [`CycloneDxWriter`]): the scanned SBOM's components, read back from the stored SBOM,
//! with the scan's kept findings as vulnerabilities, their ratings and fixes from the
//! advisory records the scan was matched against and their analysis from the VEX
//! statements they cite. Two passes: what the findings cite is loaded between them.

use std::io::Write;

use stella_domain::export::cyclonedx::{serial_number, CdxDocument, CycloneDxWriter};
use stella_domain::export::{fixed_versions_of, timestamp};
use stella_supervisor::StepError;

use super::stored_sbom;
use crate::export::cited::gather;
use crate::export::write::{io_error, Pass, WriteRun};

pub(super) async fn write(run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    let plan = run.plan;
    let (scans, cited) = gather(run).await?;
    let as_of = timestamp(plan.as_of);
    for (scan, (facts, _)) in plan.scans.iter().zip(&scans) {
        let sbom = stored_sbom(run.deps, &scan.sbom_sha256).await?;
        let evaluated_at = timestamp(scan.evaluated_at);
        let inputs_hash = facts.record.inputs_hash.clone().unwrap_or_default();
        let properties = [
            ("stella:scan_id", scan.id.as_str()),
            ("stella:target", scan.target.as_str()),
            ("stella:sbom_sha256", scan.sbom_sha256.as_str()),
            (
                "stella:attestation_sha256",
                scan.attestation_sha256.as_str(),
            ),
            ("stella:disposition", scan.disposition.as_str()),
            ("stella:evaluated_at", evaluated_at.as_str()),
            ("stella:inputs_hash", inputs_hash.as_str()),
            ("stella:as_of", as_of.as_str()),
        ];
        let serial = serial_number(&[&scan.id, &as_of]);
        let doc = CdxDocument {
            tool_version: env!("CARGO_PKG_VERSION"),
            serial_number: &serial,
            timestamp: plan.as_of,
            target: &scan.target,
            properties: &properties,
        };
        let spool = run.spool()?;
        let mut writer = CycloneDxWriter::start(spool, &doc, &sbom).map_err(io_error)?;
        drop(sbom);
        run.each_stored(scan, Pass::Again, |finding, stored| {
            let cited = cited.cited(finding, &stored.finding, facts);
            let fixed = cited
                .advisory
                .map(|a| fixed_versions_of(a, finding.purl))
                .unwrap_or_default();
            let finding = finding.clone().with_fixed_versions(fixed);
            writer
                .write(&finding, &cited)
                .map_err(|err| StepError::abort(format!("CycloneDX: {err}")))
        })
        .await?;
        let mut out = writer.finish().map_err(io_error)?;
        out.flush().map_err(io_error)?;
        run.store(out, format!("scan-{}.cdx.json", scan.id)).await?;
    }
    Ok(())
}
