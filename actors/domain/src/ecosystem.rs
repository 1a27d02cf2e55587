//! The ecosystems Stella matches packages in, how OSV and package URLs name them, and the
//! per-ecosystem rule that makes two spellings of one package name equal.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A package ecosystem with a version ordering Stella implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    Npm,
    PyPI,
    Go,
    Maven,
    #[serde(rename = "crates.io")]
    CratesIo,
    NuGet,
    RubyGems,
    Packagist,
    Debian,
    Ubuntu,
    Alpine,
}

impl Ecosystem {
    pub const ALL: [Ecosystem; 11] = [
        Ecosystem::Npm,
        Ecosystem::PyPI,
        Ecosystem::Go,
        Ecosystem::Maven,
        Ecosystem::CratesIo,
        Ecosystem::NuGet,
        Ecosystem::RubyGems,
        Ecosystem::Packagist,
        Ecosystem::Debian,
        Ecosystem::Ubuntu,
        Ecosystem::Alpine,
    ];

    /// The OSV `ecosystem` name (without a release suffix such as `Debian:12`).
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Go => "Go",
            Ecosystem::Maven => "Maven",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::NuGet => "NuGet",
            Ecosystem::RubyGems => "RubyGems",
            Ecosystem::Packagist => "Packagist",
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::Alpine => "Alpine",
        }
    }

    /// Parses an OSV ecosystem; a release suffix (`Debian:12`, `Alpine:v3.18`) is ignored
    /// here (the caller keeps it if it matters). `None` for ecosystems Stella does not
    /// match in.
    pub fn from_osv(name: &str) -> Option<Self> {
        let base = name.split(':').next().unwrap_or(name);
        Self::ALL.into_iter().find(|e| e.osv_name() == base)
    }

    /// The distribution release an OSV ecosystem names, normalized so it compares with
    /// [`Ecosystem::release_of_distro`]: `Debian:12` → `12`, `Ubuntu:22.04:LTS` →
    /// `22.04`, `Alpine:v3.18` → `3.18`. `None` for ecosystems without releases or an
    /// ecosystem written without one (which then covers every release).
    pub fn release_of_osv(self, ecosystem: &str) -> Option<String> {
        let release = ecosystem.split(':').nth(1)?.trim();
        self.normalize_release(release)
    }

    /// The release a purl's `distro` qualifier names, normalized like
    /// [`Ecosystem::release_of_osv`]: `debian-12`, `debian-12.4` and `bookworm` are
    /// `12`; `ubuntu-22.04` and `jammy` are `22.04`; `alpine-3.18.4` and `3.18` are `3.18`.
    pub fn release_of_distro(self, distro: &str) -> Option<String> {
        let distro = distro.trim().to_ascii_lowercase();
        let bare = match self {
            Ecosystem::Debian => distro.strip_prefix("debian-").unwrap_or(&distro),
            Ecosystem::Ubuntu => distro.strip_prefix("ubuntu-").unwrap_or(&distro),
            Ecosystem::Alpine => distro.strip_prefix("alpine-").unwrap_or(&distro),
            _ => return None,
        };
        self.normalize_release(bare)
    }

    fn normalize_release(self, release: &str) -> Option<String> {
        const DEBIAN: &[(&str, &str)] = &[
            ("jessie", "8"),
            ("stretch", "9"),
            ("buster", "10"),
            ("bullseye", "11"),
            ("bookworm", "12"),
            ("trixie", "13"),
            ("forky", "14"),
        ];
        const UBUNTU: &[(&str, &str)] = &[
            ("xenial", "16.04"),
            ("bionic", "18.04"),
            ("focal", "20.04"),
            ("jammy", "22.04"),
            ("noble", "24.04"),
            ("oracular", "24.10"),
            ("plucky", "25.04"),
        ];
        let release = release.trim().to_ascii_lowercase();
        if release.is_empty() {
            return None;
        }
        let numeric = |parts: usize| {
            let digits = release.strip_prefix('v').unwrap_or(&release);
            let kept: Vec<&str> = digits.split('.').take(parts).collect();
            kept.iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| kept.join("."))
        };
        match self {
            Ecosystem::Debian => DEBIAN
                .iter()
                .find(|(name, _)| *name == release)
                .map(|(_, number)| (*number).to_owned())
                .or_else(|| numeric(1)),
            Ecosystem::Ubuntu => UBUNTU
                .iter()
                .find(|(name, _)| *name == release)
                .map(|(_, number)| (*number).to_owned())
                .or_else(|| numeric(2)),
            Ecosystem::Alpine => numeric(2),
            _ => None,
        }
    }

    /// The ecosystem of a package URL type (and, for `deb`, its namespace: `debian` or
    /// `ubuntu`).
    pub fn from_purl(ty: &str, namespace: Option<&str>) -> Option<Self> {
        Some(match ty {
            "npm" => Ecosystem::Npm,
            "pypi" => Ecosystem::PyPI,
            "golang" => Ecosystem::Go,
            "maven" => Ecosystem::Maven,
            "cargo" => Ecosystem::CratesIo,
            "nuget" => Ecosystem::NuGet,
            "gem" => Ecosystem::RubyGems,
            "composer" => Ecosystem::Packagist,
            "deb" => match namespace.map(str::to_ascii_lowercase).as_deref() {
                Some("ubuntu") => Ecosystem::Ubuntu,
                _ => Ecosystem::Debian,
            },
            "apk" => Ecosystem::Alpine,
            _ => return None,
        })
    }

    /// The form of a package name two spellings of which are the same package: PEP 503
    /// for PyPI (lowercase, runs of `-`, `_`, `.` become `-`), lowercase where the
    /// registry is case-insensitive (npm, NuGet, Packagist, crates.io, Debian, Ubuntu,
    /// Alpine), unchanged where case matters (Go module paths, Maven coordinates, RubyGems).
    pub fn normalize_name(self, name: &str) -> String {
        let name = name.trim();
        match self {
            Ecosystem::PyPI => {
                let mut out = String::with_capacity(name.len());
                let mut in_run = false;
                for c in name.chars() {
                    if matches!(c, '-' | '_' | '.') {
                        if !in_run {
                            out.push('-');
                        }
                        in_run = true;
                    } else {
                        out.extend(c.to_lowercase());
                        in_run = false;
                    }
                }
                out
            }
            Ecosystem::CratesIo => name.to_ascii_lowercase().replace('_', "-"),
            Ecosystem::Npm
            | Ecosystem::NuGet
            | Ecosystem::Packagist
            | Ecosystem::Debian
            | Ecosystem::Ubuntu
            | Ecosystem::Alpine => name.to_lowercase(),
            Ecosystem::Go | Ecosystem::Maven | Ecosystem::RubyGems => name.to_owned(),
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.osv_name())
    }
}

/// A package as matching sees it: ecosystem plus normalized name, in OSV's spelling
/// (`@scope/name` for npm, `group:artifact` for Maven, the module path for Go,
/// `vendor/name` for Packagist).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PackageKey {
    pub ecosystem: Ecosystem,
    pub name: String,
}

impl PackageKey {
    pub fn new(ecosystem: Ecosystem, name: &str) -> Self {
        Self {
            ecosystem,
            name: ecosystem.normalize_name(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pypi_names_follow_pep_503() {
        for spelling in [
            "Friendly-Bard",
            "friendly.bard",
            "FRIENDLY__bard",
            "friendly-._bard",
        ] {
            assert_eq!(Ecosystem::PyPI.normalize_name(spelling), "friendly-bard");
        }
    }

    #[test]
    fn case_matters_only_where_the_registry_says_so() {
        assert_eq!(
            PackageKey::new(Ecosystem::Npm, "@Angular/Core"),
            PackageKey::new(Ecosystem::Npm, "@angular/core")
        );
        assert_ne!(
            PackageKey::new(Ecosystem::Go, "github.com/BurntSushi/toml"),
            PackageKey::new(Ecosystem::Go, "github.com/burntsushi/toml")
        );
    }

    #[test]
    fn osv_and_purl_names_map_to_the_same_ecosystem() {
        assert_eq!(Ecosystem::from_osv("Debian:12"), Some(Ecosystem::Debian));
        assert_eq!(Ecosystem::from_osv("Alpine:v3.18"), Some(Ecosystem::Alpine));
    }

    #[test]
    fn releases_of_osv_ecosystems_and_purl_distros_compare() {
        let pairs = [
            (Ecosystem::Debian, "Debian:12", "debian-12"),
            (Ecosystem::Debian, "Debian:12", "bookworm"),
            (Ecosystem::Debian, "Debian:11", "debian-11.8"),
            (Ecosystem::Ubuntu, "Ubuntu:22.04:LTS", "ubuntu-22.04"),
            (Ecosystem::Ubuntu, "Ubuntu:22.04:LTS", "jammy"),
            (Ecosystem::Alpine, "Alpine:v3.18", "alpine-3.18.4"),
            (Ecosystem::Alpine, "Alpine:v3.18", "3.18"),
        ];
        for (ecosystem, osv, distro) in pairs {
            let a = ecosystem.release_of_osv(osv);
            assert!(a.is_some(), "{osv}");
            assert_eq!(a, ecosystem.release_of_distro(distro), "{osv} vs {distro}");
        }
        assert_ne!(
            Ecosystem::Debian.release_of_osv("Debian:11"),
            Ecosystem::Debian.release_of_distro("bookworm")
        );
        assert_eq!(Ecosystem::Debian.release_of_osv("Debian"), None);
        assert_eq!(Ecosystem::Npm.release_of_distro("debian-12"), None);
        assert_eq!(Ecosystem::Alpine.release_of_distro("edge"), None);
        assert_eq!(Ecosystem::from_osv("Hackage"), None);
        assert_eq!(
            Ecosystem::from_purl("deb", Some("ubuntu")),
            Some(Ecosystem::Ubuntu)
        );
        assert_eq!(Ecosystem::from_purl("golang", None), Some(Ecosystem::Go));
        for e in Ecosystem::ALL {
            assert_eq!(Ecosystem::from_osv(e.osv_name()), Some(e));
        }
    }
}
