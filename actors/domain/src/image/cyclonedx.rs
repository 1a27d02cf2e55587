//! The inventory of an image as a CycloneDX 1.5 JSON document.
//!
//! `metadata.component` is the image (`type: container`, its digest as `version` and
//! `bom-ref`, the config and layer digests as properties). Each distinct purl is one
//! component whose `bom-ref` is the purl; every file it was found in is a
//! `stella:evidence` property and the layer that wrote it a `stella:layer` property, so
//! the document reads back (`crate::sbom::parse`) as the same inventory. The serial
//! number is derived from the image digest and there is no timestamp: the same image
//! gives the same bytes.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::analyzers::{Inventory, Package, PackageType};
use super::archive::Image;

fn prop(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

/// A `urn:uuid:` with the UUID version 8 (custom) layout, from the image digest.
fn serial(digest: &str) -> String {
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&Sha256::digest(digest.as_bytes())[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn ty(t: PackageType) -> &'static str {
    match t {
        PackageType::Deb => "deb",
        PackageType::Apk => "apk",
        PackageType::Npm => "npm",
        PackageType::Pypi => "pypi",
        PackageType::Rpm => "rpm",
        PackageType::Golang => "golang",
        PackageType::Cargo => "cargo",
        PackageType::Maven => "maven",
    }
}

fn component(occurrences: &[&Package], image: &Image) -> Value {
    let p = occurrences[0];
    let (group, name) = match (p.ty, p.name.split_once('/')) {
        (PackageType::Npm, Some((scope, n))) if scope.starts_with('@') => (Some(scope), n),
        (PackageType::Maven, _) => (p.purl.namespace(), p.name.as_str()),
        _ => (None, p.name.as_str()),
    };
    let mut props = vec![prop("stella:package:type", ty(p.ty))];
    if let Some(a) = &p.arch {
        props.push(prop("stella:package:arch", a));
    }
    if let Some(s) = &p.source {
        props.push(prop("stella:package:source", s));
    }
    for o in occurrences {
        props.push(prop("stella:evidence", &o.evidence));
        if let Some(layer) = image.layers.get(o.layer) {
            props.push(prop("stella:layer", &layer.digest));
        }
    }
    let mut c = json!({
        "type": "library",
        "bom-ref": p.purl.as_str(),
        "name": name,
        "version": p.version,
        "purl": p.purl.as_str(),
        "properties": props,
    });
    if let Some(g) = group {
        c["group"] = json!(g);
    }
    c
}

/// The CycloneDX 1.5 document for an image and what its analyzers found.
pub fn document(image: &Image, inv: &Inventory) -> Value {
    let mut by_purl: BTreeMap<&str, Vec<&Package>> = BTreeMap::new();
    for p in &inv.packages {
        by_purl.entry(p.purl.as_str()).or_default().push(p);
    }
    let components: Vec<Value> = by_purl.values().map(|o| component(o, image)).collect();
    let mut props = vec![
        prop("stella:image:config-digest", &image.config_digest),
        prop("stella:image:format", image.format.as_str()),
    ];
    for l in &image.layers {
        props.push(prop("stella:image:layer", &l.digest));
        props.push(prop("stella:image:diff-id", &l.diff_id));
    }
    for n in &image.names {
        props.push(prop("stella:image:name", n));
    }
    if let Some(d) = &inv.distro {
        props.push(prop("stella:distro:id", &d.id));
        if let Some(v) = &d.version_id {
            props.push(prop("stella:distro:version-id", v));
        }
    }
    let hex = image
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&image.digest);
    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(&image.digest),
        "version": 1,
        "metadata": {
            "tools": { "components": [ { "type": "application", "name": "stella" } ] },
            "component": {
                "type": "container",
                "bom-ref": image.digest,
                "name": image.names.first().map_or(image.digest.as_str(), String::as_str),
                "version": image.digest,
                "properties": props,
            }
        },
        "components": components,
    });
    // The digest as a hash only where it is the image's (manifest digest, or a legacy
    // docker archive's image id): a root filesystem's is Stella's own digest of the
    // files it kept, which nothing else can recompute.
    if image.format != super::ImageFormat::Rootfs {
        doc["metadata"]["component"]["hashes"] = json!([{ "alg": "SHA-256", "content": hex }]);
    }
    doc
}
