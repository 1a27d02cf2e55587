//! `spdx`: a scan as an SPDX 2.3 JSON document: the scanned SBOM's packages, what contains
//! them, and the scan's findings on the packages they are about. One document per scan
//! (`scan-<id>.spdx.json`), valid for the SPDX tools (`pyspdxtools`).
//!
//! SPDX 2.3 has no vulnerability element (SPDX 3 has), so a finding is said the two ways
//! 2.3 allows, on its package:
//! - an external reference of category `SECURITY`, type `advisory`, whose locator is the
//!   vulnerability's page (OSV.dev) and whose comment names it, its aliases and summary;
//! - an annotation (`REVIEW`, by `Tool: Stella-<version>`, dated when the scan was
//!   evaluated) saying what the policy decided and why, what VEX said and what fixes it.
//!
//! **Packages.** A root package stands for the scanned target (`SPDXRef-Target`, which
//! the document `DESCRIBES`); it `CONTAINS` every package of the SBOM's inventory (the
//! subject and the components, whichever format the SBOM came in), each with its purl as
//! a `PACKAGE-MANAGER` reference (an invalid purl is left out). Packages are written in
//! canonical purl order, those without a valid purl last in document order, and numbered
//! in that order (`SPDXRef-Package-<n>`).
//!
//! **Streaming.** A finding's references sit inside its package's object, so the
//! packages and the findings are merged: a verdict lists its findings in purl order (the
//! evaluator sorts them so), the packages are in the same order, and each package is
//! written when the findings reach it, with its findings' references as they come. Only
//! one package's annotations wait for its end. A finding out of purl order is an error
//! ([`ExportError::UnsortedFindings`]); one whose purl the inventory does not have (an
//! SBOM read differently since) gets a package of its own.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    decision_text, package_of, version_of, vulnerability_url, write_json, Cited, ExportError,
    ExportFinding,
};
use crate::sbom::{Component, Sbom};

/// The SPDX version written.
pub const SPDX_VERSION: &str = "SPDX-2.3";
/// The root package's id.
pub const TARGET_ID: &str = "SPDXRef-Target";

/// What the document says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpdxDocument<'a> {
    /// Stella's version.
    pub tool_version: &'a str,
    /// The scanned target: the document's and the root package's name.
    pub target: &'a str,
    /// `documentNamespace`: a URI unique to this document (no `#`).
    pub namespace: &'a str,
    /// `creationInfo.created`: the export's `as_of`.
    pub created: DateTime<Utc>,
    /// When the findings were decided: the annotations' date.
    pub evaluated_at: DateTime<Utc>,
    /// `creationInfo.comment`: what the document is of (the scan, its digests).
    pub comment: &'a str,
}

/// SPDX's date format: UTC to the second, nothing else.
fn spdx_date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A package as the writer keeps it until it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    /// The canonical purl, for packages with a valid one.
    purl: Option<String>,
    name: String,
    version: Option<String>,
}

impl Planned {
    fn of(component: &Component) -> Self {
        let purl = component.purl.as_ref().map(|p| p.as_str().to_owned());
        // SPDX wants a name; the purl has the rest (namespace, group).
        let name = if component.name.is_empty() {
            purl.as_deref()
                .map(|p| package_of(p).rsplit('/').next().unwrap_or(p).to_owned())
                .unwrap_or_else(|| "unnamed".to_owned())
        } else {
            component.name.clone()
        };
        Self {
            version: component
                .version
                .clone()
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    component
                        .purl
                        .as_ref()
                        .and_then(|p| p.version().map(str::to_owned))
                }),
            purl,
            name,
        }
    }

    /// A package for a finding whose purl the inventory does not have.
    fn of_purl(purl: &str) -> Self {
        let package = package_of(purl);
        Self {
            purl: Some(purl.to_owned()),
            name: package.rsplit('/').next().unwrap_or(package).to_owned(),
            version: version_of(purl).map(|v| v.into_owned()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef<'a> {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Annotation<'a> {
    annotation_date: &'a str,
    annotation_type: &'static str,
    annotator: &'a str,
    comment: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship<'a> {
    spdx_element_id: &'a str,
    relationship_type: &'static str,
    related_spdx_element: &'a str,
}

/// The package being written: its references are open, its annotations wait.
#[derive(Debug)]
struct Open {
    purl: String,
    annotations: Vec<String>,
}

/// Writes one scan's document: [`start`](Self::start), each finding in verdict order with
/// [`write`](Self::write), then [`finish`](Self::finish).
#[derive(Debug)]
pub struct SpdxWriter<W: Write> {
    out: W,
    /// Packages not written yet, in writing order (`next` is the first of them).
    packages: Vec<Planned>,
    next: usize,
    /// Packages written (or open) so far: the last one's number.
    written: usize,
    open: Option<Open>,
    /// The purl of the last finding, to see one out of order.
    last_purl: Option<String>,
    annotator: String,
    annotation_date: String,
    buffer: Vec<u8>,
}

impl<W: Write> SpdxWriter<W> {
    /// Writes the document up to its first package after the root.
    pub fn start(mut out: W, doc: &SpdxDocument<'_>, sbom: &Sbom) -> io::Result<Self> {
        let mut with_purl: Vec<Planned> = Vec::new();
        let mut without: Vec<Planned> = Vec::new();
        for component in sbom.subject.iter().chain(&sbom.components) {
            let planned = Planned::of(component);
            match planned.purl {
                Some(_) => with_purl.push(planned),
                None => without.push(planned),
            }
        }
        // Stable: of two with one purl (the subject repeated as a component) the first
        // is kept.
        with_purl.sort_by(|a, b| a.purl.cmp(&b.purl));
        with_purl.dedup_by(|b, a| a.purl == b.purl);
        with_purl.append(&mut without);

        out.write_all(b"{\"spdxVersion\":")?;
        write_json(&mut out, SPDX_VERSION)?;
        out.write_all(b",\"dataLicense\":\"CC0-1.0\",\"SPDXID\":\"SPDXRef-DOCUMENT\",\"name\":")?;
        write_json(&mut out, doc.target)?;
        out.write_all(b",\"documentNamespace\":")?;
        write_json(&mut out, doc.namespace)?;
        out.write_all(b",\"creationInfo\":{\"created\":")?;
        write_json(&mut out, &spdx_date(doc.created))?;
        out.write_all(b",\"creators\":")?;
        write_json(&mut out, &[format!("Tool: Stella-{}", doc.tool_version)])?;
        out.write_all(b",\"comment\":")?;
        write_json(&mut out, doc.comment)?;
        out.write_all(b"},\"packages\":[\n{\"SPDXID\":")?;
        write_json(&mut out, TARGET_ID)?;
        out.write_all(b",\"name\":")?;
        write_json(&mut out, doc.target)?;
        out.write_all(b",\"downloadLocation\":\"NOASSERTION\",\"filesAnalyzed\":false,\"comment\":\"The scanned target: every package of its SBOM is contained in it.\"}")?;
        Ok(Self {
            out,
            packages: with_purl,
            next: 0,
            written: 0,
            open: None,
            last_purl: None,
            annotator: format!("Tool: Stella-{}", doc.tool_version),
            annotation_date: spdx_date(doc.evaluated_at),
            buffer: Vec::with_capacity(2048),
        })
    }

    /// Writes a package; when `open` (a package with a purl, whose findings follow) only
    /// up to its purl reference, the rest of its references to come.
    fn package_head(&mut self, package: &Planned, open: bool) -> io::Result<()> {
        self.written += 1;
        let out = &mut self.out;
        out.write_all(b",\n{\"SPDXID\":")?;
        write_json(out, &format!("SPDXRef-Package-{}", self.written))?;
        out.write_all(b",\"name\":")?;
        write_json(out, &package.name)?;
        if let Some(version) = &package.version {
            out.write_all(b",\"versionInfo\":")?;
            write_json(out, version)?;
        }
        out.write_all(b",\"downloadLocation\":\"NOASSERTION\",\"filesAnalyzed\":false")?;
        if let Some(purl) = package.purl.as_deref() {
            out.write_all(b",\"externalRefs\":[")?;
            write_json(
                out,
                &ExternalRef {
                    reference_category: "PACKAGE-MANAGER",
                    reference_type: "purl",
                    reference_locator: purl,
                    comment: None,
                },
            )?;
            if !open {
                out.write_all(b"]")?;
            }
        }
        if !open {
            out.write_all(b"}")?;
        }
        Ok(())
    }

    /// Closes the open package: its references, its annotations.
    fn close(&mut self) -> io::Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        self.out.write_all(b"],\"annotations\":[")?;
        for (i, comment) in open.annotations.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            write_json(
                &mut self.out,
                &Annotation {
                    annotation_date: &self.annotation_date,
                    annotation_type: "REVIEW",
                    annotator: &self.annotator,
                    comment,
                },
            )?;
        }
        self.out.write_all(b"]}")?;
        Ok(())
    }

    /// Writes the packages before `purl` that no finding named, and opens `purl`'s.
    fn open(&mut self, purl: &str) -> Result<(), ExportError> {
        if let Some(last) = &self.last_purl {
            if purl < last.as_str() {
                return Err(ExportError::UnsortedFindings {
                    previous: last.clone(),
                    purl: purl.to_owned(),
                });
            }
        }
        self.close()?;
        while let Some(package) = self.packages.get(self.next) {
            match package.purl.as_deref() {
                Some(p) if p < purl => {}
                _ => break,
            }
            let package = package.clone();
            self.next += 1;
            self.package_head(&package, false)?;
        }
        let package = match self.packages.get(self.next) {
            Some(package) if package.purl.as_deref() == Some(purl) => {
                self.next += 1;
                package.clone()
            }
            _ => Planned::of_purl(purl),
        };
        self.package_head(&package, true)?;
        self.open = Some(Open {
            purl: purl.to_owned(),
            annotations: Vec::new(),
        });
        self.last_purl = Some(purl.to_owned());
        Ok(())
    }

    /// Writes a finding on its package. Findings come in purl order (as a verdict lists
    /// them); `cited` is what the finding cites; set its fixed versions from the same
    /// advisory.
    pub fn write(
        &mut self,
        finding: &ExportFinding<'_>,
        cited: &Cited<'_>,
    ) -> Result<(), ExportError> {
        if self
            .open
            .as_ref()
            .is_none_or(|open| open.purl != finding.purl)
        {
            self.open(finding.purl)?;
        }
        let url = vulnerability_url(finding.vulnerability_id);
        let mut comment = finding.vulnerability_id.to_owned();
        if !finding.aliases.is_empty() {
            comment.push_str(&format!(" ({})", finding.aliases.join(", ")));
        }
        if let Some(summary) = finding
            .summary
            .or(cited.advisory.and_then(|a| a.summary.as_deref()))
        {
            comment.push_str(": ");
            comment.push_str(summary);
        }
        // An open package's references start with its purl: this one follows it.
        self.buffer.clear();
        self.buffer.push(b',');
        write_json(
            &mut self.buffer,
            &ExternalRef {
                reference_category: "SECURITY",
                reference_type: "advisory",
                reference_locator: &url,
                comment: Some(&comment),
            },
        )?;
        self.out.write_all(&self.buffer)?;
        let annotation = format!("{}: {}", finding.vulnerability_id, decision_text(finding));
        if let Some(open) = self.open.as_mut() {
            open.annotations.push(annotation);
        }
        Ok(())
    }

    /// Writes the packages left, the relationships and the end; flushes and hands the
    /// sink back.
    pub fn finish(mut self) -> io::Result<W> {
        self.close()?;
        while let Some(package) = self.packages.get(self.next).cloned() {
            self.next += 1;
            self.package_head(&package, false)?;
        }
        self.out.write_all(b"\n],\"relationships\":[\n")?;
        write_json(
            &mut self.out,
            &Relationship {
                spdx_element_id: "SPDXRef-DOCUMENT",
                relationship_type: "DESCRIBES",
                related_spdx_element: TARGET_ID,
            },
        )?;
        for n in 1..=self.written {
            self.out.write_all(b",\n")?;
            write_json(
                &mut self.out,
                &Relationship {
                    spdx_element_id: TARGET_ID,
                    relationship_type: "CONTAINS",
                    related_spdx_element: &format!("SPDXRef-Package-{n}"),
                },
            )?;
        }
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;
    use serde_json::{json, Value};

    use super::super::tests::{finding_json, SCAN};
    use super::*;

    fn sbom() -> Sbom {
        crate::sbom::parse(
            json!({
                "bomFormat": "CycloneDX", "specVersion": "1.5",
                "metadata": {"component": {"type": "application", "name": "app", "purl": "pkg:npm/app@2.0.0"}},
                "components": [
                    {"type": "library", "name": "zeta", "version": "1.0.0", "purl": "pkg:npm/zeta@1.0.0"},
                    {"type": "library", "name": "no-purl", "version": "3"},
                    {"type": "library", "name": "alpha", "version": "1.0.0", "purl": "pkg:npm/alpha@1.0.0"},
                    {"type": "library", "name": "mid", "version": "1.0.0", "purl": "pkg:npm/mid@1.0.0"}
                ]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn write(findings: &[Value]) -> Result<Value, ExportError> {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let doc = SpdxDocument {
            tool_version: "0.1.0",
            target: "app",
            namespace: "https://stella.dev/spdx/scans/01A/2026-01-01T00:00:00Z",
            created: at,
            evaluated_at: at,
            comment: "scan 01A",
        };
        let mut writer = SpdxWriter::start(Vec::new(), &doc, &sbom())?;
        for stored in findings {
            let view = ExportFinding::from_finding_json(SCAN, stored).unwrap();
            writer.write(&view, &Cited::default())?;
        }
        Ok(serde_json::from_slice(&writer.finish()?).unwrap())
    }

    #[test]
    fn packages_in_purl_order_carry_their_findings() {
        let doc = write(&[
            finding_json("GHSA-1", "pkg:npm/mid@1.0.0", "block"),
            finding_json("GHSA-2", "pkg:npm/mid@1.0.0", "pass"),
            finding_json("GHSA-3", "pkg:npm/unknown@1.0.0", "warn"),
            finding_json("GHSA-4", "pkg:npm/zeta@1.0.0", "warn"),
        ])
        .unwrap();
        let packages = doc["packages"].as_array().unwrap();
        let names: Vec<&str> = packages
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["app", "alpha", "app", "mid", "unknown", "zeta", "no-purl"]
        );
        let mid = &packages[3];
        assert_eq!(mid["SPDXID"], "SPDXRef-Package-3");
        let refs = mid["externalRefs"].as_array().unwrap();
        assert_eq!(refs[0]["referenceType"], "purl");
        assert_eq!(refs[1]["referenceCategory"], "SECURITY");
        assert_eq!(
            refs[1]["referenceLocator"],
            "https://osv.dev/vulnerability/GHSA-1"
        );
        assert_eq!(mid["annotations"].as_array().unwrap().len(), 2);
        assert!(mid["annotations"][0]["comment"]
            .as_str()
            .unwrap()
            .starts_with("GHSA-1: Policy: block"));
        assert!(packages[1].get("annotations").is_none());
        assert!(packages[6].get("externalRefs").is_none());
        let relationships = doc["relationships"].as_array().unwrap();
        assert_eq!(relationships.len(), 1 + 6);
        assert_eq!(relationships[0]["relationshipType"], "DESCRIBES");
        assert_eq!(relationships[6]["relatedSpdxElement"], "SPDXRef-Package-6");
    }

    #[test]
    fn findings_out_of_purl_order_are_refused() {
        let err = write(&[
            finding_json("GHSA-1", "pkg:npm/zeta@1.0.0", "block"),
            finding_json("GHSA-2", "pkg:npm/alpha@1.0.0", "pass"),
        ])
        .unwrap_err();
        assert!(matches!(err, ExportError::UnsortedFindings { .. }), "{err}");
    }
}
