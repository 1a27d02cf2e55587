//! SemVer 2.0 precedence for npm, crates.io, OSV `SEMVER` ranges, and Go modules, on the
//! `semver` crate. Build metadata never affects the order (SemVer §10), so
//! `1.0.0+a == 1.0.0+b` and Go's `+incompatible` is ignored.
//!
//! Go follows `golang.org/x/mod/semver`: the canonical spelling has a leading `v`
//! (accepted without it too, since OSV's Go records drop it), `v1` and `v1.2` are
//! shorthands for `v1.0.0` and `v1.2.0`, and pseudo-versions
//! (`v0.0.0-20210101000000-abcdef123456`, `v1.2.4-0.20210101000000-abcdef123456`) are
//! ordinary pre-releases, which orders them before the release they precede.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::VersionError;

/// A SemVer 2.0 version ordered by precedence (build metadata ignored).
#[derive(Debug, Clone)]
pub struct SemVer(pub ::semver::Version);

impl SemVer {
    /// npm as node `semver` (strict mode) reads a version: surrounding whitespace and one
    /// leading `v` are allowed, at most 256 characters, and the three numbers must be
    /// below 2^53 (JavaScript's safe integers).
    pub fn parse_npm(version: &str) -> Result<Self, VersionError> {
        let invalid = |reason: &str| VersionError::invalid("npm", version, reason);
        if version.len() > 256 {
            return Err(invalid("longer than 256 characters"));
        }
        let trimmed = version.trim();
        let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let parsed = Self::parse_strict(bare).map_err(|reason| invalid(&reason))?;
        const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
        if [parsed.0.major, parsed.0.minor, parsed.0.patch]
            .iter()
            .any(|n| *n > MAX_SAFE_INTEGER)
        {
            return Err(invalid("a number is above 2^53 - 1"));
        }
        Ok(parsed)
    }

    /// crates.io: exactly SemVer 2.0, as Cargo reads it.
    pub fn parse_cargo(version: &str) -> Result<Self, VersionError> {
        Self::parse_strict(version)
            .map_err(|reason| VersionError::invalid("crates.io", version, reason))
    }

    /// An OSV `SEMVER` range bound or the version matched against one; a leading `v` is
    /// tolerated because Go and some npm records carry it.
    pub fn parse_osv(version: &str) -> Result<Self, VersionError> {
        let bare = version.strip_prefix('v').unwrap_or(version);
        Self::parse_strict(bare).map_err(|reason| VersionError::invalid("SEMVER", version, reason))
    }

    fn parse_strict(version: &str) -> Result<Self, String> {
        ::semver::Version::parse(version)
            .map(SemVer)
            .map_err(|e| e.to_string())
    }
}

impl PartialEq for SemVer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SemVer {}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp_precedence(&other.0)
    }
}

impl Hash for SemVer {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Consistent with `Eq`: build metadata is left out.
        self.0.major.hash(state);
        self.0.minor.hash(state);
        self.0.patch.hash(state);
        self.0.pre.hash(state);
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Go module version (`v1.2.3`, `v1.2.3-pre`, a pseudo-version, `v2.0.0+incompatible`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion(pub SemVer);

impl GoVersion {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        let invalid = |reason: &str| VersionError::invalid("Go", version, reason);
        let bare = version.strip_prefix('v').unwrap_or(version);
        if bare.is_empty() {
            return Err(invalid("empty version"));
        }
        // x/mod/semver shorthands: `v1` = `v1.0.0`, `v1.2` = `v1.2.0`, with nothing after.
        let core_end = bare.find(['-', '+']).unwrap_or(bare.len());
        let dots = bare[..core_end].matches('.').count();
        let expanded;
        let full = match dots {
            0 | 1 if core_end < bare.len() => {
                return Err(invalid(
                    "a shorthand version (vX or vX.Y) cannot carry a pre-release or build",
                ))
            }
            0 => {
                expanded = format!("{bare}.0.0");
                &expanded
            }
            1 => {
                expanded = format!("{bare}.0");
                &expanded
            }
            _ => bare,
        };
        SemVer::parse_strict(full)
            .map(GoVersion)
            .map_err(|reason| invalid(&reason))
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npm(v: &str) -> SemVer {
        SemVer::parse_npm(v).unwrap()
    }

    fn go(v: &str) -> GoVersion {
        GoVersion::parse(v).unwrap()
    }

    #[test]
    fn prereleases_order_by_semver_precedence() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
        ];
        for w in ordered.windows(2) {
            assert!(npm(w[0]) < npm(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn build_metadata_and_prefixes_do_not_change_the_order() {
        assert_eq!(npm("1.0.0+build.1"), npm("1.0.0+build.2"));
        assert_eq!(npm("v1.2.3"), npm("1.2.3"));
        assert_eq!(npm("v1.2.3"), npm(" 1.2.3 "));
        assert!(SemVer::parse_npm("=1.2.3").is_err());
        assert!(SemVer::parse_npm("9007199254740992.0.0").is_err());
        assert!(SemVer::parse_cargo("v1.2.3").is_err());
        assert!(SemVer::parse_npm("1.2").is_err());
        assert!(SemVer::parse_npm("01.2.3").is_err());
    }

    #[test]
    fn go_pseudo_versions_sit_between_their_neighbours() {
        let ordered = [
            "v0.0.0-20190101000000-aaaaaaaaaaaa",
            "v0.0.0-20210101000000-abcdef123456",
            "v0.1.0",
            "v1.2.3",
            "v1.2.4-0.20210101000000-abcdef123456",
            "v1.2.4-pre",
            "v1.2.4-pre.0.20220101000000-abcdef123456",
            "v1.2.4",
        ];
        for w in ordered.windows(2) {
            assert!(go(w[0]) < go(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn go_shorthands_incompatible_and_bare_osv_spellings() {
        assert_eq!(go("v1"), go("v1.0.0"));
        assert_eq!(go("v1.2"), go("v1.2.0"));
        assert_eq!(go("v2.0.0+incompatible"), go("2.0.0"));
        assert!(GoVersion::parse("v1.2-pre").is_err());
        assert!(GoVersion::parse("v").is_err());
        assert!(GoVersion::parse("vx.y.z").is_err());
    }
}
