//! VEX documents (OpenVEX JSON, CycloneDX VEX and CSAF 2.0) read into one statement
//! model, and the claims a statement makes about a finding.
//!
//! A statement says, for one vulnerability and one product, which status holds: not
//! affected (with a justification), affected, fixed, or under investigation. Products are
//! package URLs (the component itself, any version unless the purl names one) or
//! CycloneDX references: a `bom-ref` in the same document, or `urn:cdx:<serial>/<version>#<bom-ref>`
//! in another BOM. A reference that names an SBOM's subject (its `metadata.component`)
//! covers every finding of that SBOM: product-level VEX, as in the CISA use cases.
//! Version lists and `vers:` ranges narrow a statement to some versions; they are ordered
//! by the component's ecosystem (see [`VexStatement::covers_version_in`]).
//!
//! CSAF 2.0 documents are read by [`csaf`]: their product trees resolve to purls, and a
//! product without one is kept as [`Product::Unidentified`] (counted, never matched).

pub mod csaf;

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ecosystem::Ecosystem;
use crate::error::{pointer_token, InputError};
use crate::lattice::{Claim, Question};

/// What a statement says about the vulnerability in the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexStatus {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

/// The product a statement is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Product {
    /// A package URL; without a version it covers every version.
    Purl { purl: String },
    /// A CycloneDX `bom-ref`, in the VEX document itself (`serial` absent) or in the BOM
    /// with this serial number.
    BomRef {
        serial: Option<String>,
        bom_ref: String,
    },
    /// A product with no component identity (a CSAF product whose identification helper
    /// names no purl, only a CPE or nothing): kept and counted so the import says how
    /// many statements cannot apply to any SBOM component, but never matched.
    Unidentified {
        /// The product's id in its document (CSAF `product_id`).
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpe: Option<String>,
    },
}

/// One version constraint of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VersionSel {
    Exact {
        version: String,
    },
    /// A `vers:` range, e.g. `vers:generic/>=2.9|<=4.1`.
    Range {
        vers: String,
    },
}

/// One VEX statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VexStatement {
    pub vulnerability: String,
    pub aliases: Vec<String>,
    pub product: Product,
    /// Empty: every version of the product.
    pub versions: Vec<VersionSel>,
    pub status: VexStatus,
    pub justification: Option<String>,
    pub detail: Option<String>,
    /// JSON pointer of the statement in its document, for evidence references.
    pub pointer: String,
    /// For a CSAF statement: the document and product it comes from, named in the claims
    /// it makes (absent for the other formats, so their stored form is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csaf: Option<CsafOrigin>,
}

/// Where in a CSAF document a statement comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsafOrigin {
    /// `document.title`.
    pub title: String,
    /// `document.tracking.id`.
    pub tracking_id: String,
    /// `document.tracking.version`.
    pub tracking_version: String,
    /// The `product_id` the statement names.
    pub product_id: String,
}

impl CsafOrigin {
    /// How a claim names its source in an explain trace.
    pub fn describe(&self) -> String {
        format!(
            "CSAF {} version {} ({}), product {}",
            self.tracking_id, self.tracking_version, self.title, self.product_id
        )
    }
}

/// How many statements name a product with no component identity
/// ([`Product::Unidentified`]): they are kept but can match no component.
pub fn without_component_identity(statements: &[VexStatement]) -> usize {
    statements
        .iter()
        .filter(|s| matches!(s.product, Product::Unidentified { .. }))
        .count()
}

/// The claims this statement makes about a finding it covers.
pub fn claims(statement: &VexStatement, evidence: &str) -> Vec<Claim> {
    let claim = |question, value| Claim {
        question,
        value,
        evidence: evidence.to_owned(),
        about: statement.csaf.as_ref().map(CsafOrigin::describe),
    };
    match statement.status {
        VexStatus::Affected => vec![claim(Question::Applies, true)],
        VexStatus::Fixed => vec![claim(Question::Fixed, true)],
        VexStatus::UnderInvestigation => Vec::new(),
        VexStatus::NotAffected => match statement.justification.as_deref() {
            // Present but not exploitable here: a mitigation, not a false match.
            Some(
                "inline_mitigations_already_exist"
                | "protected_by_mitigating_control"
                | "protected_at_runtime"
                | "protected_at_perimeter"
                | "requires_environment"
                | "requires_configuration"
                | "requires_dependency"
                | "vulnerable_code_cannot_be_controlled_by_adversary",
            ) => vec![claim(Question::Mitigated, true)],
            Some("component_not_present") => vec![claim(Question::Present, false)],
            _ => vec![claim(Question::Applies, false)],
        },
    }
}

impl VexStatement {
    /// Whether the statement names `vulnerability` (by id or alias; ids compare
    /// case-insensitively).
    pub fn names(&self, vulnerability: &str, aliases: &[String]) -> bool {
        let mine = std::iter::once(&self.vulnerability).chain(&self.aliases);
        mine.into_iter().any(|id| {
            id.eq_ignore_ascii_case(vulnerability)
                || aliases.iter().any(|a| a.eq_ignore_ascii_case(id))
        })
    }

    /// Whether the statement's versions cover `version`, comparing with `compare`
    /// (`None` when two versions cannot be compared: then only exact equality counts).
    pub fn covers_version(
        &self,
        version: Option<&str>,
        compare: impl Fn(&str, &str) -> Option<Ordering>,
    ) -> bool {
        self.covers_version_in(version, None, &compare)
    }

    /// Whether the statement's versions cover `version` of a component of `ecosystem`:
    /// a version list or `vers:` range is ordered by the ecosystem's own rules (semver
    /// pre-releases before their release, PEP 440, dpkg epochs, ...) whatever scheme the
    /// range names, since the statement is about that component. A list entry or range
    /// with a version the ecosystem cannot parse (a vendor's `vers:generic/>=2.9` on an
    /// npm package) is ordered by `fallback` instead, the whole range at once, so each
    /// evaluation sees one total order.
    pub fn covers_version_in(
        &self,
        version: Option<&str>,
        ecosystem: Option<Ecosystem>,
        fallback: &dyn Fn(&str, &str) -> Option<Ordering>,
    ) -> bool {
        if self.versions.is_empty() {
            return true;
        }
        let Some(version) = version else {
            return false;
        };
        let native = |a: &str, b: &str| -> Option<Ordering> {
            crate::version::compare(ecosystem?, a, b).ok()
        };
        let parses = |v: &str| native(v, v).is_some();
        self.versions.iter().any(|sel| match sel {
            VersionSel::Exact { version: v } => {
                let order = native(version, v).or_else(|| fallback(version, v));
                v == version || order == Some(Ordering::Equal)
            }
            VersionSel::Range { vers } => {
                let native_order = parses(version)
                    && vers_versions(vers).is_some_and(|vs| vs.into_iter().all(parses));
                if native_order {
                    vers_contains(vers, version, &native)
                } else {
                    vers_contains(vers, version, &fallback)
                }
                .unwrap_or(false)
            }
        })
    }
}

/// The versions a `vers:` range names (`None` if it is malformed; empty for `*`).
pub fn vers_versions(vers: &str) -> Option<Vec<&str>> {
    Some(
        vers_constraints(vers)?
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
    )
}

/// A `vers:` range's constraints as (operator, version); empty for `*`.
fn vers_constraints(vers: &str) -> Option<Vec<(&'static str, &str)>> {
    let rest = vers.strip_prefix("vers:")?;
    let (_scheme, constraints) = rest.split_once('/')?;
    if constraints.trim() == "*" {
        return Some(Vec::new());
    }
    let mut parsed = Vec::new();
    for raw in constraints.split('|') {
        let raw = raw.trim();
        let (op, v) = ["<=", ">=", "!=", "<", ">", "="]
            .into_iter()
            .find_map(|op| raw.strip_prefix(op).map(|v| (op, v)))
            .unwrap_or(("=", raw));
        if v.is_empty() {
            return None;
        }
        parsed.push((op, v));
    }
    Some(parsed)
}

/// Whether `version` satisfies a `vers:` range (`vers:<scheme>/<constraint>|...`), per
/// the vers specification: constraints sorted by version; `=` and `!=` are exact; a
/// version is in when it matches an `=`, or lies in an interval formed by consecutive
/// `>`/`>=` and `<`/`<=` comparators. `None` if the range is malformed.
pub fn vers_contains(
    vers: &str,
    version: &str,
    compare: &impl Fn(&str, &str) -> Option<Ordering>,
) -> Option<bool> {
    let parsed = vers_constraints(vers)?;
    if parsed.is_empty() {
        return Some(true);
    }
    let cmp = |v: &str| compare(version, v);
    for (op, v) in &parsed {
        if *op == "!=" && cmp(v) == Some(Ordering::Equal) {
            return Some(false);
        }
        if *op == "=" && cmp(v) == Some(Ordering::Equal) {
            return Some(true);
        }
    }
    // Intervals: walk the range comparators in order; a lower bound opens, the next
    // upper bound closes.
    let mut ranges: Vec<&(&str, &str)> = parsed
        .iter()
        .filter(|(op, _)| matches!(*op, "<" | "<=" | ">" | ">="))
        .collect();
    // Incomparable versions fall back to text order, so the sort always sees a total
    // order whatever `compare` says.
    ranges.sort_by(|a, b| compare(a.1, b.1).unwrap_or_else(|| a.1.cmp(b.1)));
    let satisfies = |op: &str, v: &str| {
        matches!(
            (op, cmp(v)),
            (">", Some(Ordering::Greater))
                | (">=", Some(Ordering::Greater | Ordering::Equal))
                | ("<", Some(Ordering::Less))
                | ("<=", Some(Ordering::Less | Ordering::Equal))
        )
    };
    let mut i = 0;
    while i < ranges.len() {
        let (op, v) = ranges[i];
        if op.starts_with('>') {
            match ranges.get(i + 1) {
                Some((next_op, next_v)) if next_op.starts_with('<') => {
                    if satisfies(op, v) && satisfies(next_op, next_v) {
                        return Some(true);
                    }
                    i += 2;
                }
                _ => {
                    if satisfies(op, v) {
                        return Some(true);
                    }
                    i += 1;
                }
            }
        } else {
            // An upper bound with no lower bound before it: everything below.
            if i == 0 && satisfies(op, v) {
                return Some(true);
            }
            i += 1;
        }
    }
    Some(false)
}

/// Compares dotted versions segment by segment, numbers numerically: the `generic` vers
/// scheme, used when a product's ecosystem is unknown.
pub fn generic_compare(a: &str, b: &str) -> Option<Ordering> {
    // A total order: per segment, numbers (numerically) before words (as text), so no
    // input can make a sort see an inconsistent order.
    let split = |s: &str| -> Vec<String> {
        s.trim_start_matches(['v', 'V'])
            .split(['.', '-', '+', '_'])
            .map(str::to_owned)
            .collect()
    };
    let (a, b) = (split(a), split(b));
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).map_or("0", String::as_str);
        let y = b.get(i).map_or("0", String::as_str);
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return Some(ord);
        }
    }
    Some(Ordering::Equal)
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The justifications OpenVEX v0.2 defines for `not_affected`.
const OPENVEX_JUSTIFICATIONS: &[&str] = &[
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

/// The `analysis.justification` values CycloneDX 1.4-1.6 define.
const CYCLONEDX_JUSTIFICATIONS: &[&str] = &[
    "code_not_present",
    "code_not_reachable",
    "requires_configuration",
    "requires_dependency",
    "requires_environment",
    "protected_by_compiler",
    "protected_at_runtime",
    "protected_at_perimeter",
    "protected_by_mitigating_control",
];

/// The members of `value` named in `keys`, when present, must be RFC 3339 date-times
/// (both formats' timestamps are `date-time`): a time that does not parse cannot order
/// statements, so the document is refused, naming the member.
fn check_times(value: &Value, at: &str, keys: &[&str]) -> Result<(), InputError> {
    for key in keys {
        let Some(member) = value.get(*key) else {
            continue;
        };
        let ok = member
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
        if !ok {
            return Err(InputError::new(
                format!("{at}/{}", pointer_token(key)),
                format!("must be an RFC 3339 date-time such as 2024-01-31T12:00:00Z, not {member}"),
            ));
        }
    }
    Ok(())
}

/// A justification, if present, must be one the format defines.
fn check_justification(
    justification: Option<&str>,
    at: &str,
    known: &[&str],
) -> Result<(), InputError> {
    match justification {
        Some(value) if !known.contains(&value) => Err(InputError::new(
            at,
            format!(
                "unknown justification {value:?}; expected one of {}",
                known.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// The VEX formats Stella reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VexFormat {
    OpenVex,
    CycloneDx,
    Csaf,
}

impl VexFormat {
    /// The name the API answers with and stores (`openvex`, `cyclonedx`, `csaf`).
    pub fn as_str(self) -> &'static str {
        match self {
            VexFormat::OpenVex => "openvex",
            VexFormat::CycloneDx => "cyclonedx",
            VexFormat::Csaf => "csaf",
        }
    }

    /// The format a media type names explicitly (`application/csaf+json`,
    /// `application/vnd.openvex+json`, `application/vnd.cyclonedx+json`), parameters
    /// ignored; `None` for plain JSON or anything else (then the content decides).
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/csaf+json" => Some(VexFormat::Csaf),
            "application/vnd.openvex+json" | "application/openvex+json" => Some(VexFormat::OpenVex),
            "application/vnd.cyclonedx+json" => Some(VexFormat::CycloneDx),
            _ => None,
        }
    }

    /// The format of a parsed document by its markers: OpenVEX has `statements`,
    /// CycloneDX `bomFormat: CycloneDX`, CSAF `document.csaf_version`.
    pub fn sniff(doc: &Value) -> Option<Self> {
        if doc.get("statements").is_some() {
            Some(VexFormat::OpenVex)
        } else if doc.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
            Some(VexFormat::CycloneDx)
        } else if doc
            .get("document")
            .is_some_and(|d| d.get("csaf_version").is_some())
        {
            Some(VexFormat::Csaf)
        } else {
            None
        }
    }
}

/// Reads an OpenVEX, CycloneDX VEX or CSAF 2.0 document, whichever it is.
pub fn parse(bytes: &[u8]) -> Result<Vec<VexStatement>, InputError> {
    parse_format(bytes, None).map(|(_, statements)| statements)
}

/// Reads a VEX document as `format`, or as the format its content shows when `None`.
pub fn parse_format(
    bytes: &[u8],
    format: Option<VexFormat>,
) -> Result<(VexFormat, Vec<VexStatement>), InputError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|err| {
        InputError::new(
            "",
            format!(
                "not JSON (line {} column {}): {err}",
                err.line(),
                err.column()
            ),
        )
    })?;
    if !doc.is_object() {
        return Err(InputError::new("", "a VEX document is a JSON object"));
    }
    let format = format.or_else(|| VexFormat::sniff(&doc)).ok_or_else(|| {
        InputError::new(
            "",
            "neither OpenVEX (`statements`), CycloneDX VEX (`bomFormat: CycloneDX` with `vulnerabilities`) nor CSAF 2.0 (`document.csaf_version`)",
        )
    })?;
    let statements = match format {
        VexFormat::OpenVex => parse_openvex(&doc),
        VexFormat::CycloneDx => parse_cyclonedx(&doc),
        VexFormat::Csaf => csaf::parse_document(&doc),
    }?;
    Ok((format, statements))
}

fn openvex_status(value: &str) -> Option<VexStatus> {
    Some(match value {
        "not_affected" => VexStatus::NotAffected,
        "affected" => VexStatus::Affected,
        "fixed" => VexStatus::Fixed,
        "under_investigation" => VexStatus::UnderInvestigation,
        _ => return None,
    })
}

fn parse_openvex(doc: &Value) -> Result<Vec<VexStatement>, InputError> {
    let statements = doc
        .get("statements")
        .and_then(Value::as_array)
        .ok_or_else(|| InputError::new("/statements", "must be an array"))?;
    check_times(doc, "", &["timestamp", "last_updated"])?;
    let mut out = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let at = format!("/statements/{i}");
        check_times(
            statement,
            &at,
            &["timestamp", "last_updated", "action_statement_timestamp"],
        )?;
        // v0.2: {"name", "aliases"}; v0.0.x: a plain string.
        let vuln = statement.get("vulnerability");
        let (vulnerability, aliases) = match vuln {
            Some(Value::String(id)) => (id.clone(), Vec::new()),
            Some(Value::Object(_)) => {
                let name = vuln
                    .and_then(|v| text(v, "name").or_else(|| text(v, "@id")))
                    .ok_or_else(|| {
                        InputError::new(format!("{at}/vulnerability/name"), "missing")
                    })?;
                let aliases = vuln
                    .and_then(|v| v.get("aliases"))
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                (name, aliases)
            }
            _ => {
                return Err(InputError::new(
                    format!("{at}/vulnerability"),
                    "missing vulnerability",
                ))
            }
        };
        let status_text = text(statement, "status")
            .ok_or_else(|| InputError::new(format!("{at}/status"), "missing status"))?;
        let status = openvex_status(&status_text).ok_or_else(|| {
            InputError::new(
                format!("{at}/status"),
                format!("unknown status {status_text:?}; expected not_affected, affected, fixed or under_investigation"),
            )
        })?;
        let justification = text(statement, "justification");
        check_justification(
            justification.as_deref(),
            &format!("{at}/justification"),
            OPENVEX_JUSTIFICATIONS,
        )?;
        // OpenVEX: a `not_affected` statement MUST carry a justification or an impact
        // statement; without one it is a bare assertion that would silence a finding.
        if status == VexStatus::NotAffected
            && justification.is_none()
            && text(statement, "impact_statement").is_none()
        {
            return Err(InputError::new(
                format!("{at}/justification"),
                "a not_affected statement needs a `justification` or an `impact_statement`",
            ));
        }
        let products = statement
            .get("products")
            .and_then(Value::as_array)
            .ok_or_else(|| InputError::new(format!("{at}/products"), "must be an array"))?;
        for (j, product) in products.iter().enumerate() {
            let id = match product {
                Value::String(id) => Some(id.clone()),
                Value::Object(_) => text(product, "@id"),
                _ => None,
            }
            .ok_or_else(|| {
                InputError::new(format!("{at}/products/{j}"), "a product needs an @id")
            })?;
            let product = if id.starts_with("pkg:") {
                Product::Purl { purl: id }
            } else {
                Product::BomRef {
                    serial: None,
                    bom_ref: id,
                }
            };
            out.push(VexStatement {
                vulnerability: vulnerability.clone(),
                aliases: aliases.clone(),
                product,
                versions: Vec::new(),
                status,
                justification: justification.clone(),
                detail: text(statement, "impact_statement")
                    .or_else(|| text(statement, "status_notes")),
                pointer: format!("{at}/products/{j}"),
                csaf: None,
            });
        }
    }
    Ok(out)
}

fn cyclonedx_status(state: Option<&str>) -> Result<VexStatus, String> {
    Ok(match state {
        Some("not_affected" | "false_positive") => VexStatus::NotAffected,
        Some("exploitable") => VexStatus::Affected,
        Some("resolved" | "resolved_with_pedigree") => VexStatus::Fixed,
        Some("in_triage") | None => VexStatus::UnderInvestigation,
        Some(other) => return Err(format!("unknown analysis state {other:?}")),
    })
}

/// `urn:cdx:<serial>/<version>#<bom-ref>` → (Some(`urn:uuid:<serial>`), bom-ref).
fn cdx_ref(reference: &str) -> Product {
    if reference.starts_with("pkg:") {
        return Product::Purl {
            purl: reference.to_owned(),
        };
    }
    if let Some(rest) = reference.strip_prefix("urn:cdx:") {
        if let Some((bom, bom_ref)) = rest.split_once('#') {
            let serial = bom.split('/').next().unwrap_or(bom);
            return Product::BomRef {
                serial: Some(format!("urn:uuid:{serial}")),
                bom_ref: bom_ref.to_owned(),
            };
        }
    }
    Product::BomRef {
        serial: None,
        bom_ref: reference.to_owned(),
    }
}

fn parse_cyclonedx(doc: &Value) -> Result<Vec<VexStatement>, InputError> {
    let vulnerabilities = match doc.get("vulnerabilities") {
        None => return Ok(Vec::new()),
        Some(v) => v
            .as_array()
            .ok_or_else(|| InputError::new("/vulnerabilities", "must be an array"))?,
    };
    if let Some(metadata) = doc.get("metadata") {
        check_times(metadata, "/metadata", &["timestamp"])?;
    }
    let own_serial = text(doc, "serialNumber");
    // A `bom-ref` in this document that is a component with a purl stands for that purl.
    let mut purls = std::collections::BTreeMap::new();
    let mut stack: Vec<&Value> = doc
        .get("components")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    if let Some(subject) = doc.get("metadata").and_then(|m| m.get("component")) {
        stack.push(subject);
    }
    while let Some(component) = stack.pop() {
        if let (Some(r), Some(p)) = (text(component, "bom-ref"), text(component, "purl")) {
            purls.insert(r, p);
        }
        if let Some(children) = component.get("components").and_then(Value::as_array) {
            stack.extend(children);
        }
    }
    let mut out = Vec::new();
    for (i, vulnerability) in vulnerabilities.iter().enumerate() {
        let at = format!("/vulnerabilities/{i}");
        let id = text(vulnerability, "id")
            .ok_or_else(|| InputError::new(format!("{at}/id"), "missing vulnerability id"))?;
        let aliases: Vec<String> = vulnerability
            .get("references")
            .and_then(Value::as_array)
            .map(|refs| refs.iter().filter_map(|r| text(r, "id")).collect())
            .unwrap_or_default();
        let analysis = vulnerability.get("analysis");
        let state = analysis
            .and_then(|a| a.get("state"))
            .and_then(Value::as_str);
        let status = cyclonedx_status(state)
            .map_err(|message| InputError::new(format!("{at}/analysis/state"), message))?;
        check_times(
            vulnerability,
            &at,
            &["created", "published", "updated", "rejected"],
        )?;
        if let Some(analysis) = analysis {
            check_times(
                analysis,
                &format!("{at}/analysis"),
                &["firstIssued", "lastUpdated"],
            )?;
        }
        let justification = analysis.and_then(|a| text(a, "justification"));
        check_justification(
            justification.as_deref(),
            &format!("{at}/analysis/justification"),
            CYCLONEDX_JUSTIFICATIONS,
        )?;
        // As CISA's minimum VEX requirements and OpenVEX do: `not_affected` says why.
        // (`false_positive` needs none: the finding itself is wrong.)
        if state == Some("not_affected") && justification.is_none() {
            return Err(InputError::new(
                format!("{at}/analysis/justification"),
                "an analysis with state not_affected needs a `justification`",
            ));
        }
        let detail = analysis.and_then(|a| text(a, "detail"));
        let affects = vulnerability
            .get("affects")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                InputError::new(
                    format!("{at}/affects"),
                    "a VEX vulnerability needs `affects`",
                )
            })?;
        for (j, affect) in affects.iter().enumerate() {
            let reference = text(affect, "ref")
                .ok_or_else(|| InputError::new(format!("{at}/affects/{j}/ref"), "missing ref"))?;
            // An unqualified ref names a component of this document: its purl if it has
            // one, else the ref within this document's serial. A document without a
            // serial cannot be matched to any SBOM by ref (see `vex_covers`).
            let product = match cdx_ref(&reference) {
                Product::BomRef {
                    serial: None,
                    bom_ref,
                } => match purls.get(&bom_ref) {
                    Some(purl) => Product::Purl { purl: purl.clone() },
                    None => Product::BomRef {
                        serial: own_serial.clone(),
                        bom_ref,
                    },
                },
                other => other,
            };
            let versions = affect
                .get("versions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // Versions marked `unaffected` are a not-affected statement of their own.
            let mut by_status: Vec<(VexStatus, Vec<VersionSel>)> = Vec::new();
            for (k, entry) in versions.iter().enumerate() {
                let sel = match (text(entry, "version"), text(entry, "range")) {
                    (Some(version), _) => VersionSel::Exact { version },
                    (None, Some(vers)) => VersionSel::Range { vers },
                    (None, None) => {
                        return Err(InputError::new(
                            format!("{at}/affects/{j}/versions/{k}"),
                            "needs `version` or `range`",
                        ))
                    }
                };
                // The per-version status qualifies the analysis: versions marked
                // `unaffected` are not affected whatever the state; versions marked
                // `affected` take the state only when it says affected or in triage (a
                // "resolved" or "not affected" analysis says nothing about them).
                let entry_status = match (text(entry, "status").as_deref(), status) {
                    (Some("unaffected"), _) => VexStatus::NotAffected,
                    (Some("unknown"), _) => VexStatus::UnderInvestigation,
                    (Some("affected"), VexStatus::NotAffected | VexStatus::Fixed) => {
                        VexStatus::UnderInvestigation
                    }
                    (Some("affected"), _) => VexStatus::Affected,
                    (_, status) => status,
                };
                match by_status.iter_mut().find(|(s, _)| *s == entry_status) {
                    Some((_, list)) => list.push(sel),
                    None => by_status.push((entry_status, vec![sel])),
                }
            }
            if by_status.is_empty() {
                by_status.push((status, Vec::new()));
            }
            for (entry_status, versions) in by_status {
                out.push(VexStatement {
                    vulnerability: id.clone(),
                    aliases: aliases.clone(),
                    product: product.clone(),
                    versions,
                    status: entry_status,
                    justification: justification.clone(),
                    detail: detail.clone(),
                    pointer: format!("{at}/affects/{}", pointer_token(&j.to_string())),
                    csaf: None,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn openvex_statements_become_one_per_product() {
        let doc = br#"{
          "@context": "https://openvex.dev/ns/v0.2.0",
          "@id": "https://example.com/vex/1",
          "author": "Example",
          "timestamp": "2024-01-01T00:00:00Z",
          "version": 1,
          "statements": [
            {"vulnerability": {"name": "CVE-2023-1234", "aliases": ["GHSA-aaaa-bbbb-cccc"]},
             "products": [{"@id": "pkg:golang/example.com/lib@v1.2.3"}, {"@id": "pkg:npm/left-pad"}],
             "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"},
            {"vulnerability": "CVE-2023-9999", "products": ["pkg:pypi/requests@2.0.0"], "status": "fixed"}
          ]}"#;
        let statements = parse(doc).unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0].status, VexStatus::NotAffected);
        assert!(statements[0].names("GHSA-AAAA-bbbb-cccc", &[]));
        assert_eq!(
            statements[1].product,
            Product::Purl {
                purl: "pkg:npm/left-pad".into()
            }
        );
        assert_eq!(statements[2].status, VexStatus::Fixed);
        assert_eq!(statements[2].pointer, "/statements/1/products/0");
        let c = claims(&statements[0], "vex:x");
        assert_eq!(
            (c[0].question, c[0].value),
            (Question::Applies, false),
            "code not in execute path: the vulnerability does not apply"
        );
    }

    #[test]
    fn bad_documents_name_the_place() {
        let err = parse(
            br#"{"statements": [{"vulnerability": "CVE-1", "products": [], "status": "maybe"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.pointer, "/statements/0/status");
        let err = parse(br#"{"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "not_affected", "justification": "code_not_present"}}]}"#)
            .unwrap_err();
        assert_eq!(err.pointer, "/vulnerabilities/0/affects");
        assert_eq!(parse(b"[1]").unwrap_err().pointer, "");
        assert!(parse(b"{").unwrap_err().message.contains("line 1"));
    }

    #[test]
    fn not_affected_without_a_reason_and_bad_times_are_refused_where_they_are() {
        // OpenVEX: not_affected needs a justification or an impact statement.
        let openvex = |statement: &str| {
            format!(
                r#"{{"timestamp": "2024-01-01T00:00:00Z", "statements": [
                  {{"vulnerability": "CVE-1", "products": ["pkg:npm/a"], "status": "fixed"}},
                  {{"vulnerability": "CVE-2", "products": ["pkg:npm/a"], {statement}}}]}}"#
            )
        };
        let err = parse(openvex(r#""status": "not_affected""#).as_bytes()).unwrap_err();
        assert_eq!(err.pointer, "/statements/1/justification");
        assert!(err.message.contains("impact_statement"), "{}", err.message);
        assert!(parse(
            openvex(r#""status": "not_affected", "impact_statement": "never called""#).as_bytes()
        )
        .is_ok());
        let err =
            parse(openvex(r#""status": "not_affected", "justification": "trust_me""#).as_bytes())
                .unwrap_err();
        assert_eq!(err.pointer, "/statements/1/justification");
        let err = parse(openvex(r#""status": "fixed", "timestamp": "last tuesday""#).as_bytes())
            .unwrap_err();
        assert_eq!(err.pointer, "/statements/1/timestamp");
        let err = parse(br#"{"timestamp": "2024-13-01", "statements": []}"#).unwrap_err();
        assert_eq!(err.pointer, "/timestamp");

        // CycloneDX: analysis.state not_affected needs analysis.justification.
        let cdx = |analysis: &str, extra: &str| {
            format!(
                r#"{{"bomFormat": "CycloneDX", "metadata": {{"timestamp": "2024-01-01T00:00:00Z"}},
                  "vulnerabilities": [{{"id": "CVE-1", "analysis": {analysis}{extra},
                  "affects": [{{"ref": "pkg:npm/a"}}]}}]}}"#
            )
        };
        let err = parse(cdx(r#"{"state": "not_affected"}"#, "").as_bytes()).unwrap_err();
        assert_eq!(err.pointer, "/vulnerabilities/0/analysis/justification");
        let err = parse(
            cdx(
                r#"{"state": "not_affected", "justification": "because"}"#,
                "",
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(err.pointer, "/vulnerabilities/0/analysis/justification");
        assert!(parse(cdx(r#"{"state": "false_positive"}"#, "").as_bytes()).is_ok());
        let err = parse(cdx(r#"{"state": "resolved", "lastUpdated": "yesterday"}"#, "").as_bytes())
            .unwrap_err();
        assert_eq!(err.pointer, "/vulnerabilities/0/analysis/lastUpdated");
        let err = parse(cdx(r#"{"state": "resolved"}"#, r#", "published": 2024"#).as_bytes())
            .unwrap_err();
        assert_eq!(err.pointer, "/vulnerabilities/0/published");
        let err = parse(
            br#"{"bomFormat": "CycloneDX", "metadata": {"timestamp": "2024-01-01"}, "vulnerabilities": []}"#,
        )
        .unwrap_err();
        assert_eq!(err.pointer, "/metadata/timestamp");
    }

    #[test]
    fn vers_ranges_follow_the_spec() {
        let c = generic_compare;
        let r = "vers:generic/>=2.9|<=4.1";
        assert_eq!(vers_contains(r, "3.0", &c), Some(true));
        assert_eq!(vers_contains(r, "4.1", &c), Some(true));
        assert_eq!(vers_contains(r, "4.2", &c), Some(false));
        assert_eq!(vers_contains(r, "2.8", &c), Some(false));
        let two = "vers:generic/>=1.0|<=2.3|>=2.7|<=2.8";
        assert_eq!(vers_contains(two, "2.5", &c), Some(false));
        assert_eq!(vers_contains(two, "2.7.5", &c), Some(true));
        assert_eq!(vers_contains("vers:generic/<2.0", "1.5", &c), Some(true));
        assert_eq!(vers_contains("vers:generic/>5|!=6", "6", &c), Some(false));
        assert_eq!(
            vers_contains("vers:npm/1.2.3|2.0.0", "2.0.0", &c),
            Some(true)
        );
        assert_eq!(vers_contains("generic/>=1", "2", &c), None);
    }

    #[test]
    fn per_version_statuses_never_borrow_a_resolved_or_not_affected_state() {
        let doc = br#"{"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "CVE-1",
          "analysis": {"state": "resolved"},
          "affects": [{"ref": "pkg:npm/a", "versions": [
            {"range": "vers:npm/<2.0.0", "status": "affected"},
            {"version": "2.0.0", "status": "unaffected"}]}]}]}"#;
        let statements = parse(doc).unwrap();
        let status_of = |v: &str| {
            statements
                .iter()
                .filter(|s| s.covers_version(Some(v), generic_compare))
                .map(|s| s.status)
                .collect::<Vec<_>>()
        };
        assert_eq!(status_of("1.0.0"), vec![VexStatus::UnderInvestigation]);
        assert_eq!(status_of("2.0.0"), vec![VexStatus::NotAffected]);
    }

    #[test]
    fn refs_are_qualified_by_the_document_serial_or_by_nothing() {
        let with_serial = br#"{"bomFormat": "CycloneDX", "serialNumber": "urn:uuid:1111",
          "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "not_affected", "justification": "code_not_present"}, "affects": [{"ref": "root"}]}]}"#;
        let statements = parse(with_serial).unwrap();
        assert_eq!(
            statements[0].product,
            Product::BomRef {
                serial: Some("urn:uuid:1111".into()),
                bom_ref: "root".into()
            }
        );
        let without = br#"{"bomFormat": "CycloneDX",
          "metadata": {"component": {"bom-ref": "root", "name": "x", "purl": "pkg:npm/x@1.0.0"}},
          "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "not_affected", "justification": "code_not_present"}, "affects": [{"ref": "root"}]}]}"#;
        let statements = parse(without).unwrap();
        assert_eq!(
            statements[0].product,
            Product::Purl {
                purl: "pkg:npm/x@1.0.0".into()
            },
            "the document's own subject resolves to its purl"
        );
    }

    #[test]
    fn versions_are_ordered_by_the_component_ecosystem_with_generic_as_fallback() {
        let statement = |versions: Vec<VersionSel>| VexStatement {
            vulnerability: "CVE-1".into(),
            aliases: vec![],
            product: Product::Purl {
                purl: "pkg:npm/a".into(),
            },
            versions,
            status: VexStatus::NotAffected,
            justification: None,
            detail: None,
            pointer: "/".into(),
            csaf: None,
        };
        let range = |vers: &str| statement(vec![VersionSel::Range { vers: vers.into() }]);
        let covers = |s: &VexStatement, eco, v| s.covers_version_in(Some(v), eco, &generic_compare);
        // npm: a pre-release sorts before its release (the generic order says after).
        let npm = range("vers:npm/>=1.0.0-rc.1|<2.0.0");
        assert!(covers(&npm, Some(Ecosystem::Npm), "1.0.0"));
        assert!(!covers(&npm, None, "1.0.0"), "the generic order misses it");
        // PyPI: PEP 440 post-releases and epochs.
        let pypi = range("vers:pypi/>1.0|<2.0");
        assert!(covers(&pypi, Some(Ecosystem::PyPI), "1.0.post1"));
        assert!(!covers(&pypi, Some(Ecosystem::PyPI), "1!1.5"));
        // Debian: the epoch decides.
        let deb = range("vers:deb/<2.0");
        assert!(!covers(&deb, Some(Ecosystem::Debian), "1:1.0-1"));
        assert!(covers(&deb, Some(Ecosystem::Debian), "1.9~rc1-1"));
        assert!(
            !covers(&deb, None, "2.0~rc1"),
            "generic puts ~rc1 after 2.0"
        );
        assert!(covers(&deb, Some(Ecosystem::Debian), "2.0~rc1"));
        // Exact versions compare by the ecosystem too: PEP 440 says 1.0 == 1.0.0.
        let exact = statement(vec![VersionSel::Exact {
            version: "1.0".into(),
        }]);
        assert!(covers(&exact, Some(Ecosystem::PyPI), "1.0.0"));
        // A vendor's generic range that npm cannot parse falls back to the generic order
        // for the whole range.
        let vendor = range("vers:generic/>=2.9|<=4.1");
        assert!(covers(&vendor, Some(Ecosystem::Npm), "3.0.0"));
        assert!(!covers(&vendor, Some(Ecosystem::Npm), "4.2.0"));
    }

    #[test]
    fn generic_order_is_total_even_for_odd_versions() {
        let mut versions = vec!["10a", "9", "10", "1.0", "1", "v2", "2.a", "2.0"];
        versions.sort_by(|a, b| generic_compare(a, b).unwrap());
        assert_eq!(versions, ["1.0", "1", "v2", "2.0", "2.a", "9", "10", "10a"]);
        let c = generic_compare;
        assert_eq!(
            vers_contains("vers:generic/>=10a|<9|>=zz", "5", &c),
            Some(true)
        );
    }

    fn data(path: &str) -> Option<Vec<u8>> {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/vex/cyclonedx-cisa")
            .join(path);
        match std::fs::read(&full) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                println!("skipping: {} not found", full.display());
                None
            }
        }
    }

    #[test]
    fn every_cisa_use_case_reads_with_the_right_status() {
        let expected = [
            ("Case-1_vex-affected.json", vec![VexStatus::Affected]),
            ("Case-1_vex-fixed.json", vec![VexStatus::Fixed]),
            ("Case-1_vex-not_affected.json", vec![VexStatus::NotAffected]),
            (
                "Case-1_vex-under_investigation.json",
                vec![VexStatus::UnderInvestigation],
            ),
            ("Case-2_vex.json", vec![VexStatus::NotAffected; 19]),
        ];
        for (file, statuses) in expected {
            let Some(bytes) = data(file) else { return };
            let statements = parse(&bytes).unwrap();
            let got: Vec<VexStatus> = statements.iter().map(|s| s.status).collect();
            assert_eq!(got, statuses, "{file}");
        }
        // Case 3: nineteen vulnerabilities of one product in every analysis state.
        let Some(bytes) = data("Case-3_vex.json") else {
            return;
        };
        let statements = parse(&bytes).unwrap();
        assert_eq!(statements.len(), 19);
        assert_eq!(statements[0].status, VexStatus::UnderInvestigation);
        assert_eq!(statements[1].status, VexStatus::NotAffected);
        for status in [VexStatus::Affected, VexStatus::Fixed] {
            assert!(statements.iter().any(|s| s.status == status), "{status:?}");
        }
        // Case 6: one product, versions split between affected and not affected.
        let Some(bytes) = data("Case-6_vex.json") else {
            return;
        };
        let statements = parse(&bytes).unwrap();
        let status_of = |v: &str| {
            statements
                .iter()
                .filter(|s| s.covers_version(Some(v), generic_compare))
                .map(|s| s.status)
                .collect::<Vec<_>>()
        };
        assert_eq!(status_of("2.4"), vec![VexStatus::Affected]);
        assert_eq!(status_of("3.5"), vec![VexStatus::Affected]);
        assert_eq!(status_of("2.5"), vec![VexStatus::NotAffected]);
        assert_eq!(status_of("1.1"), vec![VexStatus::NotAffected]);
        assert_eq!(status_of("4.2"), vec![VexStatus::NotAffected]);
        // Case 7: references into other BOMs by serial number.
        let Some(bytes) = data("Case-7_vex.json") else {
            return;
        };
        let statements = parse(&bytes).unwrap();
        assert!(statements.iter().any(|s| s.product
            == Product::BomRef {
                serial: Some("urn:uuid:e4c3eedc-4978-470c-ad02-6ffff63738ff".into()),
                bom_ref: "product-JKL".into()
            }));
    }
}
