//! Debian and Ubuntu package versions, `[epoch:]upstream[-revision]`, ordered by dpkg's
//! own algorithm (`verrevcmp` in dpkg's `lib/dpkg/version.c`): the epoch numerically, then
//! upstream and revision each as alternating non-digit and digit runs, where in non-digit
//! runs `~` sorts before everything (even the end of the string), letters before other
//! characters, and digit runs compare numerically. Parsing follows dpkg's
//! `parseversion`: the first `:` ends the epoch, the last `-` starts the revision, and a
//! missing revision equals `-0`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::VersionError;

/// A dpkg version.
#[derive(Debug, Clone)]
pub struct DpkgVersion {
    pub epoch: u32,
    pub upstream: String,
    /// Empty when the version has no `-revision`.
    pub revision: String,
}

impl DpkgVersion {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        let invalid = |reason: &str| VersionError::invalid("Debian", version, reason);
        let s = version.trim();
        if s.is_empty() {
            return Err(invalid("version string is empty"));
        }
        if s.contains(char::is_whitespace) {
            return Err(invalid("version string has embedded spaces"));
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() {
                    return Err(invalid("epoch in version is empty"));
                }
                if !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("epoch in version is not a number"));
                }
                let epoch = e
                    .parse::<u32>()
                    .ok()
                    .filter(|e| i32::try_from(*e).is_ok())
                    .ok_or_else(|| invalid("epoch in version is too big"))?;
                if rest.is_empty() {
                    return Err(invalid("nothing after colon in version number"));
                }
                (epoch, rest)
            }
            None => (0, s),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((_, "")) => return Err(invalid("revision number is empty")),
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(invalid("version number is empty"));
        }
        // dpkg only warns about these and compares anyway; matching real archives needs
        // the same leniency for a leading non-digit, but characters outside the policy's
        // set are rejected so garbage never silently orders.
        if let Some(c) = upstream
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".+~-:".contains(*c)))
        {
            return Err(invalid(&format!(
                "invalid character {c:?} in version number"
            )));
        }
        if let Some(c) = revision
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".+~".contains(*c)))
        {
            return Err(invalid(&format!(
                "invalid character {c:?} in revision number"
            )));
        }
        Ok(DpkgVersion {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }
}

/// dpkg's weight of a non-digit character (0 stands for the end of the string).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let is_digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    let non_digit = |s: &[u8], k: usize| s.get(k).is_some_and(|c| !c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        while non_digit(a, i) || non_digit(b, j) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while is_digit(a, i) && is_digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if is_digit(a, i) {
            return Ordering::Greater;
        }
        if is_digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

impl Ord for DpkgVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for DpkgVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DpkgVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DpkgVersion {}

/// Digit runs without their leading zeros: equal versions (`1.0` and `1.00`, `1.0` and
/// `1.0-0`) give equal keys, as `Hash` must.
fn hash_key(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    let mut in_leading_zeros = true;
    for c in part.chars() {
        if c.is_ascii_digit() {
            if c == '0' && in_leading_zeros {
                continue;
            }
            in_leading_zeros = false;
        } else {
            in_leading_zeros = true;
        }
        out.push(c);
    }
    out
}

impl Hash for DpkgVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.epoch.hash(state);
        hash_key(&self.upstream).hash(state);
        hash_key(&self.revision).hash(state);
    }
}

impl fmt::Display for DpkgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> DpkgVersion {
        DpkgVersion::parse(s).unwrap()
    }

    #[test]
    fn tilde_sorts_before_everything_even_the_end() {
        let ordered = [
            "1.0~~", "1.0~~a", "1.0~", "1.0~rc1", "1.0", "1.0a", "1.0+dfsg", "1.0.1", "1.0-1",
        ];
        // `1.0.1` vs `1.0-1`: the upstream `1.0.1` is greater than `1.0`.
        for w in ordered[..8].windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert!(v("1.0-1") < v("1.0.1"));
        assert!(v("1.0-1") > v("1.0"));
    }

    #[test]
    fn epochs_revisions_and_zeros() {
        assert!(v("1:0.1") > v("9.9"));
        assert_eq!(v("0:1.0"), v("1.0"));
        assert_eq!(v("1.0"), v("1.00"));
        assert_eq!(v("1.0"), v("1.0-0"));
        assert!(v("1.0-1ubuntu1") > v("1.0-1"));
        assert!(v("1.0-1~bpo1") < v("1.0-1"));
        assert!(v("2:1.2.3-4+deb12u1") > v("2:1.2.3-4"));
        assert_eq!(v("1:2.3-a-b").revision, "b");
        assert_eq!(v("1:2.3-a-b").upstream, "2.3-a");
    }

    #[test]
    fn malformed_versions_are_rejected() {
        for bad in [
            "", ":1.0", "1:", "1.0-", "a:1.0", "1.0 2", "1.0_1", "1.0-1:2",
        ] {
            assert!(DpkgVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
