//! Small SBOM documents written here: what a malformed one is answered with (the JSON
//! pointer a user fixes), and how components are classified, flattened and merged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use stella_domain::sbom::{self, SbomSummary};
use stella_domain::{ComponentStatus, Ecosystem, InputError, PackageKey, Sbom};

fn parse(doc: &serde_json::Value) -> Result<Sbom, InputError> {
    sbom::parse(&serde_json::to_vec(doc).unwrap())
}

fn pointer(doc: &serde_json::Value) -> String {
    parse(doc).unwrap_err().pointer
}

fn cdx(components: serde_json::Value) -> serde_json::Value {
    json!({ "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": components })
}

fn lib(name: &str, purl: Option<&str>) -> serde_json::Value {
    let mut c = json!({ "type": "library", "name": name, "version": "1.0.0" });
    if let Some(p) = purl {
        c["purl"] = json!(p);
    }
    c
}

fn spdx(packages: serde_json::Value) -> serde_json::Value {
    json!({
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "example",
        "documentNamespace": "https://example.com/spdx/1",
        "dataLicense": "CC0-1.0",
        "packages": packages,
    })
}

#[test]
fn text_that_is_not_json_is_rejected_with_its_line_and_column() {
    let err = sbom::parse(b"{\n  \"bomFormat\": \"CycloneDX\",\n  oops\n}").unwrap_err();
    assert_eq!(err.pointer, "");
    assert!(err.message.contains("line 3 column 3"), "{}", err.message);
    assert_eq!(sbom::parse(b"").unwrap_err().pointer, "");
    assert_eq!(pointer(&json!([1, 2])), "");
    assert_eq!(pointer(&json!("CycloneDX")), "");
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend(serde_json::to_vec(&cdx(json!([]))).unwrap());
    assert!(sbom::parse(&with_bom).is_ok());
}

#[test]
fn a_document_of_no_known_format_points_at_bom_format() {
    assert_eq!(pointer(&json!({ "components": [] })), "/bomFormat");
    assert_eq!(
        pointer(&json!({ "bomFormat": "AnotherFormat", "specVersion": "1.6" })),
        "/bomFormat"
    );
    assert_eq!(pointer(&json!({ "bomFormat": 1 })), "/bomFormat");
    assert_eq!(
        pointer(&json!({ "spdxVersion": "SPDX-3.0" })),
        "/spdxVersion"
    );
    assert_eq!(pointer(&json!({ "spdxVersion": 2.3 })), "/spdxVersion");
}

#[test]
fn cyclonedx_errors_point_at_the_first_bad_value() {
    let mut doc = cdx(json!([
        lib("a", Some("pkg:npm/a@1")),
        lib("b", None),
        lib("c", None),
        { "type": "library", "name": "d", "purl": 42 },
    ]));
    let err = parse(&doc).unwrap_err();
    assert_eq!(err.pointer, "/components/3/purl");
    assert!(err.message.contains("expected a string"), "{}", err.message);

    doc["components"][3]["purl"] = json!("pkg:npm/d@1");
    doc["components"][1]["components"] = json!([lib("b1", None), { "type": "library" }]);
    assert_eq!(pointer(&doc), "/components/1/components/1/name");

    let no_type = cdx(json!([{ "name": "x" }]));
    assert_eq!(pointer(&no_type), "/components/0/type");
    let bad_type = cdx(json!([{ "type": "gadget", "name": "x" }]));
    assert_eq!(pointer(&bad_type), "/components/0/type");

    let mut v = cdx(json!([]));
    v["specVersion"] = json!("1.7");
    assert_eq!(pointer(&v), "/specVersion");
    v["specVersion"] = json!(1.4);
    assert_eq!(pointer(&v), "/specVersion");
    v.as_object_mut().unwrap().remove("specVersion");
    assert_eq!(pointer(&v), "/specVersion");

    let mut serial = cdx(json!([]));
    serial["serialNumber"] = json!("urn:uuid:3e671687-395b-41f5-a30f");
    assert_eq!(pointer(&serial), "/serialNumber");

    let mut meta = cdx(json!([]));
    meta["metadata"] =
        json!({ "component": { "type": "application", "name": "app", "bom-ref": "x" } });
    meta["components"] = json!([{ "type": "library", "name": "lib", "bom-ref": "x" }]);
    assert_eq!(pointer(&meta), "/components/0/bom-ref");
}

#[test]
fn spdx_errors_point_at_the_first_bad_value() {
    let mut doc = spdx(json!([
        { "SPDXID": "SPDXRef-a", "name": "a" },
        { "SPDXID": "SPDXRef-b", "name": "b", "externalRefs": [
            { "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": 5 }
        ] },
    ]));
    assert_eq!(pointer(&doc), "/packages/1/externalRefs/0/referenceLocator");
    doc["packages"][1]["externalRefs"][0] =
        json!({ "referenceType": "purl", "referenceLocator": "pkg:npm/b@1" });
    assert_eq!(
        pointer(&doc),
        "/packages/1/externalRefs/0/referenceCategory"
    );
    doc["packages"][1] = json!({ "name": "b" });
    assert_eq!(pointer(&doc), "/packages/1/SPDXID");
    doc["packages"][1] = json!({ "SPDXID": "b", "name": "b" });
    assert_eq!(pointer(&doc), "/packages/1/SPDXID");

    let mut no_ns = spdx(json!([]));
    no_ns.as_object_mut().unwrap().remove("documentNamespace");
    assert_eq!(pointer(&no_ns), "/documentNamespace");
    let not_a_list = spdx(json!({ "SPDXID": "SPDXRef-a" }));
    assert_eq!(pointer(&not_a_list), "/packages");
}

#[test]
fn components_that_cannot_be_matched_are_kept_and_counted() {
    let sbom = parse(&cdx(json!([
        lib("left-pad", Some("pkg:npm/left-pad@1.3.0")),
        lib("vendored", None),
        lib("empty", Some("")),
        lib("broken", Some("npm/left-pad@1.3.0")),
        lib("absl-py", Some("pkg:conda/absl-py@0.4.1")),
        lib("wolfi-ssl", Some("pkg:apk/wolfi/openssl@3.0.2-r0")),
    ])))
    .unwrap();
    let statuses: Vec<ComponentStatus> = sbom.components.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            ComponentStatus::MatchedEcosystem,
            ComponentStatus::NoPurl,
            ComponentStatus::NoPurl,
            ComponentStatus::InvalidPurl,
            ComponentStatus::UnsupportedEcosystem,
            ComponentStatus::UnsupportedEcosystem,
        ]
    );
    let broken = &sbom.components[3];
    assert_eq!(broken.purl_raw.as_deref(), Some("npm/left-pad@1.3.0"));
    assert!(broken.purl.is_none() && broken.package_key.is_none());
    assert!(broken.purl_error.as_deref().unwrap().contains("scheme"));
    assert_eq!(
        sbom.summary(),
        SbomSummary {
            declared: 6,
            distinct: 6,
            matched_ecosystem: 1,
            no_purl: 2,
            invalid_purl: 1,
            unsupported_ecosystem: 2,
            subject: None,
        }
    );
    let targets: Vec<&str> = sbom
        .scan_targets()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(targets, ["left-pad"]);
    assert_eq!(
        serde_json::to_value(sbom.components[4].status).unwrap(),
        json!("unsupported-ecosystem")
    );
}

#[test]
fn nested_components_are_flattened_and_duplicates_merged_by_canonical_purl() {
    let mut doc = cdx(json!([
        { "type": "framework", "name": "outer", "bom-ref": "outer", "purl": "pkg:npm/%40scope/outer@2.0.0",
          "components": [
            { "type": "library", "name": "inner", "bom-ref": "inner-1", "purl": "pkg:npm/inner@1.0.0" },
          ] },
        { "type": "library", "name": "inner", "bom-ref": "inner-2", "purl": "pkg:npm/inner@1.0.0?" },
        { "type": "library", "name": "outer", "bom-ref": "outer-again", "purl": "pkg:npm/@scope/outer@2.0.0" },
        { "type": "library", "name": "inner", "bom-ref": "inner-3", "purl": "pkg:npm/inner@1.0.1" },
    ]));
    doc["metadata"] = json!({ "component": {
        "type": "application", "name": "app", "bom-ref": "app", "purl": "pkg:npm/inner@1.0.1",
        "components": [ { "type": "library", "name": "plugin", "bom-ref": "plugin" } ],
    } });
    let sbom = parse(&doc).unwrap();
    assert_eq!(sbom.name.as_deref(), Some("app"));

    let listed: Vec<(&str, Vec<&str>, Vec<&str>)> = sbom
        .components
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.refs.iter().map(String::as_str).collect(),
                c.paths.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "plugin",
                vec!["plugin"],
                vec!["/metadata/component/components/0"]
            ),
            (
                "outer",
                vec!["outer", "outer-again"],
                vec!["/components/0", "/components/2"]
            ),
            (
                "inner",
                vec!["inner-1", "inner-2"],
                vec!["/components/0/components/0", "/components/1"]
            ),
            ("inner", vec!["inner-3"], vec!["/components/3"]),
        ]
    );
    assert_eq!(
        sbom.components[1].package_key,
        Some(PackageKey::new(Ecosystem::Npm, "@scope/outer"))
    );
    let summary = sbom.summary();
    assert_eq!((summary.declared, summary.distinct), (6, 4));
    assert_eq!(summary.subject, Some(ComponentStatus::MatchedEcosystem));
    // The subject's purl is also a component's: it is matched once.
    let targets: Vec<&str> = sbom
        .scan_targets()
        .iter()
        .map(|c| c.refs[0].as_str())
        .collect();
    assert_eq!(targets, ["outer", "inner-1", "inner-3"]);
}

#[test]
fn spdx_purls_come_from_package_manager_references_and_described_packages_stay() {
    let mut doc = spdx(json!([
        { "SPDXID": "SPDXRef-app", "name": "app", "versionInfo": "1.0", "externalRefs": [
            { "referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": "cpe:2.3:a:x:app:1.0:*:*:*:*:*:*:*" },
            { "referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl", "referenceLocator": "pkg:pypi/My_App@1.0" },
        ] },
        { "SPDXID": "SPDXRef-two", "name": "two", "externalRefs": [
            { "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "not a purl" },
            { "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:cargo/serde@1.0.0" },
        ] },
        { "SPDXID": "SPDXRef-bad", "name": "bad", "externalRefs": [
            { "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:/" },
        ] },
    ]));
    doc["relationships"] = json!([
        { "spdxElementId": "SPDXRef-DOCUMENT", "relatedSpdxElement": "SPDXRef-app", "relationshipType": "DESCRIBES" },
        { "spdxElementId": "SPDXRef-app", "relatedSpdxElement": "SPDXRef-two", "relationshipType": "DEPENDS_ON" },
    ]);
    let sbom = parse(&doc).unwrap();
    assert_eq!(sbom.spec_version, "2.3");
    assert_eq!(sbom.describes, ["SPDXRef-app"]);
    assert!(sbom.subject.is_none());
    let keys: Vec<Option<PackageKey>> = sbom
        .components
        .iter()
        .map(|c| c.package_key.clone())
        .collect();
    assert_eq!(
        keys,
        [
            Some(PackageKey::new(Ecosystem::PyPI, "my-app")),
            Some(PackageKey::new(Ecosystem::CratesIo, "serde")),
            None,
        ]
    );
    assert_eq!(sbom.components[0].version_for_matching(), Some("1.0"));
    assert_eq!(sbom.components[1].version_for_matching(), Some("1.0.0"));
    assert_eq!(sbom.components[2].status, ComponentStatus::InvalidPurl);
    assert_eq!(sbom.components[2].purl_raw.as_deref(), Some("pkg:/"));
}

#[test]
fn a_deeply_nested_document_is_an_error_not_a_crash() {
    let mut component = json!({ "type": "library", "name": "leaf" });
    for i in 0..300 {
        component =
            json!({ "type": "library", "name": format!("n{i}"), "components": [component] });
    }
    let text = serde_json::to_string(&cdx(json!([component]))).unwrap();
    assert!(sbom::parse(text.as_bytes()).is_err());
}
