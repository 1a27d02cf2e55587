//! `cyclonedx`: a scan as a CycloneDX 1.6 JSON BOM: the scanned SBOM's components with the
//! scan's findings as `vulnerabilities`, each with its VEX `analysis`. One document per
//! scan (`scan-<id>.cdx.json`), valid under the official CycloneDX 1.6 JSON schema.
//!
//! - **Components** come from the SBOM's inventory ([`Sbom`]), whichever format it was
//!   submitted in: the subject (`metadata.component`, or the target when the SBOM has
//!   none) and every component, in document order, with its first `bom-ref` (a missing or
//!   repeated one is replaced by `stella:component/<n>`: refs must be unique), group,
//!   version and purl (an invalid purl is left out rather than passed on).
//! - **Vulnerabilities**: one entry per finding, as the findings come (never all held):
//!   CycloneDX puts the `analysis` on the vulnerability, so a vulnerability in two
//!   components with different VEX states must be two entries. Each has the id and OSV as
//!   its `source`, the aliases as `references`, `ratings` from the advisory's CVSS vectors
//!   (method `CVSSv4`, `CVSSv31`, `CVSSv3`, `CVSSv2`; the score computed from the vector)
//!   or, without a vector, the database's severity word, the fix as `recommendation`, and
//!   `affects` naming the component's `bom-ref` and the installed version.
//! - **Analysis**: `state` from what VEX said (not_affected, exploitable for affected,
//!   resolved for fixed, in_triage when statements conflict; none when VEX said nothing),
//!   `justification` from the statement's (OpenVEX and CSAF names mapped to CycloneDX's),
//!   `response` `update` when a fix is known and the finding is not resolved, and `detail`
//!   with the policy's decision and the statements' own detail.
//! - **Metadata**: the export's `as_of` as the timestamp, Stella as the tool, the scan
//!   (id, SBOM and attestation digests, disposition) as properties, and a serial number
//!   derived from them ([`serial_number`]), so equal inputs give equal bytes.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::{
    decision_text, severity_rating, timestamp, vulnerability_url, write_json, Cited, ExportError,
    ExportFinding, VexSaid,
};
use crate::osv::Advisory;
use crate::sbom::{Component, Sbom};
use crate::vex::VexStatus;

/// The CycloneDX version written.
pub const SPEC_VERSION: &str = "1.6";
/// The `$schema` of the document: the official schema's id.
pub const SCHEMA: &str = "http://cyclonedx.org/schema/bom-1.6.schema.json";

/// What the document says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdxDocument<'a> {
    /// Stella's version.
    pub tool_version: &'a str,
    /// `urn:uuid:...`: see [`serial_number`].
    pub serial_number: &'a str,
    /// The export's `as_of`.
    pub timestamp: DateTime<Utc>,
    /// The scanned target, named as the scan names it: the subject's name when the SBOM
    /// has no `metadata.component`.
    pub target: &'a str,
    /// `metadata.properties`, in order (`stella:scan_id`, ...).
    pub properties: &'a [(&'a str, &'a str)],
}

/// A serial number (`urn:uuid:`) derived from `parts`: the SHA-256 of the parts joined by
/// NUL, as an RFC 9562 version 8 (custom) UUID. The same parts give the same number, and
/// a document's parts (its scan and `as_of`) differ from any other's.
pub fn serial_number(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0]);
        }
        hasher.update(part.as_bytes());
    }
    let mut bytes: [u8; 16] = [0; 16];
    bytes.copy_from_slice(&hasher.finalize()[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[derive(Serialize)]
struct CdxComponent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<&'a str>,
}

#[derive(Serialize)]
struct Property<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct Source {
    name: &'static str,
    url: String,
}

fn osv(id: &str) -> Source {
    Source {
        name: "OSV",
        url: vulnerability_url(id),
    }
}

#[derive(Serialize)]
struct Reference<'a> {
    id: &'a str,
    source: Source,
}

#[derive(Serialize)]
struct Rating<'a> {
    source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    severity: &'static str,
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<&'a str>,
}

#[derive(Serialize)]
struct Analysis {
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    justification: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    response: Vec<&'static str>,
    detail: String,
}

#[derive(Serialize)]
struct AffectedVersion<'a> {
    version: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
struct Affects<'a> {
    #[serde(rename = "ref")]
    bom_ref: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    versions: Vec<AffectedVersion<'a>>,
}

#[derive(Serialize)]
struct Vulnerability<'a> {
    id: &'a str,
    source: Source,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    references: Vec<Reference<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ratings: Vec<Rating<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recommendation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    published: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<String>,
    analysis: Analysis,
    affects: [Affects<'a>; 1],
    properties: Vec<Property<'a>>,
}

/// The CycloneDX rating method of a CVSS vector, by its prefix (v2 vectors have none:
/// the OSV type says so).
fn method(kind: &str, vector: &str) -> &'static str {
    if vector.starts_with("CVSS:4.0/") {
        "CVSSv4"
    } else if vector.starts_with("CVSS:3.1/") {
        "CVSSv31"
    } else if vector.starts_with("CVSS:3.0/") {
        "CVSSv3"
    } else if kind == "CVSS_V2" {
        "CVSSv2"
    } else {
        "other"
    }
}

/// The finding's ratings: one per distinct CVSS vector of the advisory (its own and its
/// packages'), else one from the score or severity word the finding was decided on.
fn ratings<'a>(finding: &ExportFinding<'a>, advisory: Option<&'a Advisory>) -> Vec<Rating<'a>> {
    let mut out: Vec<Rating<'a>> = Vec::new();
    if let Some(advisory) = advisory {
        let severities = advisory
            .severity
            .iter()
            .chain(advisory.affected.iter().flat_map(|a| a.severity.iter()));
        for severity in severities {
            let vector = severity.score.as_str();
            if !severity.kind.starts_with("CVSS") || out.iter().any(|r| r.vector == Some(vector)) {
                continue;
            }
            let score = crate::policy::cvss_score([vector]);
            out.push(Rating {
                source: osv(&advisory.id),
                score,
                severity: score.map_or("unknown", severity_rating),
                method: method(&severity.kind, vector),
                vector: Some(vector),
            });
        }
    }
    if out.is_empty() && finding.severity() != "unknown" {
        out.push(Rating {
            source: osv(finding.vulnerability_id),
            score: finding.cvss_score,
            severity: finding.severity(),
            method: "other",
            vector: None,
        });
    }
    out
}

/// A record's time, unless it is a placeholder: the Go database's source records say
/// `0001-01-01T00:00:00Z` (its feed fills the real times in), which is no time at all.
fn real_time(at: DateTime<Utc>) -> Option<String> {
    (at.timestamp() > 0).then(|| timestamp(at))
}

/// A VEX justification as CycloneDX names it: its own names pass, OpenVEX's and CSAF's
/// are mapped to the nearest.
pub fn justification(name: &str) -> Option<&'static str> {
    Some(match name {
        "code_not_present" | "component_not_present" | "vulnerable_code_not_present" => {
            "code_not_present"
        }
        "code_not_reachable" | "vulnerable_code_not_in_execute_path" => "code_not_reachable",
        "requires_configuration" => "requires_configuration",
        "requires_dependency" => "requires_dependency",
        "requires_environment" => "requires_environment",
        "protected_by_compiler" => "protected_by_compiler",
        "protected_at_runtime" => "protected_at_runtime",
        "protected_at_perimeter" => "protected_at_perimeter",
        "protected_by_mitigating_control"
        | "inline_mitigations_already_exist"
        | "vulnerable_code_cannot_be_controlled_by_adversary" => "protected_by_mitigating_control",
        _ => return None,
    })
}

fn analysis(finding: &ExportFinding<'_>, cited: &Cited<'_>) -> Analysis {
    let state = match finding.vex.as_slice() {
        [] => None,
        [VexSaid::NotAffected] => Some("not_affected"),
        [VexSaid::Affected] => Some("exploitable"),
        [VexSaid::Fixed] => Some("resolved"),
        _ => Some("in_triage"),
    };
    let justification = if state == Some("not_affected") {
        cited
            .vex
            .iter()
            .filter(|s| s.status == VexStatus::NotAffected)
            .find_map(|s| s.justification.as_deref().and_then(justification))
    } else {
        None
    };
    let resolved = matches!(state, Some("not_affected" | "resolved"));
    let response = if !resolved && !finding.fixed_versions.is_empty() {
        vec!["update"]
    } else {
        Vec::new()
    };
    let mut detail = decision_text(finding);
    for statement in &cited.vex {
        if let Some(said) = statement.detail.as_deref().filter(|d| !d.is_empty()) {
            detail.push_str(" VEX statement: ");
            detail.push_str(said);
        }
    }
    Analysis {
        state,
        justification,
        response,
        detail,
    }
}

/// Writes one scan's BOM: [`start`](Self::start) writes the metadata and components, each
/// [`write`](Self::write) one vulnerability, [`finish`](Self::finish) the end.
#[derive(Debug)]
pub struct CycloneDxWriter<W: Write> {
    out: W,
    /// The canonical purl of each component with a valid one → its `bom-ref`.
    refs: HashMap<String, String>,
    any: bool,
    buffer: Vec<u8>,
}

/// Hands out `bom-ref`s, each once: a component's own first ref when it is free, else
/// `<prefix><n>`, never one the document uses anywhere.
struct Refs<'a> {
    documented: HashSet<&'a str>,
    taken: HashSet<String>,
    generated: usize,
}

impl Refs<'_> {
    fn of(&mut self, component: &Component) -> String {
        if let Some(first) = component.refs.first().filter(|r| !r.is_empty()) {
            if self.taken.insert(first.clone()) {
                return first.clone();
            }
        }
        self.generate("stella:component/")
    }

    fn generate(&mut self, prefix: &str) -> String {
        loop {
            self.generated += 1;
            let candidate = format!("{prefix}{}", self.generated);
            if !self.documented.contains(candidate.as_str()) && self.taken.insert(candidate.clone())
            {
                return candidate;
            }
        }
    }
}

fn component_json<'a>(kind: &'static str, bom_ref: &'a str, c: &'a Component) -> CdxComponent<'a> {
    CdxComponent {
        kind,
        bom_ref,
        group: c.group.as_deref().filter(|g| !g.is_empty()),
        name: &c.name,
        version: c.version.as_deref().filter(|v| !v.is_empty()),
        purl: c.purl.as_ref().map(|p| p.as_str()),
    }
}

impl<W: Write> CycloneDxWriter<W> {
    /// Writes the BOM up to its first vulnerability: metadata (with the subject) and the
    /// components of `sbom`.
    pub fn start(mut out: W, doc: &CdxDocument<'_>, sbom: &Sbom) -> io::Result<Self> {
        let mut refs = Refs {
            documented: sbom
                .subject
                .iter()
                .chain(&sbom.components)
                .flat_map(|c| c.refs.iter().map(String::as_str))
                .collect(),
            taken: HashSet::new(),
            generated: 0,
        };
        let mut by_purl = HashMap::new();
        out.write_all(b"{\"$schema\":")?;
        write_json(&mut out, SCHEMA)?;
        out.write_all(b",\"bomFormat\":\"CycloneDX\",\"specVersion\":")?;
        write_json(&mut out, SPEC_VERSION)?;
        out.write_all(b",\"serialNumber\":")?;
        write_json(&mut out, doc.serial_number)?;
        out.write_all(b",\"version\":1,\"metadata\":{\"timestamp\":")?;
        write_json(&mut out, &timestamp(doc.timestamp))?;
        out.write_all(b",\"tools\":{\"components\":[{\"type\":\"application\",\"name\":\"Stella\",\"version\":")?;
        write_json(&mut out, doc.tool_version)?;
        out.write_all(b"}]},\"component\":")?;
        match &sbom.subject {
            Some(subject) => {
                let bom_ref = refs.of(subject);
                write_json(&mut out, &component_json("application", &bom_ref, subject))?;
                if let Some(purl) = &subject.purl {
                    by_purl.insert(purl.as_str().to_owned(), bom_ref);
                }
            }
            None => {
                let bom_ref = refs.generate("stella:target/");
                write_json(
                    &mut out,
                    &CdxComponent {
                        kind: "application",
                        bom_ref: &bom_ref,
                        group: None,
                        name: doc.target,
                        version: None,
                        purl: None,
                    },
                )?;
            }
        }
        out.write_all(b",\"properties\":")?;
        let properties: Vec<Property<'_>> = doc
            .properties
            .iter()
            .map(|(name, value)| Property { name, value })
            .collect();
        write_json(&mut out, &properties)?;
        out.write_all(b"},\"components\":[")?;
        for (i, component) in sbom.components.iter().enumerate() {
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            let bom_ref = refs.of(component);
            write_json(&mut out, &component_json("library", &bom_ref, component))?;
            if let Some(purl) = &component.purl {
                by_purl.entry(purl.as_str().to_owned()).or_insert(bom_ref);
            }
        }
        out.write_all(b"\n],\"vulnerabilities\":[")?;
        Ok(Self {
            out,
            refs: by_purl,
            any: false,
            buffer: Vec::with_capacity(2048),
        })
    }

    /// Writes a finding as a vulnerability of its component. `cited` is what the finding
    /// cites; set the finding's fixed versions from the same advisory.
    pub fn write(
        &mut self,
        finding: &ExportFinding<'_>,
        cited: &Cited<'_>,
    ) -> Result<(), ExportError> {
        // A finding always names a component of the SBOM it came from; should the purl not
        // be there (an SBOM read differently since), it is the ref itself.
        let bom_ref = self
            .refs
            .get(finding.purl)
            .map_or(finding.purl, String::as_str);
        let unaffected = matches!(
            finding.vex.as_slice(),
            [VexSaid::NotAffected | VexSaid::Fixed]
        );
        let advisory = cited.advisory;
        let mut properties = vec![Property {
            name: "stella:disposition",
            value: finding.disposition.as_str(),
        }];
        if let Some(rule) = finding.rule_id {
            properties.push(Property {
                name: "stella:policy_rule",
                value: rule,
            });
        }
        let fixed: Vec<&str> = finding.fixed_versions.iter().map(|v| v.as_ref()).collect();
        let vulnerability = Vulnerability {
            id: finding.vulnerability_id,
            source: osv(finding.vulnerability_id),
            references: finding
                .aliases
                .iter()
                .map(|alias| Reference {
                    id: alias,
                    source: osv(alias),
                })
                .collect(),
            ratings: ratings(finding, advisory),
            description: finding.summary,
            recommendation: (!fixed.is_empty())
                .then(|| format!("Upgrade {} to {}.", finding.package, fixed.join(" or "))),
            published: advisory.and_then(|a| a.published).and_then(real_time),
            updated: advisory.and_then(|a| real_time(a.modified)),
            analysis: analysis(finding, cited),
            affects: [Affects {
                bom_ref,
                versions: finding
                    .installed_version
                    .as_deref()
                    .map(|version| AffectedVersion {
                        version,
                        status: if unaffected { "unaffected" } else { "affected" },
                    })
                    .into_iter()
                    .collect(),
            }],
            properties,
        };
        self.buffer.clear();
        self.buffer
            .extend_from_slice(if self.any { b",\n" } else { b"\n" });
        write_json(&mut self.buffer, &vulnerability)?;
        self.out.write_all(&self.buffer)?;
        self.any = true;
        Ok(())
    }

    /// Ends the document, flushes, and hands the sink back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;
    use serde_json::{json, Value};

    use super::super::tests::{finding_json, SCAN};
    use super::*;
    use crate::vex::{Product, VexStatement};

    fn sbom() -> Sbom {
        crate::sbom::parse(
            json!({
                "bomFormat": "CycloneDX", "specVersion": "1.5",
                "metadata": {"component": {"type": "container", "bom-ref": "app", "name": "app", "version": "2"}},
                "components": [
                    {"type": "library", "bom-ref": "lp", "name": "left-pad", "version": "1.0.0", "purl": "pkg:npm/left-pad@1.0.0"},
                    {"type": "library", "name": "no-ref", "version": "1", "purl": "pkg:npm/other@1"},
                    {"type": "library", "name": "bad-purl", "purl": "not a purl"}
                ]
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn write(findings: &[(Value, Cited<'_>)]) -> Value {
        let properties = [("stella:scan_id", "01A")];
        let doc = CdxDocument {
            tool_version: "0.1.0",
            serial_number: &serial_number(&["01A", "2026"]),
            timestamp: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            target: "app",
            properties: &properties,
        };
        let mut writer = CycloneDxWriter::start(Vec::new(), &doc, &sbom()).unwrap();
        for (stored, cited) in findings {
            let view = ExportFinding::from_finding_json(SCAN, stored)
                .unwrap()
                .with_fixed_versions(["1.0.1"]);
            writer.write(&view, cited).unwrap();
        }
        serde_json::from_slice(&writer.finish().unwrap()).unwrap()
    }

    #[test]
    fn components_keep_unique_refs_and_findings_affect_them() {
        let statement = VexStatement {
            vulnerability: "GHSA-1".into(),
            aliases: vec![],
            product: Product::Purl {
                purl: "pkg:npm/left-pad".into(),
            },
            versions: vec![],
            status: VexStatus::NotAffected,
            justification: Some("vulnerable_code_not_in_execute_path".into()),
            detail: Some("never called".into()),
            pointer: "/statements/0".into(),
            csaf: None,
        };
        let cited = Cited {
            advisory: None,
            vex: vec![&statement],
        };
        let bom = write(&[(
            finding_json("GHSA-1", "pkg:npm/left-pad@1.0.0", "pass"),
            cited,
        )]);
        assert_eq!(bom["specVersion"], "1.6");
        assert_eq!(bom["metadata"]["component"]["bom-ref"], "app");
        let refs: Vec<&str> = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .collect();
        assert_eq!(refs, ["lp", "stella:component/1", "stella:component/2"]);
        assert!(bom["components"][2].get("purl").is_none());
        let v = &bom["vulnerabilities"][0];
        assert_eq!(v["affects"][0]["ref"], "lp");
        assert_eq!(v["affects"][0]["versions"][0]["status"], "unaffected");
        assert_eq!(v["analysis"]["state"], "not_affected");
        assert_eq!(v["analysis"]["justification"], "code_not_reachable");
        assert!(v["analysis"].get("response").is_none());
        assert!(v["analysis"]["detail"]
            .as_str()
            .unwrap()
            .ends_with("VEX statement: never called"));
        assert_eq!(v["references"][0]["id"], "CVE-GHSA-1");
        // A stand-in score without the advisory: method `other`.
        assert_eq!(v["ratings"][0]["method"], "other");
        assert_eq!(v["ratings"][0]["score"], 9.8);
        assert_eq!(v["recommendation"], "Upgrade pkg:npm/left-pad to 1.0.1.");
    }

    #[test]
    fn ratings_come_from_the_advisory_vectors() {
        let advisory = crate::osv::parse_record(
            br#"{"id": "GHSA-2", "modified": "2024-01-01T00:00:00Z", "published": "2023-06-01T12:00:00Z",
                 "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
                              {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}],
                 "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"}}]}"#,
        )
        .unwrap();
        let mut stored = finding_json("GHSA-2", "pkg:npm/left-pad@1.0.0", "block");
        stored["assessment"]["claims"] = json!([]);
        let bom = write(&[(
            stored,
            Cited {
                advisory: Some(&advisory),
                vex: vec![],
            },
        )]);
        let v = &bom["vulnerabilities"][0];
        let methods: Vec<&str> = v["ratings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["CVSSv31", "CVSSv4"]);
        assert_eq!(v["ratings"][0]["score"], 9.8);
        assert_eq!(v["ratings"][0]["severity"], "critical");
        assert_eq!(v["published"], "2023-06-01T12:00:00Z");
        assert!(v["analysis"].get("state").is_none());
        assert_eq!(v["analysis"]["response"], json!(["update"]));
        assert_eq!(v["affects"][0]["versions"][0]["status"], "affected");
    }

    #[test]
    fn serial_numbers_are_uuids_derived_from_their_parts() {
        let a = serial_number(&["01A", "2026-01-01T00:00:00Z"]);
        assert_eq!(a, serial_number(&["01A", "2026-01-01T00:00:00Z"]));
        assert_ne!(a, serial_number(&["01A2026-01-01T00:00:00Z"]));
        let uuid = a.strip_prefix("urn:uuid:").unwrap();
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&uuid[14..15], "8");
    }
}
