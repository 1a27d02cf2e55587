//! Reports for people (`report:pdf`, `report:xlsx`): what a person reads about a set of
//! scans, as one [`ReportData`] rendered by [`pdf`] and [`xlsx`].
//!
//! A report has an executive summary (tenant, targets, as-of time, the policies the scans
//! were evaluated with, counts by disposition and severity, what changed since the
//! previous report of the same profile), a chart of findings by severity and by
//! disposition, the worst findings with the versions that fix them, the policies'
//! exceptions and when they expire, and the evidence digests an auditor checks it with.
//! The `detailed` [`Template`] adds every finding.
//!
//! The exporter builds [`ReportData`] while it streams a run's findings: a [`Tally`]
//! counts them, [`Worst`] keeps only the worst few (never the whole list), and
//! [`ChangeKey`]s of the previous report's findings say what is new and what was
//! resolved. The writers take the data first, then (for `detailed`) every finding one at
//! a time, and hold at most a page of them. Nothing here reads a clock: the report's
//! time is its `as_of`, so equal data gives equal bytes.
//!
//! Layout: this file (the data model and its collectors), [`pdf`] (krilla, embedded
//! DejaVu fonts, vector charts), [`xlsx`] (rust_xlsxwriter, typed cells, a native chart).

pub mod pdf;
pub mod xlsx;

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use super::{ExportFinding, VexSaid};
use crate::policy::{Disposition, Policy};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The sink refused the bytes.
    #[error("cannot write the report")]
    Io(#[from] std::io::Error),
    /// The PDF library refused the document.
    #[error("cannot render the PDF report: {0}")]
    Pdf(String),
    /// The XLSX library refused the workbook.
    #[error("cannot write the XLSX report")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// An unknown `options.template`.
    #[error("{0:?} is not a report template (executive, detailed)")]
    Template(String),
}

/// How much a report shows (the profile's `options.template`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Template {
    /// The summary, the charts, the [`TOP_FINDINGS`] worst findings, exceptions and
    /// evidence.
    #[default]
    Executive,
    /// All of the executive report, then every finding.
    Detailed,
}

impl Template {
    /// The template a profile names; `executive` when it names none.
    pub fn parse(name: Option<&str>) -> Result<Self, ReportError> {
        match name {
            None | Some("executive") => Ok(Template::Executive),
            Some("detailed") => Ok(Template::Detailed),
            Some(other) => Err(ReportError::Template(other.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Template::Executive => "executive",
            Template::Detailed => "detailed",
        }
    }
}

/// How many of the worst findings a report lists.
pub const TOP_FINDINGS: usize = 20;

/// How many new and how many resolved findings a report lists (it counts them all).
pub const TOP_CHANGES: usize = 10;

/// The severity words of [`ExportFinding::severity`], worst first: the order of the
/// chart, the tallies and the ranking.
pub const SEVERITY_ORDER: [&str; 6] = ["critical", "high", "medium", "low", "none", "unknown"];

/// The dispositions, worst first.
pub const DISPOSITION_ORDER: [Disposition; 3] =
    [Disposition::Block, Disposition::Warn, Disposition::Pass];

fn severity_rank(word: &str) -> usize {
    SEVERITY_ORDER
        .iter()
        .position(|s| *s == word)
        .unwrap_or(SEVERITY_ORDER.len())
}

/// Everything a report shows but its finding list.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportData {
    pub tenant: String,
    /// The export profile and the revision the run used.
    pub profile: String,
    pub revision: u64,
    pub template: Template,
    /// What the report is as of: its date, and the PDF's and workbook's creation time.
    pub as_of: DateTime<Utc>,
    /// The export run that wrote it.
    pub export_id: String,
    /// What wrote it (`Stella 0.1.0`): the PDF's creator.
    pub generator: String,
    /// The scans reported on, in the run's order.
    pub scans: Vec<ReportScan>,
    /// The policies the scans were evaluated with, each once.
    pub policies: Vec<ReportPolicy>,
    pub tally: Tally,
    pub changes: Changes,
    /// The worst findings, worst first (see [`Worst`]), at most [`TOP_FINDINGS`].
    pub top: Vec<ReportFinding>,
    /// The policies' exceptions, in force or expired as of `as_of`.
    pub exceptions: Vec<ReportException>,
}

impl ReportData {
    /// The scans' targets, each once, in the scans' order.
    pub fn targets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for scan in &self.scans {
            if !out.contains(&scan.target.as_str()) {
                out.push(&scan.target);
            }
        }
        out
    }

    /// The policies in one line: `v3 default (sha256:…)`, or each of several.
    pub fn policy_line(&self) -> String {
        if self.policies.is_empty() {
            return "none (no scans)".to_owned();
        }
        self.policies
            .iter()
            .map(|p| format!("{} ({})", p.label(), p.digest))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What changed since the previous report, in one line.
    pub fn changes_line(&self) -> String {
        match &self.changes {
            Changes::First => "first report".to_owned(),
            Changes::Since {
                previous,
                new,
                resolved,
                ..
            } => format!(
                "{new} new, {resolved} resolved since the previous report (export {} as of {})",
                previous.export_id,
                when(previous.as_of)
            ),
        }
    }
}

/// One scan a report covers, with the digests that let an auditor check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportScan {
    pub id: String,
    pub target: String,
    pub evaluated_at: DateTime<Utc>,
    /// The scan's verdict (`pass`, `warn`, `block`).
    pub disposition: String,
    /// Its findings the profile's selectors keep.
    pub findings: u64,
    /// Hex SHA-256 of the scanned SBOM (object `sha256/<hex>`).
    pub sbom_sha256: String,
    /// Hex SHA-256 of the verdict's DSSE attestation (object `sha256/<hex>`).
    pub attestation_sha256: String,
    /// The hash over every input digest of the verdict (`sha256:<hex>`).
    pub inputs_hash: Option<String>,
    /// The digest of the policy it was evaluated with (`sha256:<hex>`).
    pub policy_digest: Option<String>,
}

/// A policy the report's scans were evaluated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPolicy {
    /// `sha256:<hex>` of its canonical JSON: what verdicts record.
    pub digest: String,
    /// The tenant's version number; `None` for the built-in default policy, or when no
    /// stored version has this digest.
    pub version: Option<u64>,
    /// The document's own `name` and `version`; `None` when the document is not known.
    pub name: Option<String>,
    pub document_version: Option<u32>,
}

impl ReportPolicy {
    /// `v3 "strict" 2`, `built-in "default" 1`, or `unknown policy`.
    pub fn label(&self) -> String {
        let stored = match self.version {
            Some(v) => format!("v{v}"),
            None if self.name.is_some() => "built-in".to_owned(),
            None => return "unknown policy".to_owned(),
        };
        match (&self.name, self.document_version) {
            (Some(name), Some(version)) => format!("{stored} \"{name}\" {version}"),
            _ => stored,
        }
    }
}

/// Findings counted by disposition and severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub findings: u64,
    /// In [`DISPOSITION_ORDER`].
    pub by_disposition: [u64; 3],
    /// In [`SEVERITY_ORDER`].
    pub by_severity: [u64; 6],
}

impl Tally {
    pub fn add(&mut self, finding: &ExportFinding<'_>) {
        self.findings += 1;
        if let Some(i) = DISPOSITION_ORDER
            .iter()
            .position(|d| *d == finding.disposition)
        {
            self.by_disposition[i] += 1;
        }
        if let Some(count) = self.by_severity.get_mut(severity_rank(finding.severity())) {
            *count += 1;
        }
    }

    /// `(disposition, count)`, worst first.
    pub fn dispositions(&self) -> [(&'static str, u64); 3] {
        std::array::from_fn(|i| (DISPOSITION_ORDER[i].as_str(), self.by_disposition[i]))
    }

    /// `(severity, count)`, worst first.
    pub fn severities(&self) -> [(&'static str, u64); 6] {
        std::array::from_fn(|i| (SEVERITY_ORDER[i], self.by_severity[i]))
    }
}

/// The previous report of the same profile that a report compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousReport {
    pub export_id: String,
    pub as_of: DateTime<Utc>,
}

/// What changed since the previous report of the same profile.
#[derive(Debug, Clone, PartialEq)]
pub enum Changes {
    /// No earlier run of the profile succeeded.
    First,
    /// Findings (a target, a vulnerability, a package: see [`ChangeKey`]) in this report
    /// and not in the previous one are new; those only in the previous one are resolved.
    Since {
        previous: PreviousReport,
        new: u64,
        resolved: u64,
        /// The worst new and resolved findings, at most [`TOP_CHANGES`] each.
        new_top: Vec<ReportFinding>,
        resolved_top: Vec<ReportFinding>,
    },
}

/// What makes two reports' findings "the same": the target, the vulnerability and the
/// package (without version, so a finding that survives an upgrade of the package is not
/// new), as 16 bytes of their SHA-256: a report of 100,000 findings compares with its
/// predecessor in two sets of a few megabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChangeKey([u8; 16]);

impl ChangeKey {
    pub fn of(finding: &ExportFinding<'_>) -> Self {
        let mut hasher = Sha256::new();
        for part in [
            finding.scan.target,
            finding.vulnerability_id,
            finding.package,
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        ChangeKey(key)
    }
}

/// One finding as a report shows it: owned, so it outlives the page of findings it was
/// read from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFinding {
    pub target: String,
    pub scan_id: String,
    pub evaluated_at: DateTime<Utc>,
    pub vulnerability_id: String,
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    /// `pkg:type/namespace/name`.
    pub package: String,
    pub installed_version: Option<String>,
    /// From the advisory (set by the exporter, which reads it).
    pub fixed_versions: Vec<String>,
    /// A word of [`SEVERITY_ORDER`].
    pub severity: &'static str,
    pub cvss_score: Option<f64>,
    pub disposition: Disposition,
    pub vex: Vec<VexSaid>,
    /// What decided: `rule:<id>`, `exception:<id>` or `default`.
    pub rule_id: Option<String>,
    pub reason: Option<String>,
}

impl ReportFinding {
    /// The report's copy of `finding`, of a scan evaluated at `evaluated_at`.
    pub fn of(finding: &ExportFinding<'_>, evaluated_at: DateTime<Utc>) -> Self {
        Self {
            target: finding.scan.target.to_owned(),
            scan_id: finding.scan.scan_id.to_owned(),
            evaluated_at,
            vulnerability_id: finding.vulnerability_id.to_owned(),
            aliases: finding.aliases.iter().map(|a| (*a).to_owned()).collect(),
            summary: finding.summary.map(str::to_owned),
            package: finding.package.to_owned(),
            installed_version: finding.installed_version.as_deref().map(str::to_owned),
            fixed_versions: finding
                .fixed_versions
                .iter()
                .map(|v| v.as_ref().to_owned())
                .collect(),
            severity: finding.severity(),
            cvss_score: finding.cvss_score,
            disposition: finding.disposition,
            vex: finding.vex.clone(),
            rule_id: finding.rule_id.map(str::to_owned),
            reason: finding.reason.map(str::to_owned),
        }
    }

    fn rank(&self) -> Rank<'_> {
        Rank {
            disposition: self.disposition,
            severity: severity_rank(self.severity),
            cvss: self.cvss_score,
            vulnerability_id: &self.vulnerability_id,
            target: &self.target,
            package: &self.package,
            installed: self.installed_version.as_deref(),
            scan_id: &self.scan_id,
        }
    }

    /// `name@version` without the purl's type and namespace noise: `pkg:npm/lodash` at
    /// `4.17.20` reads `npm/lodash@4.17.20`.
    pub fn package_display(&self) -> String {
        let package = self.package.strip_prefix("pkg:").unwrap_or(&self.package);
        let package = percent_encoding::percent_decode_str(package).decode_utf8_lossy();
        match &self.installed_version {
            Some(version) => format!("{package}@{version}"),
            None => package.into_owned(),
        }
    }

    /// `critical 9.8`, `high`, `unknown`.
    pub fn severity_display(&self) -> String {
        match self.cvss_score {
            Some(score) => format!("{} {score:.1}", self.severity),
            None => self.severity.to_owned(),
        }
    }

    /// The fixing versions, `; `-joined, or `no fix` when the advisory names none.
    pub fn fixed_display(&self) -> String {
        if self.fixed_versions.is_empty() {
            "no fix".to_owned()
        } else {
            self.fixed_versions.join("; ")
        }
    }
}

/// How bad a finding is, for ordering worst first: disposition, then severity word,
/// then CVSS score; ties broken by ids so the order (and the bytes) never depend on
/// the order findings were read in.
#[derive(Debug, Clone, Copy)]
struct Rank<'a> {
    disposition: Disposition,
    severity: usize,
    cvss: Option<f64>,
    vulnerability_id: &'a str,
    target: &'a str,
    package: &'a str,
    installed: Option<&'a str>,
    scan_id: &'a str,
}

impl<'a> Rank<'a> {
    fn of(finding: &'a ExportFinding<'_>) -> Self {
        Rank {
            disposition: finding.disposition,
            severity: severity_rank(finding.severity()),
            cvss: finding.cvss_score,
            vulnerability_id: finding.vulnerability_id,
            target: finding.scan.target,
            package: finding.package,
            installed: finding.installed_version.as_deref(),
            scan_id: finding.scan.scan_id,
        }
    }

    /// `Less` when `self` is worse (comes first).
    fn cmp(&self, other: &Rank<'_>) -> Ordering {
        let cvss = |c: Option<f64>| c.unwrap_or(-1.0);
        other
            .disposition
            .cmp(&self.disposition)
            .then(self.severity.cmp(&other.severity))
            .then(cvss(other.cvss).total_cmp(&cvss(self.cvss)))
            .then(self.vulnerability_id.cmp(other.vulnerability_id))
            .then(self.target.cmp(other.target))
            .then(self.package.cmp(other.package))
            .then(self.installed.cmp(&other.installed))
            .then(self.scan_id.cmp(other.scan_id))
    }
}

/// Orders findings worst first (see [`Worst`]).
pub fn worst_first(a: &ReportFinding, b: &ReportFinding) -> Ordering {
    a.rank().cmp(&b.rank())
}

/// The `limit` worst findings offered, worst first. Holds at most `limit` of them: a
/// finding that would not make the list is compared in place, never copied.
#[derive(Debug, Clone)]
pub struct Worst {
    limit: usize,
    items: Vec<ReportFinding>,
}

impl Worst {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            items: Vec::with_capacity(limit.min(64) + 1),
        }
    }

    /// Keeps `finding` (of a scan evaluated at `evaluated_at`) if it is among the worst.
    pub fn offer(&mut self, finding: &ExportFinding<'_>, evaluated_at: DateTime<Utc>) {
        if self.limit == 0 {
            return;
        }
        let rank = Rank::of(finding);
        let at = self
            .items
            .partition_point(|kept| kept.rank().cmp(&rank) != Ordering::Greater);
        if at >= self.limit {
            return;
        }
        self.items
            .insert(at, ReportFinding::of(finding, evaluated_at));
        self.items.truncate(self.limit);
    }

    pub fn into_vec(self) -> Vec<ReportFinding> {
        self.items
    }
}

/// One exception of a policy the report's scans were evaluated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportException {
    /// The policy's label ([`ReportPolicy::label`]) and digest.
    pub policy: String,
    pub policy_digest: String,
    pub id: String,
    pub vulnerabilities: Vec<String>,
    /// Empty: every package.
    pub packages: Vec<String>,
    pub outcome: Disposition,
    pub approver: String,
    pub reason: String,
    /// `None`: it never expires.
    pub expires: Option<DateTime<Utc>>,
    /// Findings of this report it decided (`exception:<id>`).
    pub findings: u64,
}

impl ReportException {
    /// Every exception of `policy` (described by `about`), none of its findings counted
    /// yet.
    pub fn all_of(policy: &Policy, about: &ReportPolicy) -> Vec<Self> {
        policy
            .exceptions
            .iter()
            .map(|e| ReportException {
                policy: about.label(),
                policy_digest: about.digest.clone(),
                id: e.id.clone(),
                vulnerabilities: e.vulnerabilities.clone(),
                packages: e.packages.clone(),
                outcome: e.outcome,
                approver: e.approver.clone(),
                reason: e.reason.clone(),
                expires: e.expires,
                findings: 0,
            })
            .collect()
    }

    /// Whether it still applies at `at` (an exception expires at its `expires` time, as
    /// the evaluator compares).
    pub fn in_force(&self, at: DateTime<Utc>) -> bool {
        self.expires.is_none_or(|expires| expires > at)
    }

    /// `in force, no expiry`, `in force until 2027-01-01 00:00 UTC`, `expired 2025-…`.
    pub fn status(&self, at: DateTime<Utc>) -> String {
        match self.expires {
            None => "in force, no expiry".to_owned(),
            Some(expires) if expires > at => format!("in force until {}", when(expires)),
            Some(expires) => format!("expired {}", when(expires)),
        }
    }
}

/// A time as reports write it: `2026-02-01 00:00 UTC`.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Whether a spreadsheet would read a cell starting like `text` as a formula (`=`, `+`,
/// `-`, `@`, tab, CR: see [`super::csv::neutralise`]).
pub fn looks_like_formula(text: &str) -> bool {
    matches!(
        text.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;
    use serde_json::Value;

    use super::*;
    use crate::export::tests::{finding_json, SCAN};

    pub(crate) fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
    }

    fn stored(id: &str, disposition: &str, score: Option<f64>) -> Value {
        let mut value = finding_json(id, &format!("pkg:npm/{id}@1.0.0"), disposition);
        value["severity"] = score.map_or(Value::Null, Value::from);
        value
    }

    #[test]
    fn the_worst_findings_come_first_and_only_the_limit_is_kept() {
        let values = [
            stored("A", "pass", Some(9.8)),
            stored("B", "block", Some(7.5)),
            stored("C", "block", Some(9.1)),
            stored("D", "warn", None),
            stored("E", "block", Some(9.1)),
            stored("F", "warn", Some(5.0)),
        ];
        let mut worst = Worst::new(4);
        let mut tally = Tally::default();
        for value in &values {
            let finding = ExportFinding::from_finding_json(SCAN, value).unwrap();
            worst.offer(&finding, at());
            tally.add(&finding);
        }
        let ids: Vec<String> = worst
            .into_vec()
            .into_iter()
            .map(|f| f.vulnerability_id)
            .collect();
        // Blocks by severity then id, then the warning with a score ("D" has no score:
        // its label HIGH makes it high, above F's medium).
        assert_eq!(ids, ["C", "E", "B", "D"]);
        assert_eq!(tally.findings, 6);
        assert_eq!(
            tally.dispositions(),
            [("block", 3), ("warn", 2), ("pass", 1)]
        );
        assert_eq!(
            tally.severities(),
            [
                ("critical", 3),
                ("high", 2),
                ("medium", 1),
                ("low", 0),
                ("none", 0),
                ("unknown", 0)
            ]
        );
    }

    #[test]
    fn change_keys_ignore_the_installed_version_but_not_the_target() {
        let a = finding_json("GHSA-1", "pkg:npm/lodash@4.17.20", "block");
        let b = finding_json("GHSA-1", "pkg:npm/lodash@4.17.21", "warn");
        let fa = ExportFinding::from_finding_json(SCAN, &a).unwrap();
        let fb = ExportFinding::from_finding_json(SCAN, &b).unwrap();
        assert_eq!(ChangeKey::of(&fa), ChangeKey::of(&fb));
        let other = ExportScan {
            target: "another",
            ..SCAN
        };
        let fc = ExportFinding::from_finding_json(other, &a).unwrap();
        assert_ne!(ChangeKey::of(&fa), ChangeKey::of(&fc));
    }

    use crate::export::ExportScan;

    #[test]
    fn templates_and_exception_status_read_as_people_expect() {
        assert_eq!(Template::parse(None).unwrap(), Template::Executive);
        assert_eq!(
            Template::parse(Some("detailed")).unwrap(),
            Template::Detailed
        );
        assert!(Template::parse(Some("glossy")).is_err());
        let mut exception = ReportException {
            policy: "v1".into(),
            policy_digest: "sha256:00".into(),
            id: "accepted".into(),
            vulnerabilities: vec!["CVE-1".into()],
            packages: vec![],
            outcome: Disposition::Pass,
            approver: "alice".into(),
            reason: "not reachable".into(),
            expires: None,
            findings: 0,
        };
        assert!(exception.in_force(at()));
        assert_eq!(exception.status(at()), "in force, no expiry");
        exception.expires = Some(at());
        assert!(!exception.in_force(at()));
        assert_eq!(exception.status(at()), "expired 2026-02-01 00:00 UTC");
    }

    #[test]
    fn packages_read_without_purl_noise() {
        let value = finding_json("A", "pkg:npm/%40angular/core@12.3.1", "warn");
        let finding = ExportFinding::from_finding_json(SCAN, &value).unwrap();
        let report = ReportFinding::of(&finding, at());
        assert_eq!(report.package_display(), "npm/@angular/core@12.3.1");
        assert_eq!(report.severity_display(), "critical 9.8");
        assert_eq!(report.fixed_display(), "no fix");
    }
}
