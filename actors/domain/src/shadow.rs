//! Verdict diffs of shadow evaluations: a candidate policy evaluated against a scan
//! without enforcing anything, compared with the verdict in force, finding by finding.
//!
//! A finding is keyed by (vulnerability id, purl, bom-refs), the verdict's own identity of
//! a finding. `added` and `removed` are findings one side has and the other has not (the
//! advisories or VEX changed since the scan was evaluated), `changed` a finding whose
//! disposition moved (both traces kept), `unchanged` the rest (counted, not listed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::{Disposition, TraceStep};
use crate::scan::Finding;

/// How one finding moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
    Unchanged,
}

/// One side of a finding's diff: its disposition and the trace that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub disposition: Disposition,
    pub trace: Vec<TraceStep>,
}

/// One finding that is not unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingDiff {
    pub vulnerability_id: String,
    pub purl: String,
    pub change: Change,
    pub old: Option<Side>,
    pub new: Option<Side>,
}

/// How many findings moved which way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub unchanged: u64,
}

/// The diff of one scan: its dispositions before and after, and the findings that moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanDiff {
    pub scan_id: String,
    pub target: String,
    pub old_disposition: Disposition,
    pub new_disposition: Disposition,
    pub counts: ChangeCounts,
    pub findings: Vec<FindingDiff>,
}

impl ScanDiff {
    /// The scan was not blocked and would be.
    pub fn newly_blocked(&self) -> bool {
        self.old_disposition != Disposition::Block && self.new_disposition == Disposition::Block
    }

    /// The scan was blocked and would not be.
    pub fn newly_unblocked(&self) -> bool {
        self.old_disposition == Disposition::Block && self.new_disposition != Disposition::Block
    }
}

/// Counts over many scans' diffs: what a wave's gate and a diff's summary read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSummary {
    /// Scans evaluated in shadow.
    pub scans: u64,
    /// Scans whose disposition would change.
    pub scans_changed: u64,
    pub newly_blocked_scans: u64,
    pub newly_unblocked_scans: u64,
    /// Targets that could not be evaluated (their scan's stored analysis or verdict is
    /// missing or unreadable).
    pub errors: u64,
    pub findings: ChangeCounts,
}

impl DiffSummary {
    /// Adds one scan's diff.
    pub fn add(&mut self, diff: &ScanDiff) {
        self.scans += 1;
        self.scans_changed += u64::from(diff.old_disposition != diff.new_disposition);
        self.newly_blocked_scans += u64::from(diff.newly_blocked());
        self.newly_unblocked_scans += u64::from(diff.newly_unblocked());
        self.findings.added += diff.counts.added;
        self.findings.removed += diff.counts.removed;
        self.findings.changed += diff.counts.changed;
        self.findings.unchanged += diff.counts.unchanged;
    }

    /// Adds another summary (a tenant's to a wave's).
    pub fn merge(&mut self, other: &DiffSummary) {
        self.scans += other.scans;
        self.scans_changed += other.scans_changed;
        self.newly_blocked_scans += other.newly_blocked_scans;
        self.newly_unblocked_scans += other.newly_unblocked_scans;
        self.errors += other.errors;
        self.findings.added += other.findings.added;
        self.findings.removed += other.findings.removed;
        self.findings.changed += other.findings.changed;
        self.findings.unchanged += other.findings.unchanged;
    }
}

type Key = (String, String, Vec<String>);

fn key(finding: &Finding) -> Key {
    (
        finding.vulnerability_id.clone(),
        finding.purl.clone(),
        finding.bom_refs.clone(),
    )
}

fn side(finding: Finding) -> Side {
    Side {
        disposition: finding.disposition,
        trace: finding.trace,
    }
}

/// Diffs a scan's findings in force (`old`, with their disposition `old_disposition`)
/// against its shadow evaluation (`new`). Findings come out in key order.
pub fn diff_scan(
    scan_id: &str,
    target: &str,
    old_disposition: Disposition,
    old: Vec<Finding>,
    new_disposition: Disposition,
    new: Vec<Finding>,
) -> ScanDiff {
    let mut sides: BTreeMap<Key, (Option<Finding>, Option<Finding>)> = BTreeMap::new();
    for finding in old {
        let k = key(&finding);
        sides.entry(k).or_default().0 = Some(finding);
    }
    for finding in new {
        let k = key(&finding);
        sides.entry(k).or_default().1 = Some(finding);
    }
    let mut counts = ChangeCounts::default();
    let mut findings = Vec::new();
    for ((vulnerability_id, purl, _), pair) in sides {
        let change = match &pair {
            (Some(_), None) => Change::Removed,
            (None, Some(_)) => Change::Added,
            (Some(a), Some(b)) if a.disposition != b.disposition => Change::Changed,
            _ => Change::Unchanged,
        };
        match change {
            Change::Added => counts.added += 1,
            Change::Removed => counts.removed += 1,
            Change::Changed => counts.changed += 1,
            Change::Unchanged => {
                counts.unchanged += 1;
                continue;
            }
        }
        findings.push(FindingDiff {
            vulnerability_id,
            purl,
            change,
            old: pair.0.map(side),
            new: pair.1.map(side),
        });
    }
    ScanDiff {
        scan_id: scan_id.to_owned(),
        target: target.to_owned(),
        old_disposition,
        new_disposition,
        counts,
        findings,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::lattice::Assessment;

    fn finding(id: &str, purl: &str, disposition: Disposition) -> Finding {
        Finding {
            vulnerability_id: id.into(),
            aliases: vec![],
            summary: None,
            purl: purl.into(),
            bom_refs: vec![],
            severity: None,
            severity_label: None,
            assessment: Assessment::from_claims(Vec::new()),
            disposition,
            trace: vec![],
        }
    }

    #[test]
    fn each_finding_is_added_removed_changed_or_unchanged_and_scans_count_newly_blocked() {
        use Disposition::*;
        let old = vec![
            finding("GHSA-a", "pkg:npm/a@1", Warn),
            finding("GHSA-b", "pkg:npm/b@1", Pass),
            finding("GHSA-c", "pkg:npm/c@1", Warn),
        ];
        let new = vec![
            finding("GHSA-a", "pkg:npm/a@1", Block),
            finding("GHSA-c", "pkg:npm/c@1", Warn),
            finding("GHSA-d", "pkg:npm/d@1", Pass),
        ];
        let diff = diff_scan("job_1", "web", Warn, old, Block, new);
        assert_eq!(
            diff.counts,
            ChangeCounts {
                added: 1,
                removed: 1,
                changed: 1,
                unchanged: 1
            }
        );
        let changes: Vec<(&str, Change)> = diff
            .findings
            .iter()
            .map(|f| (f.vulnerability_id.as_str(), f.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("GHSA-a", Change::Changed),
                ("GHSA-b", Change::Removed),
                ("GHSA-d", Change::Added)
            ]
        );
        let changed = &diff.findings[0];
        assert_eq!(changed.old.as_ref().unwrap().disposition, Warn);
        assert_eq!(changed.new.as_ref().unwrap().disposition, Block);
        assert!(diff.newly_blocked());
        let mut summary = DiffSummary::default();
        summary.add(&diff);
        summary.add(&diff_scan("job_2", "api", Pass, vec![], Pass, vec![]));
        assert_eq!(
            (
                summary.scans,
                summary.scans_changed,
                summary.newly_blocked_scans
            ),
            (2, 1, 1)
        );
    }
}
