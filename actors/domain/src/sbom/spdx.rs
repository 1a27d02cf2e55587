//! SPDX JSON, versions 2.2 and 2.3.
//!
//! Read: the document's `SPDXID`, `name`, `documentNamespace`, `documentDescribes`, the
//! `DESCRIBES` / `DESCRIBED_BY` relationships of the document, and `packages[]` with
//! their `SPDXID`, `name`, `versionInfo` and purl. A package's purl is the
//! `referenceLocator` of an `externalRefs` entry whose `referenceCategory` is
//! `PACKAGE-MANAGER` (2.3) or `PACKAGE_MANAGER` (2.2) and whose `referenceType` is
//! `purl`; with several, the first valid one is used (the first one when none is valid).
//! Files and snippets are not packages and are not in the inventory.
//!
//! Rejected, with the pointer of the offending value: an `spdxVersion` other than
//! `SPDX-2.2` or `SPDX-2.3`; a document without `SPDXID`, `name` or `documentNamespace`;
//! a package without `SPDXID` or `name`; an `SPDXID` that does not start with `SPDXRef-`;
//! an `externalRefs` entry without `referenceCategory`, `referenceType` or
//! `referenceLocator`; any of these of the wrong JSON type.

use std::collections::HashSet;

use serde::Deserialize;

use super::{inventory, reject, required, typed, Entry, Sbom, SbomError, SbomFormat};
use crate::error::InputError;
use crate::purl::Purl;

const VERSIONS: [&str; 2] = ["SPDX-2.2", "SPDX-2.3"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(rename = "SPDXID")]
    spdx_id: Option<String>,
    name: Option<String>,
    document_namespace: Option<String>,
    document_describes: Option<Vec<String>>,
    packages: Option<Vec<Package>>,
    relationships: Option<Vec<Relationship>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: Option<String>,
    name: Option<String>,
    version_info: Option<String>,
    external_refs: Option<Vec<ExternalRef>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: Option<String>,
    reference_type: Option<String>,
    reference_locator: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: Option<String>,
    related_spdx_element: Option<String>,
    relationship_type: Option<String>,
}

/// Reads a document whose `spdxVersion` is `version`, refusing one with more than
/// `max_components` packages before any of them is classified.
pub(crate) fn parse(bytes: &[u8], version: &str, max_components: usize) -> Result<Sbom, SbomError> {
    if !VERSIONS.contains(&version) {
        return Err(reject(
            "/spdxVersion",
            format!("unsupported spdxVersion {version:?}, expected SPDX-2.2 or SPDX-2.3"),
        )
        .into());
    }
    let doc: Document = typed(bytes)?;
    let declared = doc.packages.as_ref().map_or(0, Vec::len);
    if declared > max_components {
        return Err(SbomError::TooManyComponents {
            declared,
            limit: max_components,
        });
    }
    let doc_id = required(doc.spdx_id, || "/SPDXID".into(), "document SPDXID")?;
    spdx_ref(&doc_id, "/SPDXID")?;
    let name = required(doc.name, || "/name".into(), "document name")?;
    let namespace = required(
        doc.document_namespace,
        || "/documentNamespace".into(),
        "documentNamespace",
    )?;

    let mut entries = Vec::new();
    for (i, p) in doc.packages.unwrap_or_default().into_iter().enumerate() {
        let path = format!("/packages/{i}");
        let id = required(p.spdx_id, || format!("{path}/SPDXID"), "package SPDXID")?;
        spdx_ref(&id, &format!("{path}/SPDXID"))?;
        let name = required(p.name, || format!("{path}/name"), "package name")?;
        let mut purls = Vec::new();
        for (j, r) in p.external_refs.unwrap_or_default().into_iter().enumerate() {
            let at = |field: &str| format!("{path}/externalRefs/{j}/{field}");
            let category = required(
                r.reference_category,
                || at("referenceCategory"),
                "referenceCategory",
            )?;
            let ty = required(r.reference_type, || at("referenceType"), "referenceType")?;
            let locator = required(
                r.reference_locator,
                || at("referenceLocator"),
                "referenceLocator",
            )?;
            if matches!(category.as_str(), "PACKAGE-MANAGER" | "PACKAGE_MANAGER") && ty == "purl" {
                purls.push(locator);
            }
        }
        let purl = match purls.iter().position(|p| Purl::parse(p).is_ok()) {
            Some(k) => Some(purls.swap_remove(k)),
            None => purls.into_iter().next(),
        };
        entries.push(Entry {
            path,
            reference: Some(id),
            name,
            group: None,
            version: p.version_info,
            purl,
        });
    }

    let mut describes: Vec<String> = doc.document_describes.unwrap_or_default();
    // A set beside the list: a document may hold hundreds of thousands of relationships.
    let mut seen: HashSet<String> = describes.iter().cloned().collect();
    for r in doc.relationships.unwrap_or_default() {
        let (Some(a), Some(b), Some(ty)) = (
            r.spdx_element_id,
            r.related_spdx_element,
            r.relationship_type,
        ) else {
            continue;
        };
        let described = match ty.as_str() {
            "DESCRIBES" if a == doc_id => b,
            "DESCRIBED_BY" if b == doc_id => a,
            _ => continue,
        };
        if seen.insert(described.clone()) {
            describes.push(described);
        }
    }

    Ok(Sbom {
        format: SbomFormat::Spdx,
        spec_version: version.trim_start_matches("SPDX-").to_owned(),
        serial: Some(namespace),
        name: Some(name),
        subject: None,
        describes,
        components: inventory(entries),
        image: None,
    })
}

fn spdx_ref(id: &str, pointer: &str) -> Result<(), InputError> {
    if id.starts_with("SPDXRef-") {
        Ok(())
    } else {
        Err(reject(
            pointer,
            format!("SPDX identifier {id:?} must start with SPDXRef-"),
        ))
    }
}
