//! Version orderings per ecosystem, and OSV affected-range evaluation on top of them.
//!
//! A wrong ordering means missed or false findings, so each scheme follows its ecosystem's
//! reference implementation, and the tests compare against that implementation where one
//! runs here (`packaging`, `dpkg --compare-versions`, node `semver`) and against peer test
//! vectors elsewhere:
//!
//! | ecosystem | type | follows | built on |
//! |---|---|---|---|
//! | npm | [`SemVer`] | node `semver` strict mode (SemVer 2.0 precedence; a leading `v` accepted) | `semver` crate |
//! | crates.io | [`SemVer`] | Cargo (SemVer 2.0 precedence, build metadata ignored) | `semver` crate |
//! | Go | [`GoVersion`] | `golang.org/x/mod/semver` (`v` prefix, `vX`/`vX.Y` shorthands, pseudo-versions) | `semver` crate |
//! | PyPI | [`Pep440`] | PEP 440 as Python `packaging` implements it | `pep440_rs` crate |
//! | Debian, Ubuntu | [`DpkgVersion`] | dpkg's `verrevcmp` (epoch, `~`, revision) | own code |
//! | Alpine | [`ApkVersion`] | apk-tools 2 `version.c` (`_alpha`…`_p` suffixes, `-rN`) | own code |
//! | Maven | [`MavenVersion`] | Maven's `ComparableVersion` (made transitive where it cycles) | own code |
//! | NuGet | [`NuGetVersion`] | `NuGet.Versioning` (four parts, case-insensitive labels) | own code |
//! | RubyGems | [`GemVersion`] | `Gem::Version#<=>` | own code |
//! | Packagist | [`ComposerVersion`] | Composer's `VersionParser::normalize` + PHP `version_compare` | own code |
//!
//! [`compare`] parses and orders two version strings of one ecosystem; [`Version::parse`]
//! gives a parsed value to sort or keep. OSV ranges are in [`osv`].

use std::cmp::Ordering;
use std::fmt;

use crate::Ecosystem;

mod apk;
mod composer;
mod dpkg;
mod maven;
mod nuget;
pub mod osv;
mod pep440;
mod rubygems;
mod semver;

pub use self::apk::ApkVersion;
pub use self::composer::ComposerVersion;
pub use self::dpkg::DpkgVersion;
pub use self::maven::MavenVersion;
pub use self::nuget::NuGetVersion;
pub use self::osv::{is_affected, OsvAffected, OsvEvent, OsvPackage, OsvRange, RangeType};
pub use self::pep440::Pep440;
pub use self::rubygems::GemVersion;
pub use self::semver::{GoVersion, SemVer};

/// Why a version (or an OSV range) cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The string is not a version of the scheme named.
    #[error("invalid {scheme} version {version:?}: {reason}")]
    Invalid {
        /// The ecosystem (or `SEMVER` for an OSV `SEMVER` range) whose syntax was expected.
        scheme: String,
        version: String,
        reason: String,
    },
    /// An OSV range of a type this module does not evaluate.
    #[error("unsupported OSV range type {kind:?}")]
    UnsupportedRange { kind: String },
    /// An OSV event object that is not exactly one of `introduced`, `fixed`,
    /// `last_affected`, `limit`.
    #[error("invalid OSV event: {reason}")]
    InvalidEvent { reason: String },
}

impl VersionError {
    pub(crate) fn invalid(
        scheme: impl fmt::Display,
        version: &str,
        reason: impl Into<String>,
    ) -> Self {
        VersionError::Invalid {
            scheme: scheme.to_string(),
            version: version.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A parsed version of some ecosystem. Values of one scheme compare by that scheme's
/// rules; values of different schemes are never equal and order by scheme (an arbitrary
/// but total order, so mixed collections still sort deterministically).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    SemVer(SemVer),
    Go(GoVersion),
    Pep440(Pep440),
    Dpkg(DpkgVersion),
    Apk(ApkVersion),
    Maven(MavenVersion),
    NuGet(NuGetVersion),
    Gem(GemVersion),
    Composer(ComposerVersion),
}

impl Version {
    /// Parses `version` with the rules of `ecosystem`.
    pub fn parse(ecosystem: Ecosystem, version: &str) -> Result<Self, VersionError> {
        Ok(match ecosystem {
            Ecosystem::Npm => Version::SemVer(SemVer::parse_npm(version)?),
            Ecosystem::CratesIo => Version::SemVer(SemVer::parse_cargo(version)?),
            Ecosystem::Go => Version::Go(GoVersion::parse(version)?),
            Ecosystem::PyPI => Version::Pep440(Pep440::parse(version)?),
            Ecosystem::Debian | Ecosystem::Ubuntu => {
                Version::Dpkg(DpkgVersion::parse(version).map_err(|e| e.in_ecosystem(ecosystem))?)
            }
            Ecosystem::Alpine => Version::Apk(ApkVersion::parse(version)?),
            Ecosystem::Maven => Version::Maven(MavenVersion::parse(version)?),
            Ecosystem::NuGet => Version::NuGet(NuGetVersion::parse(version)?),
            Ecosystem::RubyGems => Version::Gem(GemVersion::parse(version)?),
            Ecosystem::Packagist => Version::Composer(ComposerVersion::parse(version)?),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::SemVer(v) => v.fmt(f),
            Version::Go(v) => v.fmt(f),
            Version::Pep440(v) => v.fmt(f),
            Version::Dpkg(v) => v.fmt(f),
            Version::Apk(v) => v.fmt(f),
            Version::Maven(v) => v.fmt(f),
            Version::NuGet(v) => v.fmt(f),
            Version::Gem(v) => v.fmt(f),
            Version::Composer(v) => v.fmt(f),
        }
    }
}

/// Orders two version strings of `ecosystem`; an error names the first one that does not
/// parse.
pub fn compare(ecosystem: Ecosystem, a: &str, b: &str) -> Result<Ordering, VersionError> {
    let a = Version::parse(ecosystem, a)?;
    let b = Version::parse(ecosystem, b)?;
    Ok(a.cmp(&b))
}

impl VersionError {
    /// Re-labels an `Invalid` error with the ecosystem the caller asked for (Debian's
    /// parser also serves Ubuntu).
    fn in_ecosystem(self, ecosystem: Ecosystem) -> Self {
        match self {
            VersionError::Invalid {
                version, reason, ..
            } => VersionError::Invalid {
                scheme: ecosystem.to_string(),
                version,
                reason,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_version_and_the_ecosystem() {
        let err = compare(Ecosystem::Npm, "1.2.3", "not-a-version").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("npm"), "{text}");
        assert!(text.contains("not-a-version"), "{text}");
        let err = compare(Ecosystem::Ubuntu, "1:", "1.0").unwrap_err();
        assert!(err.to_string().contains("Ubuntu"), "{err}");
    }

    #[test]
    fn every_ecosystem_orders_a_plain_release_pair() {
        for e in Ecosystem::ALL {
            assert_eq!(compare(e, "1.2.3", "1.10.0"), Ok(Ordering::Less), "{e}");
            assert_eq!(compare(e, "2.0.0", "2.0.0"), Ok(Ordering::Equal), "{e}");
        }
    }

    /// Random strings over the characters versions are made of: parsing never panics,
    /// and what parses is a total order whose equality agrees with `Hash`.
    #[test]
    fn random_strings_never_panic_and_order_consistently() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};

        const ALPHABET: &[u8] = b"0123456789000111...---__++~~:abcdeprvxAZ@*# \xc3";
        const SUFFIXES: [&str; 24] = [
            "-alpha",
            "-alpha.1",
            "-beta.2",
            "-rc.1",
            "-0",
            "-1",
            "-r1",
            "-r0",
            "_p1",
            "_rc2",
            "_alpha",
            "~rc1",
            "~",
            "+dfsg",
            "+build.5",
            ".post1",
            ".dev0",
            "a1",
            "b2",
            "rc1",
            "-SNAPSHOT",
            "-sp",
            ".0",
            "-dev",
        ];
        let mut state: u64 = 0x5eed_5eed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let hash = |v: &Version| {
            let mut h = DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        };
        for e in Ecosystem::ALL {
            let mut parsed = Vec::new();
            for _ in 0..4000 {
                let s = if next() % 3 == 0 {
                    let len = (next() % 12) as usize;
                    let bytes: Vec<u8> = (0..len)
                        .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                        .collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    // Version-shaped: numbers, then suffixes of the various schemes.
                    let parts = 1 + next() % 4;
                    let mut s = (0..parts)
                        .map(|_| (next() % 12).to_string())
                        .collect::<Vec<_>>()
                        .join(".");
                    for _ in 0..next() % 3 {
                        s.push_str(SUFFIXES[(next() % SUFFIXES.len() as u64) as usize]);
                    }
                    s
                };
                if let Ok(v) = Version::parse(e, &s) {
                    parsed.push(v);
                }
            }
            assert!(
                parsed.len() > 20,
                "{e}: only {} random strings parsed",
                parsed.len()
            );
            for a in &parsed {
                for b in parsed.iter().take(200) {
                    assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{e}: {a:?} vs {b:?}");
                    if a == b {
                        assert_eq!(hash(a), hash(b), "{e}: {a:?} == {b:?} but hashes differ");
                    }
                }
            }
            let few = &parsed[..parsed.len().min(120)];
            for a in few {
                for b in few {
                    if a > b {
                        continue;
                    }
                    for c in few {
                        assert!(
                            !(b <= c && a > c),
                            "{e}: {a:?} <= {b:?} <= {c:?} but {a:?} > {c:?}"
                        );
                    }
                }
            }
            let mut sorted = parsed.clone();
            sorted.sort();
            for (i, a) in sorted.iter().enumerate().step_by(7) {
                for b in &sorted[i..] {
                    assert!(a <= b, "{e}: sort is not transitive at {a:?} > {b:?}");
                }
            }
        }
    }

    #[test]
    fn empty_versions_are_rejected_everywhere() {
        for e in Ecosystem::ALL {
            assert!(Version::parse(e, "").is_err(), "{e}");
            assert!(Version::parse(e, "   ").is_err(), "{e}");
        }
    }
}
