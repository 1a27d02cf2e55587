//! The document kinds checked by their official validators, on the real data in
//! `../shared/data`: proton-bridge 1.6.3's findings against the Go vulnerability database
//! (with one OpenVEX statement about one of them), and every real SBOM, CycloneDX and SPDX,
//! through each writer.
//!
//! - CycloneDX: `cyclonedx-python-lib`'s `JsonStrictValidator(SchemaVersion.V1_6)`, the
//!   official CycloneDX 1.6 JSON schema (with the SPDX licence and JSF schemas it refers
//!   to) applied strictly.
//! - SPDX: `pyspdxtools -i FILE` (spdx-tools), which parses the document and validates it
//!   against the SPDX 2.3 rules, exiting non-zero on any problem.
//! - `json:policy` and `json:raw`: `python -m json.tool`, then Python `jsonschema`
//!   (draft 2020-12) with the documents' own schemas; the raw records are hashed back to
//!   their observation digests, and the policy snapshot's form to the verdict's digest.
//!
//! The python comes from `STELLA_TEST_DOCUMENTS_PYTHON` (set by `ops/services.sh up`),
//! `pyspdxtools` from beside it. Without it the tests are skipped with a message, unless
//! `STELLA_TEST_SERVICES` is set, where its absence is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use stella_domain::canonical::{canonical_bytes, sha256_hex, Digest};
use stella_domain::export::cyclonedx::{serial_number, CdxDocument, CycloneDxWriter};
use stella_domain::export::json_policy::{
    self, PolicyExport, PolicyScan, PolicySnapshot, PolicyWriter,
};
use stella_domain::export::json_raw::{
    self, RawAdvisory, RawExport, RawSbom, RawScan, RawVex, RawWriter,
};
use stella_domain::export::spdx::{SpdxDocument, SpdxWriter};
use stella_domain::export::{
    fixed_versions_of, parse_vex_evidence, vex_evidence, Cited, ExportFinding, ExportScan,
};
use stella_domain::osv::{parse_record, split_collection, Advisory, Limits, RawEntry};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_domain::scan::{
    self, AdvisoryIndex, FindingText, InputDigests, SbomContext, ScanComponent,
};
use stella_domain::vex::{self, VexStatement};
use stella_domain::{sbom, Sbom};

const PYTHON_VAR: &str = "STELLA_TEST_DOCUMENTS_PYTHON";

const CHECKER: &str = r#"
import hashlib, json, subprocess, sys

mode, path = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    data = f.read()
if mode == "cyclonedx":
    # Every file named, in one process: the validator takes seconds to load.
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    errors = {}
    for name in sys.argv[2:]:
        with open(name, encoding="utf-8") as f:
            error = validator.validate_str(f.read())
        errors[name] = None if error is None else str(error)[:2000]
    print(json.dumps({"errors": errors}))
elif mode == "spdx":
    # What `pyspdxtools -i FILE --version SPDX-2.3` does, for every file named in one process.
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    problems = {}
    for name in sys.argv[2:]:
        messages = validate_full_spdx_document(parse_file(name), "SPDX-2.3")
        problems[name] = [m.validation_message for m in messages][:20]
    print(json.dumps({"problems": problems}))
elif mode == "schema":
    import jsonschema
    # The standard library's reader first: well-formed JSON whatever the schema says.
    subprocess.run([sys.executable, "-m", "json.tool", path], check=True, stdout=subprocess.DEVNULL)
    with open(sys.argv[3], "rb") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    document = json.loads(data)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [{"path": "/".join(str(p) for p in e.absolute_path), "message": e.message[:300]}
              for e in validator.iter_errors(document)]
    report = {"errors": errors[:20]}
    if "advisories" in document and "vex" in document and isinstance(document.get("advisories"), list):
        report["records"] = [
            hashlib.sha256(a["record"].encode("utf-8")).hexdigest() == a["sha256"]
            for a in document["advisories"]
        ]
    if "policies" in document:
        canonical = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        report["policies"] = [
            "sha256:" + hashlib.sha256(canonical(p["form"])).hexdigest() == p["digest"]
            for p in document["policies"]
        ]
    print(json.dumps(report))
else:
    sys.exit(f"unknown mode {mode}")
"#;

fn python() -> Option<String> {
    match std::env::var(PYTHON_VAR) {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!(
                "{PYTHON_VAR} must be set (by ops/services.sh up) when STELLA_TEST_SERVICES is set"
            )
        }
        _ => {
            eprintln!(
                "skipping the document validators: {PYTHON_VAR} is not set \
                 (run `ops/services.sh up` and `source /var/tmp/stella-services/env`)"
            );
            None
        }
    }
}

fn data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: {} not found", dir.display());
        None
    }
}

/// Runs the checker; it prints one JSON report and exits 0, anything else is a broken
/// check.
fn check(python: &str, dir: &Path, args: &[&str]) -> Value {
    let script = dir.join("check_documents.py");
    std::fs::write(&script, CHECKER).unwrap();
    let output = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "checker {args:?} failed: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        output.status.code()
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("checker printed no JSON ({e})\nstdout: {stdout}"))
}

/// `pyspdxtools -i path --version SPDX-2.3`: exits 0 only for a document that parses
/// and validates under SPDX 2.3.
fn pyspdxtools(python: &str, path: &Path) {
    let tool = Path::new(python).with_file_name("pyspdxtools");
    let output = Command::new(&tool)
        .arg("-i")
        .arg(path)
        .args(["--version", "SPDX-2.3"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    assert!(
        output.status.success(),
        "pyspdxtools refused {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const TARGET: &str = "proton-bridge";
const SCAN_ID: &str = "01JREALSCAN";

/// The real scan: proton-bridge 1.6.3 against the Go database, with an OpenVEX statement
/// saying the echo finding's code is not in the execute path.
struct RealScan {
    sbom_bytes: Vec<u8>,
    sbom: Sbom,
    /// Raw records of the Go database by advisory id.
    records: HashMap<String, RawEntry>,
    advisories: HashMap<String, Advisory>,
    vex_sha256: String,
    vex: Vec<VexStatement>,
    policy: Policy,
    /// The findings as the evaluator stores them.
    stored: Vec<Value>,
    inputs: InputDigests,
    evaluated_at: DateTime<Utc>,
}

fn real_scan(data: &Path) -> RealScan {
    let zip = std::fs::read(data.join("advisories/Go-all.zip")).unwrap();
    let entries = split_collection(&zip, Limits::default()).unwrap();
    let mut records = HashMap::new();
    let mut advisories = HashMap::new();
    for entry in entries {
        let advisory = parse_record(&entry.bytes).unwrap();
        records.insert(advisory.id.clone(), entry);
        advisories.insert(advisory.id.clone(), advisory);
    }
    let index = AdvisoryIndex::build(advisories.values().cloned());
    let sbom_bytes =
        std::fs::read(data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"))
            .unwrap();
    let parsed = sbom::parse(&sbom_bytes).unwrap();
    let components = ScanComponent::all_of(&parsed);
    let vex_document = json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/proton-bridge-1",
        "author": "proton-bridge maintainers",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "GO-2022-1031"},
            "products": [{"@id": "pkg:golang/github.com/labstack/echo/v4@v4.1.11"}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
            "impact_statement": "the bridge never serves static files with echo"
        }]
    })
    .to_string();
    let vex_sha256 = sha256_hex(vex_document.as_bytes());
    let vex_statements = vex::parse(vex_document.as_bytes()).unwrap();
    let with_evidence: Vec<(VexStatement, String)> = vex_statements
        .iter()
        .map(|s| (s.clone(), format!("vex:sha256:{vex_sha256}#{}", s.pointer)))
        .collect();
    let policy = Policy::parse(DEFAULT_POLICY).unwrap();
    let context = SbomContext::of(&parsed);
    let evaluated_at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let verdict = scan::evaluate(
        &scan::ScanInputs {
            components: &components,
            sbom: &context,
            index: &index,
            vex: &with_evidence,
            policy: &policy,
            pack: None,
            at: evaluated_at,
        },
        &|version, affected| affected.is_affected(version).unwrap_or(false),
        &vex::generic_compare,
    );
    assert_eq!(verdict.findings.len(), 58);
    let stored: Vec<Value> = verdict
        .findings
        .iter()
        .map(|f| serde_json::from_str(&FindingText::of(f).unwrap().canonical).unwrap())
        .collect();
    let cited: BTreeSet<String> = stored
        .iter()
        .map(|f| {
            format!(
                "sha256:{}",
                sha256_hex(&records[f["vulnerability_id"].as_str().unwrap()].bytes)
            )
        })
        .collect();
    let inputs = InputDigests {
        sbom: format!("sha256:{}", sha256_hex(&sbom_bytes)),
        advisories: cited,
        vex: [format!("sha256:{vex_sha256}")].into_iter().collect(),
        policy: policy.digest(),
        evaluated_at: Some(evaluated_at),
        exceptions: Default::default(),
        pack: None,
    };
    RealScan {
        sbom_bytes,
        sbom: parsed,
        records,
        advisories,
        vex_sha256,
        vex: vex_statements,
        policy,
        stored,
        inputs,
        evaluated_at,
    }
}

impl RealScan {
    /// The export view of each stored finding with its fixed versions, and what it cites.
    fn findings(&self) -> Vec<(ExportFinding<'_>, Cited<'_>)> {
        let about = ExportScan {
            tenant: "acme",
            scan_id: SCAN_ID,
            target: TARGET,
        };
        self.stored
            .iter()
            .map(|stored| {
                let finding = ExportFinding::from_finding_json(about, stored).unwrap();
                let advisory = self.advisories.get(finding.vulnerability_id);
                let cited = Cited {
                    advisory,
                    vex: vex_evidence(stored)
                        .into_iter()
                        .filter_map(parse_vex_evidence)
                        .filter(|(sha, _)| *sha == self.vex_sha256)
                        .filter_map(|(_, pointer)| self.vex.iter().find(|s| s.pointer == pointer))
                        .collect(),
                };
                let fixed = advisory
                    .map(|a| fixed_versions_of(a, finding.purl))
                    .unwrap_or_default();
                (finding.with_fixed_versions(fixed), cited)
            })
            .collect()
    }
}

fn as_of() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

fn cyclonedx(sbom: &Sbom, target: &str, findings: &[(ExportFinding<'_>, Cited<'_>)]) -> Vec<u8> {
    let serial = serial_number(&[SCAN_ID, "2026-12-01T00:00:00Z"]);
    let properties = [("stella:scan_id", SCAN_ID), ("stella:disposition", "warn")];
    let doc = CdxDocument {
        tool_version: "0.1.0",
        serial_number: &serial,
        timestamp: as_of(),
        target,
        properties: &properties,
    };
    let mut writer = CycloneDxWriter::start(Vec::new(), &doc, sbom).unwrap();
    for (finding, cited) in findings {
        writer.write(finding, cited).unwrap();
    }
    writer.finish().unwrap()
}

fn spdx(sbom: &Sbom, target: &str, findings: &[(ExportFinding<'_>, Cited<'_>)]) -> Vec<u8> {
    let namespace = format!("https://stella.dev/spdx/scans/{SCAN_ID}/2026-12-01T00:00:00Z");
    let comment = format!("Stella scan {SCAN_ID} of {target}");
    let doc = SpdxDocument {
        tool_version: "0.1.0",
        target,
        namespace: &namespace,
        created: as_of(),
        evaluated_at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        comment: &comment,
    };
    let mut writer = SpdxWriter::start(Vec::new(), &doc, sbom).unwrap();
    for (finding, cited) in findings {
        writer.write(finding, cited).unwrap();
    }
    writer.finish().unwrap()
}

/// Every real SBOM, CycloneDX and SPDX, by file name.
fn real_sboms(data: &Path) -> Vec<(String, Sbom)> {
    let mut out = Vec::new();
    for folder in ["sboms/cyclonedx", "sboms/spdx"] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(data.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        for path in names {
            let parsed = sbom::parse(&std::fs::read(&path).unwrap()).unwrap();
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                parsed,
            ));
        }
    }
    assert!(out.len() >= 11, "{} SBOMs", out.len());
    out
}

#[test]
fn cyclonedx_from_real_scans_is_valid_under_the_official_1_6_schema() {
    let Some(data) = data() else { return };
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let real = real_scan(&data);
    let findings = real.findings();
    let bytes = cyclonedx(&real.sbom, TARGET, &findings);
    assert_eq!(
        cyclonedx(&real.sbom, TARGET, &findings),
        bytes,
        "byte-identical"
    );
    let mut paths = vec![write(dir.path(), "scan.cdx.json", &bytes)];

    let bom: Value = serde_json::from_slice(&bytes).unwrap();
    let refs: BTreeSet<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&bom["metadata"]["component"]])
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    let vulnerabilities = bom["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulnerabilities.len(), 58);
    for v in vulnerabilities {
        let affected = v["affects"][0]["ref"].as_str().unwrap();
        assert!(refs.contains(affected), "{affected} is no component");
        assert_eq!(
            v["source"]["url"],
            format!(
                "https://osv.dev/vulnerability/{}",
                v["id"].as_str().unwrap()
            )
        );
    }
    // The Go database names fixes for most; their findings say to upgrade.
    let upgrades = vulnerabilities
        .iter()
        .filter(|v| v["analysis"]["response"] == json!(["update"]))
        .count();
    assert!(upgrades > 50, "{upgrades}");
    // The VEX statement: not affected, with its justification in CycloneDX's words.
    let echo = vulnerabilities
        .iter()
        .find(|v| v["id"] == "GO-2022-1031")
        .unwrap();
    assert_eq!(echo["analysis"]["state"], "not_affected");
    assert_eq!(echo["analysis"]["justification"], "code_not_reachable");
    assert!(echo["analysis"]["detail"]
        .as_str()
        .unwrap()
        .contains("never serves static files"));
    assert_eq!(
        echo["affects"][0]["versions"][0],
        json!({"version": "v4.1.11", "status": "unaffected"})
    );
    let echo_ref = echo["affects"][0]["ref"].as_str().unwrap();
    let component = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["bom-ref"] == echo_ref)
        .unwrap();
    assert_eq!(
        component["purl"],
        "pkg:golang/github.com/labstack/echo/v4@v4.1.11"
    );

    // Every real SBOM, whichever format it came in, makes a valid BOM.
    for (name, parsed) in real_sboms(&data) {
        let bytes = cyclonedx(&parsed, &name, &[]);
        let bom: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            bom["components"].as_array().unwrap().len(),
            parsed.components.len(),
            "{name}"
        );
        paths.push(write(dir.path(), &format!("{name}.cdx.json"), &bytes));
    }
    let mut args = vec!["cyclonedx"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let report = check(&python, dir.path(), &args);
    let errors = report["errors"].as_object().unwrap();
    assert_eq!(errors.len(), paths.len());
    for (name, error) in errors {
        assert_eq!(error, &Value::Null, "{name}: {error}");
    }
}

#[test]
fn spdx_from_real_scans_passes_pyspdxtools() {
    let Some(data) = data() else { return };
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let real = real_scan(&data);
    let findings = real.findings();
    let bytes = spdx(&real.sbom, TARGET, &findings);
    assert_eq!(spdx(&real.sbom, TARGET, &findings), bytes, "byte-identical");
    let path = write(dir.path(), "scan.spdx.json", &bytes);
    pyspdxtools(&python, &path);

    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let packages = doc["packages"].as_array().unwrap();
    let mut advisories: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut annotations = 0;
    for package in packages {
        for reference in package["externalRefs"].as_array().into_iter().flatten() {
            if reference["referenceCategory"] == "SECURITY" {
                let purl = package["externalRefs"][0]["referenceLocator"]
                    .as_str()
                    .unwrap();
                advisories
                    .entry(purl)
                    .or_default()
                    .push(reference["referenceLocator"].as_str().unwrap());
            }
        }
        annotations += package["annotations"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(advisories.values().map(Vec::len).sum::<usize>(), 58);
    assert_eq!(annotations, 58);
    assert!(advisories["pkg:golang/github.com/labstack/echo/v4@v4.1.11"]
        .contains(&"https://osv.dev/vulnerability/GO-2022-1031"));
    // The root contains every package, and the document describes the root.
    let relationships = doc["relationships"].as_array().unwrap();
    assert_eq!(relationships.len(), packages.len());
    assert_eq!(relationships[0]["relationshipType"], "DESCRIBES");

    // Every real SBOM, whichever format it came in, makes a valid document (the same
    // validation in one process: pyspdxtools takes seconds to start).
    let mut paths = Vec::new();
    for (name, parsed) in real_sboms(&data) {
        let bytes = spdx(&parsed, &name, &[]);
        paths.push(write(dir.path(), &format!("{name}.spdx.json"), &bytes));
    }
    let mut args = vec!["spdx"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let report = check(&python, dir.path(), &args);
    let problems = report["problems"].as_object().unwrap();
    assert_eq!(problems.len(), paths.len());
    for (name, found) in problems {
        assert_eq!(found, &json!([]), "{name}");
    }
}

#[test]
fn json_policy_and_json_raw_are_valid_under_their_schemas() {
    let Some(data) = data() else { return };
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let real = real_scan(&data);
    let findings = real.findings();
    let schemas = [
        ("json-policy.schema.json", json_policy::SCHEMA),
        ("json-raw.schema.json", json_raw::SCHEMA),
    ];
    for (name, text) in schemas {
        write(dir.path(), name, text.as_bytes());
    }

    // json:policy: the verdict, every finding with its trace, the default policy once.
    let form = serde_json::to_value(&real.policy).unwrap();
    let digest = real.policy.digest();
    assert_eq!(Digest::sha256(&canonical_bytes(&form)).to_string(), digest);
    let policy_doc = || {
        let mut writer = PolicyWriter::start(
            Vec::new(),
            &PolicyExport {
                tool_version: "0.1.0",
                profile: "audit",
                revision: 1,
                as_of: as_of(),
            },
            &[PolicySnapshot {
                digest: &digest,
                version: None,
                document: DEFAULT_POLICY,
                form: &form,
            }],
        )
        .unwrap();
        let count = |d: &str| real.stored.iter().filter(|f| f["disposition"] == d).count();
        let counts = json!({"components": 202, "findings": 58, "pass": count("pass"),
                            "warn": count("warn"), "block": count("block"), "conflicts": 0});
        let inputs = serde_json::to_value(&real.inputs).unwrap();
        let inputs_hash = real.inputs.hash();
        let attestation = "ab".repeat(32);
        writer
            .begin_scan(&PolicyScan {
                scan_id: SCAN_ID,
                target: TARGET,
                sbom_sha256: &sha256_hex(&real.sbom_bytes),
                attestation_sha256: &attestation,
                disposition: "warn",
                counts: &counts,
                policy_digest: &digest,
                policy_version: None,
                evaluated_at: real.evaluated_at,
                inputs_hash: &inputs_hash,
                inputs: &inputs,
            })
            .unwrap();
        for (i, ((finding, _), stored)) in findings.iter().zip(&real.stored).enumerate() {
            writer.write(i as u64, finding, stored).unwrap();
        }
        writer.finish().unwrap()
    };
    let bytes = policy_doc();
    assert_eq!(policy_doc(), bytes, "byte-identical");
    let path = write(dir.path(), "policy.json", &bytes);
    let schema = dir.path().join("json-policy.schema.json");
    let report = check(
        &python,
        dir.path(),
        &["schema", path.to_str().unwrap(), schema.to_str().unwrap()],
    );
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["policies"], json!([true]), "{report}");
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let exported = doc["scans"][0]["findings"].as_array().unwrap();
    assert_eq!(exported.len(), 58);
    let echo = exported
        .iter()
        .find(|f| f["vulnerability_id"] == "GO-2022-1031")
        .unwrap();
    assert_eq!(echo["explain"]["vex"], json!(["not_affected"]));
    assert_eq!(echo["disposition"], "pass");
    assert!(echo["explain"]["trace"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));

    // json:raw: the SBOM by digest, each cited record as fetched, the VEX statement.
    let raw_doc = || {
        let mut writer = RawWriter::start(
            Vec::new(),
            &RawExport {
                tool_version: "0.1.0",
                profile: "inputs",
                revision: 2,
                as_of: as_of(),
            },
        )
        .unwrap();
        let sbom_sha256 = sha256_hex(&real.sbom_bytes);
        let mut cited: BTreeMap<String, &str> = BTreeMap::new();
        for stored in &real.stored {
            let id = stored["vulnerability_id"].as_str().unwrap();
            cited.insert(sha256_hex(&real.records[id].bytes), id);
        }
        let evidence: BTreeSet<&str> = real.stored.iter().flat_map(vex_evidence).collect();
        let inputs_hash = real.inputs.hash();
        writer
            .scan(&RawScan {
                scan_id: SCAN_ID,
                target: TARGET,
                evaluated_at: real.evaluated_at,
                inputs_hash: &inputs_hash,
                sbom: RawSbom {
                    sha256: &sbom_sha256,
                    name: TARGET,
                    format: "cyclonedx",
                    spec_version: "1.2",
                    size: real.sbom_bytes.len() as u64,
                    file: None,
                },
                advisories: cited.keys().map(String::as_str).collect(),
                vex: evidence.iter().copied().collect(),
            })
            .unwrap();
        let mut by_id: Vec<(&str, &String)> = cited.iter().map(|(sha, id)| (*id, sha)).collect();
        by_id.sort();
        for (id, sha256) in by_id {
            let entry = &real.records[id];
            writer
                .advisory(&RawAdvisory {
                    source: "osv:go",
                    id,
                    sha256,
                    modified: real.advisories[id].modified,
                    collection_sha256: &"cd".repeat(32),
                    entry: &entry.name,
                    record: std::str::from_utf8(&entry.bytes).unwrap(),
                })
                .unwrap();
        }
        let statements: Vec<Value> = real
            .vex
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
        let statements: Vec<&Value> = statements.iter().collect();
        writer
            .vex(&RawVex {
                sha256: &real.vex_sha256,
                scope: "tenant",
                format: "openvex",
                statements: &statements,
            })
            .unwrap();
        writer.finish().unwrap()
    };
    let bytes = raw_doc();
    assert_eq!(raw_doc(), bytes, "byte-identical");
    let path = write(dir.path(), "raw.json", &bytes);
    let schema = dir.path().join("json-raw.schema.json");
    let report = check(
        &python,
        dir.path(),
        &["schema", path.to_str().unwrap(), schema.to_str().unwrap()],
    );
    assert_eq!(report["errors"], json!([]), "{report}");
    // Every record hashes back to its observation's digest: the bytes as fetched.
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), distinct_advisories(&real.stored));
    assert!(records.iter().all(|ok| ok == true), "{report}");
}

/// The advisories the findings cite, each once (a record is listed once).
fn distinct_advisories(stored: &[Value]) -> usize {
    stored
        .iter()
        .map(|f| f["vulnerability_id"].as_str().unwrap())
        .collect::<BTreeSet<_>>()
        .len()
}
