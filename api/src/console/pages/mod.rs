//! The console's pages and actions. Each names the `/api/v1` operation it mirrors (its
//! scope and audit name) and reads or changes the store through the same calls as that
//! operation's handler.
//!
//! Layout: this module holds the routes, sign-in and the frame, and what the pages share
//! (`compact`, the reason form); one module per section: `overview`, `jobs` (with bulk
//! cancel), `scans` (with findings, traces and the live list), `dead_letters`,
//! `schedules` (with runs), `exports`, `notify`, `rollouts`, `system`. Each section's
//! module imports this one's names (`use super::*`).

mod dead_letters;
mod exports;
mod jobs;
mod notify;
mod overview;
mod rollouts;
mod scans;
mod schedules;
mod system;

use dead_letters::*;
use exports::*;
use jobs::*;
use notify::*;
use overview::*;
use rollouts::*;
use scans::*;
use schedules::*;
use system::*;

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

/// A form body of at most `limit` bytes; a bad one is a 400 page.
fn form_config(limit: usize) -> web::FormConfig {
    web::FormConfig::default()
        .limit(limit)
        .error_handler(|err, _| {
            PageError::Problem(Problem::bad_request(format!(
                "the form is not valid: {err}"
            )))
            .into()
        })
}

pub(super) fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            // Forms are a token, a reason or a CSRF token: small. Only a pasted SBOM is
            // large, and only its route reads that much (before any check, a form is read
            // whole, so a large limit everywhere would let anyone pin memory at sign-in).
            .app_data(form_config(64 * 1024))
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
            .service(
                web::resource("/scans")
                    .app_data(form_config(16 * 1024 * 1024))
                    .route(web::get().to(scans))
                    .route(web::post().to(submit_scan)),
            )
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
            .route("/notifications/{id}/redeliver", web::post().to(redeliver))
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
    super::sign_in_origin(&req)?;
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
// Shared by the pages
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
    notice: Option<String>,
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
