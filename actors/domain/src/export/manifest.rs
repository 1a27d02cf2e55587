//! `export.json` and `provenance.json`: what an export holds, pinned by digest.
//!
//! - **The manifest** ([`ExportManifest`]) names the profile and its revision, the kind,
//!   the selectors as the profile gave them, counts, the time the export is as of, and
//!   every file of the export with its size and sha256 (bare lowercase hex, as
//!   `sha256sum` prints it), sorted by name. It is written as canonical JSON (RFC 8785,
//!   [`crate::canonical`]), so equal exports have byte-identical manifests and the
//!   manifest can be signed as it is ([`MANIFEST_PAYLOAD_TYPE`]). It lists the export's
//!   content files, not itself nor the provenance or signatures about it.
//! - **The provenance** ([`provenance_statement`]) is an in-toto Statement v1 whose
//!   subjects are the manifest's files and the manifest itself, with a SLSA Provenance v1
//!   predicate: the profile, kind and selectors as external parameters, the inputs read
//!   (SBOMs, advisory observations, VEX documents, the policy) as resolved dependencies.
//!   The caller signs it into a DSSE envelope ([`crate::intoto::Statement::sign`]).
//!
//! Nothing here depends on when or where the export ran (no export id, no wall clock, no
//! host): a retried run, or the same export on another backend, gives the same bytes.
//!
//! [`DigestWriter`] computes a file's entry while the file streams to its destination,
//! [`DigestReader`] while it streams in.

use std::collections::BTreeMap;
use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::mirror::MirrorSection;
use super::ExportError;
use crate::canonical::{canonical_bytes, Digest};
use crate::intoto::Statement;

/// The file name of the manifest in an export.
pub const MANIFEST_NAME: &str = "export.json";
/// The file name of the provenance statement in an export.
pub const PROVENANCE_NAME: &str = "provenance.json";
/// The manifest's DSSE signature, next to `export.json`.
pub const MANIFEST_SIGNATURE: &str = "export.json.dsse";
/// The provenance's DSSE signature, next to `provenance.json`.
pub const PROVENANCE_SIGNATURE: &str = "provenance.json.dsse";
/// The manifest's `schema`.
pub const MANIFEST_SCHEMA: &str = "https://stella.dev/export/manifest/v1";
/// The DSSE payload type of a signature over `export.json` itself.
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.stella.export-manifest+json";
/// The in-toto predicate type of `provenance.json`.
pub const PROVENANCE_PREDICATE: &str = "https://slsa.dev/provenance/v1";
/// The SLSA build type of an export.
pub const EXPORT_BUILD_TYPE: &str = "https://stella.dev/export/build/v1";
/// The SLSA builder id of Stella's exporter.
pub const EXPORTER_ID: &str = "https://stella.dev/exporter";

/// One file of an export.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

impl FileEntry {
    /// The entry of a file held in memory.
    pub fn of(name: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            name: name.into(),
            size: bytes.len() as u64,
            sha256: Digest::sha256(bytes).hex(),
        }
    }
}

/// The profile revision an export ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRef {
    pub name: String,
    pub revision: u32,
}

/// `export.json`. Build it with [`ExportManifest::new`], then add files in any order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    pub schema: String,
    pub profile: ProfileRef,
    /// `json:raw`, `csv`, `sarif`, `evidence`, ...
    pub kind: String,
    /// The selectors as the profile revision gave them.
    pub selectors: Value,
    /// What the export is as of (its evaluation time), never when it ran.
    pub as_of: DateTime<Utc>,
    /// Counts by name (`findings`, `scans`, `block`, ...).
    pub counts: BTreeMap<String, u64>,
    /// Sorted by name, each once.
    pub files: Vec<FileEntry>,
    /// What a mirror bundle is (`mirror:full`, `mirror:delta`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorSection>,
}

impl ExportManifest {
    pub fn new(
        profile: ProfileRef,
        kind: impl Into<String>,
        selectors: Value,
        as_of: DateTime<Utc>,
    ) -> Self {
        Self {
            schema: MANIFEST_SCHEMA.to_owned(),
            profile,
            kind: kind.into(),
            selectors,
            as_of,
            counts: BTreeMap::new(),
            files: Vec::new(),
            mirror: None,
        }
    }

    /// Sets a count.
    pub fn count(&mut self, name: impl Into<String>, value: u64) -> &mut Self {
        self.counts.insert(name.into(), value);
        self
    }

    /// Adds a file, keeping the list sorted by name; a name given twice is an error.
    pub fn add_file(&mut self, entry: FileEntry) -> Result<&mut Self, ExportError> {
        match self.files.binary_search_by(|f| f.name.cmp(&entry.name)) {
            Ok(_) => Err(ExportError::DuplicateFile(entry.name)),
            Err(at) => {
                self.files.insert(at, entry);
                Ok(self)
            }
        }
    }

    /// The manifest as JSON, with the time as RFC 3339 UTC to the second or finer.
    fn to_value(&self) -> Value {
        let mut value = json!({
            "schema": self.schema,
            "profile": {"name": self.profile.name, "revision": self.profile.revision},
            "kind": self.kind,
            "selectors": self.selectors,
            "as_of": self.as_of.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "counts": self.counts,
            "files": self.files,
        });
        if let Some(mirror) = &self.mirror {
            value["mirror"] = json!(mirror);
        }
        value
    }

    /// Reads an `export.json` (its bytes as found: check their signature first).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// `export.json`: the manifest as canonical JSON (RFC 8785).
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        canonical_bytes(&self.to_value())
    }

    /// The file entry of `export.json` itself.
    pub fn entry(&self) -> FileEntry {
        FileEntry::of(MANIFEST_NAME, &self.to_canonical_bytes())
    }
}

/// An input an export was computed from, for the provenance (an SBOM, an advisory
/// observation, a VEX document, the policy), pinned by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    /// Where Stella holds it (`stella:sbom/<sha256>`, `stella:policy/default@3`, ...).
    pub uri: String,
    pub sha256: Digest,
}

/// `provenance.json` before signing: an in-toto Statement v1 about every file of the
/// manifest and `export.json` itself (sorted by name), with a SLSA Provenance v1
/// predicate. `dependencies` are sorted and deduplicated here.
pub fn provenance_statement(
    manifest: &ExportManifest,
    dependencies: &[Dependency],
) -> Result<Statement, ExportError> {
    let mut subjects: Vec<FileEntry> = manifest.files.clone();
    let own = manifest.entry();
    if subjects.iter().any(|f| f.name == own.name) {
        return Err(ExportError::DuplicateFile(own.name));
    }
    subjects.push(own);
    subjects.sort();
    let mut dependencies: Vec<&Dependency> = dependencies.iter().collect();
    dependencies.sort();
    dependencies.dedup();
    let predicate = json!({
        "buildDefinition": {
            "buildType": EXPORT_BUILD_TYPE,
            "externalParameters": {
                "profile": {"name": manifest.profile.name, "revision": manifest.profile.revision},
                "kind": manifest.kind,
                "selectors": manifest.selectors,
                "as_of": manifest.as_of.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            },
            "resolvedDependencies": dependencies.iter().map(|d| json!({
                "uri": d.uri,
                "digest": {"sha256": d.sha256.hex()},
            })).collect::<Vec<_>>(),
        },
        "runDetails": {
            "builder": {"id": EXPORTER_ID},
        },
    });
    let mut builder = Statement::builder(PROVENANCE_PREDICATE).predicate(predicate);
    for file in &subjects {
        let digest = Digest::from_hex(&file.sha256)?;
        builder = builder.subject(&file.name, &digest);
    }
    Ok(builder.build()?)
}

/// `provenance.json`'s bytes: the statement as canonical JSON, which is also the payload
/// a DSSE signature over it covers.
pub fn provenance_bytes(
    manifest: &ExportManifest,
    dependencies: &[Dependency],
) -> Result<Vec<u8>, ExportError> {
    Ok(provenance_statement(manifest, dependencies)?.to_canonical_bytes())
}

/// Passes bytes through to `W` while counting them and computing their SHA-256, so a
/// file's [`FileEntry`] is known once it has streamed out.
#[derive(Debug)]
pub struct DigestWriter<W: Write> {
    out: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> DigestWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Flushes, and gives the sink back with the file's entry.
    pub fn finish(mut self, name: impl Into<String>) -> io::Result<(W, FileEntry)> {
        self.out.flush()?;
        let entry = FileEntry {
            name: name.into(),
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        };
        Ok((self.out, entry))
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Passes bytes through from `R` while counting them and computing their SHA-256, so a
/// file read once is both consumed and identified.
#[derive(Debug)]
pub struct DigestReader<R: std::io::Read> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: std::io::Read> DigestReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The size and lowercase hex SHA-256 of everything read so far.
    pub fn finish(self) -> (u64, String) {
        (self.size, hex::encode(self.hasher.finalize()))
    }
}

impl<R: std::io::Read> std::io::Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;

    fn manifest() -> ExportManifest {
        let mut m = ExportManifest::new(
            ProfileRef {
                name: "weekly".into(),
                revision: 3,
            },
            "evidence",
            json!({"targets": ["registry.example/app"], "min_severity": 7.0}),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        );
        m.count("findings", 2).count("scans", 1);
        m.add_file(FileEntry::of(
            "sboms/app.cdx.json",
            b"{\"bomFormat\":\"CycloneDX\"}",
        ))
        .unwrap();
        m.add_file(FileEntry::of("findings.csv", b"a\r\n")).unwrap();
        m
    }

    #[test]
    fn the_manifest_is_canonical_json_with_files_sorted_by_name() {
        let m = manifest();
        let bytes = m.to_canonical_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with(r#"{"as_of":"2026-01-01T00:00:00Z","counts":{"findings":2,"scans":1},"files":[{"name":"findings.csv","sha256":""#), "{text}");
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(canonical_bytes(&value), bytes, "already canonical");
        let names: Vec<&str> = value["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["findings.csv", "sboms/app.cdx.json"]);
        assert_eq!(value["files"][0]["size"], 3);
        assert_eq!(
            value["files"][0]["sha256"],
            crate::canonical::sha256_hex(b"a\r\n")
        );
        assert_eq!(value["profile"], json!({"name": "weekly", "revision": 3}));
        let mut again = manifest();
        assert!(matches!(
            again.add_file(FileEntry::of("findings.csv", b"")),
            Err(ExportError::DuplicateFile(_))
        ));
        assert_eq!(again.to_canonical_bytes(), bytes);
    }

    #[test]
    fn the_provenance_pins_every_file_and_the_manifest() {
        let m = manifest();
        let deps = [
            Dependency {
                uri: "stella:policy/default@1".into(),
                sha256: Digest::sha256(b"policy"),
            },
            Dependency {
                uri: "stella:sbom/app".into(),
                sha256: Digest::sha256(b"sbom"),
            },
        ];
        let statement = provenance_statement(&m, &[deps[1].clone(), deps[0].clone()]).unwrap();
        let names: Vec<&str> = statement
            .subjects()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["export.json", "findings.csv", "sboms/app.cdx.json"]);
        assert_eq!(
            statement.subjects()[0].sha256().unwrap(),
            Digest::sha256(&m.to_canonical_bytes())
        );
        assert_eq!(statement.predicate_type(), PROVENANCE_PREDICATE);
        let deps_json = &statement.predicate()["buildDefinition"]["resolvedDependencies"];
        assert_eq!(deps_json[0]["uri"], "stella:policy/default@1");
        let bytes = provenance_bytes(&m, &deps).unwrap();
        assert_eq!(
            bytes,
            statement.to_canonical_bytes(),
            "order of inputs does not matter"
        );
        let read = Statement::from_json(&bytes).unwrap();
        assert_eq!(read.to_canonical_bytes(), bytes);
    }

    #[test]
    fn a_digest_writer_gives_the_entry_of_what_passed_through() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, entry) = w.finish("greeting.txt").unwrap();
        assert_eq!(entry, FileEntry::of("greeting.txt", b"hello world"));
        assert_eq!(bytes, b"hello world");
    }
}
