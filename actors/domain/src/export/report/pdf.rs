//! `report:pdf`: the report as a PDF that opens the same everywhere, written in-process
//! with [krilla](https://docs.rs/krilla) (no browser, no system fonts).
//!
//! - **Fonts**: DejaVu Sans, Sans Bold and Sans Mono are compiled in (`assets/fonts/`,
//!   their licence beside them) and embedded subset, so a page looks the same on every
//!   machine and its text can be searched and copied (`pdftotext` reads it back).
//! - **Text**: shaped here with rustybuzz (the shaper krilla uses), so a cell's width is
//!   known before it is drawn: a cell too wide for its column ends in `…`, a paragraph
//!   wraps. Digests are set in the mono font on one line each, so they can be compared
//!   character by character.
//! - **Pages**: A4, a footer with the report's identity and the page number on each.
//!   Content is laid out into a list of items for the current page and drawn when the
//!   page is full ([`Pages`]); a table that runs over a page repeats its header. Only the
//!   current page's items are held; krilla keeps the finished pages (compressed) until
//!   [`PdfReport::finish`].
//! - **Charts**: findings by severity and by disposition as vector bars with labels and
//!   counts.
//! - **Deterministic**: no clock and no randomness: the creation date is the report's
//!   `as_of`, the document id is derived from the export (krilla hashes it), so equal
//!   data gives byte-identical files.

use std::io::Write;

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::{DateTime as PdfDateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::Document;

use chrono::{Datelike, Timelike};

use super::{
    when, Changes, ReportData, ReportError, ReportFinding, ReportScan, Template, TOP_FINDINGS,
};

static REGULAR: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");
static MONO: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSansMono.ttf");

/// A4 in points.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const LEFT: f32 = 48.0;
const WIDTH: f32 = PAGE_W - 2.0 * LEFT;
/// Where the content of a page starts and must end (the footer is below).
const TOP: f32 = 56.0;
const BOTTOM: f32 = PAGE_H - 60.0;
const FOOTER_Y: f32 = PAGE_H - 32.0;

/// Longest text a cell or line is shaped with: the rest could never fit a line.
const MAX_CHARS: usize = 600;

type Rgb = (u8, u8, u8);
const INK: Rgb = (33, 37, 41);
const MUTED: Rgb = (108, 117, 125);
const RULE: Rgb = (206, 212, 218);
const HEADER_FILL: Rgb = (233, 236, 239);

/// The colours of the severity bars, in [`super::SEVERITY_ORDER`].
const SEVERITY_COLOURS: [Rgb; 6] = [
    (128, 0, 0),
    (200, 40, 40),
    (230, 126, 34),
    (241, 196, 15),
    (160, 160, 160),
    (200, 200, 200),
];
/// The colours of the disposition bars, in [`super::DISPOSITION_ORDER`].
const DISPOSITION_COLOURS: [Rgb; 3] = [(192, 57, 43), (230, 126, 34), (39, 174, 96)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Regular,
    Bold,
    Mono,
}

/// A font as krilla embeds it and as rustybuzz shapes with it.
struct Face {
    font: Font,
    shaper: rustybuzz::Face<'static>,
}

impl Face {
    fn load(bytes: &'static [u8], name: &str) -> Result<Self, ReportError> {
        let font = Font::new(bytes.into(), 0)
            .ok_or_else(|| ReportError::Pdf(format!("the embedded font {name} does not load")))?;
        let shaper = rustybuzz::Face::from_slice(bytes, 0)
            .ok_or_else(|| ReportError::Pdf(format!("the embedded font {name} does not load")))?;
        Ok(Self { font, shaper })
    }
}

struct Fonts {
    regular: Face,
    bold: Face,
    mono: Face,
}

impl Fonts {
    fn load() -> Result<Self, ReportError> {
        Ok(Self {
            regular: Face::load(REGULAR, "DejaVu Sans")?,
            bold: Face::load(BOLD, "DejaVu Sans Bold")?,
            mono: Face::load(MONO, "DejaVu Sans Mono")?,
        })
    }

    fn face(&self, style: Style) -> &Face {
        match style {
            Style::Regular => &self.regular,
            Style::Bold => &self.bold,
            Style::Mono => &self.mono,
        }
    }
}

/// How text is drawn: its size, font and colour.
#[derive(Debug, Clone, Copy)]
struct Pen {
    size: f32,
    style: Style,
    colour: Rgb,
}

const fn pen(size: f32, style: Style, colour: Rgb) -> Pen {
    Pen {
        size,
        style,
        colour,
    }
}

/// Shaped text: its glyphs (advances in em) and its width in em.
struct Run {
    text: String,
    glyphs: Vec<KrillaGlyph>,
    width: f32,
}

/// Shapes `text` left to right: report text is ids, versions, names and sentences, never
/// laid out right to left.
fn shape(face: &Face, text: &str) -> Run {
    let mut buffer = rustybuzz::UnicodeBuffer::new();
    buffer.push_str(text);
    buffer.set_direction(rustybuzz::Direction::LeftToRight);
    buffer.guess_segment_properties();
    let output = rustybuzz::shape(&face.shaper, &[], buffer);
    let em = face.shaper.units_per_em() as f32;
    let infos = output.glyph_infos();
    let positions = output.glyph_positions();
    let mut glyphs = Vec::with_capacity(infos.len());
    let mut width = 0.0;
    for (i, (info, pos)) in infos.iter().zip(positions).enumerate() {
        let start = info.cluster as usize;
        // A cluster runs to the next glyph of another cluster (left to right, clusters
        // only grow).
        let end = infos[i + 1..]
            .iter()
            .map(|next| next.cluster as usize)
            .find(|&c| c != start)
            .unwrap_or(text.len());
        let advance = pos.x_advance as f32 / em;
        width += advance;
        glyphs.push(KrillaGlyph::new(
            GlyphId::new(info.glyph_id),
            advance,
            pos.x_offset as f32 / em,
            pos.y_offset as f32 / em,
            pos.y_advance as f32 / em,
            start..end,
            None,
        ));
    }
    Run {
        text: text.to_owned(),
        glyphs,
        width,
    }
}

/// `text` on one line: control characters (line breaks, tabs) as spaces, at most
/// [`MAX_CHARS`] characters.
fn clean(text: &str) -> String {
    text.chars()
        .take(MAX_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Shapes `text` to fit `max` points at `size`: whole when it fits, else its longest
/// prefix that fits with `…` after it.
fn fit(face: &Face, text: &str, size: f32, max: f32) -> Run {
    let text = clean(text);
    let whole = shape(face, &text);
    if whole.width * size <= max {
        return whole;
    }
    // Where to cut, from the whole text's advances: before the first cluster that would
    // not leave room for the ellipsis. One shaping more gives the cut text's own glyphs.
    let room = max / size - shape(face, "…").width;
    let mut width = 0.0;
    let mut cut = 0;
    for glyph in &whole.glyphs {
        if width + glyph.x_advance > room {
            cut = glyph.text_range.start;
            break;
        }
        width += glyph.x_advance;
    }
    let mut end = cut;
    loop {
        let candidate = shape(face, &format!("{}…", text[..end].trim_end()));
        // Kerning across the cut can make it a hair wider: one character less then.
        if candidate.width * size <= max || end == 0 {
            return candidate;
        }
        end = text[..end].char_indices().last().map_or(0, |(i, _)| i);
    }
}

/// Breaks `text` into lines no wider than `max` points at `size`, at spaces; a word
/// longer than a line is broken where it must be.
fn wrap(face: &Face, text: &str, size: f32, max: f32) -> Vec<Run> {
    let text = clean(text);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if shape(face, &candidate).width * size <= max {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(shape(face, &line));
        }
        // A word wider than a line: as many characters as fit, line after line.
        let mut rest = word.to_owned();
        while shape(face, &rest).width * size > max {
            let ends: Vec<usize> = rest.char_indices().map(|(i, _)| i).skip(1).collect();
            let take = ends
                .iter()
                .rposition(|&end| shape(face, &rest[..end]).width * size <= max)
                .map_or(ends.first().copied().unwrap_or(rest.len()), |i| ends[i]);
            lines.push(shape(face, &rest[..take]));
            rest = rest[take..].to_owned();
        }
        line = rest;
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(shape(face, &line));
    }
    lines
}

/// Something to draw on the current page.
enum Item {
    /// `y` is the baseline.
    Text {
        x: f32,
        y: f32,
        size: f32,
        style: Style,
        colour: Rgb,
        run: Run,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        colour: Rgb,
    },
}

/// A table column: its width and the font of its cells.
#[derive(Debug, Clone, Copy)]
struct Column {
    width: f32,
    style: Style,
}

const fn col(width: f32) -> Column {
    Column {
        width,
        style: Style::Regular,
    }
}

const fn mono(width: f32) -> Column {
    Column {
        width,
        style: Style::Mono,
    }
}

const TABLE_SIZE: f32 = 7.5;
const ROW_H: f32 = 12.0;
const CELL_PAD: f32 = 3.0;

/// The pages being written: the finished ones in krilla's document, the current one as
/// items.
struct Pages {
    document: Document,
    fonts: Fonts,
    items: Vec<Item>,
    /// Where the next line goes on the current page.
    y: f32,
    /// Pages finished so far.
    number: u32,
    footer: String,
    /// The header of the table being written, drawn again on a new page.
    table: Option<(Vec<Column>, Vec<&'static str>)>,
}

impl Pages {
    /// Draws `text` with `pen` at (`x`, baseline `y`), cut to `max` points; returns its
    /// width.
    fn text(&mut self, x: f32, y: f32, pen: Pen, text: &str, max: f32) -> f32 {
        let Pen {
            size,
            style,
            colour,
        } = pen;
        let run = fit(self.fonts.face(style), text, size, max);
        let width = run.width * size;
        self.items.push(Item::Text {
            x,
            y,
            size,
            style,
            colour,
            run,
        });
        width
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, colour: Rgb) {
        if w > 0.0 && h > 0.0 {
            self.items.push(Item::Rect { x, y, w, h, colour });
        }
    }

    /// Starts a new page unless `height` more points fit on this one.
    fn ensure(&mut self, height: f32) {
        if self.y + height > BOTTOM {
            self.new_page();
        }
    }

    fn new_page(&mut self) {
        self.flush();
        self.y = TOP;
        if let Some((columns, labels)) = self.table.clone() {
            self.header_row(&columns, &labels);
        }
    }

    /// Draws the current page with its footer and starts an empty one.
    fn flush(&mut self) {
        self.number += 1;
        let footer = self.footer.clone();
        self.rect(LEFT, FOOTER_Y - 10.0, WIDTH, 0.5, RULE);
        self.text(
            LEFT,
            FOOTER_Y,
            pen(7.0, Style::Regular, MUTED),
            &footer,
            WIDTH - 60.0,
        );
        let label = format!("page {}", self.number);
        let width = shape(self.fonts.face(Style::Regular), &label).width * 7.0;
        self.text(
            LEFT + WIDTH - width,
            FOOTER_Y,
            pen(7.0, Style::Regular, MUTED),
            &label,
            60.0,
        );
        let Some(settings) = PageSettings::from_wh(PAGE_W, PAGE_H) else {
            return;
        };
        let mut page = self.document.start_page_with(settings);
        let mut surface = page.surface();
        for item in self.items.drain(..) {
            match item {
                Item::Rect { x, y, w, h, colour } => {
                    let Some(rect) = Rect::from_xywh(x, y, w, h) else {
                        continue;
                    };
                    let mut path = PathBuilder::new();
                    path.push_rect(rect);
                    if let Some(path) = path.finish() {
                        surface.set_fill(Some(fill(colour)));
                        surface.draw_path(&path);
                    }
                }
                Item::Text {
                    x,
                    y,
                    size,
                    style,
                    colour,
                    run,
                } => {
                    surface.set_fill(Some(fill(colour)));
                    surface.draw_glyphs(
                        Point::from_xy(x, y),
                        &run.glyphs,
                        self.fonts.face(style).font.clone(),
                        &run.text,
                        size,
                        false,
                    );
                }
            }
        }
        surface.finish();
        page.finish();
    }

    fn gap(&mut self, points: f32) {
        self.y += points;
    }

    /// A section heading with a rule under it; ends any table.
    fn heading(&mut self, title: &str) {
        self.table = None;
        // A heading never ends a page: it comes with at least a few lines after it.
        self.ensure(26.0 + 3.0 * ROW_H);
        self.gap(14.0);
        self.text(LEFT, self.y, pen(12.5, Style::Bold, INK), title, WIDTH);
        self.gap(5.0);
        self.rect(LEFT, self.y, WIDTH, 0.7, RULE);
        self.gap(13.0);
    }

    /// Wrapped text over the page's width from `x`.
    fn paragraph(&mut self, x: f32, text: &str, size: f32, style: Style, colour: Rgb) {
        let line_h = size * 1.45;
        for run in wrap(self.fonts.face(style), text, size, LEFT + WIDTH - x) {
            self.ensure(line_h);
            self.items.push(Item::Text {
                x,
                y: self.y,
                size,
                style,
                colour,
                run,
            });
            self.gap(line_h);
        }
    }

    /// A bold key and its wrapped value.
    fn field(&mut self, key: &str, value: &str) {
        const KEY_W: f32 = 110.0;
        self.ensure(13.0);
        self.text(LEFT, self.y, pen(9.0, Style::Bold, INK), key, KEY_W - 6.0);
        self.paragraph(LEFT + KEY_W, value, 9.0, Style::Regular, INK);
    }

    /// Starts a table: its header now and on every page it runs over to.
    fn table(&mut self, columns: &[Column], labels: &[&'static str]) {
        self.ensure(3.0 * ROW_H);
        self.table = Some((columns.to_vec(), labels.to_vec()));
        self.header_row(columns, labels);
    }

    fn header_row(&mut self, columns: &[Column], labels: &[&str]) {
        self.rect(LEFT, self.y - 9.0, WIDTH, ROW_H, HEADER_FILL);
        let mut x = LEFT;
        for (column, label) in columns.iter().zip(labels) {
            self.text(
                x + CELL_PAD,
                self.y,
                pen(TABLE_SIZE, Style::Bold, INK),
                label,
                column.width - 2.0 * CELL_PAD,
            );
            x += column.width;
        }
        self.gap(ROW_H);
    }

    /// One row of the current table, each cell cut to its column.
    fn row(&mut self, columns: &[Column], cells: &[&str]) {
        self.ensure(ROW_H);
        let mut x = LEFT;
        for (column, cell) in columns.iter().zip(cells) {
            self.text(
                x + CELL_PAD,
                self.y,
                pen(TABLE_SIZE, column.style, INK),
                cell,
                column.width - 2.0 * CELL_PAD,
            );
            x += column.width;
        }
        self.gap(ROW_H);
    }

    /// A muted line under a row (a summary, a reason), from the second column on.
    fn note(&mut self, indent: f32, text: &str) {
        self.ensure(ROW_H - 2.0);
        self.gap(-2.0);
        self.text(
            LEFT + indent + CELL_PAD,
            self.y,
            pen(6.8, Style::Regular, MUTED),
            text,
            WIDTH - indent - 2.0 * CELL_PAD,
        );
        self.gap(ROW_H - 1.0);
    }

    fn end_table(&mut self) {
        self.table = None;
        self.rect(LEFT, self.y - 8.0, WIDTH, 0.5, RULE);
        self.gap(4.0);
    }

    /// A horizontal bar chart: one labelled bar per row, its count after it.
    fn bars(&mut self, title: &str, rows: &[(&str, u64, Rgb)]) {
        const LABEL_W: f32 = 70.0;
        const BAR_MAX: f32 = 330.0;
        const BAR_ROW: f32 = 15.0;
        self.ensure(20.0 + BAR_ROW * rows.len() as f32);
        self.text(LEFT, self.y, pen(9.5, Style::Bold, INK), title, WIDTH);
        self.gap(14.0);
        let most = rows.iter().map(|(_, n, _)| *n).max().unwrap_or(0).max(1);
        // The axis: a line the bars start from.
        let axis_top = self.y - 10.0;
        for (label, count, colour) in rows {
            self.text(
                LEFT,
                self.y,
                pen(8.0, Style::Regular, INK),
                label,
                LABEL_W - 6.0,
            );
            let length = BAR_MAX * (*count as f32) / (most as f32);
            self.rect(LEFT + LABEL_W, self.y - 8.0, length, 10.0, *colour);
            self.text(
                LEFT + LABEL_W + length + 4.0,
                self.y,
                pen(8.0, Style::Regular, INK),
                &count.to_string(),
                60.0,
            );
            self.gap(BAR_ROW);
        }
        self.rect(
            LEFT + LABEL_W - 0.5,
            axis_top,
            0.8,
            BAR_ROW * rows.len() as f32,
            MUTED,
        );
        self.gap(6.0);
    }
}

fn fill(colour: Rgb) -> Fill {
    Fill {
        paint: rgb::Color::new(colour.0, colour.1, colour.2).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

/// The columns of the top findings table.
const TOP_COLUMNS: [Column; 7] = [
    col(16.0),
    col(56.0),
    col(92.0),
    col(116.0),
    col(70.0),
    col(56.0),
    col(WIDTH - 406.0),
];
const TOP_LABELS: [&str; 7] = [
    "#",
    "Severity",
    "Vulnerability",
    "Package",
    "Fixed in",
    "Disposition",
    "Target",
];

/// The columns of the list of every finding (`detailed`).
const ALL_COLUMNS: [Column; 6] = [
    col(52.0),
    col(92.0),
    col(128.0),
    col(72.0),
    col(56.0),
    col(WIDTH - 400.0),
];
const ALL_LABELS: [&str; 6] = [
    "Severity",
    "Vulnerability",
    "Package",
    "Fixed in",
    "Disposition",
    "Target",
];

/// The columns of the new and resolved findings.
const CHANGE_COLUMNS: [Column; 5] = [
    col(56.0),
    col(100.0),
    col(148.0),
    col(56.0),
    col(WIDTH - 360.0),
];
const CHANGE_LABELS: [&str; 5] = [
    "Severity",
    "Vulnerability",
    "Package",
    "Disposition",
    "Target",
];

const EXCEPTION_COLUMNS: [Column; 6] = [
    col(76.0),
    col(60.0),
    col(90.0),
    col(80.0),
    col(150.0),
    col(WIDTH - 456.0),
];
const EXCEPTION_LABELS: [&str; 6] = [
    "Exception",
    "Policy",
    "Vulnerabilities",
    "Approver",
    "Status",
    "Findings",
];

const DIGEST_COLUMNS: [Column; 2] = [col(72.0), mono(WIDTH - 72.0)];

/// A PDF report being written: [`PdfReport::start`] lays out everything but the list of
/// every finding, [`PdfReport::finding`] adds one to that list (`detailed`),
/// [`PdfReport::finish`] writes the file.
pub struct PdfReport {
    pages: Pages,
    template: Template,
    listed: u64,
    total: u64,
}

impl std::fmt::Debug for PdfReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfReport")
            .field("template", &self.template)
            .field("pages", &self.pages.number)
            .field("listed", &self.listed)
            .finish_non_exhaustive()
    }
}

impl PdfReport {
    /// Lays out the summary, the charts, the top findings, the changes, the exceptions
    /// and the evidence; for `detailed`, the heading of the list that
    /// [`PdfReport::finding`] fills.
    pub fn start(data: &ReportData) -> Result<Self, ReportError> {
        let mut document = Document::new();
        document.set_metadata(metadata(data));
        let footer = format!(
            "Stella report · tenant {} · profile {} rev {} · as of {}",
            data.tenant,
            data.profile,
            data.revision,
            when(data.as_of)
        );
        let mut pages = Pages {
            document,
            fonts: Fonts::load()?,
            items: Vec::new(),
            y: TOP,
            number: 0,
            footer,
            table: None,
        };
        title(&mut pages, data);
        summary(&mut pages, data);
        charts(&mut pages, data);
        top(&mut pages, data);
        changes(&mut pages, data);
        exceptions(&mut pages, data);
        evidence(&mut pages, data);
        if data.template == Template::Detailed {
            pages.heading(&format!("All findings ({})", data.tally.findings));
            pages.paragraph(
                LEFT,
                "Every finding the profile selects, scan by scan in the order of the verdicts.",
                8.5,
                Style::Regular,
                MUTED,
            );
            pages.table(&ALL_COLUMNS, &ALL_LABELS);
        }
        Ok(Self {
            pages,
            template: data.template,
            listed: 0,
            total: data.tally.findings,
        })
    }

    /// Adds a finding to the list of every finding (`detailed`; an `executive` report
    /// lists none and ignores it).
    pub fn finding(&mut self, finding: &ReportFinding) {
        if self.template != Template::Detailed {
            return;
        }
        self.listed += 1;
        let severity = finding.severity_display();
        let package = finding.package_display();
        let fixed = finding.fixed_display();
        self.pages.row(
            &ALL_COLUMNS,
            &[
                &severity,
                &finding.vulnerability_id,
                &package,
                &fixed,
                finding.disposition.as_str(),
                &finding.target,
            ],
        );
    }

    /// Finishes the last page and writes the PDF into `out`.
    pub fn finish<W: Write>(mut self, mut out: W) -> Result<W, ReportError> {
        if self.template == Template::Detailed {
            if self.listed == 0 {
                self.pages
                    .paragraph(LEFT, "No findings.", 8.5, Style::Regular, MUTED);
            }
            self.pages.end_table();
            if self.listed != self.total {
                self.pages.paragraph(
                    LEFT,
                    &format!("{} findings listed of {} counted.", self.listed, self.total),
                    8.5,
                    Style::Bold,
                    INK,
                );
            }
        }
        self.pages.flush();
        let bytes = self
            .pages
            .document
            .finish()
            .map_err(|err| ReportError::Pdf(format!("{err:?}")))?;
        out.write_all(&bytes)?;
        Ok(out)
    }
}

fn metadata(data: &ReportData) -> Metadata {
    let at = data.as_of;
    let created = PdfDateTime::new(u16::try_from(at.year()).unwrap_or(1970))
        .month(at.month() as u8)
        .day(at.day() as u8)
        .hour(at.hour() as u8)
        .minute(at.minute() as u8)
        .second(at.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0);
    Metadata::new()
        .title(format!(
            "Vulnerability report: {} (tenant {})",
            data.profile, data.tenant
        ))
        .creator(data.generator.clone())
        .language("en".to_owned())
        .creation_date(created)
        .document_id(format!(
            "stella/{}/{}/{}/{}",
            data.tenant,
            data.export_id,
            data.profile,
            at.timestamp_millis()
        ))
}

fn title(pages: &mut Pages, data: &ReportData) {
    pages.gap(8.0);
    pages.text(
        LEFT,
        pages.y,
        pen(20.0, Style::Bold, INK),
        "Vulnerability report",
        WIDTH,
    );
    pages.gap(20.0);
    pages.paragraph(
        LEFT,
        &format!(
            "Profile {} (revision {}) for tenant {}",
            data.profile, data.revision, data.tenant
        ),
        10.5,
        Style::Regular,
        INK,
    );
    pages.paragraph(
        LEFT,
        &format!(
            "As of {} · {} template · export {}",
            when(data.as_of),
            data.template.name(),
            data.export_id
        ),
        8.5,
        Style::Regular,
        MUTED,
    );
}

fn summary(pages: &mut Pages, data: &ReportData) {
    pages.heading("Executive summary");
    let t = &data.tally;
    pages.field("Tenant", &data.tenant);
    let targets = data.targets();
    pages.field(
        "Targets",
        &if targets.is_empty() {
            "none".to_owned()
        } else {
            targets.join(", ")
        },
    );
    pages.field("Scans", &data.scans.len().to_string());
    pages.field("As of", &when(data.as_of));
    // The digests whole are in the evidence, on one line each.
    let policies = data
        .policies
        .iter()
        .map(|p| {
            let short: String = p.digest.chars().take("sha256:".len() + 12).collect();
            format!("{} ({short}…)", p.label())
        })
        .collect::<Vec<_>>()
        .join("; ");
    pages.field(
        "Policy",
        if policies.is_empty() {
            "none (no scans)"
        } else {
            &policies
        },
    );
    let dispositions = t
        .dispositions()
        .iter()
        .map(|(d, n)| format!("{n} {d}"))
        .collect::<Vec<_>>()
        .join(", ");
    pages.field(
        "Findings",
        &format!("{} in total: {dispositions}", t.findings),
    );
    let severities = t
        .severities()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    pages.field(
        "By severity",
        if severities.is_empty() {
            "no findings"
        } else {
            &severities
        },
    );
    pages.field("Changes", &data.changes_line());
    let in_force = data
        .exceptions
        .iter()
        .filter(|e| e.in_force(data.as_of))
        .count();
    pages.field(
        "Exceptions",
        &format!(
            "{in_force} in force, {} expired",
            data.exceptions.len() - in_force
        ),
    );
}

fn charts(pages: &mut Pages, data: &ReportData) {
    pages.heading("Findings by severity and by disposition");
    let severities: Vec<(&str, u64, Rgb)> = data
        .tally
        .severities()
        .iter()
        .zip(SEVERITY_COLOURS)
        .map(|((s, n), c)| (*s, *n, c))
        .collect();
    pages.bars("Findings by severity", &severities);
    let dispositions: Vec<(&str, u64, Rgb)> = data
        .tally
        .dispositions()
        .iter()
        .zip(DISPOSITION_COLOURS)
        .map(|((d, n), c)| (*d, *n, c))
        .collect();
    pages.bars("Findings by disposition", &dispositions);
}

fn top(pages: &mut Pages, data: &ReportData) {
    pages.heading(&format!(
        "Top findings ({} of {}, worst first)",
        data.top.len(),
        data.tally.findings
    ));
    if data.top.is_empty() {
        pages.paragraph(LEFT, "No findings.", 8.5, Style::Regular, MUTED);
        return;
    }
    debug_assert!(data.top.len() <= TOP_FINDINGS);
    pages.table(&TOP_COLUMNS, &TOP_LABELS);
    for (i, finding) in data.top.iter().enumerate() {
        let number = (i + 1).to_string();
        let severity = finding.severity_display();
        let package = finding.package_display();
        let fixed = finding.fixed_display();
        pages.ensure(2.0 * ROW_H);
        pages.row(
            &TOP_COLUMNS,
            &[
                &number,
                &severity,
                &finding.vulnerability_id,
                &package,
                &fixed,
                finding.disposition.as_str(),
                &finding.target,
            ],
        );
        let mut note = finding.summary.clone().unwrap_or_default();
        if let Some(rule) = &finding.rule_id {
            if !note.is_empty() {
                note.push_str(" · ");
            }
            note.push_str(&format!("decided by {rule}"));
        }
        if !note.is_empty() {
            pages.note(TOP_COLUMNS[0].width, &note);
        }
    }
    pages.end_table();
}

fn changes(pages: &mut Pages, data: &ReportData) {
    pages.heading("Changes since the previous report");
    match &data.changes {
        Changes::First => pages.paragraph(
            LEFT,
            "This is the first report of this profile: there is no previous report to compare with.",
            9.0,
            Style::Regular,
            INK,
        ),
        Changes::Since {
            new_top,
            resolved_top,
            new,
            resolved,
            ..
        } => {
            pages.paragraph(LEFT, &data.changes_line(), 9.0, Style::Regular, INK);
            for (label, total, list) in [("New", new, new_top), ("Resolved", resolved, resolved_top)]
            {
                pages.gap(4.0);
                pages.ensure(3.0 * ROW_H);
                pages.text(LEFT, pages.y, pen(9.0, Style::Bold, INK),
                    &format!("{label} findings ({} of {total} listed)", list.len()),
                    WIDTH,
                );
                pages.gap(ROW_H + 2.0);
                if list.is_empty() {
                    continue;
                }
                pages.table(&CHANGE_COLUMNS, &CHANGE_LABELS);
                for finding in list {
                    let severity = finding.severity_display();
                    let package = finding.package_display();
                    pages.row(
                        &CHANGE_COLUMNS,
                        &[
                            &severity,
                            &finding.vulnerability_id,
                            &package,
                            finding.disposition.as_str(),
                            &finding.target,
                        ],
                    );
                }
                pages.end_table();
            }
        }
    }
}

fn exceptions(pages: &mut Pages, data: &ReportData) {
    pages.heading("Exceptions");
    pages.paragraph(
        LEFT,
        "Accepted risks in the policies the scans were evaluated with. An exception decides the findings it names until it expires.",
        8.5,
        Style::Regular,
        MUTED,
    );
    if data.exceptions.is_empty() {
        pages.paragraph(
            LEFT,
            "The policies have no exceptions.",
            9.0,
            Style::Regular,
            INK,
        );
        return;
    }
    pages.gap(4.0);
    pages.table(&EXCEPTION_COLUMNS, &EXCEPTION_LABELS);
    for exception in &data.exceptions {
        let vulnerabilities = exception.vulnerabilities.join(", ");
        let status = exception.status(data.as_of);
        let findings = exception.findings.to_string();
        pages.ensure(2.0 * ROW_H);
        pages.row(
            &EXCEPTION_COLUMNS,
            &[
                &exception.id,
                &exception.policy,
                &vulnerabilities,
                &exception.approver,
                &status,
                &findings,
            ],
        );
        let packages = if exception.packages.is_empty() {
            "every package".to_owned()
        } else {
            exception.packages.join(", ")
        };
        pages.note(
            EXCEPTION_COLUMNS[0].width,
            &format!(
                "{} · outcome {} · {packages}",
                exception.reason,
                exception.outcome.as_str()
            ),
        );
    }
    pages.end_table();
}

fn evidence(pages: &mut Pages, data: &ReportData) {
    pages.heading("Evidence");
    pages.paragraph(
        LEFT,
        "The digests this report was made from. Each SBOM and attestation is the object sha256/<digest> of the store; an attestation is a DSSE envelope over the signed verdict (in-toto), whose inputs hash covers the SBOM, the advisories, the VEX documents and the policy.",
        8.5,
        Style::Regular,
        MUTED,
    );
    for scan in &data.scans {
        scan_evidence(pages, scan);
    }
    if !data.policies.is_empty() {
        pages.gap(4.0);
        pages.ensure(2.0 * ROW_H);
        pages.text(LEFT, pages.y, pen(9.0, Style::Bold, INK), "Policies", WIDTH);
        pages.gap(ROW_H + 2.0);
        for policy in &data.policies {
            pages.row(&DIGEST_COLUMNS, &[&policy.label(), &policy.digest]);
        }
    }
}

fn scan_evidence(pages: &mut Pages, scan: &ReportScan) {
    pages.gap(4.0);
    pages.ensure(7.0 * ROW_H);
    pages.text(
        LEFT,
        pages.y,
        pen(8.5, Style::Bold, INK),
        &scan.target,
        WIDTH,
    );
    pages.gap(ROW_H);
    pages.text(
        LEFT,
        pages.y,
        pen(7.5, Style::Regular, MUTED),
        &format!(
            "scan {} · evaluated {} · {}, {} findings",
            scan.id,
            when(scan.evaluated_at),
            scan.disposition,
            scan.findings
        ),
        WIDTH,
    );
    pages.gap(ROW_H);
    let sbom = format!("sha256:{}", scan.sbom_sha256);
    let attestation = format!("sha256:{}", scan.attestation_sha256);
    let mut rows: Vec<(&str, &str)> = vec![("SBOM", &sbom), ("Attestation", &attestation)];
    if let Some(hash) = &scan.inputs_hash {
        rows.push(("Inputs hash", hash));
    }
    if let Some(policy) = &scan.policy_digest {
        rows.push(("Policy", policy));
    }
    for (label, digest) in rows {
        pages.row(&DIGEST_COLUMNS, &[label, digest]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn text_too_wide_for_its_column_ends_in_an_ellipsis() {
        let fonts = Fonts::load().unwrap();
        let face = fonts.face(Style::Regular);
        let short = fit(face, "GHSA-1", 8.0, 100.0);
        assert_eq!(short.text, "GHSA-1");
        let long = fit(face, &"x".repeat(200), 8.0, 100.0);
        assert!(long.text.ends_with('…'), "{}", long.text);
        assert!(long.width * 8.0 <= 100.0);
        assert!(long.text.len() > 20, "as much as fits: {}", long.text);
        // Line breaks and tabs do not break the line.
        assert_eq!(fit(face, "a\nb\tc", 8.0, 100.0).text, "a b c");
    }

    #[test]
    fn paragraphs_wrap_at_spaces_and_break_words_that_cannot_fit() {
        let fonts = Fonts::load().unwrap();
        let face = fonts.face(Style::Regular);
        let lines = wrap(face, "one two three four five six seven", 10.0, 60.0);
        assert!(lines.len() > 2);
        assert!(lines.iter().all(|l| l.width * 10.0 <= 60.0));
        let joined: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(joined.join(" "), "one two three four five six seven");
        let digest = "ab".repeat(40);
        let lines = wrap(face, &digest, 10.0, 100.0);
        assert!(lines.len() > 1);
        let joined: String = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(joined, digest);
    }

    #[test]
    fn shaped_glyphs_cover_the_text_they_draw() {
        let fonts = Fonts::load().unwrap();
        let run = shape(fonts.face(Style::Regular), "fi é");
        let covered: usize = run.glyphs.iter().map(|g| g.text_range.len()).sum();
        assert!(covered >= "fi é".len() - 1);
        assert_eq!(run.glyphs.last().unwrap().text_range.end, "fi é".len());
    }
}
