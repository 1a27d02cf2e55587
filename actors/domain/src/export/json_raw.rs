//! `json:raw`: the inputs of the selected scans as Stella stored them, so another tool can
//! recompute or audit a verdict from the same bytes. One document, `raw.json`:
//!
//! ```text
//! {"$schema": ..., "generator": {...}, "profile": {...}, "as_of": ...,
//!  "scans": [{"scan_id", "target", "evaluated_at", "inputs_hash",
//!             "sbom": {"sha256", "name", "format", "spec_version", "size", "file"},
//!             "advisories": [<record sha256>...], "vex": [<statement evidence>...]}],
//!  "advisories": [{"source", "id", "sha256", "modified", "collection_sha256", "entry",
//!                  "record"}],
//!  "vex": [{"sha256", "scope", "format", "statements": [{...as stored}]}]}
//! ```
//!
//! - **SBOMs** are files of their own when the profile asks for them
//!   (`options.include_sboms`: `sbom.file` names it, its bytes exactly as submitted);
//!   otherwise the document names them by digest only.
//! - **Advisory observations** are the records the scans' findings were matched against,
//!   as fetched: `record` is the raw record's text, unchanged, so the SHA-256 of its UTF-8
//!   bytes is `sha256` (a JSON string rather than embedded JSON, which a reader would
//!   re-serialise with other bytes). Each observation is listed once however many scans
//!   cite it; a scan lists the digests it cites.
//! - **VEX statements** are the normalized statements the findings' claims cite, as stored
//!   with their document (`sha256` of the document as submitted, `pointer` of the
//!   statement in it), grouped by document.
//!
//! The sections are written in that order, each item as it comes, so the caller can read
//! the advisory records one collection at a time; everything is sorted by the caller
//! (scans by id, observations by source, id and digest, documents by scope and digest).

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{timestamp, write_canonical, write_json, ExportError};

/// The document's `$schema`: the id of the JSON Schema it is valid under.
pub const SCHEMA_ID: &str = "https://stella.dev/schemas/export/json-raw/v1.json";
/// The JSON Schema of the document (draft 2020-12).
pub const SCHEMA: &str = include_str!("schemas/json-raw.schema.json");

/// What the document says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawExport<'a> {
    pub tool_version: &'a str,
    pub profile: &'a str,
    pub revision: u64,
    pub as_of: DateTime<Utc>,
}

/// A scanned SBOM as submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RawSbom<'a> {
    pub sha256: &'a str,
    pub name: &'a str,
    /// `cyclonedx` or `spdx`.
    pub format: &'a str,
    pub spec_version: &'a str,
    pub size: u64,
    /// The export's file holding its bytes, when the profile includes SBOMs.
    pub file: Option<&'a str>,
}

/// A scan and what its exported findings cite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawScan<'a> {
    pub scan_id: &'a str,
    pub target: &'a str,
    #[serde(serialize_with = "serialize_time")]
    pub evaluated_at: DateTime<Utc>,
    pub inputs_hash: &'a str,
    pub sbom: RawSbom<'a>,
    /// Hex SHA-256 of each advisory record cited, sorted.
    pub advisories: Vec<&'a str>,
    /// Each VEX statement cited, as the findings' evidence names it, sorted.
    pub vex: Vec<&'a str>,
}

fn serialize_time<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp(*at))
}

/// An advisory observation: a raw record as fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RawAdvisory<'a> {
    /// The source it was imported from (`osv:go`).
    pub source: &'a str,
    pub id: &'a str,
    /// Hex SHA-256 of `record`'s bytes.
    pub sha256: &'a str,
    #[serde(serialize_with = "serialize_time")]
    pub modified: DateTime<Utc>,
    /// The collection object (`sha256/<hex>`) the record came in, and its entry there.
    pub collection_sha256: &'a str,
    pub entry: &'a str,
    /// The record's text, byte for byte.
    pub record: &'a str,
}

/// A VEX document's cited statements, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawVex<'a> {
    /// Hex SHA-256 of the document as submitted.
    pub sha256: &'a str,
    /// `global` (a vendor's, every tenant's scans see it) or `tenant`.
    pub scope: &'a str,
    pub format: &'a str,
    /// The cited statements (normalized, with their `pointer`), in document order.
    pub statements: &'a [&'a Value],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Scans,
    Advisories,
    Vex,
}

/// Writes `raw.json`: [`start`](Self::start), then scans, advisories and VEX documents in
/// that order (a section may be empty), then [`finish`](Self::finish).
#[derive(Debug)]
pub struct RawWriter<W: Write> {
    out: W,
    section: Section,
    /// Whether the current section has an item yet.
    any: bool,
}

impl<W: Write> RawWriter<W> {
    pub fn start(mut out: W, about: &RawExport<'_>) -> io::Result<Self> {
        out.write_all(b"{\"$schema\":")?;
        write_json(&mut out, SCHEMA_ID)?;
        out.write_all(b",\"generator\":{\"name\":\"Stella\",\"version\":")?;
        write_json(&mut out, about.tool_version)?;
        out.write_all(b"},\"profile\":{\"name\":")?;
        write_json(&mut out, about.profile)?;
        out.write_all(b",\"revision\":")?;
        write_json(&mut out, &about.revision)?;
        out.write_all(b"},\"as_of\":")?;
        write_json(&mut out, &timestamp(about.as_of))?;
        out.write_all(b",\"scans\":[")?;
        Ok(Self {
            out,
            section: Section::Scans,
            any: false,
        })
    }

    /// Moves on to `section`, closing the sections before it.
    fn enter(&mut self, section: Section) -> Result<(), ExportError> {
        if section < self.section {
            return Err(ExportError::OutOfOrder(
                "json:raw sections are scans, advisories, vex",
            ));
        }
        while self.section < section {
            let (next, opening): (_, &[u8]) = match self.section {
                Section::Scans => (Section::Advisories, b"\n],\"advisories\":["),
                Section::Advisories | Section::Vex => (Section::Vex, b"\n],\"vex\":["),
            };
            self.out.write_all(opening)?;
            self.section = next;
            self.any = false;
        }
        Ok(())
    }

    /// [`Self::enter`]s `section` and writes the separator before its next item.
    fn item(&mut self, section: Section) -> Result<(), ExportError> {
        self.enter(section)?;
        self.out.write_all(if self.any { b",\n" } else { b"\n" })?;
        self.any = true;
        Ok(())
    }

    pub fn scan(&mut self, scan: &RawScan<'_>) -> Result<(), ExportError> {
        self.item(Section::Scans)?;
        write_json(&mut self.out, scan)?;
        Ok(())
    }

    pub fn advisory(&mut self, advisory: &RawAdvisory<'_>) -> Result<(), ExportError> {
        self.item(Section::Advisories)?;
        write_json(&mut self.out, advisory)?;
        Ok(())
    }

    pub fn vex(&mut self, document: &RawVex<'_>) -> Result<(), ExportError> {
        self.item(Section::Vex)?;
        let out = &mut self.out;
        out.write_all(b"{\"sha256\":")?;
        write_json(out, document.sha256)?;
        out.write_all(b",\"scope\":")?;
        write_json(out, document.scope)?;
        out.write_all(b",\"format\":")?;
        write_json(out, document.format)?;
        out.write_all(b",\"statements\":[")?;
        for (i, statement) in document.statements.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            write_canonical(out, statement)?;
        }
        out.write_all(b"]}")?;
        Ok(())
    }

    /// Closes the sections not written yet and the document, flushes, hands the sink back.
    pub fn finish(mut self) -> Result<W, ExportError> {
        self.enter(Section::Vex)?;
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn about() -> RawExport<'static> {
        RawExport {
            tool_version: "0.1.0",
            profile: "raw",
            revision: 3,
            as_of: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn sections_come_in_order_and_records_keep_their_bytes() {
        let record = "{\"id\": \"GO-1\",\n  \"modified\": \"2024-01-01T00:00:00Z\"}\n";
        let statement = json!({"pointer": "/statements/0", "status": "not_affected"});
        let statements = [&statement];
        let mut writer = RawWriter::start(Vec::new(), &about()).unwrap();
        writer
            .scan(&RawScan {
                scan_id: "01A",
                target: "app",
                evaluated_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
                inputs_hash: "sha256:00",
                sbom: RawSbom {
                    sha256: "ab",
                    name: "app",
                    format: "cyclonedx",
                    spec_version: "1.5",
                    size: 10,
                    file: None,
                },
                advisories: vec!["cd"],
                vex: vec!["vex:sha256:ef#/statements/0"],
            })
            .unwrap();
        writer
            .advisory(&RawAdvisory {
                source: "osv:go",
                id: "GO-1",
                sha256: "cd",
                modified: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
                collection_sha256: "12",
                entry: "GO-1.json",
                record,
            })
            .unwrap();
        writer
            .vex(&RawVex {
                sha256: "ef",
                scope: "global",
                format: "openvex",
                statements: &statements,
            })
            .unwrap();
        assert!(matches!(
            writer.scan(&RawScan {
                scan_id: "late",
                target: "",
                evaluated_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
                inputs_hash: "",
                sbom: RawSbom {
                    sha256: "",
                    name: "",
                    format: "",
                    spec_version: "",
                    size: 0,
                    file: None
                },
                advisories: vec![],
                vex: vec![],
            }),
            Err(ExportError::OutOfOrder(_))
        ));
        let doc: Value = serde_json::from_slice(&writer.finish().unwrap()).unwrap();
        assert_eq!(doc["scans"][0]["sbom"]["file"], Value::Null);
        assert_eq!(doc["scans"][0]["evaluated_at"], "2025-01-01T00:00:00Z");
        assert_eq!(doc["advisories"][0]["record"], record);
        assert_eq!(doc["vex"][0]["statements"][0], statement);
    }

    #[test]
    fn empty_sections_are_empty_lists() {
        let writer = RawWriter::start(Vec::new(), &about()).unwrap();
        let doc: Value = serde_json::from_slice(&writer.finish().unwrap()).unwrap();
        assert_eq!(
            (&doc["scans"], &doc["advisories"], &doc["vex"]),
            (&json!([]), &json!([]), &json!([]))
        );
        let mut writer = RawWriter::start(Vec::new(), &about()).unwrap();
        writer
            .vex(&RawVex {
                sha256: "ef",
                scope: "tenant",
                format: "csaf",
                statements: &[],
            })
            .unwrap();
        let doc: Value = serde_json::from_slice(&writer.finish().unwrap()).unwrap();
        assert_eq!(doc["scans"], json!([]));
        assert_eq!(doc["vex"][0]["scope"], "tenant");
    }
}
