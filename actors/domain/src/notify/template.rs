//! Message templates: one shipped per channel type, overridable per tenant, rendered by
//! MiniJinja in a sandbox.
//!
//! **Syntax.** A template is MiniJinja (Jinja2) text with named blocks:
//! `{% block subject %}…{% endblock %}` (required; one line: whitespace runs are folded to
//! one space and it is cut at [`MAX_SUBJECT_CHARS`]), `{% block text %}…{% endblock %}`
//! (required; the plain text) and `{% block html %}…{% endblock %}` (optional; the HTML
//! part of an email, with every `{{ … }}` HTML-escaped). Text outside blocks is ignored.
//! One template serves single events and digests alike; its variables:
//!
//! - `facts`: the [`Summary`] of the event or the digest (`headline`, `severity`,
//!   `target`, `vulnerabilities`, `details`, `facts` as `title`/`value` pairs);
//! - `event`: the [`Envelope`] (`id`, `kind`, `version`, `tenant`, `occurred_at`,
//!   `correlation_id`, `trace_id`, `payload`), absent in a digest;
//! - `events`: the envelopes (one for a single event);
//! - `digest`: absent for a single event, else `start`, `end`, `count`, `throttled`;
//! - `channel`: `email`, `webhook`, `slack` or `teams`.
//!
//! A missing attribute prints as nothing (MiniJinja's chainable undefined), so a payload
//! without a field does not fail a delivery; a misspelt variable is refused when the
//! template is saved.
//!
//! **Sandbox.** No loader (no `include`, `import`, `extends`), no `set`, `with`, `macro`,
//! `call`, `filter` or `autoescape` statements, no `*` operator, at most
//! [`MAX_LOOP_DEPTH`] nested `for` loops, a filter set without the ones that multiply
//! text (`replace`, `indent`, `format`, …) or mark it safe, no `range`; execution is
//! bounded by fuel ([`FUEL`]) and a recursion limit, the source by [`MAX_TEMPLATE_BYTES`]
//! and each rendered part by [`MAX_OUTPUT_BYTES`]. These keep a tenant's template from
//! running long, reading files or growing its output without bound; intermediate values
//! are bounded by the template's size times the event's size.

use std::io;

use chrono::{DateTime, TimeZone, Utc};
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as JinjaValue};
use serde_json::{json, Value};

pub use super::channel::ChannelType;
use super::event::{Envelope, EVENT_KINDS};
use super::summary::Summary;

/// The largest template source accepted.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// The largest rendered part (subject, text or html).
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// A subject is cut to this many characters (with `…`).
pub const MAX_SUBJECT_CHARS: usize = 200;
/// MiniJinja fuel for one render of one part: instructions, roughly.
pub const FUEL: u64 = 200_000;
/// How deep `for` loops may nest.
pub const MAX_LOOP_DEPTH: usize = 3;
const RECURSION_LIMIT: usize = 32;

/// Statements a template may not use.
const FORBIDDEN_STATEMENTS: &[&str] = &[
    "set",
    "with",
    "macro",
    "call",
    "filter",
    "include",
    "import",
    "from",
    "extends",
    "autoescape",
];

/// The filters a template may use.
const FILTERS: &[&str] = &[
    "escape",
    "e",
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
    "length",
    "count",
    "first",
    "last",
    "default",
    "d",
    "join",
    "reverse",
    "sort",
    "unique",
    "dictsort",
    "items",
    "list",
    "string",
    "int",
    "float",
    "round",
    "abs",
    "min",
    "max",
    "sum",
    "select",
    "reject",
    "map",
    "attr",
    "lines",
    "split",
    "bool",
];

/// The variables a template may read.
const VARIABLES: &[&str] = &["facts", "event", "events", "digest", "channel"];

/// A message rendered for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    /// Only when the template has an `html` block (the shipped email template does).
    pub html: Option<String>,
}

/// A template that cannot be saved or rendered, with where (1-based; `1:1` when the
/// fault has no place, like a missing block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct TemplateError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl TemplateError {
    fn at(source: &str, offset: usize, message: impl Into<String>) -> TemplateError {
        let (line, column) = line_column(source, offset);
        TemplateError {
            line,
            column,
            message: message.into(),
        }
    }

    fn nowhere(message: impl Into<String>) -> TemplateError {
        TemplateError {
            line: 1,
            column: 1,
            message: message.into(),
        }
    }

    fn of(source: &str, err: &minijinja::Error) -> TemplateError {
        let message = match err.kind() {
            ErrorKind::OutOfFuel => "the template runs too long".to_owned(),
            ErrorKind::WriteFailure => {
                format!("a rendered part is larger than {MAX_OUTPUT_BYTES} bytes")
            }
            kind => match err.detail() {
                Some(detail) => format!("{kind}: {detail}"),
                None => kind.to_string(),
            },
        };
        match (err.range(), err.line()) {
            (Some(range), _) => TemplateError::at(source, range.start, message),
            (None, Some(line)) => TemplateError {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: 1,
                message,
            },
            (None, None) => TemplateError::nowhere(message),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// The shipped template for a channel type.
pub fn default_template(channel: ChannelType) -> &'static str {
    match channel {
        ChannelType::Email => include_str!("templates/email.j2"),
        ChannelType::Webhook => include_str!("templates/webhook.j2"),
        ChannelType::Slack => include_str!("templates/slack.j2"),
        ChannelType::Teams => include_str!("templates/teams.j2"),
    }
}

/// Checks a tenant's template before it is saved: size, the sandbox's rules, syntax,
/// variables, the `subject` and `text` blocks, and a render of a sample of every event
/// kind and of a digest on every channel type.
pub fn check_template(source: &str) -> Result<(), TemplateError> {
    check_source(source)?;
    let env = environment();
    let template = env
        .template_from_named_str("notify.txt", source)
        .map_err(|e| TemplateError::of(source, &e))?;
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !VARIABLES.contains(&v.as_str()))
        .collect();
    unknown.sort();
    if let Some(name) = unknown.first() {
        let offset = find_word_in_code(source, name).unwrap_or(0);
        return Err(TemplateError::at(
            source,
            offset,
            format!(
                "unknown variable `{name}`: a template can read {}",
                VARIABLES.join(", ")
            ),
        ));
    }
    let samples = sample_events();
    for channel in ChannelType::ALL {
        for event in &samples {
            render(Some(source), channel, event)?;
        }
        let window = (
            samples[0].occurred_at,
            samples[0].occurred_at + chrono::Duration::hours(1),
        );
        render_digest(Some(source), channel, &samples, window, 2)?;
    }
    Ok(())
}

/// Renders one event with a tenant's template, or the shipped one for the channel type.
pub fn render(
    source: Option<&str>,
    channel: ChannelType,
    event: &Envelope,
) -> Result<Rendered, TemplateError> {
    let ctx = json!({
        "facts": Summary::of_event(event),
        "event": event,
        "events": [event],
        "channel": channel.as_str(),
    });
    render_with(source.unwrap_or(default_template(channel)), &ctx)
}

/// Renders a digest of `events` (the window's, in order) with a tenant's template or the
/// shipped one; `throttled` of them were held back by the channel's throttle.
pub fn render_digest(
    source: Option<&str>,
    channel: ChannelType,
    events: &[Envelope],
    window: (DateTime<Utc>, DateTime<Utc>),
    throttled: u32,
) -> Result<Rendered, TemplateError> {
    let ctx = json!({
        "facts": Summary::of_digest(events, window, throttled),
        "events": events,
        "digest": {
            "start": window.0,
            "end": window.1,
            "count": events.len(),
            "throttled": throttled,
        },
        "channel": channel.as_str(),
    });
    render_with(source.unwrap_or(default_template(channel)), &ctx)
}

fn render_with(source: &str, ctx: &Value) -> Result<Rendered, TemplateError> {
    check_source(source)?;
    let env = environment();
    let ctx = JinjaValue::from_serialize(ctx);
    let text_template = env
        .template_from_named_str("notify.txt", source)
        .map_err(|e| TemplateError::of(source, &e))?;
    // The whole template runs once (its output discarded: only blocks are kept), then each
    // block is rendered from the state it left.
    let mut state = text_template
        .render_captured_to(ctx.clone(), io::sink())
        .map_err(|e| TemplateError::of(source, &e))?;
    let subject = state
        .with_state_mut(|s| block(s, source, "subject"))?
        .ok_or_else(|| TemplateError::nowhere("the template has no `subject` block"))?;
    let text = state
        .with_state_mut(|s| block(s, source, "text"))?
        .ok_or_else(|| TemplateError::nowhere("the template has no `text` block"))?;
    let html_template = env
        .template_from_named_str("notify.html", source)
        .map_err(|e| TemplateError::of(source, &e))?;
    let mut html_state = html_template
        .render_captured_to(ctx, io::sink())
        .map_err(|e| TemplateError::of(source, &e))?;
    let html = html_state
        .with_state_mut(|s| block(s, source, "html"))?
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    Ok(Rendered {
        subject: one_line(&subject),
        text: text.trim_end().to_owned(),
        html,
    })
}

/// A block's output, or `None` when the template has no such block.
fn block(
    state: &mut minijinja::State<'_, '_>,
    source: &str,
    name: &str,
) -> Result<Option<String>, TemplateError> {
    let mut out = Capped(Vec::new());
    match state.render_block_to_write(name, &mut out) {
        Ok(()) => Ok(Some(String::from_utf8_lossy(&out.0).into_owned())),
        Err(e) if e.kind() == ErrorKind::UnknownBlock => Ok(None),
        Err(e) => Err(TemplateError::of(source, &e)),
    }
}

/// A buffer that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct Capped(Vec<u8>);

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT_BYTES {
            return Err(io::Error::other("output too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Folds whitespace runs (newlines included: a subject is a header) to one space, trims,
/// and cuts at [`MAX_SUBJECT_CHARS`].
fn one_line(text: &str) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let folded: String = folded.chars().filter(|c| !c.is_control()).collect();
    if folded.chars().count() > MAX_SUBJECT_CHARS {
        let mut cut: String = folded.chars().take(MAX_SUBJECT_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        folded
    }
}

fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_trim_blocks(true);
    let filters: Vec<String> = [
        "safe",
        "escape",
        "e",
        "lower",
        "upper",
        "title",
        "capitalize",
        "replace",
        "length",
        "count",
        "dictsort",
        "items",
        "reverse",
        "trim",
        "join",
        "split",
        "lines",
        "default",
        "d",
        "round",
        "abs",
        "int",
        "float",
        "attr",
        "first",
        "last",
        "min",
        "max",
        "sort",
        "list",
        "string",
        "bool",
        "batch",
        "slice",
        "sum",
        "indent",
        "select",
        "reject",
        "map",
        "groupby",
        "unique",
        "chain",
        "zip",
        "pprint",
        "format",
        "tojson",
        "urlencode",
        "selectattr",
        "rejectattr",
        "center",
        "wordcount",
        "wordwrap",
        "truncate",
        "xmlattr",
    ]
    .into_iter()
    .filter(|f| !FILTERS.contains(f))
    .map(str::to_owned)
    .collect();
    for f in filters {
        env.remove_filter(&f);
    }
    let globals: Vec<String> = env
        .globals()
        .map(|(name, _)| name.to_owned())
        .filter(|name| name != "dict")
        .collect();
    for g in globals {
        env.remove_global(&g);
    }
    env
}

/// The sandbox's rules that MiniJinja does not enforce itself, checked on the text:
/// size, forbidden statements, `*`, loop depth. Comments and `raw` sections are skipped.
fn check_source(source: &str) -> Result<(), TemplateError> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError::nowhere(format!(
            "a template has at most {MAX_TEMPLATE_BYTES} bytes"
        )));
    }
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut in_raw = false;
    let mut loops = 0usize;
    while i + 1 < bytes.len() {
        let open = &bytes[i..i + 2];
        if open == b"{#" && !in_raw {
            i = find(bytes, i + 2, b"#}").map_or(bytes.len(), |e| e + 2);
            continue;
        }
        if open != b"{%" && open != b"{{" {
            i += 1;
            continue;
        }
        let statement = open == b"{%";
        let close: &[u8] = if statement { b"%}" } else { b"}}" };
        let start = i + 2;
        let end = code_end(bytes, start, close);
        i = end + 2;
        if !statement {
            if !in_raw {
                check_code(source, start, end)?;
            }
            continue;
        }
        let (word, at) = first_word(bytes, start, end);
        if in_raw {
            in_raw = word != "endraw";
            continue;
        }
        match word {
            "raw" => in_raw = true,
            "for" => {
                loops += 1;
                if loops > MAX_LOOP_DEPTH {
                    return Err(TemplateError::at(
                        source,
                        at,
                        format!("`for` loops nest at most {MAX_LOOP_DEPTH} deep"),
                    ));
                }
            }
            "endfor" => loops = loops.saturating_sub(1),
            w if FORBIDDEN_STATEMENTS.contains(&w) => {
                return Err(TemplateError::at(
                    source,
                    at,
                    format!("the `{w}` statement is not allowed in notification templates"),
                ));
            }
            _ => {}
        }
        check_code(source, start, end)?;
    }
    Ok(())
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..bytes.len().saturating_sub(needle.len() - 1))
        .find(|&k| &bytes[k..k + needle.len()] == needle)
}

/// Where a tag's code ends (the offset of `close`), skipping string literals.
fn code_end(bytes: &[u8], from: usize, close: &[u8]) -> usize {
    let mut k = from;
    let mut quote: Option<u8> = None;
    while k < bytes.len() {
        let b = bytes[k];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    k += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => {
                if b == b'\'' || b == b'"' {
                    quote = Some(b);
                } else if bytes[k..].starts_with(close) {
                    return k;
                }
            }
        }
        k += 1;
    }
    bytes.len()
}

/// The first identifier of a statement (after a `-`/`+` whitespace marker) and its offset.
fn first_word(bytes: &[u8], start: usize, end: usize) -> (&str, usize) {
    let mut k = start;
    while k < end && (bytes[k] == b'-' || bytes[k] == b'+' || bytes[k].is_ascii_whitespace()) {
        k += 1;
    }
    let from = k;
    while k < end && (bytes[k].is_ascii_alphanumeric() || bytes[k] == b'_') {
        k += 1;
    }
    (std::str::from_utf8(&bytes[from..k]).unwrap_or(""), from)
}

/// Refuses `*` outside string literals in one tag's code.
fn check_code(source: &str, start: usize, end: usize) -> Result<(), TemplateError> {
    let bytes = source.as_bytes();
    let mut quote: Option<u8> = None;
    let mut k = start;
    while k < end.min(bytes.len()) {
        let b = bytes[k];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    k += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'*' => {
                return Err(TemplateError::at(
                    source,
                    k,
                    "the `*` operator is not allowed in notification templates",
                ));
            }
            None => {}
        }
        k += 1;
    }
    Ok(())
}

/// The offset of `word` as a whole identifier inside some tag, for pointing at it.
fn find_word_in_code(source: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    source.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = source[..at].chars().next_back();
        let after = source[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// One representative event of every kind, as [`check_template`] renders them.
pub fn sample_events() -> Vec<Envelope> {
    let at = Utc
        .with_ymd_and_hms(2026, 3, 1, 10, 0, 0)
        .single()
        .unwrap_or_default();
    let finding = |id: &str, sev: &str| {
        json!({
            "vulnerability_id": id, "aliases": [format!("GHSA-{id}")],
            "purl": "pkg:npm/example@1.0.0", "severity": sev, "disposition": "block",
            "vex_status": "affected", "fixed_version": "1.0.1"
        })
    };
    EVENT_KINDS
        .iter()
        .map(|kind| {
            let payload = json!({
                "target": "web-frontend",
                "labels": {"team": "web", "env": "prod"},
                "disposition": "block",
                "previous_disposition": "pass",
                "severity": "high",
                "vulnerability_id": "CVE-2026-0001",
                "vex_status": "affected",
                "findings": [finding("CVE-2026-0001", "critical"), finding("CVE-2026-0002", "medium")],
                "profile": "nightly",
                "export_id": "exp_1",
                "job_kind": "scan",
                "job_id": "job_1",
                "error": "the object store refused the upload",
                "reason": "too many failed jobs",
            });
            Envelope::new(*kind, "acme", at, &format!("sample:{kind}"), payload)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_templates_pass_their_own_check() {
        for channel in ChannelType::ALL {
            check_template(default_template(channel)).unwrap();
        }
    }

    /// The premise of the notifier's fallback: a template that passed its check on the
    /// samples can still fail on an event it did not foresee (here one without findings).
    #[test]
    fn a_template_that_checks_can_fail_on_an_unforeseen_event() {
        let source =
            "{% block subject %}{{ events[0].payload.findings | length }} findings{% endblock %}\n\
                      {% block text %}{{ event.payload.target }}{% endblock %}";
        check_template(source).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let event = Envelope::new(
            "job.dead_lettered",
            "acme",
            at,
            "k",
            json!({"job_id": "job_1", "job_kind": "noop"}),
        );
        let err = render(Some(source), ChannelType::Slack, &event).unwrap_err();
        assert_eq!((err.line, err.column), (1, 52), "{err}");
        assert!(err.message.contains("length"), "{err}");
        // The shipped template renders the same event.
        render(None, ChannelType::Slack, &event).unwrap();
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\nü{", 5), (2, 2));
        assert_eq!(line_column("", 0), (1, 1));
    }

    #[test]
    fn the_sandbox_refuses_what_it_must() {
        for (source, line, column, what) in [
            ("{% block subject %}{% set x = 1 %}{% endblock %}", 1, 23, "`set`"),
            ("{% block subject %}\n{{ 'a' * 1000 }}{% endblock %}", 2, 8, "`*`"),
            ("{% include 'x' %}", 1, 4, "`include`"),
            ("{%- macro m() %}{% endmacro %}", 1, 5, "`macro`"),
            ("{% for a in [1] %}{% for b in [1] %}{% for c in [1] %}{% for d in [1] %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}", 1, 58, "nest"),
        ] {
            let err = check_template(source).unwrap_err();
            assert_eq!((err.line, err.column), (line, column), "{source}: {err}");
            assert!(err.message.contains(what), "{source}: {err}");
        }
        // Inside strings, comments and raw sections nothing is code.
        check_template(
            "{# {% set x %} #}{% block subject %}{{ '*' }}{% raw %}{% set %}{% endraw %}{% endblock %}{% block text %}t{% endblock %}",
        )
        .unwrap();
    }
}
