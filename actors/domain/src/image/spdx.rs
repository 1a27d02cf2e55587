//! The inventory of an image as an SPDX 2.3 JSON document, the counterpart of
//! [`super::cyclonedx`] for tools that read SPDX.
//!
//! The document `DESCRIBES` one package, the image (`SPDXRef-Image`, purpose
//! `CONTAINER`, its digest as `versionInfo` and as a SHA-256 checksum, and, for an image
//! read from an OCI index under a repository name, its `pkg:oci` purl), which `CONTAINS`
//! one package per distinct purl. A package's `SPDXID` is derived from its purl alone
//! (so the same package has the same id in every image's document), its purl is its
//! `PACKAGE-MANAGER` reference, and `sourceInfo` names every file it was found in and
//! the layer that wrote it.
//!
//! SPDX wants a creation time, so the caller passes it (`created`); the namespace is
//! derived from the image digest and Stella's version. The same image at the same
//! `created` gives the same bytes. Read back by [`crate::sbom::parse`], the document has
//! the inventory's purls plus the image's own `pkg:oci` one (a type Stella does not
//! match in), so a scan of it matches exactly what a scan of the CycloneDX document does.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::analyzers::{Inventory, Package, PackageType};
use super::archive::{Image, ImageFormat};
use crate::export::spdx::SPDX_VERSION;
use crate::purl::Purl;

/// The image package's id.
pub const IMAGE_ID: &str = "SPDXRef-Image";

/// What found a package of this type, for its `sourceInfo`.
fn found_by(t: PackageType) -> &'static str {
    match t {
        PackageType::Deb => "the dpkg database",
        PackageType::Apk => "the apk database",
        PackageType::Npm => "npm package metadata",
        PackageType::Pypi => "Python package metadata",
        PackageType::Rpm => "the rpm database",
        PackageType::Cargo => "Cargo metadata",
        PackageType::Golang => "Go module metadata",
        PackageType::Maven => "Java archive metadata",
    }
}

/// `SPDXRef-` and the purl without `pkg:`, every character SPDX ids do not allow
/// (anything but letters, digits, `.` and `-`) made a `-`, then the first 12 hex digits
/// of the purl's SHA-256: the readable part may be shared by two purls (`a_b`, `a~b`),
/// the digest tells them apart.
pub fn package_id(purl: &str) -> String {
    let readable: String = purl
        .strip_prefix("pkg:")
        .unwrap_or(purl)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let digest = hex::encode(&Sha256::digest(purl.as_bytes())[..6]);
    format!("SPDXRef-{readable}-{digest}")
}

/// The `pkg:oci` purl of an image whose digest is a manifest digest (read from an OCI
/// index) and whose name is a repository reference (`registry/repo:tag`); `None` for a
/// docker-archive (its digest is the config's), a root filesystem, and a bare name such
/// as the `latest` an OCI layout may give (no repository to name).
pub fn image_purl(image: &Image) -> Option<Purl> {
    match image.format {
        ImageFormat::OciArchive | ImageFormat::OciLayout => {}
        ImageFormat::DockerArchive | ImageFormat::Rootfs => return None,
    }
    let reference = image.names.first()?;
    let reference = reference.split('@').next().unwrap_or(reference);
    let slash = reference.rfind('/');
    let (repository, tag) = match reference.rfind(':') {
        Some(colon) if slash.is_none_or(|s| colon > s) => {
            (&reference[..colon], Some(&reference[colon + 1..]))
        }
        _ => (reference, None),
    };
    if slash.is_none() && tag.is_none() {
        return None;
    }
    let name = repository.rsplit('/').next()?.to_lowercase();
    let mut qualifiers = vec![("repository_url", repository)];
    qualifiers.extend(tag.map(|t| ("tag", t)));
    Purl::from_parts("oci", None, &name, Some(&image.digest), qualifiers, None).ok()
}

fn purl_ref(purl: &str) -> Value {
    json!({
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    })
}

fn package(occurrences: &[&Package], image: &Image) -> Value {
    let p = occurrences[0];
    let found: Vec<String> = occurrences
        .iter()
        .map(|o| match image.layers.get(o.layer) {
            Some(layer) => format!("{} (layer {}, {})", o.evidence, o.layer, layer.digest),
            None => o.evidence.clone(),
        })
        .collect();
    let mut package = json!({
        "SPDXID": package_id(p.purl.as_str()),
        "name": p.name,
        "versionInfo": p.version,
        "supplier": "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "LIBRARY",
        "sourceInfo": format!("found by Stella in {} at {}", found_by(p.ty), found.join("; ")),
        "externalRefs": [purl_ref(p.purl.as_str())],
    });
    let mut notes = Vec::new();
    if let Some(a) = &p.arch {
        notes.push(format!("architecture {a}"));
    }
    if let Some(s) = &p.source {
        notes.push(format!("source package {s}"));
    }
    if !notes.is_empty() {
        package["comment"] = json!(notes.join("; "));
    }
    package
}

fn image_package(image: &Image, inv: &Inventory, name: &str) -> Value {
    let mut about = vec![format!("{} image", image.format.as_str())];
    if !image.config_digest.is_empty() {
        about.push(format!("config {}", image.config_digest));
    }
    for (i, l) in image.layers.iter().enumerate() {
        about.push(format!("layer {i} {} (diff id {})", l.digest, l.diff_id));
    }
    if let Some(d) = &inv.distro {
        about.push(match &d.version_id {
            Some(v) => format!("distribution {} {v}", d.id),
            None => format!("distribution {}", d.id),
        });
    }
    let mut package = json!({
        "SPDXID": IMAGE_ID,
        "name": name,
        "versionInfo": image.digest,
        "supplier": "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "comment": about.join("; "),
    });
    // A root filesystem's digest is Stella's own hash of its files, no checksum of
    // anything a user has.
    if image.format != ImageFormat::Rootfs {
        if let Some(hex) = image.digest.strip_prefix("sha256:") {
            package["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": hex }]);
        }
    }
    if let Some(purl) = image_purl(image) {
        package["externalRefs"] = json!([purl_ref(purl.as_str())]);
    }
    package
}

/// The SPDX 2.3 document for an image and what its analyzers found, created at
/// `created`.
pub fn document(image: &Image, inv: &Inventory, created: DateTime<Utc>) -> Value {
    let mut by_purl: BTreeMap<&str, Vec<&Package>> = BTreeMap::new();
    for p in &inv.packages {
        by_purl.entry(p.purl.as_str()).or_default().push(p);
    }
    let name = image
        .names
        .first()
        .map_or(image.digest.as_str(), String::as_str);
    let mut packages = vec![image_package(image, inv, name)];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": IMAGE_ID,
    })];
    for (purl, occurrences) in &by_purl {
        packages.push(package(occurrences, image));
        relationships.push(json!({
            "spdxElementId": IMAGE_ID,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": package_id(purl),
        }));
    }
    let version = env!("CARGO_PKG_VERSION");
    let digest = image.digest.replacen(':', "-", 1);
    json!({
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://stella.dev/spdx/images/{digest}/stella-{version}"),
        "creationInfo": {
            "created": crate::export::timestamp(created),
            "creators": [format!("Tool: Stella-{version}")],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::process::Command;

    use chrono::TimeZone;

    use super::*;
    use crate::image::archive::tests::oci_image;
    use crate::image::{analyze, cyclonedx};
    use crate::sbom::ComponentStatus;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn purls<'a>(it: impl Iterator<Item = &'a crate::sbom::Component>) -> BTreeSet<String> {
        it.filter_map(|c| c.purl.as_ref())
            .map(|p| p.as_str().to_owned())
            .collect()
    }

    #[test]
    fn package_ids_are_valid_spdx_ids_and_tell_purls_apart() {
        let a = package_id("pkg:npm/%40scope/a_b@1.0.0");
        let b = package_id("pkg:npm/%40scope/a~b@1.0.0");
        assert!(a.starts_with("SPDXRef-npm--40scope-a-b-1.0.0-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, package_id("pkg:npm/%40scope/a_b@1.0.0"));
        let deb = package_id("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12");
        let body = &deb["SPDXRef-".len()..];
        assert!(
            !body.is_empty()
                && body
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{deb}"
        );
    }

    #[test]
    fn image_purl_needs_a_manifest_digest_and_a_repository() {
        let (mut image, _) = oci_image();
        image.names = vec!["registry.example/team/app:1.2".into()];
        assert_eq!(
            image_purl(&image).unwrap().as_str(),
            format!(
                "pkg:oci/app@{}?repository_url=registry.example%2Fteam%2Fapp&tag=1.2",
                image.digest
            )
        );
        image.names = vec!["localhost:5000/app".into()];
        let purl = image_purl(&image).unwrap();
        assert_eq!(
            purl.qualifiers().get("repository_url").map(String::as_str),
            Some("localhost:5000/app")
        );
        assert_eq!(purl.qualifiers().get("tag"), None);
        // What `skopeo copy ... oci:DIR:latest` writes as the name: a tag, no repository.
        image.names = vec!["latest".into()];
        assert_eq!(image_purl(&image), None);
        image.names = vec!["team/app:1".into()];
        image.format = ImageFormat::DockerArchive;
        assert_eq!(
            image_purl(&image),
            None,
            "a docker image id is no manifest digest"
        );
    }

    #[test]
    fn document_reads_back_as_the_cyclonedx_inventory() {
        let (image, _) = oci_image();
        let inv = analyze(&image.rootfs);
        assert!(inv.packages.len() > 2, "{:?}", inv.packages);
        let doc = document(&image, &inv, at());
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert_eq!(
            bytes,
            serde_json::to_vec(&document(&image, &inv, at())).unwrap(),
            "same image, same bytes"
        );
        assert_eq!(doc["creationInfo"]["created"], "2026-01-02T03:04:05Z");
        let namespace = doc["documentNamespace"].as_str().unwrap();
        assert!(namespace.contains(&image.digest[7..]), "{namespace}");

        let spdx = crate::sbom::parse(&bytes).unwrap();
        assert_eq!(spdx.spec_version, "2.3");
        assert_eq!(spdx.describes, [IMAGE_ID]);
        assert_eq!(spdx.name.as_deref(), Some("stella/test:1"));
        let image_purl = image_purl(&image).unwrap();
        let mut want: BTreeSet<String> = inv.packages.iter().map(|p| p.purl.to_string()).collect();
        let ours = want.clone();
        want.insert(image_purl.as_str().to_owned());
        assert_eq!(purls(spdx.components.iter()), want);
        assert_eq!(spdx.components.len(), want.len(), "one package per purl");
        let image_component = spdx
            .components
            .iter()
            .find(|c| c.purl.as_ref() == Some(&image_purl))
            .unwrap();
        assert_eq!(
            image_component.status,
            ComponentStatus::UnsupportedEcosystem
        );

        // A scan matches the same components, at the same versions, as from CycloneDX.
        let cdx = serde_json::to_vec(&cyclonedx::document(&image, &inv)).unwrap();
        let cdx = crate::sbom::parse(&cdx).unwrap();
        let targets = |s: &crate::sbom::Sbom| -> BTreeSet<(String, Option<String>)> {
            s.scan_targets()
                .iter()
                .map(|c| {
                    (
                        c.purl.as_ref().unwrap().to_string(),
                        c.version_for_matching().map(str::to_owned),
                    )
                })
                .collect()
        };
        assert_eq!(targets(&spdx), targets(&cdx));
        assert!(
            purls(spdx.scan_targets().into_iter()).is_subset(&ours),
            "the image itself is not matched"
        );

        // Each package says where it was found.
        let packages = doc["packages"].as_array().unwrap();
        let scoped = packages
            .iter()
            .find(|p| p["name"] == "@scope/name")
            .unwrap();
        assert_eq!(
            scoped["sourceInfo"],
            format!(
                "found by Stella in npm package metadata at srv/app/node_modules/@scope/name/package.json (layer 1, {})",
                image.layers[1].digest
            )
        );
        assert_eq!(
            packages[0]["checksums"][0]["checksumValue"],
            &image.digest[7..]
        );
        let relationships = doc["relationships"].as_array().unwrap();
        assert_eq!(relationships.len(), 1 + ours.len());
        assert!(relationships[1..]
            .iter()
            .all(|r| r["spdxElementId"] == IMAGE_ID && r["relationshipType"] == "CONTAINS"));
    }

    /// `pyspdxtools` (spdx-tools), found as the export tests find it: beside the python
    /// `STELLA_TEST_DOCUMENTS_PYTHON` names (`ops/services.sh up` installs it there).
    /// Skipped without it, unless `STELLA_TEST_SERVICES` is set.
    fn pyspdxtools() -> Option<std::path::PathBuf> {
        const VAR: &str = "STELLA_TEST_DOCUMENTS_PYTHON";
        match std::env::var(VAR) {
            Ok(python) if !python.is_empty() => {
                Some(Path::new(&python).with_file_name("pyspdxtools"))
            }
            _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
                panic!("{VAR} must be set when STELLA_TEST_SERVICES is set")
            }
            _ => {
                eprintln!("skipping pyspdxtools: {VAR} is not set");
                None
            }
        }
    }

    #[test]
    fn pyspdxtools_finds_the_documents_valid() {
        let Some(tool) = pyspdxtools() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (image, _) = oci_image();
        let rootfs = Image::of_rootfs(image.rootfs.clone());
        for (name, image) in [("oci", &image), ("rootfs", &rootfs)] {
            let inv = analyze(&image.rootfs);
            let path = dir.path().join(format!("{name}.spdx.json"));
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(&document(image, &inv, at())).unwrap(),
            )
            .unwrap();
            let out = Command::new(&tool)
                .arg("-i")
                .arg(&path)
                .args(["--version", "SPDX-2.3"])
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
            assert!(
                out.status.success(),
                "pyspdxtools refused {name}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
