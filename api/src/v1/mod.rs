//! `/api/v1`: every resource route, each declaring its access rule in its
//! `#[utoipa::path]` (`security(("bearer" = [scope]))`), which `auth` enforces.
//!
//! Layout: one module per resource; shared here: list pages and the problem responses
//! every route documents.

pub mod advisories;
pub mod audit;
pub mod dead_letters;
pub mod events;
pub mod exceptions;
pub mod exports;
pub mod images;
pub mod jobs;
pub mod keys;
pub mod notify;
pub mod policy;
pub mod rollouts;
pub mod scans;
pub mod schedules;
pub mod streams;
pub mod system;
pub mod tenants;
pub mod tokens;
pub mod vex;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::problem::{Problem, ProblemBody};

/// Mounts every `/api/v1` route (relative to the scope).
pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(advisories::import)
        .service(tenants::create)
        .service(tenants::list)
        .service(tenants::get)
        .service(tenants::update)
        .service(tenants::disable)
        .service(tenants::enable)
        .service(tokens::create)
        .service(tokens::list)
        .service(tokens::get)
        .service(tokens::revoke)
        .service(jobs::submit)
        .service(jobs::list)
        .service(jobs::get)
        .service(jobs::cancel)
        .service(dead_letters::list)
        .service(dead_letters::replay)
        .service(dead_letters::discard)
        .service(keys::list)
        .service(system::actors)
        .service(audit::list)
        .service(streams::job_changes)
        .service(streams::scan_changes)
        .service(streams::export_changes)
        .service(streams::run_changes)
        .service(streams::rollout_changes)
        .service(streams::tenant_events)
        .service(scans::upload)
        .service(images::upload)
        .service(images::list)
        .service(images::get)
        .service(scans::submit)
        .service(scans::list)
        .service(scans::get)
        .service(scans::findings)
        .service(scans::attestation)
        .service(vex::import)
        .service(exports::put)
        .service(exports::list_profiles)
        .service(exports::get_profile)
        .service(exports::revisions)
        .service(exports::create)
        .service(exports::list)
        .service(exports::get)
        .service(exports::cancel)
        .service(exports::manifest)
        .service(exports::provenance)
        .service(exports::download)
        .service(policy::get)
        .service(policy::create)
        .service(policy::versions)
        .service(policy::get_version)
        .service(policy::submit)
        .service(policy::request_changes)
        .service(policy::approve)
        .service(policy::activate)
        .service(policy::archive)
        .service(policy::diff)
        .service(rollouts::put_pack)
        .service(rollouts::list_packs)
        .service(rollouts::pack_versions)
        .service(rollouts::create)
        .service(rollouts::list)
        .service(rollouts::get)
        .service(rollouts::diff)
        .service(rollouts::pause)
        .service(rollouts::resume)
        .service(rollouts::abort)
        .service(exceptions::request)
        .service(exceptions::list)
        .service(exceptions::get)
        .service(exceptions::approve)
        .service(exceptions::reject)
        .service(exceptions::revoke)
        .service(events::list)
        .service(schedules::put_target)
        .service(schedules::list_targets)
        .service(schedules::get_target)
        .service(schedules::delete_target)
        .service(schedules::create_schedule)
        .service(schedules::list_schedules)
        .service(schedules::get_schedule)
        .service(schedules::update_schedule)
        .service(schedules::delete_schedule)
        .service(schedules::pause_schedule)
        .service(schedules::resume_schedule)
        .service(schedules::run_schedule)
        .service(schedules::list_runs)
        .service(schedules::get_run)
        .service(notify::put_channel)
        .service(notify::list_channels)
        .service(notify::get_channel)
        .service(notify::delete_channel)
        .service(notify::rotate_secret)
        .service(notify::test_channel)
        .service(notify::preview)
        .service(notify::put_rule)
        .service(notify::list_rules)
        .service(notify::get_rule)
        .service(notify::delete_rule)
        .service(notify::put_template)
        .service(notify::list_templates)
        .service(notify::delete_template)
        .service(notify::list_deliveries)
        .service(notify::get_delivery)
        .service(notify::redeliver);
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(50)
    }

    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// One page of a list; `next_cursor` is absent on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn from_store<S>(page: stella_store::repo::Page<S>, f: impl Fn(S) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(f).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// A path id that does not parse names nothing that exists: 404, like another tenant's.
pub fn not_found_unless<T, E>(parsed: Result<T, E>, what: &str, raw: &str) -> Result<T, Problem> {
    parsed.map_err(|_| Problem::not_found(format!("{what} {raw} not found")))
}

/// The tenant's job `raw` if it is of kind `K` (a scan, an export): any other id, kind or
/// tenant is the same 404, naming it as `what`.
pub(crate) async fn job_of_kind<K: stella_supervisor::Kind>(
    ctx: &crate::Context,
    tenant: &stella_store::TenantId,
    raw: &str,
    what: &str,
) -> Result<stella_store::repo::Job, Problem> {
    let id = not_found_unless(stella_store::JobId::parse(raw), what, raw)?;
    match ctx.store.tenant(tenant).jobs().get(&id).await {
        Ok(job) if job.kind == K::NAME => Ok(job),
        _ => Err(Problem::not_found(format!("{what} {raw} not found"))),
    }
}

/// The error responses every authenticated route can give.
#[derive(Debug, utoipa::IntoResponses)]
pub enum Problems {
    /// Malformed input; `location` names the field.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(ProblemBody),
    /// No valid token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemBody),
    /// The token lacks the scope.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemBody),
    /// No such resource in this tenant.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemBody),
    /// The tenant sent too many requests, or this address failed authentication too
    /// often; see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(ProblemBody),
    /// A backend (database, object store, mailbox) cannot serve the request now; nothing
    /// was stored. Retry later.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemBody),
}

/// The error responses of routes that take a body, on top of [`Problems`].
#[derive(Debug, utoipa::IntoResponses)]
pub enum BodyProblems {
    /// The state does not allow it, or the id is taken.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemBody),
    /// The body did not arrive within `api.body_read_timeout_secs`.
    #[response(status = 408, content_type = "application/problem+json")]
    Timeout(ProblemBody),
    /// The body is over `api.max_body_bytes` (`payload-too-large`), or an SBOM lists more
    /// components than `api.max_sbom_components` (`sbom-too-large`).
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(ProblemBody),
    /// The body is not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(ProblemBody),
}

/// Who makes a lifecycle change: the caller's identity (its token's name, which
/// separation of duties compares) and the caller as the audit log names it (`actor`).
pub(crate) fn acting<'a>(
    caller: &'a crate::auth::Caller,
    actor: &'a str,
) -> stella_store::repo::Actor<'a> {
    stella_store::repo::Actor {
        identity: &caller.token.name,
        actor,
    }
}

/// A store refusal as a problem; an invalid input's message starts with the field it
/// concerns (`reason: …`, `expires_at: …`), which becomes the problem's location.
pub(crate) fn refused(err: stella_store::StoreError) -> crate::problem::Problem {
    match &err {
        stella_store::StoreError::Invalid(message) => {
            let field = message.split(':').next().unwrap_or_default().to_owned();
            crate::problem::Problem::from(err).at(field)
        }
        _ => crate::problem::Problem::from(err),
    }
}
