//! What a person reads about an event or a digest, in words: a headline, detail lines and
//! labelled facts. Templates get it as `facts`; the Slack and Teams builders lay it out.
//!
//! A `finding.new` headline names the vulnerability ids, the highest severity and the
//! target; a `verdict.changed` headline the old and new disposition.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::event::{Envelope, Severity, EVENT_KINDS};

/// Detail lines kept; the rest are counted in a last line.
pub const MAX_DETAILS: usize = 20;

/// Vulnerability ids named in a headline before "and N more".
const HEADLINE_IDS: usize = 3;

/// The words of one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// One line: what happened, to what.
    pub headline: String,
    /// The highest severity involved, when the event has one.
    pub severity: Option<Severity>,
    pub target: Option<String>,
    /// Vulnerability ids, each once, in the order met.
    pub vulnerabilities: Vec<String>,
    /// One line per finding (or per event, in a digest), at most [`MAX_DETAILS`] and a
    /// count of the rest.
    pub details: Vec<String>,
    /// Labelled values (Event, Target, Severity, Tenant, Occurred, …).
    pub facts: Vec<Fact>,
}

/// A labelled value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    pub title: String,
    pub value: String,
}

fn fact(title: &str, value: impl Into<String>) -> Fact {
    Fact {
        title: title.to_owned(),
        value: value.into(),
    }
}

/// A time as messages show it: `2026-03-01 10:00 UTC`.
pub fn display_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn capped(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_DETAILS {
        let more = lines.len() - (MAX_DETAILS - 1);
        lines.truncate(MAX_DETAILS - 1);
        lines.push(format!("… and {more} more"));
    }
    lines
}

fn id_list(ids: &[String]) -> String {
    let shown = ids
        .iter()
        .take(HEADLINE_IDS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > HEADLINE_IDS {
        format!("{shown} and {} more", ids.len() - HEADLINE_IDS)
    } else {
        shown
    }
}

impl Summary {
    /// The summary of one event.
    pub fn of_event(event: &Envelope) -> Summary {
        let payload = event.payload.as_object();
        let s = |name: &str| payload.and_then(|p| p.get(name)).and_then(Value::as_str);
        let target = event.target().map(str::to_owned);
        let severity = event.severity();
        let findings = event.findings().unwrap_or_default();

        let mut vulnerabilities: Vec<String> = Vec::new();
        let mut details = Vec::new();
        for f in &findings {
            if let Some(id) = f.vulnerability_id {
                if !vulnerabilities.iter().any(|v| v == id) {
                    vulnerabilities.push(id.to_owned());
                }
            }
            let mut line = f.vulnerability_id.unwrap_or("(no id)").to_owned();
            if let Some(sev) = f.severity {
                line.push_str(&format!(" ({sev})"));
            }
            if let Some(purl) = f.purl {
                line.push_str(&format!(" in {purl}"));
            }
            if let Some(vex) = f.vex_status {
                line.push_str(&format!(", VEX {vex}"));
            }
            if let Some(fixed) = f.fixed_version {
                line.push_str(&format!(", fixed in {fixed}"));
            }
            details.push(line);
        }
        if let Some(id) = event.vulnerability_id() {
            if !vulnerabilities.iter().any(|v| v == id) {
                vulnerabilities.push(id.to_owned());
            }
        }

        let in_target = target
            .as_deref()
            .map(|t| format!(" in {t}"))
            .unwrap_or_default();
        let sev_word = severity.map(|s| format!("{s} ")).unwrap_or_default();
        let disposition = |name: &str| s(name).unwrap_or("unknown").to_ascii_lowercase();
        let n = vulnerabilities.len();
        let headline = match event.kind.as_str() {
            "finding.new" if n <= 1 => format!(
                "New {sev_word}vulnerability {}{in_target}",
                vulnerabilities.first().map_or("(no id)", String::as_str)
            ),
            "finding.new" => format!(
                "{n} new vulnerabilities{in_target}, highest {}: {}",
                severity.map_or("unknown", Severity::as_str),
                id_list(&vulnerabilities)
            ),
            "finding.resolved" if n <= 1 => format!(
                "Resolved {sev_word}vulnerability {}{in_target}",
                vulnerabilities.first().map_or("(no id)", String::as_str)
            ),
            "finding.resolved" => format!(
                "{n} vulnerabilities resolved{in_target}: {}",
                id_list(&vulnerabilities)
            ),
            "verdict.changed" => format!(
                "Verdict{} changed: {} → {}",
                target
                    .as_deref()
                    .map(|t| format!(" for {t}"))
                    .unwrap_or_default(),
                disposition("previous_disposition"),
                disposition("disposition")
            ),
            "scan.completed" => format!(
                "Scan{} completed: {}",
                target
                    .as_deref()
                    .map(|t| format!(" of {t}"))
                    .unwrap_or_default(),
                disposition("disposition")
            ),
            "advisory.impact" => format!(
                "Advisory {} ({}) affects {}",
                id_list(&vulnerabilities),
                severity.map_or("unknown severity", Severity::as_str),
                target.as_deref().unwrap_or("your targets")
            ),
            "export.completed" => format!(
                "Export {} completed",
                s("profile").or(s("export_id")).unwrap_or("")
            )
            .replace("  ", " "),
            "export.failed" => format!(
                "Export {} failed: {}",
                s("profile").or(s("export_id")).unwrap_or(""),
                s("error").unwrap_or("unknown error")
            )
            .replace("  ", " "),
            "job.dead_lettered" => format!(
                "Job {} was dead-lettered: {}",
                [s("job_kind"), s("job_id")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
                s("error").unwrap_or("unknown error")
            )
            .replace("  ", " "),
            "tenant.quarantined" => format!(
                "Tenant {} was quarantined: {}",
                event.tenant,
                s("reason").unwrap_or("no reason given")
            ),
            "notify.test" => "Test notification from Stella".to_owned(),
            other => format!("Event {other}{in_target}"),
        };

        let mut facts = vec![fact("Event", event.kind.clone())];
        if let Some(t) = &target {
            facts.push(fact("Target", t.clone()));
        }
        if let Some(sev) = severity {
            facts.push(fact("Severity", sev.as_str()));
        }
        if !vulnerabilities.is_empty() {
            facts.push(fact("Vulnerabilities", id_list(&vulnerabilities)));
        }
        if event.kind == "verdict.changed" || event.kind == "scan.completed" {
            facts.push(fact("Disposition", disposition("disposition")));
        }
        facts.push(fact("Tenant", event.tenant.clone()));
        facts.push(fact("Occurred", display_time(event.occurred_at)));
        facts.push(fact("Event id", event.id.clone()));

        Summary {
            headline,
            severity,
            target,
            vulnerabilities,
            details: capped(details),
            facts,
        }
    }

    /// The summary of a digest: `throttled` of the events were held back by the channel's
    /// throttle and are sent here instead of one by one.
    pub fn of_digest(
        events: &[Envelope],
        window: (DateTime<Utc>, DateTime<Utc>),
        throttled: u32,
    ) -> Summary {
        let summaries: Vec<Summary> = events.iter().map(Summary::of_event).collect();
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for kind in EVENT_KINDS
            .iter()
            .copied()
            .chain(events.iter().map(|e| e.kind.as_str()))
        {
            let count = events.iter().filter(|e| e.kind == kind).count();
            if count > 0 && !kinds.iter().any(|(k, _)| *k == kind) {
                kinds.push((kind, count));
            }
        }
        let tenants: Vec<&str> = {
            let mut t: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
            t.sort_unstable();
            t.dedup();
            t
        };
        let by_kind = kinds
            .iter()
            .map(|(k, c)| format!("{c} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let headline = format!(
            "{} event{}{}: {by_kind}",
            events.len(),
            if events.len() == 1 { "" } else { "s" },
            if tenants.len() == 1 {
                format!(" for {}", tenants[0])
            } else {
                String::new()
            }
        );
        let mut vulnerabilities: Vec<String> = Vec::new();
        for s in &summaries {
            for v in &s.vulnerabilities {
                if !vulnerabilities.contains(v) {
                    vulnerabilities.push(v.clone());
                }
            }
        }
        let severity = summaries.iter().filter_map(|s| s.severity).max();
        let mut facts = vec![
            fact(
                "Window",
                format!("{} – {}", display_time(window.0), display_time(window.1)),
            ),
            fact("Events", events.len().to_string()),
        ];
        if throttled > 0 {
            facts.push(fact("Held by the throttle", throttled.to_string()));
        }
        if let Some(sev) = severity {
            facts.push(fact("Highest severity", sev.as_str()));
        }
        if tenants.len() == 1 {
            facts.push(fact("Tenant", tenants[0]));
        }
        Summary {
            headline,
            severity,
            target: None,
            vulnerabilities,
            details: capped(summaries.into_iter().map(|s| s.headline).collect()),
            facts,
        }
    }
}
