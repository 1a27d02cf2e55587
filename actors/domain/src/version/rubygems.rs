//! RubyGems versions, ordered as `Gem::Version#<=>`: `-` reads as `.pre.`, the string is
//! cut into runs of digits and runs of letters, trailing zeros are dropped from the
//! numeric head and from the part from the first letter run on (`1.0.a == 1.a`), and
//! segments compare pairwise with missing ones as `0`: numbers numerically, letter runs
//! case-sensitively, and a letter run (a pre-release) below any number.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::VersionError;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    /// Digits without leading zeros (`"0"` for zero).
    Number(String),
    Letters(String),
}

impl Segment {
    fn is_zero(&self) -> bool {
        matches!(self, Segment::Number(n) if n == "0")
    }
}

const ZERO: &Segment = &Segment::Number(String::new());

/// A RubyGems version.
#[derive(Debug, Clone)]
pub struct GemVersion {
    canonical: Vec<Segment>,
    original: String,
}

impl GemVersion {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        let s = version.trim();
        if !valid(s) {
            return Err(VersionError::invalid(
                "RubyGems",
                version,
                "not of the form N(.X)*(-X(.X)*)? with X alphanumeric",
            ));
        }
        let s = s.replace('-', ".pre.");
        let mut segments = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            if bytes[i].is_ascii_digit() {
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let n = s[start..i].trim_start_matches('0');
                segments.push(Segment::Number(
                    if n.is_empty() { "0" } else { n }.to_owned(),
                ));
            } else if bytes[i].is_ascii_alphabetic() {
                while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                segments.push(Segment::Letters(s[start..i].to_owned()));
            } else {
                i += 1;
            }
        }
        let split = segments
            .iter()
            .position(|s| matches!(s, Segment::Letters(_)))
            .unwrap_or(segments.len());
        let tail = segments.split_off(split);
        let mut canonical = drop_trailing_zeros(segments);
        canonical.extend(drop_trailing_zeros(tail));
        Ok(GemVersion {
            canonical,
            original: version.to_owned(),
        })
    }

    /// A version with a letter in it is a pre-release.
    pub fn is_prerelease(&self) -> bool {
        self.canonical
            .iter()
            .any(|s| matches!(s, Segment::Letters(_)))
    }
}

fn drop_trailing_zeros(mut segments: Vec<Segment>) -> Vec<Segment> {
    while segments.last().is_some_and(Segment::is_zero) {
        segments.pop();
    }
    segments
}

/// `Gem::Version::ANCHORED_VERSION_PATTERN` after stripping:
/// `[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?`.
fn valid(s: &str) -> bool {
    let (head, pre) = match s.split_once('-') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let mut fields = head.split('.');
    let first_ok = fields
        .next()
        .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    let rest_ok = fields.all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphanumeric()));
    let pre_ok = pre.is_none_or(|p| {
        p.split('.')
            .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    });
    first_ok && rest_ok && pre_ok
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.canonical.len().max(other.canonical.len());
        for k in 0..n {
            let a = self.canonical.get(k).unwrap_or(ZERO);
            let b = other.canonical.get(k).unwrap_or(ZERO);
            let r = match (a, b) {
                (Segment::Number(x), Segment::Number(y)) => {
                    let (x, y) = (norm(x), norm(y));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                }
                (Segment::Letters(x), Segment::Letters(y)) => x.cmp(y),
                (Segment::Letters(_), Segment::Number(_)) => Ordering::Less,
                (Segment::Number(_), Segment::Letters(_)) => Ordering::Greater,
            };
            if r != Ordering::Equal {
                return r;
            }
        }
        Ordering::Equal
    }
}

/// The padding zero is stored as `""`; both spell zero.
fn norm(n: &str) -> &str {
    if n.is_empty() {
        "0"
    } else {
        n
    }
}

impl PartialEq for GemVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for GemVersion {}

impl Hash for GemVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Canonical segments have no trailing zeros, so equal versions have equal ones.
        self.canonical.hash(state);
    }
}

impl PartialOrd for GemVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for GemVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> GemVersion {
        GemVersion::parse(s).unwrap()
    }

    #[test]
    fn prereleases_sort_before_releases() {
        let ordered = [
            "1.0.a",
            "1.0.a.2",
            "1.0.b1",
            "1.0.rc1",
            "1.0",
            "1.0.1",
            "1.1-alpha",
            "1.1",
            "1.10",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert!(v("1.1-alpha").is_prerelease());
    }

    #[test]
    fn canonical_segments_make_spellings_equal() {
        assert_eq!(v("1.0"), v("1"));
        assert_eq!(v("1.0.0"), v("1"));
        assert_eq!(v("1.0.a"), v("1.a"));
        assert_eq!(v("1.0.a.0"), v("1.a"));
        assert_eq!(v("1.1-rc1"), v("1.1.pre.rc1"));
        assert_eq!(v(" 2.0 "), v("2"));
        for bad in ["", "a1", "1..2", "1.0-", "1.0 beta", "1_0"] {
            assert!(GemVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
