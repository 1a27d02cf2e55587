//! SBOM documents read into one inventory: CycloneDX JSON 1.2–1.6 and SPDX JSON 2.2/2.3,
//! detected by their own marker (`bomFormat: "CycloneDX"`, `spdxVersion: "SPDX-2.x"`).
//!
//! Every component is kept and classified ([`ComponentStatus`]): one without a purl, with
//! a purl that does not parse, or in an ecosystem Stella does not match in is still in
//! [`Sbom::components`] and counted by [`Sbom::summary`], never silently dropped. Only
//! [`ComponentStatus::MatchedEcosystem`] components carry a [`PackageKey`] and are matched
//! ([`Sbom::scan_targets`]).
//!
//! Decisions:
//! - **Duplicates.** Components with the same canonical purl are one [`Component`] that
//!   lists every occurrence (`refs`, `paths`): npm's flat SBOMs name one package once per
//!   place it is installed, and a finding is about the package, not the folder. Components
//!   without a valid purl are never merged (nothing says two of them are the same).
//!   [`SbomSummary::declared`] still counts every entry of the document.
//! - **Nesting.** CycloneDX `components[].components[]` (and the subject's own
//!   `components`) are flattened depth-first in document order; `paths` holds the JSON
//!   pointer of each occurrence (`/components/3/components/0`).
//! - **Subject.** CycloneDX `metadata.component` is what the SBOM describes. It is kept as
//!   [`Sbom::subject`], not in `components`; it is scanned (in `scan_targets`) when it has
//!   a purl in a matched ecosystem, because a published application (juice-shop on npm)
//!   has advisories of its own. SPDX has no separate place for it: the described packages
//!   sit in `packages[]` with the rest, so they stay in `components` and their ids are in
//!   [`Sbom::describes`].
//! - **Unknown fields** are accepted everywhere: real SBOMs carry many (licences, hashes,
//!   properties, evidence) that the inventory does not need.
//!
//! Errors are [`InputError`]s with the JSON pointer of the first problem found: `""` for
//! text that is not JSON (the message has the line and column), `/bomFormat` when neither
//! format marker is there or it names another format, `/components/3/purl` for a purl that
//! is not a string. See [`cyclonedx`] and [`spdx`] for what each reader rejects.

pub mod cyclonedx;
pub mod spdx;

use std::collections::HashMap;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::ecosystem::PackageKey;
use crate::error::{pointer_token, InputError};
use crate::purl::Purl;

/// The document format an SBOM was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    Cyclonedx,
    Spdx,
}

impl fmt::Display for SbomFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SbomFormat::Cyclonedx => "cyclonedx",
            SbomFormat::Spdx => "spdx",
        })
    }
}

/// How a component can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentStatus {
    /// Has a valid purl in an ecosystem Stella matches in: it has a [`PackageKey`].
    MatchedEcosystem,
    /// Has no purl (or an empty one).
    NoPurl,
    /// Has a purl that is not a valid package URL.
    InvalidPurl,
    /// Has a valid purl of a type Stella does not match in (`conda`, `generic`, ...).
    UnsupportedEcosystem,
}

/// One package of the inventory (several entries of the document when they share a purl).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// CycloneDX `bom-ref`s or SPDX `SPDXID`s of every occurrence, in document order.
    pub refs: Vec<String>,
    /// JSON pointer of every occurrence, in document order.
    pub paths: Vec<String>,
    pub name: String,
    /// CycloneDX `group` (Maven group id, npm scope, ...).
    pub group: Option<String>,
    pub version: Option<String>,
    /// The purl as the document wrote it.
    pub purl_raw: Option<String>,
    pub purl: Option<Purl>,
    /// Why `purl_raw` was rejected, for [`ComponentStatus::InvalidPurl`].
    pub purl_error: Option<String>,
    pub package_key: Option<PackageKey>,
    pub status: ComponentStatus,
}

impl Component {
    /// The version to compare with advisory ranges: the purl's (in the ecosystem's own
    /// spelling, `v0.3.1` for Go), else the document's `version` / `versionInfo`.
    pub fn version_for_matching(&self) -> Option<&str> {
        self.purl
            .as_ref()
            .and_then(Purl::version)
            .or(self.version.as_deref())
    }
}

/// An SBOM as Stella's scan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sbom {
    pub format: SbomFormat,
    /// `1.2`–`1.6` for CycloneDX, `2.2` or `2.3` for SPDX.
    pub spec_version: String,
    /// CycloneDX `serialNumber` or SPDX `documentNamespace`.
    pub serial: Option<String>,
    /// SPDX document `name`; CycloneDX `metadata.component.name`.
    pub name: Option<String>,
    /// CycloneDX `metadata.component`: what the SBOM describes.
    pub subject: Option<Component>,
    /// SPDX ids the document describes (`documentDescribes` and `DESCRIBES`).
    pub describes: Vec<String>,
    pub components: Vec<Component>,
    /// The container image the SBOM describes, where it names one by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSubject>,
}

/// A container image an SBOM describes: CycloneDX `metadata.component` of type
/// `container` with a SHA-256 hash (as `stella sbom` and `POST /images` write it). The
/// scan's attestation names it as a second subject, so a verifier can match the verdict to
/// the image it pulls, not only to the SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSubject {
    /// The image's name (`registry/repo:tag`), or its digest when it has none.
    pub name: String,
    /// `sha256:<64 hex>`: the digest of the image manifest.
    pub digest: String,
    /// The config blob's digest (property `stella:image:config-digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// The layer digests, bottom first (properties `stella:image:layer`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

impl ImageSubject {
    /// The hex digits of [`Self::digest`].
    pub fn digest_hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }
}

/// Counts of an SBOM's inventory, per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomSummary {
    /// Component entries in the document, duplicates included (not the subject).
    pub declared: usize,
    /// Components after merging entries with the same purl.
    pub distinct: usize,
    pub matched_ecosystem: usize,
    pub no_purl: usize,
    pub invalid_purl: usize,
    pub unsupported_ecosystem: usize,
    /// The subject's status, where there is one.
    pub subject: Option<ComponentStatus>,
}

impl Sbom {
    /// Counts the inventory by status; the per-status counts add up to `distinct`.
    pub fn summary(&self) -> SbomSummary {
        let mut s = SbomSummary {
            distinct: self.components.len(),
            subject: self.subject.as_ref().map(|c| c.status),
            ..SbomSummary::default()
        };
        for c in &self.components {
            s.declared += c.paths.len();
            match c.status {
                ComponentStatus::MatchedEcosystem => s.matched_ecosystem += 1,
                ComponentStatus::NoPurl => s.no_purl += 1,
                ComponentStatus::InvalidPurl => s.invalid_purl += 1,
                ComponentStatus::UnsupportedEcosystem => s.unsupported_ecosystem += 1,
            }
        }
        s
    }

    /// The components to match against advisories: the subject first when it has a
    /// matched purl that no component repeats, then every matched component.
    pub fn scan_targets(&self) -> Vec<&Component> {
        let mut out = Vec::new();
        if let Some(subject) = &self.subject {
            let repeated = self
                .components
                .iter()
                .any(|c| c.purl.is_some() && c.purl == subject.purl);
            if subject.status == ComponentStatus::MatchedEcosystem && !repeated {
                out.push(subject);
            }
        }
        out.extend(
            self.components
                .iter()
                .filter(|c| c.status == ComponentStatus::MatchedEcosystem),
        );
        out
    }
}

/// Why an SBOM was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    /// Not a valid CycloneDX or SPDX JSON document.
    #[error(transparent)]
    Invalid(#[from] InputError),
    /// More component entries (CycloneDX components, nested ones included, or SPDX
    /// packages) than the caller admits.
    #[error("the SBOM lists {declared} components, more than the limit of {limit}")]
    TooManyComponents { declared: usize, limit: usize },
}

/// Reads a CycloneDX or SPDX JSON document.
pub fn parse(bytes: &[u8]) -> Result<Sbom, InputError> {
    parse_limited(bytes, usize::MAX).map_err(|err| match err {
        SbomError::Invalid(err) => err,
        // No document holds more than `usize::MAX` entries.
        too_many @ SbomError::TooManyComponents { .. } => {
            InputError::new("/components", too_many.to_string())
        }
    })
}

/// Reads a CycloneDX or SPDX JSON document with at most `max_components` component
/// entries. The entries are counted in the first pass over the text, which builds
/// nothing, before the typed pass and before any purl is parsed or any component
/// classified: those take most of a large SBOM's memory and time.
pub fn parse_limited(bytes: &[u8], max_components: usize) -> Result<Sbom, SbomError> {
    // Some Windows tools start UTF-8 files with a byte-order mark, which JSON does not allow.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "an SBOM is a JSON object",
            _ => "invalid JSON",
        };
        InputError::new("", format!("{what}: {e}"))
    })?;
    if probe.entries > max_components {
        return Err(SbomError::TooManyComponents {
            declared: probe.entries,
            limit: max_components,
        });
    }
    match (probe.bom_format, probe.spdx_version) {
        (Some(serde_json::Value::String(f)), _) if f == "CycloneDX" => {
            cyclonedx::parse(bytes, max_components)
        }
        (Some(other), _) => Err(InputError::new(
            "/bomFormat",
            format!("unknown bomFormat {other}, expected \"CycloneDX\""),
        )
        .into()),
        (None, Some(serde_json::Value::String(v))) => spdx::parse(bytes, &v, max_components),
        (None, Some(other)) => Err(InputError::new(
            "/spdxVersion",
            format!("spdxVersion must be a string such as \"SPDX-2.3\", found {other}"),
        )
        .into()),
        (None, None) => Err(InputError::new(
            "/bomFormat",
            "not an SBOM: no bomFormat (CycloneDX) or spdxVersion (SPDX)",
        )
        .into()),
    }
}

/// One component entry as a reader found it, before classification and merging.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) path: String,
    pub(crate) reference: Option<String>,
    pub(crate) name: String,
    pub(crate) group: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) purl: Option<String>,
}

/// Classifies one entry.
pub(crate) fn component(entry: Entry) -> Component {
    let raw = entry.purl.filter(|p| !p.trim().is_empty());
    let (purl, purl_error) = match raw.as_deref().map(Purl::parse) {
        None => (None, None),
        Some(Ok(p)) => (Some(p), None),
        Some(Err(e)) => (None, Some(e.message)),
    };
    let package_key = purl.as_ref().and_then(Purl::package_key);
    let status = match (&raw, &purl, &package_key) {
        (None, _, _) => ComponentStatus::NoPurl,
        (Some(_), None, _) => ComponentStatus::InvalidPurl,
        (Some(_), Some(_), None) => ComponentStatus::UnsupportedEcosystem,
        (Some(_), Some(_), Some(_)) => ComponentStatus::MatchedEcosystem,
    };
    Component {
        refs: entry.reference.into_iter().collect(),
        paths: vec![entry.path],
        name: entry.name,
        group: entry.group,
        version: entry.version,
        purl_raw: raw,
        purl,
        purl_error,
        package_key,
        status,
    }
}

/// Classifies entries and merges those with the same canonical purl, keeping the first
/// occurrence's fields and document order.
pub(crate) fn inventory(entries: Vec<Entry>) -> Vec<Component> {
    let mut out: Vec<Component> = Vec::with_capacity(entries.len());
    let mut by_purl: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        let c = component(entry);
        let Some(key) = c.purl.as_ref().map(|p| p.as_str().to_owned()) else {
            out.push(c);
            continue;
        };
        match by_purl.get(&key) {
            Some(&i) => {
                let first = &mut out[i];
                first.refs.extend(c.refs);
                first.paths.extend(c.paths);
            }
            None => {
                by_purl.insert(key, out.len());
                out.push(c);
            }
        }
    }
    out
}

/// Deserializes `T` from the document, reporting the first error with its JSON pointer.
pub(crate) fn typed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, InputError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let pointer = pointer_of(e.path());
        InputError::new(pointer, e.into_inner().to_string())
    })
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&pointer_token(key));
            }
            Segment::Enum { variant } => {
                out.push('/');
                out.push_str(&pointer_token(variant));
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The two format markers and the number of component entries (CycloneDX components,
/// nested and the subject's included; SPDX packages), read without building the rest of
/// the document: a body of a million tiny components is refused before the typed pass
/// builds them (measured: 602 MB at the peak for 1.45 million in 50 MiB, 60 MB now).
struct Probe {
    bom_format: Option<serde_json::Value>,
    spdx_version: Option<serde_json::Value>,
    entries: usize,
}

/// Counts what a value holds, accepting any JSON: the typed pass reports a wrong shape.
#[derive(Clone, Copy)]
enum Count {
    /// An array of components: each element and its nested `components`.
    Components,
    /// A component: its nested `components` (itself is counted by its array).
    Component,
    /// An array of SPDX packages: its length.
    Packages,
    /// CycloneDX `metadata`: its `component`'s nested components.
    Metadata,
}

struct Counted(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Count {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Count::Component).map(Counted)
    }
}

impl<'de> Visitor<'de> for Count {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut total = 0usize;
        match self {
            Count::Components => {
                while let Some(Counted(nested)) = seq.next_element::<Counted>()? {
                    total = total.saturating_add(1).saturating_add(nested);
                }
            }
            Count::Packages => {
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total = total.saturating_add(1);
                }
            }
            Count::Component | Count::Metadata => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
            }
        }
        Ok(total)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut total = 0usize;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let nested = match (self, key.as_ref()) {
                (Count::Component, "components") => map.next_value_seed(Count::Components)?,
                (Count::Metadata, "component") => map.next_value_seed(Count::Component)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    0
                }
            };
            total = total.saturating_add(nested);
        }
        Ok(total)
    }

    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ProbeVisitor)
    }
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let mut probe = Probe {
            bom_format: None,
            spdx_version: None,
            entries: 0,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "bomFormat" => probe.bom_format = Some(map.next_value()?),
                "spdxVersion" => probe.spdx_version = Some(map.next_value()?),
                "components" => {
                    let n = map.next_value_seed(Count::Components)?;
                    probe.entries = probe.entries.saturating_add(n);
                }
                "metadata" => {
                    let n = map.next_value_seed(Count::Metadata)?;
                    probe.entries = probe.entries.saturating_add(n);
                }
                "packages" => {
                    let n = map.next_value_seed(Count::Packages)?;
                    probe.entries = probe.entries.saturating_add(n);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(probe)
    }
}

/// An error about a value the typed pass accepted but the reader does not.
pub(crate) fn reject(pointer: impl Into<String>, message: impl Into<String>) -> InputError {
    InputError::new(pointer, message)
}

/// Fails with `pointer` when a required string is absent.
pub(crate) fn required(
    value: Option<String>,
    pointer: impl FnOnce() -> String,
    what: &str,
) -> Result<String, InputError> {
    value.ok_or_else(|| reject(pointer(), format!("missing {what}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn components_are_counted_before_the_typed_pass_builds_them() {
        // Entries the typed pass would refuse (no specVersion, no names) are counted and
        // refused first: a body of tiny components is never built.
        let doc = br#"{"bomFormat": "CycloneDX", "components": [{}, {"components": [{}]}, 7]}"#;
        assert_eq!(
            parse_limited(doc, 3).unwrap_err(),
            SbomError::TooManyComponents {
                declared: 4,
                limit: 3
            }
        );
        assert!(matches!(parse_limited(doc, 4), Err(SbomError::Invalid(_))));
    }

    #[test]
    fn a_document_over_the_component_limit_is_refused_with_its_count() {
        // Three entries, one of them nested, and the subject's child: four.
        let cdx = br#"{"bomFormat": "CycloneDX", "specVersion": "1.5",
            "metadata": {"component": {"type": "application", "name": "app",
                "components": [{"type": "library", "name": "inner"}]}},
            "components": [
                {"type": "library", "name": "a", "purl": "pkg:npm/a@1",
                 "components": [{"type": "library", "name": "b", "purl": "pkg:npm/b@1"}]},
                {"type": "library", "name": "c", "purl": "pkg:npm/c@1"}]}"#;
        assert_eq!(
            parse_limited(cdx, 3).unwrap_err(),
            SbomError::TooManyComponents {
                declared: 4,
                limit: 3
            }
        );
        assert_eq!(parse_limited(cdx, 4).unwrap().summary().declared, 4);
        assert_eq!(
            parse_limited(cdx, 3).unwrap_err().to_string(),
            "the SBOM lists 4 components, more than the limit of 3"
        );

        let spdx = br#"{"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "d",
            "documentNamespace": "https://example.com/d",
            "packages": [{"SPDXID": "SPDXRef-a", "name": "a"}, {"SPDXID": "SPDXRef-b", "name": "b"}]}"#;
        assert!(matches!(
            parse_limited(spdx, 1),
            Err(SbomError::TooManyComponents {
                declared: 2,
                limit: 1
            })
        ));
        assert_eq!(parse_limited(spdx, 2).unwrap().components.len(), 2);
        // Within the limit, an invalid document is refused with its pointer as before.
        let bad =
            br#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "x"}]}"#;
        match parse_limited(bad, 1) {
            Err(SbomError::Invalid(err)) => assert_eq!(err.pointer, "/components/0/type"),
            other => panic!("{other:?}"),
        }
    }
}
