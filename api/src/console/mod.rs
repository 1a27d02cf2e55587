//! The web console at `/console`: server-rendered HTML (maud) over the same store calls,
//! scopes and tenancy wall as `/api/v1`, with a small hand-written script for live
//! progress (`EventSource` on the same streams) and local times. Nothing to build or
//! install: the CSS and script are compiled into the binary.
//!
//! Access: the operator signs in with an API token; the session (see [`session`]) keeps
//! the token on the server and authenticates it on every request through
//! [`crate::auth::authenticate`], exactly as a bearer request is. Each page and action
//! names the API operation it mirrors (`GET /api/v1/jobs`, `POST
//! /api/v1/dead-letters/{role}/{id}/replay`, ...): its scope is read from the same access
//! table the API enforces ([`crate::auth::check_scope`]), the tenant is resolved as for an
//! `X-Stella-Tenant` header ([`crate::auth::caller_on`]), the tenant's request rate is
//! the one its API calls share, and an action is audited under
//! that operation's id, with `via: console` and the reason the operator gave.
//!
//! Every state-changing form carries the session's CSRF token (compared in constant
//! time); a POST without it, or from another origin, is refused with 403.
//!
//! Layout:
//! - `session`: sessions, cookie, CSRF token;
//! - `view`: the page frame, navigation, times, progress bars and the error page;
//! - `pages`: sign-in, overview, jobs, scans, dead letters, schedules, exports, the
//!   supervision tree.

mod pages;
pub mod session;
mod view;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use serde_json::json;
use stella_store::repo::{AuditEntry, TokenRecord};
use stella_store::TenantId;

use crate::auth::{Caller, Rule};
use crate::problem::Problem;
use crate::Context;

pub use session::Sessions;

/// Where the console lives.
pub const PREFIX: &str = "/console";

/// Mounts the console's routes under [`PREFIX`].
pub(crate) fn mount(cfg: &mut web::ServiceConfig) {
    pages::mount(cfg);
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub(crate) enum PageError {
    /// No session, or its token no longer authenticates: to the sign-in page.
    SignIn,
    /// The API's answer to the same request, shown as a page.
    Problem(Problem),
    /// An administrator has not chosen a tenant yet.
    NoTenant,
}

impl From<Problem> for PageError {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem)
    }
}

impl From<stella_store::StoreError> for PageError {
    fn from(err: stella_store::StoreError) -> Self {
        Self::Problem(err.into())
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SignIn => f.write_str("sign in"),
            Self::Problem(p) => write!(f, "{p}"),
            Self::NoTenant => f.write_str("choose a tenant"),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn => StatusCode::SEE_OTHER,
            Self::Problem(p) => p.status,
            Self::NoTenant => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("{PREFIX}/sign-in")))
                .finish(),
            Self::Problem(p) => {
                let mut response = view::error_page(p.status, p.kind, &p.detail);
                if let Some(seconds) = p.retry_after {
                    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
                        response.headers_mut().insert(header::RETRY_AFTER, value);
                    }
                }
                response
            }
            Self::NoTenant => view::error_page(
                StatusCode::BAD_REQUEST,
                "choose a tenant",
                "An administrator token acts on a tenant: choose one in the tenant menu at \
                 the top of the page.",
            ),
        }
    }
}

pub(crate) type PageResult<T> = Result<T, PageError>;

/// The signed-in operator of a request.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    session_id: String,
    session: session::Session,
    pub(crate) token: TokenRecord,
}

impl FromRequest for Viewer {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let ctx = req
                .app_data::<web::Data<Context>>()
                .cloned()
                .ok_or_else(|| PageError::Problem(Problem::internal("the context is missing")))?;
            let id = session_id(&req).ok_or(PageError::SignIn)?;
            let session = ctx
                .console
                .get(&id, Instant::now())
                .ok_or(PageError::SignIn)?;
            match crate::auth::authenticate(&ctx, &session.secret).await {
                Ok(token) => Ok(Self {
                    session_id: id,
                    session,
                    token,
                }),
                Err(problem) if problem.status == StatusCode::UNAUTHORIZED => {
                    // Revoked, expired, or its tenant disabled: the session ends with it.
                    ctx.console.close(&id);
                    Err(PageError::SignIn)
                }
                Err(problem) => Err(problem.into()),
            }
        })
    }
}

/// What a page or action may do: the caller as the API would see it, and the operation
/// it mirrors.
#[derive(Debug)]
pub(crate) struct Access {
    pub(crate) caller: Caller,
    operation: String,
    /// The mirrored operation's method, as its audit entry names it.
    method: Method,
}

impl Access {
    /// The tenant the caller acts on.
    pub(crate) fn tenant(&self) -> PageResult<&TenantId> {
        self.caller.tenant.as_ref().ok_or(PageError::NoTenant)
    }

    /// Records an action in the audit log as the API records the operation it mirrors.
    pub(crate) async fn audit(
        &self,
        ctx: &Context,
        target: String,
        status: StatusCode,
        reason: Option<&str>,
    ) {
        let entry = AuditEntry {
            tenant: self.caller.tenant.clone(),
            actor: self.caller.actor(),
            action: self.operation.clone(),
            target,
            request_id: crate::request_id::current(),
            details: json!({
                "method": self.method.as_str(),
                "status": status.as_u16(),
                "via": "console",
                "reason": reason,
            }),
        };
        if let Err(err) = ctx.store.audit().record(&entry, Utc::now()).await {
            tracing::error!(error = %err, action = %entry.action, "could not write the audit log");
        }
    }
}

impl Viewer {
    pub(crate) fn is_admin(&self) -> bool {
        self.token.tenant.is_none() && self.token.scopes.iter().any(|s| s == crate::auth::ADMIN)
    }

    pub(crate) fn csrf(&self) -> &str {
        &self.session.csrf
    }

    pub(crate) fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The tenant this session looks at, if any.
    pub(crate) fn tenant(&self) -> Option<&TenantId> {
        self.token.tenant.as_ref().or(self.session.tenant.as_ref())
    }

    /// Whether the token may use the API operation `method path` (its scope only).
    pub(crate) fn can(&self, ctx: &Context, method: Method, path: &str) -> bool {
        match ctx.access.scope_of(path, &method) {
            Some((_, Rule::Scope(scope))) => crate::auth::check_scope(&self.token, scope).is_ok(),
            Some((_, Rule::Public)) => true,
            _ => false,
        }
    }

    /// The access of a page that shows what `method path` (an `/api/v1` operation, as
    /// the OpenAPI document names it) returns: its scope, then the tenant.
    pub(crate) async fn may(
        &self,
        ctx: &Context,
        method: Method,
        path: &str,
    ) -> PageResult<Access> {
        let (operation, rule) = ctx.access.scope_of(path, &method).ok_or_else(|| {
            Problem::internal(format!(
                "the console mirrors {method} {path}, which is not documented"
            ))
        })?;
        match rule {
            Rule::Scope(scope) => crate::auth::check_scope(&self.token, scope)?,
            Rule::Public => {}
            Rule::Undeclared => {
                return Err(Problem::internal("this route declares no access rule").into())
            }
        }
        let operation = operation.to_owned();
        // An operation over every tenant (rollouts, the actor tree) acts on none, as the
        // API's does: the tenant chosen in the menu neither owns its audit entry nor pays
        // for it in its request rate.
        let global = matches!(rule, Rule::Scope(scope) if crate::auth::GLOBAL_SCOPES.contains(&scope.as_str()));
        let tenant = if global {
            None
        } else {
            self.session.tenant.clone()
        };
        let caller = crate::auth::caller_on(ctx, self.token.clone(), tenant).await?;
        // The tenant's request rate, shared with its API calls.
        if let Some(tenant) = &caller.tenant {
            if let Err(seconds) = ctx.limiter.check(tenant.as_str(), Instant::now()) {
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    format!(
                        "tenant {tenant} is over its request rate; retry in {seconds} s \
                         (api.rate_limit_per_second)"
                    ),
                );
                problem.retry_after = Some(seconds);
                return Err(problem.into());
            }
        }
        Ok(Access {
            caller,
            operation,
            method,
        })
    }

    /// [`Self::may`] for a state-changing form: first the form's CSRF token and origin.
    pub(crate) async fn act(
        &self,
        ctx: &Context,
        req: &HttpRequest,
        csrf: Option<&str>,
        method: Method,
        path: &str,
    ) -> PageResult<Access> {
        self.check_form(req, csrf)?;
        self.may(ctx, method, path).await
    }

    /// Refuses a form without this session's CSRF token or posted from another origin.
    pub(crate) fn check_form(&self, req: &HttpRequest, csrf: Option<&str>) -> PageResult<()> {
        same_origin(req)?;
        match csrf {
            Some(token) if session::same(token, &self.session.csrf) => Ok(()),
            _ => Err(Problem::forbidden(
                "this form did not carry the session's CSRF token: it was not sent from a \
                 console page of this session; reload the page and try again",
            )
            .into()),
        }
    }
}

/// A browser sends `Origin` with every POST; one naming another host is a cross-site
/// form (SameSite=Strict already keeps the cookie off it: this is a second wall).
fn same_origin(req: &HttpRequest) -> PageResult<()> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let host = req.connection_info().host().to_owned();
    let origin = origin.to_str().unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if origin_host.eq_ignore_ascii_case(&host) {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "this form was posted from another origin ({origin}); the console accepts forms \
             from its own pages only"
        ))
        .into())
    }
}

/// A sign-in form must say it came from the console's own page: `Origin` naming this host,
/// or (a browser that leaves `Origin` out) `Sec-Fetch-Site: same-origin`. Without either a
/// page elsewhere could sign a visitor in with the attacker's token (login CSRF), and the
/// visitor's uploads would then land in the attacker's tenant.
fn sign_in_origin(req: &HttpRequest) -> PageResult<()> {
    if req.headers().contains_key(header::ORIGIN) {
        return same_origin(req);
    }
    let site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    match site {
        Some("same-origin") => Ok(()),
        _ => Err(Problem::forbidden(
            "sign in from the console's own sign-in page: this form did not say where it \
             came from (no Origin header)",
        )
        .into()),
    }
}

/// The session cookie's value in the request, if any.
fn session_id(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == session::COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value of the session cookie (`Secure` when the console is reached
/// over HTTPS); an empty `value` removes it.
pub(crate) fn session_cookie(req: &HttpRequest, value: &str) -> (header::HeaderName, String) {
    let mut cookie = format!(
        "{}={value}; Path={PREFIX}; HttpOnly; SameSite=Strict",
        session::COOKIE
    );
    if value.is_empty() {
        cookie.push_str("; Max-Age=0");
    }
    if req.connection_info().scheme() == "https" {
        cookie.push_str("; Secure");
    }
    (header::SET_COOKIE, cookie)
}
