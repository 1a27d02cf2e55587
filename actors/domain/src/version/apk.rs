//! Alpine package versions, ordered as apk-tools 2 does (`src/version.c`):
//! `digits{.digits}[letter]{_suffix[N]}[-rN]`. The string is cut into tokens and the
//! token sequences are compared pairwise; a component with leading zeros (`1.05`)
//! compares as a fraction (`.0` runs sort by how many zeros they have, below any plain
//! number); pre-release suffixes `_alpha`, `_beta`, `_pre`, `_rc` sort below the bare
//! version and post-release suffixes `_cvs`, `_svn`, `_git`, `_hg`, `_p` above it; `-rN`
//! is the package revision.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::VersionError;

/// apk-tools' token kinds; their order matters (it decides which of two versions that
/// agree up to where one ends, or turns, is the greater).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Token {
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    RevisionNo,
    End,
}

const PRE_SUFFIXES: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST_SUFFIXES: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

/// An apk version: its tokens as `(value, kind of the token that follows)`.
#[derive(Debug, Clone)]
pub struct ApkVersion {
    original: String,
    tokens: Vec<(i64, Token)>,
}

impl ApkVersion {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        let invalid = |reason: &str| VersionError::invalid("Alpine", version, reason);
        // apk-tools itself would read a leading letter as a token after an empty number;
        // no Alpine package is versioned like that, so such strings are refused.
        if !version.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid("must start with a digit"));
        }
        let s = version.as_bytes();
        let mut pos = 0;
        let mut kind = Token::Digit;
        let mut tokens = Vec::new();
        while kind != Token::End {
            let value = read_token(s, &mut pos, &mut kind).ok_or_else(|| {
                invalid("not of the form digits{.digits}[letter]{_suffix[N]}[-rN]")
            })?;
            tokens.push((value, kind));
        }
        Ok(ApkVersion {
            original: version.to_owned(),
            tokens,
        })
    }
}

/// apk-tools' `next_token`: the kind of the token starting at `pos`, consuming its
/// separator. `None` for an invalid sequence.
fn next_token(s: &[u8], pos: &mut usize, kind: Token) -> Option<Token> {
    let Some(&c) = s.get(*pos) else {
        return Some(Token::End);
    };
    let n = if matches!(kind, Token::Digit | Token::DigitOrZero) && c.is_ascii_lowercase() {
        Token::Letter
    } else if kind == Token::Letter && c.is_ascii_digit() {
        Token::Digit
    } else if kind == Token::Suffix && c.is_ascii_digit() {
        Token::SuffixNo
    } else {
        let n = match c {
            b'.' => Token::DigitOrZero,
            b'_' => Token::Suffix,
            b'-' if s.get(*pos + 1) == Some(&b'r') => {
                *pos += 1;
                Token::RevisionNo
            }
            _ => return None,
        };
        *pos += 1;
        n
    };
    let allowed_backwards = matches!(
        (n, kind),
        (Token::DigitOrZero, Token::Digit)
            | (Token::Suffix, Token::SuffixNo)
            | (Token::Digit, Token::Letter)
    );
    if n < kind && !allowed_backwards {
        return None;
    }
    Some(n)
}

/// apk-tools' `get_token`: reads one token of kind `*kind` at `pos`, returns its value
/// and sets `*kind` to the kind of the next one. `None` for an invalid version.
fn read_token(s: &[u8], pos: &mut usize, kind: &mut Token) -> Option<i64> {
    if *pos >= s.len() {
        *kind = Token::End;
        return Some(0);
    }
    let rest = &s[*pos..];
    let mut i = 0;
    let mut value: i64 = 0;
    let mut forced_next = None;
    match *kind {
        Token::DigitOrZero if rest[0] == b'0' => {
            // Leading zeros: the run's value is minus its length, so `1.01` < `1.1`.
            while rest.get(i) == Some(&b'0') {
                i += 1;
            }
            value = -i64::try_from(i).ok()?;
            forced_next = Some(Token::Digit);
        }
        Token::DigitOrZero | Token::Digit | Token::SuffixNo | Token::RevisionNo => {
            while let Some(d) = rest.get(i).filter(|d| d.is_ascii_digit()) {
                value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
                i += 1;
            }
        }
        Token::Letter => {
            value = i64::from(rest[0]);
            i = 1;
        }
        Token::Suffix => {
            if let Some((k, name)) = PRE_SUFFIXES
                .iter()
                .enumerate()
                .find(|(_, name)| rest.starts_with(name.as_bytes()))
            {
                value = i64::try_from(k).ok()? - 4;
                i = name.len();
            } else if let Some((k, name)) = POST_SUFFIXES
                .iter()
                .enumerate()
                .find(|(_, name)| rest.starts_with(name.as_bytes()))
            {
                value = i64::try_from(k).ok()?;
                i = name.len();
            } else {
                return None;
            }
        }
        Token::End => return None,
    }
    *pos += i;
    *kind = if *pos >= s.len() {
        Token::End
    } else if let Some(next) = forced_next {
        next
    } else {
        next_token(s, pos, *kind)?
    };
    Some(value)
}

impl Ord for ApkVersion {
    /// apk-tools' `apk_version_compare_blob` over the pre-read tokens.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.tokens, &other.tokens);
        let (mut at, mut bt) = (Token::Digit, Token::Digit);
        let (mut av, mut bv) = (0, 0);
        let mut k = 0;
        while at == bt && at != Token::End && av == bv {
            // Both sequences have a token at `k`: each ends with `End` and the kinds agree.
            match (a.get(k), b.get(k)) {
                (Some(&(va, ka)), Some(&(vb, kb))) => {
                    (av, at, bv, bt) = (va, ka, vb, kb);
                }
                _ => break,
            }
            k += 1;
        }
        if av != bv {
            return av.cmp(&bv);
        }
        if at == bt {
            return Ordering::Equal;
        }
        // One goes on where the other stopped or turned: the longer one is newer unless
        // what follows is a pre-release suffix.
        let next_value = |tokens: &Vec<(i64, Token)>| tokens.get(k).map_or(0, |t| t.0);
        if at == Token::Suffix && next_value(a) < 0 {
            return Ordering::Less;
        }
        if bt == Token::Suffix && next_value(b) < 0 {
            return Ordering::Greater;
        }
        bt.cmp(&at)
    }
}

impl PartialOrd for ApkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ApkVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ApkVersion {}

impl Hash for ApkVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal versions have equal token sequences.
        self.tokens.hash(state);
    }
}

impl fmt::Display for ApkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ApkVersion {
        ApkVersion::parse(s).unwrap()
    }

    #[test]
    fn suffixes_and_revisions() {
        let ordered = [
            "1.2_alpha",
            "1.2_alpha1",
            "1.2_beta2",
            "1.2_pre1",
            "1.2_rc1",
            "1.2",
            "1.2-r1",
            "1.2-r10",
            "1.2_cvs",
            "1.2_git20240101",
            "1.2_p1",
            "1.2_p1-r1",
            "1.2a",
            "1.2.1",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn leading_zeros_compare_as_fractions() {
        assert!(v("1.01") < v("1.1"));
        assert!(v("1.001") < v("1.01"));
        assert!(v("1.0") < v("1.1"));
        assert_eq!(v("1.2-r0"), v("1.2-r0"));
    }

    #[test]
    fn malformed_versions_are_rejected() {
        for bad in ["", "a1", "1.2-1", "1.2_foo", "1.2A", "1.2-r1.3", "1.2 "] {
            assert!(ApkVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
