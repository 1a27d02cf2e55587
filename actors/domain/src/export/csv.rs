//! `csv`: one row per finding, as RFC 4180 describes it and as spreadsheets open it.
//!
//! - UTF-8; records end in CRLF, the last one too; a field is quoted when it holds a
//!   comma, a double quote, CR or LF, and a double quote inside is doubled.
//! - A fixed header ([`HEADER`]): columns are only ever added at the end.
//! - Formula injection neutralised: a cell starting with `=`, `+`, `-`, `@`, a tab or a
//!   CR would be run as a formula by Excel, LibreOffice or Google Sheets; it is written
//!   with a leading `'` (OWASP's advice), which spreadsheets hide and other readers see.
//! - Lists (aliases, fixed versions, VEX statuses) are joined with `"; "`.
//! - Optionally a byte order mark first ([`CsvWriter::with_byte_order_mark`]), without
//!   which Excel reads UTF-8 as the local code page.
//!
//! Rows are written as they come: nothing but the row being written is held.

use std::borrow::Cow;
use std::io::{self, Write};

use super::ExportFinding;

/// The columns, in order.
pub const HEADER: [&str; 14] = [
    "tenant",
    "scan_id",
    "target",
    "vulnerability_id",
    "aliases",
    "package_purl",
    "installed_version",
    "fixed_versions",
    "severity",
    "cvss_score",
    "disposition",
    "vex_status",
    "rule_id",
    "reason",
];

/// What joins the items of a list cell.
pub const LIST_SEPARATOR: &str = "; ";

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A cell as a spreadsheet must not run it: prefixed with `'` when it starts with a
/// character that makes it a formula (`=`, `+`, `-`, `@`, tab, CR).
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// Writes a finished row's fields, neutralised and quoted as needed, with CRLF.
fn write_record<'c>(out: &mut Vec<u8>, cells: impl IntoIterator<Item = &'c str>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let cell = neutralise(cell);
        if cell.contains([',', '"', '\r', '\n']) {
            out.push(b'"');
            for byte in cell.bytes() {
                if byte == b'"' {
                    out.push(b'"');
                }
                out.push(byte);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(cell.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The cells of one finding, in [`HEADER`] order.
pub fn cells<'f>(finding: &'f ExportFinding<'_>) -> [Cow<'f, str>; 14] {
    let join = |items: &mut dyn Iterator<Item = &str>| {
        Cow::Owned(items.collect::<Vec<_>>().join(LIST_SEPARATOR))
    };
    [
        Cow::Borrowed(finding.scan.tenant),
        Cow::Borrowed(finding.scan.scan_id),
        Cow::Borrowed(finding.scan.target),
        Cow::Borrowed(finding.vulnerability_id),
        join(&mut finding.aliases.iter().copied()),
        Cow::Borrowed(finding.purl),
        Cow::Borrowed(finding.installed_version.as_deref().unwrap_or("")),
        join(&mut finding.fixed_versions.iter().map(|v| v.as_ref())),
        Cow::Borrowed(finding.severity()),
        finding.cvss_text().map_or(Cow::Borrowed(""), Cow::Owned),
        Cow::Borrowed(finding.disposition.as_str()),
        join(&mut finding.vex.iter().map(|v| v.as_str())),
        Cow::Borrowed(finding.rule_id.unwrap_or("")),
        Cow::Borrowed(finding.reason.unwrap_or("")),
    ]
}

/// Streams findings as CSV rows into `W`.
#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    out: W,
    row: Vec<u8>,
    rows: u64,
}

impl<W: Write> CsvWriter<W> {
    /// Starts the file: writes the header.
    pub fn new(out: W) -> io::Result<Self> {
        Self::start(out, false)
    }

    /// Starts the file with a UTF-8 byte order mark before the header, for Excel.
    pub fn with_byte_order_mark(out: W) -> io::Result<Self> {
        Self::start(out, true)
    }

    fn start(mut out: W, bom: bool) -> io::Result<Self> {
        let mut row = Vec::with_capacity(512);
        if bom {
            row.extend_from_slice(BOM);
        }
        write_record(&mut row, HEADER);
        out.write_all(&row)?;
        Ok(Self { out, row, rows: 0 })
    }

    /// Writes one finding's row.
    pub fn write(&mut self, finding: &ExportFinding<'_>) -> io::Result<()> {
        self.row.clear();
        let cells = cells(finding);
        write_record(&mut self.row, cells.iter().map(|c| c.as_ref()));
        self.out.write_all(&self.row)?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far, the header not counted.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes and hands the sink back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::tests::{finding_json, SCAN};
    use super::*;

    fn text(findings: &[ExportFinding<'_>]) -> String {
        let mut w = CsvWriter::new(Vec::new()).unwrap();
        for f in findings {
            w.write(f).unwrap();
        }
        assert_eq!(w.rows(), findings.len() as u64);
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn rows_follow_rfc_4180() {
        let value = finding_json("GHSA-1", "pkg:npm/lodash@4.17.20", "block");
        let mut f = ExportFinding::from_finding_json(SCAN, &value).unwrap();
        f.reason = Some("say \"no\", then\r\nstop");
        f.fixed_versions = vec!["4.17.21".into(), "5.0.1".into()];
        let out = text(&[f]);
        assert_eq!(
            out,
            "tenant,scan_id,target,vulnerability_id,aliases,package_purl,installed_version,\
             fixed_versions,severity,cvss_score,disposition,vex_status,rule_id,reason\r\n\
             acme,01J0SCAN,registry.example/app,GHSA-1,CVE-GHSA-1,pkg:npm/lodash@4.17.20,4.17.20,\
             4.17.21; 5.0.1,critical,9.8,block,not_affected,rule:not-applicable,\
             \"say \"\"no\"\", then\r\nstop\"\r\n"
        );
    }

    #[test]
    fn formulas_are_neutralised_wherever_they_are() {
        for cell in ["=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in ["", "a=b", "pkg:npm/x@1", "'quoted", " =x"] {
            assert_eq!(neutralise(cell), cell);
        }
        let value = finding_json("=HYPERLINK(\"http://x\")", "pkg:npm/a@1", "warn");
        let f = ExportFinding::from_finding_json(SCAN, &value).unwrap();
        let out = text(&[f]);
        let row = out.lines().nth(1).unwrap();
        assert!(row.contains(",\"'=HYPERLINK(\"\"http://x\"\")\","), "{row}");
    }

    #[test]
    fn a_byte_order_mark_comes_first_when_asked_for() {
        let w = CsvWriter::with_byte_order_mark(Vec::new()).unwrap();
        let bytes = w.finish().unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBFtenant,"));
        assert!(CsvWriter::new(Vec::new())
            .unwrap()
            .finish()
            .unwrap()
            .starts_with(b"tenant,"));
    }
}
