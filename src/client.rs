//! The HTTP client half of the `stella` command line: every admin API resource as a
//! subcommand, output as a table or JSON, and exit codes scripts can rely on
//! ([`ExitKind`]).
//!
//! Everything the command line prints goes through [`write_out`] and [`write_err`]
//! (the [`outln!`](crate::outln) and [`errln!`](crate::errln) macros): `println!` panics
//! when the reader of a pipe went away (`stella … | head`), and these do not. Text from
//! the server reaches a terminal only through [`terminal_safe`], and table cells are at
//! most [`MAX_CELL_WIDTH`] columns wide.

// `println!` and `eprintln!` panic on a closed pipe; `outln!` and `errln!` do not.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// `println!` that survives a closed pipe (see [`write_out`]).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::client::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::client::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that survives a closed pipe (see [`write_out`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::client::write_out(format_args!($($arg)*))
    };
}

/// `eprintln!` that survives a closed stderr.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::client::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Exit codes of client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Anything else (including a job that ended failed when waiting).
    Failure = 1,
    /// 401 or 403: no token, a bad token, or a missing scope.
    Auth = 3,
    /// 404.
    NotFound = 4,
    /// 409: the resource's state does not allow it, or the id is taken.
    Conflict = 5,
    /// 400, 413, 415: the request is wrong.
    Invalid = 6,
    /// The server could not be reached, answered 5xx, or asked to slow down (429).
    Unavailable = 7,
}

/// A failed client command: one line for stderr and its exit code.
#[derive(Debug)]
pub struct ClientError {
    pub kind: ExitKind,
    pub message: String,
    /// The server's problem document (RFC 9457), when the server answered with one.
    pub problem: Option<Value>,
}

impl ClientError {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            problem: None,
        }
    }

    /// The error as JSON output prints it: the problem's fields (`type`, `status`,
    /// `detail`, `request_id`, `location`) when there is one, plus the one-line
    /// `message` and the process's `exit_code`.
    pub fn to_json(&self) -> Value {
        let mut error = match &self.problem {
            Some(Value::Object(fields)) => fields.clone(),
            _ => serde_json::Map::new(),
        };
        error.insert("message".into(), self.message.clone().into());
        error.insert("exit_code".into(), (self.kind as u8).into());
        json!({ "error": error })
    }

    /// Prints the error on stderr: one `error:` line, or one JSON object with `json`.
    pub fn report(&self, format: Format) {
        match format {
            Format::Json => errln!("{}", self.to_json()),
            Format::Table => errln!("error: {}", terminal_safe(&self.message.replace('\n', " "))),
        }
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// A connection to a Stella server.
#[derive(Debug)]
pub struct Client {
    http: Http,
    server: String,
    token: Option<String>,
    tenant: Option<String>,
    pub format: Format,
}

impl Client {
    pub fn new(
        server: &str,
        token: Option<String>,
        tenant: Option<String>,
        format: Format,
    ) -> Result<Self> {
        let http = Http::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("stella-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ClientError::new(ExitKind::Failure, err.to_string()))?;
        Ok(Self {
            http,
            server: server.trim_end_matches('/').to_owned(),
            token,
            tenant,
            format,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.server));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Stella-Tenant", tenant);
        }
        request
    }

    fn send(&self, request: RequestBuilder) -> Result<Value> {
        let response = request.send().map_err(|err| {
            ClientError::new(
                ExitKind::Unavailable,
                format!("cannot reach {}: {err}", self.server),
            )
        })?;
        decode(response)
    }

    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.send(self.request(reqwest::Method::GET, path).query(query))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
    }

    pub fn post_empty(&self, path: &str) -> Result<Value> {
        self.send(self.request(reqwest::Method::POST, path))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(reqwest::Method::PATCH, path).json(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.request(reqwest::Method::DELETE, path))
    }

    /// Posts raw bytes (an SBOM, a VEX document) with a content type.
    pub fn post_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value> {
        self.send(
            self.request(reqwest::Method::POST, path)
                .query(query)
                .header("content-type", content_type)
                .body(body),
        )
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(reqwest::Method::PUT, path).json(body))
    }

    /// The body of a successful GET as the server sent it, byte for byte.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .map_err(|err| {
                ClientError::new(
                    ExitKind::Unavailable,
                    format!("cannot reach {}: {err}", self.server),
                )
            })?;
        if !response.status().is_success() {
            return decode(response).map(|_| Vec::new());
        }
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|err| ClientError::new(ExitKind::Unavailable, err.to_string()))
    }

    /// Submits a scan of an SBOM file and, with `wait`, polls until it ends.
    pub fn scan(
        &self,
        file: &std::path::Path,
        query: &[(&str, String)],
        wait: Option<Duration>,
    ) -> Result<Value> {
        let bytes = std::fs::read(file).map_err(|err| {
            ClientError::new(
                ExitKind::Invalid,
                format!("cannot read {}: {err}", file.display()),
            )
        })?;
        let accepted = self.post_bytes("/scans", query, "application/json", bytes)?;
        let (Some(timeout), Some(id)) = (wait, accepted.get("job_id").and_then(Value::as_str))
        else {
            return Ok(accepted);
        };
        let started = Instant::now();
        let spinner = spinner();
        loop {
            let scan = self.get(&format!("/scans/{}", segment(id)), &[])?;
            let status = scan.get("status").and_then(Value::as_str).unwrap_or("");
            let step = scan.get("step").and_then(Value::as_str).unwrap_or("");
            spinner.set_message(format!("scan {id}: {status} ({step})"));
            match status {
                "completed" => {
                    spinner.finish_and_clear();
                    return Ok(scan);
                }
                "failed" | "cancelled" => {
                    spinner.finish_and_clear();
                    let error = scan.get("error").and_then(Value::as_str).unwrap_or("");
                    return Err(ClientError::new(
                        ExitKind::Failure,
                        format!("scan {id} {status}: {error}"),
                    ));
                }
                _ => {}
            }
            if started.elapsed() > timeout {
                spinner.finish_and_clear();
                return Err(ClientError::new(
                    ExitKind::Failure,
                    format!("scan {id} still {status} after {} s", timeout.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every page of a list (with `all`), or one page.
    pub fn list(&self, path: &str, mut query: Vec<(&str, String)>, all: bool) -> Result<Value> {
        let mut items = Vec::new();
        loop {
            let page = self.get(path, &query)?;
            if let Some(page_items) = page.get("items").and_then(Value::as_array) {
                items.extend(page_items.iter().cloned());
            }
            let next = page.get("next_cursor").and_then(Value::as_str);
            match (all, next) {
                (true, Some(cursor)) => {
                    query.retain(|(k, _)| *k != "cursor");
                    query.push(("cursor", cursor.to_owned()));
                }
                _ => {
                    return Ok(json!({ "items": items, "next_cursor": next }));
                }
            }
        }
    }

    /// Reads an advisory collection from a file, a folder of JSON records or a URL, and
    /// posts it to `/advisories/imports`.
    pub fn import_advisories(&self, from: &str, source: Option<&str>) -> Result<Value> {
        let invalid = |message: String| ClientError::new(ExitKind::Invalid, message);
        let (bytes, default_name) = if from.starts_with("http://") || from.starts_with("https://") {
            let response = self.http.get(from).send().map_err(|err| {
                ClientError::new(ExitKind::Unavailable, format!("cannot fetch {from}: {err}"))
            })?;
            if !response.status().is_success() {
                return Err(ClientError::new(
                    ExitKind::Unavailable,
                    format!("{from} answered {}", response.status()),
                ));
            }
            let name = from.rsplit('/').next().unwrap_or(from).to_owned();
            let body = response
                .bytes()
                .map_err(|err| ClientError::new(ExitKind::Unavailable, err.to_string()))?;
            (body.to_vec(), name)
        } else {
            let path = std::path::Path::new(from);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| from.to_owned());
            if path.is_dir() {
                // A folder of records: sent as one JSON array, in name order.
                let mut files: Vec<_> = std::fs::read_dir(path)
                    .map_err(|err| invalid(format!("cannot read {from}: {err}")))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect();
                files.sort();
                let mut records = Vec::with_capacity(files.len());
                for file in files {
                    let text = std::fs::read(&file)
                        .map_err(|err| invalid(format!("cannot read {}: {err}", file.display())))?;
                    let record: Value = serde_json::from_slice(&text)
                        .map_err(|err| invalid(format!("{}: {err}", file.display())))?;
                    records.push(record);
                }
                (serde_json::to_vec(&records).unwrap_or_default(), name)
            } else {
                let bytes = std::fs::read(path)
                    .map_err(|err| invalid(format!("cannot read {from}: {err}")))?;
                (bytes, name)
            }
        };
        let source = source.map_or_else(
            || {
                format!(
                    "osv:{}",
                    default_name
                        .trim_end_matches(".zip")
                        .trim_end_matches(".json")
                )
            },
            str::to_owned,
        );
        let content_type = if bytes.starts_with(b"PK") {
            "application/zip"
        } else {
            "application/json"
        };
        self.send(
            self.request(reqwest::Method::POST, "/advisories/imports")
                .query(&[("source", source.as_str())])
                .header("content-type", content_type)
                .body(bytes),
        )
    }

    /// Verifies a DSSE envelope file with a PEM public key, or with the server's keys.
    pub fn verify(&self, file: &std::path::Path, key: Option<&std::path::Path>) -> Result<Value> {
        use stella_domain::dsse::{Envelope, PublicKey};
        use stella_domain::intoto::Statement;
        let invalid = |message: String| ClientError::new(ExitKind::Failure, message);
        let bytes = std::fs::read(file)
            .map_err(|err| invalid(format!("cannot read {}: {err}", file.display())))?;
        let envelope = Envelope::from_json(&bytes)
            .map_err(|err| invalid(format!("{} is not a DSSE envelope: {err}", file.display())))?;
        let keys = match key {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|err| invalid(format!("cannot read {}: {err}", path.display())))?;
                vec![PublicKey::from_pem(&pem)
                    .map_err(|err| invalid(format!("{}: {err}", path.display())))?]
            }
            None => {
                let listed = self.get("/keys", &[])?;
                listed["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k["public_key_pem"].as_str())
                    .filter_map(|pem| PublicKey::from_pem(pem).ok())
                    .collect()
            }
        };
        let verified = Statement::verify(&envelope, &keys)
            .map_err(|err| invalid(format!("verification failed: {err}")))?;
        let statement = &verified.statement;
        let subject = statement.subjects().first();
        Ok(json!({
            "verified": true,
            "key_ids": verified.key_ids,
            "predicate_type": statement.predicate_type(),
            "subject": {
                "name": subject.map(|s| s.name.clone()),
                "digest": subject.and_then(|s| s.sha256()).map(|d| d.to_string()),
            },
            "disposition": statement.predicate().pointer("/verdict/disposition"),
            "inputs_hash": statement.predicate().get("inputs_hash"),
        }))
    }

    /// Polls a job until it finishes, with a progress spinner on a terminal.
    pub fn wait_job(&self, id: &str, timeout: Duration) -> Result<Value> {
        let started = Instant::now();
        let spinner = spinner();
        loop {
            let job = self.get(&format!("/jobs/{}", segment(id)), &[])?;
            let state = job.get("state").and_then(Value::as_str).unwrap_or("");
            let attempts = job.get("attempts").and_then(Value::as_u64).unwrap_or(0);
            spinner.set_message(format!("job {id}: {state} (attempt {attempts})"));
            if matches!(state, "succeeded" | "failed" | "cancelled") {
                spinner.finish_and_clear();
                if state != "succeeded" {
                    self.print(&job, &[]);
                    let error = job.get("last_error").and_then(Value::as_str).unwrap_or("");
                    return Err(ClientError::new(
                        ExitKind::Failure,
                        format!("job {id} {state}: {error}"),
                    ));
                }
                return Ok(job);
            }
            if started.elapsed() > timeout {
                spinner.finish_and_clear();
                return Err(ClientError::new(
                    ExitKind::Failure,
                    format!("job {id} still {state} after {} s", timeout.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Prints a value: JSON as is, or a table of `columns` (of each list item, or of the
    /// single object).
    pub fn print(&self, value: &Value, columns: &[&str]) {
        match self.format {
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

/// A progress spinner on stderr when it is a terminal, hidden otherwise.
fn spinner() -> indicatif::ProgressBar {
    let spinner = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

/// Percent-encodes one URL path segment, so an id can never add or climb segments.
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~') && raw != "." && raw != ".."
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn decode(response: Response) -> Result<Value> {
    let status = response.status();
    let text = response.text().unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(body);
    }
    let detail = body
        .get("detail")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string());
    let location = body
        .get("location")
        .and_then(Value::as_str)
        .map(|l| format!(" (at {l})"))
        .unwrap_or_default();
    let kind = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ExitKind::Auth,
        StatusCode::NOT_FOUND => ExitKind::NotFound,
        StatusCode::CONFLICT => ExitKind::Conflict,
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => ExitKind::Invalid,
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => ExitKind::Unavailable,
        _ => ExitKind::Failure,
    };
    Err(ClientError {
        problem: body.is_object().then_some(body.clone()),
        ..ClientError::new(kind, format!("{} {}{location}", status.as_u16(), detail))
    })
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
pub const MAX_CELL_WIDTH: usize = 80;

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
pub fn truncate(text: &str, max: usize) -> String {
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
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    escape_for_terminal(text, &[])
}

/// [`terminal_safe`] for multi-line text (a policy document): keeps `\n` and `\t`.
pub fn terminal_safe_lines(text: &str) -> Cow<'_, str> {
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
pub fn print_tree(node: &Value, depth: usize) {
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
pub fn write_out(args: std::fmt::Arguments<'_>) {
    write_out_bytes(args.to_string().as_bytes());
}

/// [`write_out`] for bytes (an attestation, byte for byte).
pub fn write_out_bytes(bytes: &[u8]) {
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
pub fn stdout_error() -> Option<String> {
    STDOUT_ERROR.lock().ok().and_then(|first| first.clone())
}

/// Writes to stderr; a closed stderr is ignored (there is nowhere left to say so).
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr()
        .lock()
        .write_all(args.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn an_error_in_json_carries_the_problem_and_the_exit_code() {
        let err = ClientError {
            problem: Some(json!({
                "type": "urn:stella:problem:not-found", "status": 404,
                "detail": "tenant nope not found", "request_id": "r1"
            })),
            ..ClientError::new(ExitKind::NotFound, "404 tenant nope not found")
        };
        let json = err.to_json();
        assert_eq!(json["error"]["type"], "urn:stella:problem:not-found");
        assert_eq!(json["error"]["status"], 404);
        assert_eq!(json["error"]["request_id"], "r1");
        assert_eq!(json["error"]["exit_code"], 4);
        assert_eq!(json["error"]["message"], "404 tenant nope not found");
        let plain = ClientError::new(ExitKind::Unavailable, "cannot reach x").to_json();
        assert_eq!(
            plain,
            json!({"error": {"message": "cannot reach x", "exit_code": 7}})
        );
    }
}
