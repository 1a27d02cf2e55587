//! PEP 440 (PyPI) on the `pep440_rs` crate, which follows Python `packaging`: epochs
//! (`1!1.0` > `2.0`), `.devN` < `aN` < `bN` < `rcN` < release < `.postN`, local versions
//! (`1.0+local` > `1.0`), implicit zero padding (`1.0 == 1.0.0`) and the normalizations
//! `packaging` accepts (`1.0-1` = `1.0.post1`, `1.0alpha` = `1.0a0`, a leading `v`).

use std::fmt;

use super::VersionError;

/// A PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pep440(pub pep440_rs::Version);

impl Pep440 {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        // `packaging` strips surrounding whitespace before matching.
        version
            .trim()
            .parse::<pep440_rs::Version>()
            .map(Pep440)
            .map_err(|e| VersionError::invalid("PyPI", version, e.to_string()))
    }
}

impl fmt::Display for Pep440 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Pep440 {
        Pep440::parse(s).unwrap()
    }

    #[test]
    fn pre_post_dev_and_local_order_as_packaging_does() {
        let ordered = [
            "1.0.dev0",
            "1.0a1.dev1",
            "1.0a1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+local.1",
            "1.0+local.2",
            "1.0.post1.dev1",
            "1.0.post1",
            "1.1",
            "1!0.1",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn normalized_spellings_are_equal() {
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0-1"), v("1.0.post1"));
        assert_eq!(v("1.0ALPHA"), v("1.0a0"));
        assert_eq!(v("v1.0"), v("1.0"));
        assert_eq!(v("1.0c1"), v("1.0rc1"));
        assert!(Pep440::parse("1.0-beta-x").is_err());
        assert!(Pep440::parse("dev").is_err());
    }
}
