//! OSV advisories: one record as published (schema 1.x), its normalized form for
//! matching, and reading untrusted collections (a JSON file, an array, or a zip archive
//! such as OSV's `<ecosystem>/all.zip`) within limits.
//!
//! Records keep every field Stella does not interpret in the raw observation (stored
//! content-addressed by the fetcher); the normalized [`Advisory`] keeps what matching,
//! policy and explain traces need.

use std::io::{Cursor, Read, Seek, SeekFrom};

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

/// Limits on an untrusted collection of advisories. Real OSV records are a few KiB
/// (the largest of the Go and PyPI databases is 25 KiB), so the defaults leave a wide
/// margin while bounding what a hostile archive can make the server inflate.
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
            max_total_bytes: 1024 * 1024 * 1024,
            max_entry_bytes: 4 * 1024 * 1024,
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
    #[error("the collection has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("entry {name:?} is larger than {limit} bytes uncompressed")]
    EntryTooLarge { name: String, limit: u64 },
    #[error("the collection is larger than {limit} bytes uncompressed")]
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

/// Splits an in-memory collection into raw records (see [`visit_collection`]).
pub fn split_collection(bytes: &[u8], limits: Limits) -> Result<Vec<RawEntry>, CollectionError> {
    let mut out = Vec::new();
    visit_collection(Cursor::new(bytes), limits, |entry| {
        out.push(entry);
        Ok::<(), CollectionError>(())
    })?;
    Ok(out)
}

/// Reads a collection one record at a time and hands each to `visit`: a zip archive of
/// `.json` files (other entries and folders are skipped), a JSON array of records, or one
/// record. Only one record's bytes are in memory at a time: an archive is inflated entry
/// by entry and an array decoded element by element, every byte is counted as it comes,
/// and the first limit crossed stops the read. An archive's entry count is read from its
/// end record before its central directory is, so a million-entry archive is refused
/// without building a million-entry index. The first error (a limit, a malformed
/// collection, or one `visit` returns) ends the read.
pub fn visit_collection<R, E>(
    mut reader: R,
    limits: Limits,
    mut visit: impl FnMut(RawEntry) -> Result<(), E>,
) -> Result<(), E>
where
    R: Read + Seek,
    E: From<CollectionError>,
{
    let mut head = [0u8; 4];
    let got = read_up_to(&mut reader, &mut head).map_err(|err| bad_input(&err))?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|err| bad_input(&err))?;
    if is_zip(&head[..got]) {
        return visit_zip(reader, limits, visit);
    }
    let mut first = [0u8; 1];
    loop {
        if read_up_to(&mut reader, &mut first).map_err(|err| bad_input(&err))? == 0 {
            break;
        }
        if !first[0].is_ascii_whitespace() {
            break;
        }
    }
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|err| bad_input(&err))?;
    let mut counted = Counted {
        inner: reader.take(limits.max_total_bytes + 1),
        read: 0,
    };
    if first[0] == b'[' {
        let result = visit_array(&mut counted, limits, &mut visit);
        // Past the limit the array was cut short: that is the reason, not its syntax.
        if counted.read > limits.max_total_bytes {
            return Err(CollectionError::TooLarge {
                limit: limits.max_total_bytes,
            }
            .into());
        }
        result?;
    } else {
        let mut bytes = Vec::new();
        counted
            .read_to_end(&mut bytes)
            .map_err(|err| bad_input(&err))?;
        if counted.read > limits.max_total_bytes {
            return Err(CollectionError::TooLarge {
                limit: limits.max_total_bytes,
            }
            .into());
        }
        visit(RawEntry {
            name: String::new(),
            bytes,
        })?;
    }
    if counted.read > limits.max_total_bytes {
        return Err(CollectionError::TooLarge {
            limit: limits.max_total_bytes,
        }
        .into());
    }
    Ok(())
}

/// The entries `names` of a collection already imported (an archive entry name, `[i]` of
/// an array, `""` for a single record), as [`visit_collection`] named them, each once (an
/// archive's in name order, an array's in its order): how a record is read back from
/// the collection it came in. An
/// archive's entries are found by name, without inflating the others; an array is read
/// through. `max_entry_bytes` bounds each entry read (the import checked the rest).
pub fn read_entries<R: Read + Seek>(
    mut reader: R,
    names: &std::collections::BTreeSet<String>,
    max_entry_bytes: u64,
) -> Result<Vec<RawEntry>, CollectionError> {
    let mut head = [0u8; 4];
    let got = read_up_to(&mut reader, &mut head).map_err(|err| bad_input(&err))?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|err| bad_input(&err))?;
    if !is_zip(&head[..got]) {
        let mut out = Vec::new();
        // The import checked the collection's size and count; only the entry is bounded.
        let limits = Limits {
            max_entries: usize::MAX,
            max_total_bytes: u64::MAX / 2,
            max_entry_bytes,
        };
        visit_collection(reader, limits, |entry: RawEntry| {
            if names.contains(&entry.name) {
                out.push(entry);
            }
            Ok::<(), CollectionError>(())
        })?;
        return Ok(out);
    }
    let mut archive =
        zip::ZipArchive::new(reader).map_err(|err| CollectionError::NotZip(err.to_string()))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut file = archive
            .by_name(name)
            .map_err(|err| CollectionError::BadEntry {
                name: name.clone(),
                reason: err.to_string(),
            })?;
        let mut bytes = Vec::new();
        (&mut file)
            .take(max_entry_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| CollectionError::BadEntry {
                name: name.clone(),
                reason: err.to_string(),
            })?;
        if bytes.len() as u64 > max_entry_bytes {
            return Err(CollectionError::EntryTooLarge {
                name: name.clone(),
                limit: max_entry_bytes,
            });
        }
        out.push(RawEntry {
            name: name.clone(),
            bytes,
        });
    }
    Ok(out)
}

fn bad_input(err: &std::io::Error) -> CollectionError {
    CollectionError::BadEntry {
        name: String::new(),
        reason: err.to_string(),
    }
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A reader that counts the bytes it passed on.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Decodes a JSON array element by element, never holding the whole array.
fn visit_array<R: Read, E: From<CollectionError>>(
    reader: R,
    limits: Limits,
    visit: &mut impl FnMut(RawEntry) -> Result<(), E>,
) -> Result<(), E> {
    use serde::de::{Deserializer as _, SeqAccess, Visitor};

    struct Elements<'a, F, E> {
        limits: Limits,
        visit: &'a mut F,
        /// The error `visit` or a limit gave: serde only carries its own error type, so
        /// the real one waits here while serde unwinds.
        stopped: &'a mut Option<E>,
    }

    impl<'de, F, E> Visitor<'de> for Elements<'_, F, E>
    where
        F: FnMut(RawEntry) -> Result<(), E>,
        E: From<CollectionError>,
    {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array of OSV records")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0usize;
            while let Some(value) = seq.next_element::<Value>()? {
                if index >= self.limits.max_entries {
                    *self.stopped = Some(
                        CollectionError::TooManyEntries {
                            limit: self.limits.max_entries,
                        }
                        .into(),
                    );
                    return Err(serde::de::Error::custom("stopped"));
                }
                let entry = RawEntry {
                    name: format!("[{index}]"),
                    bytes: value.to_string().into_bytes(),
                };
                drop(value);
                if entry.bytes.len() as u64 > self.limits.max_entry_bytes {
                    *self.stopped = Some(
                        CollectionError::EntryTooLarge {
                            name: entry.name,
                            limit: self.limits.max_entry_bytes,
                        }
                        .into(),
                    );
                    return Err(serde::de::Error::custom("stopped"));
                }
                if let Err(err) = (self.visit)(entry) {
                    *self.stopped = Some(err);
                    return Err(serde::de::Error::custom("stopped"));
                }
                index += 1;
            }
            Ok(())
        }
    }

    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = de
        .deserialize_seq(Elements {
            limits,
            visit,
            stopped: &mut stopped,
        })
        .and_then(|()| de.end());
    if let Some(err) = stopped {
        return Err(err);
    }
    result.map_err(|err| {
        CollectionError::from(InputError::new(
            "",
            format!(
                "not a JSON array of OSV records (line {} column {}): {err}",
                err.line(),
                err.column()
            ),
        ))
        .into()
    })
}

/// The entry count an archive's end-of-central-directory record declares (the zip64
/// record's when the classic one says so), read from the archive's tail only.
fn declared_entries<R: Read + Seek>(reader: &mut R) -> Result<u64, CollectionError> {
    let not_zip = |why: &str| CollectionError::NotZip(why.to_owned());
    let io = |err: std::io::Error| CollectionError::NotZip(err.to_string());
    let len = reader.seek(SeekFrom::End(0)).map_err(io)?;
    // The end record is 22 bytes plus a comment of at most 65,535.
    let tail_len = len.min(22 + 65_535);
    reader.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = vec![0u8; usize::try_from(tail_len).unwrap_or(0)];
    reader.read_exact(&mut tail).map_err(io)?;
    let at = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .ok_or_else(|| not_zip("no end of central directory record"))?;
    let classic = u64::from(u16::from_le_bytes([tail[at + 10], tail[at + 11]]));
    if classic != 0xFFFF {
        return Ok(classic);
    }
    // Zip64: a 20-byte locator just before the end record points at the zip64 record.
    let locator_at = (len - tail_len + at as u64)
        .checked_sub(20)
        .ok_or_else(|| not_zip("a zip64 archive without its locator"))?;
    reader.seek(SeekFrom::Start(locator_at)).map_err(io)?;
    let mut locator = [0u8; 20];
    reader.read_exact(&mut locator).map_err(io)?;
    if !locator.starts_with(b"PK\x06\x07") {
        return Err(not_zip("a zip64 archive without its locator"));
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&locator[8..16]);
    reader
        .seek(SeekFrom::Start(u64::from_le_bytes(offset)))
        .map_err(io)?;
    let mut record = [0u8; 40];
    reader.read_exact(&mut record).map_err(io)?;
    if !record.starts_with(b"PK\x06\x06") {
        return Err(not_zip("a broken zip64 end record"));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&record[32..40]);
    Ok(u64::from_le_bytes(count))
}

fn visit_zip<R, E>(
    mut reader: R,
    limits: Limits,
    mut visit: impl FnMut(RawEntry) -> Result<(), E>,
) -> Result<(), E>
where
    R: Read + Seek,
    E: From<CollectionError>,
{
    if declared_entries(&mut reader)? > limits.max_entries as u64 {
        return Err(CollectionError::TooManyEntries {
            limit: limits.max_entries,
        }
        .into());
    }
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|err| CollectionError::NotZip(err.to_string()))?;
    let mut archive =
        zip::ZipArchive::new(reader).map_err(|err| CollectionError::NotZip(err.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(CollectionError::TooManyEntries {
            limit: limits.max_entries,
        }
        .into());
    }
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .map_err(|err| CollectionError::NotZip(err.to_string()))?;
        let name = file.name().to_owned();
        if file.enclosed_name().is_none() {
            return Err(CollectionError::UnsafePath { name }.into());
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
            }
            .into());
        }
        total += read;
        drop(file);
        visit(RawEntry { name, bytes: data })?;
    }
    Ok(())
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
    fn entries_are_read_back_by_the_names_the_import_gave_them() {
        let zip = zip_of(&[
            ("a/GO-1.json", b"{\"id\": 1}"),
            ("a/GO-2.json", b"{\"id\": 2}"),
            ("a/GO-3.json", b"{\"id\": 3}"),
        ]);
        let names = ["a/GO-3.json", "a/GO-1.json"]
            .map(str::to_owned)
            .into_iter()
            .collect();
        let entries = read_entries(Cursor::new(&zip), &names, 1024).unwrap();
        let got: Vec<(&str, &[u8])> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.bytes.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("a/GO-1.json", &b"{\"id\": 1}"[..]),
                ("a/GO-3.json", &b"{\"id\": 3}"[..])
            ]
        );
        assert!(matches!(
            read_entries(Cursor::new(&zip), &names, 5),
            Err(CollectionError::EntryTooLarge { .. })
        ));
        let missing = ["a/GO-9.json".to_owned()].into_iter().collect();
        assert!(read_entries(Cursor::new(&zip), &missing, 1024).is_err());

        let array = br#"[{"id": "A"}, {"id": "B"}]"#;
        let split = split_collection(array, Limits::default()).unwrap();
        let names = [split[1].name.clone()].into_iter().collect();
        let entries = read_entries(Cursor::new(&array[..]), &names, 1024).unwrap();
        assert_eq!(entries, [split[1].clone()]);
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

    /// Counts the records `visit_collection` hands over before it stops.
    fn visited(bytes: &[u8], limits: Limits, fail_at: Option<usize>) -> (usize, Option<String>) {
        let mut seen = 0;
        let result = visit_collection(Cursor::new(bytes), limits, |_| {
            seen += 1;
            if Some(seen) == fail_at {
                return Err(CollectionError::BadEntry {
                    name: "visitor".into(),
                    reason: "stop".into(),
                });
            }
            Ok(())
        });
        (seen, result.err().map(|e| e.to_string()))
    }

    #[test]
    fn records_are_handed_over_one_at_a_time_and_the_first_limit_stops_the_read() {
        let entries: Vec<(String, &[u8])> = (0..5)
            .map(|i| (format!("GO-{i}.json"), RECORD.as_bytes()))
            .collect();
        let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let zip = zip_of(&refs);
        assert_eq!(visited(&zip, Limits::default(), None), (5, None));
        // The visitor's error ends the read: later entries are never inflated.
        let (seen, error) = visited(&zip, Limits::default(), Some(2));
        assert_eq!((seen, error.unwrap().contains("visitor")), (2, true));

        // An array is decoded element by element, with the same limits.
        let array = format!("[{}]", [RECORD; 5].join(","));
        let few = Limits {
            max_entries: 3,
            ..Limits::default()
        };
        let (seen, error) = visited(array.as_bytes(), few, None);
        assert_eq!(seen, 3);
        assert_eq!(error.unwrap(), "the collection has more than 3 entries");
        let small = Limits {
            max_entry_bytes: 100,
            ..Limits::default()
        };
        let (seen, error) = visited(array.as_bytes(), small, None);
        assert_eq!(seen, 0);
        assert!(error.unwrap().contains("larger than 100 bytes"));
        let truncated = &array.as_bytes()[..array.len() - 40];
        let (seen, error) = visited(truncated, Limits::default(), None);
        assert_eq!(seen, 4, "the complete records came first");
        assert!(error.unwrap().contains("not a JSON array"));
        let total = Limits {
            max_total_bytes: 1000,
            ..Limits::default()
        };
        let (_, error) = visited(array.as_bytes(), total, None);
        assert!(error.unwrap().contains("larger than 1000 bytes"));
    }

    #[test]
    fn an_archive_declaring_too_many_entries_is_refused_from_its_end_record() {
        // Three real entries, but an end record that declares 65,000: the count is read
        // from the end record alone, before any index of the entries is built.
        let mut zip = zip_of(&[("a.json", b"{}"), ("b.json", b"{}"), ("c.json", b"{}")]);
        let at = zip.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
        for offset in [8, 10] {
            zip[at + offset..at + offset + 2].copy_from_slice(&65_000u16.to_le_bytes());
        }
        let limits = Limits {
            max_entries: 1_000,
            ..Limits::default()
        };
        assert_eq!(
            split_collection(&zip, limits),
            Err(CollectionError::TooManyEntries { limit: 1_000 })
        );
        assert_eq!(declared_entries(&mut Cursor::new(&zip)).unwrap(), 65_000);
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
