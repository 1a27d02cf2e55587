//! The console's page frame and the small pieces every page uses: navigation, times in
//! UTC (local time on hover), state badges, progress bars, pagers and the error page.

use std::sync::OnceLock;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use sha2::{Digest, Sha256};
use stella_store::TenantId;

use super::PREFIX;

pub(crate) const CSS: &str = include_str!("assets/console.css");
pub(crate) const JS: &str = include_str!("assets/console.js");

/// A short digest of an asset, in its URL: a changed file is a new URL, so the files can
/// be cached for a year.
pub(crate) fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hash = Sha256::new();
        hash.update(CSS.as_bytes());
        hash.update(JS.as_bytes());
        hex::encode(&hash.finalize()[..6])
    })
}

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Jobs,
    Scans,
    DeadLetters,
    Schedules,
    Exports,
    Notifications,
    Rollouts,
    System,
}

/// What the frame shows around a page: who is signed in, on which tenant.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) token_name: String,
    pub(crate) tenant: Option<TenantId>,
    /// The tenants an administrator can switch between (empty for a tenant token).
    pub(crate) tenants: Vec<TenantId>,
    pub(crate) admin: bool,
    pub(crate) csrf: String,
}

fn head(title: &str) -> Markup {
    let v = asset_version();
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Stella console" }
            link rel="stylesheet" href={ (PREFIX) "/assets/console.css?v=" (v) };
            script src={ (PREFIX) "/assets/console.js?v=" (v) } defer {}
        }
    }
}

/// A whole page: skip link, header with navigation and the tenant, then `body`.
pub(crate) fn page(
    frame: &Frame,
    section: Section,
    title: &str,
    notice: Option<&str>,
    body: Markup,
) -> Markup {
    let nav: &[(Section, &str, &str)] = &[
        (Section::Overview, "", "Overview"),
        (Section::Jobs, "/jobs", "Jobs"),
        (Section::Scans, "/scans", "Scans"),
        (Section::DeadLetters, "/dead-letters", "Dead letters"),
        (Section::Schedules, "/schedules", "Schedules"),
        (Section::Exports, "/exports", "Exports"),
        (Section::Notifications, "/notifications", "Notifications"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href=(PREFIX) { "Stella" }
                    nav aria-label="Sections" {
                        ul {
                            @for (s, path, label) in nav {
                                li {
                                    a href={ (PREFIX) (path) }
                                        aria-current=[(section == *s).then_some("page")] { (label) }
                                }
                            }
                            @if frame.admin {
                                li {
                                    a href={ (PREFIX) "/rollouts" }
                                        aria-current=[(section == Section::Rollouts).then_some("page")] { "Rollouts" }
                                }
                                li {
                                    a href={ (PREFIX) "/system" }
                                        aria-current=[(section == Section::System).then_some("page")] { "Supervision" }
                                }
                            }
                        }
                    }
                    div.who {
                        @if frame.admin {
                            form.tenant method="post" action={ (PREFIX) "/tenant" } {
                                input type="hidden" name="csrf" value=(frame.csrf);
                                label for="tenant-select" { "Tenant" }
                                select id="tenant-select" name="tenant" data-autosubmit {
                                    option value="" selected[frame.tenant.is_none()] { "(all tenants)" }
                                    @for t in &frame.tenants {
                                        option value=(t) selected[frame.tenant.as_ref() == Some(t)] { (t) }
                                    }
                                }
                                button type="submit" { "Switch" }
                            }
                        } @else if let Some(t) = &frame.tenant {
                            span { "Tenant " strong data-testid="tenant" { (t) } }
                        }
                        span.token title="The API token this session signed in with" { (frame.token_name) }
                        form method="post" action={ (PREFIX) "/sign-out" } {
                            input type="hidden" name="csrf" value=(frame.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    @if let Some(notice) = notice {
                        p.notice role="status" { (notice) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A page outside the frame (sign-in, errors).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main id="main" {
                    p.brand { "Stella" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub(crate) fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'",
        ))
        .body(markup.into_string())
}

pub(crate) fn ok(markup: Markup) -> HttpResponse {
    respond(StatusCode::OK, markup)
}

/// The page of a refused or failed request: its status, kind and detail.
pub(crate) fn error_page(status: StatusCode, kind: &str, detail: &str) -> HttpResponse {
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Not possible now",
        s if s.is_client_error() => "Cannot do that",
        _ => "Something went wrong",
    };
    let markup = bare(
        title,
        html! {
            p.error role="alert" data-status=(status.as_u16()) {
                strong { (status.as_u16()) " " (kind) ": " } (detail)
            }
            @if let Some(id) = crate::request_id::current() {
                p { "Request id " code { (id) } " (it finds this request in the server log)." }
            }
            p { a href=(PREFIX) { "Back to the console" } }
        },
    );
    respond(status, markup)
}

/// A time in UTC; the script adds the local time as its title.
pub(crate) fn time(at: DateTime<Utc>) -> Markup {
    let iso = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    html! {
        time datetime=(iso) title={ (at.format("%Y-%m-%d %H:%M:%S UTC")) } {
            (at.format("%Y-%m-%d %H:%M:%S"))
        }
    }
}

pub(crate) fn opt_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.muted { "—" } },
    }
}

/// A duration as people read it: `850 ms`, `12.3 s`, `4 min 5 s`, `2 h 3 min`.
pub(crate) fn duration(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ms = (to - from).num_milliseconds().max(0);
    match ms {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        ms => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A state as a badge (text, not only colour).
pub(crate) fn badge(state: &str) -> Markup {
    html! { span class={ "badge " (state) } { (state) } }
}

/// A progress bar that follows a job's stream. `steps` are the job's steps in order (a
/// scan's `analyze`, `evaluate`, `seal`); `done_label` is what a succeeded job is called
/// (a scan is `completed`).
pub(crate) fn live_progress(
    stream: &str,
    state: &str,
    step: &str,
    steps: &[&str],
    done_label: &str,
    terminal: bool,
) -> Markup {
    let value = progress_value(state, step, steps);
    let shown = if state == "succeeded" {
        done_label
    } else {
        state
    };
    html! {
        div.progress data-stream=(stream) data-steps=(steps.join(",")) data-done-label=(done_label)
            data-initial-state=(state) data-terminal=(terminal) {
            label for="progress-bar" { "Progress" }
            progress id="progress-bar" max="100" value=(value) { (value) "%" }
            p aria-live="polite" {
                "State: " strong data-testid="live-state" { (shown) }
                " · step " span data-testid="live-step" { (step) }
                span.muted data-testid="live-note" {}
            }
        }
    }
}

fn progress_value(state: &str, step: &str, steps: &[&str]) -> u32 {
    match state {
        "succeeded" | "completed" | "failed" | "cancelled" => 100,
        "queued" => 0,
        _ => {
            let n = steps.len().max(1);
            let i = steps.iter().position(|s| *s == step).unwrap_or(0);
            u32::try_from(i * 100 / n).unwrap_or(0)
        }
    }
}

/// A "next page" link keeping the other query parameters.
pub(crate) fn pager(path: &str, query: &[(&str, &str)], next: Option<&str>) -> Markup {
    html! {
        @if let Some(cursor) = next {
            nav.pager aria-label="Pages" {
                a rel="next" href={ (path) "?" (PreEscaped(encode_query(query, Some(cursor)))) } { "Next page →" }
            }
        }
    }
}

/// `a=b&c=d` with the values percent-encoded, empty values left out.
pub(crate) fn encode_query(query: &[(&str, &str)], cursor: Option<&str>) -> String {
    let mut parts: Vec<String> = query
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if let Some(cursor) = cursor {
        parts.push(format!("cursor={}", encode(cursor)));
    }
    // `&amp;`: the string goes into an attribute unescaped.
    parts.join("&amp;")
}

/// Percent-encodes everything but unreserved characters (a path segment or query value).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Pretty JSON in a `<pre>`.
pub(crate) fn json_block(value: &serde_json::Value) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(value).unwrap_or_default()) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_progress_read_as_people_expect() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        assert_eq!(
            duration(t, t + chrono::Duration::milliseconds(850)),
            "850 ms"
        );
        assert_eq!(
            duration(t, t + chrono::Duration::milliseconds(12_340)),
            "12.3 s"
        );
        assert_eq!(duration(t, t + chrono::Duration::seconds(245)), "4 min 5 s");
        assert_eq!(
            duration(t, t + chrono::Duration::seconds(7380)),
            "2 h 3 min"
        );
        let steps = ["analyze", "evaluate", "seal"];
        assert_eq!(progress_value("queued", "analyze", &steps), 0);
        assert_eq!(progress_value("running", "evaluate", &steps), 33);
        assert_eq!(progress_value("succeeded", "seal", &steps), 100);
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(
            encode_query(&[("state", "failed"), ("kind", "")], Some("x y")),
            "state=failed&amp;cursor=x%20y"
        );
    }

    #[test]
    fn text_is_escaped_in_every_piece() {
        let html = badge("<script>").into_string();
        assert!(!html.contains("<script>"), "{html}");
        let html = json_block(&serde_json::json!({"a": "</pre><script>"})).into_string();
        assert!(!html.contains("</pre><script>"), "{html}");
    }
}
