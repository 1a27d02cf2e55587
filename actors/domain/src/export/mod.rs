//! The export writers, as pure streaming functions: findings go in one at a time and
//! bytes come out through a [`std::io::Write`], so a 100,000-finding export never sits in
//! memory as one document. No clock (times are arguments), no file system, no async: the
//! exporter's steps own the object store and the job, these functions own the bytes.
//!
//! Every writer takes [`ExportFinding`]s: the columns people and tools ask for, read from a
//! stored finding's JSON ([`ExportFinding::from_finding_json`]) or from a
//! [`Finding`] ([`ExportFinding::from_finding`]), borrowing its
//! strings. Two things a finding does not hold come from its context: the scan it belongs
//! to ([`ExportScan`]) and the versions that fix it, which are the advisory's
//! ([`fixed_versions`]; set [`ExportFinding::fixed_versions`]).
//!
//! The document formats also take what a finding cites ([`Cited`]: the advisory record it
//! was matched against and the VEX statements its claims name), which the caller looks up
//! by the digests the scan recorded.
//!
//! Layout:
//! - [`csv`]: one row per finding, RFC 4180, formula injection neutralised;
//! - [`sarif`]: SARIF 2.1.0 for GitHub code scanning, rules first, within its limits;
//! - [`json_policy`]: `json:policy`, verdicts with every finding's explain trace and the
//!   policies they were evaluated with;
//! - [`json_raw`]: `json:raw`, the inputs as stored: SBOM digests, advisory observations,
//!   VEX statements;
//! - [`cyclonedx`]: CycloneDX 1.6 JSON, a scan's components with their vulnerabilities
//!   and VEX analysis;
//! - [`spdx`]: SPDX 2.3 JSON, a scan's packages with their advisories as security
//!   references and annotations;
//! - [`manifest`]: `export.json` (canonical JSON) and `provenance.json` (in-toto);
//! - [`tar`]: a reproducible ustar writer and its zstd compression;
//! - [`report`]: reports for people, as PDF and XLSX, from a [`report::ReportData`];
//! - [`mirror`]: the members of mirror bundles (advisories and VEX as JSON Lines);
//! - [`verify`]: reading a `tar.zst` bundle as hostile input and checking an export
//!   against its manifest, provenance and signatures (`stella export verify`, and
//!   `stella mirror import` before it reads a record).
//!
//! Not here: selecting findings (the store).

pub mod csv;
pub mod cyclonedx;
pub mod json_policy;
pub mod json_raw;
pub mod manifest;
pub mod mirror;
pub mod report;
pub mod sarif;
pub mod spdx;
pub mod tar;
pub mod verify;

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use crate::canonical::CanonicalError;
use crate::ecosystem::PackageKey;
use crate::error::InputError;
use crate::intoto::InTotoError;
use crate::osv::Advisory;
use crate::policy::Disposition;
use crate::scan::Finding;
use crate::version::osv::{OsvEvent, RangeType};
use crate::vex::VexStatement;

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The sink refused the bytes (or a tar entry's reader failed).
    #[error("cannot write the export")]
    Io(#[from] std::io::Error),
    /// A stored finding that is not a finding.
    #[error("finding is malformed")]
    Finding(#[from] InputError),
    /// A SARIF result whose vulnerability the rules pass did not see.
    #[error("vulnerability {0:?} has no rule: the first pass did not see it")]
    UnknownRule(String),
    /// Tar entries must come in strictly increasing name order.
    #[error("tar entry {name:?} does not come after {previous:?}: entries are written in name order, each once")]
    Unsorted { previous: String, name: String },
    /// A tar entry name that is empty, absolute, has `.`/`..` or empty segments, a NUL, or
    /// does not fit ustar's name and prefix fields.
    #[error("tar entry name {name:?} is not allowed: {reason}")]
    BadName { name: String, reason: &'static str },
    /// An entry larger than ustar's 11 octal digits record (8 GiB - 1).
    #[error("tar entry {name:?} of {size} bytes is larger than ustar can record")]
    TooLarge { name: String, size: u64 },
    /// An entry's reader gave other than the bytes it was declared with (`actual` is
    /// `declared + 1` when it gave more: the rest is not read).
    #[error("tar entry {name:?} was declared with {declared} bytes but its reader gave {actual}")]
    SizeMismatch {
        name: String,
        declared: u64,
        actual: u64,
    },
    /// A modification time beyond ustar's 11 octal digits (year 2242).
    #[error("mtime {0} is beyond what ustar can record")]
    Mtime(u64),
    /// A manifest file name given twice.
    #[error("file {0:?} is listed twice in the manifest")]
    DuplicateFile(String),
    /// A document writer called out of its order (a finding before its scan, a section
    /// after a later one).
    #[error("the export writer was called out of order: {0}")]
    OutOfOrder(&'static str),
    /// A finding whose package comes before one already written: the writer needs the
    /// findings in purl order, as a verdict lists them.
    #[error("finding of {purl:?} comes after {previous:?}: findings are written in purl order")]
    UnsortedFindings { previous: String, purl: String },
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    #[error(transparent)]
    InToto(#[from] InTotoError),
}

/// The scan a finding belongs to: what every row repeats so that a file passed around on
/// its own still says where each finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportScan<'a> {
    pub tenant: &'a str,
    pub scan_id: &'a str,
    /// The scanned target as people name it (the SBOM's name, an image reference).
    pub target: &'a str,
}

/// What a VEX statement said about a finding, read back from the claims it made (see
/// [`crate::vex::claims`]): `under_investigation` makes no claim, so it is never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VexSaid {
    NotAffected,
    Affected,
    Fixed,
}

impl VexSaid {
    /// The OpenVEX status name.
    pub fn as_str(self) -> &'static str {
        match self {
            VexSaid::NotAffected => "not_affected",
            VexSaid::Affected => "affected",
            VexSaid::Fixed => "fixed",
        }
    }

    fn of_claim(question: &str, value: bool) -> Option<Self> {
        match (question, value) {
            ("applies", true) => Some(VexSaid::Affected),
            ("fixed", true) => Some(VexSaid::Fixed),
            ("applies" | "present", false) | ("mitigated", true) => Some(VexSaid::NotAffected),
            _ => None,
        }
    }
}

/// One finding as the export formats see it. The strings borrow from the stored finding;
/// the installed version is decoded from the purl (borrowed unless it was
/// percent-encoded).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportFinding<'a> {
    pub scan: ExportScan<'a>,
    /// The advisory's own id.
    pub vulnerability_id: &'a str,
    pub aliases: Vec<&'a str>,
    pub summary: Option<&'a str>,
    /// The component's purl, with version and qualifiers, canonical.
    pub purl: &'a str,
    /// `pkg:type/namespace/name`: the purl without version, qualifiers or subpath.
    pub package: &'a str,
    pub installed_version: Option<Cow<'a, str>>,
    /// The versions that fix it, from the advisory (a finding does not hold them): empty
    /// until the caller sets them with [`fixed_versions`].
    pub fixed_versions: Vec<Cow<'a, str>>,
    /// The score the policy decided on: the highest CVSS base score of the advisory, or
    /// the stand-in for its database's severity word when it has no vector.
    pub cvss_score: Option<f64>,
    /// The database's severity word (GitHub's `LOW`..`CRITICAL`), as written.
    pub severity_label: Option<&'a str>,
    pub disposition: Disposition,
    /// What VEX statements said, each status once, in [`VexSaid`] order; two different
    /// ones are a conflict the policy saw.
    pub vex: Vec<VexSaid>,
    /// What decided: `rule:<id>`, `exception:<id>` or `default`.
    pub rule_id: Option<&'a str>,
    /// The deciding step's `because`.
    pub reason: Option<&'a str>,
}

/// What a finding cites, looked up by the caller from the digests its scan recorded: the
/// advisory record it was matched against (as it was then, not as it is now) and the VEX
/// statements its claims name. Either may be missing (an advisory whose observation is
/// gone, a finding no VEX statement speaks of).
#[derive(Debug, Clone, Default)]
pub struct Cited<'a> {
    pub advisory: Option<&'a Advisory>,
    pub vex: Vec<&'a VexStatement>,
}

/// The VEX statements a stored finding's claims cite, as their evidence names them
/// (`vex:sha256:<document>#<pointer>`), each once, in order.
pub fn vex_evidence(finding: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = finding
        .pointer("/assessment/claims")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|claim| claim.get("evidence").and_then(Value::as_str))
        .filter(|evidence| evidence.starts_with("vex:"))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A VEX evidence reference split into the document's hex digest and the statement's
/// JSON pointer: `vex:sha256:<hex>#<pointer>`.
pub fn parse_vex_evidence(evidence: &str) -> Option<(&str, &str)> {
    let rest = evidence.strip_prefix("vex:sha256:")?;
    let (sha256, pointer) = rest.split_once('#')?;
    (sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((sha256, pointer))
}

/// The page about a vulnerability on OSV.dev, which answers for every id Stella matches
/// (GHSA, GO, PYSEC, CVE, ...): the URL the documents give as a vulnerability's source.
pub fn vulnerability_url(id: &str) -> String {
    const ID: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_');
    format!(
        "https://osv.dev/vulnerability/{}",
        percent_encoding::utf8_percent_encode(id, ID)
    )
}

/// What the policy decided about a finding and why, in one sentence people read:
/// `Policy: block (critical severity, CVSS 9.8) by rule:x: because. VEX: not_affected.
/// Fixed in 1.2.3.`
pub fn decision_text(finding: &ExportFinding<'_>) -> String {
    let mut text = format!(
        "Policy: {} ({} severity",
        finding.disposition.as_str(),
        finding.severity()
    );
    if let Some(score) = finding.cvss_text() {
        text.push_str(&format!(", CVSS {score}"));
    }
    text.push(')');
    if let Some(rule) = finding.rule_id {
        text.push_str(" by ");
        text.push_str(rule);
    }
    if let Some(reason) = finding.reason.filter(|r| !r.is_empty()) {
        text.push_str(": ");
        text.push_str(reason);
    }
    text.push('.');
    if !finding.vex.is_empty() {
        let said: Vec<&str> = finding.vex.iter().map(|v| v.as_str()).collect();
        text.push_str(&format!(" VEX: {}.", said.join(", ")));
    }
    if finding.fixed_versions.is_empty() {
        text.push_str(" No fixed version is known.");
    } else {
        let fixed: Vec<&str> = finding.fixed_versions.iter().map(|v| v.as_ref()).collect();
        text.push_str(&format!(" Fixed in {}.", fixed.join(", ")));
    }
    text
}

/// Writes `value` as compact JSON (a `Value` inside it in its map's order: callers pass
/// canonical ones through [`write_canonical`]).
pub(crate) fn write_json<W: Write + ?Sized, T: Serialize + ?Sized>(
    out: &mut W,
    value: &T,
) -> io::Result<()> {
    serde_json::to_writer(out, value).map_err(io::Error::other)
}

/// Writes a JSON value as canonical JSON (RFC 8785: sorted keys), so stored JSON comes
/// out the same whatever map order the process's `serde_json` keeps.
pub(crate) fn write_canonical<W: Write + ?Sized>(out: &mut W, value: &Value) -> io::Result<()> {
    out.write_all(&crate::canonical::canonical_bytes(value))
}

/// A time as the documents write it: RFC 3339 UTC to the second (`2026-01-01T00:00:00Z`).
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The qualitative rating of a CVSS base score (CVSS v3.x and v4.0 use the same bands):
/// `critical` from 9.0, `high` from 7.0, `medium` from 4.0, `low` above 0, else `none`.
pub fn severity_rating(score: f64) -> &'static str {
    if score >= 9.0 {
        "critical"
    } else if score >= 7.0 {
        "high"
    } else if score >= 4.0 {
        "medium"
    } else if score > 0.0 {
        "low"
    } else {
        "none"
    }
}

impl<'a> ExportFinding<'a> {
    /// Reads a stored finding (the JSON text the evaluator recorded, parsed): the fields
    /// of [`Finding`] the exports need. Unknown fields are ignored; a missing or mistyped
    /// one is an [`InputError`] naming its JSON pointer.
    pub fn from_finding_json(scan: ExportScan<'a>, finding: &'a Value) -> Result<Self, InputError> {
        let str_at = |pointer: &str| -> Result<&'a str, InputError> {
            finding
                .pointer(pointer)
                .and_then(Value::as_str)
                .ok_or_else(|| InputError::new(pointer, "expected a string"))
        };
        let opt_str_at = |pointer: &str| -> Result<Option<&'a str>, InputError> {
            match finding.pointer(pointer) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(InputError::new(pointer, "expected a string or null")),
            }
        };
        let vulnerability_id = str_at("/vulnerability_id")?;
        let purl = str_at("/purl")?;
        let aliases = match finding.get("aliases") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    a.as_str().ok_or_else(|| {
                        InputError::new(format!("/aliases/{i}"), "expected a string")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(InputError::new("/aliases", "expected an array")),
        };
        let cvss_score = match finding.get("severity") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => return Err(InputError::new("/severity", "expected a number or null")),
        };
        let disposition = match str_at("/disposition")? {
            "pass" => Disposition::Pass,
            "warn" => Disposition::Warn,
            "block" => Disposition::Block,
            _ => {
                return Err(InputError::new(
                    "/disposition",
                    "expected pass, warn or block",
                ))
            }
        };
        let mut vex = Vec::new();
        if let Some(claims) = finding
            .pointer("/assessment/claims")
            .and_then(Value::as_array)
        {
            for claim in claims {
                let evidence = claim.get("evidence").and_then(Value::as_str);
                let question = claim.get("question").and_then(Value::as_str);
                let value = claim.get("value").and_then(Value::as_bool);
                if let (Some(evidence), Some(question), Some(value)) = (evidence, question, value) {
                    if evidence.starts_with("vex:") {
                        vex.extend(VexSaid::of_claim(question, value));
                    }
                }
            }
        }
        vex.sort_unstable();
        vex.dedup();
        // The deciding step is the last one with an outcome (an expired exception before
        // it has none).
        let decided = finding
            .get("trace")
            .and_then(Value::as_array)
            .and_then(|steps| {
                steps
                    .iter()
                    .rev()
                    .find(|s| s.get("output").is_some_and(|o| !o.is_null()))
            });
        Ok(Self {
            scan,
            vulnerability_id,
            aliases,
            summary: opt_str_at("/summary")?,
            purl,
            package: package_of(purl),
            installed_version: version_of(purl),
            fixed_versions: Vec::new(),
            cvss_score,
            severity_label: opt_str_at("/severity_label")?,
            disposition,
            vex,
            rule_id: decided.and_then(|s| s.get("by")).and_then(Value::as_str),
            reason: decided
                .and_then(|s| s.get("because"))
                .and_then(Value::as_str),
        })
    }

    /// The same view of an evaluated [`Finding`].
    pub fn from_finding(scan: ExportScan<'a>, finding: &'a Finding) -> Self {
        let mut vex: Vec<VexSaid> = finding
            .assessment
            .claims
            .iter()
            .filter(|c| c.evidence.starts_with("vex:"))
            .filter_map(|c| {
                let question = match c.question {
                    crate::lattice::Question::Present => "present",
                    crate::lattice::Question::Applies => "applies",
                    crate::lattice::Question::Fixed => "fixed",
                    crate::lattice::Question::Mitigated => "mitigated",
                };
                VexSaid::of_claim(question, c.value)
            })
            .collect();
        vex.sort_unstable();
        vex.dedup();
        let decided = finding.trace.iter().rev().find(|s| s.output.is_some());
        Self {
            scan,
            vulnerability_id: &finding.vulnerability_id,
            aliases: finding.aliases.iter().map(String::as_str).collect(),
            summary: finding.summary.as_deref(),
            purl: &finding.purl,
            package: package_of(&finding.purl),
            installed_version: version_of(&finding.purl),
            fixed_versions: Vec::new(),
            cvss_score: finding.severity,
            severity_label: finding.severity_label.as_deref(),
            disposition: finding.disposition,
            vex,
            rule_id: decided.map(|s| s.by.as_str()),
            reason: decided.map(|s| s.because.as_str()),
        }
    }

    /// Sets the versions that fix the finding (see [`fixed_versions`]).
    #[must_use]
    pub fn with_fixed_versions<S: Into<Cow<'a, str>>>(
        mut self,
        versions: impl IntoIterator<Item = S>,
    ) -> Self {
        self.fixed_versions = versions.into_iter().map(Into::into).collect();
        self
    }

    /// The severity as one lowercase word: the rating of the CVSS score when there is
    /// one, else the database's word (`moderate` read as `medium`), else `unknown`.
    pub fn severity(&self) -> &'static str {
        if let Some(score) = self.cvss_score {
            return severity_rating(score);
        }
        match self.severity_label.map(str::to_ascii_uppercase).as_deref() {
            Some("CRITICAL") => "critical",
            Some("HIGH") => "high",
            Some("MODERATE" | "MEDIUM") => "medium",
            Some("LOW") => "low",
            _ => "unknown",
        }
    }

    /// The CVSS score with one decimal, as scores are written (`9.8`, `7.0`).
    pub fn cvss_text(&self) -> Option<String> {
        self.cvss_score.map(|s| format!("{s:.1}"))
    }
}

/// The purl's package part, `pkg:type/namespace/name`: everything before the version,
/// qualifiers and subpath. The `@` of a version is the last one after the last `/` (an
/// npm scope's `@` comes before a `/`).
pub fn package_of(purl: &str) -> &str {
    let end = purl.find(['?', '#']).unwrap_or(purl.len());
    let head = &purl[..end];
    let name_start = head.rfind('/').map_or(0, |i| i + 1);
    match head[name_start..].rfind('@') {
        Some(at) => &head[..name_start + at],
        None => head,
    }
}

/// The purl's version, percent-decoded (`1%3A2.3` is the Debian version `1:2.3`).
pub fn version_of(purl: &str) -> Option<Cow<'_, str>> {
    let end = purl.find(['?', '#']).unwrap_or(purl.len());
    let package = package_of(purl);
    let version = purl.get(package.len() + 1..end).filter(|v| !v.is_empty())?;
    if !version.contains('%') {
        return Some(Cow::Borrowed(version));
    }
    percent_encoding::percent_decode_str(version)
        .decode_utf8()
        .ok()
        .or(Some(Cow::Borrowed(version)))
}

/// The versions an advisory says fix `package`: the `fixed` events of its version ranges
/// (not git commits) for that package, each once, in the advisory's order. A package
/// fixed nowhere (only `last_affected` or listed versions) has none.
pub fn fixed_versions<'a>(advisory: &'a Advisory, package: &PackageKey) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for affected in &advisory.affected {
        if affected.package.as_ref() != Some(package) {
            continue;
        }
        for range in &affected.matcher.ranges {
            if range.kind == RangeType::Git {
                continue;
            }
            for event in &range.events {
                if let OsvEvent::Fixed(version) = event {
                    if !out.contains(&version.as_str()) {
                        out.push(version);
                    }
                }
            }
        }
    }
    out
}

/// The versions `advisory` says fix the package of `purl` ([`fixed_versions`]); none when
/// the purl is not one of a package Stella matches.
pub fn fixed_versions_of<'a>(advisory: &'a Advisory, purl: &str) -> Vec<&'a str> {
    match crate::purl::Purl::parse(purl)
        .ok()
        .and_then(|p| p.package_key())
    {
        Some(key) => fixed_versions(advisory, &key),
        None => Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// A stored finding as the evaluator writes it (keys as `Finding` serializes them).
    pub(crate) fn finding_json(id: &str, purl: &str, disposition: &str) -> Value {
        json!({
            "vulnerability_id": id,
            "aliases": [format!("CVE-{id}")],
            "summary": format!("{id} in a package"),
            "purl": purl,
            "bom_refs": ["ref-1"],
            "severity": 9.8,
            "severity_label": "HIGH",
            "assessment": {
                "values": {"present": "true", "applies": "false"},
                "claims": [
                    {"question": "present", "value": true, "evidence": "sbom:ref-1"},
                    {"question": "applies", "value": false, "evidence": "vex:sha256:ab#/statements/0"}
                ]
            },
            "disposition": disposition,
            "trace": [
                {"by": "exception:old", "policy_version": 1, "inputs": {}, "output": null, "because": "expired; no longer applies"},
                {"by": "rule:not-applicable", "policy_version": 1, "inputs": {}, "output": disposition, "because": "VEX says it does not apply"}
            ]
        })
    }

    pub(crate) const SCAN: ExportScan<'static> = ExportScan {
        tenant: "acme",
        scan_id: "01J0SCAN",
        target: "registry.example/app",
    };

    #[test]
    fn a_stored_finding_reads_into_the_export_view() {
        let value = finding_json(
            "GHSA-1",
            "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12",
            "pass",
        );
        let f = ExportFinding::from_finding_json(SCAN, &value).unwrap();
        assert_eq!(f.vulnerability_id, "GHSA-1");
        assert_eq!(f.aliases, ["CVE-GHSA-1"]);
        assert_eq!(f.package, "pkg:deb/debian/curl");
        assert_eq!(f.installed_version.as_deref(), Some("7.88.1-10+deb12u5"));
        assert_eq!(f.vex, [VexSaid::NotAffected]);
        assert_eq!(f.rule_id, Some("rule:not-applicable"));
        assert_eq!(f.reason, Some("VEX says it does not apply"));
        assert_eq!(f.disposition, Disposition::Pass);
        assert_eq!(
            (f.severity(), f.cvss_text().as_deref()),
            ("critical", Some("9.8"))
        );

        let mut broken = value.clone();
        broken["aliases"][0] = json!(7);
        let err = ExportFinding::from_finding_json(SCAN, &broken).unwrap_err();
        assert_eq!(err.pointer, "/aliases/0");
        broken = value.clone();
        broken["disposition"] = json!("maybe");
        let err = ExportFinding::from_finding_json(SCAN, &broken).unwrap_err();
        assert_eq!(err.pointer, "/disposition");
    }

    #[test]
    fn the_json_and_the_typed_finding_give_the_same_view() {
        let value = finding_json("GHSA-2", "pkg:npm/%40angular/core@1.0.0", "warn");
        let typed: Finding = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(
            ExportFinding::from_finding_json(SCAN, &value).unwrap(),
            ExportFinding::from_finding(SCAN, &typed)
        );
    }

    #[test]
    fn purls_split_into_package_and_version() {
        let cases = [
            (
                "pkg:npm/%40angular/core@12.3.1",
                "pkg:npm/%40angular/core",
                Some("12.3.1"),
            ),
            (
                "pkg:npm/@angular/core@12.3.1",
                "pkg:npm/@angular/core",
                Some("12.3.1"),
            ),
            ("pkg:npm/@angular/core", "pkg:npm/@angular/core", None),
            (
                "pkg:deb/debian/bash@1%3A5.2-1?distro=debian-12",
                "pkg:deb/debian/bash",
                Some("1:5.2-1"),
            ),
            (
                "pkg:golang/github.com/foo/bar@v1.2.3#sub/dir",
                "pkg:golang/github.com/foo/bar",
                Some("v1.2.3"),
            ),
            ("pkg:pypi/requests?x=1", "pkg:pypi/requests", None),
            ("pkg:maven/org.a/b@", "pkg:maven/org.a/b", None),
        ];
        for (purl, package, version) in cases {
            assert_eq!(package_of(purl), package, "{purl}");
            assert_eq!(version_of(purl).as_deref(), version, "{purl}");
        }
    }

    #[test]
    fn fixed_versions_come_from_the_advisory_ranges_of_that_package() {
        let advisory = crate::osv::parse_record(
            br#"{"id": "A-1", "modified": "2024-01-01T00:00:00Z",
            "affected": [
              {"package": {"ecosystem": "npm", "name": "lodash"},
               "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}, {"introduced": "5.0.0"}, {"fixed": "5.0.1"}]},
                          {"type": "GIT", "repo": "https://example.invalid/x", "events": [{"introduced": "0"}, {"fixed": "abc123"}]}]},
              {"package": {"ecosystem": "npm", "name": "lodash"},
               "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]},
              {"package": {"ecosystem": "npm", "name": "other"},
               "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "9.9.9"}]}]}
            ]}"#,
        )
        .unwrap();
        let lodash = PackageKey::new(crate::ecosystem::Ecosystem::Npm, "lodash");
        assert_eq!(fixed_versions(&advisory, &lodash), ["4.17.21", "5.0.1"]);
    }

    #[test]
    fn severity_words_follow_the_cvss_bands_then_the_database() {
        let value = finding_json("A", "pkg:npm/a@1", "warn");
        let mut f = ExportFinding::from_finding_json(SCAN, &value).unwrap();
        for (score, word) in [
            (10.0, "critical"),
            (9.0, "critical"),
            (8.9, "high"),
            (7.0, "high"),
            (6.9, "medium"),
            (4.0, "medium"),
            (3.9, "low"),
            (0.1, "low"),
            (0.0, "none"),
        ] {
            f.cvss_score = Some(score);
            assert_eq!(f.severity(), word, "{score}");
        }
        f.cvss_score = None;
        f.severity_label = Some("MODERATE");
        assert_eq!(f.severity(), "medium");
        f.severity_label = None;
        assert_eq!(f.severity(), "unknown");
    }
}
