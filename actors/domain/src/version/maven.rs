//! Maven versions, ordered as Maven's `ComparableVersion` does (Maven 3 semantics):
//! the lowercased string is cut at `.`, `-` and digit/letter transitions into numbers and
//! qualifiers; `-` and transitions open a nested list. Well-known qualifiers order
//! `alpha` (`a1`) < `beta` (`b1`) < `milestone` (`m1`) < `rc` (`cr`) < `snapshot` < `""`
//! (`ga`, `final`) < `sp`, and unknown qualifiers come after them in lexical order.
//! Trailing zeros and empty qualifiers are dropped (`1.0.0 == 1`, `1-ga == 1`), numbers
//! have no size limit, and a number always beats a qualifier (`1.1 > 1-sp`).
//!
//! `ComparableVersion` is not transitive for some mixes (`1.foo` < `1-rc1` < `1` <
//! `1.foo`), and Rust's sorts may panic on such an order, so `Ord` is a total order that
//! agrees with it on every pair it orders consistently (all 977 peer vectors included);
//! [`MavenVersion::compare_maven`] gives Maven's exact answer.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::VersionError;

#[derive(Debug, Clone)]
enum Item {
    /// Decimal digits without leading zeros (`"0"` for zero); any length.
    Int(String),
    /// A qualifier after aliasing (`ga` → `""`, `cr` → `rc`, `a1` → `alpha`).
    Str(String),
    List(Vec<Item>),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

/// Maven's `comparableQualifier`: the index of a known qualifier, else `"7-"` + the
/// qualifier, compared as strings.
fn comparable_qualifier(q: &str) -> String {
    match QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", QUALIFIERS.len()),
    }
}

const RELEASE_VERSION_INDEX: &str = "5";

fn cmp_numbers(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Item {
    fn int(digits: &str) -> Item {
        let trimmed = digits.trim_start_matches('0');
        Item::Int(if trimmed.is_empty() { "0" } else { trimmed }.to_owned())
    }

    fn string(value: &str, followed_by_digit: bool) -> Item {
        let value = match (followed_by_digit, value) {
            (true, "a") => "alpha",
            (true, "b") => "beta",
            (true, "m") => "milestone",
            (_, "ga" | "final") => "",
            (_, "cr") => "rc",
            (_, other) => other,
        };
        Item::Str(value.to_owned())
    }

    fn is_null(&self) -> bool {
        match self {
            Item::Int(n) => n == "0",
            Item::Str(s) => s.is_empty(),
            Item::List(l) => l.is_empty(),
        }
    }

    /// `ComparableVersion.Item.compareTo`, where `None` is a missing item.
    fn compare(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Int(n), None) => {
                if n == "0" {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Int(a), Some(Item::Int(b))) => cmp_numbers(a, b),
            (Item::Int(_), Some(_)) => Ordering::Greater,
            (Item::Str(s), None) => comparable_qualifier(s).as_str().cmp(RELEASE_VERSION_INDEX),
            (Item::Str(a), Some(Item::Str(b))) => {
                comparable_qualifier(a).cmp(&comparable_qualifier(b))
            }
            (Item::Str(_), Some(_)) => Ordering::Less,
            (Item::List(l), None) => l.first().map_or(Ordering::Equal, |f| f.compare(None)),
            (Item::List(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Str(_))) => Ordering::Greater,
            (Item::List(a), Some(Item::List(b))) => cmp_lists(a, b),
        }
    }
}

/// `ListItem.compareTo` for two lists: item by item, a missing item counting as `None`.
fn cmp_lists(a: &[Item], b: &[Item]) -> Ordering {
    for k in 0..a.len().max(b.len()) {
        let r = match (a.get(k), b.get(k)) {
            (Some(l), r) => l.compare(r),
            (None, Some(r)) => r.compare(None).reverse(),
            (None, None) => Ordering::Equal,
        };
        if r != Ordering::Equal {
            return r;
        }
    }
    Ordering::Equal
}

/// Where an item sits relative to a missing one (a release): below (`-rc1`, `alpha`),
/// level with it (`0`, `ga`), or above (`1`, `sp`, `-1`). Level items (zeros and empty
/// qualifiers inside a version) take the side of what follows them.
fn item_side(item: &Item) -> Ordering {
    match item {
        Item::Int(n) => {
            if n == "0" {
                Ordering::Equal
            } else {
                Ordering::Greater
            }
        }
        Item::Str(s) => comparable_qualifier(s).as_str().cmp(RELEASE_VERSION_INDEX),
        Item::List(l) => suffix_sides(l).first().copied().unwrap_or(Ordering::Equal),
    }
}

/// For each position, the side of the items from there on (the first non-level one).
fn suffix_sides(items: &[Item]) -> Vec<Ordering> {
    let mut sides = vec![Ordering::Equal; items.len()];
    let mut next = Ordering::Equal;
    for (k, item) in items.iter().enumerate().rev() {
        let own = item_side(item);
        if own != Ordering::Equal {
            next = own;
        }
        sides[k] = next;
    }
    sides
}

/// The total order [`MavenVersion`]'s `Ord` uses. Position by position: first the side
/// of the rest of each version relative to a release (so `1.0.alpha` < `1` < `1.0.1`,
/// `1-rc1` < `1`), then, on the same side, Maven's ranking qualifier < list < number,
/// then the values. This equals `ComparableVersion` except where that one is not
/// transitive (see [`MavenVersion::compare_maven`]).
fn cmp_lists_total(a: &[Item], b: &[Item]) -> Ordering {
    let (sa, sb) = (suffix_sides(a), suffix_sides(b));
    let rank = |i: &Item| match i {
        Item::Str(_) => 0,
        Item::List(_) => 1,
        Item::Int(_) => 2,
    };
    for k in 0..a.len().max(b.len()) {
        let side_a = sa.get(k).copied().unwrap_or(Ordering::Equal);
        let side_b = sb.get(k).copied().unwrap_or(Ordering::Equal);
        if side_a != side_b {
            return side_a.cmp(&side_b);
        }
        if side_a == Ordering::Equal {
            // Both rests are level with a release: equal from here on.
            return Ordering::Equal;
        }
        // Both sides are non-level, so both items exist.
        let (Some(x), Some(y)) = (a.get(k), b.get(k)) else {
            return Ordering::Equal;
        };
        let r = match (x, y) {
            (Item::Int(m), Item::Int(n)) => cmp_numbers(m, n),
            (Item::Str(m), Item::Str(n)) => comparable_qualifier(m).cmp(&comparable_qualifier(n)),
            (Item::List(m), Item::List(n)) => cmp_lists_total(m, n),
            _ => rank(x).cmp(&rank(y)),
        };
        if r != Ordering::Equal {
            return r;
        }
    }
    Ordering::Equal
}

/// `ListItem.normalize`: drops null items from the end, looking past non-null lists.
fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

/// The most lists a version may nest (the outer one, and one per `-` and per digit/letter
/// change).
/// Real versions nest a few (`1-alpha2snapshot`: 3); ordering walks the nesting
/// recursively and more than linearly, so a hostile SBOM's `1a1a1a…` would take seconds
/// per comparison, and overflow the stack at some thousands (found by the `version` fuzz
/// target).
const MAX_NESTING: usize = 64;

/// A Maven version.
#[derive(Debug, Clone)]
pub struct MavenVersion {
    original: String,
    items: Vec<Item>,
}

impl MavenVersion {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        if version.trim().is_empty() {
            return Err(VersionError::invalid("Maven", version, "empty version"));
        }
        if version.contains(char::is_whitespace) {
            return Err(VersionError::invalid(
                "Maven",
                version,
                "whitespace in version",
            ));
        }
        let lower = version.to_lowercase();
        let chars: Vec<char> = lower.chars().collect();
        let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
        let parse_item = |is_digit: bool, buf: String| {
            if is_digit {
                Item::int(&buf)
            } else {
                Item::string(&buf, false)
            }
        };
        // Each `-` or transition opens a list nested in the current one, and parsing never
        // returns to an outer list, so the lists form a chain: `chain[k + 1]` is the last
        // element of `chain[k]`.
        let mut chain: Vec<Vec<Item>> = vec![Vec::new()];
        let mut is_digit = false;
        let mut start = 0;
        for (i, &c) in chars.iter().enumerate() {
            let current = chain.len() - 1;
            if c == '.' || c == '-' {
                let item = if i == start {
                    Item::int("0")
                } else {
                    parse_item(is_digit, text(start, i))
                };
                chain[current].push(item);
                start = i + 1;
                if c == '-' {
                    chain.push(Vec::new());
                }
            } else if c.is_ascii_digit() {
                if !is_digit && i > start {
                    chain[current].push(Item::string(&text(start, i), true));
                    start = i;
                    chain.push(Vec::new());
                }
                is_digit = true;
            } else {
                if is_digit && i > start {
                    chain[current].push(Item::int(&text(start, i)));
                    start = i;
                    chain.push(Vec::new());
                }
                is_digit = false;
            }
        }
        if chain.len() > MAX_NESTING {
            return Err(VersionError::invalid(
                "Maven",
                version,
                format!("nests more than {MAX_NESTING} lists (a `-` or a digit/letter change opens one)"),
            ));
        }
        if chars.len() > start {
            let last = chain.len() - 1;
            chain[last].push(parse_item(is_digit, text(start, chars.len())));
        }
        // Normalize innermost first, then hang each list into its parent.
        let mut inner: Option<Vec<Item>> = None;
        while let Some(mut list) = chain.pop() {
            if let Some(child) = inner.take() {
                list.push(Item::List(child));
            }
            normalize(&mut list);
            inner = Some(list);
        }
        Ok(MavenVersion {
            original: version.to_owned(),
            items: inner.unwrap_or_default(),
        })
    }
}

impl MavenVersion {
    /// Exactly `ComparableVersion.compareTo`. That relation is not transitive for some
    /// mixes of a qualifier and a `-` list at one position: `1.foo` < `1-rc1` < `1` <
    /// `1.foo`. Sorting with it can fail (Rust's sorts may panic), so `Ord` uses a total
    /// order that agrees with it everywhere else.
    pub fn compare_maven(&self, other: &Self) -> Ordering {
        cmp_lists(&self.items, &other.items)
    }
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_lists_total(&self.items, &other.items)
    }
}

impl PartialOrd for MavenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MavenVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MavenVersion {}

impl Hash for MavenVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // `ComparableVersion` makes structurally different lists equal (`1-0.1 == 1`),
        // so only the leading plain numbers, which equal versions always share once
        // trailing zeros are dropped, are hashed.
        let mut numbers: Vec<&str> = self
            .items
            .iter()
            .map_while(|i| match i {
                Item::Int(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        while numbers.last() == Some(&"0") {
            numbers.pop();
        }
        numbers.hash(state);
    }
}

impl fmt::Display for MavenVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> MavenVersion {
        MavenVersion::parse(s).unwrap()
    }

    /// Found by the `version` fuzz target: each `1+` pair nests a list, a thousand took
    /// a second to compare and some thousands overflowed the stack.
    #[test]
    fn deeply_nested_versions_are_refused_and_the_deepest_allowed_compares_at_once() {
        // 64 characters, each after the first a digit/letter change: 64 lists.
        let deepest = "1a".repeat(MAX_NESTING / 2);
        let other = format!("{}1b", "1a".repeat(MAX_NESTING / 2 - 1));
        let started = std::time::Instant::now();
        assert_eq!(v(&deepest).cmp(&v(&other)), Ordering::Less);
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
        let err = MavenVersion::parse(&format!("{deepest}1")).unwrap_err();
        assert!(
            err.to_string().contains("nests more than 64 lists"),
            "{err}"
        );
        assert!(MavenVersion::parse(&"1+".repeat(100_000)).is_err());
        assert_eq!(v("1-alpha2snapshot"), v("1-alpha-2-snapshot"));
    }

    #[test]
    fn qualifiers_order_alpha_beta_milestone_rc_snapshot_release_sp() {
        let ordered = [
            "1-alpha",
            "1-alpha2",
            "1-beta",
            "1-milestone",
            "1-rc",
            "1-snapshot",
            "1",
            "1-sp",
            "1-unknown",
            "1-1",
            "1.1",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn aliases_and_zeros() {
        assert_eq!(v("1.0.0"), v("1"));
        assert_eq!(v("1-ga"), v("1"));
        assert_eq!(v("1.0-FINAL"), v("1"));
        assert_eq!(v("1-cr1"), v("1-rc1"));
        assert_eq!(v("1a1"), v("1-alpha-1"));
        assert_eq!(v("1.0-SNAPSHOT"), v("1-snapshot"));
        assert!(
            v("1.0.0.RELEASE") > v("1.0.0"),
            "unknown qualifier after release"
        );
        assert!(v("2.0.0-M1") < v("2.0.0-RC1"));
        assert!(v("99999999999999999999") > v("9999999999"));
    }

    #[test]
    fn ord_is_total_where_comparable_version_cycles() {
        // ComparableVersion: 1.foo < 1-rc1 < 1 < 1.foo.
        let (foo, rc, release) = (v("1.foo"), v("1-rc1"), v("1"));
        assert_eq!(foo.compare_maven(&rc), Ordering::Less);
        assert_eq!(rc.compare_maven(&release), Ordering::Less);
        assert_eq!(release.compare_maven(&foo), Ordering::Less);
        // Ord keeps the two comparisons with the release and breaks the cycle there.
        assert!(rc < release && release < foo && rc < foo);
        let mut all = [
            v("1.foo"),
            v("1-rc1"),
            v("1"),
            v("1.0.alpha"),
            v("1.sp"),
            v("1-1"),
        ];
        all.sort();
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["1-rc1", "1.0.alpha", "1", "1.sp", "1.foo", "1-1"]);
    }
}
