//! One scan as a pure function: components × advisories (through a package index) ×
//! VEX × policy at an evaluation time → findings with their K4 assessment, decision and
//! trace, and a verdict whose inputs hash lets anyone check a replay.
//!
//! Matching: the index maps each [`PackageKey`] to the advisories naming it, so a scan
//! costs one lookup per component instead of a pass over every advisory
//! ([`naive_matches`] is that pass, kept as the benchmark baseline and as a test oracle).
//! Whether a version is affected is the caller's function (`is_affected`), so this module
//! does not depend on any one version ordering.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ecosystem::PackageKey;
use crate::lattice::{Assessment, Claim, Question};
use crate::osv::{Advisory, Affected};
use crate::policy::{self, Decision, Disposition, FindingInput, Policy};
use crate::vex::{self, Product, VexStatement};

/// A component as the scan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanComponent {
    /// The component's package URL as written in the SBOM (with version).
    pub purl: String,
    /// The purl without version (the policy's and the impact index's package key).
    pub package_purl: String,
    pub package: PackageKey,
    pub version: Option<String>,
    /// Every `bom-ref` / SPDX id the component appears under.
    pub bom_refs: Vec<String>,
    /// The distribution release (Debian, Ubuntu, Alpine) from the purl's `distro`
    /// qualifier, normalized (`12`, `22.04`, `3.18`); advisories for another release of
    /// the distribution do not match. `None`: unknown, every release's advisories match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

impl ScanComponent {
    /// The scan's view of an SBOM component; `None` for components that cannot be
    /// matched (no purl, invalid purl, unsupported ecosystem: counted in the SBOM summary).
    pub fn from_component(component: &crate::sbom::Component) -> Option<Self> {
        let purl = component.purl.as_ref()?;
        let package = component.package_key.clone()?;
        let release = purl
            .qualifiers()
            .get("distro")
            .and_then(|distro| package.ecosystem.release_of_distro(distro));
        Some(Self {
            purl: purl.as_str().to_owned(),
            package_purl: purl.without_version(),
            package,
            version: component.version_for_matching().map(str::to_owned),
            bom_refs: component.refs.clone(),
            release,
        })
    }

    /// Every matchable component of an SBOM.
    pub fn all_of(sbom: &crate::sbom::Sbom) -> Vec<Self> {
        sbom.scan_targets()
            .into_iter()
            .filter_map(Self::from_component)
            .collect()
    }

    /// [`ScanComponent::from_component`], moving the strings it keeps instead of copying
    /// them.
    pub fn from_owned(component: crate::sbom::Component) -> Option<Self> {
        let crate::sbom::Component {
            purl,
            package_key,
            refs,
            version,
            ..
        } = component;
        let purl = purl?;
        let package = package_key?;
        let release = purl
            .qualifiers()
            .get("distro")
            .and_then(|distro| package.ecosystem.release_of_distro(distro));
        let version = purl.version().map(str::to_owned).or(version);
        Some(Self {
            package_purl: purl.without_version(),
            purl: purl.into_string(),
            package,
            version,
            bom_refs: refs,
            release,
        })
    }

    /// [`ScanComponent::all_of`], consuming the SBOM: each component is freed as soon as
    /// its scan view is made, so a large SBOM's inventory and its scan view are never
    /// both whole in memory.
    pub fn all_from(sbom: crate::sbom::Sbom) -> Vec<Self> {
        let mut out = Vec::new();
        if let Some(subject) = sbom.subject {
            let repeated = sbom
                .components
                .iter()
                .any(|c| c.purl.is_some() && c.purl == subject.purl);
            if subject.status == crate::sbom::ComponentStatus::MatchedEcosystem && !repeated {
                out.extend(Self::from_owned(subject));
            }
        }
        out.extend(
            sbom.components
                .into_iter()
                .filter(|c| c.status == crate::sbom::ComponentStatus::MatchedEcosystem)
                .filter_map(Self::from_owned),
        );
        out.shrink_to_fit();
        out
    }
}

impl SbomContext {
    pub fn of(sbom: &crate::sbom::Sbom) -> Self {
        Self {
            serial: sbom.serial.clone(),
            subject_ref: sbom.subject.as_ref().and_then(|s| s.refs.first().cloned()),
            image: sbom.image.clone(),
        }
    }
}

/// The SBOM-level facts VEX product references can name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomContext {
    /// `urn:uuid:...` of a CycloneDX BOM.
    pub serial: Option<String>,
    /// The `bom-ref` of the BOM's subject (`metadata.component`).
    pub subject_ref: Option<String>,
    /// The container image the SBOM describes, where it names one by digest: the
    /// attestation's second subject, and the scan summary's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::sbom::ImageSubject>,
}

/// Which advisories name which packages.
#[derive(Debug, Clone, Default)]
pub struct AdvisoryIndex {
    advisories: Vec<Advisory>,
    by_package: HashMap<PackageKey, Vec<(usize, usize)>>,
}

impl AdvisoryIndex {
    /// Indexes advisories; withdrawn ones are left out (they stop matching).
    pub fn build(advisories: impl IntoIterator<Item = Advisory>) -> Self {
        let mut index = AdvisoryIndex::default();
        for advisory in advisories {
            if advisory.withdrawn.is_some() {
                continue;
            }
            let a = index.advisories.len();
            for (i, affected) in advisory.affected.iter().enumerate() {
                if let Some(key) = &affected.package {
                    index
                        .by_package
                        .entry(key.clone())
                        .or_default()
                        .push((a, i));
                }
            }
            index.advisories.push(advisory);
        }
        index
    }

    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The (advisory, affected entry) pairs naming `package`.
    pub fn candidates(&self, package: &PackageKey) -> impl Iterator<Item = (&Advisory, &Affected)> {
        self.by_package
            .get(package)
            .into_iter()
            .flatten()
            .map(|(a, i)| (&self.advisories[*a], &self.advisories[*a].affected[*i]))
    }
}

/// A version check: is `version` of this package affected by this entry?
pub type IsAffected<'f> = dyn Fn(&str, &Affected) -> bool + 'f;

/// Advisories affecting a component, through the index (ids, each once).
pub fn index_matches<'a>(
    index: &'a AdvisoryIndex,
    component: &ScanComponent,
    is_affected: &IsAffected<'_>,
) -> Vec<&'a Advisory> {
    let Some(version) = component.version.as_deref() else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    index
        .candidates(&component.package)
        .filter(|(_, affected)| same_release(component, affected))
        .filter(|(_, affected)| is_affected(version, affected))
        .filter(|(advisory, _)| seen.insert(advisory.id.as_str()))
        .map(|(advisory, _)| advisory)
        .collect()
}

/// Whether an affected entry is about the component's distribution release: entries of
/// another release (`Debian:11` for a bookworm package) are not; an entry without a
/// release, or a component whose release is unknown, matches (missing a finding is worse
/// than reporting one that VEX can rule out).
fn same_release(component: &ScanComponent, affected: &Affected) -> bool {
    match (
        &component.release,
        component
            .package
            .ecosystem
            .release_of_osv(&affected.ecosystem),
    ) {
        (Some(ours), Some(theirs)) => *ours == theirs,
        _ => true,
    }
}

/// The same answer as [`index_matches`] by looking at every advisory: the baseline.
pub fn naive_matches<'a>(
    advisories: &'a [Advisory],
    component: &ScanComponent,
    is_affected: &IsAffected<'_>,
) -> Vec<&'a Advisory> {
    let Some(version) = component.version.as_deref() else {
        return Vec::new();
    };
    advisories
        .iter()
        .filter(|a| a.withdrawn.is_none())
        .filter(|a| {
            a.affected.iter().any(|affected| {
                affected.package.as_ref() == Some(&component.package)
                    && same_release(component, affected)
                    && is_affected(version, affected)
            })
        })
        .collect()
}

/// One matched (vulnerability, component) pair, whatever VEX or policy decide about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The advisory's own id.
    pub vulnerability_id: String,
    pub aliases: Vec<String>,
    pub summary: Option<String>,
    /// The component's purl, with version.
    pub purl: String,
    pub bom_refs: Vec<String>,
    pub severity: Option<f64>,
    pub severity_label: Option<String>,
    pub assessment: Assessment,
    pub disposition: Disposition,
    pub trace: Vec<policy::TraceStep>,
}

/// Counts of a verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub components: usize,
    pub findings: usize,
    pub pass: usize,
    pub warn: usize,
    pub block: usize,
    pub conflicts: usize,
}

/// The evaluated scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub disposition: Disposition,
    pub counts: Counts,
    pub findings: Vec<Finding>,
    pub policy_digest: String,
    pub evaluated_at: DateTime<Utc>,
}

/// Everything a scan evaluation reads.
#[derive(Debug, Clone, Copy)]
pub struct ScanInputs<'a> {
    pub components: &'a [ScanComponent],
    pub sbom: &'a SbomContext,
    pub index: &'a AdvisoryIndex,
    /// Each statement with its evidence reference (`vex:<document sha256>#<pointer>`).
    pub vex: &'a [(VexStatement, String)],
    pub policy: &'a Policy,
    /// The tenant's policy pack, when it has one: a floor under `policy`.
    pub pack: Option<&'a policy::Pack>,
    pub at: DateTime<Utc>,
}

fn vex_covers(
    statement: &VexStatement,
    component: &ScanComponent,
    sbom: &SbomContext,
    compare: &dyn Fn(&str, &str) -> Option<std::cmp::Ordering>,
) -> bool {
    match &statement.product {
        Product::Purl { purl } => {
            // Compared as parsed purls: qualifiers and encoding do not matter, the
            // ecosystem's name rules do. A purl with a version names that version only.
            let Ok(parsed) = crate::purl::Purl::parse(purl) else {
                return false;
            };
            parsed.without_version() == component.package_purl
                && parsed
                    .version()
                    .is_none_or(|v| component.version.as_deref() == Some(v))
                && statement.covers_version_in(
                    component.version.as_deref(),
                    Some(component.package.ecosystem),
                    compare,
                )
        }
        Product::BomRef { serial, bom_ref } => {
            // A ref only means something inside a known BOM: the VEX document's serial
            // (or the one its ref names) must be the scanned SBOM's.
            let same_bom = serial.is_some() && serial == &sbom.serial;
            let names_component = component.bom_refs.iter().any(|r| r == bom_ref);
            let names_subject = sbom.subject_ref.as_deref() == Some(bom_ref.as_str());
            // Product-level VEX (the subject) covers every component; its version list,
            // if any, is about the product's versions, which the scan cannot see.
            same_bom && (names_component || (names_subject && statement.versions.is_empty()))
        }
        // No component identity (a CSAF product without a purl): nothing to match.
        Product::Unidentified { .. } => false,
    }
}

/// The evaluation of one matched (component, advisory) pair.
fn finding_of(
    inputs: &ScanInputs<'_>,
    component: &ScanComponent,
    advisory: &Advisory,
    compare: &dyn Fn(&str, &str) -> Option<std::cmp::Ordering>,
) -> Finding {
    let component_evidence = format!(
        "sbom:{}",
        component.bom_refs.first().unwrap_or(&component.purl)
    );
    let advisory_evidence = format!(
        "advisory:{}@{}",
        advisory.id,
        advisory.modified.to_rfc3339()
    );
    // The SBOM says the component is there; the advisory's range says the vulnerable
    // version is. Whether the vulnerability applies, is fixed or is mitigated here is
    // VEX's to say: left ⊥ until a statement does.
    let mut claims = vec![
        Claim {
            question: Question::Present,
            value: true,
            evidence: component_evidence,
            about: None,
        },
        Claim {
            question: Question::Present,
            value: true,
            evidence: advisory_evidence,
            about: None,
        },
    ];
    let aliases: Vec<String> = advisory.aliases.clone();
    for (statement, evidence) in inputs.vex {
        if statement.names(&advisory.id, &aliases)
            && vex_covers(statement, component, inputs.sbom, compare)
        {
            claims.extend(vex::claims(statement, evidence));
        }
    }
    // Claims in a fixed order, so sealed bytes do not depend on input order.
    claims.sort();
    claims.dedup();
    let assessment = Assessment::from_claims(claims);
    let vectors = advisory
        .severity
        .iter()
        .chain(advisory.affected.iter().flat_map(|a| a.severity.iter()))
        .map(|s| s.score.as_str());
    let severity = policy::cvss_score(vectors).or_else(|| {
        advisory.severity_label.as_deref().map(|label| match label {
            "CRITICAL" => 9.0,
            "HIGH" => 7.0,
            "MODERATE" | "MEDIUM" => 4.0,
            _ => 0.1,
        })
    });
    let input = FindingInput {
        vulnerability: &advisory.id,
        aliases: &aliases,
        ecosystem: Some(component.package.ecosystem),
        package: &component.package_purl,
        severity,
        assessment: &assessment,
    };
    let Decision { disposition, trace } =
        policy::decide(inputs.policy, inputs.pack, &input, inputs.at);
    Finding {
        vulnerability_id: advisory.id.clone(),
        aliases,
        summary: advisory.summary.clone(),
        purl: component.purl.clone(),
        bom_refs: component.bom_refs.clone(),
        severity,
        severity_label: advisory.severity_label.clone(),
        assessment,
        disposition,
        trace,
    }
}

/// A verdict without its findings: what [`evaluate_each`] returns once it has handed
/// every finding on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictSummary {
    pub disposition: Disposition,
    pub counts: Counts,
    pub policy_digest: String,
    pub evaluated_at: DateTime<Utc>,
}

/// Evaluates a scan. `is_affected` decides version ranges; VEX version lists and ranges
/// are ordered by each component's ecosystem, and by `compare` where that ecosystem
/// cannot parse a version they name.
pub fn evaluate(
    inputs: &ScanInputs<'_>,
    is_affected: &IsAffected<'_>,
    compare: &dyn Fn(&str, &str) -> Option<std::cmp::Ordering>,
) -> Verdict {
    let mut findings = Vec::new();
    let summary = evaluate_each(inputs, is_affected, compare, |finding| {
        findings.push(finding);
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {});
    Verdict {
        disposition: summary.disposition,
        counts: summary.counts,
        findings,
        policy_digest: summary.policy_digest,
        evaluated_at: summary.evaluated_at,
    }
}

/// Evaluates a scan like [`evaluate`], handing each finding to `sink` in the verdict's
/// order instead of collecting them, so a caller can keep each in a compact form (the
/// evaluator keeps its canonical text: a finding as a struct, with its trace's inputs as
/// JSON values, is several times larger) or stop early: the first error of `sink` ends
/// the evaluation and is returned.
///
/// The verdict's order is (purl, vulnerability id, bom-refs, summary). Components are
/// taken in purl order and each purl's findings sorted among themselves, which is the
/// same order, since the purl comes first: only one purl's findings are ever held.
pub fn evaluate_each<E>(
    inputs: &ScanInputs<'_>,
    is_affected: &IsAffected<'_>,
    compare: &dyn Fn(&str, &str) -> Option<std::cmp::Ordering>,
    mut sink: impl FnMut(Finding) -> Result<(), E>,
) -> Result<VerdictSummary, E> {
    let mut order: Vec<&ScanComponent> = inputs.components.iter().collect();
    // Stable: components with an equal purl keep their input order, as the sort of the
    // whole list did.
    order.sort_by(|a, b| a.purl.cmp(&b.purl));
    let mut counts = Counts {
        components: inputs.components.len(),
        ..Counts::default()
    };
    let mut worst: Option<Disposition> = None;
    let mut group: Vec<Finding> = Vec::new();
    let mut rest = order.as_slice();
    while let Some(first) = rest.first() {
        let same = rest.iter().take_while(|c| c.purl == first.purl).count();
        let (these, after) = rest.split_at(same);
        rest = after;
        for component in these {
            for advisory in index_matches(inputs.index, component, is_affected) {
                group.push(finding_of(inputs, component, advisory, compare));
            }
        }
        group.sort_by(|a, b| {
            (&a.vulnerability_id, &a.bom_refs, &a.summary).cmp(&(
                &b.vulnerability_id,
                &b.bom_refs,
                &b.summary,
            ))
        });
        for finding in group.drain(..) {
            counts.findings += 1;
            match finding.disposition {
                Disposition::Pass => counts.pass += 1,
                Disposition::Warn => counts.warn += 1,
                Disposition::Block => counts.block += 1,
            }
            if !finding.assessment.conflicts().is_empty() {
                counts.conflicts += 1;
            }
            worst = worst.max(Some(finding.disposition));
            sink(finding)?;
        }
    }
    Ok(VerdictSummary {
        disposition: policy::scan_disposition(worst),
        counts,
        policy_digest: inputs.policy.digest(),
        evaluated_at: inputs.at,
    })
}

/// Digests of everything a verdict was computed from, in a fixed order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDigests {
    pub sbom: String,
    /// Advisory observation digests (sorted).
    pub advisories: BTreeSet<String>,
    /// VEX document digests (sorted).
    pub vex: BTreeSet<String>,
    pub policy: String,
    pub evaluated_at: Option<DateTime<Utc>>,
    /// The tenant's exceptions in force that the evaluation read (`exception:<id>` with
    /// the digest of its terms), sorted; absent when there were none, so a scan without
    /// exceptions hashes as it always did.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub exceptions: BTreeSet<String>,
    /// The tenant's policy pack (`pack:<name>@<version>:sha256:<digest>`); absent without
    /// one, so a scan without a pack hashes as it always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
}

impl InputDigests {
    /// sha256 over the canonical JSON of the digests: equal inputs, equal hash.
    pub fn hash(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        crate::canonical::Digest::sha256(&crate::canonical::canonical_bytes(&value)).to_string()
    }
}

/// The in-toto predicate type of Stella's verdicts.
pub const VERDICT_PREDICATE: &str = "https://stella.dev/attestations/verdict/v1";

/// How many bytes of findings (their canonical JSON) an attestation lists in full: 1 MiB,
/// a few thousand findings with their traces. Every finding counts towards the
/// attestation's `findings_digest` and its counts whatever this budget leaves out, and the
/// scan's findings API serves them all.
pub const ATTESTED_FINDINGS_BYTES: usize = 1024 * 1024;

/// A finding as its canonical JSON text (RFC 8785) with what the store indexes it by: the
/// form the evaluator keeps of each finding, a fraction of the struct's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingText {
    pub vulnerability_id: String,
    pub purl: String,
    pub disposition: Disposition,
    pub canonical: String,
}

impl FindingText {
    pub fn of(finding: &Finding) -> Result<Self, crate::canonical::CanonicalError> {
        Ok(Self {
            vulnerability_id: finding.vulnerability_id.clone(),
            purl: finding.purl.clone(),
            disposition: finding.disposition,
            canonical: crate::canonical::to_canonical_string(finding)?,
        })
    }
}

/// The digest of a list of findings: sha256 over the canonical JSON of the array of them
/// all, in verdict order. The same as the digest of the canonical JSON of every item of
/// `GET /scans/{id}/findings`, page after page, as one array.
pub fn findings_digest<'a>(
    canonical: impl IntoIterator<Item = &'a str>,
) -> crate::canonical::Digest {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"[");
    for (i, text) in canonical.into_iter().enumerate() {
        if i > 0 {
            hasher.update(b",");
        }
        hasher.update(text.as_bytes());
    }
    hasher.update(b"]");
    crate::canonical::Digest::from_bytes(hasher.finalize().into())
}

/// What an attestation holds of a verdict: all of it but the findings, which it lists in
/// full only within a byte budget ([`ATTESTED_FINDINGS_BYTES`]), and pins all by digest.
/// An SBOM with 200,000 components can have tens of thousands of findings, each with its
/// explain trace: listing them all made a 113 MB attestation, which every verifier must
/// download and hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedVerdict {
    pub disposition: Disposition,
    /// Every finding's, listed or not.
    pub counts: Counts,
    pub policy_digest: String,
    pub evaluated_at: DateTime<Utc>,
    /// The findings listed in full, in verdict order: all of them when they fit the
    /// budget, else the blocking ones first, then the warning, then the passing ones, each
    /// while it still fits.
    pub findings: Vec<Finding>,
    /// How many findings are not listed (`counts.findings - findings.len()`).
    pub findings_omitted: usize,
    /// [`findings_digest`] of every finding: a verifier compares it with the findings the
    /// API serves.
    pub findings_digest: String,
}

impl SealedVerdict {
    /// Selects what a verdict's attestation lists, from every finding's text in verdict
    /// order, within `budget` bytes of findings.
    pub fn new(
        summary: VerdictSummary,
        findings: &[FindingText],
        budget: usize,
    ) -> Result<Self, crate::canonical::CanonicalError> {
        let mut priority: Vec<usize> = (0..findings.len()).collect();
        // Stable: within a disposition, verdict order.
        priority.sort_by_key(|&i| std::cmp::Reverse(findings[i].disposition));
        let mut used = 0;
        let mut listed = Vec::new();
        for i in priority {
            // The array's comma counts too.
            let size = findings[i].canonical.len() + 1;
            if used + size <= budget {
                used += size;
                listed.push(i);
            }
        }
        listed.sort_unstable();
        let listed = listed
            .into_iter()
            .map(|i| serde_json::from_str::<Finding>(&findings[i].canonical))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| crate::canonical::CanonicalError::Serialize(err.to_string()))?;
        Ok(Self {
            disposition: summary.disposition,
            counts: summary.counts,
            policy_digest: summary.policy_digest,
            evaluated_at: summary.evaluated_at,
            findings_omitted: findings.len() - listed.len(),
            findings: listed,
            findings_digest: findings_digest(findings.iter().map(|f| f.canonical.as_str()))
                .to_string(),
        })
    }

    /// The sealed form of a whole verdict, with the default budget.
    pub fn of(verdict: &Verdict) -> Result<Self, crate::canonical::CanonicalError> {
        let texts = verdict
            .findings
            .iter()
            .map(FindingText::of)
            .collect::<Result<Vec<_>, _>>()?;
        let summary = VerdictSummary {
            disposition: verdict.disposition,
            counts: verdict.counts.clone(),
            policy_digest: verdict.policy_digest.clone(),
            evaluated_at: verdict.evaluated_at,
        };
        Self::new(summary, &texts, ATTESTED_FINDINGS_BYTES)
    }
}

/// Seals a verdict: an in-toto Statement whose subject is the SBOM (by its digest), and
/// the container image it describes when it names one (by the image's manifest digest),
/// and whose predicate is the sealed verdict (counts, the findings within the budget with
/// their traces, the digest of all findings) and the input digests, signed into a DSSE
/// envelope. Equal inputs give a byte-identical payload.
pub fn seal(
    verdict: &SealedVerdict,
    inputs: &InputDigests,
    sbom_name: &str,
    sbom_digest: &crate::canonical::Digest,
    image: Option<&crate::sbom::ImageSubject>,
    key: &crate::dsse::SigningKey,
) -> Result<crate::dsse::Envelope, crate::intoto::InTotoError> {
    let predicate = serde_json::json!({
        "verdict": verdict,
        "inputs": inputs,
        "inputs_hash": inputs.hash(),
    });
    let mut statement =
        crate::intoto::Statement::builder(VERDICT_PREDICATE).subject(sbom_name, sbom_digest);
    if let Some(image) = image {
        if let Ok(digest) = crate::canonical::Digest::from_hex(image.digest_hex()) {
            statement = statement.subject(&image.name, &digest);
        }
    }
    let statement = statement.predicate(predicate).build()?;
    Ok(statement.sign(key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;
    use crate::ecosystem::Ecosystem;
    use crate::osv::parse_record;

    fn advisory(id: &str, name: &str, fixed: &str) -> Advisory {
        parse_record(
            format!(
                r#"{{"id": "{id}", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-{id}"],
                "severity": [{{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}],
                "affected": [{{"package": {{"ecosystem": "npm", "name": "{name}"}},
                  "ranges": [{{"type": "SEMVER", "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}}]}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn component(name: &str, version: &str) -> ScanComponent {
        ScanComponent {
            purl: format!("pkg:npm/{name}@{version}"),
            package_purl: format!("pkg:npm/{name}"),
            package: PackageKey::new(Ecosystem::Npm, name),
            version: Some(version.into()),
            bom_refs: vec![format!("{name}@{version}")],
            release: None,
        }
    }

    fn below_fixed(version: &str, affected: &Affected) -> bool {
        affected.is_affected(version).unwrap()
    }

    #[test]
    fn the_index_finds_what_the_linear_scan_finds() {
        let advisories = vec![
            advisory("A-1", "lodash", "4.17.21"),
            advisory("A-2", "lodash", "4.0.0"),
            advisory("A-3", "minimist", "1.2.6"),
        ];
        let index = AdvisoryIndex::build(advisories.clone());
        for c in [
            component("lodash", "4.17.20"),
            component("lodash", "3.0.0"),
            component("minimist", "1.2.6"),
            component("Lodash", "1.0.0"),
        ] {
            let fast: Vec<&str> = index_matches(&index, &c, &below_fixed)
                .iter()
                .map(|a| a.id.as_str())
                .collect();
            let slow: Vec<&str> = naive_matches(&advisories, &c, &below_fixed)
                .iter()
                .map(|a| a.id.as_str())
                .collect();
            assert_eq!(fast, slow, "{}", c.purl);
        }
        assert_eq!(
            index_matches(&index, &component("lodash", "3.0.0"), &below_fixed).len(),
            2
        );
    }

    #[test]
    fn distribution_advisories_match_their_own_release_only() {
        let record = |id: &str, ecosystem: &str| {
            parse_record(
                format!(
                    r#"{{"id": "{id}", "modified": "2024-01-01T00:00:00Z",
                    "affected": [{{"package": {{"ecosystem": "{ecosystem}", "name": "openssl"}},
                      "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}, {{"fixed": "3.0.13-1"}}]}}]}}]}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        let advisories = vec![
            record("DSA-11", "Debian:11"),
            record("DSA-12", "Debian:12"),
            record("DEB-ANY", "Debian"),
        ];
        let index = AdvisoryIndex::build(advisories.clone());
        let sbom = |purl: &str| {
            let doc = format!(
                r#"{{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
                    {{"type": "library", "name": "openssl", "version": "3.0.11-1", "purl": "{purl}"}}]}}"#
            );
            ScanComponent::all_of(&crate::sbom::parse(doc.as_bytes()).unwrap())
                .pop()
                .unwrap()
        };
        let ids = |component: &ScanComponent| {
            let fast: Vec<&str> = index_matches(&index, component, &below_fixed)
                .iter()
                .map(|a| a.id.as_str())
                .collect();
            let slow: Vec<&str> = naive_matches(&advisories, component, &below_fixed)
                .iter()
                .map(|a| a.id.as_str())
                .collect();
            assert_eq!(fast, slow);
            fast
        };
        let bookworm = sbom("pkg:deb/debian/openssl@3.0.11-1?distro=debian-12");
        assert_eq!(bookworm.release.as_deref(), Some("12"));
        assert_eq!(ids(&bookworm), ["DSA-12", "DEB-ANY"]);
        let codename = sbom("pkg:deb/debian/openssl@3.0.11-1?distro=bookworm");
        assert_eq!(ids(&codename), ["DSA-12", "DEB-ANY"]);
        let unknown = sbom("pkg:deb/debian/openssl@3.0.11-1");
        assert_eq!(unknown.release, None);
        assert_eq!(ids(&unknown), ["DSA-11", "DSA-12", "DEB-ANY"]);
    }

    #[test]
    fn vex_products_match_as_parsed_purls_and_refs_only_in_their_own_bom() {
        let index = AdvisoryIndex::build([advisory("A-1", "@angular/core", "2.0.0")]);
        let components = [ScanComponent {
            purl: "pkg:npm/%40angular/core@1.0.0".into(),
            package_purl: "pkg:npm/%40angular/core".into(),
            package: PackageKey::new(Ecosystem::Npm, "@angular/core"),
            version: Some("1.0.0".into()),
            bom_refs: vec!["root".into()],
            release: None,
        }];
        let policy = Policy::parse(policy::DEFAULT_POLICY).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let run = |sbom: &SbomContext, doc: &[u8]| {
            let vex: Vec<(VexStatement, String)> = vex::parse(doc)
                .unwrap()
                .into_iter()
                .map(|s| (s, "vex:t".to_owned()))
                .collect();
            evaluate(
                &ScanInputs {
                    components: &components,
                    sbom,
                    index: &index,
                    vex: &vex,
                    policy: &policy,
                    pack: None,
                    at,
                },
                &below_fixed,
                &vex::generic_compare,
            )
            .findings[0]
                .disposition
        };
        let plain = SbomContext::default();
        // An encoded `@` and qualifiers do not stop a purl from matching.
        let by_purl = br#"{"statements": [{"vulnerability": "A-1", "products": ["pkg:npm/%40angular/core@1.0.0?foo=bar"], "status": "not_affected", "justification": "vulnerable_code_not_present"}]}"#;
        assert_eq!(run(&plain, by_purl), Disposition::Pass);
        let other_version = br#"{"statements": [{"vulnerability": "A-1", "products": ["pkg:npm/%40angular/core@1.0.1"], "status": "not_affected", "justification": "vulnerable_code_not_present"}]}"#;
        assert_eq!(run(&plain, other_version), Disposition::Block);
        // A bare ref from a stand-alone document matches no SBOM; with the SBOM's serial
        // it matches that SBOM only.
        let bare = br#"{"statements": [{"vulnerability": "A-1", "products": ["root"], "status": "not_affected", "justification": "vulnerable_code_not_present"}]}"#;
        assert_eq!(run(&plain, bare), Disposition::Block);
        let cdx = br#"{"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "A-1", "analysis": {"state": "not_affected", "justification": "code_not_present"},
          "affects": [{"ref": "urn:cdx:1111/1#root"}]}]}"#;
        let mine = SbomContext {
            serial: Some("urn:uuid:1111".into()),
            subject_ref: None,
            image: None,
        };
        let theirs = SbomContext {
            serial: Some("urn:uuid:2222".into()),
            subject_ref: None,
            image: None,
        };
        assert_eq!(run(&mine, cdx), Disposition::Pass);
        assert_eq!(run(&theirs, cdx), Disposition::Block);
    }

    #[test]
    fn withdrawn_advisories_stop_matching() {
        let mut withdrawn = advisory("A-9", "lodash", "9.0.0");
        withdrawn.withdrawn = Some(Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap());
        let index = AdvisoryIndex::build([withdrawn]);
        assert!(index_matches(&index, &component("lodash", "1.0.0"), &below_fixed).is_empty());
    }

    #[test]
    fn vex_can_rule_a_finding_out_and_disagreeing_statements_stay_a_visible_conflict() {
        let index = AdvisoryIndex::build([
            advisory("A-1", "lodash", "4.17.21"),
            advisory("A-3", "minimist", "1.2.6"),
        ]);
        let components = [
            component("lodash", "4.17.20"),
            component("minimist", "1.0.0"),
        ];
        let policy = Policy::parse(policy::DEFAULT_POLICY).unwrap();
        let sbom = SbomContext::default();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let run = |vex: &[(VexStatement, String)]| {
            evaluate(
                &ScanInputs {
                    components: &components,
                    sbom: &sbom,
                    index: &index,
                    vex,
                    policy: &policy,
                    pack: None,
                    at,
                },
                &below_fixed,
                &vex::generic_compare,
            )
        };
        let plain = run(&[]);
        assert_eq!(plain.counts.findings, 2);
        assert_eq!(plain.disposition, Disposition::Block);
        assert!(plain.findings.iter().all(|f| f.severity == Some(9.8)));

        let statements = vex::parse(
            br#"{"statements": [{"vulnerability": "CVE-A-1", "products": ["pkg:npm/lodash"], "status": "not_affected", "justification": "vulnerable_code_not_present"}]}"#,
        )
        .unwrap();
        let vendor: Vec<(VexStatement, String)> = statements
            .into_iter()
            .map(|s| (s, "vex:vendor#/statements/0".to_owned()))
            .collect();
        let with_vex = run(&vendor);
        assert_eq!(
            with_vex.counts.findings, 2,
            "a finding exists whatever VEX decides"
        );
        let lodash = with_vex
            .findings
            .iter()
            .find(|f| f.vulnerability_id == "A-1")
            .unwrap();
        assert_eq!(
            lodash.assessment.get(Question::Applies),
            crate::lattice::K4::False
        );
        assert_eq!(lodash.disposition, Disposition::Pass);
        assert!(
            lodash.trace[0].by.starts_with("rule:not-applicable"),
            "{:?}",
            lodash.trace
        );
        assert!(lodash
            .assessment
            .claims
            .iter()
            .any(|c| c.evidence == "vex:vendor#/statements/0"));
        assert_eq!(
            with_vex.disposition,
            Disposition::Block,
            "minimist still blocks"
        );

        // A tenant's statement that disagrees: the conflict is shown, not resolved.
        let tenant = vex::parse(
            br#"{"statements": [{"vulnerability": "A-1", "products": ["pkg:npm/lodash@4.17.20"], "status": "affected"}]}"#,
        )
        .unwrap();
        let mut both = vendor.clone();
        both.extend(
            tenant
                .into_iter()
                .map(|s| (s, "vex:tenant#/statements/0".to_owned())),
        );
        let disputed = run(&both);
        let lodash = disputed
            .findings
            .iter()
            .find(|f| f.vulnerability_id == "A-1")
            .unwrap();
        assert_eq!(
            lodash.assessment.get(Question::Applies),
            crate::lattice::K4::Conflict
        );
        assert_eq!(lodash.disposition, Disposition::Warn);
        assert_eq!(disputed.counts.conflicts, 1);
        // A statement about another version does not apply.
        let other = vex::parse(
            br#"{"statements": [{"vulnerability": "A-1", "products": ["pkg:npm/lodash@1.0.0"], "status": "affected"}]}"#,
        )
        .unwrap();
        let mut unrelated = vendor.clone();
        unrelated.extend(other.into_iter().map(|s| (s, "vex:other".to_owned())));
        let unrelated = run(&unrelated);
        let lodash = unrelated
            .findings
            .iter()
            .find(|f| f.vulnerability_id == "A-1")
            .unwrap();
        assert_eq!(lodash.disposition, Disposition::Pass);
    }

    #[test]
    fn a_sealed_verdict_verifies_and_equal_inputs_seal_to_the_same_payload() {
        let index = AdvisoryIndex::build([advisory("A-1", "lodash", "4.17.21")]);
        let components = [component("lodash", "4.17.20")];
        let policy = Policy::parse(policy::DEFAULT_POLICY).unwrap();
        let sbom = SbomContext::default();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let inputs = ScanInputs {
            components: &components,
            sbom: &sbom,
            index: &index,
            vex: &[],
            policy: &policy,
            pack: None,
            at,
        };
        let verdict = evaluate(&inputs, &below_fixed, &vex::generic_compare);
        let digests = InputDigests {
            sbom: "sha256:00".into(),
            policy: verdict.policy_digest.clone(),
            evaluated_at: Some(at),
            exceptions: Default::default(),
            ..InputDigests::default()
        };
        let key = crate::dsse::SigningKey::generate([7; 32]);
        let sbom_digest = crate::canonical::Digest::sha256(b"sbom bytes");
        let sealed = SealedVerdict::of(&verdict).unwrap();
        let one = seal(&sealed, &digests, "sbom.json", &sbom_digest, None, &key).unwrap();
        let again = SealedVerdict::of(&evaluate(&inputs, &below_fixed, &vex::generic_compare));
        let two = seal(
            &again.unwrap(),
            &digests,
            "sbom.json",
            &sbom_digest,
            None,
            &key,
        )
        .unwrap();
        assert_eq!(one.to_json(), two.to_json(), "byte-identical envelopes");
        let verified = crate::intoto::Statement::verify(&one, &[key.public_key().clone()]).unwrap();
        assert_eq!(verified.statement.predicate_type(), VERDICT_PREDICATE);
        assert_eq!(verified.statement.subjects()[0].sha256(), Some(sbom_digest));
        assert_eq!(
            verified.statement.predicate()["verdict"]["disposition"],
            "block"
        );
        assert_eq!(
            verified.statement.predicate()["inputs_hash"],
            digests.hash()
        );
        let other = crate::dsse::SigningKey::generate([8; 32]);
        assert!(crate::intoto::Statement::verify(&one, &[other.public_key().clone()]).is_err());
    }

    fn unscored(id: &str, name: &str) -> Advisory {
        parse_record(
            format!(
                r#"{{"id": "{id}", "modified": "2024-01-01T00:00:00Z",
                "affected": [{{"package": {{"ecosystem": "npm", "name": "{name}"}},
                  "ranges": [{{"type": "SEMVER", "events": [{{"introduced": "0"}}, {{"fixed": "9.0.0"}}]}}]}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn verdict_of(index: &AdvisoryIndex, components: &[ScanComponent]) -> Verdict {
        let policy = Policy::parse(policy::DEFAULT_POLICY).unwrap();
        evaluate(
            &ScanInputs {
                components,
                sbom: &SbomContext::default(),
                index,
                vex: &[],
                policy: &policy,
                pack: None,
                at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            },
            &below_fixed,
            &vex::generic_compare,
        )
    }

    #[test]
    fn findings_come_in_verdict_order_whatever_order_the_components_come_in() {
        let index = AdvisoryIndex::build([
            advisory("A-2", "lodash", "9.0.0"),
            advisory("A-1", "lodash", "9.0.0"),
            advisory("A-3", "chalk", "9.0.0"),
            unscored("A-0", "zod"),
        ]);
        let mut components = vec![
            component("zod", "1.0.0"),
            component("lodash", "1.0.0"),
            component("ansi", "1.0.0"),
            component("chalk", "1.0.0"),
        ];
        let verdict = verdict_of(&index, &components);
        let order: Vec<(&str, &str)> = verdict
            .findings
            .iter()
            .map(|f| (f.purl.as_str(), f.vulnerability_id.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("pkg:npm/chalk@1.0.0", "A-3"),
                ("pkg:npm/lodash@1.0.0", "A-1"),
                ("pkg:npm/lodash@1.0.0", "A-2"),
                ("pkg:npm/zod@1.0.0", "A-0"),
            ]
        );
        assert_eq!(verdict.counts.findings, 4);
        assert_eq!((verdict.counts.block, verdict.counts.warn), (3, 1));
        assert_eq!(verdict.disposition, Disposition::Block);
        components.reverse();
        assert_eq!(verdict_of(&index, &components), verdict);
    }

    #[test]
    fn an_attestation_lists_findings_within_its_budget_worst_first_and_pins_them_all() {
        let index = AdvisoryIndex::build([
            unscored("W-1", "ansi"),
            advisory("B-1", "lodash", "9.0.0"),
            unscored("W-2", "zod"),
        ]);
        let components = [
            component("ansi", "1.0.0"),
            component("lodash", "1.0.0"),
            component("zod", "1.0.0"),
        ];
        let verdict = verdict_of(&index, &components);
        let ids: Vec<&str> = verdict
            .findings
            .iter()
            .map(|f| f.vulnerability_id.as_str())
            .collect();
        assert_eq!(ids, ["W-1", "B-1", "W-2"]);
        let texts: Vec<FindingText> = verdict
            .findings
            .iter()
            .map(|f| FindingText::of(f).unwrap())
            .collect();
        let summary = VerdictSummary {
            disposition: verdict.disposition,
            counts: verdict.counts.clone(),
            policy_digest: verdict.policy_digest.clone(),
            evaluated_at: verdict.evaluated_at,
        };
        // The digest is that of the canonical JSON of the array of every finding.
        let all = serde_json::to_value(&verdict.findings).unwrap();
        let expected = crate::canonical::Digest::sha256(&crate::canonical::canonical_bytes(&all));

        // Room for two: the blocking one, then the first warning one, listed in verdict
        // order; the third is counted and pinned by the digest only.
        let budget = texts[1].canonical.len() + texts[0].canonical.len() + 2;
        let sealed = SealedVerdict::new(summary.clone(), &texts, budget).unwrap();
        let listed: Vec<&str> = sealed
            .findings
            .iter()
            .map(|f| f.vulnerability_id.as_str())
            .collect();
        assert_eq!(listed, ["W-1", "B-1"]);
        assert_eq!(sealed.findings_omitted, 1);
        assert_eq!(sealed.counts.findings, 3);
        assert_eq!(sealed.findings_digest, expected.to_string());

        // A budget smaller than the blocking finding still lists what fits.
        let budget = texts[2].canonical.len() + 1;
        let sealed = SealedVerdict::new(summary.clone(), &texts, budget).unwrap();
        assert_eq!(sealed.findings.len(), 1);
        assert_eq!(sealed.findings_omitted, 2);
        assert_eq!(sealed.findings_digest, expected.to_string());

        // Within the default budget every finding is listed, exactly as evaluated.
        let whole = SealedVerdict::of(&verdict).unwrap();
        assert_eq!(whole.findings, verdict.findings);
        assert_eq!(whole.findings_omitted, 0);
        assert_eq!(whole.findings_digest, expected.to_string());
    }

    #[test]
    fn equal_inputs_give_equal_hashes_and_any_change_shows() {
        let mut a = InputDigests {
            sbom: "sha256:1".into(),
            policy: "sha256:p".into(),
            ..InputDigests::default()
        };
        a.advisories.insert("sha256:b".into());
        a.advisories.insert("sha256:a".into());
        let mut b = a.clone();
        b.advisories = ["sha256:a".to_owned(), "sha256:b".to_owned()]
            .into_iter()
            .collect();
        assert_eq!(a.hash(), b.hash());
        b.vex.insert("sha256:v".into());
        assert_ne!(a.hash(), b.hash());
    }
}
