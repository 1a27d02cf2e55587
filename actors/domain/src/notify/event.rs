//! The one versioned envelope every platform event travels in, and what the notifier reads
//! from its payload.
//!
//! Payload conventions (all optional; a rule filter on a field the event does not carry
//! does not match it):
//!
//! | field | type | read as |
//! |---|---|---|
//! | `target` | string | the target's name; scan events may carry `name` instead, read the same |
//! | `labels` | object string → string | the target's labels |
//! | `disposition` | `pass` \| `warn` \| `block` | the verdict (for `verdict.changed`, the new one) |
//! | `previous_disposition` | same | `verdict.changed`: the old verdict |
//! | `severity` | word or CVSS score | the event's severity when it has no `findings` |
//! | `vulnerability_id` | string | the vulnerability of an event about one (`advisory.impact`) |
//! | `vex_status` | string | the VEX status of an event about one finding |
//! | `findings` | array of objects | each with `vulnerability_id`, `aliases` (array), `purl`, `severity`, `disposition`, `vex_status`, `fixed_version` |
//! | `error` | string | what went wrong (`export.failed`, `job.dead_lettered`) |
//! | `reason` | string | why (`tenant.quarantined`) |
//!
//! Severities are the CVSS qualitative words, `critical` > `high` > `medium` > `low` >
//! `none`; a number is a CVSS base score and is rated with
//! [`severity_rating`](crate::export::severity_rating); GitHub's `moderate` is `medium`,
//! and `unknown` ranks with `none`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::policy::Disposition;

/// The version of the envelope's shape; a consumer refuses a version it does not know.
pub const ENVELOPE_VERSION: u32 = 1;

/// Every event kind the notifier knows. Rollouts add theirs later; a rule naming a kind
/// not listed here is refused.
pub const EVENT_KINDS: &[&str] = &[
    "scan.completed",
    "finding.new",
    "finding.resolved",
    "verdict.changed",
    "advisory.impact",
    "export.completed",
    "export.failed",
    "job.dead_lettered",
    "tenant.quarantined",
    "notify.test",
];

/// One platform event as the notifier (and a webhook receiver) sees it.
/// Unknown fields are ignored when reading one, so a newer writer does not break an older
/// reader within a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `evt_` + 32 lowercase hex digits, derived from the event's dedupe key
    /// ([`event_id`]), so the same event read twice has the same id.
    pub id: String,
    /// One of [`EVENT_KINDS`] (`finding.new`).
    pub kind: String,
    /// [`ENVELOPE_VERSION`].
    pub version: u32,
    pub tenant: String,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
    pub trace_id: Option<String>,
    pub payload: Value,
}

/// The event id for a dedupe key: `evt_` and the first 16 bytes of its SHA-256 in
/// lowercase hex.
pub fn event_id(dedupe_key: &str) -> String {
    let digest = Sha256::digest(dedupe_key.as_bytes());
    format!("evt_{}", hex::encode(&digest[..16]))
}

/// The id of one logical delivery, (event, rule, channel): `dlv_` + the first 16 bytes of
/// the SHA-256 of the three ids, each length-prefixed so no two triples collide. It is the
/// delivery job's dedupe key and the `webhook-id` / `Message-ID` of every wire attempt.
pub fn delivery_id(event_id: &str, rule_id: &str, channel_id: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [event_id, rule_id, channel_id] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    format!("dlv_{}", hex::encode(&hasher.finalize()[..16]))
}

impl Envelope {
    /// An envelope of the current version with its id derived from `dedupe_key`.
    pub fn new(
        kind: impl Into<String>,
        tenant: impl Into<String>,
        occurred_at: DateTime<Utc>,
        dedupe_key: &str,
        payload: Value,
    ) -> Envelope {
        Envelope {
            id: event_id(dedupe_key),
            kind: kind.into(),
            version: ENVELOPE_VERSION,
            tenant: tenant.into(),
            occurred_at,
            correlation_id: None,
            trace_id: None,
            payload,
        }
    }

    fn field(&self, name: &str) -> Option<&Value> {
        self.payload.as_object().and_then(|p| p.get(name))
    }

    fn str_field(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(Value::as_str)
    }

    /// The target's name: `target`, else `name` (scan events).
    pub fn target(&self) -> Option<&str> {
        self.str_field("target").or_else(|| self.str_field("name"))
    }

    /// The target's labels, when the payload has a `labels` object.
    pub fn labels(&self) -> Option<&Map<String, Value>> {
        self.field("labels").and_then(Value::as_object)
    }

    /// The event's disposition (for `verdict.changed`, the new one).
    pub fn disposition(&self) -> Option<Disposition> {
        self.str_field("disposition").and_then(parse_disposition)
    }

    /// `verdict.changed`: the disposition before.
    pub fn previous_disposition(&self) -> Option<Disposition> {
        self.str_field("previous_disposition")
            .and_then(parse_disposition)
    }

    /// The highest severity involved: the payload's own `severity` and its findings'.
    pub fn severity(&self) -> Option<Severity> {
        let own = self.field("severity").and_then(Severity::from_json);
        let findings = self
            .findings()
            .and_then(|fs| fs.iter().filter_map(|f| f.severity).max());
        own.max(findings)
    }

    /// The vulnerability of an event about one (`vulnerability_id`).
    pub fn vulnerability_id(&self) -> Option<&str> {
        self.str_field("vulnerability_id")
    }

    /// The VEX status of an event about one finding (`vex_status`).
    pub fn vex_status(&self) -> Option<&str> {
        self.str_field("vex_status")
    }

    /// The payload's findings, when it has a `findings` array (entries that are not objects
    /// are skipped).
    pub fn findings(&self) -> Option<Vec<FindingFacts<'_>>> {
        let findings = self.field("findings")?.as_array()?;
        Some(
            findings
                .iter()
                .filter_map(Value::as_object)
                .map(FindingFacts::of)
                .collect(),
        )
    }
}

fn parse_disposition(s: &str) -> Option<Disposition> {
    match s.trim().to_ascii_lowercase().as_str() {
        "pass" => Some(Disposition::Pass),
        "warn" => Some(Disposition::Warn),
        "block" => Some(Disposition::Block),
        _ => None,
    }
}

/// What the notifier reads of one finding in a payload.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingFacts<'a> {
    pub vulnerability_id: Option<&'a str>,
    pub aliases: Vec<&'a str>,
    pub purl: Option<&'a str>,
    pub severity: Option<Severity>,
    pub disposition: Option<Disposition>,
    pub vex_status: Option<&'a str>,
    pub fixed_version: Option<&'a str>,
}

impl<'a> FindingFacts<'a> {
    fn of(finding: &'a Map<String, Value>) -> FindingFacts<'a> {
        let s = |name: &str| finding.get(name).and_then(Value::as_str);
        FindingFacts {
            vulnerability_id: s("vulnerability_id"),
            aliases: finding
                .get("aliases")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
            purl: s("purl"),
            severity: finding
                .get("severity")
                .and_then(Severity::from_json)
                .or_else(|| s("severity_label").and_then(|l| l.parse().ok())),
            disposition: s("disposition").and_then(parse_disposition),
            vex_status: s("vex_status"),
            fixed_version: s("fixed_version"),
        }
    }

    /// The vulnerability id and its aliases.
    pub fn ids(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.vulnerability_id
            .into_iter()
            .chain(self.aliases.iter().copied())
    }
}

/// A severity word, ordered: `None` (also `unknown`) < `Low` < `Medium` < `High` <
/// `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::None,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase word (`critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The rating of a CVSS base score (`critical` from 9.0, as
    /// [`severity_rating`](crate::export::severity_rating)).
    pub fn from_score(score: f64) -> Severity {
        crate::export::severity_rating(score)
            .parse()
            .unwrap_or(Severity::None)
    }

    /// A payload value: a word or a CVSS score; anything else is no severity.
    pub fn from_json(value: &Value) -> Option<Severity> {
        match value {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_f64().map(Severity::from_score),
            _ => None,
        }
    }
}

impl FromStr for Severity {
    type Err = String;

    /// Case-insensitive: `critical`, `high`, `medium` (or GitHub's `moderate`), `low`,
    /// `none` (or `unknown`).
    fn from_str(s: &str) -> Result<Severity, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" => Ok(Severity::Critical),
            "high" => Ok(Severity::High),
            "medium" | "moderate" => Ok(Severity::Medium),
            "low" => Ok(Severity::Low),
            "none" | "unknown" => Ok(Severity::None),
            _ => Err(format!(
                "unknown severity {s:?}: expected critical, high, medium, low or none"
            )),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Severity, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_id_is_the_first_half_of_the_sha256_of_the_dedupe_key() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(event_id("abc"), "evt_ba7816bf8f01cfea414140de5dae2223");
        assert_eq!(event_id("abc").len(), 4 + 32);
        let d = delivery_id("evt_1", "rule", "chan");
        assert!(d.starts_with("dlv_") && d.len() == 36);
        assert_ne!(d, delivery_id("evt_1r", "ule", "chan"));
        assert_eq!(d, delivery_id("evt_1", "rule", "chan"));
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::None);
        assert_eq!("MODERATE".parse(), Ok(Severity::Medium));
        assert_eq!("unknown".parse(), Ok(Severity::None));
        assert!("severe".parse::<Severity>().is_err());
        assert_eq!(Severity::from_json(&json!(9.8)), Some(Severity::Critical));
        assert_eq!(Severity::from_json(&json!(7.0)), Some(Severity::High));
        assert_eq!(Severity::from_json(&json!(null)), None);
    }

    #[test]
    fn payload_fields_are_read_by_convention() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let scan = Envelope::new(
            "scan.completed",
            "acme",
            at,
            "k",
            json!({"name": "web", "disposition": "block"}),
        );
        assert_eq!(scan.target(), Some("web"));
        assert_eq!(scan.disposition(), Some(Disposition::Block));
        assert_eq!(scan.severity(), None);
        let new = Envelope::new(
            "finding.new",
            "acme",
            at,
            "k2",
            json!({"target": "api", "findings": [
                {"vulnerability_id": "CVE-1", "severity": "low"},
                {"vulnerability_id": "CVE-2", "severity": 9.1},
                "not an object"
            ]}),
        );
        assert_eq!(new.target(), Some("api"));
        assert_eq!(new.severity(), Some(Severity::Critical));
        assert_eq!(new.findings().unwrap().len(), 2);
    }
}
