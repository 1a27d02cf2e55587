//! The first analyzers: the distribution from `etc/os-release`, Debian/Ubuntu packages
//! from `var/lib/dpkg/status` and `status.d/` (distroless), Alpine packages from
//! `lib/apk/db/installed`, npm packages from `package-lock.json` (v2/v3) and installed
//! `node_modules/*/package.json`, Python distributions from `*.dist-info/METADATA`; RPM
//! packages in [`super::rpm`], lockfiles and manifests in [`super::lockfiles`].
//!
//! A file an analyzer cannot read does not fail the image: it is listed in
//! [`Inventory::skipped`] with the reason. Versions are kept as written (a dpkg version
//! keeps its epoch and revision: `1:2.38.1-5+deb12u1`).

use serde::{Deserialize, Serialize};

use super::rootfs::RootFs;
use crate::purl::Purl;

/// The distribution, from `etc/os-release` (or `usr/lib/os-release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    /// `ID`: `debian`, `ubuntu`, `alpine`, ...
    pub id: String,
    /// `VERSION_ID`: `12`, `22.04`, `3.19.0`; absent on rolling releases.
    pub version_id: Option<String>,
}

/// Where a package was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageType {
    Deb,
    Apk,
    Npm,
    Pypi,
    /// An RPM package, from the rpm database (`rpmdb.sqlite`).
    Rpm,
    /// A Go module: from a binary's build info or a `go.mod`.
    Golang,
    /// A crates.io crate: from a binary's `cargo auditable` data or a `Cargo.lock`.
    Cargo,
    /// A Maven artifact: from a Java archive's `pom.properties` or manifest.
    Maven,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub ty: PackageType,
    /// The name as the package manager spells it (`@scope/name` for npm).
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    /// The source package (dpkg `Source`, apk origin `o:`), where it differs or is given.
    pub source: Option<String>,
    pub purl: Purl,
    /// The file the package was read from, from the root (`var/lib/dpkg/status`).
    pub evidence: String,
    /// Index of the layer that last wrote that file.
    pub layer: usize,
}

/// What the analyzers found in a root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub distro: Option<Distro>,
    /// Sorted by purl, then evidence.
    pub packages: Vec<Package>,
    /// Files an analyzer could not read, with why.
    pub skipped: Vec<(String, String)>,
}

/// Runs every analyzer over the kept files.
pub fn analyze(fs: &RootFs) -> Inventory {
    let mut inv = Inventory {
        distro: ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|p| fs.read(p))
            .and_then(|(bytes, _)| os_release(bytes)),
        ..Inventory::default()
    };
    let paths: Vec<String> = fs.entries().map(|(p, _)| p.to_owned()).collect();
    for path in paths {
        let Some((bytes, layer)) = fs.read(&path) else {
            continue;
        };
        let base = path.rsplit('/').next().unwrap_or_default();
        let found = if path == "var/lib/dpkg/status" {
            dpkg(bytes, true, inv.distro.as_ref())
        } else if path.starts_with("var/lib/dpkg/status.d/") {
            dpkg(bytes, false, inv.distro.as_ref())
        } else if path == "lib/apk/db/installed" {
            apk(bytes, inv.distro.as_ref())
        } else if base == "package-lock.json" {
            npm_lock(bytes)
        } else if base == "package.json" {
            npm_installed(bytes)
        } else if base == "METADATA" {
            python(bytes)
        } else if let Some(read) = super::rpm::RPMDB_PATHS
            .contains(&path.as_str())
            .then(|| super::rpm::rpmdb(bytes, inv.distro.as_ref()))
            .or_else(|| super::lockfiles::read(base, bytes))
        {
            // Entries of a readable file that were left out, each with why.
            read.map(|(found, notes)| {
                inv.skipped
                    .extend(notes.into_iter().map(|n| (path.clone(), n)));
                found
            })
        } else {
            continue;
        };
        match found {
            Ok(found) => inv
                .packages
                .extend(found.into_iter().map(|p| p.at(&path, layer))),
            Err(reason) => inv.skipped.push((path.clone(), reason)),
        }
    }
    super::binary::analyze_into(fs, &mut inv);
    inv.packages
        .sort_by(|a, b| (a.purl.as_str(), &a.evidence).cmp(&(b.purl.as_str(), &b.evidence)));
    inv
}

/// A package before it is placed at its file.
pub(super) struct Found {
    pub(super) ty: PackageType,
    pub(super) name: String,
    pub(super) version: String,
    pub(super) arch: Option<String>,
    pub(super) source: Option<String>,
    pub(super) purl: Purl,
}

impl Found {
    fn at(self, path: &str, layer: usize) -> Package {
        Package {
            ty: self.ty,
            name: self.name,
            version: self.version,
            arch: self.arch,
            source: self.source,
            purl: self.purl,
            evidence: path.to_owned(),
            layer,
        }
    }
}

pub(super) fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))
}

/// `KEY=value` lines, values optionally quoted.
pub(crate) fn os_release(bytes: &[u8]) -> Option<Distro> {
    let text = String::from_utf8_lossy(bytes);
    let mut id = None;
    let mut version_id = None;
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
        match k {
            "ID" => id = Some(v),
            "VERSION_ID" => version_id = Some(v),
            _ => {}
        }
    }
    Some(Distro {
        id: id.filter(|i| !i.is_empty())?,
        version_id: version_id.filter(|v| !v.is_empty()),
    })
}

/// RFC 822-style paragraphs separated by blank lines; continuation lines (starting with
/// a space or tab) belong to the field before and are dropped, as no analyzer reads one.
fn paragraphs(text: &str, sep: char) -> Vec<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with([' ', '\t']) {
            continue;
        } else if let Some((k, v)) = line.split_once(sep) {
            cur.push((k.trim(), v.trim()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(p: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .filter(|v| !v.is_empty())
}

pub(super) fn purl(
    ty: &str,
    ns: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, Option<&str>)],
) -> Result<Purl, String> {
    let q = qualifiers.iter().filter_map(|(k, v)| v.map(|v| (*k, v)));
    Purl::from_parts(ty, ns, name, Some(version), q, None).map_err(|e| e.to_string())
}

/// The dpkg database: `status` lists every package dpkg knows (kept when its `Status`
/// ends in `installed`); a `status.d/` file (distroless) has one paragraph per package
/// and no `Status`.
fn dpkg(bytes: &[u8], needs_status: bool, distro: Option<&Distro>) -> Result<Vec<Found>, String> {
    let ns = distro.map_or("debian", |d| d.id.as_str());
    let distro_q = distro.and_then(|d| d.version_id.as_ref().map(|v| format!("{}-{v}", d.id)));
    let mut out = Vec::new();
    for p in paragraphs(text(bytes)?, ':') {
        let (Some(name), Some(version)) = (field(&p, "Package"), field(&p, "Version")) else {
            continue;
        };
        if needs_status
            && field(&p, "Status").is_none_or(|s| s.split_whitespace().nth(2) != Some("installed"))
        {
            continue;
        }
        let arch = field(&p, "Architecture");
        // `Source: openssl (3.0.11-1)`: the version is given when it differs.
        let source = field(&p, "Source").and_then(|s| s.split_whitespace().next());
        out.push(Found {
            ty: PackageType::Deb,
            name: name.to_owned(),
            version: version.to_owned(),
            arch: arch.map(str::to_owned),
            source: source.map(str::to_owned),
            purl: purl(
                "deb",
                Some(ns),
                name,
                version,
                &[("arch", arch), ("distro", distro_q.as_deref())],
            )?,
        });
    }
    Ok(out)
}

/// `lib/apk/db/installed`: `P:` name, `V:` version, `A:` arch, `o:` origin.
fn apk(bytes: &[u8], distro: Option<&Distro>) -> Result<Vec<Found>, String> {
    let ns = distro.map_or("alpine", |d| d.id.as_str());
    let distro_q = distro.and_then(|d| d.version_id.as_deref());
    let mut out = Vec::new();
    for p in paragraphs(text(bytes)?, ':') {
        let (Some(name), Some(version)) = (field(&p, "P"), field(&p, "V")) else {
            continue;
        };
        let arch = field(&p, "A");
        out.push(Found {
            ty: PackageType::Apk,
            name: name.to_owned(),
            version: version.to_owned(),
            arch: arch.map(str::to_owned),
            source: field(&p, "o").map(str::to_owned),
            purl: purl(
                "apk",
                Some(ns),
                name,
                version,
                &[("arch", arch), ("distro", distro_q)],
            )?,
        });
    }
    Ok(out)
}

pub(super) fn npm(name: &str, version: &str) -> Result<Found, String> {
    let (ns, short) = match name.split_once('/') {
        Some((scope, n)) if scope.starts_with('@') => (Some(scope), n),
        _ => (None, name),
    };
    Ok(Found {
        ty: PackageType::Npm,
        name: name.to_owned(),
        version: version.to_owned(),
        arch: None,
        source: None,
        purl: purl("npm", ns, short, version, &[])?,
    })
}

/// `package-lock.json` v2/v3: every `packages` entry under a `node_modules/` folder
/// (links to workspace folders and the root project are not installed packages); v1 has
/// only the `dependencies` tree ([`super::lockfiles`]).
fn npm_lock(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let Some(packages) = doc.get("packages").and_then(|p| p.as_object()) else {
        return super::lockfiles::npm_lock_v1(&doc);
    };
    let mut out = Vec::new();
    for (key, entry) in packages {
        let Some(idx) = key.rfind("node_modules/") else {
            continue;
        };
        if entry.get("link").and_then(|l| l.as_bool()) == Some(true) {
            continue;
        }
        let name = entry
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or(&key[idx + "node_modules/".len()..]);
        let Some(version) = entry.get("version").and_then(|v| v.as_str()) else {
            continue;
        };
        out.push(npm(name, version)?);
    }
    Ok(out)
}

/// An installed `node_modules/NAME/package.json`.
fn npm_installed(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let name = doc.get("name").and_then(|n| n.as_str());
    let version = doc.get("version").and_then(|v| v.as_str());
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => Ok(vec![npm(n, v)?]),
        _ => Err("package.json without name and version".to_owned()),
    }
}

/// Core metadata (`*.dist-info/METADATA`): the `Name` and `Version` headers. The purl
/// name is normalized as the purl spec says for `pypi` (PEP 503: lowercase, each run of
/// `-`, `_` and `.` one `-`).
fn python(bytes: &[u8]) -> Result<Vec<Found>, String> {
    let text = String::from_utf8_lossy(bytes);
    let headers = paragraphs(&text, ':');
    let first = headers.first().map(Vec::as_slice).unwrap_or_default();
    let (Some(name), Some(version)) = (field(first, "Name"), field(first, "Version")) else {
        return Err("METADATA without Name and Version".to_owned());
    };
    let normalized = super::lockfiles::pypi_name(name);
    Ok(vec![Found {
        ty: PackageType::Pypi,
        name: name.to_owned(),
        version: version.to_owned(),
        arch: None,
        source: None,
        purl: purl("pypi", None, &normalized, version, &[])?,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(files: &[(&str, &str)]) -> RootFs {
        let mut fs = RootFs::default();
        for (p, c) in files {
            fs.insert(p, c.as_bytes().to_vec(), 0);
        }
        fs
    }

    fn purls(inv: &Inventory) -> Vec<&str> {
        inv.packages.iter().map(|p| p.purl.as_str()).collect()
    }

    const DEBIAN: &str =
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";

    #[test]
    fn dpkg_status_with_epoch_source_and_distro() {
        let status = "\
Package: openssl
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1)
Version: 3.0.11-1~deb12u2
Description: Secure Sockets Layer toolkit
 a continuation line: with a colon

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: e2fsprogs
Status: install ok installed
Architecture: amd64
Version: 1:1.47.0-2
";
        let inv = analyze(&fs(&[
            ("etc/os-release", DEBIAN),
            ("var/lib/dpkg/status", status),
        ]));
        assert_eq!(
            inv.distro,
            Some(Distro {
                id: "debian".into(),
                version_id: Some("12".into())
            })
        );
        assert_eq!(
            purls(&inv),
            [
                "pkg:deb/debian/e2fsprogs@1:1.47.0-2?arch=amd64&distro=debian-12",
                "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
            ]
        );
        let openssl = &inv.packages[1];
        assert_eq!(openssl.version, "3.0.11-1~deb12u2");
        assert_eq!(openssl.source.as_deref(), Some("openssl"));
        assert_eq!(openssl.arch.as_deref(), Some("amd64"));
        assert_eq!(openssl.evidence, "var/lib/dpkg/status");
        assert_eq!(inv.packages[0].version, "1:1.47.0-2");
    }

    #[test]
    fn dpkg_status_d_of_distroless_has_no_status_field() {
        let inv = analyze(&fs(&[
            ("etc/os-release", DEBIAN),
            (
                "var/lib/dpkg/status.d/libc6",
                "Package: libc6\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\nSource: glibc\n",
            ),
        ]));
        assert_eq!(
            purls(&inv),
            ["pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"]
        );
        assert_eq!(inv.packages[0].version, "2.36-9+deb12u4");
        assert_eq!(inv.packages[0].source.as_deref(), Some("glibc"));
        assert_eq!(inv.packages[0].evidence, "var/lib/dpkg/status.d/libc6");
    }

    #[test]
    fn ubuntu_namespace_comes_from_os_release() {
        let inv = analyze(&fs(&[
            ("etc/os-release", "ID=ubuntu\nVERSION_ID=\"22.04\"\n"),
            ("var/lib/dpkg/status", "Package: bash\nStatus: install ok installed\nVersion: 5.1-6ubuntu1\nArchitecture: amd64\n"),
        ]));
        assert_eq!(
            purls(&inv),
            ["pkg:deb/ubuntu/bash@5.1-6ubuntu1?arch=amd64&distro=ubuntu-22.04"]
        );
    }

    #[test]
    fn alpine_installed_db() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\nT:the musl c library\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n";
        let inv = analyze(&fs(&[
            (
                "etc/os-release",
                "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.0\n",
            ),
            ("lib/apk/db/installed", db),
        ]));
        assert_eq!(
            purls(&inv),
            [
                "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=3.19.0",
                "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=3.19.0",
            ]
        );
        assert_eq!(inv.packages[1].source.as_deref(), Some("musl"));
    }

    #[test]
    fn npm_lockfile_and_installed_packages() {
        let lock = r#"{"name":"app","lockfileVersion":3,"packages":{
            "":{"name":"app","version":"1.0.0"},
            "node_modules/@scope/name":{"version":"1.0.0"},
            "node_modules/lodash":{"version":"4.17.20"},
            "node_modules/a/node_modules/lodash":{"version":"3.10.1"},
            "node_modules/alias":{"name":"minimist","version":"0.0.8"},
            "node_modules/local":{"resolved":"packages/local","link":true},
            "packages/local":{"version":"0.1.0"}}}"#;
        let inv = analyze(&fs(&[
            ("app/package-lock.json", lock),
            (
                "app/node_modules/lodash/package.json",
                r#"{"name":"lodash","version":"4.17.20"}"#,
            ),
            (
                "app/node_modules/@scope/name/package.json",
                r#"{"name":"@scope/name","version":"1.0.0"}"#,
            ),
            (
                "old/package-lock.json",
                r#"{"lockfileVersion":1,"dependencies":{}}"#,
            ),
        ]));
        assert_eq!(
            purls(&inv),
            [
                "pkg:npm/%40scope/name@1.0.0",
                "pkg:npm/%40scope/name@1.0.0",
                "pkg:npm/lodash@3.10.1",
                "pkg:npm/lodash@4.17.20",
                "pkg:npm/lodash@4.17.20",
                "pkg:npm/minimist@0.0.8",
            ]
        );
        let evidence: Vec<&str> = inv.packages.iter().map(|p| p.evidence.as_str()).collect();
        assert_eq!(evidence[0], "app/node_modules/@scope/name/package.json");
        assert_eq!(evidence[1], "app/package-lock.json");
        assert_eq!(inv.packages[0].name, "@scope/name");
        // A v1 lockfile is read too; this one's empty tree lists nothing.
        assert_eq!(inv.skipped, []);
    }

    #[test]
    fn python_dist_info_metadata() {
        let inv = analyze(&fs(&[
            (
                "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: HTTP\n\nLong: body text\n",
            ),
            (
                "usr/local/lib/python3.11/site-packages/typing_extensions-4.8.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: typing_extensions\nVersion: 4.8.0\n",
            ),
        ]));
        assert_eq!(
            purls(&inv),
            [
                "pkg:pypi/requests@2.31.0",
                "pkg:pypi/typing-extensions@4.8.0"
            ]
        );
        assert_eq!(inv.packages[1].name, "typing_extensions");
    }
}
