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

/// The packages of a lockfile or manifest named `base`, and notes on the entries left out;
/// `None` when no analyzer here reads such a file.
pub(super) fn read(base: &str, bytes: &[u8]) -> Option<Result<(Vec<Found>, Vec<String>), String>> {
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
fn poetry_lock(bytes: &[u8]) -> Result<(Vec<Found>, Vec<String>), String> {
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
fn requirements(bytes: &[u8]) -> Result<(Vec<Found>, Vec<String>), String> {
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
fn cargo_lock(bytes: &[u8]) -> Result<(Vec<Found>, Vec<String>), String> {
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
fn go_mod(bytes: &[u8]) -> Result<(Vec<Found>, Vec<String>), String> {
    let mut requires: Vec<(String, String)> = Vec::new();
    // (path, version if the directive names one) => replacement (path, version if any)
    let mut replaces: Vec<((String, Option<String>), (String, Option<String>))> = Vec::new();
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
