//! What the command line prints: results as a table or JSON ([`Format`]), text from the
//! server made safe for a terminal, and writes that survive a closed pipe.
//!
//! Everything the command line prints goes through [`write_out`] and [`write_err`]
//! (the `outln!`, `out!` and `errln!` macros): `println!` panics when the reader of a
//! pipe went away (`stella … | head`), and these do not. Text from the server reaches a
//! terminal only through [`terminal_safe`], and table cells are at most
//! [`MAX_CELL_WIDTH`] columns wide.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::Value;

/// `println!` that survives a closed pipe (see [`write_out`]).
macro_rules! outln {
    () => {
        $crate::cli::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that survives a closed pipe (see [`write_out`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!($($arg)*))
    };
}

/// `eprintln!` that survives a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

/// How results (and errors) are printed: `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    // Aligned columns (or one line) for a person; cells are cut and made terminal-safe.
    Table,
    // JSON for a program: every value whole.
    Json,
}

impl Format {
    /// Prints `value`: JSON as is, or a table of `columns` (of each list item, or of the
    /// single object).
    pub(crate) fn print(self, value: &Value, columns: &[&str]) {
        match self {
            Format::Json => {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(value).unwrap_or_default()
                );
            }
            Format::Table => print_table(value, columns),
        }
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

fn print_table(value: &Value, columns: &[&str]) {
    let rows: Vec<&Value> = match value.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![value],
    };
    if columns.is_empty() {
        // Read by a person, not a parser: JSON escapes C0 controls but leaves C1 and
        // bidirectional controls as they are.
        outln!(
            "{}",
            terminal_safe_lines(&serde_json::to_string_pretty(value).unwrap_or_default())
        );
        return;
    }
    outln!("{}", render_table(&rows, columns).trim_end_matches('\n'));
    if let Some(cursor) = value.get("next_cursor").and_then(Value::as_str) {
        errln!("(more: --cursor {}, or --all)", terminal_safe(cursor));
    }
}

/// The widest a table cell gets, in terminal columns: wide enough for an id, a
/// `sha256:` digest or a timestamp, narrow enough that a JSON payload or a long error
/// does not push the other columns off the screen (the whole value is in `--output json`).
pub(crate) const MAX_CELL_WIDTH: usize = 80;

/// `rows` as a table of `columns`, a header line first: every cell made terminal-safe
/// and cut to [`MAX_CELL_WIDTH`], the columns padded by display width.
fn render_table(rows: &[&Value], columns: &[&str]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| truncate(&terminal_safe(&cell(row.get(*c))), MAX_CELL_WIDTH))
                .collect()
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            cells
                .iter()
                .chain([&header])
                .map(|r| display_width(&r[i]))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in [&header].into_iter().chain(&cells) {
        let mut line = String::new();
        for (i, (value, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(value);
            // Padded by hand: `format!("{v:w$}")` counts chars, not columns, and panics
            // on a width above 65,535.
            line.extend(std::iter::repeat_n(' ', width - display_width(value)));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn display_width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// `text` cut to at most `max` terminal columns, ending in `…` when it was cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if display_width(text) <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut width = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        // One column is kept for the ellipsis.
        if width + w > max.saturating_sub(1) {
            break;
        }
        width += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Characters a terminal acts on rather than shows: C0 and C1 controls and DEL (ANSI
/// escape sequences start with ESC or CSI), the bidirectional controls that reorder
/// what follows them (U+202E RLO shows `exe.txt` for `txt.exe`), invisible spaces and
/// joiners that make two different names look alike, and line separators.
fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` with every character a terminal would act on shown as a `\u{..}` escape, so a
/// tenant's names, errors and documents cannot rewrite the screen of whoever lists them.
pub(crate) fn terminal_safe(text: &str) -> Cow<'_, str> {
    escape_for_terminal(text, &[])
}

/// [`terminal_safe`] for multi-line text (a policy document): keeps `\n` and `\t`.
pub(crate) fn terminal_safe_lines(text: &str) -> Cow<'_, str> {
    escape_for_terminal(text, &['\n', '\t'])
}

fn escape_for_terminal<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    let unsafe_char = |c: char| acts_on_terminal(c) && !keep.contains(&c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints the actor tree as an indented outline.
pub(crate) fn print_tree(node: &Value, depth: usize) {
    let name = terminal_safe(&cell(node.get("name"))).into_owned();
    let kind = terminal_safe(&cell(node.get("kind"))).into_owned();
    let mut line = format!("{}{kind} {name}", "  ".repeat(depth));
    for key in ["queue_depth", "in_flight", "restarts"] {
        if let Some(n) = node.get(key).and_then(Value::as_u64).filter(|n| *n > 0) {
            line.push_str(&format!(" {key}={n}"));
        }
    }
    if node.get("quarantined").and_then(Value::as_bool) == Some(true) {
        line.push_str(" QUARANTINED");
    }
    if let Some(error) = node.get("last_error").and_then(Value::as_str) {
        line.push_str(&format!(
            " last_error=\"{}\"",
            truncate(&terminal_safe(error), MAX_CELL_WIDTH)
        ));
    }
    outln!("{line}");
    for child in node
        .get("children")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        print_tree(child, depth + 1);
    }
}

/// Set once a write to stdout failed.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first stdout write error that was not a closed pipe (a full disk, say).
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Writes to stdout. When the reader has gone away (`EPIPE`, as after `| head`) the rest
/// of the output is dropped quietly and the command runs on, so its exit code still says
/// what happened (a blocked scan piped into `head` still exits 1); any other write error
/// is kept for [`stdout_error`].
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    write_out_bytes(args.to_string().as_bytes());
}

/// [`write_out`] for bytes (an attestation, byte for byte).
pub(crate) fn write_out_bytes(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            if let Ok(mut first) = STDOUT_ERROR.lock() {
                first.get_or_insert_with(|| format!("cannot write to stdout: {err}"));
            }
        }
    }
}

/// A stdout write error other than a closed pipe, if one happened: the output is
/// incomplete, so the command must not end with exit code 0.
pub(crate) fn stdout_error() -> Option<String> {
    STDOUT_ERROR.lock().ok().and_then(|first| first.clone())
}

/// Writes to stderr; a closed stderr is ignored (there is nowhere left to say so).
pub(crate) fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr()
        .lock()
        .write_all(args.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_cell_wider_than_the_limit_is_cut_with_an_ellipsis_and_the_rest_stays_aligned() {
        let payload = json!({ "advisories": vec!["GO-2024-0001"; 10_000] });
        let rows = [
            json!({ "seq": 1, "kind": "advisory.delta", "payload": payload }),
            json!({ "seq": 22, "kind": "scan.completed", "payload": "small" }),
        ];
        let rows: Vec<&Value> = rows.iter().collect();
        let table = render_table(&rows, &["seq", "kind", "payload"]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let widest = lines.iter().map(|l| display_width(l)).max().unwrap();
        assert!(
            widest <= 3 * MAX_CELL_WIDTH,
            "a line is {widest} columns wide"
        );
        assert!(lines[1].ends_with('…'), "{}", lines[1]);
        assert!(lines[1].starts_with("1    advisory.delta  {\"advisories\""));
        assert_eq!(
            lines[2].find("small"),
            lines[1].find('{'),
            "columns align: {table}"
        );
    }

    #[test]
    fn truncation_counts_terminal_columns_not_bytes() {
        assert_eq!(truncate("short", 80), "short");
        let wide = "漢".repeat(100);
        let cut = truncate(&wide, 11);
        assert_eq!(cut, format!("{}…", "漢".repeat(5)));
        assert!(display_width(&cut) <= 11);
        let cut = truncate(&"é".repeat(100), 10);
        assert_eq!(cut.chars().count(), 10);
    }

    #[test]
    fn control_and_bidi_characters_are_shown_as_escapes() {
        let name = "\u{1b}[31mred\u{1b}[0m \u{202e}txt.exe \u{9b}2J \u{2066}x\u{2069}\u{7}";
        let safe = terminal_safe(name);
        assert_eq!(
            safe,
            "\\u{1b}[31mred\\u{1b}[0m \\u{202e}txt.exe \\u{9b}2J \\u{2066}x\\u{2069}\\u{7}"
        );
        assert!(!safe.chars().any(acts_on_terminal));
        assert!(matches!(
            terminal_safe("Acme Corp, ünïcødé 漢字"),
            Cow::Borrowed(_)
        ));
        assert_eq!(terminal_safe_lines("a\n\tb\u{1b}c"), "a\n\tb\\u{1b}c");
        assert_eq!(terminal_safe("two\nlines"), "two\\u{a}lines");
    }

    #[test]
    fn table_cells_reach_the_terminal_escaped() {
        let row = json!({ "name": "\u{1b}]0;pwned\u{7}evil", "status": "active" });
        let table = render_table(&[&row], &["name", "status"]);
        assert!(
            !table.contains('\u{1b}') && !table.contains('\u{7}'),
            "{table}"
        );
        assert!(table.contains("\\u{1b}]0;pwned\\u{7}evil"), "{table}");
    }
}
