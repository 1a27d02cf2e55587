//! Language packages from lockfiles and manifests left in an image: Python's
//! `poetry.lock` and pinned `requirements*.txt` lines, npm's `package-lock.json` v1
//! (`dependencies` tree; v2/v3 are read in [`super::analyzers`]), Rust's `Cargo.lock`
//! and Go's `go.mod`.
//!
//! A lockfile says what a build resolved, not what the image holds: a package is listed
//! with the lockfile as its evidence. Entries that name no registry release (a path, a
//! git checkout, a local `replace`, an unpinned requirement) are not listed; when there
//! are any, one [`Inventory::skipped`](super::Inventory::skipped) line per file says how
//! many and which.

use super::analyzers::{purl, text, Found, PackageType};

/// The packages read from one file, and a note for each kind of entry left out.
pub(super) type Listed = (Vec<Found>, Vec<String>);

/// The packages of a lockfile or manifest named `base`, and notes on the entries left out;
/// `None` when no analyzer here reads such a file.
pub(super) fn read(base: &str, bytes: &[u8]) -> Option<Result<Listed, String>> {
    Some(match base {
        "poetry.lock" => poetry_lock(bytes),
        "Cargo.lock" => cargo_lock(bytes),
        "go.mod" => go_mod(bytes),
        b if is_requirements(b) => requirements(bytes),
        _ => return None,
    })
}

/// `requirements.txt`, `requirements-dev.txt`, `requirements/base.txt` is not one.
pub(crate) fn is_requirements(base: &str) -> bool {
    base.starts_with("requirements") && base.ends_with(".txt")
}

/// A name as PEP 503 normalizes it (and the purl spec's `pypi` type asks): lowercase,
/// each run of `-`, `_` and `.` one `-`.
pub(crate) fn pypi_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn pypi(name: &str, version: &str) -> Result<Found, String> {
    Ok(Found {
        ty: PackageType::Pypi,
        name: name.to_owned(),
        version: version.to_owned(),
        arch: None,
        source: None,
        purl: purl("pypi", None, &pypi_name(name), version, &[])?,
    })
}

/// A note for the entries of a file left out, or none when there are none.
fn left_out(what: &str, names: &[String]) -> Vec<String> {
    const SHOWN: usize = 5;
    if names.is_empty() {
        return Vec::new();
    }
    let mut list = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        list.push_str(", ...");
    }
    vec![format!("{} {what} not listed: {list}", names.len())]
}

/// `poetry.lock`: each `[[package]]`'s `name` and `version`; packages whose `source` is a
/// folder, a file, a URL or git are left out (a `legacy` source is a package index).
fn poetry_lock(bytes: &[u8]) -> Result<Listed, String> {
    let doc: toml::Value = toml::from_str(text(bytes)?).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for p in packages(&doc)? {
        let (Some(name), Some(version)) = (str_of(p, "name"), str_of(p, "version")) else {
            continue;
        };
        let source = p.get("source").and_then(|s| str_of(s, "type"));
        if matches!(source, Some("directory" | "file" | "url" | "git")) {
            skipped.push(name.to_owned());
            continue;
        }
        out.push(pypi(name, version)?);
    }
    Ok((
        out,
        left_out("packages from a folder, file, URL or git", &skipped),
    ))
}

fn packages(doc: &toml::Value) -> Result<&[toml::Value], String> {
    match doc.get("package") {
        None => Ok(&[]),
        Some(toml::Value::Array(a)) => Ok(a),
        Some(_) => Err("`package` is not an array of tables".to_owned()),
    }
}

fn str_of<'a>(v: &'a toml::Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(toml::Value::as_str)
        .filter(|s| !s.is_empty())
}

/// pip's requirements file: the lines pinned to one version (`name==1.2.3`, with extras,
/// an environment marker, `--hash` options and comments). Lines joined by a trailing `\`
/// are one line; option lines (`-r`, `-e`, `--index-url`) are not requirements.
fn requirements(bytes: &[u8]) -> Result<Listed, String> {
    let text = text(bytes)?;
    let mut out = Vec::new();
    let mut unpinned = Vec::new();
    let mut logical = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        match line.strip_suffix('\\') {
            Some(head) if lines.peek().is_some() => {
                logical.push_str(head);
                logical.push(' ');
                continue;
            }
            Some(head) => logical.push_str(head),
            None => logical.push_str(line),
        }
        let line = std::mem::take(&mut logical);
        // A comment starts at a `#` at the line's start or after whitespace (pip's rule).
        let line = match line.find(" #").or_else(|| line.find("\t#")) {
            Some(i) => &line[..i],
            None if line.trim_start().starts_with('#') => "",
            None => line.as_str(),
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('-') {
            continue;
        }
        match pinned(line) {
            Some((name, version)) => out.push(pypi(name, version)?),
            None => unpinned.push(line.split(';').next().unwrap_or(line).trim().to_owned()),
        }
    }
    Ok((out, left_out("requirements not pinned with ==", &unpinned)))
}

/// `name[extras] == version ; marker --hash=...`: the name and version when the version
/// is one exact release (`==` or `===`, no wildcard, no second specifier).
fn pinned(line: &str) -> Option<(&str, &str)> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut rest = line[name_end..].trim_start();
    if let Some(extras) = rest.strip_prefix('[') {
        rest = extras.split_once(']')?.1.trim_start();
    }
    let rest = rest
        .strip_prefix("===")
        .or_else(|| rest.strip_prefix("=="))?
        .trim_start();
    let spec = rest.split([';', ' ', '\t']).next().unwrap_or_default();
    let valid = !spec.is_empty()
        && spec
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '-' | '_'));
    valid.then_some((name, spec))
}

/// The registries whose packages `pkg:cargo` names: crates.io, by git index or sparse.
const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// `Cargo.lock`: each `[[package]]` from crates.io. The workspace's own packages (no
/// `source`) are the project, not dependencies; git and other registries are left out.
fn cargo_lock(bytes: &[u8]) -> Result<Listed, String> {
    let doc: toml::Value = toml::from_str(text(bytes)?).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for p in packages(&doc)? {
        let (Some(name), Some(version)) = (str_of(p, "name"), str_of(p, "version")) else {
            continue;
        };
        match str_of(p, "source") {
            None => continue,
            Some(s) if CRATES_IO.contains(&s) => out.push(Found {
                ty: PackageType::Cargo,
                name: name.to_owned(),
                version: version.to_owned(),
                arch: None,
                source: None,
                purl: purl("cargo", None, name, version, &[])?,
            }),
            Some(_) => skipped.push(format!("{name}@{version}")),
        }
    }
    Ok((
        out,
        left_out("packages from git or another registry", &skipped),
    ))
}

/// `go.mod`: the `require`d modules (single lines and blocks, `// indirect` ones too),
/// with `replace` directives applied. A module replaced by a folder is left out: its code
/// is that folder, not a release of the module.
fn go_mod(bytes: &[u8]) -> Result<Listed, String> {
    let mut requires: Vec<(String, String)> = Vec::new();
    // (path, version if the directive names one) => replacement (path, version if any)
    let mut replaces: Vec<(Module, Module)> = Vec::new();
    let mut block: Option<String> = None;
    for (n, raw) in text(bytes)?.lines().enumerate() {
        let line = raw.split("//").next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let (verb, args) = match &block {
            Some(_) if line == ")" => {
                block = None;
                continue;
            }
            Some(verb) => (verb.clone(), line),
            None => {
                let (verb, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
                let args = args.trim();
                if args == "(" {
                    block = Some(verb.to_owned());
                    continue;
                }
                (verb.to_owned(), args)
            }
        };
        let bad = || format!("line {}: malformed {verb} {args:?}", n + 1);
        match verb.as_str() {
            "require" => {
                let f = fields(args);
                let [path, version] = f.as_slice() else {
                    return Err(bad());
                };
                requires.push((path.clone(), version.clone()));
            }
            "replace" => {
                let (old, new) = args.split_once("=>").ok_or_else(bad)?;
                let (old, new) = (fields(old), fields(new));
                let pair = |f: &[String]| match f {
                    [p] => Some((p.clone(), None)),
                    [p, v] => Some((p.clone(), Some(v.clone()))),
                    _ => None,
                };
                replaces.push((pair(&old).ok_or_else(bad)?, pair(&new).ok_or_else(bad)?));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut local = Vec::new();
    for (path, version) in requires {
        // A replace naming the version wins over one for every version.
        let rep = replaces
            .iter()
            .find(|((p, v), _)| *p == path && v.as_deref() == Some(version.as_str()))
            .or_else(|| {
                replaces
                    .iter()
                    .find(|((p, v), _)| *p == path && v.is_none())
            });
        let (path, version) = match rep {
            Some((_, (new, Some(v)))) => (new.clone(), v.clone()),
            Some((_, (_, None))) => {
                local.push(path);
                continue;
            }
            None => (path, version),
        };
        let (ns, name) = match path.rsplit_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, path.as_str()),
        };
        let purl = purl("golang", ns, name, &version, &[])?;
        out.push(Found {
            ty: PackageType::Golang,
            name: path.clone(),
            version,
            arch: None,
            source: None,
            purl,
        });
    }
    Ok((out, left_out("modules replaced by a folder", &local)))
}

/// A module path, and the version when a `replace` names one.
type Module = (String, Option<String>);

/// A directive's arguments: words, or Go strings in `"` or `` ` `` quotes.
fn fields(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        let (word, tail) = match rest.chars().next() {
            Some(q @ ('"' | '`')) => match rest[1..].find(q) {
                Some(end) => (rest[1..1 + end].to_owned(), &rest[end + 2..]),
                None => (rest[1..].to_owned(), ""),
            },
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (rest[..end].to_owned(), &rest[end..])
            }
        };
        out.push(word);
        rest = tail.trim_start();
    }
    out
}

/// npm's `package-lock.json` v1: the `dependencies` tree, each entry's `version`, nested
/// `dependencies` for copies installed under another package. Aliases
/// (`npm:real-name@1.0.0`) name the real package; versions that are a git, file or URL
/// reference are not registry releases and are left out. `dev` dependencies are listed,
/// as they are from the v2/v3 `packages` map.
pub(super) fn npm_lock_v1(doc: &serde_json::Value) -> Result<Vec<Found>, String> {
    let mut out = Vec::new();
    let mut stack = vec![(doc.get("dependencies"), 0usize)];
    while let Some((deps, depth)) = stack.pop() {
        let Some(deps) = deps else { continue };
        let deps = deps.as_object().ok_or("`dependencies` is not an object")?;
        // Nested deeper than any real tree: a crafted file.
        if depth > 256 {
            return Err("`dependencies` nested deeper than 256".to_owned());
        }
        for (key, entry) in deps {
            let Some(version) = entry.get("version").and_then(|v| v.as_str()) else {
                continue;
            };
            let (name, version) = match version.strip_prefix("npm:") {
                Some(alias) => match alias.rsplit_once('@') {
                    Some((n, v)) if !n.is_empty() => (n, v),
                    _ => continue,
                },
                None => (key.as_str(), version),
            };
            if !version.is_empty() && !version.contains([':', '/']) {
                out.push(super::analyzers::npm(name, version)?);
            }
            stack.push((entry.get("dependencies"), depth + 1));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{analyze, Inventory, RootFs};

    fn inventory(files: &[(&str, &str)]) -> Inventory {
        let mut fs = RootFs::default();
        for (p, c) in files {
            fs.insert(p, c.as_bytes().to_vec(), 0);
        }
        analyze(&fs)
    }

    fn purls(inv: &Inventory) -> Vec<&str> {
        inv.packages.iter().map(|p| p.purl.as_str()).collect()
    }

    #[test]
    fn pep_503_names() {
        assert_eq!(pypi_name("Typing_Extensions"), "typing-extensions");
        assert_eq!(pypi_name("zope.interface"), "zope-interface");
        assert_eq!(pypi_name("Foo.-_Bar"), "foo-bar");
        assert_eq!(pypi_name("ruamel.yaml.clib"), "ruamel-yaml-clib");
    }

    #[test]
    fn poetry_lock_packages_from_the_index_only() {
        let lock = r#"# This file is automatically @generated by Poetry 1.8.2 and should not be changed by hand.

[[package]]
name = "certifi"
version = "2024.2.2"
description = "Python package for providing Mozilla's CA Bundle."
optional = false
python-versions = ">=3.6"
files = [
    {file = "certifi-2024.2.2-py3-none-any.whl", hash = "sha256:dc383c07b76109f368f6106eee2b593b04a011ea4d55f652c6ca24a754d1cdd1"},
]

[[package]]
name = "Flask_Cors"
version = "4.0.0"
description = "A Flask extension adding a decorator for CORS support"
optional = false
python-versions = "*"
files = []

[package.dependencies]
Flask = ">=0.9"

[[package]]
name = "internal-lib"
version = "0.3.0"
description = ""
optional = false
python-versions = "^3.11"
files = []
develop = true

[package.source]
type = "directory"
url = "../internal-lib"

[[package]]
name = "private-sdk"
version = "1.2.0"
description = ""
optional = false
python-versions = "*"
files = []

[package.source]
type = "legacy"
url = "https://pypi.example.com/simple"
reference = "private"

[metadata]
lock-version = "2.0"
python-versions = "^3.11"
content-hash = "0d2e3c0f"
"#;
        let inv = inventory(&[("srv/app/poetry.lock", lock)]);
        assert_eq!(
            purls(&inv),
            [
                "pkg:pypi/certifi@2024.2.2",
                "pkg:pypi/flask-cors@4.0.0",
                "pkg:pypi/private-sdk@1.2.0",
            ]
        );
        assert_eq!(inv.packages[1].name, "Flask_Cors");
        assert_eq!(inv.packages[1].evidence, "srv/app/poetry.lock");
        assert_eq!(
            inv.skipped,
            [(
                "srv/app/poetry.lock".to_owned(),
                "1 packages from a folder, file, URL or git not listed: internal-lib".to_owned()
            )]
        );
    }

    #[test]
    fn requirements_pinned_lines_only() {
        // As `pip-compile --generate-hashes` writes them, with hand-written lines after.
        let reqs = "\
#
# This file is autogenerated by pip-compile with Python 3.11
#
--index-url https://pypi.org/simple

certifi==2024.2.2 \\
    --hash=sha256:0569859f95fc761b18b45ef421b1290a0f65f147e92a1e5eb3e635f9a5e4e66f \\
    --hash=sha256:dc383c07b76109f368f6106eee2b593b04a011ea4d55f652c6ca24a754d1cdd1
    # via requests
requests[socks,security] == 2.31.0 ; python_version >= \"3.7\"  # pinned
Zope.Interface===6.2
importlib-metadata==7.0.1; python_version < \"3.10\"
-r requirements-base.txt
-e ./vendored/lib
flask>=2.0
django==4.*
numpy
urllib3==2.2.1,<3
mypkg @ https://example.com/mypkg-1.0.tar.gz
";
        let inv = inventory(&[
            ("app/requirements-prod.txt", reqs),
            ("app/notes.txt", "flask==1.0\n"),
        ]);
        assert_eq!(
            purls(&inv),
            [
                "pkg:pypi/certifi@2024.2.2",
                "pkg:pypi/importlib-metadata@7.0.1",
                "pkg:pypi/requests@2.31.0",
                "pkg:pypi/zope-interface@6.2",
            ]
        );
        assert_eq!(
            inv.skipped,
            [(
                "app/requirements-prod.txt".to_owned(),
                "5 requirements not pinned with == not listed: flask>=2.0, django==4.*, numpy, \
                 urllib3==2.2.1,<3, mypkg @ https://example.com/mypkg-1.0.tar.gz"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn npm_lockfile_v1_tree() {
        // npm 6's format: nested `dependencies` for copies installed under a package.
        let lock = r#"{
  "name": "web",
  "version": "1.0.0",
  "lockfileVersion": 1,
  "requires": true,
  "dependencies": {
    "@babel/code-frame": {
      "version": "7.12.13",
      "resolved": "https://registry.npmjs.org/@babel/code-frame/-/code-frame-7.12.13.tgz",
      "integrity": "sha512-HV1Cm0Q3ZrpCR93tkWOYiuYIgLxZXZFVG2VgK+MBWjUqZTundupbfx2aXarXuw5Ko5aMcjtJgbSs4vUGBS5v6g==",
      "dev": true,
      "requires": { "@babel/highlight": "^7.12.13" }
    },
    "debug": {
      "version": "2.6.9",
      "resolved": "https://registry.npmjs.org/debug/-/debug-2.6.9.tgz",
      "requires": { "ms": "2.0.0" },
      "dependencies": {
        "ms": {
          "version": "2.0.0",
          "resolved": "https://registry.npmjs.org/ms/-/ms-2.0.0.tgz"
        }
      }
    },
    "ms": { "version": "2.1.3" },
    "old-args": { "version": "npm:minimist@0.0.8" },
    "local-utils": { "version": "file:packages/utils" },
    "forked": { "version": "git+https://github.com/someone/forked.git#abc123" }
  }
}"#;
        let inv = inventory(&[("app/package-lock.json", lock)]);
        assert_eq!(
            purls(&inv),
            [
                "pkg:npm/%40babel/code-frame@7.12.13",
                "pkg:npm/debug@2.6.9",
                "pkg:npm/minimist@0.0.8",
                "pkg:npm/ms@2.0.0",
                "pkg:npm/ms@2.1.3",
            ]
        );
        assert_eq!(inv.packages[0].name, "@babel/code-frame");
        assert_eq!(inv.skipped, []);
    }

    #[test]
    fn cargo_lock_crates_io_packages() {
        let lock = r#"# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["serde", "tokio", "private"]

[[package]]
name = "serde"
version = "1.0.197"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "3fb1c873e1b9b056a4dc4c0c198b24c3ffa059243875552b2bd0933b1aee4ce2"

[[package]]
name = "tokio"
version = "1.36.0"
source = "sparse+https://index.crates.io/"

[[package]]
name = "private"
version = "0.2.0"
source = "git+https://github.com/acme/private?rev=1a2b3c#1a2b3c4d"
"#;
        let inv = inventory(&[("src/app/Cargo.lock", lock)]);
        assert_eq!(
            purls(&inv),
            ["pkg:cargo/serde@1.0.197", "pkg:cargo/tokio@1.36.0"]
        );
        assert_eq!(inv.packages[0].ty, PackageType::Cargo);
        assert_eq!(
            inv.skipped,
            [(
                "src/app/Cargo.lock".to_owned(),
                "1 packages from git or another registry not listed: private@0.2.0".to_owned()
            )]
        );
    }

    /// This workspace's own `Cargo.lock` against what `cargo metadata` resolves from it
    /// (for this platform, offline): every crates.io package it names is listed.
    #[test]
    fn this_workspace_cargo_lock_agrees_with_cargo_metadata() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let lock = std::fs::read(root.join("Cargo.lock")).expect("the workspace Cargo.lock");
        let (found, _) = cargo_lock(&lock).expect("readable");
        let ours: std::collections::BTreeSet<String> = found
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        assert!(ours.contains("libsqlite3-sys 0.30.1"));
        assert!(found
            .iter()
            .any(|p| p.purl.as_str() == "pkg:cargo/libsqlite3-sys@0.30.1"));
        assert!(!ours.iter().any(|p| p.starts_with("stella")));

        // Other platforms' crates may not be downloaded: resolve for this one.
        let host = std::process::Command::new("rustc")
            .arg("-vV")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|v| {
                v.lines()
                    .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            });
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = host.map(|host| {
            std::process::Command::new(cargo)
                .current_dir(&root)
                .args(["metadata", "--format-version", "1", "--locked", "--offline"])
                .args(["--filter-platform", &host])
                .output()
        });
        let meta: serde_json::Value = match out {
            Some(Ok(o)) if o.status.success() => serde_json::from_slice(&o.stdout).expect("json"),
            _ => {
                eprintln!("skipping: cargo metadata cannot run offline here");
                return;
            }
        };
        let theirs: std::collections::BTreeSet<String> = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter(|p| p["source"].as_str().is_some_and(|s| CRATES_IO.contains(&s)))
            .map(|p| {
                format!(
                    "{} {}",
                    p["name"].as_str().expect("name"),
                    p["version"].as_str().expect("version")
                )
            })
            .collect();
        assert!(theirs.len() > 100, "{} packages", theirs.len());
        let missing: Vec<&String> = theirs.difference(&ours).collect();
        assert_eq!(missing, Vec::<&String>::new());
    }

    #[test]
    fn go_mod_requires_with_replaces_applied() {
        let gomod = r#"module github.com/acme/scanner

go 1.22

toolchain go1.22.1

require (
	github.com/BurntSushi/toml v1.3.2
	github.com/go-redis/redis/v8 v8.11.5
	golang.org/x/net v0.21.0 // indirect
	github.com/old/dep v1.0.0
	github.com/local/tool v0.4.0
	gopkg.in/yaml.v2 v2.4.0 // indirect
)

require github.com/docker/docker v24.0.7+incompatible

exclude golang.org/x/net v0.20.0

replace github.com/old/dep v1.0.0 => github.com/new/dep v1.2.0

replace (
	github.com/local/tool => ../tool
	golang.org/x/net v0.19.0 => golang.org/x/net v0.19.1 // not the required version
)
"#;
        let inv = inventory(&[("src/scanner/go.mod", gomod)]);
        assert_eq!(
            purls(&inv),
            [
                "pkg:golang/github.com/BurntSushi/toml@v1.3.2",
                "pkg:golang/github.com/docker/docker@v24.0.7%2Bincompatible",
                "pkg:golang/github.com/go-redis/redis/v8@v8.11.5",
                "pkg:golang/github.com/new/dep@v1.2.0",
                "pkg:golang/golang.org/x/net@v0.21.0",
                "pkg:golang/gopkg.in/yaml.v2@v2.4.0",
            ]
        );
        let redis = &inv.packages[2];
        assert_eq!(redis.ty, PackageType::Golang);
        assert_eq!(redis.name, "github.com/go-redis/redis/v8");
        assert_eq!(redis.version, "v8.11.5");
        assert_eq!(
            inv.skipped,
            [(
                "src/scanner/go.mod".to_owned(),
                "1 modules replaced by a folder not listed: github.com/local/tool".to_owned()
            )]
        );
    }

    #[test]
    fn the_download_caches_lockfiles_and_manifests_are_not_read() {
        use crate::image::rootfs::wanted;
        assert!(wanted("src/scanner/go.mod"));
        assert!(wanted("usr/src/app/Cargo.lock"));
        assert!(wanted("app/requirements.txt"));
        assert!(wanted("app/requirements-dev.txt"));
        assert!(wanted("app/poetry.lock"));
        assert!(wanted("var/lib/rpm/rpmdb.sqlite"));
        assert!(wanted("usr/lib/sysimage/rpm/rpmdb.sqlite"));
        // Every dependency's own go.mod and Cargo.lock, unpacked by Go and Cargo.
        assert!(!wanted(
            "root/go/pkg/mod/github.com/!burnt!sushi/toml@v1.3.2/go.mod"
        ));
        assert!(!wanted(
            "root/.cargo/registry/src/index.crates.io-6f17d22bba15001f/x-1.0.0/Cargo.lock"
        ));
        assert!(!wanted(
            "usr/local/cargo/git/checkouts/y-0123/abcdef/Cargo.lock"
        ));
        assert!(!wanted("app/constraints.txt"));
        assert!(!wanted("var/lib/rpm/rpmdb.sqlite-wal"));
    }

    #[test]
    fn cargo_and_go_packages_are_cyclonedx_libraries() {
        let mut fs = RootFs::default();
        fs.insert(
            "app/Cargo.lock",
            b"[[package]]\nname = \"zstd-sys\"\nversion = \"2.0.9+zstd.1.5.5\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n".to_vec(),
            0,
        );
        fs.insert(
            "app/go.mod",
            b"module example.com/app\n\nrequire golang.org/x/text v0.14.0\n".to_vec(),
            0,
        );
        let inv = analyze(&fs);
        let doc = crate::image::cyclonedx::document(&crate::image::Image::of_rootfs(fs), &inv);
        let components = doc["components"].as_array().expect("components");
        let summary: Vec<(String, String, String, String)> = components
            .iter()
            .map(|c| {
                let ty = c["properties"]
                    .as_array()
                    .expect("properties")
                    .iter()
                    .find(|p| p["name"] == "stella:package:type")
                    .and_then(|p| p["value"].as_str())
                    .unwrap_or_default();
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                (s("type"), ty.to_owned(), s("name"), s("purl"))
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "library".to_owned(),
                    "cargo".to_owned(),
                    "zstd-sys".to_owned(),
                    "pkg:cargo/zstd-sys@2.0.9%2Bzstd.1.5.5".to_owned()
                ),
                (
                    "library".to_owned(),
                    "golang".to_owned(),
                    "golang.org/x/text".to_owned(),
                    "pkg:golang/golang.org/x/text@v0.14.0".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_malformed_manifest_is_skipped_with_why() {
        let inv = inventory(&[
            ("a/go.mod", "module x\nrequire github.com/a/b\n"),
            ("b/Cargo.lock", "[[package]\nname ="),
        ]);
        assert_eq!(inv.packages, []);
        assert_eq!(inv.skipped.len(), 2);
        assert_eq!(inv.skipped[0].0, "a/go.mod");
        assert_eq!(
            inv.skipped[0].1,
            "line 2: malformed require \"github.com/a/b\""
        );
        assert_eq!(inv.skipped[1].0, "b/Cargo.lock");
    }
}
