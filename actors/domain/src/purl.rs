//! Package URLs (purls): parsing, the canonical string, and the [`PackageKey`] a purl
//! names, so that two spellings of one package meet in matching and in the impact index.
//!
//! Parsing, percent-decoding and the per-type rules of the purl-spec type definitions
//! (namespace required or prohibited, lowercase names for some types, `chrome-extension`
//! ids, ...) come from the `packageurl` crate. On top of it, this module:
//!
//! - keeps the case of `golang` namespaces. The type definition says to lowercase them,
//!   but Go module paths are case-sensitive (`github.com/BurntSushi/toml` is not
//!   `github.com/burntsushi/toml`, and the Go vulnerability database and OSV spell the
//!   former); lowercasing would make every such module miss its advisories. The official
//!   test suite has no case where this differs.
//! - lowercases `brew` and `git` namespaces and names (case-insensitive in their
//!   registries, and required by the test suite; the crate leaves them as written), and
//!   reads a `git` purl as host (namespace) and repository path (name, which may hold `/`);
//! - accepts `cpan` purls without a namespace (the author may be a qualifier instead),
//!   which the crate refuses and the type definition allows.
//! - writes the canonical string itself, with the encoding of ECMA-427: each namespace
//!   segment, the name, the version and each subpath segment percent-encoded, `/`, `,`
//!   and `&` also encoded inside qualifier values, qualifiers sorted by key, empty
//!   qualifier values and empty, `.` and `..` subpath segments dropped.
//!
//! What a purl means for matching is [`Purl::package_key`]: `None` for ecosystems Stella
//! does not match in, and also for `deb` outside the `debian` and `ubuntu` namespaces and
//! `apk` outside `alpine` (a Wolfi or Raspbian package checked against Debian or Alpine
//! advisories would give false findings).
//!
//! Not here: version ordering, and any lookup of a package in a registry.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use packageurl::PackageUrl;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ecosystem::{Ecosystem, PackageKey};
use crate::error::InputError;

/// Characters percent-encoded in every component (ECMA-427 canonical form): controls,
/// space, the URL delimiters and `+` (which some decoders read as a space).
const COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}')
    .add(b';')
    .add(b'=')
    .add(b'+')
    .add(b'@')
    .add(b'\\')
    .add(b'[')
    .add(b']')
    .add(b'^')
    .add(b'|');

/// A namespace segment or the name: `/` separates segments, so it is encoded inside one.
const SEGMENT: &AsciiSet = &COMPONENT.add(b'/');

/// A version: the `packageurl` parser reads an `@` followed by a `/` as part of the
/// namespace (an npm scope), so a `/` in a version is encoded, or the canonical string
/// would not parse back (found by the `purl` fuzz target).
const VERSION: &AsciiSet = &COMPONENT.add(b'/');

/// A qualifier value: `&` separates qualifiers and `,` separates list items.
const QUALIFIER_VALUE: &AsciiSet = &COMPONENT.add(b'/').add(b',').add(b'&');

/// A type with no rules in the `packageurl` crate, used to read a namespace as written.
const VERBATIM_TYPE: &str = "x-stella-verbatim";

/// A parsed and normalized package URL.
///
/// Two purls that differ only in spelling (case where the type is case-insensitive,
/// qualifier order, percent-encoding) are equal, and have the same [`Purl::as_str`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Purl {
    canonical: String,
    ty: String,
    namespace: Option<String>,
    name: String,
    version: Option<String>,
    qualifiers: BTreeMap<String, String>,
    subpath: Option<String>,
}

impl Purl {
    /// Parses a purl string; the error's pointer is `""` (the string as a whole), to be
    /// rebased by the caller onto where the string sits in its document.
    pub fn parse(input: &str) -> Result<Self, InputError> {
        let (mut parsed, ty) = match PackageUrl::from_str(input) {
            Ok(p) => {
                let ty = p.ty().to_owned();
                (p, ty)
            }
            // The crate requires a CPAN namespace (the author); the type definition and
            // the suite also allow `pkg:cpan/DateTime@1.55?author=DROLSKY`.
            Err(packageurl::Error::TypeRequiresNamespace(ty)) if ty == "cpan" => {
                let p = parse_verbatim(input).map_err(invalid)?;
                if p.name().contains("::") {
                    return Err(InputError::new(
                        "",
                        "invalid package URL: a cpan name is a distribution (URI-PackageURL), not a module (URI::PackageURL)",
                    ));
                }
                (p, ty)
            }
            Err(e) => return Err(invalid(e)),
        };
        let mut namespace = parsed.namespace().map(str::to_owned);
        let mut name = parsed.name().to_owned();
        match ty.as_str() {
            "golang" => {
                if let Ok(verbatim) = parse_verbatim(input) {
                    namespace = verbatim.namespace().map(str::to_owned);
                }
            }
            "brew" => {
                namespace = namespace.map(|ns| ns.to_lowercase());
                name = name.to_lowercase();
            }
            // The namespace is the host, the name the whole repository path on it.
            "git" => {
                let path = match namespace {
                    Some(ns) => clean_path(&format!("{ns}/{name}")).to_lowercase(),
                    None => clean_path(&name).to_lowercase(),
                };
                (namespace, name) = match path.split_once('/') {
                    Some((host, repo)) => (Some(host.to_owned()), repo.to_owned()),
                    None => (None, path),
                };
            }
            _ => {}
        }
        if name.is_empty() {
            return Err(InputError::new(
                "",
                "invalid package URL: a name is required",
            ));
        }
        // Empty, `.` and `..` namespace segments (`pkg:rpm//name`, an encoded `%2E`) are
        // dropped when the canonical string is read back, so they are not kept: a
        // canonical string must parse to itself (found by the `purl` fuzz target). A
        // namespace left empty is none, and the type's rules must hold without it.
        let namespace = namespace
            .map(|ns| clean_path(&ns))
            .filter(|ns| !ns.is_empty());
        if namespace.is_none() && parsed.namespace().is_some() {
            parsed.without_namespace();
            parsed.validate().map_err(invalid)?;
        }
        let qualifiers = parsed
            .qualifiers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut purl = Self {
            canonical: String::new(),
            ty,
            namespace,
            name,
            version: parsed.version().map(str::to_owned),
            qualifiers,
            subpath: parsed.subpath().map(clean_path).filter(|sp| !sp.is_empty()),
        };
        purl.canonical = purl.render(true);
        Ok(purl)
    }

    /// Builds a purl from decoded components, as a tool that knows a package's
    /// coordinates would; the same rules as [`Purl::parse`] apply.
    pub fn from_parts<'a>(
        ty: &str,
        namespace: Option<&str>,
        name: &str,
        version: Option<&str>,
        qualifiers: impl IntoIterator<Item = (&'a str, &'a str)>,
        subpath: Option<&str>,
    ) -> Result<Self, InputError> {
        let valid_type = ty.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
        if !valid_type {
            return Err(InputError::new(
                "",
                format!("invalid package URL: invalid type {ty:?}"),
            ));
        }
        let mut out = format!("pkg:{ty}/");
        if let Some(ns) = namespace {
            for segment in ns.split('/') {
                out.push_str(&encode(segment, SEGMENT));
                out.push('/');
            }
        }
        if name.is_empty() {
            return Err(InputError::new(
                "",
                "invalid package URL: a name is required",
            ));
        }
        out.push_str(&encode(name, SEGMENT));
        if let Some(v) = version {
            out.push('@');
            out.push_str(&encode(v, VERSION));
        }
        let mut first = true;
        for (key, value) in qualifiers {
            if !is_qualifier_key(key) {
                return Err(InputError::new(
                    "",
                    format!("invalid package URL: invalid qualifier key {key:?}"),
                ));
            }
            out.push(if first { '?' } else { '&' });
            first = false;
            out.push_str(key);
            out.push('=');
            out.push_str(&encode(value, QUALIFIER_VALUE));
        }
        if let Some(sp) = subpath {
            out.push('#');
            out.push_str(&encode_path(sp));
        }
        Self::parse(&out)
    }

    /// The canonical string, e.g. `pkg:npm/%40angular/core@12.3.1`.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The canonical string, without copying it.
    pub fn into_string(self) -> String {
        self.canonical
    }

    /// The type, lowercase (`npm`, `maven`, `golang`, ...).
    pub fn ty(&self) -> &str {
        &self.ty
    }

    /// The decoded namespace, segments joined by `/` (`@angular`, `github.com/gorilla`).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The decoded name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The decoded version.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The decoded qualifiers, keys lowercase, sorted.
    pub fn qualifiers(&self) -> &BTreeMap<String, String> {
        &self.qualifiers
    }

    /// The decoded subpath, segments joined by `/`.
    pub fn subpath(&self) -> Option<&str> {
        self.subpath.as_deref()
    }

    /// `pkg:type/namespace/name`: the package whatever its version, build (qualifiers
    /// such as `arch`, `distro`, `repository_url`) or file inside it (subpath). This is
    /// the impact-index key: an advisory about a package finds every SBOM holding any
    /// version of it.
    pub fn without_version(&self) -> String {
        self.render(false)
    }

    /// The ecosystem Stella matches this package in, if any (see the module docs for
    /// `deb` and `apk` namespaces).
    pub fn ecosystem(&self) -> Option<Ecosystem> {
        let namespace = self.namespace.as_deref();
        match (self.ty.as_str(), namespace) {
            ("deb", Some("debian" | "ubuntu")) | ("apk", Some("alpine")) => {}
            ("deb" | "apk", _) => return None,
            _ => {}
        }
        Ecosystem::from_purl(&self.ty, namespace)
    }

    /// The package as matching sees it, in OSV's spelling: `@scope/name` for npm,
    /// `group:artifact` for Maven, the module path for Go, `vendor/name` for Packagist,
    /// the name alone elsewhere. `None` where Stella does not match.
    pub fn package_key(&self) -> Option<PackageKey> {
        let ecosystem = self.ecosystem()?;
        let name = match (ecosystem, self.namespace.as_deref()) {
            (Ecosystem::Npm, Some(scope)) if scope.starts_with('@') => {
                format!("{scope}/{}", self.name)
            }
            // A scope written without its `@` is still a scope: npm names hold no `/`.
            (Ecosystem::Npm, Some(scope)) => format!("@{scope}/{}", self.name),
            (Ecosystem::Go | Ecosystem::Packagist, Some(ns)) => format!("{ns}/{}", self.name),
            (Ecosystem::Maven, Some(group)) => format!("{group}:{}", self.name),
            _ => self.name.clone(),
        };
        Some(PackageKey::new(ecosystem, &name))
    }

    fn render(&self, full: bool) -> String {
        let mut out = format!("pkg:{}/", self.ty);
        if let Some(ns) = &self.namespace {
            for segment in ns.split('/') {
                out.push_str(&encode(segment, SEGMENT));
                out.push('/');
            }
        }
        if self.ty == "git" {
            out.push_str(&encode_path(&self.name));
        } else {
            out.push_str(&encode(&self.name, SEGMENT));
        }
        if !full {
            return out;
        }
        if let Some(v) = &self.version {
            out.push('@');
            out.push_str(&encode(v, VERSION));
        }
        let mut first = true;
        for (key, value) in &self.qualifiers {
            if value.is_empty() {
                continue;
            }
            out.push(if first { '?' } else { '&' });
            first = false;
            out.push_str(key);
            out.push('=');
            out.push_str(&encode(value, QUALIFIER_VALUE));
        }
        if let Some(sp) = &self.subpath {
            let path = encode_path(sp);
            if !path.is_empty() {
                out.push('#');
                out.push_str(&path);
            }
        }
        out
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl FromStr for Purl {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Purl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical)
    }
}

impl<'de> Deserialize<'de> for Purl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

fn invalid(error: packageurl::Error) -> InputError {
    InputError::new("", format!("invalid package URL: {error}"))
}

fn encode(value: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(value, set).to_string()
}

/// Subpath segments, each encoded; empty, `.` and `..` segments are not part of it.
fn encode_path(path: &str) -> String {
    path_segments(path)
        .map(|s| encode(s, COMPONENT))
        .collect::<Vec<_>>()
        .join("/")
}

/// A subpath or a `git` repository path as it is written back: without empty, `.` and
/// `..` segments. Parsing keeps this form, so a canonical string parses to the same purl
/// (found by the `purl` fuzz target: `pkg:git/host/%2Frepo` kept a leading `/`).
fn clean_path(path: &str) -> String {
    path_segments(path).collect::<Vec<_>>().join("/")
}

fn path_segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !matches!(*s, "" | "." | ".."))
}

/// ECMA-427: ASCII letters, digits, `.`, `-`, `_`, not starting with a digit.
fn is_qualifier_key(key: &str) -> bool {
    key.chars().next().is_some_and(|c| !c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The same purl parsed under a type the crate has no rules for: components as written,
/// only the rules every type shares checked.
fn parse_verbatim(input: &str) -> Result<PackageUrl<'static>, packageurl::Error> {
    let rest = input
        .strip_prefix("pkg:")
        .ok_or(packageurl::Error::MissingScheme)?
        .trim_start_matches('/');
    let (_, tail) = rest.split_once('/').ok_or(packageurl::Error::MissingType)?;
    PackageUrl::from_str(&format!("pkg:{VERBATIM_TYPE}/{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(purl: &str) -> Option<PackageKey> {
        Purl::parse(purl).ok().and_then(|p| p.package_key())
    }

    #[test]
    fn package_keys_use_the_osv_spelling() {
        assert_eq!(
            key("pkg:npm/%40Angular/Core@12.3.1"),
            Some(PackageKey::new(Ecosystem::Npm, "@angular/core"))
        );
        assert_eq!(
            key("pkg:npm/angular/core@12.3.1"),
            Some(PackageKey::new(Ecosystem::Npm, "@angular/core"))
        );
        assert_eq!(
            key("pkg:maven/org.apache.commons/commons-lang3@3.9"),
            Some(PackageKey::new(
                Ecosystem::Maven,
                "org.apache.commons:commons-lang3"
            ))
        );
        assert_eq!(
            key("pkg:composer/Laravel/Framework@7.12.0"),
            Some(PackageKey::new(Ecosystem::Packagist, "laravel/framework"))
        );
        assert_eq!(
            key("pkg:pypi/Django_Package@1.0"),
            Some(PackageKey::new(Ecosystem::PyPI, "django-package"))
        );
        assert_eq!(
            key("pkg:deb/ubuntu/openssl@3.0.2-0ubuntu1?arch=amd64"),
            Some(PackageKey::new(Ecosystem::Ubuntu, "openssl"))
        );
        assert_eq!(key("pkg:apk/wolfi/openssl@3.0.2-r0"), None);
        assert_eq!(key("pkg:deb/raspbian/openssl@3.0.2"), None);
        assert_eq!(key("pkg:conda/absl-py@0.4.1"), None);
    }

    #[test]
    fn go_module_paths_keep_their_case() {
        let purl = Purl::parse("pkg:golang/github.com/BurntSushi/toml@v0.3.1").unwrap();
        assert_eq!(purl.namespace(), Some("github.com/BurntSushi"));
        assert_eq!(
            purl.as_str(),
            "pkg:golang/github.com/BurntSushi/toml@v0.3.1"
        );
        assert_eq!(
            purl.package_key(),
            Some(PackageKey::new(Ecosystem::Go, "github.com/BurntSushi/toml"))
        );
        let major = Purl::parse("pkg:GOLANG/github.com/CloudyKit/jet/v3@v3.0.0").unwrap();
        assert_eq!(
            major.package_key().map(|k| k.name),
            Some("github.com/CloudyKit/jet/v3".to_owned())
        );
        let built = Purl::from_parts(
            "golang",
            Some("github.com/BurntSushi"),
            "toml",
            Some("v0.3.1"),
            [],
            None,
        )
        .unwrap();
        assert_eq!(built, purl);
    }

    #[test]
    fn the_impact_index_key_drops_version_qualifiers_and_subpath() {
        let a = Purl::parse("pkg:npm/%40babel/core@7.19.4?foo=bar#packages/core").unwrap();
        let b = Purl::parse("pkg:npm/@babel/core@7.0.0").unwrap();
        assert_eq!(a.without_version(), "pkg:npm/%40babel/core");
        assert_eq!(a.without_version(), b.without_version());
    }

    /// Found by the `purl` fuzz target: the version decodes to `…=https://…/`, whose `/`
    /// was written as is, and the canonical string did not parse.
    #[test]
    fn a_slash_in_the_version_is_encoded_so_the_canonical_string_parses_back() {
        let input = "pkg:bazel/rules_java@7.82Fbcr.bazel.build=https:%2F%2Fbcr.bazel.build%2F";
        let purl = Purl::parse(input).unwrap();
        assert_eq!(
            purl.version(),
            Some("7.82Fbcr.bazel.build=https://bcr.bazel.build/")
        );
        assert_eq!(
            purl.as_str(),
            "pkg:bazel/rules_java@7.82Fbcr.bazel.build%3Dhttps:%2F%2Fbcr.bazel.build%2F"
        );
        assert_eq!(Purl::parse(purl.as_str()).unwrap(), purl);
    }

    /// Found by the `purl` fuzz target: `./` left an empty namespace, written as `//`,
    /// which read back as no namespace; an encoded `.` segment was written as `.`, which
    /// reads back as nothing.
    #[test]
    fn an_empty_namespace_is_no_namespace() {
        let purl = Purl::parse("pkg:rpm/./forgejo6a@#options/locale_readme.md").unwrap();
        assert_eq!(purl.namespace(), None);
        assert_eq!(purl.as_str(), "pkg:rpm/forgejo6a@#options/locale_readme.md");
        assert_eq!(Purl::parse(purl.as_str()).unwrap(), purl);
        let purl = Purl::parse("pkg:ngolangpm/%40/%2e/a").unwrap();
        assert_eq!(purl.as_str(), "pkg:ngolangpm/%40/a");
        assert_eq!(Purl::parse(purl.as_str()).unwrap(), purl);
        assert_eq!(
            Purl::parse("pkg:swift/./A").unwrap_err().message,
            "invalid package URL: namespace required for type \"swift\""
        );
    }

    /// Found by the `purl` fuzz target: an encoded `/` left the repository path a leading
    /// `/` that the canonical string does not write.
    #[test]
    fn git_repository_paths_and_subpaths_keep_no_empty_segments() {
        let purl = Purl::parse("pkg:git/example.com/%2Frepo#a/./b//").unwrap();
        assert_eq!(purl.namespace(), Some("example.com"));
        assert_eq!(purl.name(), "repo");
        assert_eq!(purl.subpath(), Some("a/b"));
        assert_eq!(purl.as_str(), "pkg:git/example.com/repo#a/b");
        assert_eq!(Purl::parse(purl.as_str()).unwrap(), purl);
    }

    #[test]
    fn ampersands_in_qualifier_values_round_trip() {
        let purl = Purl::from_parts(
            "generic",
            None,
            "archive",
            None,
            [("download_url", "https://example.com/a?x=1&y=2")],
            None,
        )
        .unwrap();
        assert_eq!(
            purl.as_str(),
            "pkg:generic/archive?download_url=https:%2F%2Fexample.com%2Fa%3Fx%3D1%26y%3D2"
        );
        assert_eq!(Purl::parse(purl.as_str()).unwrap(), purl);
    }

    #[test]
    fn building_refuses_what_would_change_meaning_once_written() {
        let built = |ty: &str, name: &str| Purl::from_parts(ty, None, name, None, [], None);
        assert!(built("npm/evil", "x").is_err());
        assert!(built("3d", "x").is_err());
        assert!(built("npm", "").is_err());
        assert_eq!(built("npm", "a b@c").unwrap().as_str(), "pkg:npm/a%20b%40c");
    }

    #[test]
    fn serializes_as_the_canonical_string() {
        let purl = Purl::parse("pkg:Maven/org.a/b@1?Type=jar&classifier=x").unwrap();
        let json = serde_json::to_string(&purl).unwrap();
        assert_eq!(json, "\"pkg:maven/org.a/b@1?classifier=x&type=jar\"");
        assert_eq!(serde_json::from_str::<Purl>(&json).unwrap(), purl);
        assert!(serde_json::from_str::<Purl>("\"npm/x\"").is_err());
    }
}
