//! Reports for people, checked as a person would: real findings (proton-bridge's SBOMs
//! against the Go vulnerability database, under a policy with exceptions) written as
//! PDF and XLSX and read back by independent tools.
//!
//! - PDF: poppler's `pdftotext` finds the tenant, the targets, the counts, the worst
//!   findings, the exceptions and every evidence digest, and a page number on every
//!   page; `pdftoppm` renders every page, none blank, the chart's red bars on one.
//! - XLSX: `openpyxl` reads the sheets, the header rows, the frozen panes and
//!   autofilters, one row per finding with numbers as numbers and dates as dates, the
//!   formula-like target as a string with Excel's quote prefix; the workbook's zip holds
//!   a native bar chart over the summary's counts.
//! - Both: equal data, byte-identical files.
//!
//! The tools come from `ops/services.sh up` (`STELLA_TEST_PDFTOTEXT`,
//! `STELLA_TEST_PDFTOPPM`, `STELLA_TEST_REPORT_PYTHON`). Without them the checks are
//! skipped with a message, unless `STELLA_TEST_SERVICES` is set, where their absence is
//! a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use stella_domain::export::fixed_versions;
use stella_domain::export::report::pdf::PdfReport;
use stella_domain::export::report::xlsx::{XlsxReport, FINDING_COLUMNS};
use stella_domain::export::report::{
    worst_first, ChangeKey, Changes, PreviousReport, ReportData, ReportException, ReportFinding,
    ReportPolicy, ReportScan, Tally, Template, Worst, TOP_CHANGES, TOP_FINDINGS,
};
use stella_domain::export::{ExportFinding, ExportScan};
use stella_domain::osv::{parse_record, split_collection, Advisory, Limits};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_domain::scan::{self, AdvisoryIndex, FindingText, SbomContext, ScanComponent};
use stella_domain::{sbom, vex, Purl};

/// A tool from `ops/services.sh`: required with the services, else skipped.
fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!("{var} must be set (by ops/services.sh up) when STELLA_TEST_SERVICES is set")
        }
        _ => {
            eprintln!(
                "skipping the report checks: {var} is not set \
                 (run `ops/services.sh up` and `source /var/tmp/stella-services/env`)"
            );
            None
        }
    }
}

struct Tools {
    pdftotext: String,
    pdftoppm: String,
    python: String,
}

fn tools() -> Option<Tools> {
    Some(Tools {
        pdftotext: tool("STELLA_TEST_PDFTOTEXT")?,
        pdftoppm: tool("STELLA_TEST_PDFTOPPM")?,
        python: tool("STELLA_TEST_REPORT_PYTHON")?,
    })
}

fn data_dir() -> Option<PathBuf> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if data.is_dir() {
        Some(data)
    } else {
        eprintln!("skipping: {} not found", data.display());
        None
    }
}

/// The default policy with two exceptions: one in force (until 2027), one expired.
fn policy() -> Policy {
    let text = format!(
        r#"{DEFAULT_POLICY}
[[exceptions]]
id = "echo-accepted"
vulnerabilities = ["GO-2022-1031"]
packages = ["pkg:golang/github.com/labstack/echo/v4"]
reason = "the affected handler is not mounted"
approver = "alice@example.com"
expires = "2027-01-01T00:00:00Z"

[[exceptions]]
id = "old-waiver"
vulnerabilities = ["GO-2020-0001"]
reason = "replaced in Q3"
approver = "bob@example.com"
expires = "2025-01-01T00:00:00Z"
"#
    );
    Policy::parse(&text).unwrap()
}

/// A scan's stored findings (as the evaluator writes them) and its SBOM's digest.
struct Scanned {
    target: &'static str,
    id: &'static str,
    sbom_sha256: String,
    findings: Vec<Value>,
}

struct Fixture {
    advisories: Vec<Advisory>,
    policy: Policy,
    at: DateTime<Utc>,
}

impl Fixture {
    fn load(data: &Path) -> Self {
        let zip = std::fs::read(data.join("advisories/Go-all.zip")).unwrap();
        let advisories = split_collection(&zip, Limits::default())
            .unwrap()
            .iter()
            .map(|entry| parse_record(&entry.bytes).unwrap())
            .collect();
        Fixture {
            advisories,
            policy: policy(),
            at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        }
    }

    fn scan(&self, data: &Path, sbom: &str, target: &'static str, id: &'static str) -> Scanned {
        let bytes = std::fs::read(data.join("sboms/cyclonedx").join(sbom)).unwrap();
        let parsed = sbom::parse(&bytes).unwrap();
        let components = ScanComponent::all_of(&parsed);
        let index = AdvisoryIndex::build(self.advisories.clone());
        let verdict = scan::evaluate(
            &scan::ScanInputs {
                components: &components,
                sbom: &SbomContext::of(&parsed),
                index: &index,
                vex: &[],
                policy: &self.policy,
                pack: None,
                at: self.at,
            },
            &|version, affected| affected.is_affected(version).unwrap_or(false),
            &vex::generic_compare,
        );
        Scanned {
            target,
            id,
            sbom_sha256: stella_domain::canonical::sha256_hex(&bytes),
            findings: verdict
                .findings
                .iter()
                .map(|f| serde_json::from_str(&FindingText::of(f).unwrap().canonical).unwrap())
                .collect(),
        }
    }
}

/// Each finding of `scans` with its fixed versions, as the exporter hands them over.
fn each<'a>(
    scans: &'a [Scanned],
    by_id: &'a HashMap<&str, &Advisory>,
) -> impl Iterator<Item = ExportFinding<'a>> + 'a {
    scans.iter().flat_map(move |scan| {
        let about = ExportScan {
            tenant: "acme",
            scan_id: scan.id,
            target: scan.target,
        };
        scan.findings.iter().map(move |value| {
            let f = ExportFinding::from_finding_json(about, value).unwrap();
            let key = Purl::parse(f.purl).unwrap().package_key().unwrap();
            let fixed = fixed_versions(by_id[f.vulnerability_id], &key);
            f.with_fixed_versions(fixed)
        })
    })
}

/// The report data the exporter would build: the current scans against the previous
/// report's.
fn report_data(
    fixture: &Fixture,
    current: &[Scanned],
    previous: &[Scanned],
    template: Template,
) -> ReportData {
    let by_id: HashMap<&str, &Advisory> = fixture
        .advisories
        .iter()
        .map(|a| (a.id.as_str(), a))
        .collect();
    let before: HashSet<ChangeKey> = each(previous, &by_id).map(|f| ChangeKey::of(&f)).collect();
    let mut now = HashSet::new();
    let mut tally = Tally::default();
    let mut worst = Worst::new(TOP_FINDINGS);
    let mut new_worst = Worst::new(TOP_CHANGES);
    let mut new = 0;
    let mut decided: HashMap<String, u64> = HashMap::new();
    for f in each(current, &by_id) {
        tally.add(&f);
        worst.offer(&f, fixture.at);
        let key = ChangeKey::of(&f);
        if !before.contains(&key) {
            new += 1;
            new_worst.offer(&f, fixture.at);
        }
        now.insert(key);
        *decided
            .entry(f.rule_id.unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    let mut resolved_worst = Worst::new(TOP_CHANGES);
    let mut resolved = 0;
    for f in each(previous, &by_id) {
        if !now.contains(&ChangeKey::of(&f)) {
            resolved += 1;
            resolved_worst.offer(&f, fixture.at);
        }
    }
    let about = ReportPolicy {
        digest: fixture.policy.digest(),
        version: Some(2),
        name: Some(fixture.policy.name.clone()),
        document_version: Some(fixture.policy.version),
    };
    let mut exceptions = ReportException::all_of(&fixture.policy, &about);
    for e in &mut exceptions {
        e.findings = decided
            .get(&format!("exception:{}", e.id))
            .copied()
            .unwrap_or(0);
    }
    ReportData {
        tenant: "acme".into(),
        profile: "weekly-exec".into(),
        revision: 3,
        template,
        as_of: Utc.with_ymd_and_hms(2026, 11, 2, 6, 0, 0).unwrap(),
        export_id: "01JEXPORT".into(),
        generator: "Stella 0.1.0".into(),
        scans: current
            .iter()
            .map(|s| ReportScan {
                id: s.id.into(),
                target: s.target.into(),
                evaluated_at: fixture.at,
                disposition: "block".into(),
                findings: s.findings.len() as u64,
                sbom_sha256: s.sbom_sha256.clone(),
                attestation_sha256: stella_domain::canonical::sha256_hex(s.id.as_bytes()),
                inputs_hash: Some(format!(
                    "sha256:{}",
                    stella_domain::canonical::sha256_hex(s.target.as_bytes())
                )),
                policy_digest: Some(about.digest.clone()),
            })
            .collect(),
        policies: vec![about],
        tally,
        changes: if previous.is_empty() {
            Changes::First
        } else {
            Changes::Since {
                previous: PreviousReport {
                    export_id: "01JPREVIOUS".into(),
                    as_of: Utc.with_ymd_and_hms(2026, 10, 26, 6, 0, 0).unwrap(),
                },
                new,
                resolved,
                new_top: new_worst.into_vec(),
                resolved_top: resolved_worst.into_vec(),
            }
        },
        top: worst.into_vec(),
        exceptions,
    }
}

fn pdf(data: &ReportData, fixture: &Fixture, current: &[Scanned]) -> Vec<u8> {
    let by_id: HashMap<&str, &Advisory> = fixture
        .advisories
        .iter()
        .map(|a| (a.id.as_str(), a))
        .collect();
    let mut report = PdfReport::start(data).unwrap();
    for f in each(current, &by_id) {
        report.finding(&ReportFinding::of(&f, fixture.at));
    }
    report.finish(Vec::new()).unwrap()
}

fn xlsx(data: &ReportData, fixture: &Fixture, current: &[Scanned]) -> Vec<u8> {
    let by_id: HashMap<&str, &Advisory> = fixture
        .advisories
        .iter()
        .map(|a| (a.id.as_str(), a))
        .collect();
    let mut report = XlsxReport::start(data).unwrap();
    for f in each(current, &by_id) {
        report.finding(&ReportFinding::of(&f, fixture.at)).unwrap();
    }
    report.finish(Vec::new()).unwrap()
}

fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The PDF's text as poppler extracts it, keeping each line's layout.
fn pdf_text(tools: &Tools, path: &Path) -> String {
    let out = run(
        &tools.pdftotext,
        &["-layout", "-enc", "UTF-8", path.to_str().unwrap(), "-"],
    );
    String::from_utf8(out).unwrap()
}

/// What a rendered page shows: its share of non-white pixels, and whether any is in
/// colour (the chart's bars; text and rules are grey).
#[derive(Debug)]
struct Page {
    inked: f64,
    coloured: bool,
}

/// Every page rendered by `pdftoppm` (PPM, 40 dpi), read back as pixels.
fn render(tools: &Tools, path: &Path, dir: &Path) -> Vec<Page> {
    let prefix = dir.join("page");
    run(
        &tools.pdftoppm,
        &["-r", "40", path.to_str().unwrap(), prefix.to_str().unwrap()],
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ppm"))
        .collect();
    // page-1.ppm .. page-12.ppm sort by their number.
    files.sort_by_key(|p| {
        let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
        stem.rsplit('-').next().unwrap().parse::<u32>().unwrap()
    });
    files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).unwrap();
            let pixels = ppm_pixels(&bytes);
            let inked = pixels.iter().filter(|p| p.iter().any(|c| *c < 240)).count();
            let coloured = pixels.iter().any(|p| {
                let (max, min) = (p.iter().max().unwrap(), p.iter().min().unwrap());
                max - min > 80
            });
            Page {
                inked: inked as f64 / pixels.len() as f64,
                coloured,
            }
        })
        .collect()
}

/// The RGB pixels of a binary PPM (`P6`, 8 bits).
fn ppm_pixels(bytes: &[u8]) -> Vec<[u8; 3]> {
    // The header: P6, width, height, maxval, each after whitespace, then one byte.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(std::str::from_utf8(&bytes[start..at]).unwrap().to_owned());
    }
    assert_eq!(fields[0], "P6");
    assert_eq!(fields[3], "255");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let data = &bytes[at + 1..];
    assert_eq!(data.len(), w * h * 3);
    data.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

const XLSX_CHECKER: &str = r#"
import datetime, json, sys, zipfile, re
import openpyxl

path = sys.argv[1]
wb = openpyxl.load_workbook(path)
out = {"sheets": wb.sheetnames}
def cell(c):
    v = c.value
    if isinstance(v, datetime.datetime):
        v = v.isoformat()
    return {"v": v, "t": c.data_type, "type": type(c.value).__name__,
            "date": c.is_date, "quote": bool(c.quotePrefix), "fmt": c.number_format}
for ws in wb.worksheets:
    rows = [[cell(c) for c in row] for row in ws.iter_rows()]
    out[ws.title] = {
        "max_row": ws.max_row,
        "freeze": ws.freeze_panes,
        "filter": ws.auto_filter.ref,
        "rows": rows,
    }
with zipfile.ZipFile(path) as z:
    charts = sorted(n for n in z.namelist() if n.startswith("xl/charts/chart"))
    out["charts"] = [{"name": n, "refs": re.findall(r"<c:f>([^<]+)</c:f>", z.read(n).decode()),
                      "bar": "<c:barChart>" in z.read(n).decode()} for n in charts]
    out["names"] = sorted(z.namelist())
print(json.dumps(out, default=str))
"#;

fn read_xlsx(tools: &Tools, path: &Path, dir: &Path) -> Value {
    let script = dir.join("check_xlsx.py");
    std::fs::write(&script, XLSX_CHECKER).unwrap();
    let out = run(
        &tools.python,
        &[script.to_str().unwrap(), path.to_str().unwrap()],
    );
    serde_json::from_slice(&out).unwrap()
}

/// The current and previous scans of the test, and the fixture they were made with.
fn scans() -> Option<(Tools, Fixture, Vec<Scanned>, Vec<Scanned>)> {
    let tools = tools()?;
    let data = data_dir()?;
    let fixture = Fixture::load(&data);
    // The previous report had the older bridge and a target since dropped from the
    // profile: its findings are resolved.
    let previous = vec![
        fixture.scan(
            &data,
            "proton-bridge_proton-bridge-v1.6.3.bom.json",
            "proton-bridge",
            "01JPREV",
        ),
        fixture.scan(
            &data,
            "proton-bridge_proton-bridge-v1.8.0.bom.json",
            "legacy-bridge",
            "01JLEGACY",
        ),
    ];
    let current = vec![
        fixture.scan(
            &data,
            "proton-bridge_proton-bridge-v1.8.0.bom.json",
            "proton-bridge",
            "01JNEW",
        ),
        fixture.scan(
            &data,
            "proton-bridge_proton-bridge-v1.6.3.bom.json",
            "=HYPERLINK(\"https://evil.example\")",
            "01JODD",
        ),
    ];
    Some((tools, fixture, current, previous))
}

#[test]
fn pdf_reports_read_as_a_person_reads_them() {
    let Some((tools, fixture, current, previous)) = scans() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let total: usize = current.iter().map(|s| s.findings.len()).sum();
    assert!(total > 100, "{total} findings");

    for template in [Template::Executive, Template::Detailed] {
        let data = report_data(&fixture, &current, &previous, template);
        let bytes = pdf(&data, &fixture, &current);
        assert_eq!(
            pdf(&data, &fixture, &current),
            bytes,
            "equal data, byte-identical PDF"
        );
        assert!(bytes.starts_with(b"%PDF-"));
        let path = dir.path().join(format!("report-{}.pdf", template.name()));
        std::fs::write(&path, &bytes).unwrap();
        keep(&path);
        let text = pdf_text(&tools, &path);

        // The summary: tenant, targets, counts, policy, changes.
        for expected in [
            "Vulnerability report",
            "Profile weekly-exec (revision 3) for tenant acme",
            "As of 2026-11-02 06:00 UTC",
            "proton-bridge, =HYPERLINK(\"https://evil.example\")",
            &format!("{total} in total"),
            &format!(
                "{} block, {} warn, {} pass",
                data.tally.by_disposition[0],
                data.tally.by_disposition[1],
                data.tally.by_disposition[2]
            ),
            "Findings by severity",
            "Findings by disposition",
            &format!("Top findings (20 of {total}, worst first)"),
            "since the previous report (export 01JPREVIOUS as of 2026-10-26 06:00 UTC)",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} not in the PDF text:\n{text}"
            );
        }
        let Changes::Since {
            new,
            resolved,
            new_top,
            resolved_top,
            ..
        } = &data.changes
        else {
            panic!("the report compares with a previous one")
        };
        assert!(*new > 0 && *resolved > 0, "{new} new, {resolved} resolved");
        assert!(text.contains(&format!("{new} new, {resolved} resolved")));
        // The worst findings, with the versions that fix them, and the changes.
        for f in data.top.iter().chain(new_top).chain(resolved_top) {
            assert!(
                text.contains(&f.vulnerability_id),
                "{} in the PDF",
                f.vulnerability_id
            );
        }
        let fixed = data
            .top
            .iter()
            .find(|f| !f.fixed_versions.is_empty())
            .expect("a top finding with a fix");
        assert!(
            text.contains(&fixed.fixed_versions[0]),
            "{:?}",
            fixed.fixed_versions
        );
        // Sorted worst first.
        assert!(data
            .top
            .windows(2)
            .all(|w| worst_first(&w[0], &w[1]).is_le()));
        // Exceptions: the one in force with its expiry and the findings it decided, the
        // expired one as expired.
        let echo = data
            .exceptions
            .iter()
            .find(|e| e.id == "echo-accepted")
            .unwrap();
        assert!(echo.findings > 0, "the exception decided findings");
        assert!(text.contains("echo-accepted"));
        assert!(text.contains("in force until 2027-01-01 00:00 UTC"));
        assert!(text.contains("old-waiver"));
        assert!(text.contains("expired 2025-01-01 00:00 UTC"));
        assert!(text.contains("1 in force, 1 expired"));
        // Every digest an auditor checks, whole, on one line.
        for scan in &data.scans {
            for digest in [
                format!("sha256:{}", scan.sbom_sha256),
                format!("sha256:{}", scan.attestation_sha256),
                scan.inputs_hash.clone().unwrap(),
            ] {
                assert!(text.contains(&digest), "{digest} in the PDF");
            }
        }
        assert!(text.contains(&fixture.policy.digest()));

        // Pages: numbered, none blank, the chart drawn.
        let pages = render(&tools, &path, &dir.path().join(template.name()).tap_mkdir());
        for (i, page) in pages.iter().enumerate() {
            assert!(text.contains(&format!("page {}", i + 1)), "page {}", i + 1);
            assert!(page.inked > 0.005, "page {} is blank: {page:?}", i + 1);
        }
        assert!(pages[0].coloured, "the chart's bars: {pages:?}");
        match template {
            Template::Executive => assert!(pages.len() <= 4, "{} pages", pages.len()),
            Template::Detailed => {
                // Every finding listed: more pages, each id in the text.
                assert!(pages.len() >= 5, "{} pages", pages.len());
                assert!(text.contains(&format!("All findings ({total})")));
                let by_id: HashMap<&str, &Advisory> = fixture
                    .advisories
                    .iter()
                    .map(|a| (a.id.as_str(), a))
                    .collect();
                for f in each(&current, &by_id) {
                    assert!(text.contains(f.vulnerability_id));
                }
                assert!(!text.contains("findings listed of"), "all listed");
            }
        }
    }

    // The first report of a profile says so.
    let data = report_data(&fixture, &current, &[], Template::Executive);
    let path = dir.path().join("first.pdf");
    std::fs::write(&path, pdf(&data, &fixture, &current)).unwrap();
    let text = pdf_text(&tools, &path);
    assert!(text.contains("first report"), "{text}");
}

#[test]
fn xlsx_reports_read_as_a_person_reads_them() {
    let Some((tools, fixture, current, previous)) = scans() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let total: usize = current.iter().map(|s| s.findings.len()).sum();
    for template in [Template::Executive, Template::Detailed] {
        let data = report_data(&fixture, &current, &previous, template);
        let bytes = xlsx(&data, &fixture, &current);
        assert_eq!(
            xlsx(&data, &fixture, &current),
            bytes,
            "equal data, byte-identical workbook"
        );
        let path = dir.path().join(format!("report-{}.xlsx", template.name()));
        std::fs::write(&path, &bytes).unwrap();
        keep(&path);
        let book = read_xlsx(&tools, &path, dir.path());
        assert_eq!(
            book["sheets"],
            serde_json::json!(["Summary", "Findings", "Exceptions", "Evidence"])
        );

        // Findings: the header, frozen, filtered; one row per finding listed.
        let findings = &book["Findings"];
        let rows = findings["rows"].as_array().unwrap();
        let header: Vec<&str> = rows[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["v"].as_str().unwrap())
            .collect();
        assert_eq!(header, FINDING_COLUMNS);
        assert_eq!(findings["freeze"], "A2");
        let listed = match template {
            Template::Executive => TOP_FINDINGS,
            Template::Detailed => total,
        };
        assert_eq!(rows.len(), listed + 1, "a row per finding");
        assert_eq!(findings["filter"], format!("A1:O{}", listed + 1));
        let col = |name: &str| FINDING_COLUMNS.iter().position(|c| *c == name).unwrap();
        for row in &rows[1..] {
            let at = &row[col("Evaluated at")];
            assert_eq!(at["type"], "datetime", "{at}");
            assert_eq!(at["v"], "2026-11-01T00:00:00");
            let cvss = &row[col("CVSS")];
            if !cvss["v"].is_null() {
                assert_eq!(cvss["t"], "n", "{cvss}");
                assert!(cvss["v"].as_f64().unwrap() <= 10.0);
            }
            assert_eq!(row[col("Vulnerability")]["t"], "s");
            let target = &row[col("Target")];
            if target["v"].as_str().unwrap().starts_with('=') {
                // Text, shown as written, never run.
                assert_eq!(target["t"], "s", "{target}");
                assert_eq!(target["quote"], true, "{target}");
                assert_eq!(target["v"], "=HYPERLINK(\"https://evil.example\")");
            } else {
                assert_eq!(target["quote"], false);
            }
        }
        if template == Template::Executive {
            let ids: Vec<&str> = rows[1..]
                .iter()
                .map(|r| r[col("Vulnerability")]["v"].as_str().unwrap())
                .collect();
            let top: Vec<&str> = data
                .top
                .iter()
                .map(|f| f.vulnerability_id.as_str())
                .collect();
            assert_eq!(ids, top, "the worst findings, worst first");
        } else {
            assert!(rows[1..]
                .iter()
                .any(|r| r[col("Target")]["v"].as_str().unwrap().starts_with('=')));
        }

        // Summary: label/value rows with typed values.
        let summary = book["Summary"]["rows"].as_array().unwrap();
        let value = |label: &str| {
            summary
                .iter()
                .find(|r| r[0]["v"] == label)
                .unwrap_or_else(|| panic!("{label} in the summary"))[1]
                .clone()
        };
        assert_eq!(value("Tenant")["v"], "acme");
        assert_eq!(value("Findings")["v"], total);
        assert_eq!(value("Findings")["t"], "n");
        assert_eq!(value("As of")["v"], "2026-11-02T06:00:00");
        assert_eq!(value("Scans")["v"], 2);
        let Changes::Since { new, resolved, .. } = &data.changes else {
            panic!()
        };
        assert_eq!(value("New findings")["v"], *new);
        assert_eq!(value("Resolved findings")["v"], *resolved);
        assert_eq!(value("block")["v"], data.tally.by_disposition[0]);
        assert_eq!(value("critical")["v"], data.tally.by_severity[0]);
        assert_eq!(value("Exceptions in force")["v"], 1);
        // A native bar chart over the severity counts (and one over the dispositions).
        let charts = book["charts"].as_array().unwrap();
        assert_eq!(charts.len(), 2, "{charts:?}");
        assert!(charts.iter().all(|c| c["bar"] == true));
        let refs: Vec<String> = charts
            .iter()
            .flat_map(|c| c["refs"].as_array().unwrap().clone())
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        let severities_at = summary
            .iter()
            .position(|r| r[0]["v"] == "Severity")
            .unwrap()
            + 1;
        assert!(
            refs.contains(&format!(
                "Summary!$B${}:$B${}",
                severities_at + 1,
                severities_at + 6
            )),
            "{refs:?}"
        );

        // Exceptions: expiry as a date or "never", status, findings decided.
        let exceptions = book["Exceptions"]["rows"].as_array().unwrap();
        assert_eq!(exceptions.len(), 3);
        let echo = exceptions
            .iter()
            .find(|r| r[0]["v"] == "echo-accepted")
            .unwrap();
        assert_eq!(echo[8]["type"], "datetime");
        assert_eq!(echo[8]["v"], "2027-01-01T00:00:00");
        assert_eq!(echo[9]["v"], "in force until 2027-01-01 00:00 UTC");
        assert!(echo[10]["v"].as_u64().unwrap() > 0);

        // Evidence: every scan's digests.
        let evidence = book["Evidence"]["rows"].as_array().unwrap();
        for scan in &data.scans {
            let row = evidence
                .iter()
                .find(|r| r[1]["v"] == scan.id.as_str())
                .unwrap();
            assert_eq!(row[5]["v"], scan.sbom_sha256.as_str());
            assert_eq!(row[6]["v"], scan.attestation_sha256.as_str());
            assert_eq!(row[2]["type"], "datetime");
        }
        assert!(evidence
            .iter()
            .any(|r| r[2]["v"] == fixture.policy.digest().as_str()));
    }
}

/// Copies a written report to `STELLA_TEST_KEEP_REPORTS` (a folder), when set, for a
/// person to look at.
fn keep(path: &Path) {
    if let Some(dir) = std::env::var_os("STELLA_TEST_KEEP_REPORTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(path, dir.join(path.file_name().unwrap())).unwrap();
    }
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
