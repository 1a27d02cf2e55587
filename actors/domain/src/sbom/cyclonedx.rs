//! CycloneDX JSON, spec versions 1.2 to 1.6.
//!
//! Read: `specVersion`, `serialNumber`, `metadata.component` (the subject, with its own
//! nested `components`, and for a `container` its SHA-256 hash and `stella:image:*`
//! properties: the image), `components[]` recursively, and `dependencies[].ref`.
//!
//! Rejected (the rules of the CycloneDX schema that decide what the inventory is), each
//! with the pointer of the offending value:
//! - a `specVersion` other than `1.2`–`1.6`, or missing;
//! - a `serialNumber` that is not `urn:uuid:` followed by a UUID;
//! - a component without `type`, or with a `type` no CycloneDX version defines (the union
//!   of 1.2–1.6 is accepted whatever the document's version, as generators mix them);
//! - a component without `name`;
//! - an empty `bom-ref`, or one an earlier component (or the subject) already uses: VEX
//!   statements and the dependency graph point at components by `bom-ref`, so a shared
//!   one would attach them to the wrong component;
//! - a `scope` other than `required`, `optional`, `excluded`;
//! - a `dependencies` entry without a non-empty `ref`;
//! - any of the fields above, or `purl`, `version`, `group`, of the wrong JSON type.
//!
//! Not checked: hashes, licences, timestamps, properties, services, vulnerabilities and
//! the other parts a strict schema validator would check; they do not change which
//! packages the SBOM holds.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;

use super::{
    component, inventory, reject, required, typed, Entry, ImageSubject, Sbom, SbomError, SbomFormat,
};
use crate::error::InputError;

const SPEC_VERSIONS: [&str; 5] = ["1.2", "1.3", "1.4", "1.5", "1.6"];

/// Component types of CycloneDX 1.2–1.6 (1.5 added `platform`, `device-driver`,
/// `machine-learning-model` and `data`; 1.6 added `cryptographic-asset`).
const COMPONENT_TYPES: [&str; 13] = [
    "application",
    "framework",
    "library",
    "container",
    "platform",
    "operating-system",
    "device",
    "device-driver",
    "firmware",
    "file",
    "machine-learning-model",
    "data",
    "cryptographic-asset",
];

const SCOPES: [&str; 3] = ["required", "optional", "excluded"];

// Strings borrow from the document where they have no escapes: the typed pass over a
// 50 MiB document with 200,000 components then allocates little beyond the component
// structs themselves.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bom<'a> {
    #[serde(borrow)]
    spec_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    serial_number: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow)]
    components: Option<Vec<CdxComponent<'a>>>,
    #[serde(borrow)]
    dependencies: Option<Vec<Dependency<'a>>>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    component: Option<Subject<'a>>,
}

/// `metadata.component`: a component, and for a container image its hashes and
/// properties (read for the subject only: the other components skip them unparsed).
#[derive(Deserialize)]
struct Subject<'a> {
    #[serde(flatten, borrow)]
    component: CdxComponent<'a>,
    #[serde(default, borrow)]
    hashes: Vec<Hash<'a>>,
    #[serde(default, borrow)]
    properties: Vec<Property<'a>>,
}

#[derive(Deserialize)]
struct Hash<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    content: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Property<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    value: Option<Cow<'a, str>>,
}

impl Subject<'_> {
    /// The image, when the subject is a `container` with a SHA-256 hash.
    fn image(&self, name: &str) -> Option<ImageSubject> {
        if self.component.ty.as_deref() != Some("container") {
            return None;
        }
        let hex = self.hashes.iter().find_map(|h| {
            (h.alg == "SHA-256"
                && h.content.len() == 64
                && h.content.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| h.content.to_ascii_lowercase())
        })?;
        let props = |key: &str| -> Vec<String> {
            self.properties
                .iter()
                .filter(|p| p.name == key)
                .filter_map(|p| p.value.as_deref().map(str::to_owned))
                .collect()
        };
        Some(ImageSubject {
            name: name.to_owned(),
            digest: format!("sha256:{hex}"),
            config_digest: props("stella:image:config-digest").into_iter().next(),
            layers: props("stella:image:layer"),
        })
    }
}

#[derive(Deserialize)]
struct CdxComponent<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(rename = "bom-ref", borrow)]
    bom_ref: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    purl: Option<Cow<'a, str>>,
    #[serde(borrow)]
    scope: Option<Cow<'a, str>>,
    #[serde(borrow)]
    components: Option<Vec<CdxComponent<'a>>>,
}

#[derive(Deserialize)]
struct Dependency<'a> {
    #[serde(rename = "ref", borrow)]
    reference: Option<Cow<'a, str>>,
}

fn owned(value: Option<Cow<'_, str>>) -> Option<String> {
    value.map(Cow::into_owned)
}

/// Reads a document whose `bomFormat` is `CycloneDX`, refusing one with more than
/// `max_components` component entries before any of them is classified.
pub(crate) fn parse(bytes: &[u8], max_components: usize) -> Result<Sbom, SbomError> {
    let bom: Bom<'_> = typed(bytes)?;
    let spec_version = required(
        owned(bom.spec_version),
        || "/specVersion".into(),
        "specVersion",
    )?;
    if !SPEC_VERSIONS.contains(&spec_version.as_str()) {
        return Err(reject(
            "/specVersion",
            format!("unsupported CycloneDX specVersion {spec_version:?}, expected 1.2 to 1.6"),
        )
        .into());
    }
    let serial = owned(bom.serial_number);
    if let Some(serial) = &serial {
        if !is_urn_uuid(serial) {
            return Err(reject(
                "/serialNumber",
                format!("serialNumber {serial:?} is not urn:uuid:<uuid>"),
            )
            .into());
        }
    }
    let declared = bom
        .metadata
        .as_ref()
        .and_then(|m| m.component.as_ref())
        .map_or(0, |c| count(&c.component.components))
        + count(&bom.components);
    if declared > max_components {
        return Err(SbomError::TooManyComponents {
            declared,
            limit: max_components,
        });
    }

    let mut entries = Vec::with_capacity(declared);
    let mut refs = HashSet::with_capacity(declared);
    let mut subject = None;
    let mut name = None;
    let mut image = None;
    if let Some(meta) = bom.metadata.and_then(|m| m.component) {
        let path = "/metadata/component".to_owned();
        let meta_image = meta.component.name.as_deref().and_then(|n| meta.image(n));
        let (entry, children) = check(meta.component, &path, &mut refs)?;
        image = meta_image;
        name = Some(entry.name.clone());
        subject = Some(component(entry));
        flatten(
            children,
            &format!("{path}/components"),
            &mut refs,
            &mut entries,
        )?;
    }
    flatten(bom.components, "/components", &mut refs, &mut entries)?;
    drop(refs);
    for (i, dep) in bom.dependencies.unwrap_or_default().into_iter().enumerate() {
        if dep.reference.as_deref().is_none_or(str::is_empty) {
            return Err(reject(
                format!("/dependencies/{i}/ref"),
                "a dependency needs a non-empty ref",
            )
            .into());
        }
    }

    Ok(Sbom {
        format: SbomFormat::Cyclonedx,
        spec_version,
        serial,
        name,
        subject,
        describes: Vec::new(),
        components: inventory(entries),
        image,
    })
}

/// Component entries, nested ones included.
fn count(components: &Option<Vec<CdxComponent<'_>>>) -> usize {
    components
        .iter()
        .flatten()
        .map(|c| 1 + count(&c.components))
        .sum()
}

/// Depth-first, document order: a component, then its children.
fn flatten<'a>(
    components: Option<Vec<CdxComponent<'a>>>,
    base: &str,
    refs: &mut HashSet<Cow<'a, str>>,
    out: &mut Vec<Entry>,
) -> Result<(), InputError> {
    for (i, c) in components.unwrap_or_default().into_iter().enumerate() {
        let path = format!("{base}/{i}");
        let (entry, children) = check(c, &path, refs)?;
        out.push(entry);
        flatten(children, &format!("{path}/components"), refs, out)?;
    }
    Ok(())
}

#[allow(clippy::type_complexity)]
fn check<'a>(
    c: CdxComponent<'a>,
    path: &str,
    refs: &mut HashSet<Cow<'a, str>>,
) -> Result<(Entry, Option<Vec<CdxComponent<'a>>>), InputError> {
    let ty = required(owned(c.ty), || format!("{path}/type"), "component type")?;
    if !COMPONENT_TYPES.contains(&ty.as_str()) {
        return Err(reject(
            format!("{path}/type"),
            format!("unknown component type {ty:?}"),
        ));
    }
    let name = required(owned(c.name), || format!("{path}/name"), "component name")?;
    if let Some(bom_ref) = &c.bom_ref {
        if bom_ref.is_empty() {
            return Err(reject(
                format!("{path}/bom-ref"),
                "bom-ref must not be empty",
            ));
        }
        if !refs.insert(bom_ref.clone()) {
            return Err(reject(
                format!("{path}/bom-ref"),
                format!("bom-ref {bom_ref:?} is used by an earlier component"),
            ));
        }
    }
    if let Some(scope) = &c.scope {
        if !SCOPES.contains(&scope.as_ref()) {
            return Err(reject(
                format!("{path}/scope"),
                format!("unknown scope {scope:?}, expected required, optional or excluded"),
            ));
        }
    }
    let entry = Entry {
        path: path.to_owned(),
        reference: owned(c.bom_ref),
        name,
        group: owned(c.group).filter(|g| !g.is_empty()),
        version: owned(c.version),
        purl: owned(c.purl),
    };
    Ok((entry, c.components))
}

/// `urn:uuid:` and a UUID in its 8-4-4-4-12 hexadecimal form (RFC 4122).
fn is_urn_uuid(serial: &str) -> bool {
    let Some(uuid) = serial.strip_prefix("urn:uuid:") else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}
