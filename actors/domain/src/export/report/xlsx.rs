//! `report:xlsx`: the report as an Excel workbook, written with
//! [rust_xlsxwriter](https://docs.rs/rust_xlsxwriter) (pure Rust, no Office, no Python).
//!
//! Sheets, in order:
//! - `Summary`: the report's identity and counts as label/value rows, counts by
//!   disposition and severity with a native Excel bar chart of each, the worst findings,
//!   and the new and resolved ones since the previous report;
//! - `Findings`: one row per finding (the worst [`super::TOP_FINDINGS`] for `executive`,
//!   every one for `detailed`), a frozen header row and an autofilter; written in
//!   rust_xlsxwriter's constant-memory mode, so rows go to a temporary file as they come
//!   and 100,000 findings never sit in memory;
//! - `Exceptions`: the policies' exceptions with their expiry dates and status;
//! - `Evidence`: per scan the SBOM, attestation, inputs and policy digests, then the
//!   policies.
//!
//! Cells are typed: counts and CVSS scores are numbers, times are Excel dates (UTC,
//! `yyyy-mm-dd hh:mm`), everything else a string. Nothing is ever written as a formula:
//! a string a spreadsheet would read as one (`=`, `+`, `-`, `@`, ...) is stored as a
//! string with Excel's quote prefix, which shows it as written and keeps it text when a
//! person edits the cell.
//!
//! The workbook's creation time is the report's `as_of` and rust_xlsxwriter writes its
//! zip entries with a fixed time, so equal data gives byte-identical files.

use std::io::Write;

use rust_xlsxwriter::{
    Chart, ChartType, DocProperties, Format, FormatBorder, Workbook, Worksheet, XlsxError,
};

use super::{
    looks_like_formula, Changes, ReportData, ReportError, ReportFinding, Template,
    DISPOSITION_ORDER,
};

/// Excel's limit on a cell's text.
const MAX_CELL_CHARS: usize = 32_767;

/// The columns of the `Findings` sheet.
pub const FINDING_COLUMNS: [&str; 15] = [
    "Target",
    "Scan",
    "Evaluated at",
    "Vulnerability",
    "Aliases",
    "Summary",
    "Package",
    "Installed version",
    "Fixed versions",
    "Severity",
    "CVSS",
    "Disposition",
    "VEX",
    "Decided by",
    "Reason",
];

const EXCEPTION_COLUMNS: [&str; 11] = [
    "Exception",
    "Policy",
    "Policy digest",
    "Vulnerabilities",
    "Packages",
    "Outcome",
    "Approver",
    "Reason",
    "Expires",
    "Status",
    "Findings",
];

const EVIDENCE_COLUMNS: [&str; 9] = [
    "Target",
    "Scan",
    "Evaluated at",
    "Disposition",
    "Findings",
    "SBOM sha256",
    "Attestation sha256",
    "Inputs hash",
    "Policy digest",
];

/// The colours of the severity and disposition bars (as in the PDF).
const SEVERITY_COLOURS: [&str; 6] = [
    "#800000", "#C82828", "#E67E22", "#F1C40F", "#A0A0A0", "#C8C8C8",
];
const DISPOSITION_COLOURS: [&str; 3] = ["#C0392B", "#E67E22", "#27AE60"];

/// The cell formats, made once.
struct Formats {
    title: Format,
    key: Format,
    header: Format,
    quoted: Format,
    date: Format,
    score: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            title: Format::new().set_bold().set_font_size(16),
            key: Format::new().set_bold(),
            header: Format::new()
                .set_bold()
                .set_background_color("#E9ECEF")
                .set_border_bottom(FormatBorder::Thin),
            quoted: Format::new().set_quote_prefix(),
            date: Format::new().set_num_format("yyyy-mm-dd hh:mm"),
            score: Format::new().set_num_format("0.0"),
        }
    }
}

/// A sheet being written, with the formats and a row cursor.
struct Sheet<'f> {
    sheet: Worksheet,
    formats: &'f Formats,
    row: u32,
}

impl<'f> Sheet<'f> {
    fn new(name: &str, formats: &'f Formats) -> Result<Self, XlsxError> {
        let mut sheet = Worksheet::new();
        sheet.set_name(name)?;
        Ok(Self {
            sheet,
            formats,
            row: 0,
        })
    }

    /// A string cell: never a formula (see the module's documentation).
    fn text(&mut self, row: u32, col: u16, text: &str) -> Result<(), XlsxError> {
        text_cell(&mut self.sheet, self.formats, row, col, text)
    }

    fn number(&mut self, row: u32, col: u16, value: f64) -> Result<(), XlsxError> {
        self.sheet.write_number(row, col, value)?;
        Ok(())
    }

    fn date(
        &mut self,
        row: u32,
        col: u16,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), XlsxError> {
        self.sheet
            .write_datetime_with_format(row, col, at.naive_utc(), &self.formats.date)?;
        Ok(())
    }

    fn header(&mut self, labels: &[&str]) -> Result<(), XlsxError> {
        for (col, label) in (0u16..).zip(labels) {
            self.sheet
                .write_string_with_format(self.row, col, *label, &self.formats.header)?;
        }
        self.row += 1;
        Ok(())
    }

    /// A label in bold and its value as a string.
    fn field(&mut self, label: &str, value: &str) -> Result<(), XlsxError> {
        self.sheet
            .write_string_with_format(self.row, 0, label, &self.formats.key)?;
        self.text(self.row, 1, value)?;
        self.row += 1;
        Ok(())
    }

    /// A label in bold and its value as a number.
    fn count(&mut self, label: &str, value: u64) -> Result<(), XlsxError> {
        self.sheet
            .write_string_with_format(self.row, 0, label, &self.formats.key)?;
        self.number(self.row, 1, value as f64)?;
        self.row += 1;
        Ok(())
    }
}

fn text_cell(
    sheet: &mut Worksheet,
    formats: &Formats,
    row: u32,
    col: u16,
    text: &str,
) -> Result<(), XlsxError> {
    let text: String = if text.chars().count() > MAX_CELL_CHARS {
        text.chars().take(MAX_CELL_CHARS).collect()
    } else {
        text.to_owned()
    };
    if looks_like_formula(&text) {
        sheet.write_string_with_format(row, col, text, &formats.quoted)?;
    } else {
        sheet.write_string(row, col, text)?;
    }
    Ok(())
}

/// An XLSX report being written: [`XlsxReport::start`] writes every sheet but the
/// `Findings` rows of a `detailed` report, which [`XlsxReport::finding`] adds one at a
/// time; [`XlsxReport::finish`] writes the workbook.
pub struct XlsxReport {
    workbook: Workbook,
    /// Summary, Exceptions, Evidence: small, written whole at the start.
    summary: Worksheet,
    exceptions: Worksheet,
    evidence: Worksheet,
    /// Findings, in constant-memory mode.
    findings: Worksheet,
    formats: Formats,
    template: Template,
    /// The next `Findings` row.
    row: u32,
}

impl std::fmt::Debug for XlsxReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlsxReport")
            .field("template", &self.template)
            .field("rows", &self.row)
            .finish_non_exhaustive()
    }
}

impl XlsxReport {
    /// Writes the `Summary`, `Exceptions` and `Evidence` sheets and the `Findings`
    /// header (and, for `executive`, its rows: the worst findings).
    pub fn start(data: &ReportData) -> Result<Self, ReportError> {
        let mut workbook = Workbook::new();
        workbook.set_properties(
            &DocProperties::new()
                .set_title(format!(
                    "Vulnerability report: {} (tenant {})",
                    data.profile, data.tenant
                ))
                .set_author(data.generator.clone())
                .set_comment(format!("export {}", data.export_id))
                .set_creation_datetime(&data.as_of),
        );
        let formats = Formats::new();
        let summary = summary(data, &formats)?;
        let exceptions = exceptions(data, &formats)?;
        let evidence = evidence(data, &formats)?;
        let mut findings = workbook.new_worksheet_with_constant_memory()?;
        findings.set_name("Findings")?;
        let widths = [
            24.0, 28.0, 16.0, 20.0, 20.0, 40.0, 36.0, 16.0, 16.0, 10.0, 7.0, 11.0, 14.0, 22.0, 40.0,
        ];
        for (col, width) in (0u16..).zip(widths) {
            findings.set_column_width(col, width)?;
        }
        for (col, label) in (0u16..).zip(FINDING_COLUMNS) {
            findings.write_string_with_format(0, col, label, &formats.header)?;
        }
        findings.set_freeze_panes(1, 0)?;
        let mut report = Self {
            workbook,
            summary,
            exceptions,
            evidence,
            findings,
            formats,
            template: data.template,
            row: 1,
        };
        if data.template == Template::Executive {
            for finding in &data.top {
                report.row(finding)?;
            }
        }
        Ok(report)
    }

    /// Adds a `Findings` row (`detailed`; an `executive` report lists only its worst
    /// findings, written by [`XlsxReport::start`], and ignores it).
    pub fn finding(&mut self, finding: &ReportFinding) -> Result<(), ReportError> {
        if self.template == Template::Detailed {
            self.row(finding)?;
        }
        Ok(())
    }

    fn row(&mut self, f: &ReportFinding) -> Result<(), XlsxError> {
        let row = self.row;
        let sheet = &mut self.findings;
        let formats = &self.formats;
        let vex: Vec<&str> = f.vex.iter().map(|v| v.as_str()).collect();
        let texts: [(u16, &str); 12] = [
            (0, &f.target),
            (1, &f.scan_id),
            (3, &f.vulnerability_id),
            (4, &f.aliases.join("; ")),
            (5, f.summary.as_deref().unwrap_or("")),
            (6, &f.package),
            (7, f.installed_version.as_deref().unwrap_or("")),
            (8, &f.fixed_versions.join("; ")),
            (9, f.severity),
            (11, f.disposition.as_str()),
            (12, &vex.join("; ")),
            (13, f.rule_id.as_deref().unwrap_or("")),
        ];
        for (col, text) in texts {
            if !text.is_empty() {
                text_cell(sheet, formats, row, col, text)?;
            }
        }
        sheet.write_datetime_with_format(row, 2, f.evaluated_at.naive_utc(), &formats.date)?;
        if let Some(score) = f.cvss_score {
            sheet.write_number_with_format(row, 10, score, &formats.score)?;
        }
        if let Some(reason) = &f.reason {
            text_cell(sheet, formats, row, 14, reason)?;
        }
        self.row += 1;
        Ok(())
    }

    /// Writes the workbook into `out`.
    pub fn finish<W: Write + Send>(mut self, out: W) -> Result<W, ReportError> {
        let last = self.row.saturating_sub(1).max(1);
        self.findings
            .autofilter(0, 0, last, FINDING_COLUMNS.len() as u16 - 1)?;
        self.workbook.push_worksheet(self.summary);
        self.workbook.push_worksheet(self.findings);
        self.workbook.push_worksheet(self.exceptions);
        self.workbook.push_worksheet(self.evidence);
        let mut out = out;
        self.workbook.save_to_writer(&mut out)?;
        Ok(out)
    }
}

fn summary(data: &ReportData, formats: &Formats) -> Result<Worksheet, ReportError> {
    let mut s = Sheet::new("Summary", formats)?;
    s.sheet.set_column_width(0, 22)?;
    s.sheet.set_column_width(1, 30)?;
    for col in 2..8 {
        s.sheet.set_column_width(col, 16)?;
    }
    s.sheet
        .write_string_with_format(0, 0, "Vulnerability report", &formats.title)?;
    s.row = 2;
    s.field("Tenant", &data.tenant)?;
    s.field("Profile", &data.profile)?;
    s.count("Revision", data.revision)?;
    s.field("Template", data.template.name())?;
    s.sheet
        .write_string_with_format(s.row, 0, "As of", &formats.key)?;
    s.date(s.row, 1, data.as_of)?;
    s.row += 1;
    s.field("Export", &data.export_id)?;
    s.field("Targets", &data.targets().join(", "))?;
    s.count("Scans", data.scans.len() as u64)?;
    s.field("Policy", &data.policy_line())?;
    s.count("Findings", data.tally.findings)?;
    s.field("Changes", &data.changes_line())?;
    if let Changes::Since { new, resolved, .. } = &data.changes {
        s.count("New findings", *new)?;
        s.count("Resolved findings", *resolved)?;
    }
    let in_force = data
        .exceptions
        .iter()
        .filter(|e| e.in_force(data.as_of))
        .count() as u64;
    s.count("Exceptions in force", in_force)?;

    // The counts, with a native bar chart of each beside them.
    s.row += 1;
    let dispositions_at = s.row;
    s.header(&["Disposition", "Findings"])?;
    for (disposition, count) in data.tally.dispositions() {
        s.text(s.row, 0, disposition)?;
        s.number(s.row, 1, count as f64)?;
        s.row += 1;
    }
    s.row += 1;
    let severities_at = s.row;
    s.header(&["Severity", "Findings"])?;
    for (severity, count) in data.tally.severities() {
        s.text(s.row, 0, severity)?;
        s.number(s.row, 1, count as f64)?;
        s.row += 1;
    }
    let chart = bar_chart(
        "Findings by severity",
        severities_at + 1,
        severities_at + 6,
        &SEVERITY_COLOURS,
    );
    s.sheet.insert_chart(2, 3, &chart)?;
    let chart = bar_chart(
        "Findings by disposition",
        dispositions_at + 1,
        dispositions_at + DISPOSITION_ORDER.len() as u32,
        &DISPOSITION_COLOURS,
    );
    s.sheet.insert_chart(18, 3, &chart)?;

    s.row = s.row.max(34) + 1;
    s.sheet.write_string_with_format(
        s.row,
        0,
        format!(
            "Top findings ({} of {}, worst first)",
            data.top.len(),
            data.tally.findings
        ),
        &formats.key,
    )?;
    s.row += 1;
    finding_list(&mut s, &data.top)?;
    if let Changes::Since {
        new_top,
        resolved_top,
        new,
        resolved,
        ..
    } = &data.changes
    {
        for (label, total, list) in [
            ("New findings", new, new_top),
            ("Resolved findings", resolved, resolved_top),
        ] {
            s.row += 1;
            s.sheet.write_string_with_format(
                s.row,
                0,
                format!("{label} ({} of {total} listed)", list.len()),
                &formats.key,
            )?;
            s.row += 1;
            finding_list(&mut s, list)?;
        }
    }
    Ok(s.sheet)
}

/// A short table of findings on the summary sheet.
fn finding_list(s: &mut Sheet<'_>, findings: &[ReportFinding]) -> Result<(), XlsxError> {
    s.header(&[
        "Vulnerability",
        "Package",
        "Severity",
        "CVSS",
        "Fixed versions",
        "Disposition",
        "Target",
    ])?;
    for f in findings {
        s.text(s.row, 0, &f.vulnerability_id)?;
        s.text(s.row, 1, &f.package_display())?;
        s.text(s.row, 2, f.severity)?;
        if let Some(score) = f.cvss_score {
            s.sheet
                .write_number_with_format(s.row, 3, score, &s.formats.score)?;
        }
        s.text(s.row, 4, &f.fixed_display())?;
        s.text(s.row, 5, f.disposition.as_str())?;
        s.text(s.row, 6, &f.target)?;
        s.row += 1;
    }
    Ok(())
}

/// A bar chart of the counts in `Summary!B{first}:B{last}` (1-based rows + 1), labelled
/// by column A.
fn bar_chart(title: &str, first: u32, last: u32, colours: &[&str]) -> Chart {
    let mut chart = Chart::new(ChartType::Bar);
    chart.title().set_name(title);
    chart.legend().set_hidden();
    chart.y_axis().set_name("Findings");
    // Worst at the top, as in the table.
    chart.x_axis().set_reverse();
    chart
        .add_series()
        .set_name(title)
        .set_categories(("Summary", first, 0, last, 0))
        .set_values(("Summary", first, 1, last, 1))
        .set_point_colors(colours);
    chart.set_width(480).set_height(280);
    chart
}

fn exceptions(data: &ReportData, formats: &Formats) -> Result<Worksheet, ReportError> {
    let mut s = Sheet::new("Exceptions", formats)?;
    let widths = [
        20.0, 18.0, 24.0, 24.0, 30.0, 10.0, 22.0, 40.0, 16.0, 34.0, 9.0,
    ];
    for (col, width) in (0u16..).zip(widths) {
        s.sheet.set_column_width(col, width)?;
    }
    s.header(&EXCEPTION_COLUMNS)?;
    for e in &data.exceptions {
        s.text(s.row, 0, &e.id)?;
        s.text(s.row, 1, &e.policy)?;
        s.text(s.row, 2, &e.policy_digest)?;
        s.text(s.row, 3, &e.vulnerabilities.join("; "))?;
        s.text(
            s.row,
            4,
            &if e.packages.is_empty() {
                "every package".to_owned()
            } else {
                e.packages.join("; ")
            },
        )?;
        s.text(s.row, 5, e.outcome.as_str())?;
        s.text(s.row, 6, &e.approver)?;
        s.text(s.row, 7, &e.reason)?;
        match e.expires {
            Some(expires) => s.date(s.row, 8, expires)?,
            None => s.text(s.row, 8, "never")?,
        }
        s.text(s.row, 9, &e.status(data.as_of))?;
        s.number(s.row, 10, e.findings as f64)?;
        s.row += 1;
    }
    s.sheet.set_freeze_panes(1, 0)?;
    s.sheet.autofilter(
        0,
        0,
        s.row.saturating_sub(1).max(1),
        EXCEPTION_COLUMNS.len() as u16 - 1,
    )?;
    Ok(s.sheet)
}

fn evidence(data: &ReportData, formats: &Formats) -> Result<Worksheet, ReportError> {
    let mut s = Sheet::new("Evidence", formats)?;
    let widths = [24.0, 28.0, 16.0, 11.0, 9.0, 68.0, 68.0, 72.0, 72.0];
    for (col, width) in (0u16..).zip(widths) {
        s.sheet.set_column_width(col, width)?;
    }
    s.header(&EVIDENCE_COLUMNS)?;
    for scan in &data.scans {
        s.text(s.row, 0, &scan.target)?;
        s.text(s.row, 1, &scan.id)?;
        s.date(s.row, 2, scan.evaluated_at)?;
        s.text(s.row, 3, &scan.disposition)?;
        s.number(s.row, 4, scan.findings as f64)?;
        s.text(s.row, 5, &scan.sbom_sha256)?;
        s.text(s.row, 6, &scan.attestation_sha256)?;
        s.text(s.row, 7, scan.inputs_hash.as_deref().unwrap_or(""))?;
        s.text(s.row, 8, scan.policy_digest.as_deref().unwrap_or(""))?;
        s.row += 1;
    }
    s.sheet.set_freeze_panes(1, 0)?;
    s.row += 1;
    s.header(&["Policy", "Version", "Digest"])?;
    for policy in &data.policies {
        s.text(s.row, 0, &policy.label())?;
        match policy.version {
            Some(version) => s.number(s.row, 1, version as f64)?,
            None => s.text(s.row, 1, "built-in")?,
        }
        s.text(s.row, 2, &policy.digest)?;
        s.row += 1;
    }
    Ok(s.sheet)
}
