//! Stella's HTTP server: liveness, readiness, metrics and the admin API under `/api/v1`.
//!
//! This crate knows how to answer requests, not how to build the services it answers
//! about: the composition root (`stella` binary) connects the store, object store and
//! mailbox and hands them over in a [`Context`].
//!
//! Layout:
//! - `health`: `GET /healthz` (process up) and `GET /readyz` (dependencies reachable);
//! - `metrics`: `GET /metrics` in Prometheus text format;
//! - `request_id`: the request id of every response, log span and error body;
//! - `problem`: errors as `application/problem+json`;
//! - `body`: the JSON body extractor (415, 413, 400 with the location);
//! - `auth`: tokens, scopes, tenants, rate limits and audit, enforced once for `/api/v1`
//!   from the rules in the OpenAPI document;
//! - `console`: the web console at `/console` (HTML over the same scopes and tenancy);
//! - `v1`: the resources; [`openapi`] builds the document from their annotations.

pub mod auth;
pub mod body;
pub mod console;
mod health;
mod idempotency;
pub mod metrics;
pub mod problem;
pub mod request_id;
pub mod v1;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, HttpResponse};
use stella_actors::scan::Intake;
use stella_config::ApiSettings;
use stella_store::mailbox::Mailbox;
use stella_store::object::Objects;
use stella_store::Store;
use stella_supervisor::{Observer, Registry};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_actix_web::AppExt;

pub use auth::{AccessTable, AuthFailures, Caller, RateLimiter};
pub use metrics::Metrics;
pub use problem::Problem;

/// What every handler can use.
#[derive(Debug, Clone)]
pub struct Context {
    pub store: Store,
    pub objects: Objects,
    pub mailbox: Arc<dyn Mailbox>,
    pub metrics: Arc<Metrics>,
    pub started_at: Instant,
    /// The job kinds this process runs.
    pub registry: Registry,
    /// Scan intake (every process that serves the API runs the scan kind).
    pub intake: Intake,
    /// The supervision tree of this process's runtime, if it runs one.
    pub observer: Option<Observer>,
    pub settings: ApiSettings,
    /// The public halves of the keys that sign attestations.
    pub public_keys: Vec<stella_domain::dsse::PublicKey>,
    /// Attempts a submitted job gets unless it asks otherwise (`runtime.max_attempts`).
    pub job_max_attempts: u32,
    /// The jitter window of a schedule created without one (`scheduler.default_jitter_secs`).
    pub default_jitter_secs: u32,
    pub limiter: Arc<RateLimiter>,
    /// Failed authentications per client address, and their summary in the log.
    pub auth_failures: Arc<AuthFailures>,
    pub access: Arc<AccessTable>,
    /// The notifier's guard and secrets (channels are checked and sealed on save).
    pub notify: stella_actors::notify::NotifyDeps,
    /// The export destinations profiles may name (checked per tenant on save).
    pub export_destinations: stella_actors::export::Destinations,
    /// Shadow evaluations' metrics (`GET /policy/diff` records with source `diff`).
    pub shadow_metrics: stella_actors::rollout::ShadowMetrics,
    /// Event streams open per tenant (`api.max_streams_per_tenant`).
    pub streams: Arc<v1::streams::StreamCounts>,
    /// Image uploads being read now (`api.max_concurrent_image_uploads`).
    pub image_uploads: Arc<tokio::sync::Semaphore>,
    /// The console's sessions (in memory: see `console::session`).
    pub console: Arc<console::Sessions>,
    openapi_json: Arc<String>,
}

/// The parts a [`Context`] is made of.
#[derive(Debug)]
pub struct Parts {
    pub store: Store,
    pub objects: Objects,
    pub mailbox: Arc<dyn Mailbox>,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    pub intake: Intake,
    pub observer: Option<Observer>,
    pub public_keys: Vec<stella_domain::dsse::PublicKey>,
    pub settings: ApiSettings,
    pub job_max_attempts: u32,
    pub default_jitter_secs: u32,
    pub notify: stella_actors::notify::NotifyDeps,
    pub export_destinations: stella_actors::export::Destinations,
    pub shadow_metrics: stella_actors::rollout::ShadowMetrics,
}

impl Context {
    pub fn new(parts: Parts) -> Self {
        let doc = serde_json::to_value(openapi()).unwrap_or_default();
        let auth_failures = Arc::new(AuthFailures::new(
            parts.settings.auth_failures_per_minute,
            parts.settings.auth_failure_burst,
        ));
        AuthFailures::spawn_logger(&auth_failures);
        Self {
            auth_failures,
            streams: Arc::default(),
            console: Arc::default(),
            image_uploads: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(parts.settings.max_concurrent_image_uploads.max(1))
                    .unwrap_or(usize::MAX),
            )),
            access: Arc::new(AccessTable::from_openapi(&doc)),
            openapi_json: Arc::new(doc.to_string()),
            limiter: Arc::new(RateLimiter::new(
                parts.settings.rate_limit_per_second,
                parts.settings.rate_limit_burst,
            )),
            store: parts.store,
            objects: parts.objects,
            mailbox: parts.mailbox,
            metrics: parts.metrics,
            started_at: Instant::now(),
            registry: parts.registry,
            intake: parts.intake,
            observer: parts.observer,
            public_keys: parts.public_keys,
            settings: parts.settings,
            job_max_attempts: parts.job_max_attempts,
            default_jitter_secs: parts.default_jitter_secs,
            notify: parts.notify,
            export_destinations: parts.export_destinations,
            shadow_metrics: parts.shadow_metrics,
        }
    }
}

/// The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = actix_web::App::new()
        .into_utoipa_app()
        .service(utoipa_actix_web::scope("/api/v1").configure(v1::mount))
        .split_for_parts();
    doc.info.title = "Stella admin API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Tenants, tokens, jobs, dead letters and the actor tree. Authenticate with \
         `Authorization: Bearer <token>`; an administrator token names its tenant with \
         `X-Stella-Tenant`. Errors are `application/problem+json`."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    // Error responses refer to the problem schema; the route collector does not add it.
    components.schemas.insert(
        <problem::ProblemBody as utoipa::ToSchema>::name().into_owned(),
        <problem::ProblemBody as utoipa::PartialSchema>::schema(),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc
}

async fn openapi_json(ctx: web::Data<Context>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(ctx.openapi_json.as_str().to_owned())
}

async fn no_route(req: actix_web::HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::not_found(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

/// Mounts every route. Wrap the app in [`request_id::middleware`] too.
pub fn configure(context: Context) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(context.clone()))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                Problem::bad_request(format!("invalid query string: {err}")).into()
            }))
            .app_data(
                web::PathConfig::default().error_handler(|err, _| {
                    Problem::not_found(format!("invalid path: {err}")).into()
                }),
            )
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(metrics::metrics))
            .route("/api/v1/openapi.json", web::get().to(openapi_json))
            .service(
                web::scope("/api/v1")
                    .wrap(actix_web::middleware::from_fn(auth::middleware))
                    .configure(|cfg| {
                        let mut cfg = utoipa_actix_web::service_config::ServiceConfig::new(cfg);
                        v1::mount(&mut cfg);
                    }),
            )
            .configure(console::mount)
            .default_service(web::to(no_route));
    }
}
