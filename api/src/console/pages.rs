//! The console's pages and actions. Each names the `/api/v1` operation it mirrors (its
//! scope and audit name) and reads or changes the store through the same calls as that
//! operation's handler.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use stella_actors::scan::{SbomSource, Scan, ScanOptions};
use stella_store::mailbox::Role;
use stella_store::repo::{JobFilter, JobState};
use stella_store::{JobId, TenantId};
use stella_supervisor::{ActorSnapshot, Kind};

use super::view::{self, badge, live_progress, opt_time, time, Frame, Section};
use super::{session_cookie, Access, PageError, PageResult, Viewer, PREFIX};
use crate::problem::Problem;
use crate::v1;
use crate::Context;

/// The steps of a scan, in order (its progress bar).
const SCAN_STEPS: &[&str] = &["analyze", "evaluate", "seal"];
/// The steps of an export run.
const EXPORT_STEPS: &[&str] = &["plan", "write", "seal", "distribute"];

pub(super) fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .app_data(
                web::FormConfig::default()
                    .limit(16 * 1024 * 1024)
                    .error_handler(|err, _| {
                        PageError::Problem(Problem::bad_request(format!(
                            "the form is not valid: {err}"
                        )))
                        .into()
                    }),
            )
            .route("", web::get().to(overview))
            .route("/", web::get().to(overview))
            .route("/assets/console.css", web::get().to(css))
            .route("/assets/console.js", web::get().to(js))
            .route("/sign-in", web::get().to(sign_in_page))
            .route("/sign-in", web::post().to(sign_in))
            .route("/sign-out", web::post().to(sign_out))
            .route("/tenant", web::post().to(choose_tenant))
            .route("/jobs", web::get().to(jobs))
            .route("/jobs/cancel", web::get().to(bulk_cancel_preview))
            .route("/jobs/cancel", web::post().to(bulk_cancel))
            .route("/jobs/{id}", web::get().to(job))
            .route("/jobs/{id}/stream", web::get().to(job_stream))
            .route("/jobs/{id}/cancel", web::post().to(cancel_job))
            .route("/scans", web::get().to(scans))
            .route("/scans", web::post().to(submit_scan))
            .route("/events/stream", web::get().to(events_stream))
            .route("/scans/{id}", web::get().to(scan))
            .route("/scans/{id}/stream", web::get().to(scan_stream))
            .route("/scans/{id}/finding", web::get().to(finding))
            .route("/dead-letters", web::get().to(dead_letters))
            .route("/dead-letters/replay", web::get().to(bulk_replay_preview))
            .route("/dead-letters/replay", web::post().to(bulk_replay))
            .route("/dead-letters/{role}/{id}/replay", web::post().to(replay))
            .route("/dead-letters/{role}/{id}/discard", web::post().to(discard))
            .route("/schedules", web::get().to(schedules))
            .route("/schedules/{id}/{action}", web::post().to(schedule_action))
            .route("/runs", web::get().to(runs))
            .route("/runs/{id}", web::get().to(run))
            .route("/exports", web::get().to(exports))
            .route("/exports/{id}", web::get().to(export))
            .route("/exports/{id}/stream", web::get().to(export_stream))
            .route("/exports/{id}/files/{name:.*}", web::get().to(download))
            .route("/notifications", web::get().to(deliveries))
            .route("/notifications/{id}", web::get().to(delivery))
            .route("/rollouts", web::get().to(rollouts))
            .route("/rollouts/{id}", web::get().to(rollout))
            .route("/rollouts/{id}/{action}", web::post().to(rollout_action))
            .route("/system", web::get().to(system)),
    );
}

// ---------------------------------------------------------------------------------------
// Assets, sign-in, the frame
// ---------------------------------------------------------------------------------------

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // The URL carries the content's digest: a change is a new URL.
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(body)
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", view::CSS)
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", view::JS)
}

fn sign_in_form(error: Option<&str>) -> Markup {
    view::bare(
        "Sign in",
        html! {
            p { "Sign in with an API token. " code { "stella serve" } " prints the administrator \
                 token at its first start (and saves it in " code { "data/admin-token" } "); \
                 tenant tokens come from " code { "stella tokens create" } "." }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form.signin method="post" action={ (PREFIX) "/sign-in" } {
                label for="token" { "API token" }
                input id="token" name="token" type="password" autocomplete="off" required autofocus
                    spellcheck="false";
                button type="submit" { "Sign in" }
            }
            p.muted { "The token stays on the server: the browser holds only a session cookie, \
                       which ends when you sign out, after an hour unused, or after 12 hours." }
        },
    )
}

async fn sign_in_page() -> HttpResponse {
    view::ok(sign_in_form(None))
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in(
    ctx: web::Data<Context>,
    req: HttpRequest,
    form: web::Form<SignInForm>,
) -> PageResult<HttpResponse> {
    super::same_origin(&req)?;
    // Guessing tokens here is limited as on the API: per address.
    let address = req.peer_addr().map(|a| a.ip());
    if let Err(seconds) = ctx.auth_failures.admit(address, Instant::now()) {
        return Ok(view::respond(
            StatusCode::TOO_MANY_REQUESTS,
            sign_in_form(Some(&format!(
                "Too many failed sign-ins from this address; try again in {seconds} s."
            ))),
        ));
    }
    let secret = form.into_inner().token.trim().to_owned();
    match crate::auth::authenticate(&ctx, &secret).await {
        Ok(_) => {
            let id = ctx.console.open(secret, Instant::now());
            Ok(HttpResponse::SeeOther()
                .insert_header(session_cookie(&req, &id))
                .insert_header((header::LOCATION, PREFIX))
                .finish())
        }
        Err(problem) if problem.status == StatusCode::UNAUTHORIZED => {
            ctx.auth_failures.record(address, Instant::now());
            Ok(view::respond(
                StatusCode::UNAUTHORIZED,
                sign_in_form(Some(
                    "That token is unknown, revoked or expired, or its tenant is disabled.",
                )),
            ))
        }
        Err(problem) => Err(problem.into()),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn sign_out(
    ctx: web::Data<Context>,
    req: HttpRequest,
    viewer: Viewer,
    form: web::Form<CsrfForm>,
) -> PageResult<HttpResponse> {
    viewer.check_form(&req, form.csrf.as_deref())?;
    ctx.console.close(viewer.session_id());
    Ok(HttpResponse::SeeOther()
        .insert_header(session_cookie(&req, ""))
        .insert_header((header::LOCATION, format!("{PREFIX}/sign-in")))
        .finish())
}

#[derive(Debug, Deserialize)]
struct TenantForm {
    csrf: Option<String>,
    tenant: Option<String>,
}

/// An administrator chooses the tenant the console shows (as `X-Stella-Tenant` does).
async fn choose_tenant(
    ctx: web::Data<Context>,
    req: HttpRequest,
    viewer: Viewer,
    form: web::Form<TenantForm>,
) -> PageResult<HttpResponse> {
    viewer.check_form(&req, form.csrf.as_deref())?;
    let tenant = match form.tenant.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(raw) => {
            let tenant =
                TenantId::parse(raw).map_err(|err| Problem::bad_request(err.to_string()))?;
            // The same check as a named tenant on the API: it must exist (and a tenant
            // token can name only its own).
            crate::auth::caller_on(&ctx, viewer.token.clone(), Some(tenant.clone())).await?;
            Some(tenant)
        }
    };
    ctx.console.set_tenant(viewer.session_id(), tenant);
    let back = req
        .headers()
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.find(PREFIX).map(|i| r[i..].to_owned()))
        .unwrap_or_else(|| PREFIX.to_owned());
    Ok(see_other(&back))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

async fn frame(ctx: &Context, viewer: &Viewer) -> Frame {
    let admin = viewer.is_admin();
    let tenants = if admin {
        ctx.store
            .tenants()
            .list(None, 500)
            .await
            .map(|page| page.items.into_iter().map(|t| t.id).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Frame {
        token_name: viewer.token.name.clone(),
        tenant: viewer.tenant().cloned(),
        tenants,
        admin,
        csrf: viewer.csrf().to_owned(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct Notice {
    notice: Option<String>,
}

async fn render(
    ctx: &Context,
    viewer: &Viewer,
    section: Section,
    title: &str,
    notice: Option<&str>,
    body: Markup,
) -> HttpResponse {
    let frame = frame(ctx, viewer).await;
    view::ok(view::page(&frame, section, title, notice, body))
}

/// A hidden CSRF field.
fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf()); }
}

// ---------------------------------------------------------------------------------------
// Overview
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct TenantStats {
    queued: u64,
    running: u64,
    per_minute: f64,
    failures: u64,
    dead_letters: usize,
    quarantined: bool,
}

fn quarantined_tenants(snapshot: &ActorSnapshot, out: &mut Vec<String>) {
    if snapshot.kind == "tenant" && snapshot.quarantined {
        out.push(snapshot.name.clone());
    }
    for child in &snapshot.children {
        quarantined_tenants(child, out);
    }
}

/// Scans per hour and disposition over the last day.
type Chart = BTreeMap<DateTime<Utc>, BTreeMap<String, u64>>;

async fn overview(ctx: web::Data<Context>, viewer: Viewer) -> PageResult<HttpResponse> {
    // The tenants' job figures need `jobs:read`, the chart `scans:read`; the page shows
    // what the token may see, and is refused only when it may see neither.
    let can_jobs = viewer.can(&ctx, Method::GET, "/api/v1/jobs");
    let can_scans = viewer.can(&ctx, Method::GET, "/api/v1/scans");
    let mirrored = if can_jobs || !can_scans {
        "/api/v1/jobs"
    } else {
        "/api/v1/scans"
    };
    let access = viewer.may(&ctx, Method::GET, mirrored).await?;
    let tenants: Vec<TenantId> = match &access.caller.tenant {
        Some(tenant) => vec![tenant.clone()],
        None => ctx
            .store
            .tenants()
            .list(None, 500)
            .await?
            .items
            .into_iter()
            .map(|t| t.id)
            .collect(),
    };
    let now = Utc::now();
    let mut quarantined = Vec::new();
    if let Some(observer) = &ctx.observer {
        quarantined_tenants(&observer.snapshot().await, &mut quarantined);
    }
    let mut dead: HashMap<TenantId, usize> = HashMap::new();
    for name in stella_actors::ROLES.iter().filter(|_| can_jobs) {
        let role = Role::parse(name).map_err(Problem::from)?;
        for letter in ctx
            .mailbox
            .dead_letters(&role, v1::dead_letters::SCAN)
            .await?
        {
            *dead.entry(letter.envelope.tenant).or_default() += 1;
        }
    }
    let mut chart = Chart::new();
    let start = (now - Duration::hours(23))
        .duration_trunc(Duration::hours(1))
        .unwrap_or(now);
    let mut hour = start;
    while hour <= now {
        chart.insert(hour, BTreeMap::new());
        hour += Duration::hours(1);
    }
    let mut rows = Vec::new();
    for tenant in &tenants {
        let jobs = ctx.store.tenant(tenant);
        let jobs = jobs.jobs();
        if can_jobs {
            let stats = TenantStats {
                queued: jobs.count_in(JobState::Queued).await?
                    + jobs.count_in(JobState::Retrying).await?,
                running: jobs.count_in(JobState::Running).await?,
                per_minute: jobs
                    .count_finished_since(now - Duration::minutes(15), None)
                    .await? as f64
                    / 15.0,
                failures: jobs
                    .count_finished_since(now - Duration::hours(24), Some(JobState::Failed))
                    .await?,
                dead_letters: dead.get(tenant).copied().unwrap_or(0),
                quarantined: quarantined.iter().any(|q| q == tenant.as_str()),
            };
            rows.push((tenant.clone(), stats));
        }
        if can_scans {
            for (at, disposition) in ctx
                .store
                .tenant(tenant)
                .scans()
                .dispositions_since(start, 10_000)
                .await?
            {
                let hour = at.duration_trunc(Duration::hours(1)).unwrap_or(at);
                *chart
                    .entry(hour)
                    .or_default()
                    .entry(disposition)
                    .or_default() += 1;
            }
        }
    }
    let quarantined_here: Vec<&TenantId> = rows
        .iter()
        .filter(|(_, s)| s.quarantined)
        .map(|(t, _)| t)
        .collect();
    let body = html! {
        @if !can_jobs {
            section aria-labelledby="tenants-h" {
                h2 id="tenants-h" { "Tenants" }
                p.muted data-testid="no-jobs-scope" { "This token has no " code { "jobs:read" } " scope: queue depth, throughput, failures, dead letters and quarantine are not shown." }
            }
        } @else {
        section aria-labelledby="tenants-h" {
            h2 id="tenants-h" { "Tenants" }
            table {
                caption.sr { "Per tenant: jobs waiting and running, jobs finished per minute over the last 15 minutes, failures over 24 hours, dead letters" }
                thead { tr {
                    th scope="col" { "Tenant" }
                    th scope="col" class="num" { "Queue depth" }
                    th scope="col" class="num" { "Running" }
                    th scope="col" class="num" { "Jobs / min (15 min)" }
                    th scope="col" class="num" { "Failures (24 h)" }
                    th scope="col" class="num" { "Dead letters" }
                    th scope="col" { "Supervision" }
                } }
                tbody {
                    @for (tenant, s) in &rows {
                        tr {
                            th scope="row" { (tenant) }
                            td.num { (s.queued) }
                            td.num { (s.running) }
                            td.num { (format!("{:.1}", s.per_minute)) }
                            td.num { a href={ (PREFIX) "/jobs?state=failed" } { (s.failures) } }
                            td.num { a href={ (PREFIX) "/dead-letters" } { (s.dead_letters) } }
                            td { @if s.quarantined { (badge("quarantined")) } @else { (badge("healthy")) } }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "No tenants yet: create one with " code { "stella tenants create" } "." } }
        }
        section aria-labelledby="quarantine-h" {
            h2 id="quarantine-h" { "Quarantined tenants" }
            @if ctx.observer.is_none() {
                p.muted { "This process runs no actors; the workers' supervision trees are not visible here." }
            } @else if quarantined_here.is_empty() {
                p { "None." }
            } @else {
                ul { @for t in &quarantined_here { li { (t) } } }
            }
        }
        }
        section aria-labelledby="chart-h" {
            h2 id="chart-h" { "Scans by disposition, last 24 hours (UTC)" }
            @if can_scans { (disposition_chart(&chart)) } @else {
                p.muted { "This token has no " code { "scans:read" } " scope." }
            }
        }
    };
    Ok(render(&ctx, &viewer, Section::Overview, "Overview", None, body).await)
}

/// Stacked bars per hour: pass, warn, block, each bar with its count as a tooltip; the
/// totals below it are the text alternative.
fn disposition_chart(chart: &Chart) -> Markup {
    let kinds = ["pass", "warn", "block"];
    let max = chart
        .values()
        .map(|by| by.values().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, bar) = (720u64, 160u64, 26u64);
    let total: u64 = chart.values().flat_map(|by| by.values()).sum();
    // (x, y, height, kind, count, hour) of every segment.
    let mut segments = Vec::new();
    let mut labels = Vec::new();
    for (i, (hour, by)) in chart.iter().enumerate() {
        let x = i as u64 * (bar + 4) + 4;
        let mut y = height;
        for kind in kinds {
            let n = by.get(kind).copied().unwrap_or(0);
            if n > 0 {
                let h = (n * (height - 10) / max).max(2);
                y = y.saturating_sub(h);
                segments.push((x, y, h, kind, n, *hour));
            }
        }
        if i % 3 == 0 {
            labels.push((x, *hour));
        }
    }
    html! {
        figure.chart {
            svg role="img" aria-labelledby="chart-title" viewBox={ "0 0 " (width) " " (height + 20) }
                preserveAspectRatio="xMinYMin meet" {
                title id="chart-title" { (total) " scans evaluated in the last 24 hours" }
                line x1="0" y1=(height) x2=(width) y2=(height) class="base" {}
                @for (x, y, h, kind, n, hour) in &segments {
                    rect class={ "bar " (kind) } x=(x) y=(y) width=(bar) height=(h) {
                        title { (hour.format("%H:00")) " UTC: " (n) " " (kind) }
                    }
                }
                @for (x, hour) in &labels {
                    text x=(x) y=(height + 16) class="axis" { (hour.format("%H:00")) }
                }
            }
            figcaption {
                @for kind in kinds {
                    span class={ "key " (kind) } data-testid={ "chart-" (kind) } {
                        (kind) " " (chart.values().filter_map(|by| by.get(kind)).sum::<u64>())
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct JobsQuery {
    state: Option<String>,
    kind: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

const STATES: &[&str] = &[
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "cancelled",
];

async fn jobs(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<JobsQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/jobs").await?;
    let tenant = access.tenant()?;
    let state_text = query.state.clone().unwrap_or_default();
    let kind_text = query.kind.clone().unwrap_or_default();
    let state = Some(state_text.as_str())
        .filter(|s| !s.is_empty())
        .map(JobState::parse)
        .transpose()
        .map_err(Problem::from)?;
    let filter = JobFilter {
        state,
        kind: Some(kind_text.clone()).filter(|k| !k.is_empty()),
    };
    let page = ctx
        .store
        .tenant(tenant)
        .jobs()
        .list(
            &filter,
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            50,
        )
        .await?;
    let now = Utc::now();
    let kinds: Vec<&str> = ctx.registry.names().collect();
    let can_cancel = viewer.can(&ctx, Method::POST, "/api/v1/jobs/{id}/cancel");
    let body = html! {
        form.filters method="get" action={ (PREFIX) "/jobs" } {
            label for="f-state" { "State" }
            select id="f-state" name="state" {
                option value="" { "any" }
                @for s in STATES { option value=(s) selected[state_text == *s] { (s) } }
            }
            label for="f-kind" { "Kind" }
            select id="f-kind" name="kind" {
                option value="" { "any" }
                @for k in &kinds { option value=(k) selected[kind_text == *k] { (k) } }
            }
            button type="submit" { "Filter" }
        }
        table data-testid="jobs" {
            thead { tr {
                th scope="col" { "Job" } th scope="col" { "Kind" } th scope="col" { "State" }
                th scope="col" { "Step" } th scope="col" class="num" { "Attempts" }
                th scope="col" { "Created" } th scope="col" { "Duration" }
            } }
            tbody {
                @for job in &page.items {
                    tr {
                        td { a href={ (PREFIX) "/jobs/" (job.id) } { code { (job.id) } } }
                        td { (job.kind) }
                        td { (badge(job.state.as_str())) }
                        td { (job.step) }
                        td.num { (job.attempts) " / " (job.max_attempts) }
                        td { (time(job.created_at)) }
                        td { (view::duration(job.created_at, job.finished_at.unwrap_or(now))) }
                    }
                }
            }
        }
        @if page.items.is_empty() { p.muted { "No jobs match." } }
        (view::pager(&format!("{PREFIX}/jobs"), &[("state", &state_text), ("kind", &kind_text)], page.next_cursor.as_deref()))
        @if can_cancel && !matches!(state, Some(s) if s.is_terminal()) {
            p { a href={ (PREFIX) "/jobs/cancel?" (maud::PreEscaped(view::encode_query(&[("state", &state_text), ("kind", &kind_text)], None))) } { "Cancel the unfinished jobs of this filter…" } }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Jobs,
        "Jobs",
        query.notice.as_deref(),
        body,
    )
    .await)
}

/// Jobs a bulk action touches at most.
const BULK_MAX: usize = 1000;

/// The unfinished jobs of a filter (a terminal state matches none), at most
/// [`BULK_MAX`] + 1 (so "more than" can be said). One pass in id order, so a job that
/// moves from queued to running meanwhile is counted once.
async fn unfinished_of(
    ctx: &Context,
    tenant: &TenantId,
    state: Option<&str>,
    kind: Option<&str>,
) -> PageResult<Vec<JobId>> {
    let state = state
        .filter(|s| !s.is_empty())
        .map(JobState::parse)
        .transpose()
        .map_err(Problem::from)?;
    if state.is_some_and(JobState::is_terminal) {
        return Ok(Vec::new());
    }
    let filter = JobFilter {
        state,
        kind: kind.filter(|k| !k.is_empty()).map(str::to_owned),
    };
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ctx
            .store
            .tenant(tenant)
            .jobs()
            .list(&filter, cursor.as_deref(), 500)
            .await?;
        ids.extend(
            page.items
                .into_iter()
                .filter(|j| !j.state.is_terminal())
                .map(|j| j.id),
        );
        if ids.len() > BULK_MAX {
            ids.truncate(BULK_MAX + 1);
            return Ok(ids);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(ids),
        }
    }
}

/// What a bulk cancel by filter will touch, before it runs: the count, and a form that
/// asks for a reason.
async fn bulk_cancel_preview(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<JobsQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::POST, "/api/v1/jobs/{id}/cancel")
        .await?;
    let tenant = access.tenant()?;
    let (state, kind) = (
        query.state.clone().unwrap_or_default(),
        query.kind.clone().unwrap_or_default(),
    );
    let ids = unfinished_of(&ctx, tenant, Some(&state), Some(&kind)).await?;
    let count = ids.len().min(BULK_MAX);
    let body = html! {
        p data-testid="bulk-count" {
            @if ids.len() > BULK_MAX { "More than " (BULK_MAX) " unfinished jobs match; this cancels the first " (BULK_MAX) "." }
            @else { (count) " unfinished " (if count == 1 { "job matches" } else { "jobs match" }) " state " strong { (if state.is_empty() { "any unfinished" } else { state.as_str() }) } " and kind " strong { (if kind.is_empty() { "any" } else { kind.as_str() }) } "." }
        }
        @if count > 0 {
            form.signin method="post" action={ (PREFIX) "/jobs/cancel" } {
                (csrf(&viewer))
                input type="hidden" name="state" value=(state);
                input type="hidden" name="kind" value=(kind);
                input type="hidden" name="expected" value=(count);
                label for="bulk-reason" { "Reason (kept in the audit log)" }
                input id="bulk-reason" name="reason" type="text" required minlength="3";
                button type="submit" class="danger" { "Cancel " (count) " " (if count == 1 { "job" } else { "jobs" }) }
            }
        }
        p { a href={ (PREFIX) "/jobs?" (maud::PreEscaped(view::encode_query(&[("state", &state), ("kind", &kind)], None))) } { "Back to the jobs" } }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Jobs,
        "Cancel jobs by filter",
        None,
        body,
    )
    .await)
}

#[derive(Debug, Deserialize)]
struct BulkForm {
    csrf: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    reason: Option<String>,
    /// The count the preview showed.
    expected: Option<usize>,
}

async fn bulk_cancel(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    form: web::Form<BulkForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/jobs/{id}/cancel",
        )
        .await?;
    let reason = reason(&ReasonForm {
        csrf: None,
        reason: form.reason.clone(),
    })?;
    let tenant = access.tenant()?.clone();
    let ids = unfinished_of(&ctx, &tenant, form.state.as_deref(), form.kind.as_deref()).await?;
    let (mut cancelled, mut skipped) = (0usize, 0usize);
    for id in ids.iter().take(BULK_MAX) {
        // One by one through the API's cancel, each audited as its own cancel.
        let result = v1::jobs::cancel_job(&ctx, &tenant, id, &access.caller).await;
        let status = result
            .as_ref()
            .map_or_else(|p| p.status, |_| StatusCode::OK);
        access
            .audit(
                &ctx,
                format!("/api/v1/jobs/{id}/cancel"),
                status,
                Some(&reason),
            )
            .await;
        match result {
            Ok(_) => cancelled += 1,
            // Finished meanwhile: nothing to cancel.
            Err(_) => skipped += 1,
        }
    }
    let mut notice = format!("Cancelled {cancelled} jobs; {skipped} had finished meanwhile.");
    if form.expected.is_some_and(|n| n != ids.len().min(BULK_MAX)) {
        notice.push_str(" The filter matched a different number than the preview showed.");
    }
    Ok(see_other(&format!(
        "{PREFIX}/jobs?notice={}",
        view::encode(&notice)
    )))
}

fn job_id(raw: &str) -> PageResult<JobId> {
    Ok(v1::not_found_unless(JobId::parse(raw), "job", raw)?)
}

async fn job(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/jobs/{id}").await?;
    let tenant = access.tenant()?;
    let id = job_id(&id)?;
    let jobs = ctx.store.tenant(tenant);
    let jobs = jobs.jobs();
    let job = jobs.get(&id).await?;
    let events = jobs.events(&id).await?;
    let terminal = job.state.is_terminal();
    let (steps, link): (&[&str], Option<String>) = if job.kind == Scan::NAME {
        (SCAN_STEPS, Some(format!("{PREFIX}/scans/{}", job.id)))
    } else if job.kind == <stella_actors::export::Export as Kind>::NAME {
        (EXPORT_STEPS, Some(format!("{PREFIX}/exports/{}", job.id)))
    } else {
        (&[], None)
    };
    let can_cancel = !terminal && viewer.can(&ctx, Method::POST, "/api/v1/jobs/{id}/cancel");
    let steps: Vec<&str> = if steps.is_empty() {
        vec![job.step.as_str()]
    } else {
        steps.to_vec()
    };
    let body = html! {
        (live_progress(&format!("{PREFIX}/jobs/{}/stream", job.id), job.state.as_str(), &job.step, &steps, "succeeded", terminal))
        dl.facts {
            dt { "Id" } dd { code { (job.id) } }
            dt { "Kind" } dd { (job.kind) @if let Some(link) = &link { " · " a href=(link) { "open the " (job.kind) } } }
            dt { "State" } dd { (badge(job.state.as_str())) }
            dt { "Attempts" } dd { (job.attempts) " of " (job.max_attempts) }
            dt { "Created" } dd { (time(job.created_at)) }
            dt { "Finished" } dd { (opt_time(job.finished_at)) }
            dt { "Duration" } dd { (view::duration(job.created_at, job.finished_at.unwrap_or_else(Utc::now))) }
            @if let Some(error) = &job.last_error { dt { "Last error" } dd.error { (error) } }
        }
        @if can_cancel {
            form.inline method="post" action={ (PREFIX) "/jobs/" (job.id) "/cancel" } data-testid="cancel-job" {
                (csrf(&viewer))
                label for="cancel-reason" { "Reason" }
                input id="cancel-reason" name="reason" type="text" required minlength="3"
                    placeholder="why (kept in the audit log)";
                button type="submit" class="danger" { "Cancel this job" }
            }
        }
        h2 { "Steps and attempts" }
        table data-testid="job-events" {
            thead { tr {
                th scope="col" class="num" { "#" } th scope="col" { "From" } th scope="col" { "To" }
                th scope="col" { "Step" } th scope="col" class="num" { "Attempt" }
                th scope="col" { "Error" } th scope="col" { "At" }
            } }
            tbody {
                @for e in &events {
                    tr {
                        td.num { (e.seq) }
                        td { @if let Some(from) = e.from_state { (from.as_str()) } }
                        td { (badge(e.to_state.as_str())) }
                        td { (e.step) }
                        td.num { (e.attempt) }
                        td.error { @if let Some(err) = &e.error { (err) } }
                        td { (time(e.at)) }
                    }
                }
            }
        }
        h2 { "Parameters" }
        (view::json_block(&job.params))
        @if let Some(result) = &job.result { h2 { "Result" } (view::json_block(result)) }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Jobs,
        &format!("Job {}", job.kind),
        query.notice.as_deref(),
        body,
    )
    .await)
}

/// Cancels one job, with a reason (the API's `cancel_job`, audited as it).
async fn cancel_job(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
    form: web::Form<ReasonForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/jobs/{id}/cancel",
        )
        .await?;
    let reason = reason(&form)?;
    let tenant = access.tenant()?.clone();
    let id = job_id(&id)?;
    let result = v1::jobs::cancel_job(&ctx, &tenant, &id, &access.caller).await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::OK);
    access
        .audit(
            &ctx,
            format!("/api/v1/jobs/{id}/cancel"),
            status,
            Some(&reason),
        )
        .await;
    let job = result?;
    Ok(see_other(&format!(
        "{PREFIX}/jobs/{}?notice={}",
        job.id,
        view::encode(&format!("Job {} is {}.", job.id, job.state))
    )))
}

async fn job_stream(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/jobs/{id}/stream")
        .await?;
    let tenant = access.tenant()?.clone();
    let id = job_id(&id)?;
    let job = ctx.store.tenant(&tenant).jobs().get(&id).await?;
    let export = job.kind == <stella_actors::export::Export as Kind>::NAME;
    Ok(v1::streams::job_stream(ctx, tenant, id, export, &req, None).await?)
}

// ---------------------------------------------------------------------------------------
// Scans
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
    notice: Option<String>,
}

async fn scans(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/scans").await?;
    let tenant = access.tenant()?;
    let filter = JobFilter {
        state: None,
        kind: Some(Scan::NAME.to_owned()),
    };
    let page = ctx
        .store
        .tenant(tenant)
        .jobs()
        .list(
            &filter,
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            50,
        )
        .await?;
    let mut items = Vec::new();
    for job in page.items {
        let status = v1::scans::status_of(&ctx, tenant, &job.id).await?;
        items.push(v1::scans::view(job, status)?);
    }
    let can_submit = viewer.can(&ctx, Method::POST, "/api/v1/scans");
    // The list follows the scans completed after it was drawn.
    let latest = ctx.store.tenant(tenant).events().latest_seq().await?;
    let body = html! {
        @if can_submit {
            details.submit open[items.is_empty()] {
                summary { "Submit a scan" }
                form method="post" action={ (PREFIX) "/scans" } data-testid="submit-scan" {
                    (csrf(&viewer))
                    label for="sbom-file" { "SBOM file (CycloneDX or SPDX JSON)" }
                    input id="sbom-file" type="file" accept=".json,application/json" data-fills="sbom";
                    label for="sbom" { "or paste it" }
                    textarea id="sbom" name="sbom" rows="6" required spellcheck="false" {}
                    label for="scan-name" { "Name (optional: what the SBOM describes)" }
                    input id="scan-name" name="name" type="text";
                    button type="submit" { "Submit scan" }
                }
            }
        }
        p.live role="status" data-testid="live-news" data-live-events={ (PREFIX) "/events/stream?kind=scan.completed&after=" (latest) } {}
        table data-testid="scans" {
            thead { tr {
                th scope="col" { "Scan" } th scope="col" { "Name" } th scope="col" { "Status" }
                th scope="col" { "Disposition" } th scope="col" class="num" { "Findings" }
                th scope="col" { "Submitted" } th scope="col" { "Duration" }
            } }
            tbody {
                @for s in &items {
                    tr data-scan=(s.id) {
                        td { a href={ (PREFIX) "/scans/" (s.id) } { code { (s.id) } } }
                        td { (s.name) }
                        td data-field="status" { (badge(&s.status)) }
                        td data-field="disposition" { @if let Some(d) = &s.disposition { (badge(d)) } }
                        td.num data-field="findings" { @if let Some(n) = s.counts.as_ref().and_then(|c| c.get("findings")) { (n) } }
                        td { (time(s.created_at)) }
                        td { @if let Some(done) = s.completed_at { (view::duration(s.created_at, done)) } }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No scans yet." } }
        (view::pager(&format!("{PREFIX}/scans"), &[], page.next_cursor.as_deref()))
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Scans,
        "Scans",
        query.notice.as_deref(),
        body,
    )
    .await)
}

#[derive(Debug, Deserialize)]
struct ScanForm {
    csrf: Option<String>,
    sbom: String,
    name: Option<String>,
}

async fn submit_scan(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    form: web::Form<ScanForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/scans",
        )
        .await?;
    let tenant = access.tenant()?.clone();
    let form = form.into_inner();
    let body = actix_web::web::Bytes::from(form.sbom.into_bytes());
    if body.len() as u64 > ctx.settings.max_body_bytes {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the SBOM is over api.max_body_bytes",
        )
        .into());
    }
    let name = form.name.filter(|n| !n.trim().is_empty());
    let intake = &ctx.intake;
    let result = async {
        let (sha256, name) = intake
            .sbom(&tenant, SbomSource::Body(body), name)
            .await
            .map_err(v1::scans::intake_problem)?;
        let options = ScanOptions {
            evaluated_at: Utc::now(),
            idempotency_key: None,
            max_attempts: ctx.job_max_attempts,
        };
        intake
            .submit(&tenant, sha256, name, &options)
            .await
            .map_err(v1::scans::intake_problem)
    }
    .await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::ACCEPTED);
    access
        .audit(&ctx, "/api/v1/scans".into(), status, None)
        .await;
    let submitted = result?;
    Ok(see_other(&format!("{PREFIX}/scans/{}", submitted.job.id)))
}

async fn scan(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/scans/{id}").await?;
    let tenant = access.tenant()?;
    let job = v1::scans::scan_job(&ctx, tenant, &id).await?;
    let terminal = job.state.is_terminal();
    let (state, step) = (job.state.as_str().to_owned(), job.step.clone());
    let status = v1::scans::status_of(&ctx, tenant, &job.id).await?;
    let scan = v1::scans::view(job, status)?;
    let findings = if scan.disposition.is_some() {
        ctx.store
            .tenant(tenant)
            .scans()
            .findings(&JobId::parse(&scan.id).map_err(Problem::from)?, None, 200)
            .await?
    } else {
        stella_store::repo::Page {
            items: Vec::new(),
            next_cursor: None,
        }
    };
    let body = html! {
        (live_progress(&format!("{PREFIX}/scans/{}/stream", scan.id), &state, &step, SCAN_STEPS, "completed", terminal))
        dl.facts {
            dt { "Id" } dd { code { (scan.id) } " · " a href={ (PREFIX) "/jobs/" (scan.id) } { "its job" } }
            dt { "Name" } dd { (scan.name) }
            dt { "Status" } dd { (badge(&scan.status)) }
            dt { "Disposition" } dd data-testid="disposition" { @if let Some(d) = &scan.disposition { (badge(d)) } @else { span.muted { "not evaluated yet" } } }
            dt { "SBOM" } dd { code { (scan.sbom_sha256) } }
            dt { "Evaluated at" } dd { (time(scan.evaluated_at)) }
            dt { "Submitted" } dd { (time(scan.created_at)) }
            dt { "Completed" } dd { (opt_time(scan.completed_at)) }
            @if let Some(hash) = &scan.inputs_hash { dt { "Inputs hash" } dd { code { (hash) } } }
            @if let Some(error) = &scan.error { dt { "Error" } dd.error { (error) } }
        }
        @if let Some(counts) = scan.counts.as_ref().and_then(Value::as_object) {
            h2 { "Counts" }
            dl.facts.counts data-testid="counts" {
                @for (k, v) in counts { dt { (k) } dd { (compact(v)) } }
            }
        }
        h2 { "Findings" }
        @if scan.disposition.is_none() {
            p.muted { "Findings appear once the scan is evaluated." }
        } @else if findings.items.is_empty() {
            p { "No findings." }
        } @else {
            table data-testid="findings" {
                thead { tr {
                    th scope="col" { "Vulnerability" } th scope="col" { "Component" }
                    th scope="col" { "Disposition" } th scope="col" { "Severity" } th scope="col" { "Trace" }
                } }
                tbody {
                    @for f in &findings.items {
                        tr {
                            td { code { (f.vulnerability_id) } }
                            td { code { (f.purl) } }
                            td { (badge(&f.disposition)) }
                            td { (f.finding.get("severity").map(compact).unwrap_or_default()) }
                            td { a href={ (PREFIX) "/scans/" (scan.id) "/finding?vulnerability=" (view::encode(&f.vulnerability_id)) "&purl=" (view::encode(&f.purl)) } { "Explain" span.sr { " " (f.vulnerability_id) " in " (f.purl) } } }
                        }
                    }
                }
            }
            @if findings.next_cursor.is_some() { p.muted { "The first 200 findings are shown; " code { "stella scan get" } " or the API lists them all." } }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Scans,
        &format!("Scan {}", scan.name),
        None,
        body,
    )
    .await)
}

/// The tenant's events as they happen, for the live lists (`GET /api/v1/events/stream`).
async fn events_stream(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    query: web::Query<v1::streams::EventStreamQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/events/stream")
        .await?;
    let tenant = access.tenant()?.clone();
    let query = query.into_inner();
    Ok(v1::streams::events_stream(ctx, tenant, &req, query.kind, query.after).await?)
}

/// A JSON value as short text (strings without quotes).
fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", compact(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

async fn scan_stream(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/scans/{id}/stream")
        .await?;
    let tenant = access.tenant()?.clone();
    let job = v1::scans::scan_job(&ctx, &tenant, &id).await?;
    Ok(v1::streams::job_stream(ctx, tenant, job.id, false, &req, None).await?)
}

#[derive(Debug, Deserialize)]
struct FindingQuery {
    vulnerability: String,
    purl: String,
}

/// A finding's explain trace: the decision chain (rule by rule, with the inputs each
/// looked at and why it decided) and the evidence the assessment rests on.
async fn finding(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
    query: web::Query<FindingQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/scans/{id}/findings")
        .await?;
    let tenant = access.tenant()?;
    let job = v1::scans::scan_job(&ctx, tenant, &id).await?;
    let scans = ctx.store.tenant(tenant);
    let scans = scans.scans();
    let mut cursor: Option<String> = None;
    let mut found = None;
    // Findings are read in pages; a scan holds at most a few thousand.
    for _ in 0..100 {
        let page = scans.findings(&job.id, cursor.as_deref(), 500).await?;
        found = page
            .items
            .into_iter()
            .find(|f| f.vulnerability_id == query.vulnerability && f.purl == query.purl);
        cursor = page.next_cursor;
        if found.is_some() || cursor.is_none() {
            break;
        }
    }
    let Some(f) = found else {
        return Err(Problem::not_found(format!(
            "finding {} in {} not found in scan {}",
            query.vulnerability, query.purl, job.id
        ))
        .into());
    };
    let trace = f
        .finding
        .get("trace")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut evidence = f.finding.clone();
    if let Some(object) = evidence.as_object_mut() {
        object.remove("trace");
    }
    let body = html! {
        p { a href={ (PREFIX) "/scans/" (job.id) } { "← Back to the scan" } }
        dl.facts {
            dt { "Vulnerability" } dd { code { (f.vulnerability_id) } }
            dt { "Component" } dd { code { (f.purl) } }
            dt { "Disposition" } dd data-testid="finding-disposition" { (badge(&f.disposition)) }
        }
        h2 { "Decision chain" }
        ol.trace data-testid="trace" {
            @for step in &trace {
                li {
                    p {
                        strong { (step.get("by").map(compact).unwrap_or_default()) }
                        @if let Some(pack) = step.get("pack").and_then(Value::as_str) { " (pack " (pack) ")" }
                        " · policy v" (step.get("policy_version").map(compact).unwrap_or_default())
                        @if let Some(out) = step.get("output").filter(|o| !o.is_null()) { " → " (badge(&compact(out))) }
                    }
                    p { (step.get("because").map(compact).unwrap_or_default()) }
                    details { summary { "Inputs" } (view::json_block(step.get("inputs").unwrap_or(&Value::Null))) }
                }
            }
        }
        @if trace.is_empty() { p.muted { "This finding carries no trace." } }
        h2 { "Evidence" }
        @let claims = evidence.pointer("/assessment/claims").and_then(Value::as_array).cloned().unwrap_or_default();
        @if !claims.is_empty() {
            table data-testid="claims" {
                caption.sr { "The claims the assessment rests on" }
                thead { tr { th scope="col" { "Question" } th scope="col" { "Value" } th scope="col" { "Evidence" } } }
                tbody {
                    @for c in &claims {
                        tr {
                            td { (c.get("question").map(compact).unwrap_or_default()) }
                            td { (c.get("value").map(compact).unwrap_or_default()) }
                            td { code { (c.get("evidence").map(compact).unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
        details open[claims.is_empty()] {
            summary { "The whole finding (JSON)" }
            (view::json_block(&evidence))
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Scans,
        &format!("Why {} is {}", f.vulnerability_id, f.disposition),
        None,
        body,
    )
    .await)
}

// ---------------------------------------------------------------------------------------
// Dead letters
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct DeadLetterQuery {
    role: Option<String>,
    notice: Option<String>,
}

/// The tenant's dead letters, of one role or all, at most `max`.
async fn letters_of(
    ctx: &Context,
    tenant: &TenantId,
    role: &str,
    max: usize,
) -> PageResult<Vec<stella_store::mailbox::DeadLetter>> {
    let mut items = Vec::new();
    for name in stella_actors::ROLES {
        if !role.is_empty() && role != name {
            continue;
        }
        let role = Role::parse(name).map_err(Problem::from)?;
        for letter in v1::dead_letters::of_tenant(ctx, &role, tenant).await? {
            if items.len() >= max {
                return Ok(items);
            }
            items.push(letter);
        }
    }
    Ok(items)
}

fn check_role(role: &str) -> PageResult<()> {
    if role.is_empty() || stella_actors::ROLES.contains(&role) {
        Ok(())
    } else {
        Err(Problem::bad_request(format!(
            "unknown role {role:?}; roles: {}",
            stella_actors::ROLES.join(", ")
        ))
        .into())
    }
}

async fn dead_letters(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<DeadLetterQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/dead-letters")
        .await?;
    let tenant = access.tenant()?;
    let role_filter = query.role.clone().unwrap_or_default();
    check_role(&role_filter)?;
    let items = letters_of(&ctx, tenant, &role_filter, 500).await?;
    let can_act = viewer.can(
        &ctx,
        Method::POST,
        "/api/v1/dead-letters/{role}/{id}/replay",
    );
    let body = html! {
        p.muted { "Messages that failed every attempt. Replaying sends one again as a fresh attempt; discarding drops it for good. Both ask for a reason, kept in the audit log." }
        form.filters method="get" action={ (PREFIX) "/dead-letters" } {
            label for="f-role" { "Role" }
            select id="f-role" name="role" {
                option value="" { "any" }
                @for r in stella_actors::ROLES { option value=(r) selected[role_filter == *r] { (r) } }
            }
            button type="submit" { "Filter" }
            @if can_act && !items.is_empty() {
                a href={ (PREFIX) "/dead-letters/replay?" (maud::PreEscaped(view::encode_query(&[("role", &role_filter)], None))) } { "Replay every dead letter of this filter…" }
            }
        }
        @if items.is_empty() { p data-testid="no-dead-letters" { "No dead letters." } }
        @for d in &items {
            @let role = d.envelope.role.as_str();
            article.card data-testid="dead-letter" {
                h2 { (d.envelope.kind) " in " (role) " " small { code { (d.id) } } }
                dl.facts {
                    @if let Some(job) = &d.envelope.job_id { dt { "Job" } dd { a href={ (PREFIX) "/jobs/" (job) } { code { (job) } } } }
                    dt { "Attempts" } dd { (d.envelope.attempt + 1) " · delivered " (d.deliveries) " times" }
                    dt { "Error" } dd.error { (d.error) }
                    dt { "Died" } dd { (time(d.died_at)) }
                }
                @if can_act {
                    form.inline method="post" action={ (PREFIX) "/dead-letters/" (view::encode(role)) "/" (view::encode(&d.id)) "/replay" } {
                        (csrf(&viewer))
                        label for={ "reason-" (d.id) } { "Reason" }
                        input id={ "reason-" (d.id) } name="reason" type="text" required minlength="3"
                            placeholder="why (kept in the audit log)";
                        button type="submit" { "Replay" }
                        button type="submit" class="danger" formaction={ (PREFIX) "/dead-letters/" (view::encode(role)) "/" (view::encode(&d.id)) "/discard" } { "Discard" }
                    }
                }
            }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::DeadLetters,
        "Dead letters",
        query.notice.as_deref(),
        body,
    )
    .await)
}

/// Dead letters a bulk replay touches at most.
const BULK_REPLAY_MAX: usize = 500;

/// What a bulk replay will touch, before it runs.
async fn bulk_replay_preview(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<DeadLetterQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(
            &ctx,
            Method::POST,
            "/api/v1/dead-letters/{role}/{id}/replay",
        )
        .await?;
    let tenant = access.tenant()?;
    let role = query.role.clone().unwrap_or_default();
    check_role(&role)?;
    let items = letters_of(&ctx, tenant, &role, BULK_REPLAY_MAX + 1).await?;
    let count = items.len().min(BULK_REPLAY_MAX);
    let body = html! {
        p data-testid="bulk-count" {
            @if items.len() > BULK_REPLAY_MAX { "More than " (BULK_REPLAY_MAX) " dead letters match; this replays the first " (BULK_REPLAY_MAX) "." }
            @else { (count) " dead " (if count == 1 { "letter" } else { "letters" }) " of role " strong { (if role.is_empty() { "any" } else { role.as_str() }) } " will be replayed." }
        }
        @if count > 0 {
            form.signin method="post" action={ (PREFIX) "/dead-letters/replay" } {
                (csrf(&viewer))
                input type="hidden" name="role" value=(role);
                label for="bulk-reason" { "Reason (kept in the audit log)" }
                input id="bulk-reason" name="reason" type="text" required minlength="3";
                button type="submit" { "Replay " (count) " dead " (if count == 1 { "letter" } else { "letters" }) }
            }
        }
        p { a href={ (PREFIX) "/dead-letters" } { "Back to the dead letters" } }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::DeadLetters,
        "Replay dead letters by filter",
        None,
        body,
    )
    .await)
}

#[derive(Debug, Deserialize)]
struct BulkReplayForm {
    csrf: Option<String>,
    role: Option<String>,
    reason: Option<String>,
}

async fn bulk_replay(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    form: web::Form<BulkReplayForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/dead-letters/{role}/{id}/replay",
        )
        .await?;
    let reason = reason(&ReasonForm {
        csrf: None,
        reason: form.reason.clone(),
    })?;
    let tenant = access.tenant()?.clone();
    let role = form.role.clone().unwrap_or_default();
    check_role(&role)?;
    let mut replayed = 0usize;
    for letter in letters_of(&ctx, &tenant, &role, BULK_REPLAY_MAX).await? {
        // One by one as the API replays one, each audited as its own replay.
        let result = ctx
            .mailbox
            .replay_dead_letter(&letter.envelope.role, &letter.id, Utc::now())
            .await
            .map_err(Problem::from);
        let status = result
            .as_ref()
            .map_or_else(|p| p.status, |_| StatusCode::OK);
        access
            .audit(
                &ctx,
                format!(
                    "/api/v1/dead-letters/{}/{}/replay",
                    letter.envelope.role.as_str(),
                    letter.id
                ),
                status,
                Some(&reason),
            )
            .await;
        if result.is_ok() {
            replayed += 1;
        }
    }
    Ok(see_other(&format!(
        "{PREFIX}/dead-letters?notice={}",
        view::encode(&format!("Replayed {replayed} dead letters."))
    )))
}

#[derive(Debug, Deserialize)]
struct ReasonForm {
    csrf: Option<String>,
    reason: Option<String>,
}

fn reason(form: &ReasonForm) -> PageResult<String> {
    match form
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| r.len() >= 3)
    {
        Some(reason) if reason.len() <= 500 => Ok(reason.to_owned()),
        _ => Err(Problem::bad_request(
            "give a reason (3 to 500 characters): it is kept in the audit log",
        )
        .at("reason")
        .into()),
    }
}

async fn replay(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
) -> PageResult<HttpResponse> {
    dead_letter_action(ctx, viewer, req, path, form, true).await
}

async fn discard(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
) -> PageResult<HttpResponse> {
    dead_letter_action(ctx, viewer, req, path, form, false).await
}

async fn dead_letter_action(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
    replay: bool,
) -> PageResult<HttpResponse> {
    let (method, operation) = if replay {
        (Method::POST, "/api/v1/dead-letters/{role}/{id}/replay")
    } else {
        (Method::DELETE, "/api/v1/dead-letters/{role}/{id}")
    };
    let access = viewer
        .act(&ctx, &req, form.csrf.as_deref(), method, operation)
        .await?;
    let reason = reason(&form)?;
    let (role, id) = path.into_inner();
    let target = format!(
        "/api/v1/dead-letters/{role}/{id}{}",
        if replay { "/replay" } else { "" }
    );
    let result = async {
        let (role, dead) = v1::dead_letters::find(&ctx, &access.caller, &role, &id).await?;
        if replay {
            ctx.mailbox
                .replay_dead_letter(&role, &dead.id, Utc::now())
                .await?;
        } else {
            ctx.mailbox.discard_dead_letter(&role, &dead.id).await?;
        }
        Ok::<_, Problem>(dead)
    }
    .await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::OK);
    access.audit(&ctx, target, status, Some(&reason)).await;
    let dead = result?;
    let done = if replay { "replayed" } else { "discarded" };
    Ok(see_other(&format!(
        "{PREFIX}/dead-letters?notice={}",
        view::encode(&format!(
            "Dead letter {} ({}) {done}.",
            dead.id, dead.envelope.kind
        ))
    )))
}

// ---------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------

async fn schedules(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/schedules").await?;
    let tenant = access.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .schedules()
        .list(query.cursor.as_deref().filter(|c| !c.is_empty()), 100)
        .await?;
    let can_act = viewer.can(&ctx, Method::POST, "/api/v1/schedules/{schedule}/pause");
    let body = html! {
        table data-testid="schedules" {
            thead { tr {
                th scope="col" { "Schedule" } th scope="col" { "Kind" } th scope="col" { "When" }
                th scope="col" { "State" } th scope="col" { "Next fire" } th scope="col" { "Last run" }
                @if can_act { th scope="col" { "Actions" } }
            } }
            tbody {
                @for s in &page.items {
                    @let active = s.state == "active";
                    tr data-schedule=(s.name) {
                        th scope="row" { (s.name) }
                        td { (s.kind) }
                        td { code { (s.cron) } " " span.muted { (s.timezone) } }
                        td { (badge(if active { "active" } else { "paused" })) }
                        td { @if active { (opt_time(s.next_fire_at.or(s.next_due_at))) } @else { span.muted { "paused" } } }
                        td {
                            @if let Some(run) = &s.last_run_id { a href={ (PREFIX) "/runs/" (run) } { code { (run) } } " · " }
                            a href={ (PREFIX) "/runs?schedule=" (view::encode(&s.name)) } { "all runs" span.sr { " of " (s.name) } }
                        }
                        @if can_act {
                            td {
                                form.inline method="post" action={ (PREFIX) "/schedules/" (s.id) "/" (if active { "pause" } else { "resume" }) } {
                                    (csrf(&viewer))
                                    button type="submit" aria-label={ (if active { "Pause " } else { "Resume " }) (s.name) } { (if active { "Pause" } else { "Resume" }) }
                                }
                                form.inline method="post" action={ (PREFIX) "/schedules/" (s.id) "/run" } {
                                    (csrf(&viewer))
                                    button type="submit" aria-label={ "Run " (s.name) " now" } { "Run now" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if page.items.is_empty() { p.muted { "No schedules." } }
        (view::pager(&format!("{PREFIX}/schedules"), &[], page.next_cursor.as_deref()))
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Schedules,
        "Schedules",
        query.notice.as_deref(),
        body,
    )
    .await)
}

async fn schedule_action(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> PageResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let operation = match action.as_str() {
        "pause" => "/api/v1/schedules/{schedule}/pause",
        "resume" => "/api/v1/schedules/{schedule}/resume",
        "run" => "/api/v1/schedules/{schedule}/run",
        _ => return Err(Problem::not_found(format!("no action {action:?} on schedules")).into()),
    };
    let access: Access = viewer
        .act(&ctx, &req, form.csrf.as_deref(), Method::POST, operation)
        .await?;
    let tenant = access.tenant()?.clone();
    let now = Utc::now();
    let result: Result<String, Problem> = async {
        Ok(match action.as_str() {
            "pause" => {
                let s = stella_scheduler::manage::set_enabled(&ctx.store, &tenant, &id, false, now)
                    .await?;
                format!("Schedule {} paused.", s.name)
            }
            "resume" => {
                let s = stella_scheduler::manage::set_enabled(&ctx.store, &tenant, &id, true, now)
                    .await?;
                format!("Schedule {} resumed.", s.name)
            }
            _ => {
                let run = stella_scheduler::manage::trigger(&ctx.store, &tenant, &id, now).await?;
                format!("Run {} started.", run.id)
            }
        })
    }
    .await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::OK);
    access
        .audit(
            &ctx,
            format!("/api/v1/schedules/{id}/{action}"),
            status,
            None,
        )
        .await;
    let notice = result?;
    Ok(see_other(&format!(
        "{PREFIX}/schedules?notice={}",
        view::encode(&notice)
    )))
}

// ---------------------------------------------------------------------------------------
// Schedule runs
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct RunsQuery {
    schedule: Option<String>,
    cursor: Option<String>,
}

async fn runs(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<RunsQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/runs").await?;
    let tenant = access.tenant()?;
    let name = query.schedule.clone().unwrap_or_default();
    let schedule = match Some(name.as_str()).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(ctx.store.tenant(tenant).schedules().get(raw).await?.id),
    };
    let page = ctx
        .store
        .tenant(tenant)
        .runs()
        .list(
            schedule.as_ref(),
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            50,
        )
        .await?;
    let items: Vec<v1::schedules::RunView> = page
        .items
        .into_iter()
        .map(|r| v1::schedules::RunView::of(r, None))
        .collect();
    let title = if name.is_empty() {
        "Runs".to_owned()
    } else {
        format!("Runs of {name}")
    };
    let body = html! {
        table data-testid="runs" {
            thead { tr {
                th scope="col" { "Run" } th scope="col" { "Trigger" } th scope="col" { "Kind" }
                th scope="col" { "State" } th scope="col" { "Due" } th scope="col" { "Duration" }
            } }
            tbody {
                @for r in &items {
                    tr {
                        td { a href={ (PREFIX) "/runs/" (r.id) } { code { (r.id) } } }
                        td { (r.trigger) }
                        td { (r.kind) }
                        td { (badge(&r.state)) }
                        td { (time(r.due_at)) }
                        td { @if let Some(done) = r.finished_at { (view::duration(r.created_at, done)) } }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No runs." } }
        (view::pager(&format!("{PREFIX}/runs"), &[("schedule", &name)], page.next_cursor.as_deref()))
    };
    Ok(render(&ctx, &viewer, Section::Schedules, &title, None, body).await)
}

async fn run(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/runs/{id}").await?;
    let tenant = access.tenant()?;
    let id = v1::not_found_unless(stella_store::RunId::parse(&id), "run", &id)?;
    let runs = ctx.store.tenant(tenant);
    let runs = runs.runs();
    let record = runs.get(&id).await?;
    let results = runs.targets(&id).await?;
    let r = v1::schedules::RunView::of(record, Some(results));
    let body = html! {
        dl.facts {
            dt { "Id" } dd { code { (r.id) } }
            dt { "Trigger" } dd { (r.trigger) }
            dt { "Kind" } dd { (r.kind) }
            dt { "State" } dd { (badge(&r.state)) }
            dt { "Due" } dd { (time(r.due_at)) }
            dt { "Finished" } dd { (opt_time(r.finished_at)) }
            dt { "Counts" } dd { (compact(&r.counts)) }
            @if let Some(error) = &r.error { dt { "Error" } dd.error { (error) } }
        }
        h2 { "Targets" }
        @let results = r.results.as_deref().unwrap_or_default();
        @if results.is_empty() { p.muted { "No targets." } } @else {
            table data-testid="run-targets" {
                thead { tr {
                    th scope="col" { "Target" } th scope="col" { "Scan" } th scope="col" { "State" } th scope="col" { "Against the previous scan" }
                } }
                tbody {
                    @for t in results {
                        tr {
                            td { (t.target_name) }
                            td { a href={ (PREFIX) "/scans/" (t.scan_id) } { code { (t.scan_id) } } }
                            td { (badge(&t.state)) }
                            td { @if let Some(diff) = &t.diff { (compact(diff)) } }
                        }
                    }
                }
            }
        }
        h2 { "Why" }
        (view::json_block(&r.reason))
    };
    Ok(render(&ctx, &viewer, Section::Schedules, "Run", None, body).await)
}

// ---------------------------------------------------------------------------------------
// Exports
// ---------------------------------------------------------------------------------------

async fn exports(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/exports").await?;
    let tenant = access.tenant()?;
    let filter = JobFilter {
        state: None,
        kind: Some(<stella_actors::export::Export as Kind>::NAME.to_owned()),
    };
    let page = ctx
        .store
        .tenant(tenant)
        .jobs()
        .list(
            &filter,
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            50,
        )
        .await?;
    let mut items = Vec::new();
    for job in page.items {
        items.push(v1::exports::view(&ctx, job, false).await?);
    }
    let body = html! {
        table data-testid="exports" {
            thead { tr {
                th scope="col" { "Export" } th scope="col" { "Profile" } th scope="col" { "Status" }
                th scope="col" { "Items" } th scope="col" { "Started" } th scope="col" { "Duration" }
            } }
            tbody {
                @for e in &items {
                    tr {
                        td { a href={ (PREFIX) "/exports/" (e.export_id) } { code { (e.export_id) } } }
                        td { (e.profile.clone().unwrap_or_default()) @if let Some(r) = e.revision { " r" (r) } }
                        td { (badge(&e.status)) }
                        td { @if let (Some(d), Some(t)) = (e.items_done, e.items_total) { progress max=(t.max(1)) value=(d) aria-label="items written" {} " " (d) " / " (t) } }
                        td { (time(e.created_at)) }
                        td { @if let Some(done) = e.finished_at { (view::duration(e.created_at, done)) } }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No exports yet: start one with " code { "stella export run" } "." } }
        (view::pager(&format!("{PREFIX}/exports"), &[], page.next_cursor.as_deref()))
    };
    Ok(render(&ctx, &viewer, Section::Exports, "Exports", None, body).await)
}

async fn export(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/exports/{export_id}")
        .await?;
    let job = v1::exports::export_job(&ctx, &access.caller, &id).await?;
    let (state, step, terminal) = (
        job.state.as_str().to_owned(),
        job.step.clone(),
        job.state.is_terminal(),
    );
    let e = v1::exports::view(&ctx, job, true).await?;
    let body = html! {
        (live_progress(&format!("{PREFIX}/exports/{}/stream", e.export_id), &state, &step, EXPORT_STEPS, "completed", terminal))
        dl.facts {
            dt { "Id" } dd { code { (e.export_id) } }
            dt { "Profile" } dd { (e.profile.clone().unwrap_or_default()) @if let Some(r) = e.revision { " revision " (r) } }
            dt { "Status" } dd { (badge(&e.status)) }
            dt { "Started" } dd { (time(e.created_at)) }
            dt { "Finished" } dd { (opt_time(e.finished_at)) }
            @if let Some(error) = &e.error { dt { "Error" } dd.error { (error) } }
        }
        h2 { "Files" }
        @if e.files.is_empty() { p.muted { "No files yet." } } @else {
            table data-testid="export-files" {
                thead { tr { th scope="col" { "File" } th scope="col" class="num" { "Bytes" } th scope="col" { "SHA-256" } } }
                tbody {
                    @for f in &e.files {
                        tr {
                            td { a href={ (PREFIX) "/exports/" (e.export_id) "/files/" (f.name) } download { (f.name) } }
                            td.num { (f.size_bytes) }
                            td { code.hash { (f.sha256) } }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&ctx, &viewer, Section::Exports, "Export", None, body).await)
}

async fn export_stream(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/exports/{export_id}/stream")
        .await?;
    let tenant = access.tenant()?.clone();
    let job = v1::exports::export_job(&ctx, &access.caller, &id).await?;
    Ok(v1::streams::job_stream(ctx, tenant, job.id, true, &req, None).await?)
}

async fn download(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(
            &ctx,
            Method::GET,
            "/api/v1/exports/{export_id}/files/{name}",
        )
        .await?;
    let (id, name) = path.into_inner();
    let job = v1::exports::export_job(&ctx, &access.caller, &id).await?;
    Ok(v1::exports::serve_file(&ctx, &req, &job, &name).await?)
}

// ---------------------------------------------------------------------------------------
// Notification deliveries
// ---------------------------------------------------------------------------------------

const DELIVERY_STATUSES: &[&str] = &[
    "pending",
    "held",
    "digested",
    "throttled",
    "delivered",
    "dead_lettered",
    "cancelled",
];

#[derive(Debug, Default, Deserialize)]
struct DeliveriesQuery {
    status: Option<String>,
    cursor: Option<String>,
}

async fn deliveries(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<DeliveriesQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/notify/deliveries")
        .await?;
    let tenant = access.tenant()?;
    let status = query.status.clone().filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if !DELIVERY_STATUSES.contains(&s.as_str()) {
            return Err(Problem::bad_request(format!("{s:?} is not a delivery status")).into());
        }
    }
    let filter = stella_store::repo::DeliveryFilter {
        status: status.clone(),
        channel_id: None,
        rule_id: None,
        event_kind: None,
        since: None,
        until: None,
    };
    let page = ctx
        .store
        .tenant(tenant)
        .notify()
        .deliveries(
            &filter,
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            50,
        )
        .await?;
    let items: Vec<v1::notify::DeliveryBody> = page.items.into_iter().map(Into::into).collect();
    let status_text = status.unwrap_or_default();
    let body = html! {
        form.filters method="get" action={ (PREFIX) "/notifications" } {
            label for="f-status" { "Status" }
            select id="f-status" name="status" {
                option value="" { "any" }
                @for s in DELIVERY_STATUSES { option value=(s) selected[status_text == *s] { (s) } }
            }
            button type="submit" { "Filter" }
        }
        table data-testid="deliveries" {
            thead { tr {
                th scope="col" { "Delivery" } th scope="col" { "Event" } th scope="col" { "Channel" }
                th scope="col" { "Mode" } th scope="col" { "Status" } th scope="col" { "Created" }
            } }
            tbody {
                @for d in &items {
                    tr {
                        td { a href={ (PREFIX) "/notifications/" (view::encode(&d.id)) } { code { (d.id) } } }
                        td { (d.event_kind) }
                        td { (d.channel_type) " " code { (d.channel_id) } }
                        td { (d.mode) }
                        td { (badge(&d.status)) }
                        td { (time(d.created_at)) }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No deliveries." } }
        (view::pager(&format!("{PREFIX}/notifications"), &[("status", &status_text)], page.next_cursor.as_deref()))
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Notifications,
        "Notification deliveries",
        None,
        body,
    )
    .await)
}

async fn delivery(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/notify/deliveries/{id}")
        .await?;
    let tenant = access.tenant()?;
    let repo = ctx.store.tenant(tenant);
    let repo = repo.notify();
    let d = repo.delivery(&id).await?;
    let attempts = repo.attempts(&d.id).await?;
    let d = v1::notify::DeliveryBody::from(d);
    let attempts: Vec<v1::notify::AttemptBody> = attempts.into_iter().map(Into::into).collect();
    let body = html! {
        dl.facts {
            dt { "Id" } dd { code { (d.id) } }
            dt { "Event" } dd { (d.event_kind) " " code { (d.event_id) } }
            dt { "Channel" } dd { (d.channel_type) " " code { (d.channel_id) } }
            @if let Some(rule) = &d.rule_id { dt { "Rule" } dd { code { (rule) } } }
            dt { "Mode" } dd { (d.mode) }
            dt { "Status" } dd { (badge(&d.status)) }
            dt { "Created" } dd { (time(d.created_at)) }
            dt { "Updated" } dd { (time(d.updated_at)) }
        }
        h2 { "Attempts" }
        @if attempts.is_empty() { p.muted { "Not sent yet." } } @else {
            table data-testid="attempts" {
                thead { tr {
                    th scope="col" class="num" { "#" } th scope="col" { "Started" } th scope="col" { "Outcome" }
                    th scope="col" class="num" { "HTTP" } th scope="col" class="num" { "Latency" } th scope="col" { "Error" }
                } }
                tbody {
                    @for a in &attempts {
                        tr {
                            td.num { (a.attempt) }
                            td { (time(a.started_at)) }
                            td { (badge(&a.outcome)) }
                            td.num { @if let Some(code) = a.status_code { (code) } }
                            td.num { @if let Some(ms) = a.latency_ms { (ms) " ms" } }
                            td.error { @if let Some(e) = &a.error { (e) } }
                        }
                    }
                }
            }
        }
        @if let Some(detail) = &d.detail { h2 { "Detail" } (view::json_block(detail)) }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Notifications,
        "Notification delivery",
        None,
        body,
    )
    .await)
}

// ---------------------------------------------------------------------------------------
// Rollouts (administrators: they span tenants)
// ---------------------------------------------------------------------------------------

async fn rollouts(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    viewer.may(&ctx, Method::GET, "/api/v1/rollouts").await?;
    let page = ctx
        .store
        .rollouts()
        .list(query.cursor.as_deref().filter(|c| !c.is_empty()), 50)
        .await?;
    let mut items = Vec::new();
    for record in page.items {
        let tenants = ctx.store.rollouts().tenants(&record.id, None).await?;
        items.push(v1::rollouts::view(record, tenants, None, None));
    }
    let body = html! {
        table data-testid="rollouts" {
            thead { tr {
                th scope="col" { "Rollout" } th scope="col" { "Pack" } th scope="col" { "State" }
                th scope="col" { "Wave" } th scope="col" { "Phase" } th scope="col" { "Created" }
            } }
            tbody {
                @for r in &items {
                    tr {
                        td { a href={ (PREFIX) "/rollouts/" (view::encode(&r.id)) } { code { (r.id) } } }
                        td { (r.pack) "@" (r.version) }
                        td { (badge(&r.state)) }
                        td { (r.wave + 1) " of " (r.waves.len()) }
                        td { (r.phase) }
                        td { (time(r.created_at)) }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No rollouts." } }
        (view::pager(&format!("{PREFIX}/rollouts"), &[], page.next_cursor.as_deref()))
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Rollouts,
        "Rollouts",
        query.notice.as_deref(),
        body,
    )
    .await)
}

async fn rollout(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> PageResult<HttpResponse> {
    viewer.may(&ctx, Method::GET, "/api/v1/rollouts").await?;
    let id = v1::not_found_unless(stella_store::RolloutId::parse(&id), "rollout", &id)?;
    let rollouts = ctx.store.rollouts();
    let record = rollouts.get(&id).await?;
    let tenants = rollouts.tenants(&id, None).await?;
    let transitions = rollouts.transitions(&id).await?;
    let r = v1::rollouts::view(record, tenants, Some(transitions), None);
    let can_act = viewer.can(&ctx, Method::POST, "/api/v1/rollouts/{id}/pause");
    let actions: &[(&str, &str)] = match r.state.as_str() {
        "running" => &[("pause", "Pause"), ("abort", "Abort and roll back")],
        "paused" => &[("resume", "Resume"), ("abort", "Abort and roll back")],
        _ => &[],
    };
    let body = html! {
        dl.facts {
            dt { "Pack" } dd { (r.pack) "@" (r.version) }
            dt { "State" } dd data-testid="rollout-state" { (badge(&r.state)) }
            dt { "Wave" } dd { (r.wave + 1) " of " (r.waves.len()) " · phase " (r.phase) }
            dt { "Next step" } dd { (time(r.next_at)) }
            dt { "Created" } dd { (time(r.created_at)) " by " (r.created_by) }
        }
        @if can_act && !actions.is_empty() {
            form.inline method="post" action={ (PREFIX) "/rollouts/" (view::encode(&r.id)) "/" (actions[0].0) } {
                (csrf(&viewer))
                label for="rollout-reason" { "Reason" }
                input id="rollout-reason" name="reason" type="text" required minlength="3"
                    placeholder="why (kept with the move)";
                @for (i, (action, label)) in actions.iter().enumerate() {
                    @if i == 0 {
                        button type="submit" { (label) }
                    } @else {
                        button type="submit" class="danger" formaction={ (PREFIX) "/rollouts/" (view::encode(&r.id)) "/" (action) } { (label) }
                    }
                }
            }
        }
        h2 { "Why it is here" }
        (view::json_block(&r.reason))
        h2 { "Waves" }
        table data-testid="waves" {
            thead { tr {
                th scope="col" class="num" { "#" } th scope="col" { "Wave" } th scope="col" { "State" }
                th scope="col" { "Tenants" } th scope="col" { "Gate" } th scope="col" { "Shadow summary" }
            } }
            tbody {
                @for w in &r.waves {
                    tr {
                        td.num { (w.index + 1) }
                        td { (w.name) }
                        td { (badge(&w.state)) }
                        td { @for t in &w.tenants { code { (t.tenant) } " " } }
                        td { (compact(&w.gate)) }
                        td { (compact(&w.summary)) }
                    }
                }
            }
        }
        @if let Some(transitions) = &r.transitions {
            h2 { "History" }
            table data-testid="transitions" {
                thead { tr {
                    th scope="col" { "Move" } th scope="col" class="num" { "Wave" } th scope="col" { "By" }
                    th scope="col" { "Reason" } th scope="col" { "At" }
                } }
                tbody {
                    @for t in transitions {
                        tr {
                            td { (t.action) }
                            td.num { @if let Some(w) = t.wave { (w + 1) } }
                            td { (t.actor) }
                            td { (t.reason) }
                            td { (time(t.at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Rollouts,
        &format!("Rollout of {}@{}", r.pack, r.version),
        query.notice.as_deref(),
        body,
    )
    .await)
}

async fn rollout_action(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
) -> PageResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let operation = match action.as_str() {
        "pause" => "/api/v1/rollouts/{id}/pause",
        "resume" => "/api/v1/rollouts/{id}/resume",
        "abort" => "/api/v1/rollouts/{id}/abort",
        _ => return Err(Problem::not_found(format!("no action {action:?} on rollouts")).into()),
    };
    let access = viewer
        .act(&ctx, &req, form.csrf.as_deref(), Method::POST, operation)
        .await?;
    let reason = reason(&form)?;
    let body = v1::rollouts::RolloutAction {
        reason: reason.clone(),
        gate: None,
    };
    let result = v1::rollouts::act(&ctx, &access.caller, &id, &action, body).await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::OK);
    access
        .audit(
            &ctx,
            format!("/api/v1/rollouts/{id}/{action}"),
            status,
            Some(&reason),
        )
        .await;
    let r = result?.into_inner();
    Ok(see_other(&format!(
        "{PREFIX}/rollouts/{}?notice={}",
        view::encode(&r.id),
        view::encode(&format!(
            "Rollout {}: {action} done; it is {} now.",
            r.id, r.state
        ))
    )))
}

// ---------------------------------------------------------------------------------------
// Supervision tree
// ---------------------------------------------------------------------------------------

fn actor_tree(node: &ActorSnapshot) -> Markup {
    html! {
        li {
            span.actor {
                strong { (node.name) } " " span.muted { (node.kind) }
                " · queue " (node.queue_depth) " · in flight " (node.in_flight) " · restarts " (node.restarts)
                @if node.quarantined { " " (badge("quarantined")) }
            }
            @if let Some(err) = &node.last_error { br; span.error { (err) } }
            @if !node.children.is_empty() {
                ul { @for child in &node.children { (actor_tree(child)) } }
            }
        }
    }
}

async fn system(ctx: web::Data<Context>, viewer: Viewer) -> PageResult<HttpResponse> {
    viewer
        .may(&ctx, Method::GET, "/api/v1/system/actors")
        .await?;
    let body = match &ctx.observer {
        None => html! { p.muted { "This process runs no actors." } },
        Some(observer) => {
            let root = observer.snapshot().await;
            html! { ul.tree data-testid="tree" { (actor_tree(&root)) } }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::System,
        "Supervision tree",
        None,
        body,
    )
    .await)
}
