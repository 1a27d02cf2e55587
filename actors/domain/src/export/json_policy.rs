//! `json:policy`: what the policy decided, scan by scan, with why. One JSON document per
//! export (`policy.json`):
//!
//! ```text
//! {"$schema": ..., "generator": {...}, "profile": {...}, "as_of": ...,
//!  "policies": [{"digest", "version", "document", "form"}, ...],
//!  "scans": [
//!   {"scan_id", "target", "sbom_sha256", "attestation_sha256",
//!    "verdict": {"disposition", "counts", "policy_digest", "policy_version",
//!                "evaluated_at", "inputs_hash", "inputs"},
//!    "findings": [
//!     {"ordinal", "vulnerability_id", ..., "disposition",
//!      "explain": {"decided_by", "because", "vex", "vex_evidence", "trace", "assessment"}},
//!     ...],
//!    "findings_exported": n},
//!   ...]}
//! ```
//!
//! One document rather than JSON Lines: a scan's verdict and the policy it names must come
//! with its findings, and one document says that by nesting, where JSON Lines would need
//! a record type per line and a reader that joins them back; one document also has one
//! schema ([`SCHEMA_ID`], `schemas/json-policy.schema.json`) that any JSON Schema
//! validator applies. It is still written a finding at a time, one finding per line, so
//! 100,000 findings never sit in memory, and a reader that wants a stream can split the
//! findings on lines.
//!
//! Each policy a verdict names is written once, before the scans, with the document as
//! stored and its parsed form (`form`): the SHA-256 of the form's canonical JSON is the
//! digest the verdict recorded, so a reader can check the snapshot is the one used.
//! `trace` and `assessment` are the stored finding's own (canonical JSON); the explain's
//! other fields are read from them (the deciding step, what VEX said).

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{timestamp, vex_evidence, write_canonical, write_json, ExportError, ExportFinding};

/// The document's `$schema`: the id of the JSON Schema it is valid under.
pub const SCHEMA_ID: &str = "https://stella.dev/schemas/export/json-policy/v1.json";
/// The JSON Schema of the document (draft 2020-12).
pub const SCHEMA: &str = include_str!("schemas/json-policy.schema.json");

/// What the document says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyExport<'a> {
    /// Stella's version.
    pub tool_version: &'a str,
    pub profile: &'a str,
    pub revision: u64,
    pub as_of: DateTime<Utc>,
}

/// A policy as a verdict was evaluated with it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PolicySnapshot<'a> {
    /// `sha256:<hex>` of the canonical JSON of `form`.
    pub digest: &'a str,
    /// The tenant's policy version with this digest; `None` for the built-in default.
    pub version: Option<u64>,
    /// The policy document as stored (TOML).
    pub document: &'a str,
    /// The parsed policy, whose canonical JSON the digest is of.
    #[serde(skip)]
    pub form: &'a Value,
}

/// A scan's verdict as recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyScan<'a> {
    pub scan_id: &'a str,
    pub target: &'a str,
    pub sbom_sha256: &'a str,
    pub attestation_sha256: &'a str,
    pub disposition: &'a str,
    /// The verdict's counts (every finding's, not only the exported ones).
    pub counts: &'a Value,
    pub policy_digest: &'a str,
    pub policy_version: Option<u64>,
    pub evaluated_at: DateTime<Utc>,
    pub inputs_hash: &'a str,
    /// The digests of every input (SBOM, advisories, VEX documents, policy, time).
    pub inputs: &'a Value,
}

#[derive(Serialize)]
struct Explain<'a> {
    /// What decided: `rule:<id>`, `exception:<id>` or `default`.
    decided_by: Option<&'a str>,
    because: Option<&'a str>,
    vex: Vec<&'static str>,
    vex_evidence: Vec<&'a str>,
}

#[derive(Serialize)]
struct FindingHead<'a> {
    ordinal: u64,
    vulnerability_id: &'a str,
    aliases: &'a [&'a str],
    summary: Option<&'a str>,
    purl: &'a str,
    package: &'a str,
    installed_version: Option<&'a str>,
    severity: &'static str,
    cvss: Option<f64>,
    severity_label: Option<&'a str>,
    disposition: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between scans (or before the first).
    Scans { first: bool },
    /// Inside a scan's findings.
    Findings { first: bool },
}

/// Writes `policy.json`: [`start`](Self::start) with the policies, then for each scan
/// [`begin_scan`](Self::begin_scan) and its findings, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct PolicyWriter<W: Write> {
    out: W,
    state: State,
    exported: u64,
    line: Vec<u8>,
}

impl<W: Write> PolicyWriter<W> {
    /// Writes everything before the first scan: the head and each policy once.
    pub fn start(
        mut out: W,
        about: &PolicyExport<'_>,
        policies: &[PolicySnapshot<'_>],
    ) -> io::Result<Self> {
        out.write_all(b"{\"$schema\":")?;
        write_json(&mut out, SCHEMA_ID)?;
        out.write_all(b",\"generator\":{\"name\":\"Stella\",\"version\":")?;
        write_json(&mut out, about.tool_version)?;
        out.write_all(b"},\"profile\":{\"name\":")?;
        write_json(&mut out, about.profile)?;
        out.write_all(b",\"revision\":")?;
        write_json(&mut out, &about.revision)?;
        out.write_all(b"},\"as_of\":")?;
        write_json(&mut out, &timestamp(about.as_of))?;
        out.write_all(b",\"policies\":[")?;
        for (i, policy) in policies.iter().enumerate() {
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            out.write_all(b"{\"digest\":")?;
            write_json(&mut out, policy.digest)?;
            out.write_all(b",\"version\":")?;
            write_json(&mut out, &policy.version)?;
            out.write_all(b",\"document\":")?;
            write_json(&mut out, policy.document)?;
            out.write_all(b",\"form\":")?;
            write_canonical(&mut out, policy.form)?;
            out.write_all(b"}")?;
        }
        out.write_all(b"],\"scans\":[")?;
        Ok(Self {
            out,
            state: State::Scans { first: true },
            exported: 0,
            line: Vec::with_capacity(4096),
        })
    }

    /// Ends the scan before, if any, and writes this scan's verdict.
    pub fn begin_scan(&mut self, scan: &PolicyScan<'_>) -> io::Result<()> {
        let first = match self.state {
            State::Scans { first } => first,
            State::Findings { .. } => {
                self.end_scan()?;
                false
            }
        };
        let out = &mut self.out;
        out.write_all(if first { b"\n" } else { b",\n" })?;
        out.write_all(b"{\"scan_id\":")?;
        write_json(out, scan.scan_id)?;
        out.write_all(b",\"target\":")?;
        write_json(out, scan.target)?;
        out.write_all(b",\"sbom_sha256\":")?;
        write_json(out, scan.sbom_sha256)?;
        out.write_all(b",\"attestation_sha256\":")?;
        write_json(out, scan.attestation_sha256)?;
        out.write_all(b",\"verdict\":{\"disposition\":")?;
        write_json(out, scan.disposition)?;
        out.write_all(b",\"counts\":")?;
        write_canonical(out, scan.counts)?;
        out.write_all(b",\"policy_digest\":")?;
        write_json(out, scan.policy_digest)?;
        out.write_all(b",\"policy_version\":")?;
        write_json(out, &scan.policy_version)?;
        out.write_all(b",\"evaluated_at\":")?;
        write_json(out, &timestamp(scan.evaluated_at))?;
        out.write_all(b",\"inputs_hash\":")?;
        write_json(out, scan.inputs_hash)?;
        out.write_all(b",\"inputs\":")?;
        write_canonical(out, scan.inputs)?;
        out.write_all(b"},\"findings\":[")?;
        self.state = State::Findings { first: true };
        self.exported = 0;
        Ok(())
    }

    /// Writes a finding of the current scan: `finding` is the view of `stored` (the
    /// finding's JSON as the evaluator recorded it), `ordinal` its place in the verdict.
    pub fn write(
        &mut self,
        ordinal: u64,
        finding: &ExportFinding<'_>,
        stored: &Value,
    ) -> Result<(), ExportError> {
        let State::Findings { first } = self.state else {
            return Err(ExportError::OutOfOrder("a finding before its scan"));
        };
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(if first { b"\n" } else { b",\n" });
        write_json(
            line,
            &FindingHead {
                ordinal,
                vulnerability_id: finding.vulnerability_id,
                aliases: &finding.aliases,
                summary: finding.summary,
                purl: finding.purl,
                package: finding.package,
                installed_version: finding.installed_version.as_deref(),
                severity: finding.severity(),
                cvss: finding.cvss_score,
                severity_label: finding.severity_label,
                disposition: finding.disposition.as_str(),
            },
        )?;
        // Each closing brace taken back: the explain goes in the finding's object, and the
        // stored trace and assessment in the explain's.
        line.pop();
        line.extend_from_slice(b",\"explain\":");
        write_json(
            line,
            &Explain {
                decided_by: finding.rule_id,
                because: finding.reason,
                vex: finding.vex.iter().map(|v| v.as_str()).collect(),
                vex_evidence: vex_evidence(stored),
            },
        )?;
        line.pop();
        // The stored trace and assessment, whole: the explain trace as the evaluator
        // wrote it, every step and every claim with its evidence.
        for key in ["trace", "assessment"] {
            line.extend_from_slice(b",\"");
            line.extend_from_slice(key.as_bytes());
            line.extend_from_slice(b"\":");
            write_canonical(line, stored.get(key).unwrap_or(&Value::Null))?;
        }
        line.extend_from_slice(b"}}");
        self.out.write_all(line)?;
        self.state = State::Findings { first: false };
        self.exported += 1;
        Ok(())
    }

    fn end_scan(&mut self) -> io::Result<()> {
        self.out.write_all(b"\n],\"findings_exported\":")?;
        write_json(&mut self.out, &self.exported)?;
        self.out.write_all(b"}")?;
        self.state = State::Scans { first: false };
        Ok(())
    }

    /// Ends the last scan and the document, flushes, and hands the sink back.
    pub fn finish(mut self) -> io::Result<W> {
        if let State::Findings { .. } = self.state {
            self.end_scan()?;
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
    use serde_json::json;

    use super::super::tests::{finding_json, SCAN};
    use super::*;

    fn document(findings: &[Value]) -> Vec<u8> {
        let form = json!({"rules": []});
        let policies = [PolicySnapshot {
            digest: "sha256:00",
            version: Some(2),
            document: "[[rules]]\n",
            form: &form,
        }];
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let about = PolicyExport {
            tool_version: "0.1.0",
            profile: "p",
            revision: 1,
            as_of: at,
        };
        let mut writer = PolicyWriter::start(Vec::new(), &about, &policies).unwrap();
        let counts = json!({"findings": findings.len(), "block": 1});
        let inputs = json!({"sbom": "sha256:ab", "policy": "sha256:00"});
        for scan_id in ["01A", "01B"] {
            writer
                .begin_scan(&PolicyScan {
                    scan_id,
                    target: "app",
                    sbom_sha256: "ab",
                    attestation_sha256: "cd",
                    disposition: "block",
                    counts: &counts,
                    policy_digest: "sha256:00",
                    policy_version: Some(2),
                    evaluated_at: at,
                    inputs_hash: "sha256:ef",
                    inputs: &inputs,
                })
                .unwrap();
            for (i, stored) in findings.iter().enumerate() {
                let view = ExportFinding::from_finding_json(SCAN, stored).unwrap();
                writer.write(i as u64, &view, stored).unwrap();
            }
        }
        writer.finish().unwrap()
    }

    #[test]
    fn every_scan_has_its_verdict_and_each_finding_its_explain_trace() {
        let findings = [
            finding_json("GHSA-1", "pkg:npm/a@1.0.0", "pass"),
            finding_json("GHSA-2", "pkg:npm/b@2.0.0", "block"),
        ];
        let bytes = document(&findings);
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["$schema"], SCHEMA_ID);
        assert_eq!(doc["policies"][0]["version"], 2);
        let scans = doc["scans"].as_array().unwrap();
        assert_eq!(scans.len(), 2);
        assert_eq!(scans[1]["verdict"]["policy_version"], 2);
        assert_eq!(scans[1]["findings_exported"], 2);
        let finding = &scans[0]["findings"][0];
        assert_eq!(finding["ordinal"], 0);
        assert_eq!(finding["vulnerability_id"], "GHSA-1");
        assert_eq!(finding["explain"]["decided_by"], "rule:not-applicable");
        assert_eq!(finding["explain"]["vex"], json!(["not_affected"]));
        assert_eq!(
            finding["explain"]["vex_evidence"],
            json!(["vex:sha256:ab#/statements/0"])
        );
        assert_eq!(finding["explain"]["trace"], findings[0]["trace"]);
        assert_eq!(finding["explain"]["assessment"], findings[0]["assessment"]);
        // One finding per line, and the same bytes again.
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("{\"ordinal\""))
                .count(),
            4
        );
        assert_eq!(document(&findings), bytes);
    }

    #[test]
    fn a_scan_without_findings_is_an_empty_list_and_a_finding_needs_its_scan() {
        let bytes = document(&[]);
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["scans"][0]["findings"], json!([]));
        assert_eq!(doc["scans"][0]["findings_exported"], 0);

        let form = json!({});
        let about = PolicyExport {
            tool_version: "0",
            profile: "p",
            revision: 1,
            as_of: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        };
        let mut writer = PolicyWriter::start(
            Vec::new(),
            &about,
            &[PolicySnapshot {
                digest: "d",
                version: None,
                document: "",
                form: &form,
            }],
        )
        .unwrap();
        let stored = finding_json("X", "pkg:npm/x@1", "warn");
        let view = ExportFinding::from_finding_json(SCAN, &stored).unwrap();
        assert!(matches!(
            writer.write(0, &view, &stored),
            Err(ExportError::OutOfOrder(_))
        ));
        let empty: Value = serde_json::from_slice(&writer.finish().unwrap()).unwrap();
        assert_eq!(empty["scans"], json!([]));
    }
}
