//! OSV `affected[]` entries and the schema's evaluation algorithm (OSV schema 1.7,
//! "Evaluation"): a version is affected if it is listed in `versions`, or if some
//! `SEMVER` or `ECOSYSTEM` range includes it. For a range: when it has `limit` events the
//! version must be below one of them (`"*"` is infinity); then the events are sorted by
//! version (`introduced: "0"` first) and walked in order, `introduced` ≤ v making it
//! affected, `fixed` ≤ v or `last_affected` < v making it unaffected; the state after the
//! walk is the answer. Events at the same version keep `introduced` before `fixed` and
//! `last_affected`, so `introduced == fixed` is an empty range, not an open one.
//!
//! Beyond the schema's pseudocode, a version is also affected when it lies in an
//! interval that an `introduced` and the next `fixed`/`last_affected` form in the order
//! the events are listed. For ranges whose intervals do not overlap, as the schema asks,
//! this changes nothing; real records break that rule (PyPI's PYSEC-2021-114 lists
//! `[2.11, 2.11.7)` and `[0, 2.11.6)`, PYSEC-2022-236 lists `[0, 3.1.1)` and
//! `[3.1.1, 3.1.3)`), and there the sorted walk alone would call `2.11.6` and `3.1.1`
//! unaffected, while the record, and the `versions` list OSV.dev enumerated from it, say
//! affected. A missed finding costs more than a spurious one, so both readings count.
//!
//! `GIT` ranges need the repository's commit graph and are skipped. `SEMVER` ranges use
//! SemVer 2.0 precedence whatever the ecosystem (a leading `v` tolerated, as Go's records
//! need); `ECOSYSTEM` ranges use the ecosystem's ordering ([`super::Version::parse`]).
//! The JSON shape is OSV's; unknown fields are ignored.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::{SemVer, Version, VersionError};
use crate::Ecosystem;

/// One OSV `affected[]` entry, as far as matching needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OsvAffected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<OsvPackage>,
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    #[serde(default)]
    pub versions: Vec<String>,
}

/// `affected[].package`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsvPackage {
    /// OSV's ecosystem string, possibly with a release suffix (`Debian:12`).
    pub ecosystem: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

/// `affected[].ranges[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsvRange {
    #[serde(rename = "type")]
    pub kind: RangeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default)]
    pub events: Vec<OsvEvent>,
}

/// `affected[].ranges[].type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RangeType {
    Semver,
    Ecosystem,
    Git,
    /// A type the schema does not define (kept as written); evaluating it is an error.
    Other(String),
}

impl From<String> for RangeType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "SEMVER" => RangeType::Semver,
            "ECOSYSTEM" => RangeType::Ecosystem,
            "GIT" => RangeType::Git,
            _ => RangeType::Other(s),
        }
    }
}

impl From<RangeType> for String {
    fn from(t: RangeType) -> Self {
        match t {
            RangeType::Semver => "SEMVER".to_owned(),
            RangeType::Ecosystem => "ECOSYSTEM".to_owned(),
            RangeType::Git => "GIT".to_owned(),
            RangeType::Other(s) => s,
        }
    }
}

/// One event of a range: an object with exactly one of the four keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawEvent", into = "RawEvent")]
pub enum OsvEvent {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

#[derive(Serialize, Deserialize)]
struct RawEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<String>,
}

impl TryFrom<RawEvent> for OsvEvent {
    type Error = VersionError;

    fn try_from(raw: RawEvent) -> Result<Self, Self::Error> {
        let mut found = [
            raw.introduced.map(OsvEvent::Introduced),
            raw.fixed.map(OsvEvent::Fixed),
            raw.last_affected.map(OsvEvent::LastAffected),
            raw.limit.map(OsvEvent::Limit),
        ]
        .into_iter()
        .flatten();
        match (found.next(), found.next()) {
            (Some(event), None) => Ok(event),
            (None, _) => Err(VersionError::InvalidEvent {
                reason: "needs one of introduced, fixed, last_affected, limit".to_owned(),
            }),
            (Some(_), Some(_)) => Err(VersionError::InvalidEvent {
                reason: "has more than one of introduced, fixed, last_affected, limit".to_owned(),
            }),
        }
    }
}

impl From<OsvEvent> for RawEvent {
    fn from(event: OsvEvent) -> Self {
        let mut raw = RawEvent {
            introduced: None,
            fixed: None,
            last_affected: None,
            limit: None,
        };
        match event {
            OsvEvent::Introduced(v) => raw.introduced = Some(v),
            OsvEvent::Fixed(v) => raw.fixed = Some(v),
            OsvEvent::LastAffected(v) => raw.last_affected = Some(v),
            OsvEvent::Limit(v) => raw.limit = Some(v),
        }
        raw
    }
}

/// A range bound: OSV's `"0"` (before everything) and `"*"` (after everything) are
/// special, everything else is a version of the range's scheme.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Bound {
    Zero,
    At(Version),
    Infinity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Introduced,
    LastAffected,
    Fixed,
}

/// Whether `version` of `ecosystem` is affected by one OSV `affected[]` entry. An error
/// names the version (queried or in the entry) that does not parse, or a range type that
/// cannot be evaluated; entries of the explicit `versions` list that do not parse are
/// compared as exact strings instead (OSV allows them to be Git tags).
pub fn is_affected(
    ecosystem: Ecosystem,
    version: &str,
    affected: &OsvAffected,
) -> Result<bool, VersionError> {
    let parsed = Version::parse(ecosystem, version)?;
    for listed in &affected.versions {
        if listed == version {
            return Ok(true);
        }
        if Version::parse(ecosystem, listed).is_ok_and(|l| l == parsed) {
            return Ok(true);
        }
    }
    for range in &affected.ranges {
        let included = match &range.kind {
            RangeType::Git => continue,
            RangeType::Semver => {
                let parse = |v: &str| SemVer::parse_osv(v).map(Version::SemVer);
                in_range(&parse(version)?, &range.events, parse)?
            }
            RangeType::Ecosystem => {
                in_range(&parsed, &range.events, |v| Version::parse(ecosystem, v))?
            }
            RangeType::Other(kind) => {
                return Err(VersionError::UnsupportedRange { kind: kind.clone() })
            }
        };
        if included {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The schema's `BeforeLimits` and the event walk of `IncludedInRanges` for one range.
fn in_range(
    v: &Version,
    events: &[OsvEvent],
    parse: impl Fn(&str) -> Result<Version, VersionError>,
) -> Result<bool, VersionError> {
    let bound = |s: &str, zero_allowed: bool| -> Result<Bound, VersionError> {
        if zero_allowed && s == "0" {
            return Ok(Bound::Zero);
        }
        parse(s).map(Bound::At)
    };
    let mut limits = Vec::new();
    let mut walk: Vec<(Bound, Kind)> = Vec::new();
    for event in events {
        match event {
            OsvEvent::Introduced(s) => walk.push((bound(s, true)?, Kind::Introduced)),
            OsvEvent::Fixed(s) => walk.push((bound(s, false)?, Kind::Fixed)),
            OsvEvent::LastAffected(s) => walk.push((bound(s, false)?, Kind::LastAffected)),
            OsvEvent::Limit(s) if s == "*" => limits.push(Bound::Infinity),
            OsvEvent::Limit(s) => limits.push(bound(s, false)?),
        }
    }
    let v = Bound::At(v.clone());
    if !limits.is_empty() && !limits.iter().any(|limit| v < *limit) {
        return Ok(false);
    }
    Ok(in_listed_pairs(&v, &walk) || in_sorted_walk(&v, walk))
}

/// The schema's walk over the events sorted by version.
fn in_sorted_walk(v: &Bound, mut walk: Vec<(Bound, Kind)>) -> bool {
    walk.sort();
    let mut vulnerable = false;
    for (at, kind) in &walk {
        match kind {
            Kind::Introduced if v >= at => vulnerable = true,
            Kind::Fixed if v >= at => vulnerable = false,
            Kind::LastAffected if v.cmp(at) == Ordering::Greater => vulnerable = false,
            _ => {}
        }
    }
    vulnerable
}

/// The events read in the order listed, each `introduced` opening an interval that the
/// next `fixed` or `last_affected` closes (an open one runs to infinity).
fn in_listed_pairs(v: &Bound, walk: &[(Bound, Kind)]) -> bool {
    let mut open: Option<&Bound> = None;
    for (at, kind) in walk {
        match (kind, open) {
            (Kind::Introduced, None) => open = Some(at),
            (Kind::Introduced, Some(_)) => {}
            (Kind::Fixed, Some(start)) => {
                if start <= v && v < at {
                    return true;
                }
                open = None;
            }
            (Kind::LastAffected, Some(start)) => {
                if start <= v && v <= at {
                    return true;
                }
                open = None;
            }
            (Kind::Fixed | Kind::LastAffected, None) => {}
        }
    }
    open.is_some_and(|start| start <= v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn affected(json: &str) -> OsvAffected {
        serde_json::from_str(json).unwrap()
    }

    fn check(e: Ecosystem, a: &OsvAffected, yes: &[&str], no: &[&str]) {
        for v in yes {
            assert_eq!(is_affected(e, v, a), Ok(true), "{v} should be affected");
        }
        for v in no {
            assert_eq!(
                is_affected(e, v, a),
                Ok(false),
                "{v} should not be affected"
            );
        }
    }

    #[test]
    fn introduced_zero_and_fixed() {
        let a = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.3"}]}]}"#,
        );
        check(
            Ecosystem::PyPI,
            &a,
            &["0.0.1", "1.2.2", "1.2.3rc1"],
            &["1.2.3", "2.0"],
        );
    }

    #[test]
    fn several_intervals_in_one_range_in_any_order() {
        let a = affected(
            r#"{"ranges": [{"type": "SEMVER", "events": [
                {"introduced": "3.0.0"}, {"fixed": "3.2.5"},
                {"introduced": "1.0.0"}, {"fixed": "1.0.2"}]}]}"#,
        );
        check(
            Ecosystem::Npm,
            &a,
            &["1.0.0", "1.0.1", "3.0.0", "3.2.4"],
            &["0.9.9", "1.0.2", "2.0.0", "3.0.0-rc.1", "3.2.5", "4.0.0"],
        );
    }

    #[test]
    fn last_affected_is_inclusive() {
        let a = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"last_affected": "2.1.214"}]}]}"#,
        );
        check(
            Ecosystem::Maven,
            &a,
            &["1.0", "2.1.214", "2.1.214.0"],
            &["0.9", "2.1.215"],
        );
    }

    #[test]
    fn limit_bounds_the_range() {
        let a = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"limit": "2.0"}]}]}"#,
        );
        check(Ecosystem::RubyGems, &a, &["1.0", "1.9.9"], &["2.0", "3.0"]);
        let star = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"limit": "*"}]}]}"#,
        );
        check(Ecosystem::RubyGems, &star, &["1.0", "99"], &["0.9"]);
    }

    #[test]
    fn explicit_versions_and_git_ranges() {
        let a = affected(
            r#"{"package": {"ecosystem": "PyPI", "name": "x"},
                "ranges": [{"type": "GIT", "repo": "https://example.org/x",
                            "events": [{"introduced": "0"}, {"fixed": "abc123"}]}],
                "versions": ["1.0", "1.1.post1", "some-git-tag"],
                "database_specific": {"anything": true}}"#,
        );
        check(
            Ecosystem::PyPI,
            &a,
            &["1.0", "1.0.0", "1.1.post1"],
            &["1.1", "0.1"],
        );
    }

    #[test]
    fn introduced_equal_to_fixed_is_empty() {
        let a = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "1.0"}]}]}"#,
        );
        check(Ecosystem::PyPI, &a, &[], &["0.9", "1.0", "1.1"]);
    }

    #[test]
    fn overlapping_and_touching_intervals_as_listed() {
        // PYSEC-2021-114 (wagtail): the 2.11 branch is affected until 2.11.7.
        let a = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [
                {"introduced": "2.11"}, {"fixed": "2.11.7"}, {"introduced": "0"},
                {"fixed": "2.11.6"}, {"introduced": "2.12"}, {"fixed": "2.12.4"}]}]}"#,
        );
        check(
            Ecosystem::PyPI,
            &a,
            &["1.0", "2.11.5", "2.11.6", "2.12.3"],
            &["2.11.7", "2.12.4", "3.0"],
        );
        // PYSEC-2022-236 (pyspark): [0, 3.1.1) and [3.1.1, 3.1.3) touch at 3.1.1.
        let b = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [
                {"introduced": "0"}, {"fixed": "3.1.1"}, {"introduced": "3.2.0"},
                {"fixed": "3.2.2"}, {"introduced": "3.1.1"}, {"fixed": "3.1.3"}]}]}"#,
        );
        check(
            Ecosystem::PyPI,
            &b,
            &["3.1.0", "3.1.1", "3.1.2", "3.2.1"],
            &["3.1.3", "3.2.2"],
        );
    }

    #[test]
    fn go_semver_ranges_match_v_prefixed_versions_and_pseudo_versions() {
        let a = affected(
            r#"{"ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.0.0-20220101000000-abcdef123456"}, {"introduced": "1.2.0"}, {"fixed": "1.2.5"}]}]}"#,
        );
        check(
            Ecosystem::Go,
            &a,
            &["v0.0.0-20210101000000-abcdef123456", "v1.2.0", "v1.2.4"],
            &["v0.0.0-20230101000000-abcdef123456", "v0.1.0", "v1.2.5"],
        );
    }

    #[test]
    fn debian_and_alpine_ecosystem_ranges() {
        let deb = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.3-4+deb12u1"}]}]}"#,
        );
        check(
            Ecosystem::Debian,
            &deb,
            &["1.2.3-4", "1.2.3-4+deb12u1~pre"],
            &["1.2.3-4+deb12u1", "1:0.1"],
        );
        let apk = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.3-r2"}]}]}"#,
        );
        check(
            Ecosystem::Alpine,
            &apk,
            &["1.2.3-r1", "1.2.3_rc1"],
            &["1.2.3-r2", "1.2.3_p1"],
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let a = affected(
            r#"{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "not valid"}]}]}"#,
        );
        assert!(matches!(
            is_affected(Ecosystem::PyPI, "1.0", &a),
            Err(VersionError::Invalid { .. })
        ));
        assert!(is_affected(Ecosystem::PyPI, "garbage!", &OsvAffected::default()).is_err());
        let unknown =
            affected(r#"{"ranges": [{"type": "FANCY", "events": [{"introduced": "0"}]}]}"#);
        assert_eq!(
            is_affected(Ecosystem::PyPI, "1.0", &unknown),
            Err(VersionError::UnsupportedRange {
                kind: "FANCY".to_owned()
            })
        );
        let two_keys = serde_json::from_str::<OsvRange>(
            r#"{"type": "SEMVER", "events": [{"introduced": "0", "fixed": "1.0.0"}]}"#,
        );
        assert!(two_keys.is_err());
    }

    #[test]
    fn serializes_back_to_osv_json() {
        let json = r#"{"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"last_affected":"1.0"}]}],"versions":["0.5"]}"#;
        let a = affected(json);
        assert_eq!(serde_json::to_string(&a).unwrap(), json);
    }
}
