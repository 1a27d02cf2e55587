//! OSV range evaluation on the real advisory databases in `../shared/data/advisories`:
//! every record deserializes into [`OsvAffected`], every range evaluates without error,
//! and, for PyPI, the explicit `versions` list that the database enumerated from the
//! ranges agrees with our evaluation of the ranges alone. Skipped, with a message, where
//! the shared data folder is absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;
use stella_domain::version::{is_affected, OsvAffected, RangeType};
use stella_domain::Ecosystem;

fn records(name: &str) -> Option<Vec<Value>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/advisories")
        .join(name);
    if !path.is_file() {
        eprintln!("SKIP: {} is absent", path.display());
        return None;
    }
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        out.push(serde_json::from_str(&text).unwrap());
    }
    Some(out)
}

fn affected_entries(record: &Value) -> Vec<OsvAffected> {
    record["affected"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| serde_json::from_value(a.clone()).unwrap())
        .collect()
}

/// Listed versions that lie outside the `ECOSYSTEM` ranges for a reason other than our
/// ordering, each with that reason.
const OUTSIDE_BY_DESIGN: [(&str, &str, &str); 8] = [
    (
        "PYSEC-2023-177",
        "23.9.0",
        "gevent: the list comes from the GIT range's tags; the ECOSYSTEM range says fixed in 23.9.0",
    ),
    ("PYSEC-2023-177", "23.9.0.post1", "gevent: as 23.9.0, listed from the GIT range"),
    (
        "PYSEC-2023-61",
        "3.2a1",
        "django: introduced 3.2, and 3.2a1 < 3.2 in PEP 440 (packaging agrees); OSV.dev's list adds the pre-releases of the introduced version",
    ),
    ("PYSEC-2023-61", "3.2b1", "django: pre-release of the introduced 3.2, as 3.2a1"),
    ("PYSEC-2023-61", "3.2rc1", "django: pre-release of the introduced 3.2, as 3.2a1"),
    ("PYSEC-2023-61", "4.2a1", "django: pre-release of the introduced 4.2, as 3.2a1"),
    ("PYSEC-2023-61", "4.2b1", "django: pre-release of the introduced 4.2, as 3.2a1"),
    ("PYSEC-2023-61", "4.2rc1", "django: pre-release of the introduced 4.2, as 3.2a1"),
];

/// Versions OSV listed as affected must be inside the ranges by our evaluation, except
/// the few in [`OUTSIDE_BY_DESIGN`].
#[test]
fn pypi_listed_versions_fall_inside_their_ranges() {
    let Some(records) = records("PyPI-all.zip") else {
        return;
    };
    let mut checked = 0;
    let mut unparsable = Vec::new();
    let mut outside = Vec::new();
    for record in &records {
        let id = record["id"].as_str().unwrap_or("?");
        for affected in affected_entries(record) {
            if !affected
                .ranges
                .iter()
                .any(|r| r.kind == RangeType::Ecosystem)
            {
                continue;
            }
            let ranges_only = OsvAffected {
                versions: Vec::new(),
                ..affected.clone()
            };
            for v in &affected.versions {
                match is_affected(Ecosystem::PyPI, v, &ranges_only) {
                    Ok(true) => checked += 1,
                    Ok(false) => {
                        match OUTSIDE_BY_DESIGN
                            .iter()
                            .find(|(i, x, _)| *i == id && x == v)
                        {
                            Some((_, _, why)) => eprintln!("excluded {id} {v}: {why}"),
                            None => outside.push(format!("{id}: {v}")),
                        }
                    }
                    Err(e) => unparsable.push(format!("{id}: {e}")),
                }
            }
        }
    }
    eprintln!(
        "PyPI: {checked} listed versions inside their ranges, {} outside, {} not PEP 440",
        outside.len(),
        unparsable.len()
    );
    for line in unparsable.iter().take(10) {
        eprintln!("  not PEP 440: {line}");
    }
    assert!(checked > 50_000, "only {checked} versions checked");
    assert!(outside.is_empty(), "{}", outside.join("\n"));
    // The database enumerates versions from PyPI, where a few legacy releases are not
    // PEP 440; those are the only errors allowed, and they must stay rare.
    assert!(
        unparsable.len() * 1000 < checked,
        "{}",
        unparsable.join("\n")
    );
}

/// Every Go range is a `SEMVER` range over module versions; each evaluates, and the
/// fixed version itself is never affected while the introduced one is.
#[test]
fn go_ranges_evaluate_at_their_bounds() {
    let Some(records) = records("Go-all.zip") else {
        return;
    };
    let mut ranges = 0;
    let mut failures = Vec::new();
    for record in &records {
        let id = record["id"].as_str().unwrap_or("?");
        for affected in affected_entries(record) {
            for range in &affected.ranges {
                assert_eq!(range.kind, RangeType::Semver, "{id}");
                let single = OsvAffected {
                    ranges: vec![range.clone()],
                    versions: Vec::new(),
                    package: None,
                };
                for event in &range.events {
                    let (v, want) = match event {
                        stella_domain::version::OsvEvent::Introduced(v) if v != "0" => (v, true),
                        stella_domain::version::OsvEvent::Fixed(v) => (v, false),
                        _ => continue,
                    };
                    match is_affected(Ecosystem::Go, &format!("v{v}"), &single) {
                        Ok(got) if got == want => {}
                        got => failures.push(format!("{id}: v{v}: want {want}, got {got:?}")),
                    }
                }
                ranges += 1;
            }
        }
    }
    eprintln!("Go: {ranges} ranges evaluated at their bounds");
    assert!(ranges > 4_000, "only {ranges} ranges");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
