//! OSV advisories: one record as published (schema 1.x), its normalized form for
//! matching, and reading untrusted collections (a JSON file, an array, or a zip archive
//! such as OSV's `<ecosystem>/all.zip`) within limits.
//!
//! Records keep every field Stella does not interpret in the raw observation (stored
//! content-addressed by the fetcher); the normalized [`Advisory`] keeps what matching,
//! policy and explain traces need.

use std::io::{Cursor, Read};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ecosystem::{Ecosystem, PackageKey};
use crate::error::InputError;
use crate::version::{OsvAffected, OsvRange, RangeType, VersionError};

/// A severity score: a CVSS vector (`CVSS_V3`, `CVSS_V4`, ...) or an ecosystem rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Severity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default)]
    severity: Vec<Severity>,
    #[serde(default)]
    ranges: Vec<OsvRange>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawRecord {
    id: String,
    modified: DateTime<Utc>,
    #[serde(default)]
    published: Option<DateTime<Utc>>,
    #[serde(default)]
    withdrawn: Option<DateTime<Utc>>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    severity: Vec<Severity>,
    #[serde(default)]
    affected: Vec<RawAffected>,
    #[serde(default)]
    database_specific: Option<Value>,
}

/// One affected package of an advisory, ready for matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    /// `None` when the ecosystem is one Stella does not match in (kept, never dropped).
    pub package: Option<PackageKey>,
    /// The ecosystem as written (`Debian:12`), and the package name as written.
    pub ecosystem: String,
    pub name: String,
    pub purl: Option<String>,
    /// The ranges and listed versions, as the version module evaluates them.
    pub matcher: OsvAffected,
    pub severity: Vec<Severity>,
}

impl Affected {
    /// Whether `version` of this package is affected (OSV range semantics in the
    /// package's ecosystem). Errors name a version that does not parse.
    pub fn is_affected(&self, version: &str) -> Result<bool, VersionError> {
        match &self.package {
            Some(key) => crate::version::is_affected(key.ecosystem, version, &self.matcher),
            None => Ok(false),
        }
    }
}

/// A normalized OSV advisory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    pub aliases: Vec<String>,
    pub modified: DateTime<Utc>,
    pub published: Option<DateTime<Utc>>,
    /// A withdrawn advisory stops matching.
    pub withdrawn: Option<DateTime<Utc>>,
    pub summary: Option<String>,
    pub severity: Vec<Severity>,
    /// A severity word some databases give (`database_specific.severity`: GitHub's
    /// `LOW`..`CRITICAL`), used when no CVSS vector is present.
    pub severity_label: Option<String>,
    pub affected: Vec<Affected>,
}

impl Advisory {
    /// Every package the advisory names, in matching form.
    pub fn packages(&self) -> impl Iterator<Item = &PackageKey> {
        self.affected.iter().filter_map(|a| a.package.as_ref())
    }

    /// The advisory's own id and its aliases.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// Parses one OSV record.
pub fn parse_record(bytes: &[u8]) -> Result<Advisory, InputError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: RawRecord = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let pointer = json_pointer(&err.path().to_string());
        let inner = err.into_inner();
        InputError::new(
            pointer,
            format!(
                "invalid OSV record (line {} column {}): {inner}",
                inner.line(),
                inner.column()
            ),
        )
    })?;
    from_raw(raw)
}

/// Converts a serde_path_to_error path (`affected[0].ranges[1].type`) to a JSON pointer
/// (`/affected/0/ranges/1/type`).
pub fn json_pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            out.push('/');
            out.push_str(&crate::error::pointer_token(&rest[..i]));
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let end = stripped.find(']').unwrap_or(stripped.len());
                out.push('/');
                out.push_str(&stripped[..end]);
                rest = stripped.get(end + 1..).unwrap_or("");
            }
        } else {
            out.push('/');
            out.push_str(&crate::error::pointer_token(rest));
        }
    }
    out
}

fn from_raw(raw: RawRecord) -> Result<Advisory, InputError> {
    if raw.id.trim().is_empty() {
        return Err(InputError::new("/id", "an advisory needs an id"));
    }
    let severity_label = raw
        .database_specific
        .as_ref()
        .and_then(|d| d.get("severity"))
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase);
    let mut affected = Vec::with_capacity(raw.affected.len());
    for (i, entry) in raw.affected.into_iter().enumerate() {
        let Some(package) = entry.package else {
            // OSV allows affected entries without a package (GIT-only ranges): nothing to
            // match by package.
            continue;
        };
        for (j, range) in entry.ranges.iter().enumerate() {
            if let RangeType::Other(kind) = &range.kind {
                return Err(InputError::new(
                    format!("/affected/{i}/ranges/{j}/type"),
                    format!("unknown range type {kind:?}"),
                ));
            }
        }
        let key =
            Ecosystem::from_osv(&package.ecosystem).map(|e| PackageKey::new(e, &package.name));
        affected.push(Affected {
            package: key,
            ecosystem: package.ecosystem,
            name: package.name,
            purl: package.purl,
            matcher: OsvAffected {
                package: None,
                ranges: entry.ranges,
                versions: entry.versions,
            },
            severity: entry.severity,
        });
    }
    Ok(Advisory {
        id: raw.id,
        aliases: raw.aliases,
        modified: raw.modified,
        published: raw.published,
        withdrawn: raw.withdrawn,
        summary: raw.summary,
        severity: raw.severity,
        severity_label,
        affected,
    })
}

/// Limits on an untrusted collection of advisories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries in an archive (or records in an array).
    pub max_entries: usize,
    /// Bytes after decompression, all entries together.
    pub max_total_bytes: u64,
    /// Bytes of one entry after decompression.
    pub max_entry_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 200_000,
            max_total_bytes: 2 * 1024 * 1024 * 1024,
            max_entry_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One raw record of a collection: where it came from in the collection, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The archive entry name, or `[i]` for the i-th element of an array.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Why a collection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectionError {
    #[error("the archive is not a readable zip file: {0}")]
    NotZip(String),
    #[error("the archive has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("entry {name:?} is larger than {limit} bytes uncompressed")]
    EntryTooLarge { name: String, limit: u64 },
    #[error("the archive is larger than {limit} bytes uncompressed")]
    TooLarge { limit: u64 },
    #[error("entry {name:?} has an unsafe path (absolute, or `..`)")]
    UnsafePath { name: String },
    #[error("entry {name:?} cannot be read: {reason}")]
    BadEntry { name: String, reason: String },
    #[error(transparent)]
    Input(#[from] InputError),
}

/// Whether `bytes` start like a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Splits a collection into raw records: a zip archive of `.json` files (other entries
/// and folders are skipped), a JSON array of records, or one record.
pub fn split_collection(bytes: &[u8], limits: Limits) -> Result<Vec<RawEntry>, CollectionError> {
    if is_zip(bytes) {
        return read_zip(bytes, limits);
    }
    let trimmed = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &bytes[i..]);
    if trimmed.starts_with(b"[") {
        let values: Vec<Value> = serde_json::from_slice(bytes).map_err(|err| {
            InputError::new(
                "",
                format!(
                    "not a JSON array of OSV records (line {} column {}): {err}",
                    err.line(),
                    err.column()
                ),
            )
        })?;
        if values.len() > limits.max_entries {
            return Err(CollectionError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        return Ok(values
            .iter()
            .enumerate()
            .map(|(i, v)| RawEntry {
                name: format!("[{i}]"),
                bytes: v.to_string().into_bytes(),
            })
            .collect());
    }
    Ok(vec![RawEntry {
        name: String::new(),
        bytes: bytes.to_vec(),
    }])
}

fn read_zip(bytes: &[u8], limits: Limits) -> Result<Vec<RawEntry>, CollectionError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|err| CollectionError::NotZip(err.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(CollectionError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    let mut total: u64 = 0;
    let mut out = Vec::new();
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .map_err(|err| CollectionError::NotZip(err.to_string()))?;
        let name = file.name().to_owned();
        if file.enclosed_name().is_none() {
            return Err(CollectionError::UnsafePath { name });
        }
        if file.is_dir() || !name.ends_with(".json") {
            continue;
        }
        // The declared size can lie: read at most one byte past the limit to find out.
        let budget = limits
            .max_entry_bytes
            .min(limits.max_total_bytes.saturating_sub(total));
        let mut data = Vec::with_capacity(usize::try_from(file.size().min(budget)).unwrap_or(0));
        (&mut file)
            .take(budget + 1)
            .read_to_end(&mut data)
            .map_err(|err| CollectionError::BadEntry {
                name: name.clone(),
                reason: err.to_string(),
            })?;
        let read = data.len() as u64;
        if read > budget {
            return Err(if budget < limits.max_entry_bytes {
                CollectionError::TooLarge {
                    limit: limits.max_total_bytes,
                }
            } else {
                CollectionError::EntryTooLarge {
                    name,
                    limit: limits.max_entry_bytes,
                }
            });
        }
        total += read;
        out.push(RawEntry { name, bytes: data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    const RECORD: &str = r#"{"schema_version": "1.6.0", "id": "GHSA-xxxx-yyyy-zzzz", "modified": "2024-05-01T00:00:00Z",
      "aliases": ["CVE-2024-0001"], "summary": "bad thing",
      "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
      "affected": [
        {"package": {"ecosystem": "PyPI", "name": "Django_Thing"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}], "versions": ["1.0"]},
        {"package": {"ecosystem": "Hackage", "name": "aeson"}, "ranges": []}
      ],
      "database_specific": {"severity": "critical"}, "x_unknown": 1}"#;

    #[test]
    fn a_record_normalizes_names_and_keeps_unsupported_ecosystems() {
        let advisory = parse_record(RECORD.as_bytes()).unwrap();
        assert_eq!(advisory.id, "GHSA-xxxx-yyyy-zzzz");
        assert_eq!(
            advisory.ids().collect::<Vec<_>>(),
            ["GHSA-xxxx-yyyy-zzzz", "CVE-2024-0001"]
        );
        assert_eq!(advisory.affected.len(), 2);
        assert_eq!(
            advisory.affected[0].package,
            Some(PackageKey::new(Ecosystem::PyPI, "django-thing"))
        );
        assert_eq!(advisory.affected[1].package, None, "kept, not matched");
        assert_eq!(advisory.severity_label.as_deref(), Some("CRITICAL"));
    }

    #[test]
    fn malformed_records_name_the_field() {
        let err = parse_record(br#"{"id": "X", "modified": "yesterday"}"#).unwrap_err();
        assert_eq!(err.pointer, "/modified");
        let err = parse_record(
            br#"{"id": "X", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "a"}, "ranges": [{"type": "WEIRD", "events": []}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.pointer, "/affected/0/ranges/0/type");
        let err = parse_record(br#"{"id": "X", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm"}}]}"#)
            .unwrap_err();
        assert_eq!(err.pointer, "/affected/0/package");
        assert!(err.message.contains("name"), "{}", err.message);
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            writer.start_file(*name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn hostile_archives_are_refused_with_the_reason() {
        let zip = zip_of(&[("../escape.json", RECORD.as_bytes())]);
        assert!(matches!(
            split_collection(&zip, Limits::default()),
            Err(CollectionError::UnsafePath { .. })
        ));
        let bomb = vec![b' '; 1024 * 1024];
        let zip = zip_of(&[("big.json", &bomb)]);
        assert!(zip.len() < 20_000, "compresses well: a small bomb");
        let limits = Limits {
            max_entry_bytes: 64 * 1024,
            ..Limits::default()
        };
        assert!(matches!(
            split_collection(&zip, limits),
            Err(CollectionError::EntryTooLarge { .. })
        ));
        let zip = zip_of(&[("a.json", &bomb), ("b.json", &bomb)]);
        let limits = Limits {
            max_total_bytes: 1536 * 1024,
            ..Limits::default()
        };
        assert!(matches!(
            split_collection(&zip, limits),
            Err(CollectionError::TooLarge { .. })
        ));
        let zip = zip_of(&[("a.json", b"{}"), ("b.json", b"{}"), ("c.json", b"{}")]);
        let limits = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        assert!(matches!(
            split_collection(&zip, limits),
            Err(CollectionError::TooManyEntries { limit: 2 })
        ));
        assert!(matches!(
            split_collection(b"PK\x03\x04garbage", Limits::default()),
            Err(CollectionError::NotZip(_))
        ));
    }

    #[test]
    fn collections_come_as_archives_arrays_or_single_records() {
        let zip = zip_of(&[("GO-1.json", RECORD.as_bytes()), ("README.md", b"skip me")]);
        let entries = split_collection(&zip, Limits::default()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "GO-1.json");
        let array = format!("[{RECORD}, {RECORD}]");
        assert_eq!(
            split_collection(array.as_bytes(), Limits::default())
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            split_collection(RECORD.as_bytes(), Limits::default())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn the_real_go_and_pypi_databases_parse_completely() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/advisories");
        for (file, records) in [("Go-all.zip", 4291), ("PyPI-all.zip", 2661)] {
            let Ok(bytes) = std::fs::read(dir.join(file)) else {
                println!("skipping: {} not found", dir.join(file).display());
                return;
            };
            let entries = split_collection(&bytes, Limits::default()).unwrap();
            assert_eq!(entries.len(), records, "{file}");
            let mut packages = 0;
            for entry in &entries {
                let advisory = parse_record(&entry.bytes)
                    .unwrap_or_else(|err| panic!("{file}/{}: {err}", entry.name));
                packages += advisory.packages().count();
            }
            assert!(packages >= records, "{file}: {packages} packages");
        }
    }
}
