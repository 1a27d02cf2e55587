//! Authentication, scopes, tenants, rate limits and the audit log: enforced once, here,
//! for every route under `/api/v1`.
//!
//! The rule for each route is read from the OpenAPI document generated from the handlers
//! themselves (`security(("bearer" = ["jobs:read"]))` on the handler, or `security(())`
//! for a public route), so what the document says is what the server enforces. A route the document does not describe is
//! refused (fail closed): a new handler cannot be served without an access rule.
//!
//! Per request: `Authorization: Bearer <secret>` (missing or unknown → 401); the
//! operation's scope (`admin` satisfies every scope; missing → 403); the tenant (a tenant
//! token acts on its own tenant, an administrator names one with `X-Stella-Tenant`;
//! naming an unknown or another tenant → 404); the tenant's request rate (→ 429 with
//! `Retry-After`; administration outside any tenant is not limited). Every mutating call that got past authentication is audited with its
//! outcome.
//!
//! Failed authentications are limited per client address ([`AuthFailures`]): once an
//! address has used up its failures, every call from it that needs a token is `429`
//! until the bucket refills, so guessing tokens is slow. Failures are logged in
//! aggregate, one line per interval with a count, not one line per guess.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest, ResponseError};
use chrono::Utc;
use serde_json::{json, Value};
use stella_store::repo::{AuditEntry, TokenRecord};
use stella_store::TenantId;

use crate::problem::Problem;
use crate::request_id::{QuietResponse, RequestId};
use crate::Context;

/// The header an administrator token names its tenant with.
pub const TENANT_HEADER: &str = "x-stella-tenant";

/// The scope that satisfies every other and is needed for tenants, tokens, the audit log
/// and the system routes.
pub const ADMIN: &str = "admin";

/// Every scope a token can carry.
pub const SCOPES: &[&str] = &[
    ADMIN,
    "scans:read",
    "scans:write",
    "advisories:write",
    "vex:write",
    "policy:read",
    "policy:author",
    "policy:review",
    "policy:approve",
    "policy:operate",
    "schedules:read",
    "schedules:write",
    "exports:read",
    "exports:write",
    "notify:read",
    "notify:write",
    "jobs:read",
    "jobs:write",
];

/// Scopes over data every tenant shares (advisories are global: every tenant's scans
/// match against them). Only administrator tokens (no tenant) carry them, so no tenant
/// can change what another tenant's scan reads.
pub const GLOBAL_SCOPES: &[&str] = &[ADMIN, "advisories:write"];

/// What an operation requires, from the OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Declared public with an empty requirement: `security(())`.
    Public,
    Scope(String),
    /// No `security` at all: a forgotten rule. Refused, never served.
    Undeclared,
}

#[derive(Debug, Clone)]
struct Operation {
    id: String,
    rule: Rule,
}

/// Reads one operation's `security`, strictly: `[{}]` is public, `[{"bearer": [scope]}]`
/// needs that scope, anything else (absent, other schemes, several scopes or
/// requirements) is undeclared and refused.
fn rule_of(security: Option<&Value>) -> Rule {
    let Some(requirements) = security.and_then(Value::as_array) else {
        return Rule::Undeclared;
    };
    let [requirement] = requirements.as_slice() else {
        return Rule::Undeclared;
    };
    let Some(requirement) = requirement.as_object() else {
        return Rule::Undeclared;
    };
    if requirement.is_empty() {
        return Rule::Public;
    }
    match (
        requirement.len(),
        requirement.get("bearer").and_then(Value::as_array),
    ) {
        (1, Some(scopes)) => match scopes.as_slice() {
            [Value::String(scope)] if SCOPES.contains(&scope.as_str()) => {
                Rule::Scope(scope.clone())
            }
            _ => Rule::Undeclared,
        },
        _ => Rule::Undeclared,
    }
}

/// The access rule of every documented operation, by path template and method.
#[derive(Debug, Default)]
pub struct AccessTable {
    operations: HashMap<(String, Method), Operation>,
}

impl AccessTable {
    /// Reads the rules from an OpenAPI document (as JSON).
    pub fn from_openapi(doc: &Value) -> Self {
        let mut operations = HashMap::new();
        let paths = doc.get("paths").and_then(Value::as_object);
        for (path, item) in paths.into_iter().flatten() {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                let id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .unwrap_or("unnamed")
                    .to_owned();
                let rule = rule_of(op.get("security"));
                operations.insert((path.clone(), method), Operation { id, rule });
            }
        }
        Self { operations }
    }

    pub fn rule(&self, path: &str, method: &Method) -> Option<&Rule> {
        self.operations
            .get(&(path.to_owned(), method.clone()))
            .map(|op| &op.rule)
    }

    /// The operation id and scope of a documented operation: what the console checks
    /// and audits for the page or action that does what this operation does.
    pub(crate) fn scope_of(&self, path: &str, method: &Method) -> Option<(&str, &Rule)> {
        self.operation(path, method)
            .map(|op| (op.id.as_str(), &op.rule))
    }

    /// The operation of a route template. A template's parameter may carry a pattern
    /// (`{name:.+}`: a file name with slashes); the OpenAPI document names it `{name}`.
    fn operation(&self, path: &str, method: &Method) -> Option<&Operation> {
        self.operations
            .get(&(openapi_template(path), method.clone()))
    }
}

/// `/a/{id}/files/{name:.+}` → `/a/{id}/files/{name}`: each `{param:pattern}` segment
/// loses its pattern.
fn openapi_template(path: &str) -> String {
    if !path.contains(':') {
        return path.to_owned(); // every route but a few: as cheap as before
    }
    path.split('/')
        .map(|segment| match segment.split_once(':') {
            Some((param, _)) if segment.starts_with('{') && segment.ends_with('}') => {
                format!("{param}}}")
            }
            _ => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The authenticated caller of a request, for handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: TokenRecord,
    /// The tenant the request acts on: the token's own, or the one an administrator named.
    pub tenant: Option<TenantId>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.token.tenant.is_none() && self.token.scopes.iter().any(|s| s == ADMIN)
    }

    /// The tenant this request acts on, or a 400 telling an administrator how to name one.
    pub fn tenant(&self) -> Result<&TenantId, Problem> {
        self.tenant.as_ref().ok_or_else(|| {
            Problem::bad_request(
                "an administrator token acts on a tenant named in the X-Stella-Tenant header",
            )
        })
    }

    /// Whether the token carries `scope` (an administrator token carries every scope).
    /// A tenant token never carries a [global scope](GLOBAL_SCOPES), even if its row
    /// says so (rows written before the rule).
    pub fn has_scope(&self, scope: &str) -> bool {
        if GLOBAL_SCOPES.contains(&scope) && self.token.tenant.is_some() {
            return false;
        }
        self.token.scopes.iter().any(|s| s == scope || s == ADMIN)
    }

    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        format!("token:{} ({})", self.token.id, self.token.name)
    }
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = std::future::Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| Problem::internal("this route is not behind authentication")),
        )
    }
}

/// Token buckets per tenant (or per administrator token outside any tenant).
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before full ones (which hold no information) are dropped: a flood of
/// distinct keys (addresses) cannot grow the map without bound.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    pub fn new(per_second: u64, burst: u64) -> Self {
        Self::with_rate(per_second as f64, burst)
    }

    /// A limiter refilling `per_second` (may be a fraction) up to `burst`.
    pub fn with_rate(per_second: f64, burst: u64) -> Self {
        Self {
            per_second,
            burst: burst.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket, or says how many seconds until one is free.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        self.bucket(key, now, true)
    }

    /// Whether `key`'s bucket holds a request, without taking it.
    pub fn peek(&self, key: &str, now: Instant) -> Result<(), u64> {
        self.bucket(key, now, false)
    }

    fn bucket(&self, key: &str, now: Instant, take: bool) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, last)| {
                *tokens + now.saturating_duration_since(*last).as_secs_f64() * per_second < burst
            });
        }
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            if take {
                *tokens -= 1.0;
            }
            Ok(())
        } else {
            let wait = (1.0 - *tokens) / self.per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// How often failed authentications are summarised in the log.
pub const AUTH_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Failed authentications: a token bucket per client address, and a running count that
/// is logged once per [`AUTH_FAILURE_LOG_INTERVAL`].
#[derive(Debug)]
pub struct AuthFailures {
    limiter: RateLimiter,
    window: Mutex<FailureWindow>,
}

#[derive(Debug, Default)]
struct FailureWindow {
    failures: u64,
    addresses: HashSet<IpAddr>,
}

/// Failed authentications since the last summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureSummary {
    pub failures: u64,
    pub addresses: usize,
}

impl AuthFailures {
    /// `per_minute` failures per address (0: no limit), `burst` at once.
    pub fn new(per_minute: u64, burst: u64) -> Self {
        Self {
            limiter: RateLimiter::with_rate(per_minute as f64 / 60.0, burst),
            window: Mutex::new(FailureWindow::default()),
        }
    }

    /// Whether `address` may try to authenticate now; seconds to wait otherwise.
    pub fn admit(&self, address: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        match address {
            Some(address) => self.limiter.peek(&address.to_string(), now),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `address`.
    pub fn record(&self, address: Option<IpAddr>, now: Instant) {
        if let Some(address) = address {
            let _ = self.limiter.check(&address.to_string(), now);
        }
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        window.failures += 1;
        // Bounded like the buckets: the summary says "at least" past the bound.
        if let Some(address) = address.filter(|_| window.addresses.len() < MAX_BUCKETS) {
            window.addresses.insert(address);
        }
    }

    /// The failures since the last call, if there were any.
    pub fn take_summary(&self) -> Option<FailureSummary> {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = std::mem::take(&mut *window);
        (taken.failures > 0).then_some(FailureSummary {
            failures: taken.failures,
            addresses: taken.addresses.len(),
        })
    }

    /// Logs a summary every interval while `failures` is alive; needs a tokio runtime.
    pub fn spawn_logger(failures: &std::sync::Arc<Self>) {
        let weak = std::sync::Arc::downgrade(failures);
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(AUTH_FAILURE_LOG_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(failures) = weak.upgrade() else {
                    return;
                };
                if let Some(summary) = failures.take_summary() {
                    tracing::warn!(
                        failures = summary.failures,
                        addresses = summary.addresses,
                        interval_secs = AUTH_FAILURE_LOG_INTERVAL.as_secs(),
                        "failed authentications"
                    );
                }
            }
        });
    }
}

fn bearer(req: &ServiceRequest) -> Result<&str, Problem> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        Problem::unauthorized("this route needs an `Authorization: Bearer <token>` header")
    })?;
    let text = value
        .to_str()
        .map_err(|_| Problem::unauthorized("the Authorization header is not valid text"))?;
    match text.split_once(' ') {
        Some((scheme, secret))
            if scheme.eq_ignore_ascii_case("bearer") && !secret.trim().is_empty() =>
        {
            Ok(secret.trim())
        }
        _ => Err(Problem::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

async fn authorize(
    ctx: &Context,
    req: &ServiceRequest,
    rule: &Rule,
) -> Result<Option<Caller>, Problem> {
    let scope = match rule {
        Rule::Public => return Ok(None),
        Rule::Undeclared => {
            return Err(Problem::internal(
                "this route declares no access rule; it is not served",
            ))
        }
        Rule::Scope(scope) => scope,
    };
    let token = authenticate(ctx, bearer(req)?).await?;
    check_scope(&token, scope)?;
    let named = match req.headers().get(TENANT_HEADER) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                Problem::bad_request("the X-Stella-Tenant header is not valid text")
            })?;
            Some(
                TenantId::parse(text)
                    .map_err(|err| Problem::bad_request(format!("X-Stella-Tenant: {err}")))?,
            )
        }
    };
    caller_on(ctx, token, named).await.map(Some)
}

/// The active token whose secret this is (not revoked, not expired, its tenant enabled),
/// or a 401. The bearer header and the console's session both end here.
pub(crate) async fn authenticate(ctx: &Context, secret: &str) -> Result<TokenRecord, Problem> {
    ctx.store
        .tokens()
        .authenticate(secret, Utc::now())
        .await?
        .ok_or_else(|| {
            Problem::unauthorized(
                "the token is unknown, revoked or expired, or its tenant is disabled",
            )
        })
}

/// Whether `token` may use an operation that needs `scope`; a 403 saying why not.
pub(crate) fn check_scope(token: &TokenRecord, scope: &str) -> Result<(), Problem> {
    let admin = token.tenant.is_none() && token.scopes.iter().any(|s| s == ADMIN);
    // `admin` routes need an administrator token: a tenant token never passes them, even
    // if a row somehow carried the scope.
    if scope == ADMIN && !admin {
        return Err(Problem::forbidden(
            "this operation needs an administrator token (the `admin` scope, no tenant)",
        ));
    }
    // The other global scopes change what every tenant sees: a token bound to one tenant
    // never passes them (tokens created before the rule may still carry them).
    if GLOBAL_SCOPES.contains(&scope) && token.tenant.is_some() {
        return Err(Problem::forbidden(format!(
            "`{scope}` changes data every tenant shares; it needs a token without a tenant, \
             not one of tenant {}",
            token
                .tenant
                .as_ref()
                .map(TenantId::as_str)
                .unwrap_or_default()
        )));
    }
    if !admin && !token.scopes.iter().any(|s| s == scope) {
        return Err(Problem::forbidden(format!(
            "this operation needs the `{scope}` scope, which the token does not have"
        )));
    }
    Ok(())
}

/// The caller `token` is when it names tenant `named` (or none): a tenant token acts on
/// its own tenant only (another is a 404), an administrator on any existing tenant.
pub(crate) async fn caller_on(
    ctx: &Context,
    token: TokenRecord,
    named: Option<TenantId>,
) -> Result<Caller, Problem> {
    let tenant = match (&token.tenant, named) {
        (Some(own), None) => Some(own.clone()),
        (Some(own), Some(named)) if *own == named => Some(own.clone()),
        (Some(_), Some(named)) => {
            return Err(Problem::not_found(format!("tenant {named} not found")));
        }
        (None, Some(named)) => {
            ctx.store.tenants().get(&named).await?;
            Some(named)
        }
        (None, None) => None,
    };
    Ok(Caller { token, tenant })
}

/// The tenant an administrator's call acted on (creating it, renaming it, a token for
/// it), set by the handler: the call is audited under that tenant, so the tenant's audit
/// trail shows what was done to it from outside.
#[derive(Debug, Clone)]
struct AuditTenant(TenantId);

/// Records that this request acts on `tenant`, for its audit entry.
pub fn audit_tenant(req: &HttpRequest, tenant: &TenantId) {
    req.extensions_mut().insert(AuditTenant(tenant.clone()));
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The `/api/v1` middleware.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(ctx) = req.app_data::<web::Data<Context>>().cloned() else {
        let problem = Problem::internal("the API context is missing");
        return Ok(req
            .into_response(problem.error_response())
            .map_into_right_body());
    };
    let method = req.method().clone();
    let pattern = req.match_pattern();
    let operation = pattern
        .as_deref()
        .and_then(|p| ctx.access.operation(p, &method))
        .cloned();
    let Some(operation) = operation else {
        let problem = match pattern {
            None => Problem::not_found(format!("no route {}", req.path())),
            Some(_) => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                format!("{method} is not allowed on {}", req.path()),
            ),
        };
        return Ok(req
            .into_response(problem.error_response())
            .map_into_right_body());
    };
    let address = req.peer_addr().map(|addr| addr.ip());
    if matches!(operation.rule, Rule::Scope(_)) {
        if let Err(seconds) = ctx.auth_failures.admit(address, Instant::now()) {
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "too many failed authentications from this address; retry in {seconds} s \
                     (api.auth_failures_per_minute)"
                ),
            );
            problem.retry_after = Some(seconds);
            let mut response = problem.error_response();
            response.extensions_mut().insert(QuietResponse);
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    let caller = match authorize(&ctx, &req, &operation.rule).await {
        Ok(caller) => caller,
        Err(problem) => {
            let mut response = problem.error_response();
            // A token was presented and refused: a guess, counted against the address.
            if problem.status == StatusCode::UNAUTHORIZED
                && req.headers().contains_key(header::AUTHORIZATION)
            {
                ctx.auth_failures.record(address, Instant::now());
                response.extensions_mut().insert(QuietResponse);
            }
            return Ok(req.into_response(response).map_into_right_body());
        }
    };
    if let Some(caller) = &caller {
        // The limit is per tenant; administration outside any tenant is not limited.
        if let Some(tenant) = &caller.tenant {
            if let Err(seconds) = ctx.limiter.check(tenant.as_str(), Instant::now()) {
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    format!(
                        "tenant {tenant} is over its request rate; retry in {seconds} s (api.rate_limit_per_second)"
                    ),
                );
                problem.retry_after = Some(seconds);
                return Ok(req
                    .into_response(problem.error_response())
                    .map_into_right_body());
            }
        }
        req.extensions_mut().insert(caller.clone());
    }
    let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone());
    let path = req.path().to_owned();
    let response = next.call(req).await?;
    if let (Some(caller), true) = (caller, is_mutating(&method)) {
        let subject = response
            .request()
            .extensions()
            .get::<AuditTenant>()
            .map(|subject| subject.0.clone());
        let entry = AuditEntry {
            tenant: caller.tenant.clone().or(subject),
            actor: caller.actor(),
            action: operation.id.clone(),
            target: path,
            request_id,
            details: json!({
                "method": method.as_str(),
                "status": response.status().as_u16(),
            }),
        };
        if let Err(err) = ctx.store.audit().record(&entry, Utc::now()).await {
            // The call is done; losing its audit line is logged loudly, never hidden.
            tracing::error!(error = %err, action = %entry.action, "could not write the audit log");
        }
    }
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn a_route_pattern_maps_to_its_openapi_template() {
        assert_eq!(
            openapi_template("/api/v1/exports/{export_id}/files/{name:.+}"),
            "/api/v1/exports/{export_id}/files/{name}"
        );
        assert_eq!(openapi_template("/api/v1/a:b/{id}"), "/api/v1/a:b/{id}");
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(2, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("t", start), Ok(()));
        }
        assert_eq!(limiter.check("t", start), Err(1));
        // Another tenant has its own bucket.
        assert_eq!(limiter.check("u", start), Ok(()));
        // Half a second at 2/s refills one request, and no more.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.check("t", later), Ok(()));
        assert_eq!(limiter.check("t", later), Err(1));
        assert_eq!(RateLimiter::new(0, 0).check("t", start), Ok(()));
    }

    #[test]
    fn failed_authentications_are_limited_per_address_and_summarised_once() {
        let failures = AuthFailures::new(60, 2);
        let start = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(failures.take_summary(), None, "nothing to say yet");
        assert_eq!(failures.admit(Some(a), start), Ok(()));
        failures.record(Some(a), start);
        failures.record(Some(a), start);
        // Two failures used the burst: a is refused, b is not.
        assert_eq!(failures.admit(Some(a), start), Err(1));
        assert_eq!(failures.admit(Some(b), start), Ok(()));
        // One failure a second (60 a minute) comes back.
        assert_eq!(
            failures.admit(Some(a), start + Duration::from_secs(1)),
            Ok(())
        );
        for _ in 0..998 {
            failures.record(Some(b), start);
        }
        assert_eq!(
            failures.take_summary(),
            Some(FailureSummary {
                failures: 1000,
                addresses: 2
            }),
            "one summary for a thousand failures"
        );
        assert_eq!(
            failures.take_summary(),
            None,
            "and then nothing until more fail"
        );
        assert_eq!(AuthFailures::new(0, 0).admit(Some(a), start), Ok(()));
    }

    #[test]
    fn every_documented_operation_has_a_rule_and_others_have_none() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let table = AccessTable::from_openapi(&doc);
        assert_eq!(
            table.rule("/api/v1/jobs", &Method::GET),
            Some(&Rule::Scope("jobs:read".into()))
        );
        assert_eq!(
            table.rule("/api/v1/tenants", &Method::POST),
            Some(&Rule::Scope(ADMIN.into()))
        );
        assert_eq!(table.rule("/api/v1/jobs", &Method::PUT), None);
        assert_eq!(table.rule("/api/v1/unknown", &Method::GET), None);
        assert_eq!(
            table.rule("/api/v1/keys", &Method::GET),
            Some(&Rule::Public)
        );
        // Every other operation in the document declares a known scope.
        assert!(table
            .operations
            .iter()
            .all(|((path, _), op)| path == "/api/v1/keys"
                || matches!(&op.rule, Rule::Scope(s) if SCOPES.contains(&s.as_str()))));
        for security in [
            serde_json::json!(null),
            serde_json::json!([{"Bearer": ["admin"]}]),
            serde_json::json!([{"bearer": ["jobs:read", "jobs:write"]}]),
            serde_json::json!([{}, {"bearer": ["admin"]}]),
            serde_json::json!([{"bearer": ["root"]}]),
        ] {
            let doc = serde_json::json!({"paths": {"/x": {"get": {"operationId": "x", "security": security}}}});
            assert_eq!(
                AccessTable::from_openapi(&doc).rule("/x", &Method::GET),
                Some(&Rule::Undeclared),
                "{security}"
            );
        }
        assert!(table.operations.len() >= 19);
    }
}
