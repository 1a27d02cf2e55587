//! Export profiles: what an export selects and writes, immutable per revision. A profile
//! is checked and made canonical here before it is stored, so a revision's digest names
//! exactly what it asks for and an unchanged profile makes no new revision.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_domain::canonical::{canonical_bytes, sha256_hex};
use stella_store::repo::{is_profile_name, ExportProfileRecord, NewExportProfile};
use stella_store::{Store, StoreError, TenantId};

use super::{Destinations, Format};

/// What a profile selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Selectors {
    /// Scans by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scans: Vec<String>,
    /// The latest scan of each of these targets, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Only scans evaluated at or after this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Only scans evaluated before this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Only findings with these dispositions (`pass`, `warn`, `block`); all when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dispositions: Vec<String>,
    /// Only findings of at least this severity (`low`, `medium`, `high`, `critical`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<String>,
    /// Only findings of these vulnerabilities (advisory ids or aliases); all when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vulnerabilities: Vec<String>,
}

/// The severities a `min_severity` may name, lowest first.
pub(crate) const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];

impl Selectors {
    /// Whether a finding of this severity (a lowercase word, see
    /// `ExportFinding::severity`) and these ids passes `min_severity` and
    /// `vulnerabilities`.
    pub fn keeps(&self, severity: &str, id: &str, aliases: &[&str]) -> bool {
        if let Some(min) = &self.min_severity {
            let rank = |word: &str| SEVERITIES.iter().position(|s| *s == word);
            match (rank(severity), rank(min)) {
                (Some(have), Some(need)) if have >= need => {}
                _ => return false,
            }
        }
        self.vulnerabilities.is_empty()
            || self
                .vulnerabilities
                .iter()
                .any(|wanted| wanted == id || aliases.contains(&wanted.as_str()))
    }

    /// Whether a scan evaluated at `at` is inside `since`..`until`.
    pub fn in_time_range(&self, at: DateTime<Utc>) -> bool {
        self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at < until)
    }
}

/// What a profile adds to its kind's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Put the scanned SBOMs in the export (kinds that carry documents: `json:raw`,
    /// `evidence`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_sboms: bool,
    /// Put the verdicts' DSSE attestations in the export.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_evidence: bool,
    /// The report template (`report:pdf`, `report:xlsx`): `executive` (default) or
    /// `detailed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl Options {
    fn is_default(&self) -> bool {
        *self == Options::default()
    }
}

/// An event that starts a run of the profile (besides `POST /exports` and schedules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The event: `scan.completed` (the only one so far).
    pub on: String,
    /// Only scans of these targets (by name); every scan when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// The events a trigger may name.
pub(crate) const TRIGGER_EVENTS: &[&str] = &["scan.completed"];

impl Trigger {
    /// Whether a `scan.completed` event of a scan of `target` starts a run.
    pub fn fires_on_scan_of(&self, target: &str) -> bool {
        self.on == "scan.completed"
            && (self.targets.is_empty() || self.targets.iter().any(|t| t == target))
    }
}

/// Where a run's files go besides the download route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Downloaded through the API only.
    #[default]
    Download,
    /// Also copied into the tenant's part of the object store:
    /// `tenants/<tenant>/<prefix>/<export id>/<file>`.
    Objects { prefix: String },
    /// Also copied to a destination the operator declared and opened to the tenant
    /// (`[export.destinations.<name>]`, see [`super::destination`]):
    /// `<destination prefix>/<tenant>/<prefix>/<export id>/<file>`.
    Destination {
        name: String,
        /// A sub-prefix of the tenant's part of the destination.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
}

impl Distribution {
    fn is_download(&self) -> bool {
        *self == Distribution::Download
    }
}

/// Whether `prefix` is a distribution prefix: 1-200 characters, `/`-separated segments
/// of a-z, A-Z, 0-9, `-`, `_`, `.`, none empty, `.` or `..`.
fn is_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 200
        && prefix.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// A profile's definition: what is stored (canonical) and what a run reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDefinition {
    pub selectors: Selectors,
    #[serde(default, skip_serializing_if = "Options::is_default")]
    pub options: Options,
    #[serde(default, skip_serializing_if = "Distribution::is_download")]
    pub distribution: Distribution,
    /// Events that start a run (the scheduler follows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// Days an export's files are kept.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

fn default_retention_days() -> u32 {
    30
}

/// The most scans and targets one profile may name.
pub(super) const MAX_SELECTED: usize = 1_000;
/// The longest retention: ten years.
pub(super) const MAX_RETENTION_DAYS: u32 = 3_650;

/// Why a profile was refused: the field (a JSON path) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidProfile {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidProfile {
    InvalidProfile {
        field: field.into(),
        message: message.into(),
    }
}

/// A profile name (see [`is_profile_name`]).
pub fn check_name(name: &str) -> Result<(), InvalidProfile> {
    if is_profile_name(name) {
        Ok(())
    } else {
        Err(invalid(
            "name",
            "a profile name is 1-100 characters of a-z, 0-9, '-', '_' and '.', starting with a letter or digit",
        ))
    }
}

impl ProfileDefinition {
    /// Reads and checks a definition of a `format` profile (the request body's
    /// `selectors`, `options`, `distribution`, `retention_days`).
    pub fn parse(format: Format, value: &Value) -> Result<Self, InvalidProfile> {
        let definition: ProfileDefinition = serde_path_to_error::deserialize(value)
            .map_err(|err| invalid(err.path().to_string(), err.inner().to_string()))?;
        if !format.exports_scans() {
            definition.refuse_scan_selection(format)?;
        }
        let s = &definition.selectors;
        if format.exports_scans() && s.scans.is_empty() && s.targets.is_empty() {
            return Err(invalid(
                "selectors",
                "a profile selects at least one scan or target",
            ));
        }
        for (field, list) in [("scans", &s.scans), ("targets", &s.targets)] {
            if list.len() > MAX_SELECTED {
                return Err(invalid(
                    format!("selectors.{field}"),
                    format!("at most {MAX_SELECTED} {field}"),
                ));
            }
        }
        for (i, scan) in s.scans.iter().enumerate() {
            if stella_store::JobId::parse(scan).is_err() {
                return Err(invalid(
                    format!("selectors.scans[{i}]"),
                    format!("{scan:?} is not a scan id"),
                ));
            }
        }
        for (i, disposition) in s.dispositions.iter().enumerate() {
            if !matches!(disposition.as_str(), "pass" | "warn" | "block") {
                return Err(invalid(
                    format!("selectors.dispositions[{i}]"),
                    format!("{disposition:?} is not a disposition (pass, warn, block)"),
                ));
            }
        }
        if let Some(min) = &s.min_severity {
            if !SEVERITIES.contains(&min.as_str()) {
                return Err(invalid(
                    "selectors.min_severity",
                    format!("{min:?} is not a severity (low, medium, high, critical)"),
                ));
            }
        }
        if s.vulnerabilities.len() > MAX_SELECTED {
            return Err(invalid(
                "selectors.vulnerabilities",
                format!("at most {MAX_SELECTED} vulnerabilities"),
            ));
        }
        if let (Some(since), Some(until)) = (s.since, s.until) {
            if since >= until {
                return Err(invalid("selectors.until", "until must be later than since"));
            }
        }
        if let Some(template) = &definition.options.template {
            if !matches!(template.as_str(), "executive" | "detailed") {
                return Err(invalid(
                    "options.template",
                    format!("{template:?} is not a template (executive, detailed)"),
                ));
            }
        }
        let prefix = match &definition.distribution {
            Distribution::Download => None,
            Distribution::Objects { prefix } => Some(prefix),
            Distribution::Destination { prefix, .. } => prefix.as_ref(),
        };
        if prefix.is_some_and(|prefix| !is_prefix(prefix)) {
            return Err(invalid(
                "distribution.prefix",
                "a prefix is 1-200 characters of '/'-separated segments of letters, digits, '-', '_' and '.', none empty, '.' or '..'",
            ));
        }
        if definition.triggers.len() > 10 {
            return Err(invalid("triggers", "at most 10 triggers"));
        }
        for (i, trigger) in definition.triggers.iter().enumerate() {
            if !TRIGGER_EVENTS.contains(&trigger.on.as_str()) {
                return Err(invalid(
                    format!("triggers[{i}].on"),
                    format!(
                        "{:?} is not an event a profile can follow ({})",
                        trigger.on,
                        TRIGGER_EVENTS.join(", ")
                    ),
                ));
            }
            if trigger.targets.len() > MAX_SELECTED {
                return Err(invalid(
                    format!("triggers[{i}].targets"),
                    format!("at most {MAX_SELECTED} targets"),
                ));
            }
        }
        if definition.retention_days == 0 || definition.retention_days > MAX_RETENTION_DAYS {
            return Err(invalid(
                "retention_days",
                format!("retention_days must be 1 to {MAX_RETENTION_DAYS}"),
            ));
        }
        Ok(definition)
    }
}

impl ProfileDefinition {
    /// A format that does not export scans (the mirrors: every advisory and VEX document
    /// the tenant reads) takes no selector and no option: each one given is refused,
    /// naming its field, rather than ignored.
    fn refuse_scan_selection(&self, format: Format) -> Result<(), InvalidProfile> {
        let s = &self.selectors;
        let o = &self.options;
        let given = [
            ("selectors.scans", !s.scans.is_empty()),
            ("selectors.targets", !s.targets.is_empty()),
            ("selectors.since", s.since.is_some()),
            ("selectors.until", s.until.is_some()),
            ("selectors.dispositions", !s.dispositions.is_empty()),
            ("selectors.min_severity", s.min_severity.is_some()),
            ("selectors.vulnerabilities", !s.vulnerabilities.is_empty()),
            ("options.include_sboms", o.include_sboms),
            ("options.include_evidence", o.include_evidence),
            ("options.template", o.template.is_some()),
        ];
        match given.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(invalid(
                *field,
                format!(
                    "{} exports every advisory and VEX document the tenant reads: it takes no scan selectors or options",
                    format.name()
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The message for a destination a profile may not name: the same whether it does not
/// exist or is another tenant's, so a tenant learns nothing of others' destinations.
pub(super) fn unknown_destination(name: &str) -> String {
    format!(
        "{name:?} is not an export destination of this tenant (destinations are declared by the operator under [export.destinations] and opened to tenants there)"
    )
}

/// Checks and stores a profile as its next revision (or returns the latest revision, with
/// `false`, when nothing changed). A profile that names a destination must name one of
/// `destinations` open to `tenant`.
#[allow(clippy::too_many_arguments)]
pub async fn put_profile(
    store: &Store,
    destinations: &Destinations,
    tenant: &TenantId,
    name: &str,
    format: &str,
    definition: &Value,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<(ExportProfileRecord, bool), PutProfileError> {
    check_name(name)?;
    let format = Format::parse(format).map_err(|message| invalid("kind", message))?;
    let definition = ProfileDefinition::parse(format, definition)?;
    if let Distribution::Destination { name, .. } = &definition.distribution {
        if destinations.for_tenant(name, tenant).is_none() {
            return Err(invalid("distribution.name", unknown_destination(name)).into());
        }
    }
    // A scan the tenant does not have is a missing id, whoever else has it.
    let scans = store.tenant(tenant).scans();
    for (i, scan) in definition.selectors.scans.iter().enumerate() {
        let id = stella_store::JobId::parse(scan)
            .map_err(|err| invalid("selectors.scans", err.to_string()))?;
        if scans.get_without_analysis(&id).await?.is_none() {
            return Err(PutProfileError::NotFound {
                field: format!("selectors.scans[{i}]"),
                message: format!("scan {scan} not found"),
            });
        }
    }
    let canonical = canonical_bytes(
        &serde_json::to_value(&definition).map_err(|err| invalid("", err.to_string()))?,
    );
    let text = String::from_utf8(canonical).map_err(|err| invalid("", err.to_string()))?;
    let digest = sha256_hex(format!("{}\n{text}", format.name()).as_bytes());
    let new = NewExportProfile {
        name,
        kind: format.name(),
        definition: &text,
        digest: &digest,
        created_by,
    };
    Ok(store
        .tenant(tenant)
        .export_profiles()
        .put(&new, now)
        .await?)
}

/// Why a profile was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PutProfileError {
    #[error(transparent)]
    Invalid(#[from] InvalidProfile),
    /// A selector names something the tenant does not have.
    #[error("{message}")]
    NotFound { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
