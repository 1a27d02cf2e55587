//! Policies: versioned TOML documents of rules in priority order and exceptions, and the
//! pure evaluation of one finding (or a whole scan) into pass / warn / block with an
//! explain trace.
//!
//! The evaluation time is an argument (an exception expires relative to it); nothing here
//! reads a clock. A finding's inputs are its joined K4 [`Assessment`], its severity (the
//! highest CVSS base score of the advisory, scored with the RustSec `cvss` crate, or the
//! database's label), its ecosystem, package and vulnerability ids.
//!
//! ```toml
//! name = "default"
//! version = 1
//!
//! [[rules]]
//! id = "conflict"
//! when = { conflict = true }          # any question is ⊤
//! outcome = "warn"
//! because = "sources disagree; a person has to look"
//!
//! [[rules]]
//! id = "critical"
//! when = { applies = ["true", "unknown"], min_severity = 9.0 }
//! outcome = "block"
//! because = "critical and not shown to be inapplicable"
//!
//! [[exceptions]]
//! id = "log4j-accepted"
//! vulnerabilities = ["CVE-2021-44228"]
//! packages = ["pkg:maven/org.apache.logging.log4j/log4j-core"]
//! reason = "not reachable in this deployment; replaced in Q3"
//! approver = "alice@example.com"
//! expires = "2027-01-01T00:00:00Z"
//! ```

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ecosystem::Ecosystem;
use crate::error::InputError;
use crate::lattice::{Assessment, Question, K4};

/// The outcome of a finding or a scan, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    Pass,
    Warn,
    Block,
}

impl Disposition {
    /// The lowercase name, as serialized (`pass`, `warn`, `block`).
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Pass => "pass",
            Disposition::Warn => "warn",
            Disposition::Block => "block",
        }
    }
}

/// The K4 values a condition accepts for one question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Values {
    One(K4),
    Any(Vec<K4>),
}

impl Values {
    fn contains(&self, value: K4) -> bool {
        match self {
            Values::One(v) => *v == value,
            Values::Any(vs) => vs.contains(&value),
        }
    }
}

/// When a rule applies; every field given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<Values>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies: Option<Values>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<Values>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigated: Option<Values>,
    /// Any question is ⊤ (true) or none is (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<bool>,
    /// CVSS base score at least this (a finding with no score never matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<f64>,
    /// CVSS base score below this (a finding with no score always matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_severity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecosystems: Option<Vec<Ecosystem>>,
    /// Package URLs without version (`pkg:npm/lodash`); a trailing `*` matches a prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<String>>,
    /// Vulnerability ids; a finding matches by its id or any alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerabilities: Option<Vec<String>>,
}

/// One rule; the first rule (in document order) whose condition holds decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    #[serde(default)]
    pub when: Condition,
    pub outcome: Disposition,
    #[serde(default)]
    pub because: String,
}

/// An accepted risk: it decides the findings it matches until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    pub id: String,
    pub vulnerabilities: Vec<String>,
    /// Package URLs without version; empty: every package.
    #[serde(default)]
    pub packages: Vec<String>,
    pub reason: String,
    pub approver: String,
    /// An expired exception stops applying (compared with the evaluation time).
    pub expires: Option<DateTime<Utc>>,
    #[serde(default = "pass")]
    pub outcome: Disposition,
}

fn pass() -> Disposition {
    Disposition::Pass
}

/// A policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    pub version: u32,
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    /// The outcome when no rule matches.
    #[serde(default = "warn")]
    pub default: Disposition,
}

fn warn() -> Disposition {
    Disposition::Warn
}

/// The policy Stella ships: block what is known or suspected to apply at high or critical
/// severity, warn on conflicts and on the rest that applies, pass what is fixed, not
/// applicable, mitigated or absent.
pub const DEFAULT_POLICY: &str = include_str!("default_policy.toml");

impl Policy {
    /// Parses a TOML policy, checking rule ids are unique and severities are 0–10.
    pub fn parse(text: &str) -> Result<Policy, InputError> {
        let policy: Policy = toml::from_str(text).map_err(|err| {
            let at = err
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].lines().count().max(1);
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            InputError::new("", format!("invalid policy{at}: {}", err.message()))
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, rule) in policy.rules.iter().enumerate() {
            if !seen.insert(rule.id.as_str()) {
                return Err(InputError::new(
                    format!("/rules/{i}/id"),
                    format!("rule id {:?} is used twice", rule.id),
                ));
            }
            for (field, value) in [
                ("min_severity", rule.when.min_severity),
                ("max_severity", rule.when.max_severity),
            ] {
                if value.is_some_and(|v| !(0.0..=10.0).contains(&v)) {
                    return Err(InputError::new(
                        format!("/rules/{i}/when/{field}"),
                        "a CVSS score is between 0 and 10",
                    ));
                }
            }
        }
        Ok(policy)
    }

    /// sha256 of the policy's canonical JSON form: what verdicts record.
    pub fn digest(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        crate::canonical::Digest::sha256(&crate::canonical::canonical_bytes(&value)).to_string()
    }
}

/// The highest base score among CVSS vectors (v3.0, v3.1, v4.0); vectors that do not
/// parse are skipped.
pub fn cvss_score<'a>(vectors: impl IntoIterator<Item = &'a str>) -> Option<f64> {
    vectors
        .into_iter()
        .filter_map(|vector| {
            if vector.starts_with("CVSS:4.0/") {
                cvss::v4::Vector::from_str(vector)
                    .ok()
                    .map(|v| v.score().value())
            } else if vector.starts_with("CVSS:3.") {
                cvss::v3::Base::from_str(vector)
                    .ok()
                    .map(|b| b.score().value())
            } else {
                None
            }
        })
        .fold(None, |best: Option<f64>, s| {
            Some(best.map_or(s, |b| b.max(s)))
        })
}

/// What the evaluator knows about one finding.
#[derive(Debug, Clone, Copy)]
pub struct FindingInput<'a> {
    pub vulnerability: &'a str,
    pub aliases: &'a [String],
    pub ecosystem: Option<Ecosystem>,
    /// The component's package URL without version.
    pub package: &'a str,
    pub severity: Option<f64>,
    pub assessment: &'a Assessment,
}

/// One link of the decision chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// `rule:<id>`, `exception:<id>` or `default`.
    pub by: String,
    pub policy_version: u32,
    /// The policy pack the step is from (`<name>@<version>`); absent for the tenant's own
    /// policy, so traces without a pack read (and hash) as they always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    /// The inputs the step looked at.
    pub inputs: serde_json::Value,
    pub output: Option<Disposition>,
    pub because: String,
}

/// The decision for one finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub disposition: Disposition,
    pub trace: Vec<TraceStep>,
}

fn package_matches(patterns: &[String], package: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => package.starts_with(prefix),
        None => p == package,
    })
}

fn id_matches(ids: &[String], input: &FindingInput<'_>) -> bool {
    ids.iter().any(|id| {
        id.eq_ignore_ascii_case(input.vulnerability)
            || input.aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
    })
}

impl Condition {
    fn holds(&self, input: &FindingInput<'_>) -> bool {
        let a = input.assessment;
        let question_ok = |values: &Option<Values>, q: Question| {
            values.as_ref().is_none_or(|v| v.contains(a.get(q)))
        };
        question_ok(&self.present, Question::Present)
            && question_ok(&self.applies, Question::Applies)
            && question_ok(&self.fixed, Question::Fixed)
            && question_ok(&self.mitigated, Question::Mitigated)
            && self
                .conflict
                .is_none_or(|want| want != a.conflicts().is_empty())
            && self
                .min_severity
                .is_none_or(|min| input.severity.is_some_and(|s| s >= min))
            && self
                .max_severity
                .is_none_or(|max| input.severity.is_none_or(|s| s < max))
            && self
                .ecosystems
                .as_ref()
                .is_none_or(|es| input.ecosystem.is_some_and(|e| es.contains(&e)))
            && self
                .packages
                .as_ref()
                .is_none_or(|ps| package_matches(ps, input.package))
            && self
                .vulnerabilities
                .as_ref()
                .is_none_or(|ids| id_matches(ids, input))
    }
}

fn inputs_of(input: &FindingInput<'_>) -> serde_json::Value {
    let a = input.assessment;
    serde_json::json!({
        "vulnerability": input.vulnerability,
        "package": input.package,
        "ecosystem": input.ecosystem,
        "severity": input.severity,
        "present": a.get(Question::Present),
        "applies": a.get(Question::Applies),
        "fixed": a.get(Question::Fixed),
        "mitigated": a.get(Question::Mitigated),
    })
}

/// A policy pack assigned to a tenant: an administrator's policy that tenants receive
/// through rollouts. Its rules are a floor: a finding one of them matches gets the
/// stricter of the pack's outcome and the tenant's own decision; a finding none of them
/// matches is the tenant's policy's alone (a pack's `default` is not used).
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    pub name: String,
    /// The pack version (the store's number, not the document's `version` field).
    pub version: u64,
    pub policy: Policy,
}

impl Pack {
    /// `<name>@<version>`, as traces and verdict inputs name it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Decides one finding at evaluation time `at`.
pub fn evaluate(policy: &Policy, input: &FindingInput<'_>, at: DateTime<Utc>) -> Decision {
    let mut trace = Vec::new();
    let disposition = match first_match(policy, None, input, at, &mut trace) {
        Some(disposition) => disposition,
        None => {
            trace.push(TraceStep {
                by: "default".into(),
                policy_version: policy.version,
                pack: None,
                inputs: inputs_of(input),
                output: Some(policy.default),
                because: "no rule matched".into(),
            });
            policy.default
        }
    };
    Decision { disposition, trace }
}

/// Decides one finding with the tenant's own policy and, when the tenant has one, its
/// pack: the stricter of the two decisions, with both chains in the trace (the pack's
/// steps name the pack version).
pub fn decide(
    own: &Policy,
    pack: Option<&Pack>,
    input: &FindingInput<'_>,
    at: DateTime<Utc>,
) -> Decision {
    let mut decision = evaluate(own, input, at);
    let Some(pack) = pack else {
        return decision;
    };
    let label = pack.label();
    match first_match(&pack.policy, Some(&label), input, at, &mut decision.trace) {
        Some(floor) => decision.disposition = decision.disposition.max(floor),
        None => decision.trace.push(TraceStep {
            by: "default".into(),
            policy_version: pack.policy.version,
            pack: Some(label),
            inputs: serde_json::Value::Null,
            output: None,
            because: "no rule of the pack matched; the tenant's policy decides".into(),
        }),
    }
    decision
}

/// The first exception in force or rule of `policy` that matches, with its steps added
/// to `trace` (an expired exception that matched is a step without an output).
fn first_match(
    policy: &Policy,
    pack: Option<&str>,
    input: &FindingInput<'_>,
    at: DateTime<Utc>,
    trace: &mut Vec<TraceStep>,
) -> Option<Disposition> {
    let pack = pack.map(str::to_owned);
    for exception in &policy.exceptions {
        let matches = id_matches(&exception.vulnerabilities, input)
            && (exception.packages.is_empty()
                || package_matches(&exception.packages, input.package));
        if !matches {
            continue;
        }
        let expired = exception.expires.is_some_and(|expires| expires <= at);
        let inputs = serde_json::json!({
            "reason": exception.reason,
            "approver": exception.approver,
            "expires": exception.expires,
            "evaluated_at": at,
        });
        if expired {
            trace.push(TraceStep {
                by: format!("exception:{}", exception.id),
                policy_version: policy.version,
                pack: pack.clone(),
                inputs,
                output: None,
                because: "expired; no longer applies".into(),
            });
            continue;
        }
        trace.push(TraceStep {
            by: format!("exception:{}", exception.id),
            policy_version: policy.version,
            pack,
            inputs,
            output: Some(exception.outcome),
            because: format!("accepted by {}: {}", exception.approver, exception.reason),
        });
        return Some(exception.outcome);
    }
    for rule in &policy.rules {
        if rule.when.holds(input) {
            trace.push(TraceStep {
                by: format!("rule:{}", rule.id),
                policy_version: policy.version,
                pack,
                inputs: inputs_of(input),
                output: Some(rule.outcome),
                because: rule.because.clone(),
            });
            return Some(rule.outcome);
        }
    }
    None
}

/// The outcome of a scan: its worst finding (pass when there is none).
pub fn scan_disposition(findings: impl IntoIterator<Item = Disposition>) -> Disposition {
    findings.into_iter().max().unwrap_or(Disposition::Pass)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;
    use crate::lattice::Claim;

    fn assessment(claims: &[(Question, bool)]) -> Assessment {
        Assessment::from_claims(claims.iter().map(|(q, v)| Claim {
            question: *q,
            value: *v,
            evidence: "test".into(),
            about: None,
        }))
    }

    fn input<'a>(a: &'a Assessment, severity: Option<f64>) -> FindingInput<'a> {
        FindingInput {
            vulnerability: "GHSA-1",
            aliases: &[],
            ecosystem: Some(Ecosystem::Npm),
            package: "pkg:npm/lodash",
            severity,
            assessment: a,
        }
    }

    fn at(year: i32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn the_default_policy_blocks_severe_applicable_and_passes_what_vex_rules_out() {
        let policy = Policy::parse(DEFAULT_POLICY).unwrap();
        let applies = assessment(&[(Question::Present, true), (Question::Applies, true)]);
        assert_eq!(
            evaluate(&policy, &input(&applies, Some(9.8)), at(2026)).disposition,
            Disposition::Block
        );
        assert_eq!(
            evaluate(&policy, &input(&applies, Some(7.5)), at(2026)).disposition,
            Disposition::Block
        );
        assert_eq!(
            evaluate(&policy, &input(&applies, Some(5.0)), at(2026)).disposition,
            Disposition::Warn
        );
        assert_eq!(
            evaluate(&policy, &input(&applies, None), at(2026)).disposition,
            Disposition::Warn
        );
        let ruled_out = assessment(&[(Question::Present, true), (Question::Applies, false)]);
        let decision = evaluate(&policy, &input(&ruled_out, Some(9.8)), at(2026));
        assert_eq!(decision.disposition, Disposition::Pass);
        assert_eq!(decision.trace.len(), 1);
        assert!(decision.trace[0].by.starts_with("rule:"));
        let conflict = assessment(&[(Question::Applies, true), (Question::Applies, false)]);
        let decision = evaluate(&policy, &input(&conflict, Some(9.8)), at(2026));
        assert_eq!(
            decision.disposition,
            Disposition::Warn,
            "a conflict is shown, not resolved"
        );
        assert_eq!(decision.trace[0].inputs["applies"], "conflict");
    }

    #[test]
    fn exceptions_apply_until_they_expire() {
        let mut policy = Policy::parse(DEFAULT_POLICY).unwrap();
        policy.exceptions.push(Exception {
            id: "accepted".into(),
            vulnerabilities: vec!["ghsa-1".into()],
            packages: vec!["pkg:npm/*".into()],
            reason: "not reachable".into(),
            approver: "alice".into(),
            expires: Some(at(2027)),
            outcome: Disposition::Pass,
        });
        let applies = assessment(&[(Question::Applies, true)]);
        let before = evaluate(&policy, &input(&applies, Some(9.8)), at(2026));
        assert_eq!(before.disposition, Disposition::Pass);
        assert!(before.trace[0].because.contains("alice"));
        let after = evaluate(&policy, &input(&applies, Some(9.8)), at(2027));
        assert_eq!(after.disposition, Disposition::Block);
        assert_eq!(
            after.trace[0].output, None,
            "the expired exception is in the trace"
        );
        assert_eq!(after.trace.len(), 2);
    }

    #[test]
    fn a_pack_is_a_floor_the_stricter_decision_wins_and_the_trace_names_the_pack() {
        let own = Policy::parse(DEFAULT_POLICY).unwrap();
        let pack = Pack {
            name: "baseline".into(),
            version: 3,
            policy: Policy::parse(
                "name = 'baseline'\nversion = 7\ndefault = 'pass'\n\
                 [[rules]]\nid = 'no-lodash'\nwhen = { packages = ['pkg:npm/lodash'] }\n\
                 outcome = 'block'\nbecause = 'lodash is banned'\n\
                 [[rules]]\nid = 'lenient'\nwhen = { max_severity = 5.0 }\noutcome = 'pass'\n",
            )
            .unwrap(),
        };
        // The tenant warns (medium severity), the pack blocks lodash: block.
        let applies = assessment(&[(Question::Present, true), (Question::Applies, true)]);
        let decision = decide(&own, Some(&pack), &input(&applies, Some(5.0)), at(2026));
        assert_eq!(decision.disposition, Disposition::Block);
        let last = decision.trace.last().unwrap();
        assert_eq!(
            (last.by.as_str(), last.pack.as_deref(), last.output),
            (
                "rule:no-lodash",
                Some("baseline@3"),
                Some(Disposition::Block)
            )
        );
        assert_eq!(
            decision.trace[0].pack, None,
            "the tenant's own step comes first"
        );
        // A pack never relaxes: its `pass` on another package leaves the tenant's block.
        let mut other = input(&applies, Some(9.8));
        other.package = "pkg:npm/left-pad";
        let strict = decide(&own, Some(&pack), &other, at(2026));
        assert_eq!(strict.disposition, Disposition::Block);
        other.severity = Some(4.0);
        let lenient = decide(&own, Some(&pack), &other, at(2026));
        assert_eq!(
            lenient.disposition,
            Disposition::Warn,
            "tenant warns, pack passes"
        );
        // No pack rule matches: the tenant's decision, and a step saying so.
        let fixed = assessment(&[(Question::Fixed, true)]);
        let mut untouched = input(&fixed, Some(9.8));
        untouched.package = "pkg:npm/left-pad";
        let decision = decide(&own, Some(&pack), &untouched, at(2026));
        assert_eq!(decision.disposition, Disposition::Pass);
        let last = decision.trace.last().unwrap();
        assert_eq!((last.by.as_str(), last.output), ("default", None));
        // Without a pack, `decide` is `evaluate`.
        assert_eq!(
            decide(&own, None, &untouched, at(2026)),
            evaluate(&own, &untouched, at(2026))
        );
    }

    #[test]
    fn bad_policies_are_refused_with_the_place() {
        let err =
            Policy::parse("name = 'x'\nversion = 1\n[[rules]]\nid = 'a'\noutcome = 'explode'\n")
                .unwrap_err();
        assert!(err.message.contains("line 5"), "{}", err.message);
        let err = Policy::parse(
            "name = 'x'\nversion = 1\n[[rules]]\nid = 'a'\noutcome = 'warn'\n[[rules]]\nid = 'a'\noutcome = 'pass'\n",
        )
        .unwrap_err();
        assert_eq!(err.pointer, "/rules/1/id");
        let err = Policy::parse("name = 'x'\nversion = 1\n[[rules]]\nid = 'a'\nwhen = { min_severity = 11 }\noutcome = 'warn'\n")
            .unwrap_err();
        assert_eq!(err.pointer, "/rules/0/when/min_severity");
    }

    #[test]
    fn cvss_vectors_are_scored_and_the_highest_wins() {
        let v31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
        let low = "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N";
        assert_eq!(cvss_score([v31]), Some(9.8));
        assert_eq!(cvss_score([low, v31, "garbage"]), Some(9.8));
        let v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
        assert_eq!(cvss_score([v4]), Some(9.3));
        assert_eq!(cvss_score(["nope"]), None);
    }

    #[test]
    fn the_digest_changes_with_the_policy_and_only_then() {
        let a = Policy::parse(DEFAULT_POLICY).unwrap();
        let b = Policy::parse(DEFAULT_POLICY).unwrap();
        assert_eq!(a.digest(), b.digest());
        let mut c = b.clone();
        c.version += 1;
        assert_ne!(a.digest(), c.digest());
    }
}
