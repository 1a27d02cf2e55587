//! Mirror bundles: one instance's advisories and VEX documents, carried to another that
//! has no network (`mirror:full`, or `mirror:delta` since a base bundle).
//!
//! A bundle is a reproducible `tar.zst` ([`super::tar`]) of JSON Lines members, one
//! record per line as canonical JSON (RFC 8785), sorted by key and each key once:
//! - [`ADVISORIES`]: `{"source", "id", "sha256", "record", "advisory"}` with, in a delta,
//!   `"change"` (`added`, `changed`, `withdrawn`); `record` is the raw record as fetched
//!   (its text), `sha256` its digest (what a scan names as its input, checked on import),
//!   `advisory` the normalized form as stored;
//! - [`VEX`]: `{"scope", "sha256", "format", "document", "statements"}`, `scope` `global`
//!   or `tenant` (the exporting tenant's own documents, which an importer must place in a
//!   tenant), `document` the document as imported (its text, whose digest is `sha256`:
//!   what evidence bundles carry);
//!
//! and the seal of every export: `export.json` (whose [`MirrorSection`] says what the
//! bundle is: full or delta, the base, the exporting instance's generations),
//! `export.json.dsse`, `provenance.json`, `provenance.json.dsse`.
//!
//! Writing a line ([`advisory_line`], [`vex_line`]) and reading members back
//! ([`read_lines`]) are here; checking a bundle's seal is [`super::verify`].

use std::io::BufRead;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::canonical::canonical_bytes;

/// The advisories member.
pub const ADVISORIES: &str = "advisories.jsonl";
/// The VEX documents member.
pub const VEX: &str = "vex.jsonl";
/// The bundle's file name in an export run.
pub const BUNDLE: &str = "mirror.tar.zst";

/// The longest line a member may have: the largest real advisory is 25 KiB, a VEX
/// document's statements are bounded by the request body limit (50 MiB).
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// An instance's advisory and VEX generation counters: where its data is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generations {
    pub advisories: i64,
    pub vex: i64,
}

/// The export a delta is taken since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorBase {
    pub export_id: String,
    /// SHA-256 of the base's `export.json`: what an importer checks it has imported.
    pub manifest_sha256: String,
}

/// Full or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorKind {
    Full,
    Delta,
}

/// The `mirror` section of a bundle's `export.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSection {
    pub kind: MirrorKind,
    /// A delta's base (absent for a full bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<MirrorBase>,
    /// The generations a delta is since: its base's `to` (absent for a full bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Generations>,
    /// The exporting instance's generations the bundle is as of.
    pub to: Generations,
}

/// One line of [`ADVISORIES`], as read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryLine {
    pub source: String,
    pub id: String,
    pub sha256: String,
    /// The raw record as fetched, whose SHA-256 is `sha256`: what the importing
    /// instance's exports cite.
    pub record: String,
    #[serde(default)]
    pub change: Option<String>,
    pub advisory: Value,
}

/// One line of [`VEX`], as read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VexLine {
    /// `global` or `tenant`.
    pub scope: String,
    pub sha256: String,
    pub format: String,
    /// The document as imported, whose SHA-256 is `sha256`.
    pub document: String,
    pub statements: Value,
}

/// A line of [`ADVISORIES`]: canonical JSON and a newline.
pub fn advisory_line(
    source: &str,
    id: &str,
    sha256: &str,
    record: &str,
    change: Option<&str>,
    advisory: &Value,
) -> Vec<u8> {
    let mut line = json!({
        "source": source, "id": id, "sha256": sha256, "record": record, "advisory": advisory,
    });
    if let Some(change) = change {
        line["change"] = change.into();
    }
    let mut bytes = canonical_bytes(&line);
    bytes.push(b'\n');
    bytes
}

/// A line of [`VEX`]: canonical JSON and a newline. `global` says whether the document is
/// global or the exporting tenant's.
pub fn vex_line(
    global: bool,
    sha256: &str,
    format: &str,
    document: &str,
    statements: &Value,
) -> Vec<u8> {
    let scope = if global { "global" } else { "tenant" };
    let mut bytes = canonical_bytes(&json!({
        "scope": scope, "sha256": sha256, "format": format, "document": document,
        "statements": statements,
    }));
    bytes.push(b'\n');
    bytes
}

/// Why a member could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{member} line {line}: {reason}")]
    Line {
        member: String,
        line: u64,
        reason: String,
    },
    #[error("cannot read {member}: {source}")]
    Io {
        member: String,
        source: std::io::Error,
    },
}

/// Reads a member line by line, calling `each` with every record and its line number;
/// `key` gives a record's key, which must increase strictly from line to line (the
/// writer sorts and never repeats a key). A line that is not a record of `T`, too long,
/// or out of order is an error naming the member and the line.
pub fn read_lines<T: DeserializeOwned, K: Ord>(
    mut reader: impl BufRead,
    member: &str,
    key: impl Fn(&T) -> K,
    mut each: impl FnMut(T, u64) -> Result<(), String>,
) -> Result<u64, MirrorError> {
    let mut line_no = 0u64;
    let mut previous: Option<K> = None;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = std::io::Read::take(reader.by_ref(), MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| MirrorError::Io {
                member: member.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok(line_no);
        }
        line_no += 1;
        let bad = |reason: String| MirrorError::Line {
            member: member.to_owned(),
            line: line_no,
            reason,
        };
        if buf.last() != Some(&b'\n') {
            return Err(bad(if n > MAX_LINE {
                format!("longer than {MAX_LINE} bytes")
            } else {
                "the last line has no newline".to_owned()
            }));
        }
        let record: T =
            serde_json::from_slice(&buf[..buf.len() - 1]).map_err(|err| bad(err.to_string()))?;
        let this = key(&record);
        if previous.as_ref().is_some_and(|p| this <= *p) {
            return Err(bad("records are not in increasing key order".to_owned()));
        }
        each(record, line_no).map_err(bad)?;
        previous = Some(this);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lines_are_canonical_and_read_back_in_key_order() {
        let advisory = json!({"id": "GO-1", "summary": "x", "aliases": ["CVE-1"]});
        let mut member = advisory_line("osv:Go", "GO-1", &"a".repeat(64), "{}", None, &advisory);
        member.extend(advisory_line(
            "osv:Go",
            "GO-2",
            &"b".repeat(64),
            "{}",
            Some("withdrawn"),
            &advisory,
        ));
        let text = std::str::from_utf8(&member).unwrap();
        assert!(
            text.starts_with(r#"{"advisory":{"aliases":["CVE-1"],"id":"GO-1","summary":"x"},"id":"GO-1","record":"{}","sha256":"aaaa"#),
            "{text}"
        );
        let mut read = Vec::new();
        let n = read_lines(
            &member[..],
            ADVISORIES,
            |l: &AdvisoryLine| (l.source.clone(), l.id.clone()),
            |line, at| {
                read.push((line.id, line.change, at));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(read[1], ("GO-2".into(), Some("withdrawn".into()), 2));

        // Out of order, repeated, unknown fields, no final newline: refused with the line.
        let mut swapped = advisory_line("osv:Go", "GO-2", "b", "{}", None, &advisory);
        swapped.extend(advisory_line("osv:Go", "GO-1", "a", "{}", None, &advisory));
        let err = read_lines(
            &swapped[..],
            ADVISORIES,
            |l: &AdvisoryLine| (l.source.clone(), l.id.clone()),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "advisories.jsonl line 2: records are not in increasing key order"
        );
        let extra = b"{\"scope\":\"global\",\"sha256\":\"a\",\"format\":\"openvex\",\"document\":\"{}\",\"statements\":[],\"x\":1}\n";
        let err = read_lines(
            &extra[..],
            VEX,
            |l: &VexLine| l.sha256.clone(),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `x`"), "{err}");
        let line = vex_line(true, "a", "openvex", "{}", &json!([]));
        let err = read_lines(
            &line[..line.len() - 1],
            VEX,
            |l: &VexLine| l.sha256.clone(),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no newline"), "{err}");
    }

    #[test]
    fn the_section_of_a_full_bundle_has_no_base() {
        let full = MirrorSection {
            kind: MirrorKind::Full,
            base: None,
            from: None,
            to: Generations {
                advisories: 3,
                vex: 1,
            },
        };
        assert_eq!(
            serde_json::to_value(&full).unwrap(),
            json!({"kind": "full", "to": {"advisories": 3, "vex": 1}})
        );
    }
}
