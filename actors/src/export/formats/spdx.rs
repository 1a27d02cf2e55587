//! `spdx`: one SPDX 2.3 document per planned scan, `scan-<id>.spdx.json` (see
//! [`SpdxWriter`]): the scanned SBOM's packages, read back from the stored SBOM, in a
//! root package for the target, with the scan's kept findings as security references
//! and annotations on their packages. Two passes: what the findings cite is loaded
//! between them.

use std::io::Write;

use stella_domain::export::spdx::{SpdxDocument, SpdxWriter};
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
        // Unique to the scan and the export time; equal for equal inputs.
        let namespace = format!("https://stella.dev/spdx/scans/{}/{as_of}", scan.id);
        let comment = format!(
            "Stella scan {} of {}, evaluated at {}: {}. SBOM sha256:{}, verdict attestation \
             sha256:{}, inputs {}.",
            scan.id,
            scan.target,
            timestamp(scan.evaluated_at),
            scan.disposition,
            scan.sbom_sha256,
            scan.attestation_sha256,
            facts.record.inputs_hash.as_deref().unwrap_or("unknown"),
        );
        let doc = SpdxDocument {
            tool_version: env!("CARGO_PKG_VERSION"),
            target: &scan.target,
            namespace: &namespace,
            created: plan.as_of,
            evaluated_at: scan.evaluated_at,
            comment: &comment,
        };
        let spool = run.spool()?;
        let mut writer = SpdxWriter::start(spool, &doc, &sbom).map_err(io_error)?;
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
                .map_err(|err| StepError::abort(format!("SPDX: {err}")))
        })
        .await?;
        let mut out = writer.finish().map_err(io_error)?;
        out.flush().map_err(io_error)?;
        run.store(out, format!("scan-{}.spdx.json", scan.id))
            .await?;
    }
    Ok(())
}
