//! Rules: which events a tenant wants to hear about, and where to send them.
//!
//! ```json
//! {"name": "critical in prod", "enabled": true,
//!  "match": {"event_kinds": ["finding.new"], "min_severity": "high",
//!            "targets": ["prod-*"], "labels": {"team": "web"}},
//!  "actions": [{"channel": "sec-slack", "digest": "instant"},
//!              {"channel": "sec-mail", "template": "short", "digest": "1h"}]}
//! ```
//!
//! Matching ([`RuleMatch::matches`]): every filter that is set must hold, and a filter the
//! event cannot answer (a `min_severity` rule on `export.completed`, a `targets` rule on an
//! event without a target) does not hold. Event-level filters: kinds, targets (exact name
//! or a glob where `*` stands for any run of characters), labels (each must be equal).
//! Finding-level filters (`min_severity`, `dispositions`, `vulnerabilities`, `vex_status`):
//! when the payload has `findings`, at least one finding must satisfy all of them at once
//! (a finding without a field falls back to the event's own field); without `findings`,
//! the event's own fields answer them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{Envelope, FindingFacts, Severity, EVENT_KINDS};
use super::{typed, SpecError};

/// The VEX statuses a rule may name (OpenVEX's four).
pub const VEX_STATUSES: &[&str] = &["affected", "not_affected", "fixed", "under_investigation"];

/// The dispositions a rule may name.
pub const DISPOSITIONS: &[&str] = &["pass", "warn", "block"];

/// Names (rules, channels, templates) are at most this many characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A rule as a tenant writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub r#match: RuleMatch,
    /// At least one; at most one per channel.
    pub actions: Vec<Action>,
}

fn yes() -> bool {
    true
}

/// What a rule matches. Empty lists and maps (and `None`) do not filter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    /// Non-empty; each one of [`EVENT_KINDS`].
    pub event_kinds: Vec<String>,
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// `pass`, `warn`, `block`.
    #[serde(default)]
    pub dispositions: Vec<String>,
    /// Target names, or globs with `*`.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Vulnerability ids or aliases (ASCII case-insensitive).
    #[serde(default)]
    pub vulnerabilities: Vec<String>,
    /// One of [`VEX_STATUSES`] each.
    #[serde(default)]
    pub vex_status: Vec<String>,
}

/// Where a matching event goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// A channel's name.
    pub channel: String,
    /// A tenant template's name; `None` is the shipped default for the channel's type.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub digest: DigestWindow,
}

/// How long events wait to be sent together. Windows are aligned (see
/// [`DigestWindow::window_of`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum DigestWindow {
    #[default]
    #[serde(rename = "instant")]
    Instant,
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
    #[serde(rename = "1d")]
    OneDay,
}

impl DigestWindow {
    /// The serialized name (`instant`, `5m`, `1h`, `1d`).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestWindow::Instant => "instant",
            DigestWindow::FiveMinutes => "5m",
            DigestWindow::OneHour => "1h",
            DigestWindow::OneDay => "1d",
        }
    }

    /// The window's length in seconds; `None` for `instant`.
    pub fn seconds(self) -> Option<i64> {
        match self {
            DigestWindow::Instant => None,
            DigestWindow::FiveMinutes => Some(300),
            DigestWindow::OneHour => Some(3600),
            DigestWindow::OneDay => Some(86_400),
        }
    }
}

impl RuleSpec {
    /// Reads and checks a rule; the error names the JSON pointer of the first fault.
    pub fn parse(json: &Value) -> Result<RuleSpec, SpecError> {
        let mut rule: RuleSpec = typed(json)?;
        check_name(&rule.name, "/name")?;
        let m = &mut rule.r#match;
        if m.event_kinds.is_empty() {
            return Err(SpecError::new(
                "/match/event_kinds",
                "a rule needs at least one event kind",
            ));
        }
        for (i, kind) in m.event_kinds.iter().enumerate() {
            if !EVENT_KINDS.contains(&kind.as_str()) {
                return Err(SpecError::new(
                    format!("/match/event_kinds/{i}"),
                    format!(
                        "unknown event kind {kind:?}: expected one of {}",
                        EVENT_KINDS.join(", ")
                    ),
                ));
            }
        }
        normalize_words(&mut m.dispositions, DISPOSITIONS, "/match/dispositions")?;
        normalize_words(&mut m.vex_status, VEX_STATUSES, "/match/vex_status")?;
        for (i, target) in m.targets.iter().enumerate() {
            if target.trim().is_empty() {
                return Err(SpecError::new(
                    format!("/match/targets/{i}"),
                    "a target pattern cannot be empty",
                ));
            }
        }
        for (i, id) in m.vulnerabilities.iter().enumerate() {
            if id.trim().is_empty() {
                return Err(SpecError::new(
                    format!("/match/vulnerabilities/{i}"),
                    "a vulnerability id cannot be empty",
                ));
            }
        }
        if m.labels.keys().any(|k| k.is_empty()) {
            return Err(SpecError::new(
                "/match/labels",
                "a label name cannot be empty",
            ));
        }
        if rule.actions.is_empty() {
            return Err(SpecError::new(
                "/actions",
                "a rule needs at least one action",
            ));
        }
        for (i, action) in rule.actions.iter().enumerate() {
            check_name(&action.channel, &format!("/actions/{i}/channel"))?;
            if let Some(template) = &action.template {
                check_name(template, &format!("/actions/{i}/template"))?;
            }
            if rule.actions[..i]
                .iter()
                .any(|a| a.channel == action.channel)
            {
                return Err(SpecError::new(
                    format!("/actions/{i}/channel"),
                    format!("channel {:?} is named by two actions", action.channel),
                ));
            }
        }
        Ok(rule)
    }
}

/// A name: not blank, at most [`MAX_NAME_CHARS`] characters, no control characters.
pub(crate) fn check_name(name: &str, pointer: &str) -> Result<(), SpecError> {
    if name.trim().is_empty() {
        return Err(SpecError::new(pointer, "a name cannot be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(SpecError::new(
            pointer,
            format!("a name has at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(SpecError::new(
            pointer,
            "a name cannot contain control characters",
        ));
    }
    Ok(())
}

fn normalize_words(words: &mut [String], allowed: &[&str], pointer: &str) -> Result<(), SpecError> {
    for (i, word) in words.iter_mut().enumerate() {
        let lower = word.trim().to_ascii_lowercase();
        if !allowed.contains(&lower.as_str()) {
            return Err(SpecError::new(
                format!("{pointer}/{i}"),
                format!(
                    "unknown value {word:?}: expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        *word = lower;
    }
    Ok(())
}

impl RuleMatch {
    /// Whether `event` is one this rule wants (see the module's documentation).
    pub fn matches(&self, event: &Envelope) -> bool {
        if !self.event_kinds.contains(&event.kind) {
            return false;
        }
        if !self.targets.is_empty() {
            match event.target() {
                Some(target) if self.targets.iter().any(|p| glob_match(p, target)) => {}
                _ => return false,
            }
        }
        if !self.labels.is_empty() {
            let Some(labels) = event.labels() else {
                return false;
            };
            let all_equal = self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v.as_str()));
            if !all_equal {
                return false;
            }
        }
        if !self.has_finding_filters() {
            return true;
        }
        match event.findings() {
            Some(findings) => findings.iter().any(|f| self.finding_holds(Some(f), event)),
            None => self.finding_holds(None, event),
        }
    }

    fn has_finding_filters(&self) -> bool {
        self.min_severity.is_some()
            || !self.dispositions.is_empty()
            || !self.vulnerabilities.is_empty()
            || !self.vex_status.is_empty()
    }

    /// All finding-level filters on one finding (or on the event itself when `None`); a
    /// field the finding lacks is read from the event.
    fn finding_holds(&self, finding: Option<&FindingFacts<'_>>, event: &Envelope) -> bool {
        let payload = event.payload.as_object();
        let own = |name: &str| payload.and_then(|p| p.get(name));
        if let Some(min) = self.min_severity {
            let severity = finding
                .and_then(|f| f.severity)
                .or_else(|| own("severity").and_then(Severity::from_json));
            if severity.is_none_or(|s| s < min) {
                return false;
            }
        }
        if !self.dispositions.is_empty() {
            let disposition = finding
                .and_then(|f| f.disposition)
                .or_else(|| event.disposition());
            if !disposition.is_some_and(|d| self.dispositions.iter().any(|w| w == d.as_str())) {
                return false;
            }
        }
        if !self.vulnerabilities.is_empty() {
            let ids: Vec<&str> = match finding {
                Some(f) if f.vulnerability_id.is_some() => f.ids().collect(),
                _ => event.vulnerability_id().into_iter().collect(),
            };
            let wanted = self
                .vulnerabilities
                .iter()
                .any(|v| ids.iter().any(|id| id.eq_ignore_ascii_case(v.trim())));
            if !wanted {
                return false;
            }
        }
        if !self.vex_status.is_empty() {
            let status = finding
                .and_then(|f| f.vex_status)
                .or_else(|| event.vex_status());
            if !status.is_some_and(|s| self.vex_status.iter().any(|w| w.eq_ignore_ascii_case(s))) {
                return false;
            }
        }
        true
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters
/// (including none) and everything else for itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob_match("prod-*", "prod-web"));
        assert!(glob_match("prod-*", "prod-"));
        assert!(!glob_match("prod-*", "staging-web"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*web*", "the-web-app"));
        assert!(glob_match("a*b*c", "aXbYbc"));
        assert!(!glob_match("a*b*c", "aXbYbcd"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("ünï*", "ünïcode"));
    }

    #[test]
    fn a_minimal_rule_gets_its_defaults() {
        let rule = RuleSpec::parse(&json!({
            "name": "r", "match": {"event_kinds": ["finding.new"]},
            "actions": [{"channel": "c"}]
        }))
        .unwrap();
        assert!(rule.enabled);
        assert_eq!(rule.actions[0].digest, DigestWindow::Instant);
        assert_eq!(rule.actions[0].template, None);
    }
}
