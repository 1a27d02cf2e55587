//! Version orderings per ecosystem, and OSV affected-range evaluation on top of them.
//!
//! A wrong ordering means missed or false findings, so each scheme follows its ecosystem's
//! reference implementation, and the tests compare against that implementation where one
//! runs here (`packaging`, `dpkg --compare-versions`, node `semver`) and against peer test
//! vectors elsewhere:
//!
//! | ecosystem | type | follows | built on |
//! |---|---|---|---|
//! | npm | [`SemVer`] | node `semver` (SemVer 2.0 precedence; a leading `v` or `=` is accepted) | `semver` crate |
//! | crates.io | [`SemVer`] | Cargo (SemVer 2.0 precedence, build metadata ignored) | `semver` crate |
//! | Go | [`GoVersion`] | `golang.org/x/mod/semver` (`v` prefix, `vX`/`vX.Y` shorthands, pseudo-versions) | `semver` crate |
//! | PyPI | [`Pep440`] | PEP 440 as Python `packaging` implements it | `pep440_rs` crate |
//! | Debian, Ubuntu | [`DpkgVersion`] | dpkg's `verrevcmp` (epoch, `~`, revision) | own code |
//! | Alpine | [`ApkVersion`] | apk-tools 2 `version.c` (`_alpha`…`_p` suffixes, `-rN`) | own code |
//! | Maven | [`MavenVersion`] | Maven's `ComparableVersion` | own code |
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

    #[test]
    fn empty_versions_are_rejected_everywhere() {
        for e in Ecosystem::ALL {
            assert!(Version::parse(e, "").is_err(), "{e}");
            assert!(Version::parse(e, "   ").is_err(), "{e}");
        }
    }
}
