//! NuGet versions, ordered as `NuGet.Versioning`'s `VersionComparer.Default`: one to four
//! numeric parts (`1.0 == 1.0.0 == 1.0.0.0`, leading zeros allowed), then a release sorts
//! after its pre-releases, pre-release labels compare one by one (numeric labels
//! numerically and before alphanumeric ones, alphanumeric ones case-insensitively, fewer
//! labels first), and build metadata after `+` is ignored.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::VersionError;

/// A NuGet version.
#[derive(Debug, Clone)]
pub struct NuGetVersion {
    original: String,
    /// Major, minor, patch, revision (missing parts are 0).
    pub parts: [u64; 4],
    /// Pre-release labels as written.
    pub release_labels: Vec<String>,
}

impl NuGetVersion {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        let invalid = |reason: &str| VersionError::invalid("NuGet", version, reason);
        let s = version.trim();
        if s.is_empty() {
            return Err(invalid("empty version"));
        }
        let (rest, metadata) = match s.split_once('+') {
            Some((r, m)) => (r, Some(m)),
            None => (s, None),
        };
        if let Some(m) = metadata {
            if m.split('.').any(|p| !is_label(p)) {
                return Err(invalid(
                    "build metadata must be dot-separated [0-9A-Za-z-] labels",
                ));
            }
        }
        let (numbers, labels) = match rest.split_once('-') {
            Some((n, l)) => (n, Some(l)),
            None => (rest, None),
        };
        let fields: Vec<&str> = numbers.split('.').collect();
        if fields.len() > 4 {
            return Err(invalid("more than four numeric parts"));
        }
        let mut parts = [0u64; 4];
        for (slot, field) in parts.iter_mut().zip(&fields) {
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("numeric parts must be non-empty digits"));
            }
            *slot = field
                .parse()
                .map_err(|_| invalid("numeric part too large"))?;
        }
        let release_labels = match labels {
            None => Vec::new(),
            Some(l) => {
                let labels: Vec<String> = l.split('.').map(str::to_owned).collect();
                if labels.iter().any(|p| !is_label(p)) {
                    return Err(invalid(
                        "pre-release must be dot-separated [0-9A-Za-z-] labels",
                    ));
                }
                labels
            }
        };
        Ok(NuGetVersion {
            original: version.to_owned(),
            parts,
            release_labels,
        })
    }

    pub fn is_prerelease(&self) -> bool {
        !self.release_labels.is_empty()
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A label that .NET's `Int32.TryParse` reads as a number.
fn numeric(label: &str) -> Option<i32> {
    label.parse().ok()
}

/// `VersionComparer.CompareRelease`.
fn compare_label(a: &str, b: &str) -> Ordering {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        // `StringComparer.OrdinalIgnoreCase` compares upper-cased characters.
        (None, None) => a
            .bytes()
            .map(|c| c.to_ascii_uppercase())
            .cmp(b.bytes().map(|c| c.to_ascii_uppercase())),
    }
}

impl Ord for NuGetVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts
            .cmp(&other.parts)
            .then_with(|| other.is_prerelease().cmp(&self.is_prerelease()))
            .then_with(|| {
                for (a, b) in self.release_labels.iter().zip(&other.release_labels) {
                    let r = compare_label(a, b);
                    if r != Ordering::Equal {
                        return r;
                    }
                }
                self.release_labels.len().cmp(&other.release_labels.len())
            })
    }
}

impl PartialOrd for NuGetVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for NuGetVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for NuGetVersion {}

impl Hash for NuGetVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
        for label in &self.release_labels {
            match numeric(label) {
                Some(n) => n.hash(state),
                None => label.to_ascii_uppercase().hash(state),
            }
        }
    }
}

impl fmt::Display for NuGetVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> NuGetVersion {
        NuGetVersion::parse(s).unwrap()
    }

    #[test]
    fn four_parts_case_insensitive_labels_and_ignored_metadata() {
        assert_eq!(v("1.0"), v("1.0.0.0"));
        assert_eq!(v("1.0.0-BETA"), v("1.0.0-beta"));
        assert_eq!(v("1.0.0+abc"), v("1.0.0+def"));
        assert_eq!(v("01.2.3"), v("1.2.3"));
        let ordered = [
            "1.0.0-1",
            "1.0.0-2",
            "1.0.0-10",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-Beta",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.0.1",
            "1.0.1-alpha",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn malformed_versions_are_rejected() {
        for bad in [
            "",
            "1.2.3.4.5",
            "1..2",
            "a.b",
            "1.0-",
            "1.0-beta..1",
            "1.0+",
            "1.0-be_ta",
        ] {
            assert!(NuGetVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
