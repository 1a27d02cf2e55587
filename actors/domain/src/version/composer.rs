//! Packagist (Composer) versions, ordered as Composer does: the string is first
//! normalized by `VersionParser::normalize` (`v1.2` → `1.2.0.0`, `1.0-b2` → `1.0.0.0-beta2`,
//! `1.0.x-dev` → `1.0.9999999.9999999-dev`, date versions, build metadata dropped), then
//! compared with PHP's `version_compare`: pieces split at `.` and digit/letter
//! transitions, numbers numerically, and the special forms
//! `dev` < `alpha` = `a` < `beta` = `b` < `RC` = `rc` < a number < `pl` = `p`.
//! Named branches (`dev-main`) have no order in Composer and are refused here.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use regex::Regex;

use super::VersionError;

const MODIFIER: &str =
    r"[._-]?(?:(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?\d+)*)?)?([.-]?dev)?";

static CLASSICAL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)^v?(\d{{1,5}})(\.\d+)?(\.\d+)?(\.\d+)?{MODIFIER}$"
    ))
    .ok()
});
static DATETIME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)^v?(\d{{4}}(?:[.:-]?\d{{2}}){{1,6}}(?:[.:-]?\d{{1,3}}){{0,2}}){MODIFIER}$"
    ))
    .ok()
});
static DEV_SUFFIX: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)^(.*?)[.-]?dev$").ok());
static NUMERIC_BRANCH: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^v?(\d+)(\.(?:\d+|[x*]))?(\.(?:\d+|[x*]))?(\.(?:\d+|[x*]))?$").ok()
});
static STABILITY_FLAG: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)@(?:stable|RC|beta|alpha|dev)$").ok());

fn pattern(re: &'static LazyLock<Option<Regex>>) -> Result<&'static Regex, String> {
    re.as_ref()
        .ok_or_else(|| "internal version pattern failed to compile".to_owned())
}

/// Composer's `VersionParser::expandStability`.
fn expand_stability(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "a" => "alpha".to_owned(),
        "b" => "beta".to_owned(),
        "p" | "pl" => "patch".to_owned(),
        "rc" => "RC".to_owned(),
        other => other.to_owned(),
    }
}

/// Composer's `VersionParser::normalize`, for orderable versions.
fn normalize(version: &str) -> Result<String, String> {
    let mut v = version.trim().to_owned();
    if v.is_empty() {
        return Err("empty version".to_owned());
    }
    if let Some(m) = pattern(&STABILITY_FLAG)?.find(&v) {
        v.truncate(m.start());
    }
    if matches!(v.as_str(), "master" | "trunk" | "default")
        || v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("dev-"))
    {
        return Err("a named branch (dev-…) has no version order".to_owned());
    }
    // Build metadata: `1.0.0+build` → `1.0.0`.
    if let Some((head, tail)) = v.split_once('+') {
        if !head.is_empty()
            && !head.contains([',', ' ', '\t'])
            && !tail.is_empty()
            && !tail.contains(char::is_whitespace)
        {
            v = head.to_owned();
        }
    }
    let (mut out, caps, index) = if let Some(c) = pattern(&CLASSICAL)?.captures(&v) {
        let mut out = c.get(1).map_or("", |m| m.as_str()).to_owned();
        for k in 2..=4 {
            out.push_str(c.get(k).map_or(".0", |m| m.as_str()));
        }
        (out, c, 5)
    } else if let Some(c) = pattern(&DATETIME)?.captures(&v) {
        let digits = c.get(1).map_or("", |m| m.as_str());
        let out = digits
            .chars()
            .map(|ch| if ch.is_ascii_digit() { ch } else { '.' })
            .collect();
        (out, c, 2)
    } else {
        // `1.0.x-dev`, `2.x-dev`: numeric branches, ordered with `x` as 9999999.
        if let Some(c) = pattern(&DEV_SUFFIX)?.captures(&v) {
            let name = c.get(1).map_or("", |m| m.as_str());
            if let Some(b) = pattern(&NUMERIC_BRANCH)?.captures(name) {
                let mut out = String::new();
                for k in 1..5 {
                    out.push_str(
                        &b.get(k)
                            .map_or(".x".to_owned(), |m| m.as_str().replace(['*', 'X'], "x")),
                    );
                }
                return Ok(out.replace('x', "9999999") + "-dev");
            }
        }
        return Err("not a Composer version".to_owned());
    };
    if let Some(stability) = caps.get(index).map(|m| m.as_str()) {
        if stability == "stable" {
            return Ok(out);
        }
        out.push('-');
        out.push_str(&expand_stability(stability));
        if let Some(n) = caps.get(index + 1).map(|m| m.as_str()) {
            out.push_str(n.trim_start_matches(['.', '-']));
        }
    }
    if caps.get(index + 2).is_some_and(|m| !m.as_str().is_empty()) {
        out.push_str("-dev");
    }
    Ok(out)
}

/// One piece of PHP's canonical version string.
#[derive(Debug, Clone)]
enum Piece {
    /// `strtol` of the digits (saturating, as `strtol` clamps).
    Number(i64),
    Name(String),
}

/// PHP's `php_canonicalize_version` followed by the split at `.`.
fn canonical_pieces(v: &str) -> Vec<Piece> {
    let mut canon = String::with_capacity(v.len() * 2);
    let mut prev: Option<char> = None;
    for c in v.chars() {
        let Some(lp) = prev else {
            canon.push(c);
            prev = Some(c);
            continue;
        };
        let dig = |x: char| x.is_ascii_digit();
        let ndig = |x: char| !x.is_ascii_digit() && x != '.';
        if matches!(c, '-' | '_' | '+') {
            if !canon.ends_with('.') {
                canon.push('.');
            }
        } else if (ndig(lp) && dig(c)) || (dig(lp) && ndig(c)) {
            if !canon.ends_with('.') {
                canon.push('.');
            }
            canon.push(c);
        } else if !c.is_ascii_alphanumeric() {
            if !canon.ends_with('.') {
                canon.push('.');
            }
        } else {
            canon.push(c);
        }
        prev = Some(c);
    }
    canon
        .split('.')
        .map(|p| {
            if p.starts_with(|c: char| c.is_ascii_digit()) {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                Piece::Number(digits.parse().unwrap_or(i64::MAX))
            } else {
                Piece::Name(p.to_owned())
            }
        })
        .collect()
}

/// PHP's `compare_special_version_forms` order of a name (first matching prefix); a
/// number is `#` (4); unknown names are -1.
fn special_order(name: &str) -> i32 {
    const FORMS: [(&str, i32); 10] = [
        ("dev", 0),
        ("alpha", 1),
        ("a", 1),
        ("beta", 2),
        ("b", 2),
        ("RC", 3),
        ("rc", 3),
        ("#", 4),
        ("pl", 5),
        ("p", 5),
    ];
    FORMS
        .iter()
        .find(|(f, _)| name.starts_with(f))
        .map_or(-1, |(_, o)| *o)
}

const NUMBER_ORDER: i32 = 4;

/// PHP's `version_compare` over canonical pieces.
fn php_compare(a: &[Piece], b: &[Piece]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let r = match (x, y) {
            (Piece::Number(m), Piece::Number(n)) => m.cmp(n),
            (Piece::Name(m), Piece::Name(n)) => special_order(m).cmp(&special_order(n)),
            (Piece::Number(_), Piece::Name(n)) => NUMBER_ORDER.cmp(&special_order(n)),
            (Piece::Name(m), Piece::Number(_)) => special_order(m).cmp(&NUMBER_ORDER),
        };
        if r != Ordering::Equal {
            return r;
        }
    }
    // One ran out: a further number makes the longer one greater; a further name is
    // compared with a number.
    let rest = |p: Option<&Piece>| match p {
        None => Ordering::Equal,
        Some(Piece::Number(_)) => Ordering::Greater,
        Some(Piece::Name(n)) => special_order(n).cmp(&NUMBER_ORDER),
    };
    match a.len().cmp(&b.len()) {
        Ordering::Greater => rest(a.get(b.len())),
        Ordering::Less => rest(b.get(a.len())).reverse(),
        Ordering::Equal => Ordering::Equal,
    }
}

/// A Composer version with its normalized form.
#[derive(Debug, Clone)]
pub struct ComposerVersion {
    original: String,
    /// Composer's normalized spelling, e.g. `1.2.0.0-beta2`.
    pub normalized: String,
    pieces: Vec<Piece>,
}

impl ComposerVersion {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        let normalized =
            normalize(version).map_err(|r| VersionError::invalid("Packagist", version, r))?;
        let pieces = canonical_pieces(&normalized);
        Ok(ComposerVersion {
            original: version.to_owned(),
            normalized,
            pieces,
        })
    }
}

impl Ord for ComposerVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        php_compare(&self.pieces, &other.pieces)
    }
}

impl PartialOrd for ComposerVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ComposerVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ComposerVersion {}

impl Hash for ComposerVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Names that compare equal share their special-form order.
        for p in &self.pieces {
            match p {
                Piece::Number(n) => n.hash(state),
                Piece::Name(s) => (special_order(s) - 100).hash(state),
            }
        }
    }
}

impl fmt::Display for ComposerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ComposerVersion {
        ComposerVersion::parse(s).unwrap()
    }

    #[test]
    fn normalizes_like_composer() {
        for (input, normalized) in [
            ("1.0", "1.0.0.0"),
            ("v2.3.4", "2.3.4.0"),
            ("1.0.0-beta2", "1.0.0.0-beta2"),
            ("1.0-b.2", "1.0.0.0-beta2"),
            ("1.0.0-RC1", "1.0.0.0-RC1"),
            ("1.0.0-pl3", "1.0.0.0-patch3"),
            ("1.0.0-alpha1-dev", "1.0.0.0-alpha1-dev"),
            ("1.0.0+build.5", "1.0.0.0"),
            ("1.0.0-stable", "1.0.0.0"),
            ("2010-01-02", "2010.01.02"),
            ("1.0.x-dev", "1.0.9999999.9999999-dev"),
            ("1.2.3@beta", "1.2.3.0"),
        ] {
            assert_eq!(v(input).normalized, normalized, "{input}");
        }
    }

    #[test]
    fn orders_like_version_compare() {
        let ordered = [
            "1.0.0-dev",
            "1.0.0-alpha1",
            "1.0.0-alpha2",
            "1.0.0-beta1",
            "1.0.0-RC1",
            "1.0.0",
            "1.0.0-p1",
            "1.0.1",
            "1.0.x-dev",
            "1.1.0",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0"), v("v1.0.0.0"));
    }

    #[test]
    fn branches_and_garbage_are_refused() {
        for bad in ["", "dev-main", "master", "1.0.0-foo", "not a version"] {
            assert!(ComposerVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
