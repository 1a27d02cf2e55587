//! Differential tests: our orderings against each ecosystem's reference implementation,
//! over thousands of version pairs.
//!
//! - PEP 440 against Python `packaging` (`STELLA_TEST_PYTHON`), on every version string
//!   of the PyPI advisory database (`../shared/data/advisories/PyPI-all.zip`);
//! - npm and Go against node `semver` (`STELLA_TEST_NODE_SEMVER`, the package folder), on
//!   every version of the Go vulnerability database (`Go-all.zip`), pseudo-versions
//!   included; Go is checked with the `v` prefix it has in `go.mod`;
//! - Debian against `dpkg --compare-versions`, on Debian-looking pairs generated from a
//!   fixed seed (the advisory sets hold no Debian versions).
//!
//! Each reference runs as one process fed all pairs on stdin (dpkg, which compares one
//! pair per run, through one shell loop). Both the order and the verdict on validity must
//! agree. Without the tool the test skips with a message, unless `STELLA_TEST_SERVICES`
//! is set (as `ops/test.sh` does), in which case a missing tool is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use stella_domain::version::{compare, Version};
use stella_domain::Ecosystem;

/// The path in `var`, or `None` (with a message) to skip; with `STELLA_TEST_SERVICES`
/// set, a missing tool fails the test.
fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!("{var} is not set but STELLA_TEST_SERVICES is: run `ops/services.sh up`")
        }
        _ => {
            eprintln!("SKIP: {var} is not set (run `ops/services.sh up` and source its env)");
            None
        }
    }
}

fn advisories(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/advisories")
        .join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("SKIP: {} is absent", path.display());
        None
    }
}

/// Every version string in the OSV records of a zip: `versions` lists and the bounds of
/// `SEMVER`/`ECOSYSTEM` ranges (`"0"` and `"*"` left out).
fn advisory_versions(zip_path: &Path) -> BTreeSet<String> {
    let file = std::fs::File::open(zip_path).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut out = BTreeSet::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        if !entry.name().ends_with(".json") {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        let record: Value = serde_json::from_str(&text).unwrap();
        for affected in record["affected"].as_array().into_iter().flatten() {
            for v in affected["versions"].as_array().into_iter().flatten() {
                out.extend(v.as_str().map(str::to_owned));
            }
            for range in affected["ranges"].as_array().into_iter().flatten() {
                if range["type"] == "GIT" {
                    continue;
                }
                for event in range["events"].as_array().into_iter().flatten() {
                    for (_, v) in event.as_object().into_iter().flatten() {
                        if let Some(v) = v.as_str().filter(|v| *v != "0" && *v != "*") {
                            out.insert(v.to_owned());
                        }
                    }
                }
            }
        }
    }
    out
}

/// A small deterministic generator (xorshift64*), so runs compare the same pairs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Neighbours in sorted order (close versions: the interesting cases) plus random pairs.
fn pairs_from(versions: &BTreeSet<String>, random: usize, seed: u64) -> Vec<(String, String)> {
    let list: Vec<&String> = versions.iter().collect();
    let mut pairs: Vec<(String, String)> = list
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect();
    let mut rng = Rng(seed);
    for _ in 0..random {
        let a = list[rng.below(list.len())];
        let b = list[rng.below(list.len())];
        pairs.push((a.clone(), b.clone()));
    }
    pairs
}

/// Runs `cmd` with one `a<TAB>b` line per pair on stdin; one answer line per pair.
fn run_reference(mut cmd: Command, pairs: &[(String, String)]) -> Vec<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut input = String::new();
    for (a, b) in pairs {
        input.push_str(&format!("{a}\t{b}\n"));
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{cmd:?} failed: {:?}",
        output.status
    );
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), pairs.len(), "one answer per pair from {cmd:?}");
    lines
}

/// What we say about a pair, in the references' answer format: `-1`/`0`/`1`, or
/// `bad XY` with X, Y = 1 where that version is valid.
fn our_answer(ecosystem: Ecosystem, a: &str, b: &str) -> String {
    match compare(ecosystem, a, b) {
        Ok(Ordering::Less) => "-1".into(),
        Ok(Ordering::Equal) => "0".into(),
        Ok(Ordering::Greater) => "1".into(),
        Err(_) => format!(
            "bad {}{}",
            u8::from(Version::parse(ecosystem, a).is_ok()),
            u8::from(Version::parse(ecosystem, b).is_ok())
        ),
    }
}

/// Compares our answers with the reference's; returns the number of ordered pairs.
fn check(
    label: &str,
    ecosystem: Ecosystem,
    pairs: &[(String, String)],
    theirs: &[String],
    map: impl Fn(&str) -> String,
) -> usize {
    let mut disagreements = Vec::new();
    let mut ordered = 0;
    for ((a, b), want) in pairs.iter().zip(theirs) {
        let got = our_answer(ecosystem, &map(a), &map(b));
        if got == *want {
            if !got.starts_with("bad") {
                ordered += 1;
            }
        } else {
            disagreements.push(format!(
                "{:?} vs {:?}: reference {want}, ours {got}",
                map(a),
                map(b)
            ));
        }
    }
    eprintln!(
        "{label}: {} pairs compared, {ordered} ordered by both, {} both rejected, {} disagreements",
        pairs.len(),
        pairs.len() - ordered - disagreements.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{label}: {} disagreements with the reference, first ones:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    ordered
}

const PACKAGING_SCRIPT: &str = r#"
import sys
from packaging.version import Version, InvalidVersion
def parse(s):
    try:
        return Version(s)
    except InvalidVersion:
        return None
out = []
for line in sys.stdin:
    a, b = line.rstrip("\n").split("\t")
    va, vb = parse(a), parse(b)
    if va is None or vb is None:
        out.append("bad %d%d" % (va is not None, vb is not None))
    else:
        out.append(str((va > vb) - (va < vb)))
sys.stdout.write("".join(x + "\n" for x in out))
"#;

#[test]
fn pep440_agrees_with_python_packaging_on_pypi_advisories() {
    let Some(python) = tool("STELLA_TEST_PYTHON") else {
        return;
    };
    let Some(zip) = advisories("PyPI-all.zip") else {
        return;
    };
    let versions = advisory_versions(&zip);
    let pairs = pairs_from(&versions, 15_000, 0x5eed_0440);
    let mut cmd = Command::new(python);
    cmd.args(["-c", PACKAGING_SCRIPT]);
    let theirs = run_reference(cmd, &pairs);
    let ordered = check(
        "PyPI vs packaging",
        Ecosystem::PyPI,
        &pairs,
        &theirs,
        str::to_owned,
    );
    assert!(versions.len() > 5_000, "{} versions", versions.len());
    assert!(
        ordered > 10_000,
        "only {ordered} pairs were ordered by both"
    );
}

const SEMVER_SCRIPT: &str = r#"
const semver = require(process.argv[1]);
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.length > 0);
const out = lines.map((line) => {
  const [a, b] = line.split("\t");
  const va = semver.valid(a) !== null, vb = semver.valid(b) !== null;
  if (!va || !vb) return `bad ${va ? 1 : 0}${vb ? 1 : 0}`;
  return String(semver.compare(a, b));
});
process.stdout.write(out.map((l) => l + "\n").join(""));
"#;

fn node_semver_answers(dir: &str, pairs: &[(String, String)]) -> Vec<String> {
    let mut cmd = Command::new(std::env::var("STELLA_TEST_NODE").unwrap_or_else(|_| "node".into()));
    cmd.args(["-e", SEMVER_SCRIPT, dir]);
    run_reference(cmd, pairs)
}

#[test]
fn npm_and_go_agree_with_node_semver_on_go_advisories() {
    let Some(dir) = tool("STELLA_TEST_NODE_SEMVER") else {
        return;
    };
    let Some(zip) = advisories("Go-all.zip") else {
        return;
    };
    let versions = advisory_versions(&zip);
    // A few spellings node-semver and npm treat specially, next to the real versions.
    let mut versions = versions;
    for extra in EXTRAS {
        versions.insert(extra.to_owned());
    }
    let pairs = pairs_from(&versions, 12_000, 0x5eed_0960);
    let theirs = node_semver_answers(&dir, &pairs);
    let ordered = check(
        "npm vs node semver",
        Ecosystem::Npm,
        &pairs,
        &theirs,
        str::to_owned,
    );
    assert!(
        ordered > 10_000,
        "only {ordered} pairs were ordered by both"
    );

    // Go: the same pairs with Go's `v` prefix; node-semver accepts the prefix and Go's
    // order is SemVer precedence, so the answers must be the same (the odd spellings
    // above are left out: Go has its own rules for them, tested in the unit tests).
    let go_pairs: Vec<(String, String)> = pairs
        .iter()
        .filter(|(a, b)| !is_extra(a) && !is_extra(b))
        .cloned()
        .collect();
    let theirs = node_semver_answers(&dir, &go_pairs);
    let ordered = check(
        "Go vs node semver",
        Ecosystem::Go,
        &go_pairs,
        &theirs,
        |v| format!("v{v}"),
    );
    assert!(
        ordered > 10_000,
        "only {ordered} pairs were ordered by both"
    );
}

const EXTRAS: [&str; 7] = [
    "v1.2.3",
    "=1.2.3",
    "1.2",
    "01.2.3",
    "1.2.3-01",
    "1.2.3+build.7",
    " 1.2.3 ",
];

fn is_extra(v: &str) -> bool {
    EXTRAS.contains(&v)
}

/// Debian-looking versions: epochs, upstream with `~`, `+`, letters, revisions like
/// `1ubuntu2`, `2+deb12u1`, `1~bpo11+1`, and close variants of each other.
fn debian_versions(rng: &mut Rng, n: usize) -> Vec<String> {
    let upstream_tails = [
        "",
        "",
        "",
        "~rc1",
        "~rc2",
        "~beta",
        "~~",
        "~",
        "+dfsg",
        "+dfsg1",
        "+ds",
        "a",
        "b",
        ".1",
        ".0",
        ".00",
        "+git20240101",
        "~git20231212.abcdef",
        "+really1.0",
        "-1",
    ];
    let revisions = [
        "",
        "",
        "1",
        "2",
        "1ubuntu1",
        "1ubuntu2",
        "0ubuntu0.22.04.1",
        "2+deb12u1",
        "2+deb12u2",
        "1~bpo11+1",
        "1build1",
        "3.1",
        "1+b1",
        "0",
        "10",
    ];
    let mut out: Vec<String> = Vec::with_capacity(n);
    while out.len() < n {
        let v = if !out.is_empty() && rng.below(3) == 0 {
            // A close variant of an earlier version: tweak one character class.
            let base = out[rng.below(out.len())].clone();
            let suffix = rng.pick(&["1", "~1", "+1", "a", ".0", "0"]);
            if base.contains('-') {
                format!("{base}{suffix}").replace("-~", "-0~")
            } else {
                format!("{base}{}", suffix.trim_start_matches('-'))
            }
        } else {
            let epoch = match rng.below(6) {
                0 => "1:".to_owned(),
                1 => format!("{}:", rng.below(3)),
                _ => String::new(),
            };
            let parts = 1 + rng.below(3);
            let mut upstream = (0..parts)
                .map(|_| {
                    let max = if rng.below(4) == 0 { 120 } else { 12 };
                    rng.below(max).to_string()
                })
                .collect::<Vec<_>>()
                .join(".");
            upstream.push_str(rng.pick(&upstream_tails));
            let revision = rng.pick(&revisions);
            if revision.is_empty() {
                // Without a revision, a hyphen in the upstream would become one.
                format!("{epoch}{}", upstream.replace('-', "."))
            } else {
                format!("{epoch}{upstream}-{revision}")
            }
        };
        out.push(v);
    }
    out
}

#[test]
fn dpkg_ordering_agrees_with_dpkg_compare_versions() {
    let dpkg = Path::new("/usr/bin/dpkg");
    if !dpkg.exists() {
        if std::env::var_os("STELLA_TEST_SERVICES").is_some() {
            panic!("/usr/bin/dpkg is missing but STELLA_TEST_SERVICES is set");
        }
        eprintln!("SKIP: /usr/bin/dpkg is absent");
        return;
    }
    let mut rng = Rng(0x5eed_0deb);
    let versions = debian_versions(&mut rng, 1_500);
    let mut pairs: Vec<(String, String)> = versions
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect();
    let mut sorted = versions.clone();
    sorted.sort();
    pairs.extend(sorted.windows(2).map(|w| (w[0].clone(), w[1].clone())));
    for v in &versions {
        assert!(
            Version::parse(Ecosystem::Debian, v).is_ok(),
            "generator made an invalid version {v:?}"
        );
    }
    // One shell, one dpkg run per question (`lt`, then `eq` when needed).
    let script = r#"while IFS="$(printf '\t')" read -r a b; do
        if dpkg --compare-versions "$a" lt "$b" 2>/dev/null; then echo -1
        elif dpkg --compare-versions "$a" eq "$b" 2>/dev/null; then echo 0
        else echo 1; fi
    done"#;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]).env("PATH", "/usr/bin:/bin");
    let theirs = run_reference(cmd, &pairs);
    let ordered = check(
        "Debian vs dpkg",
        Ecosystem::Debian,
        &pairs,
        &theirs,
        str::to_owned,
    );
    assert_eq!(ordered, pairs.len());
    let less = theirs.iter().filter(|a| *a == "-1").count();
    let equal = theirs.iter().filter(|a| *a == "0").count();
    assert!(
        less > 100 && equal > 0 && less < pairs.len(),
        "{less} less, {equal} equal"
    );
}
