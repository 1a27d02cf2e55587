//! Real SBOMs (CycloneDX/bom-examples, the SPDX examples) and the CycloneDX
//! specification's own schema test documents, read from the shared data folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use stella_domain::sbom::{self, SbomSummary};
use stella_domain::{ComponentStatus, Ecosystem, PackageKey, Sbom, SbomFormat};

fn data(rel: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if dir.exists() {
        Some(dir)
    } else {
        println!("skipped: {} is absent", dir.display());
        None
    }
}

fn read(rel: &str) -> Option<Sbom> {
    let path = data(rel)?;
    let bytes = std::fs::read(&path).unwrap();
    Some(sbom::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Every component has a purl in a matched ecosystem: `declared` entries, `distinct`
/// after merging entries with the same purl.
fn all_matched(declared: usize, distinct: usize) -> SbomSummary {
    SbomSummary {
        declared,
        distinct,
        matched_ecosystem: distinct,
        subject: Some(ComponentStatus::MatchedEcosystem),
        ..SbomSummary::default()
    }
}

#[test]
fn every_real_sbom_parses_with_the_counts_python_finds() {
    // Counts checked with python3 -c 'import json ...': components (nested included),
    // and distinct purls.
    let expected = [
        (
            "cern-lhc-vdm-editor-e564943_bom.json",
            "1.2",
            all_matched(43, 43),
        ),
        ("dropwizard-1.3.15_bom.json", "1.2", all_matched(167, 167)),
        ("juice-shop_v11.1.2_bom.json", "1.2", all_matched(840, 840)),
        (
            "juice-shop_via_npm_flat_bom.1.4.json",
            "1.4",
            all_matched(1115, 978),
        ),
        ("keycloak-10.0.2_bom.json", "1.2", all_matched(903, 903)),
        ("laravel-7.12.0_bom.1.4.json", "1.4", all_matched(62, 62)),
        (
            "proton-bridge_proton-bridge-v1.6.3.bom.json",
            "1.2",
            all_matched(201, 201),
        ),
        (
            "proton-bridge_proton-bridge-v1.8.0.bom.json",
            "1.2",
            all_matched(201, 201),
        ),
        (
            "protonmail-webclient-v4-0912dff_bom.json",
            "1.2",
            all_matched(883, 883),
        ),
    ];
    let Some(dir) = data("sboms/cyclonedx") else {
        return;
    };
    let on_disk: Vec<String> = json_files(&dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let listed: Vec<String> = expected.iter().map(|(f, _, _)| (*f).to_owned()).collect();
    assert_eq!(
        on_disk, listed,
        "every CycloneDX SBOM in the folder is checked"
    );

    for (file, version, summary) in expected {
        let sbom = read(&format!("sboms/cyclonedx/{file}")).unwrap();
        println!("{file}: {:?}", sbom.summary());
        assert_eq!(sbom.format, SbomFormat::Cyclonedx, "{file}");
        assert_eq!(sbom.spec_version, version, "{file}");
        assert_eq!(sbom.summary(), summary, "{file}");
        // The subject is scanned when it has a purl of its own.
        assert_eq!(sbom.scan_targets().len(), summary.distinct + 1, "{file}");
    }
}

#[test]
fn juice_shop_flat_keeps_each_npm_package_once_with_every_place_it_is_installed() {
    let Some(sbom) = read("sboms/cyclonedx/juice-shop_via_npm_flat_bom.1.4.json") else {
        return;
    };
    assert_eq!(sbom.serial, None);
    assert_eq!(sbom.name.as_deref(), Some("juice-shop"));
    let subject = sbom.subject.as_ref().unwrap();
    assert_eq!(subject.refs, ["juice-shop@14.1.1"]);
    assert_eq!(
        subject.package_key,
        Some(PackageKey::new(Ecosystem::Npm, "juice-shop"))
    );

    let ansi = sbom
        .components
        .iter()
        .find(|c| c.purl.as_ref().map(|p| p.as_str()) == Some("pkg:npm/ansi-regex@5.0.1"))
        .unwrap();
    assert_eq!(
        ansi.refs,
        [
            "@mapbox/node-pre-gyp@1.0.10|ansi-regex@5.0.1",
            "node-gyp@8.4.1|ansi-regex@5.0.1",
            "replace@1.2.2|ansi-regex@5.0.1",
        ]
    );
    assert_eq!(ansi.paths.len(), 3);

    // Scoped packages: the purl spells the scope %40babel; the key is OSV's @babel/...
    let babel = &sbom.components[0];
    assert_eq!(
        babel.purl_raw.as_deref(),
        Some("pkg:npm/%40babel/helper-string-parser@7.19.4#packages/babel-helper-string-parser")
    );
    assert_eq!(babel.group.as_deref(), Some("@babel"));
    assert_eq!(
        babel.package_key,
        Some(PackageKey::new(
            Ecosystem::Npm,
            "@babel/helper-string-parser"
        ))
    );
    assert_eq!(
        babel.purl.as_ref().unwrap().without_version(),
        "pkg:npm/%40babel/helper-string-parser"
    );
}

#[test]
fn proton_bridge_go_modules_keep_the_case_of_their_paths() {
    let Some(sbom) = read("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json") else {
        return;
    };
    assert_eq!(
        sbom.serial.as_deref(),
        Some("urn:uuid:2392d49c-ea93-44e0-aa36-5923fcfb5efb")
    );
    assert!(sbom
        .components
        .iter()
        .all(|c| c.package_key.as_ref().unwrap().ecosystem == Ecosystem::Go));
    let toml = sbom
        .components
        .iter()
        .find(|c| c.name == "github.com/BurntSushi/toml")
        .unwrap();
    assert_eq!(toml.version.as_deref(), Some("v0.3.1"));
    assert_eq!(
        toml.package_key,
        Some(PackageKey::new(Ecosystem::Go, "github.com/BurntSushi/toml"))
    );
    // Major-version suffixes are part of the module path.
    assert!(sbom.components.iter().any(|c| c.package_key
        == Some(PackageKey::new(
            Ecosystem::Go,
            "github.com/Masterminds/semver/v3"
        ))));
    assert_eq!(
        sbom.subject.unwrap().purl.unwrap().as_str(),
        "pkg:golang/github.com/ProtonMail/proton-bridge@v1.6.3"
    );
}

#[test]
fn maven_and_composer_keys_follow_osv() {
    if let Some(sbom) = read("sboms/cyclonedx/dropwizard-1.3.15_bom.json") {
        let key = sbom.components[0].package_key.clone().unwrap();
        assert_eq!(key.ecosystem, Ecosystem::Maven);
        assert!(key.name.contains(':'), "{key:?}");
        assert!(sbom.components.iter().any(|c| c.package_key
            == Some(PackageKey::new(
                Ecosystem::Maven,
                "com.fasterxml.jackson.core:jackson-databind"
            ))));
    }
    if let Some(sbom) = read("sboms/cyclonedx/laravel-7.12.0_bom.1.4.json") {
        assert!(sbom
            .components
            .iter()
            .any(|c| c.package_key
                == Some(PackageKey::new(Ecosystem::Packagist, "laravel/framework"))));
    }
}

#[test]
fn the_spdx_examples_keep_packages_without_purls() {
    for (file, version) in [
        ("SPDXJSONExample-v2.2.spdx.json", "2.2"),
        ("SPDXJSONExample-v2.3.spdx.json", "2.3"),
    ] {
        let Some(sbom) = read(&format!("sboms/spdx/{file}")) else {
            return;
        };
        println!("{file}: {:?}", sbom.summary());
        assert_eq!(sbom.format, SbomFormat::Spdx);
        assert_eq!(sbom.spec_version, version);
        assert_eq!(
            sbom.serial.as_deref(),
            Some("http://spdx.org/spdxdocs/spdx-example-444504E0-4F89-41D3-9A0C-0305E82C3301")
        );
        assert_eq!(sbom.name.as_deref(), Some("SPDX-Tools-v2.0"));
        assert_eq!(sbom.describes, ["SPDXRef-File", "SPDXRef-Package"]);
        assert_eq!(
            sbom.summary(),
            SbomSummary {
                declared: 4,
                distinct: 4,
                matched_ecosystem: 1,
                no_purl: 3,
                ..SbomSummary::default()
            }
        );
        let names: Vec<&str> = sbom.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["glibc", "Apache Commons Lang", "Jena", "Saxon"]);
        let jena = &sbom.components[2];
        assert_eq!(jena.refs, ["SPDXRef-fromDoap-0"]);
        assert_eq!(jena.version.as_deref(), Some("3.12.0"));
        assert_eq!(
            jena.package_key,
            Some(PackageKey::new(
                Ecosystem::Maven,
                "org.apache.jena:apache-jena"
            ))
        );
        assert_eq!(sbom.scan_targets().len(), 1);
    }
}

#[test]
fn every_valid_cyclonedx_schema_test_document_parses() {
    let mut total = 0;
    for version in ["1.2", "1.3", "1.4", "1.5", "1.6"] {
        let Some(dir) = data(&format!("cyclonedx-schema-tests/{version}")) else {
            return;
        };
        for path in json_files(&dir) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("valid-") {
                continue;
            }
            let sbom = sbom::parse(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{version}/{name}: {e}"));
            assert_eq!(sbom.spec_version, version, "{name}");
            total += 1;
        }
    }
    assert_eq!(total, 21 + 26 + 29 + 36 + 45);
}

/// The invalid documents a strict schema validator rejects; this reader rejects those
/// that change the inventory (see `sbom::cyclonedx`) and reads the rest, never panicking.
#[test]
fn invalid_cyclonedx_schema_test_documents_are_rejected_where_they_change_the_inventory() {
    let mut rejected = Vec::new();
    let mut read_anyway = Vec::new();
    for version in ["1.2", "1.3", "1.4", "1.5", "1.6"] {
        let Some(dir) = data(&format!("cyclonedx-schema-tests/{version}")) else {
            return;
        };
        for path in json_files(&dir) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.contains("invalid-") {
                continue;
            }
            let kind = name
                .trim_start_matches("skip_")
                .trim_end_matches(&format!("-{version}.json"))
                .to_owned();
            match sbom::parse(&std::fs::read(&path).unwrap()) {
                Err(e) => rejected.push(format!("{version}/{kind} at {:?}", e.pointer)),
                Ok(_) => read_anyway.push(format!("{version}/{kind}")),
            }
        }
    }
    println!("rejected {}: {rejected:#?}", rejected.len());
    println!("read anyway {}: {read_anyway:#?}", read_anyway.len());
    for kind in [
        "invalid-bomformat",
        "invalid-component-type",
        "invalid-missing-component-type",
        "invalid-empty-component",
        "invalid-serialnumber",
        "invalid-scope",
        "invalid-component-ref",
    ] {
        for version in ["1.2", "1.3", "1.4", "1.5", "1.6"] {
            let id = format!("{version}/{kind}");
            assert!(
                !read_anyway.contains(&id),
                "{id} should be rejected; rejected: {rejected:?}"
            );
        }
    }
    assert!(rejected
        .iter()
        .any(|r| r.starts_with("1.6/invalid-component-ref at \"/components/1/bom-ref\"")));
    assert!(rejected
        .iter()
        .any(|r| r.starts_with("1.6/invalid-dependency at \"/dependencies/0/ref\"")));
}
