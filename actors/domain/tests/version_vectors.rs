//! The peer test vectors in `../shared/data/version-vectors` (aboutcode `univers` test
//! data and apk-tools' own `version.data`) run against `stella_domain::version`.
//! Skipped, with a message, where the shared data folder is absent. Vectors that encode a
//! convention other than the ecosystem's reference implementation are excluded by name
//! below, each with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::path::PathBuf;

use serde_json::Value;
use stella_domain::version::{compare, Version};
use stella_domain::Ecosystem;

fn data_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/version-vectors");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: {} is absent; the version vectors were not run",
            dir.display()
        );
        None
    }
}

fn load(name: &str) -> Option<Vec<Value>> {
    let path = data_dir()?.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(serde_json::from_str(&text).unwrap())
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Runs a univers `*_version_cmp.json` file: `comparison` cases give the versions in
/// ascending order, `equality` cases say whether two versions are equal. Returns
/// (passed, excluded).
fn run_cmp_file(
    file: &str,
    ecosystem: Ecosystem,
    excluded: &[(&[&str], &str)],
) -> Option<(usize, usize)> {
    let cases = load(file)?;
    let mut passed = 0;
    let mut skipped = 0;
    let mut failures = Vec::new();
    for case in &cases {
        let input = strs(&case["input"]["versions"]);
        if let Some((_, why)) = excluded
            .iter()
            .find(|(vs, _)| vs.iter().map(|s| s.to_string()).collect::<Vec<_>>() == input)
        {
            eprintln!("{file}: excluded {input:?}: {why}");
            skipped += 1;
            continue;
        }
        let ok = match case["test_type"].as_str().unwrap() {
            "comparison" => {
                let expected = strs(&case["expected_output"]);
                expected.windows(2).all(|w| {
                    compare(ecosystem, &w[0], &w[1]).map_err(|e| e.to_string())
                        == Ok(Ordering::Less)
                })
            }
            "equality" => {
                let want = case["expected_output"].as_bool().unwrap();
                let got = compare(ecosystem, &input[0], &input[1]).map(|o| o == Ordering::Equal);
                got == Ok(want)
            }
            other => panic!("{file}: unknown test type {other}"),
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!(
                "{} {:?} expected {}",
                case["test_type"], input, case["expected_output"]
            ));
        }
    }
    eprintln!(
        "{file}: {passed} passed, {skipped} excluded, {} failed of {}",
        failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{file}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(passed + skipped, cases.len());
    Some((passed, skipped))
}

#[test]
fn maven_vectors() {
    run_cmp_file("maven_version_cmp.json", Ecosystem::Maven, &[]);
}

#[test]
fn alpine_vectors() {
    run_cmp_file("alpine_version_cmp.json", Ecosystem::Alpine, &[]);
}

#[test]
fn nuget_vectors() {
    run_cmp_file("nuget_version_cmp.json", Ecosystem::NuGet, &[]);
}

#[test]
fn debian_vectors() {
    run_cmp_file("deb_version_python_pkg_test.json", Ecosystem::Debian, &[]);
}

/// apk-tools' own `test/version.data`: one `a op b` per line.
#[test]
fn apk_tools_version_data() {
    let Some(dir) = data_dir() else { return };
    let text = std::fs::read_to_string(dir.join("alpine_test.txt")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [a, op, b] = parts[..] else {
            panic!("unexpected line {line:?}")
        };
        let want = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            other => panic!("unexpected operator {other:?} in {line:?}"),
        };
        match compare(Ecosystem::Alpine, a, b) {
            Ok(got) if got == want => checked += 1,
            got => failures.push(format!("{line}: got {got:?}")),
        }
    }
    eprintln!(
        "alpine_test.txt: {checked} passed, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 700);
}

/// The ecosystem whose ordering a `vers:` scheme names, where Stella has it.
fn vers_ecosystem(scheme: &str) -> Option<Ecosystem> {
    Some(match scheme {
        "npm" => Ecosystem::Npm,
        "pypi" => Ecosystem::PyPI,
        "golang" => Ecosystem::Go,
        "composer" => Ecosystem::Packagist,
        "gem" => Ecosystem::RubyGems,
        "nuget" => Ecosystem::NuGet,
        "maven" => Ecosystem::Maven,
        "deb" => Ecosystem::Debian,
        "alpine" | "apk" => Ecosystem::Alpine,
        _ => return None,
    })
}

/// Splits `vers:<scheme>/<c1>|<c2>…` into the scheme and (operator, version) pairs.
fn parse_vers(vers: &str) -> (String, Vec<(String, String)>) {
    let rest = vers.strip_prefix("vers:").unwrap();
    let (scheme, constraints) = rest.split_once('/').unwrap();
    let pairs = constraints
        .split('|')
        .map(|c| {
            let c = c.trim();
            let op_len = c
                .find(|ch: char| !matches!(ch, '<' | '>' | '=' | '!'))
                .unwrap_or(c.len());
            (c[..op_len].to_owned(), c[op_len..].to_owned())
        })
        .collect();
    (scheme.to_owned(), pairs)
}

/// `vers` strings in the range files that do not hold what the test checks, and why.
const RANGE_EXCLUSIONS: [(&str, &str); 4] = [
    (
        "vers:composer/<2020.0.0-09-14",
        "GitLab data noise: Composer's VersionParser rejects `2020.0.0-09-14` (neither a \
         classical nor a date version)",
    ),
    (
        "vers:composer/2016.0.0-10-31",
        "GitLab data noise: Composer's VersionParser rejects `2016.0.0-10-31`",
    ),
    (
        "vers:composer/1.5.6-d",
        "Composer's VersionParser rejects `1.5.6-d` (`d` is no stability flag)",
    ),
    (
        "vers:composer/<2.8.1|<3.0.0-RC4|>=3.0.0-a1",
        "univers kept the native constraint order here: `3.0.0-a1` (alpha) < `3.0.0-RC4` in \
         Composer, so this vers is not ascending by Composer's own ordering",
    ),
];

/// The `range/` "from native" files map an advisory's native range to a `vers:` range
/// whose constraints the vers spec requires in ascending version order. Those files are
/// about range syntax conversion, which Stella does not do; what maps to our functions
/// is the order: every version there must parse in its ecosystem, and each `vers`'
/// constraints must be ascending by our ordering (a peer's order on real advisory
/// versions).
#[test]
fn range_vectors_versions_parse_and_are_in_vers_order() {
    let Some(dir) = data_dir() else { return };
    let files = [
        "range/npm_range_from_native.json",
        "range/pypi_range_from_native.json",
        "range/gem_range_from_native.json",
        "range/nuget_range_from_native.json",
        "range/gitlab/npm_gitlab_range_from_native.json",
        "range/gitlab/pypi_gitlab_range_from_native.json",
        "range/gitlab/golang_gitlab_range_from_native.json",
        "range/gitlab/composer_gitlab_range_from_native.json",
        "range/gitlab/gem_gitlab_range_from_native.json",
    ];
    let mut total_versions = 0;
    let mut total_ranges = 0;
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
        let mut ranges = 0;
        for case in &cases {
            let vers = case["expected_output"].as_str().unwrap();
            if let Some((_, why)) = RANGE_EXCLUSIONS.iter().find(|(v, _)| *v == vers) {
                eprintln!("{file}: excluded {vers}: {why}");
                continue;
            }
            let (scheme, constraints) = parse_vers(vers);
            let ecosystem = vers_ecosystem(&scheme)
                .unwrap_or_else(|| panic!("{file}: unexpected scheme {scheme}"));
            if constraints.iter().any(|(_, v)| v == "*") {
                continue;
            }
            let mut parsed = Vec::new();
            for (_, v) in &constraints {
                match Version::parse(ecosystem, v) {
                    Ok(p) => parsed.push(p),
                    Err(e) => failures.push(format!("{file}: {vers}: {e}")),
                }
            }
            total_versions += parsed.len();
            if parsed.len() == constraints.len() && parsed.windows(2).any(|w| w[0] > w[1]) {
                failures.push(format!(
                    "{file}: {vers}: constraints not ascending in our order"
                ));
            }
            ranges += 1;
        }
        eprintln!("{file}: {ranges} ranges checked");
        total_ranges += ranges;
    }
    eprintln!("range vectors: {total_ranges} ranges, {total_versions} versions parsed");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The vers containment algorithm over our ordering, for the `*_range_containment`
/// vectors: equal to a `=` constraint or within an interval formed by consecutive
/// constraints (vers spec, "Checking if a version is contained within a range").
fn vers_contains(ecosystem: Ecosystem, vers: &str, version: &str) -> bool {
    let (_, constraints) = parse_vers(vers);
    let v = Version::parse(ecosystem, version).unwrap();
    let mut rest = Vec::new();
    for (op, c) in &constraints {
        if c == "*" {
            return true;
        }
        let cv = Version::parse(ecosystem, c).unwrap();
        match op.as_str() {
            "" | "=" if v == cv => return true,
            "!=" if v == cv => return false,
            "" | "=" | "!=" => {}
            _ => rest.push((op.clone(), cv)),
        }
    }
    if rest.is_empty() {
        return false;
    }
    let contains = |op: &str, c: &Version| match op {
        "<" => v < *c,
        "<=" => v <= *c,
        ">" => v > *c,
        ">=" => v >= *c,
        _ => false,
    };
    if rest.len() == 1 {
        return contains(&rest[0].0, &rest[0].1);
    }
    for (i, (op, c)) in rest.iter().enumerate() {
        if i == 0 && op.starts_with('<') && contains(op, c) {
            return true;
        }
        if i == rest.len() - 1 && op.starts_with('>') && contains(op, c) {
            return true;
        }
        if let Some((next_op, next_c)) = rest.get(i + 1) {
            if op.starts_with('>')
                && next_op.starts_with('<')
                && contains(op, c)
                && contains(next_op, next_c)
            {
                return true;
            }
        }
    }
    false
}

#[test]
fn pypi_range_containment_vectors() {
    let Some(cases) = load("range/pypi_range_containment.json") else {
        return;
    };
    for case in &cases {
        let vers = case["input"]["vers"].as_str().unwrap();
        let version = case["input"]["version"].as_str().unwrap();
        let want = case["expected_output"].as_bool().unwrap();
        assert_eq!(
            vers_contains(Ecosystem::PyPI, vers, version),
            want,
            "{vers} ∋ {version}"
        );
    }
    eprintln!("pypi_range_containment.json: {} passed", cases.len());
    // `npm_range_containment.json` holds a single case whose range is `vers:nginx/*`:
    // an nginx scheme Stella has no ordering for, so it is not run.
}
