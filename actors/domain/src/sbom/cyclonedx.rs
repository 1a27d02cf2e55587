//! CycloneDX JSON, spec versions 1.2 to 1.6.
//!
//! Read: `specVersion`, `serialNumber`, `metadata.component` (the subject, with its own
//! nested `components`), `components[]` recursively, and `dependencies[].ref`.
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

use std::collections::HashSet;

use serde::Deserialize;

use super::{component, inventory, reject, required, typed, Entry, Sbom, SbomFormat};
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    spec_version: Option<String>,
    serial_number: Option<String>,
    metadata: Option<Metadata>,
    components: Option<Vec<CdxComponent>>,
    dependencies: Option<Vec<Dependency>>,
}

#[derive(Deserialize)]
struct Metadata {
    component: Option<CdxComponent>,
}

#[derive(Deserialize)]
struct CdxComponent {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "bom-ref")]
    bom_ref: Option<String>,
    name: Option<String>,
    group: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    scope: Option<String>,
    components: Option<Vec<CdxComponent>>,
}

#[derive(Deserialize)]
struct Dependency {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

/// Reads a document whose `bomFormat` is `CycloneDX`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Sbom, InputError> {
    let bom: Bom = typed(bytes)?;
    let spec_version = required(bom.spec_version, || "/specVersion".into(), "specVersion")?;
    if !SPEC_VERSIONS.contains(&spec_version.as_str()) {
        return Err(reject(
            "/specVersion",
            format!("unsupported CycloneDX specVersion {spec_version:?}, expected 1.2 to 1.6"),
        ));
    }
    if let Some(serial) = &bom.serial_number {
        if !is_urn_uuid(serial) {
            return Err(reject(
                "/serialNumber",
                format!("serialNumber {serial:?} is not urn:uuid:<uuid>"),
            ));
        }
    }

    let mut entries = Vec::new();
    let mut refs = HashSet::new();
    let mut subject = None;
    let mut name = None;
    if let Some(meta) = bom.metadata.and_then(|m| m.component) {
        let path = "/metadata/component".to_owned();
        let (entry, children) = check(meta, &path, &mut refs)?;
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
    for (i, dep) in bom.dependencies.unwrap_or_default().into_iter().enumerate() {
        if dep.reference.as_deref().is_none_or(str::is_empty) {
            return Err(reject(
                format!("/dependencies/{i}/ref"),
                "a dependency needs a non-empty ref",
            ));
        }
    }

    Ok(Sbom {
        format: SbomFormat::Cyclonedx,
        spec_version,
        serial: bom.serial_number,
        name,
        subject,
        describes: Vec::new(),
        components: inventory(entries),
    })
}

/// Depth-first, document order: a component, then its children.
fn flatten(
    components: Option<Vec<CdxComponent>>,
    base: &str,
    refs: &mut HashSet<String>,
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

fn check(
    c: CdxComponent,
    path: &str,
    refs: &mut HashSet<String>,
) -> Result<(Entry, Option<Vec<CdxComponent>>), InputError> {
    let ty = required(c.ty, || format!("{path}/type"), "component type")?;
    if !COMPONENT_TYPES.contains(&ty.as_str()) {
        return Err(reject(
            format!("{path}/type"),
            format!("unknown component type {ty:?}"),
        ));
    }
    let name = required(c.name, || format!("{path}/name"), "component name")?;
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
        if !SCOPES.contains(&scope.as_str()) {
            return Err(reject(
                format!("{path}/scope"),
                format!("unknown scope {scope:?}, expected required, optional or excluded"),
            ));
        }
    }
    let entry = Entry {
        path: path.to_owned(),
        reference: c.bom_ref,
        name,
        group: c.group.filter(|g| !g.is_empty()),
        version: c.version,
        purl: c.purl,
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
