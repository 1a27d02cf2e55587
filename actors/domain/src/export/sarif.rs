//! `sarif`: SARIF 2.1.0 that GitHub code scanning accepts, one run per target.
//!
//! SARIF lists a run's rules (`tool.driver.rules`) before its results, and a result
//! names its rule; so the writer takes two passes over the findings, both in the same
//! order: the first into a [`SarifPlan`] (one rule per vulnerability id, and counts),
//! the second through a [`SarifWriter`], which writes each result as it comes. Only the
//! plan (one entry per distinct vulnerability) is held, never the findings.
//!
//! What GitHub needs, and how each finding provides it:
//! - **Rules**: `id` = the vulnerability id (stable across runs), a short description
//!   (the advisory summary), `help`, the `security` tag and `properties.security-severity`
//!   (the CVSS score as a string, `"9.8"`), which GitHub turns into critical / high /
//!   medium / low.
//! - **Results**: `ruleId` and `ruleIndex`; `level` from the disposition (block → `error`,
//!   warn → `warning`, pass → `note`); `message.text` saying what, where, what decided
//!   and what fixes it.
//! - **Locations**: GitHub shows only results with a physical location, and needs a
//!   line: the SBOM is the artifact (`artifactLocation.uri`, the run's
//!   [`SarifRun::artifact_uri`], with `region.startLine` 1: a package has no line of its
//!   own), and the purl is the logical location.
//! - **Fingerprints**: `partialFingerprints["stellaPackageVulnerability/v1"]` is the
//!   SHA-256 of the vulnerability id and the package purl *without* version, qualifiers
//!   or subpath (`vulnerability_id` NUL `pkg:type/namespace/name`). It survives a re-tag
//!   of the image (same content, new name) and an upgrade that does not fix the
//!   vulnerability, so GitHub keeps one alert; two versions of one package with the same
//!   vulnerability in one SBOM are one alert (fixing it means upgrading both). GitHub
//!   also compares the artifact path and the category, so both must stay the same
//!   between runs: name the artifact and the target without tag or digest.
//! - **Category**: `automationDetails.id` is `stella/<target>/<run>`; GitHub takes what
//!   comes before the last `/` as the analysis category, so each target is an analysis
//!   of its own and a newer upload replaces the older one.
//! - **Limits**: at most [`GITHUB_MAX_RESULTS`] results per run. Beyond it the writer
//!   keeps the worst: every blocking result first, then warnings, then passes, each in
//!   stream order while room is left (the plan's counts say how much room each
//!   disposition gets); what is left out is counted in a `toolExecutionNotifications`
//!   warning of the run's invocation and in `run.properties`. GitHub's other limit, 10 MB
//!   gzipped per upload, is the caller's to check on the bytes.
//!
//! Output is compact JSON with one result per line; the same findings in the same order
//! give the same bytes.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{ExportError, ExportFinding};
use crate::policy::Disposition;

/// The `$schema` of the log: the OASIS schema's own id.
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";
/// GitHub code scanning's limit of results per run.
pub const GITHUB_MAX_RESULTS: usize = 25_000;
/// The key of Stella's partial fingerprint.
pub const FINGERPRINT_KEY: &str = "stellaPackageVulnerability/v1";
/// The tool's name.
pub const TOOL_NAME: &str = "Stella";
/// The tool's `informationUri` unless the run gives another.
pub const INFORMATION_URI: &str = "https://stella.dev";

/// What the run says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SarifRun<'a> {
    /// Stella's version.
    pub tool_version: &'a str,
    pub information_uri: &'a str,
    /// The target, named so that it stays the same across tags (`registry.example/app`).
    pub target: &'a str,
    /// This run among the target's (the export id, or the evaluation time).
    pub run_id: &'a str,
    /// The SBOM as an artifact path that stays the same across scans of the target.
    pub artifact_uri: &'a str,
    /// The SBOM's SHA-256 (hex), recorded with the artifact when known.
    pub artifact_sha256: Option<&'a str>,
    /// Results kept at most: [`GITHUB_MAX_RESULTS`] for GitHub.
    pub max_results: usize,
}

impl<'a> SarifRun<'a> {
    /// A run for GitHub: its result limit and Stella's information URI.
    pub fn new(
        tool_version: &'a str,
        target: &'a str,
        run_id: &'a str,
        artifact_uri: &'a str,
    ) -> Self {
        Self {
            tool_version,
            information_uri: INFORMATION_URI,
            target,
            run_id,
            artifact_uri,
            artifact_sha256: None,
            max_results: GITHUB_MAX_RESULTS,
        }
    }

    /// `automationDetails.id`: `stella/<target>/<run>`.
    pub fn automation_id(&self) -> String {
        format!("stella/{}/{}", self.target, self.run_id)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct RulePlan {
    summary: Option<String>,
    aliases: Vec<String>,
    score: Option<f64>,
    severity: &'static str,
    worst: Disposition,
    findings: u64,
}

/// The first pass: a rule per vulnerability id and counts per disposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SarifPlan {
    rules: BTreeMap<String, RulePlan>,
    counts: [u64; 3],
}

fn slot(disposition: Disposition) -> usize {
    match disposition {
        Disposition::Block => 0,
        Disposition::Warn => 1,
        Disposition::Pass => 2,
    }
}

impl SarifPlan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a finding into account.
    pub fn add(&mut self, finding: &ExportFinding<'_>) {
        self.counts[slot(finding.disposition)] += 1;
        // Looked up before inserting: most findings share their rule with others, and
        // the id is copied only for a new one.
        if !self.rules.contains_key(finding.vulnerability_id) {
            self.rules.insert(
                finding.vulnerability_id.to_owned(),
                RulePlan {
                    summary: None,
                    aliases: Vec::new(),
                    score: None,
                    severity: "unknown",
                    worst: finding.disposition,
                    findings: 0,
                },
            );
        }
        let Some(rule) = self.rules.get_mut(finding.vulnerability_id) else {
            return;
        };
        rule.findings += 1;
        rule.worst = rule.worst.max(finding.disposition);
        if rule.summary.is_none() {
            rule.summary = finding.summary.map(str::to_owned);
        }
        for alias in &finding.aliases {
            if !rule.aliases.iter().any(|a| a == alias) {
                rule.aliases.push((*alias).to_owned());
            }
        }
        // The rule's severity is its highest-scored finding's (all share the advisory,
        // so they agree unless the stored findings were evaluated at different times).
        if finding.cvss_score > rule.score {
            rule.score = finding.cvss_score;
            rule.severity = finding.severity();
        } else if rule.severity == "unknown" {
            rule.severity = finding.severity();
        }
    }

    /// The number of findings seen.
    pub fn findings(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The number of rules (distinct vulnerability ids).
    pub fn rules(&self) -> usize {
        self.rules.len()
    }
}

/// What a finished SARIF log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SarifSummary {
    pub rules: usize,
    pub results: u64,
    /// Findings left out for the result limit.
    pub omitted: u64,
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Help<'a> {
    text: &'a str,
    markdown: &'a str,
}

#[derive(Serialize)]
struct RuleProperties<'a> {
    tags: [&'static str; 2],
    #[serde(rename = "security-severity", skip_serializing_if = "Option::is_none")]
    security_severity: Option<String>,
    precision: &'static str,
    aliases: &'a [String],
}

#[derive(Serialize)]
struct Level {
    level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule<'a> {
    id: &'a str,
    short_description: Text<'a>,
    full_description: Text<'a>,
    default_configuration: Level,
    help: Help<'a>,
    properties: RuleProperties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocation<'a> {
    uri: &'a str,
    index: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation<'a> {
    artifact_location: ArtifactLocation<'a>,
    region: Region,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogicalLocation<'a> {
    name: &'a str,
    fully_qualified_name: &'a str,
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    physical_location: PhysicalLocation<'a>,
    logical_locations: [LogicalLocation<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultProperties<'a> {
    disposition: &'static str,
    severity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    installed_version: Option<&'a str>,
    fixed_versions: Vec<&'a str>,
    vex_status: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_rule: Option<&'a str>,
    scan_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'a str,
    rule_index: usize,
    level: &'static str,
    message: Text<'a>,
    locations: [Location<'a>; 1],
    partial_fingerprints: BTreeMap<&'static str, String>,
    properties: ResultProperties<'a>,
}

fn level(disposition: Disposition) -> &'static str {
    match disposition {
        Disposition::Block => "error",
        Disposition::Warn => "warning",
        Disposition::Pass => "note",
    }
}

/// The partial fingerprint of a finding: hex SHA-256 of `vulnerability_id` NUL
/// `package` (the purl without version).
pub fn fingerprint(finding: &ExportFinding<'_>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(finding.vulnerability_id.as_bytes());
    hasher.update([0]);
    hasher.update(finding.package.as_bytes());
    hex::encode(hasher.finalize())
}

/// A result's message: what, where, what decided, what fixes it.
fn message(finding: &ExportFinding<'_>) -> String {
    let mut text = format!("{} in {}", finding.vulnerability_id, finding.purl);
    if let Some(summary) = finding.summary {
        text.push_str(": ");
        text.push_str(summary);
    }
    text.push_str(&format!(
        ". Policy: {} ({} severity",
        finding.disposition.as_str(),
        finding.severity()
    ));
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

/// The second pass: writes the log's head and rules when it starts, each result as it
/// comes, and the run's end when it finishes.
#[derive(Debug)]
pub struct SarifWriter<W: Write> {
    out: W,
    artifact_uri: String,
    rule_index: BTreeMap<String, usize>,
    /// How many results of each disposition may still be written.
    room: [u64; 3],
    written: [u64; 3],
    omitted: [u64; 3],
    buffer: Vec<u8>,
}

fn json<W: Write, T: Serialize + ?Sized>(out: &mut W, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)
}

impl<W: Write> SarifWriter<W> {
    /// Writes everything up to the first result: the log, the tool with its rules, the
    /// automation details and the artifact.
    pub fn start(mut out: W, run: &SarifRun<'_>, plan: SarifPlan) -> io::Result<Self> {
        out.write_all(b"{\"$schema\":")?;
        json(&mut out, SARIF_SCHEMA)?;
        out.write_all(b",\"version\":\"2.1.0\",\"runs\":[{\"tool\":{\"driver\":{\"name\":")?;
        json(&mut out, TOOL_NAME)?;
        out.write_all(b",\"version\":")?;
        json(&mut out, run.tool_version)?;
        out.write_all(b",\"informationUri\":")?;
        json(&mut out, run.information_uri)?;
        out.write_all(b",\"rules\":[")?;
        let mut rule_index = BTreeMap::new();
        for (i, (id, rule)) in plan.rules.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(b"\n")?;
            let summary = rule.summary.as_deref().unwrap_or(id.as_str());
            let mut help = format!("{id}: {summary}");
            if !rule.aliases.is_empty() {
                help.push_str(&format!("\nAliases: {}", rule.aliases.join(", ")));
            }
            help.push_str(&format!("\nSeverity: {}", rule.severity));
            if let Some(score) = rule.score {
                help.push_str(&format!(" (CVSS {score:.1})"));
            }
            help.push_str(&format!("\nFindings in this run: {}", rule.findings));
            let markdown = help.replace('\n', "  \n");
            json(
                &mut out,
                &Rule {
                    id,
                    short_description: Text { text: summary },
                    full_description: Text { text: summary },
                    default_configuration: Level {
                        level: level(rule.worst),
                    },
                    help: Help {
                        text: &help,
                        markdown: &markdown,
                    },
                    properties: RuleProperties {
                        tags: ["security", "vulnerability"],
                        security_severity: rule.score.map(|s| format!("{s:.1}")),
                        precision: "very-high",
                        aliases: &rule.aliases,
                    },
                },
            )?;
            rule_index.insert(id.clone(), i);
        }
        out.write_all(b"]}},\"automationDetails\":{\"id\":")?;
        json(&mut out, &run.automation_id())?;
        out.write_all(b"},\"artifacts\":[{\"location\":{\"uri\":")?;
        json(&mut out, run.artifact_uri)?;
        out.write_all(b"}")?;
        if let Some(sha256) = run.artifact_sha256 {
            out.write_all(b",\"hashes\":{\"sha-256\":")?;
            json(&mut out, sha256)?;
            out.write_all(b"}")?;
        }
        out.write_all(
            b",\"roles\":[\"analysisTarget\"]}],\"columnKind\":\"unicodeCodePoints\",\"results\":[",
        )?;

        // Room by disposition, worst first: blocks take what they need of the limit,
        // warnings what is left, passes the rest.
        let mut left = run.max_results as u64;
        let mut room = [0; 3];
        for (i, count) in plan.counts.iter().enumerate() {
            room[i] = (*count).min(left);
            left -= room[i];
        }
        Ok(Self {
            out,
            artifact_uri: run.artifact_uri.to_owned(),
            rule_index,
            room,
            written: [0; 3],
            omitted: [0; 3],
            buffer: Vec::with_capacity(2048),
        })
    }

    /// Writes a finding's result; `false` when the result limit leaves it out. A finding
    /// whose vulnerability the plan did not see is an error.
    pub fn write(&mut self, finding: &ExportFinding<'_>) -> Result<bool, ExportError> {
        let Some(&rule_index) = self.rule_index.get(finding.vulnerability_id) else {
            return Err(ExportError::UnknownRule(
                finding.vulnerability_id.to_owned(),
            ));
        };
        let s = slot(finding.disposition);
        if self.room[s] == 0 {
            self.omitted[s] += 1;
            return Ok(false);
        }
        self.room[s] -= 1;
        // The package as people write it: `github.com/labstack/echo/v4`, `@scope/name`.
        let name = finding
            .package
            .split_once('/')
            .map_or(finding.package, |(_, name)| name);
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        let message = message(finding);
        let result = SarifResult {
            rule_id: finding.vulnerability_id,
            rule_index,
            level: level(finding.disposition),
            message: Text { text: &message },
            locations: [Location {
                physical_location: PhysicalLocation {
                    artifact_location: ArtifactLocation {
                        uri: &self.artifact_uri,
                        index: 0,
                    },
                    region: Region { start_line: 1 },
                },
                logical_locations: [LogicalLocation {
                    name: &name,
                    fully_qualified_name: finding.purl,
                    kind: "module",
                }],
            }],
            partial_fingerprints: BTreeMap::from([(FINGERPRINT_KEY, fingerprint(finding))]),
            properties: ResultProperties {
                disposition: finding.disposition.as_str(),
                severity: finding.severity(),
                installed_version: finding.installed_version.as_deref(),
                fixed_versions: finding.fixed_versions.iter().map(|v| v.as_ref()).collect(),
                vex_status: finding.vex.iter().map(|v| v.as_str()).collect(),
                policy_rule: finding.rule_id,
                scan_id: finding.scan.scan_id,
            },
        };
        self.buffer.clear();
        if self.written.iter().sum::<u64>() > 0 {
            self.buffer.push(b',');
        }
        self.buffer.push(b'\n');
        json(&mut self.buffer, &result)?;
        self.out.write_all(&self.buffer)?;
        self.written[s] += 1;
        Ok(true)
    }

    /// Ends the results, writes the invocation (with a warning when results were left
    /// out) and the run's properties, flushes, and hands the sink back.
    pub fn finish(mut self) -> Result<(W, SarifSummary), ExportError> {
        let written: u64 = self.written.iter().sum();
        let omitted: u64 = self.omitted.iter().sum();
        let out = &mut self.out;
        out.write_all(b"\n],\"invocations\":[{\"executionSuccessful\":true")?;
        if omitted > 0 {
            let text = format!(
                "{omitted} of {} findings are not listed: GitHub code scanning takes at most \
                 {GITHUB_MAX_RESULTS} results per run, so the run keeps the blocking ones first, \
                 then warnings, then passes (left out: {} block, {} warn, {} pass). \
                 The export's CSV and JSON list every finding.",
                omitted + written,
                self.omitted[0],
                self.omitted[1],
                self.omitted[2],
            );
            out.write_all(b",\"toolExecutionNotifications\":[{\"descriptor\":{\"id\":\"stella/results-truncated\"},\"level\":\"warning\",\"message\":")?;
            json(out, &Text { text: &text })?;
            out.write_all(b"}]")?;
        }
        out.write_all(b"}],\"properties\":")?;
        json(
            out,
            &serde_json::json!({
                "stella": {
                    "findings": written + omitted,
                    "results": written,
                    "omitted": {
                        "block": self.omitted[0],
                        "warn": self.omitted[1],
                        "pass": self.omitted[2],
                    },
                }
            }),
        )?;
        out.write_all(b"}]}\n")?;
        out.flush()?;
        Ok((
            self.out,
            SarifSummary {
                rules: self.rule_index.len(),
                results: written,
                omitted,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::Value;

    use super::super::tests::{finding_json, SCAN};
    use super::*;

    fn write(values: &[Value], max_results: usize) -> (Value, SarifSummary, Vec<u8>) {
        let findings: Vec<ExportFinding<'_>> = values
            .iter()
            .map(|v| ExportFinding::from_finding_json(SCAN, v).unwrap())
            .collect();
        let mut plan = SarifPlan::new();
        for f in &findings {
            plan.add(f);
        }
        let mut run = SarifRun::new(
            "0.1.0",
            "registry.example/app",
            "2026-01-01",
            "sbom/app.cdx.json",
        );
        run.max_results = max_results;
        run.artifact_sha256 = Some("ab");
        let mut writer = SarifWriter::start(Vec::new(), &run, plan).unwrap();
        for f in &findings {
            writer.write(f).unwrap();
        }
        let (bytes, summary) = writer.finish().unwrap();
        (serde_json::from_slice(&bytes).unwrap(), summary, bytes)
    }

    #[test]
    fn a_log_has_rules_then_results_with_locations_and_fingerprints() {
        let values = [
            finding_json("GHSA-b", "pkg:npm/lodash@4.17.20", "block"),
            finding_json("GHSA-a", "pkg:npm/lodash@4.17.20", "pass"),
            finding_json("GHSA-b", "pkg:npm/lodash@4.17.19", "warn"),
        ];
        let (log, summary, bytes) = write(&values, GITHUB_MAX_RESULTS);
        assert_eq!(
            summary,
            SarifSummary {
                rules: 2,
                results: 3,
                omitted: 0
            }
        );
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules[0]["id"], "GHSA-a");
        assert_eq!(rules[1]["id"], "GHSA-b");
        assert_eq!(rules[1]["properties"]["security-severity"], "9.8");
        assert_eq!(rules[1]["defaultConfiguration"]["level"], "error");
        assert_eq!(
            run["automationDetails"]["id"],
            "stella/registry.example/app/2026-01-01"
        );
        let results = run["results"].as_array().unwrap();
        let levels: Vec<&str> = results
            .iter()
            .map(|r| r["level"].as_str().unwrap())
            .collect();
        assert_eq!(levels, ["error", "note", "warning"]);
        assert_eq!(results[0]["ruleIndex"], 1);
        assert_eq!(results[1]["ruleIndex"], 0);
        let location = &results[0]["locations"][0];
        assert_eq!(
            location["physicalLocation"]["artifactLocation"]["uri"],
            "sbom/app.cdx.json"
        );
        assert_eq!(
            location["logicalLocations"][0]["fullyQualifiedName"],
            "pkg:npm/lodash@4.17.20"
        );
        assert_eq!(location["logicalLocations"][0]["name"], "lodash");
        assert!(
            rules[0].get("name").is_none(),
            "a rule's name must differ from its id"
        );
        // Another version of the same package: the same alert.
        assert_eq!(
            results[0]["partialFingerprints"][FINGERPRINT_KEY],
            results[2]["partialFingerprints"][FINGERPRINT_KEY]
        );
        assert_ne!(
            results[0]["partialFingerprints"][FINGERPRINT_KEY],
            results[1]["partialFingerprints"][FINGERPRINT_KEY]
        );
        assert!(run["invocations"][0]
            .get("toolExecutionNotifications")
            .is_none());
        assert_eq!(
            write(&values, GITHUB_MAX_RESULTS).2,
            bytes,
            "byte-identical"
        );
    }

    #[test]
    fn beyond_the_limit_the_worst_are_kept_and_the_rest_counted() {
        let values = [
            finding_json("P-1", "pkg:npm/a@1", "pass"),
            finding_json("W-1", "pkg:npm/b@1", "warn"),
            finding_json("B-1", "pkg:npm/c@1", "block"),
            finding_json("W-2", "pkg:npm/d@1", "warn"),
            finding_json("B-2", "pkg:npm/e@1", "block"),
        ];
        let (log, summary, _) = write(&values, 3);
        assert_eq!(
            summary,
            SarifSummary {
                rules: 5,
                results: 3,
                omitted: 2
            }
        );
        let run = &log["runs"][0];
        let ids: Vec<&str> = run["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["ruleId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["W-1", "B-1", "B-2"]);
        let note = &run["invocations"][0]["toolExecutionNotifications"][0];
        assert_eq!(note["level"], "warning");
        assert!(note["message"]["text"]
            .as_str()
            .unwrap()
            .starts_with("2 of 5 findings"));
        assert_eq!(
            run["properties"]["stella"]["omitted"],
            serde_json::json!({"block": 0, "warn": 1, "pass": 1})
        );
    }

    #[test]
    fn messages_say_what_where_what_decided_and_what_fixes_it() {
        let value = finding_json("GHSA-1", "pkg:npm/%40scope/pkg@1.0.0", "block");
        let f = ExportFinding::from_finding_json(SCAN, &value)
            .unwrap()
            .with_fixed_versions(["1.0.1"]);
        assert_eq!(
            message(&f),
            "GHSA-1 in pkg:npm/%40scope/pkg@1.0.0: GHSA-1 in a package. Policy: block \
             (critical severity, CVSS 9.8) by rule:not-applicable: VEX says it does not \
             apply. VEX: not_affected. Fixed in 1.0.1."
        );
        let (log, _, _) = write(&[value], GITHUB_MAX_RESULTS);
        let location = &log["runs"][0]["results"][0]["locations"][0];
        assert_eq!(location["logicalLocations"][0]["name"], "@scope/pkg");
    }

    #[test]
    fn a_finding_the_plan_did_not_see_is_an_error() {
        let value = finding_json("X-1", "pkg:npm/a@1", "pass");
        let f = ExportFinding::from_finding_json(SCAN, &value).unwrap();
        let run = SarifRun::new("0.1.0", "t", "r", "sbom.json");
        let mut writer = SarifWriter::start(Vec::new(), &run, SarifPlan::new()).unwrap();
        assert!(matches!(writer.write(&f), Err(ExportError::UnknownRule(id)) if id == "X-1"));
    }
}
