//! Whole scans on the real data: every SBOM against the Go and PyPI advisory databases,
//! and proton-bridge 1.6.3's findings against an independent oracle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use stella_domain::osv::{parse_record, split_collection, Advisory, Affected, Limits};
use stella_domain::policy::{Disposition, Policy, DEFAULT_POLICY};
use stella_domain::scan::{self, AdvisoryIndex, SbomContext, ScanComponent, ScanInputs};
use stella_domain::{sbom, vex};

fn data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: {} not found", dir.display());
        None
    }
}

fn advisories(dir: &std::path::Path, file: &str) -> Vec<Advisory> {
    let bytes = std::fs::read(dir.join("advisories").join(file)).unwrap();
    split_collection(&bytes, Limits::default())
        .unwrap()
        .iter()
        .map(|entry| parse_record(&entry.bytes).unwrap())
        .collect()
}

fn is_affected(version: &str, affected: &Affected) -> bool {
    // A version that does not parse in the ecosystem cannot be placed in a range.
    affected.is_affected(version).unwrap_or(false)
}

fn compare(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    vex::generic_compare(a, b)
}

#[test]
fn proton_bridge_1_6_3_findings_match_the_independent_oracle() {
    let Some(dir) = data() else { return };
    let index = AdvisoryIndex::build(advisories(&dir, "Go-all.zip"));
    let bytes =
        std::fs::read(dir.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"))
            .unwrap();
    let parsed = sbom::parse(&bytes).unwrap();
    let components = ScanComponent::all_of(&parsed);
    // 201 Go modules and the bridge itself (the subject has a purl).
    assert_eq!(components.len(), 202);
    let policy = Policy::parse(DEFAULT_POLICY).unwrap();
    let context = SbomContext::of(&parsed);
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let inputs = ScanInputs {
        components: &components,
        sbom: &context,
        index: &index,
        vex: &[],
        policy: &policy,
        pack: None,
        at,
    };
    let verdict = scan::evaluate(&inputs, &is_affected, &compare);

    let got: BTreeSet<(String, String)> = verdict
        .findings
        .iter()
        .map(|f| {
            let module = f.purl.trim_start_matches("pkg:golang/");
            let (name, version) = module.split_once('@').unwrap();
            (f.vulnerability_id.clone(), format!("{name} {version}"))
        })
        .collect();
    let oracle = include_str!("data/proton-bridge-1.6.3-go-findings.txt");
    let expected: BTreeSet<(String, String)> = oracle
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let id = parts.next().unwrap().to_owned();
            (id, parts.collect::<Vec<_>>().join(" "))
        })
        .collect();
    assert_eq!(expected.len(), 58);
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );

    // The ones checked by hand are there with their component.
    for (id, module) in [
        ("GO-2022-1031", "github.com/labstack/echo/v4 v4.1.11"),
        ("GO-2023-1737", "github.com/gin-gonic/gin v1.4.0"),
        ("GO-2025-4188", "github.com/sirupsen/logrus v1.7.0"),
    ] {
        assert!(got.contains(&(id.to_owned(), module.to_owned())), "{id}");
    }
    assert_eq!(verdict.counts.findings, 58);
    // The Go database gives no CVSS vectors or severity labels: every finding applies at
    // unknown severity, which the default policy warns about.
    assert_eq!(
        verdict.disposition,
        Disposition::Warn,
        "{:?}",
        verdict.counts
    );
    assert_eq!(verdict.counts.warn, 58);
    for finding in &verdict.findings {
        assert!(!finding.trace.is_empty());
        assert!(finding.trace[0].by.starts_with("rule:") || finding.trace[0].by == "default");
    }

    // Deterministic: the same inputs give the same bytes.
    let again = scan::evaluate(&inputs, &is_affected, &compare);
    assert_eq!(
        serde_json::to_vec(&verdict).unwrap(),
        serde_json::to_vec(&again).unwrap()
    );
}

#[test]
fn every_sbom_scans_against_both_databases() {
    let Some(dir) = data() else { return };
    let mut all = advisories(&dir, "Go-all.zip");
    all.extend(advisories(&dir, "PyPI-all.zip"));
    let index = AdvisoryIndex::build(all);
    let policy = Policy::parse(DEFAULT_POLICY).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut scanned = 0;
    for folder in ["sboms/cyclonedx", "sboms/spdx"] {
        for entry in std::fs::read_dir(dir.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = sbom::parse(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            let components = ScanComponent::all_of(&parsed);
            let context = SbomContext::of(&parsed);
            let verdict = scan::evaluate(
                &ScanInputs {
                    components: &components,
                    sbom: &context,
                    index: &index,
                    vex: &[],
                    policy: &policy,
                    pack: None,
                    at,
                },
                &is_affected,
                &compare,
            );
            assert_eq!(verdict.counts.components, components.len());
            // The consuming conversion the server uses gives the same components.
            assert_eq!(ScanComponent::all_from(parsed.clone()), components);
            // Findings come in the verdict's order: (purl, id, bom-refs, summary).
            let keys: Vec<_> = verdict
                .findings
                .iter()
                .map(|f| (&f.purl, &f.vulnerability_id, &f.bom_refs, &f.summary))
                .collect();
            assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{}", path.display());
            // Every real SBOM's findings fit in its attestation whole.
            let sealed = scan::SealedVerdict::of(&verdict).unwrap();
            assert_eq!(sealed.findings, verdict.findings, "{}", path.display());
            assert_eq!(sealed.findings_omitted, 0);
            assert_eq!(
                verdict.counts.findings,
                verdict.counts.pass + verdict.counts.warn + verdict.counts.block
            );
            println!(
                "{}: {} components, {} findings, {:?}",
                path.file_name().unwrap().to_string_lossy(),
                components.len(),
                verdict.counts.findings,
                verdict.disposition
            );
            scanned += 1;
        }
    }
    assert!(scanned >= 11, "{scanned} SBOMs");
}
