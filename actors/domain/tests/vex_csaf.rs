//! CSAF 2.0 VEX against real scans: the CISA-style use cases (not affected, fixed, under
//! investigation, multiple statuses, version ranges) change proton-bridge 1.6.3's verdict
//! against the Go vulnerability database exactly as their OpenVEX and CycloneDX
//! counterparts do, the explain trace names the CSAF document and product, and every CSAF
//! document used (the OASIS examples as published and the ones derived here) is valid
//! under the CSAF 2.0 JSON schema before it is parsed.
//!
//! The schema check runs the Python `jsonschema` of `$STELLA_TEST_EXPORT_PYTHON` (set by
//! `ops/services.sh up`): required with the services, else skipped with a message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use stella_domain::lattice::{Question, K4};
use stella_domain::osv::{parse_record, split_collection, Advisory, Affected, Limits};
use stella_domain::policy::{Disposition, Policy, DEFAULT_POLICY};
use stella_domain::scan::{self, AdvisoryIndex, SbomContext, ScanComponent, ScanInputs, Verdict};
use stella_domain::vex::{self, VexStatement};
use stella_domain::{sbom, vex::VexFormat};

fn data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: {} not found", dir.display());
        None
    }
}

/// The Python with `jsonschema`, or `None` (skip) without the services.
fn schema_python() -> Option<String> {
    match std::env::var("STELLA_TEST_EXPORT_PYTHON") {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!("STELLA_TEST_EXPORT_PYTHON must be set when STELLA_TEST_SERVICES is set")
        }
        _ => {
            eprintln!("skipping the CSAF schema check: STELLA_TEST_EXPORT_PYTHON is not set");
            None
        }
    }
}

/// The CSAF 2.0 schema's complaints about each document (an empty list when valid), with
/// the FIRST CVSS schemas it references loaded from the data folder (offline).
fn schema_errors(csaf_dir: &Path, documents: &[Value]) -> Option<Vec<Vec<String>>> {
    const CHECK: &str = r#"
import json, sys, pathlib, jsonschema, referencing
base = pathlib.Path(sys.argv[1])
schema = json.loads((base / "csaf_json_schema.json").read_text())
resources = []
for v in ("2.0", "3.0", "3.1"):
    contents = json.loads((base / "referenced_schema/first" / f"cvss-v{v}.json").read_text())
    resources.append((f"https://www.first.org/cvss/cvss-v{v}.json", referencing.Resource.from_contents(contents)))
registry = referencing.Registry().with_resources(resources)
validator = jsonschema.Draft202012Validator(schema, registry=registry,
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
documents = json.load(sys.stdin)
print(json.dumps([["/" + "/".join(str(p) for p in e.absolute_path) + ": " + e.message[:300]
    for e in validator.iter_errors(d)] for d in documents]))
"#;
    let python = schema_python()?;
    let mut child = std::process::Command::new(python)
        .args(["-c", CHECK])
        .arg(csaf_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        Value::from(documents.to_vec()).to_string().as_bytes(),
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the schema check did not run");
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

/// Asserts every document is valid under the CSAF 2.0 schema (when the check can run).
fn assert_schema_valid(csaf_dir: &Path, documents: &[(&str, Value)]) {
    let values: Vec<Value> = documents.iter().map(|(_, d)| d.clone()).collect();
    let Some(errors) = schema_errors(csaf_dir, &values) else {
        return;
    };
    for ((name, _), errors) in documents.iter().zip(errors) {
        assert!(
            errors.is_empty(),
            "{name} is not valid CSAF 2.0: {errors:#?}"
        );
    }
}

/// proton-bridge 1.6.3 against the Go database.
struct Scene {
    index: AdvisoryIndex,
    components: Vec<ScanComponent>,
    context: SbomContext,
    policy: Policy,
}

impl Scene {
    fn load(dir: &Path) -> Self {
        let bytes = std::fs::read(dir.join("advisories/Go-all.zip")).unwrap();
        let advisories: Vec<Advisory> = split_collection(&bytes, Limits::default())
            .unwrap()
            .iter()
            .map(|entry| parse_record(&entry.bytes).unwrap())
            .collect();
        let bytes =
            std::fs::read(dir.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"))
                .unwrap();
        let parsed = sbom::parse(&bytes).unwrap();
        Scene {
            index: AdvisoryIndex::build(advisories),
            components: ScanComponent::all_of(&parsed),
            context: SbomContext::of(&parsed),
            policy: Policy::parse(DEFAULT_POLICY).unwrap(),
        }
    }

    fn scan(&self, document: Option<&[u8]>) -> Verdict {
        self.scan_all(document.as_slice())
    }

    /// A scan reading several VEX documents, each with its own evidence digest.
    fn scan_all(&self, documents: &[&[u8]]) -> Verdict {
        let vex: Vec<(VexStatement, String)> = documents
            .iter()
            .enumerate()
            .flat_map(|(i, bytes)| {
                vex::parse(bytes).unwrap().into_iter().map(move |s| {
                    let evidence = format!("vex:sha256:{:064x}#{}", i, s.pointer);
                    (s, evidence)
                })
            })
            .collect();
        let inputs = ScanInputs {
            components: &self.components,
            sbom: &self.context,
            index: &self.index,
            vex: &vex,
            policy: &self.policy,
            pack: None,
            at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        };
        scan::evaluate(&inputs, &is_affected, &vex::generic_compare)
    }

    /// The package purl (no version) and version of the module named `name`.
    fn component(&self, name: &str) -> (String, String) {
        let c = self
            .components
            .iter()
            .find(|c| c.package.name == name)
            .unwrap();
        (c.package_purl.clone(), c.version.clone().unwrap())
    }
}

fn is_affected(version: &str, affected: &Affected) -> bool {
    affected.is_affected(version).unwrap_or(false)
}

/// A finding's (vulnerability id, purl) → its K4 values and its disposition.
type Outcome = BTreeMap<(String, String), (Vec<(Question, K4)>, Disposition)>;

/// What a user reads of a verdict: per finding, the K4 values and the disposition.
fn outcome(verdict: &Verdict) -> Outcome {
    verdict
        .findings
        .iter()
        .map(|f| {
            (
                (f.vulnerability_id.clone(), f.purl.clone()),
                (
                    Question::ALL
                        .into_iter()
                        .map(|q| (q, f.assessment.get(q)))
                        .collect(),
                    f.disposition,
                ),
            )
        })
        .collect()
}

fn finding<'a>(verdict: &'a Verdict, id: &str) -> &'a scan::Finding {
    verdict
        .findings
        .iter()
        .find(|f| f.vulnerability_id == id)
        .unwrap()
}

/// One VEX statement as each format writes it.
#[derive(Clone)]
struct Said<'a> {
    cve: &'a str,
    /// `known_not_affected`, `known_affected`, `fixed`, `under_investigation`.
    status: &'a str,
    /// Exact version, or a `vers:` range.
    version: &'a str,
}

fn csaf_document(title: &str, purl: &str, said: &[Said<'_>]) -> Value {
    let mut branches = Vec::new();
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    for s in said {
        if ids.contains_key(s.version) {
            continue;
        }
        let id = format!("CSAFPID-{:04}", ids.len() + 1);
        let category = if s.version.starts_with("vers:") {
            "product_version_range"
        } else {
            "product_version"
        };
        branches.push(json!({"category": category, "name": s.version, "product": {
            "name": format!("echo {}", s.version), "product_id": id,
            "product_identification_helper": {"purl": purl}}}));
        ids.insert(s.version, id);
    }
    let mut by_cve: BTreeMap<&str, Vec<&Said<'_>>> = BTreeMap::new();
    for s in said {
        by_cve.entry(s.cve).or_default().push(s);
    }
    let vulnerabilities: Vec<Value> = by_cve
        .into_iter()
        .map(|(cve, said)| {
            let mut status: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            let mut flags = Vec::new();
            for s in &said {
                status.entry(s.status).or_default().push(&ids[s.version]);
                if s.status == "known_not_affected" {
                    flags.push(json!({"label": "vulnerable_code_not_in_execute_path",
                        "product_ids": [ids[s.version]]}));
                }
            }
            let mut v = json!({"cve": cve, "product_status": status});
            if !flags.is_empty() {
                v["flags"] = flags.into();
            }
            v
        })
        .collect();
    json!({
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "publisher": {"category": "vendor", "name": "Example Company ProductCERT",
                          "namespace": "https://psirt.example.com"},
            "title": title,
            "tracking": {
                "id": "EXAMPLE-VEX-1", "version": "2", "status": "final",
                "current_release_date": "2026-10-01T00:00:00Z",
                "initial_release_date": "2026-09-01T00:00:00Z",
                "revision_history": [
                    {"date": "2026-09-01T00:00:00Z", "number": "1", "summary": "Initial version."},
                    {"date": "2026-10-01T00:00:00Z", "number": "2", "summary": "Statuses updated."}]
            }
        },
        "product_tree": {"branches": [{"category": "vendor", "name": "labstack",
            "branches": [{"category": "product_name", "name": "echo", "branches": branches}]}]},
        "vulnerabilities": vulnerabilities
    })
}

/// The OpenVEX counterpart (exact versions only: OpenVEX has no ranges).
fn openvex_document(purl: &str, said: &[Said<'_>]) -> Value {
    let statements: Vec<Value> = said
        .iter()
        .map(|s| {
            let status = match s.status {
                "known_not_affected" => "not_affected",
                "known_affected" => "affected",
                other => other,
            };
            let mut statement = json!({"vulnerability": {"name": s.cve},
                "products": [{"@id": format!("{purl}@{}", s.version)}], "status": status});
            if status == "not_affected" {
                statement["justification"] = "vulnerable_code_not_in_execute_path".into();
            }
            statement
        })
        .collect();
    json!({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1",
           "author": "Example Company ProductCERT", "timestamp": "2026-10-01T00:00:00Z",
           "version": 2, "statements": statements})
}

/// The CycloneDX counterpart.
fn cyclonedx_document(purl: &str, said: &[Said<'_>]) -> Value {
    let vulnerabilities: Vec<Value> = said
        .iter()
        .map(|s| {
            let analysis = match s.status {
                "known_not_affected" => {
                    json!({"state": "not_affected", "justification": "code_not_reachable"})
                }
                "known_affected" => json!({"state": "exploitable"}),
                "fixed" => json!({"state": "resolved"}),
                _ => json!({"state": "in_triage"}),
            };
            let version = if s.version.starts_with("vers:") {
                json!({"range": s.version})
            } else {
                json!({"version": s.version})
            };
            json!({"id": s.cve, "analysis": analysis,
                   "affects": [{"ref": purl, "versions": [version]}]})
        })
        .collect();
    json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
           "metadata": {"timestamp": "2026-10-01T00:00:00Z"},
           "vulnerabilities": vulnerabilities})
}

fn bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[test]
fn the_oasis_examples_are_valid_csaf_and_read() {
    let Some(dir) = data() else { return };
    let csaf_dir = dir.join("vex/csaf");
    let mut documents = Vec::new();
    for entry in std::fs::read_dir(&csaf_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "json") && !name.contains("schema") {
            documents.push((
                name,
                serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()).unwrap(),
            ));
        }
    }
    assert_eq!(documents.len(), 13);
    let named: Vec<(&str, Value)> = documents
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    assert_schema_valid(&csaf_dir, &named);
    for (name, document) in &documents {
        let (format, statements) = vex::parse_format(&bytes(document), None).unwrap();
        assert_eq!(format, VexFormat::Csaf, "{name}");
        assert!(!statements.is_empty(), "{name}");
    }
}

#[test]
fn csaf_use_cases_change_a_real_verdict_as_openvex_and_cyclonedx_do() {
    let Some(dir) = data() else { return };
    let csaf_dir = dir.join("vex/csaf");
    let scene = Scene::load(&dir);
    let baseline = scene.scan(None);
    let (echo, echo_version) = scene.component("github.com/labstack/echo/v4");
    assert_eq!(echo_version, "v4.1.11");
    // GO-2022-1031 is CVE-2022-40083 on echo v4.1.11; x/net has many findings.
    let (net, net_version) = scene.component("golang.org/x/net");
    let net_cves: Vec<String> = baseline
        .findings
        .iter()
        .filter(|f| f.purl.starts_with(&format!("{net}@")))
        .filter_map(|f| f.aliases.iter().find(|a| a.starts_with("CVE-")).cloned())
        .take(4)
        .collect();
    assert_eq!(net_cves.len(), 4);
    let echo_cve = "CVE-2022-40083";
    assert_eq!(
        finding(&baseline, "GO-2022-1031").disposition,
        Disposition::Warn,
        "without VEX an applicable finding of unknown severity warns"
    );

    let single = |status| {
        vec![Said {
            cve: echo_cve,
            status,
            version: &echo_version,
        }]
    };
    let cases: Vec<(&str, &str, Vec<Said<'_>>)> = vec![
        ("not affected", &echo, single("known_not_affected")),
        ("fixed", &echo, single("fixed")),
        ("under investigation", &echo, single("under_investigation")),
        (
            "multiple statuses",
            &net,
            [
                "under_investigation",
                "known_not_affected",
                "known_affected",
                "fixed",
            ]
            .into_iter()
            .zip(&net_cves)
            .map(|(status, cve)| Said {
                cve,
                status,
                version: &net_version,
            })
            .collect(),
        ),
    ];
    let mut csaf_documents = Vec::new();
    let mut outcomes = Vec::new();
    for (name, purl, said) in &cases {
        let csaf = csaf_document(&format!("Use case: {name}"), purl, said);
        let csaf_verdict = scene.scan(Some(&bytes(&csaf)));
        let openvex = scene.scan(Some(&bytes(&openvex_document(purl, said))));
        let cyclonedx = scene.scan(Some(&bytes(&cyclonedx_document(purl, said))));
        assert_eq!(
            outcome(&csaf_verdict),
            outcome(&openvex),
            "{name}: CSAF vs OpenVEX"
        );
        assert_eq!(
            outcome(&csaf_verdict),
            outcome(&cyclonedx),
            "{name}: CSAF vs CycloneDX"
        );
        assert_eq!(csaf_verdict.counts, openvex.counts, "{name}");
        outcomes.push((*name, csaf_verdict));
        csaf_documents.push((*name, csaf));
    }
    let by_name = |name: &str| &outcomes.iter().find(|(n, _)| *n == name).unwrap().1;

    // Not affected: the finding is ruled out and passes; the others are untouched.
    let ruled_out = finding(by_name("not affected"), "GO-2022-1031");
    assert_eq!(ruled_out.assessment.get(Question::Applies), K4::False);
    assert_eq!(ruled_out.disposition, Disposition::Pass);
    assert_eq!(
        by_name("not affected").counts.pass,
        baseline.counts.pass + 1
    );
    // The explain trace names the CSAF document, its tracking id and version, and the
    // product that matched.
    let about: Vec<&str> = ruled_out
        .assessment
        .claims
        .iter()
        .filter_map(|c| c.about.as_deref())
        .collect();
    assert_eq!(
        about,
        ["CSAF EXAMPLE-VEX-1 version 2 (Use case: not affected), product CSAFPID-0001"]
    );
    // Fixed: VEX says fixed.
    let fixed = finding(by_name("fixed"), "GO-2022-1031");
    assert_eq!(fixed.assessment.get(Question::Fixed), K4::True);
    // Under investigation: no claim; the verdict is the baseline's.
    assert_eq!(outcome(by_name("under investigation")), outcome(&baseline));
    // Multiple statuses on one product: each vulnerability gets its own.
    let multiple = by_name("multiple statuses");
    let of_cve = |cve: &str| {
        multiple
            .findings
            .iter()
            .find(|f| f.purl.starts_with(&format!("{net}@")) && f.aliases.iter().any(|a| a == cve))
            .unwrap()
    };
    assert_eq!(
        of_cve(&net_cves[1]).assessment.get(Question::Applies),
        K4::False
    );
    assert_eq!(
        of_cve(&net_cves[2]).assessment.get(Question::Applies),
        K4::True
    );
    assert_eq!(
        of_cve(&net_cves[3]).assessment.get(Question::Fixed),
        K4::True
    );
    assert_eq!(
        of_cve(&net_cves[0]).assessment.claims.len(),
        2,
        "SBOM and advisory only"
    );

    // Ranges, ordered by Go's rules: v4.1.11 is after its pre-release v4.1.11-rc.1 for
    // Go (so in the not-affected range) but not for the generic order, which would put
    // it in no range at all. OpenVEX has no ranges: its counterpart names the version.
    let ranges = vec![
        Said {
            cve: echo_cve,
            status: "known_affected",
            version: "v4.1.10",
        },
        Said {
            cve: echo_cve,
            status: "known_not_affected",
            version: "vers:golang/>=v4.1.11-rc.1|<v4.2.0",
        },
        Said {
            cve: echo_cve,
            status: "known_affected",
            version: "vers:golang/>=v4.2.0|<v4.9.0",
        },
        Said {
            cve: echo_cve,
            status: "fixed",
            version: "v4.9.0",
        },
    ];
    assert_eq!(
        vex::generic_compare("v4.1.11", "v4.1.11-rc.1"),
        Some(std::cmp::Ordering::Less),
        "the generic order would miss the range"
    );
    let csaf = csaf_document("Use case: ranges", &echo, &ranges);
    let with_ranges = scene.scan(Some(&bytes(&csaf)));
    let cyclonedx = scene.scan(Some(&bytes(&cyclonedx_document(&echo, &ranges))));
    let openvex = scene.scan(Some(&bytes(&openvex_document(
        &echo,
        &single("known_not_affected"),
    ))));
    assert_eq!(
        outcome(&with_ranges),
        outcome(&cyclonedx),
        "ranges: CSAF vs CycloneDX"
    );
    assert_eq!(
        outcome(&with_ranges),
        outcome(&openvex),
        "ranges: CSAF vs OpenVEX"
    );
    let echo_finding = finding(&with_ranges, "GO-2022-1031");
    assert_eq!(echo_finding.assessment.get(Question::Applies), K4::False);
    assert_eq!(echo_finding.disposition, Disposition::Pass);
    csaf_documents.push(("ranges", csaf));

    // The same use cases as OASIS published them, with only the product's purl and the
    // CVE put in: they rule the finding in or out as the derived ones do.
    for (file, like) in [
        ("2022-evd-uc-01-na-001.json", "not affected"),
        ("2022-evd-uc-01-f-001.json", "fixed"),
        ("2022-evd-uc-01-ui-001.json", "under investigation"),
    ] {
        let mut document: Value =
            serde_json::from_slice(&std::fs::read(csaf_dir.join(file)).unwrap()).unwrap();
        document["product_tree"]["branches"][0]["branches"][0]["branches"][0]["product"]
            ["product_identification_helper"] = json!({"purl": format!("{echo}@{echo_version}")});
        document["vulnerabilities"][0]["cve"] = echo_cve.into();
        let verdict = scene.scan(Some(&bytes(&document)));
        assert_eq!(outcome(&verdict), outcome(by_name(like)), "{file}");
        csaf_documents.push((file, document));
    }
    assert_schema_valid(&csaf_dir, &csaf_documents);
}

#[test]
fn schema_violations_are_also_refused_by_the_reader() {
    let Some(dir) = data() else { return };
    let csaf_dir = dir.join("vex/csaf");
    let original: Value =
        serde_json::from_slice(&std::fs::read(csaf_dir.join("2022-evd-uc-07-001.json")).unwrap())
            .unwrap();
    type Mutation = fn(&mut Value);
    let mutations: [(&str, Mutation, &str); 5] = [
        (
            "no tracking id",
            |d| {
                d["document"]["tracking"]
                    .as_object_mut()
                    .unwrap()
                    .remove("id");
            },
            "/document/tracking/id",
        ),
        (
            "unknown publisher category",
            |d| d["document"]["publisher"]["category"] = "friend".into(),
            "/document/publisher/category",
        ),
        (
            "product status not a list",
            |d| d["vulnerabilities"][0]["product_status"]["fixed"] = "CSAFPID-0010".into(),
            "/vulnerabilities/0/product_status/fixed",
        ),
        (
            "unknown flag label",
            |d| {
                d["vulnerabilities"][0]["flags"] =
                    json!([{"label": "trust_me", "product_ids": ["CSAFPID-0001"]}]);
            },
            "/vulnerabilities/0/flags/0/label",
        ),
        (
            "empty revision history",
            |d| d["document"]["tracking"]["revision_history"] = json!([]),
            "/document/tracking/revision_history",
        ),
    ];
    let mut documents = Vec::new();
    for (name, mutate, pointer) in mutations {
        let mut document = original.clone();
        mutate(&mut document);
        let err = vex::parse(&bytes(&document)).unwrap_err();
        assert_eq!(err.pointer, pointer, "{name}: {}", err.message);
        documents.push(document);
    }
    if let Some(errors) = schema_errors(&csaf_dir, &documents) {
        for (errors, (name, _, _)) in errors.iter().zip(mutations) {
            assert!(!errors.is_empty(), "{name}: the schema accepts it too");
        }
    }
}

#[test]
fn a_csaf_statement_and_a_disagreeing_openvex_one_stay_side_by_side() {
    let Some(dir) = data() else { return };
    let scene = Scene::load(&dir);
    let (echo, version) = scene.component("github.com/labstack/echo/v4");
    let said = |status| {
        vec![Said {
            cve: "CVE-2022-40083",
            status,
            version: &version,
        }]
    };
    let csaf = bytes(&csaf_document("vendor", &echo, &said("known_not_affected")));
    let openvex = bytes(&openvex_document(&echo, &said("known_affected")));
    let verdict = scene.scan_all(&[&csaf, &openvex]);
    let echo_finding = finding(&verdict, "GO-2022-1031");
    assert_eq!(echo_finding.assessment.get(Question::Applies), K4::Conflict);
    assert_eq!(echo_finding.assessment.conflicts(), vec![Question::Applies]);
    assert_eq!(verdict.counts.conflicts, 1);
    // Both claims are kept, each with its source.
    let vex_claims: Vec<_> = echo_finding
        .assessment
        .claims
        .iter()
        .filter(|c| c.evidence.starts_with("vex:"))
        .collect();
    assert_eq!(vex_claims.len(), 2);
    assert_eq!(vex_claims.iter().filter(|c| c.about.is_some()).count(), 1);
}
