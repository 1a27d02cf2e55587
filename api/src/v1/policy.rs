//! The tenant's policy: a TOML document of rules (format: `default_policy.toml` in the
//! domain crate, which is also what a tenant without a policy of its own gets). A
//! version is immutable and moves draft → submitted → approved → active → archived; the
//! identity (token name) that submitted a version cannot approve it, and every
//! transition is recorded with who and why. Scans use the active version.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_store::repo::{PolicyRecord, PolicyTransition, TransitionRecord};
use utoipa::ToSchema;

use super::{acting, refused, BodyProblems, Page, PageQuery, Problems};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// 0 for the built-in default.
    pub version: u64,
    /// sha256 of the policy's canonical JSON: what verdicts record.
    pub digest: String,
    /// The TOML document.
    pub document: String,
    /// `true` when the tenant has no policy of its own.
    pub default: bool,
    /// `draft`, `submitted`, `approved`, `active` or `archived` (the built-in default
    /// is `active` while the tenant has no active version).
    pub status: String,
    pub created_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The identity (token name) that submitted it.
    pub submitted_by: Option<String>,
    /// The identity that approved it.
    pub approved_by: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<PolicyRecord> for PolicyView {
    fn from(record: PolicyRecord) -> Self {
        Self {
            version: record.version,
            digest: record.digest,
            document: record.document,
            default: false,
            status: record.status.as_str().to_owned(),
            created_by: Some(record.created_by),
            created_at: Some(record.created_at),
            submitted_by: record.submitted_by,
            approved_by: record.approved_by,
            updated_at: Some(record.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicy {
    /// The policy as TOML.
    pub document: String,
}

fn default_view() -> ApiResult<PolicyView> {
    let policy = Policy::parse(DEFAULT_POLICY)
        .map_err(|err| Problem::internal(format!("the default policy: {err}")))?;
    Ok(PolicyView {
        version: 0,
        digest: policy.digest(),
        document: DEFAULT_POLICY.to_owned(),
        default: true,
        status: "active".to_owned(),
        created_by: None,
        created_at: None,
        submitted_by: None,
        approved_by: None,
        updated_at: None,
    })
}

/// The policies a tenant's scans use now: its active version and the pack it received
/// through a rollout, whose rules are a floor under it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivePolicyView {
    #[serde(flatten)]
    pub policy: PolicyView,
    /// The policy pack assigned to the tenant, if any.
    pub pack: Option<super::rollouts::PackView>,
}

/// The policy the tenant's scans use now, with its pack.
#[utoipa::path(
    operation_id = "get_policy",
    tag = "policy",
    responses((status = 200, body = ActivePolicyView), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/policy")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    caller: Caller,
) -> ApiResult<web::Json<ActivePolicyView>> {
    let tenant = caller.tenant()?;
    let policy = match ctx.store.tenant(tenant).policies().active().await? {
        Some(record) => record.into(),
        None => default_view()?,
    };
    let pack = ctx.store.packs().assigned(tenant).await?.map(Into::into);
    Ok(web::Json(ActivePolicyView { policy, pack }))
}

/// A policy document of a request's `document` field, parsed; `what` names it in the
/// problem (`policy`, `policy pack`).
pub(crate) fn parsed(document: &str, what: &str) -> ApiResult<Policy> {
    Policy::parse(document).map_err(|err| {
        Problem::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid-policy",
            format!("invalid {what}: {}", err.message),
        )
        .at(format!("document{}", err.pointer))
    })
}

/// Write a new version of the tenant's policy, as a draft (unless a version with the
/// same document is still in play: that one is returned with 200).
#[utoipa::path(
    operation_id = "create_policy_version",
    tag = "policy",
    request_body = PutPolicy,
    responses((status = 201, body = PolicyView), (status = 200, body = PolicyView), Problems, BodyProblems),
    security(("bearer" = ["policy:author"]))
)]
#[post("/policy/versions")]
pub(crate) async fn create(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<PutPolicy>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let document = body.0.document;
    let policy = parsed(&document, "policy")?;
    let actor = caller.actor();
    let (record, created) = ctx
        .store
        .tenant(tenant)
        .policies()
        .draft(
            &document,
            &policy.digest(),
            acting(&caller, &actor),
            Utc::now(),
        )
        .await?;
    let location = format!("/api/v1/policy/versions/{}", record.version);
    let view = PolicyView::from(record);
    Ok(if created {
        HttpResponse::Created()
            .insert_header(("Location", location))
            .json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// One version with every transition it went through.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    #[serde(flatten)]
    pub version: PolicyView,
    pub transitions: Vec<TransitionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionView {
    /// `null` for the version's creation.
    pub from: Option<String>,
    pub to: String,
    /// The identity (token name) that made it.
    pub identity: String,
    /// The caller as the audit log names it.
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl From<TransitionRecord> for TransitionView {
    fn from(t: TransitionRecord) -> Self {
        Self {
            from: t.from.map(|s| s.as_str().to_owned()),
            to: t.to.as_str().to_owned(),
            identity: t.identity,
            actor: t.actor,
            reason: t.reason,
            at: t.at,
        }
    }
}

/// One version of the tenant's policy and its history.
#[utoipa::path(
    operation_id = "get_policy_version",
    tag = "policy",
    params(("version" = u64, Path, description = "the version number")),
    responses((status = 200, body = VersionView), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/policy/versions/{version}")]
pub(crate) async fn get_version(
    ctx: web::Data<Context>,
    caller: Caller,
    version: web::Path<String>,
) -> ApiResult<web::Json<VersionView>> {
    let tenant = caller.tenant()?;
    let version = version_number(&version)?;
    let policies = ctx.store.tenant(tenant).policies();
    let record = policies.get(version).await?;
    let transitions = policies.transitions(version).await?;
    Ok(web::Json(VersionView {
        version: record.into(),
        transitions: transitions.into_iter().map(Into::into).collect(),
    }))
}

fn version_number(text: &str) -> ApiResult<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Problem::not_found(format!("policy version {text} not found")))
}

/// Why a transition is made (`{}` when there is nothing to say).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// Why (required to request changes; kept with the transition).
    #[serde(default)]
    pub reason: String,
}

async fn transition(
    ctx: &Context,
    caller: &Caller,
    version: &str,
    transition: PolicyTransition,
    body: JsonBody<TransitionBody>,
) -> ApiResult<web::Json<PolicyView>> {
    let tenant = caller.tenant()?;
    let version = version_number(version)?;
    let actor = caller.actor();
    let record = ctx
        .store
        .tenant(tenant)
        .policies()
        .transition(
            version,
            transition,
            acting(caller, &actor),
            &body.0.reason,
            Utc::now(),
        )
        .await
        .map_err(refused)?;
    Ok(web::Json(record.into()))
}

macro_rules! transition_route {
    ($fn:ident, $op:literal, $path:literal, $scope:literal, $transition:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
                            operation_id = $op,
                            tag = "policy",
                            params(("version" = u64, Path, description = "the version number")),
                            request_body = TransitionBody,
                            responses((status = 200, body = PolicyView), Problems, BodyProblems),
                            security(("bearer" = [$scope]))
                        )]
        #[post($path)]
        pub(crate) async fn $fn(
            ctx: web::Data<Context>,
            caller: Caller,
            version: web::Path<String>,
            body: JsonBody<TransitionBody>,
        ) -> ApiResult<web::Json<PolicyView>> {
            transition(&ctx, &caller, &version, $transition, body).await
        }
    };
}

transition_route!(
    submit,
    "submit_policy_version",
    "/policy/versions/{version}/submit",
    "policy:author",
    PolicyTransition::Submit,
    "Submit a draft for review."
);
transition_route!(
    request_changes,
    "request_policy_changes",
    "/policy/versions/{version}/request-changes",
    "policy:review",
    PolicyTransition::RequestChanges,
    "Send a submitted version back to draft, saying what to change."
);
transition_route!(
    approve,
    "approve_policy_version",
    "/policy/versions/{version}/approve",
    "policy:approve",
    PolicyTransition::Approve,
    "Approve a submitted version (not by the identity that submitted it)."
);
transition_route!(
    activate,
    "activate_policy_version",
    "/policy/versions/{version}/activate",
    "policy:operate",
    PolicyTransition::Activate,
    "Make an approved version the one scans use (the active one is archived; the \
     tenant's targets are re-evaluated). An archived version that was approved may be \
     activated again."
);
transition_route!(
    archive,
    "archive_policy_version",
    "/policy/versions/{version}/archive",
    "policy:author",
    PolicyTransition::Archive,
    "Archive a draft, submitted or approved version: it will never be activated."
);

/// Every version of the tenant's policy, newest first.
#[utoipa::path(
    operation_id = "list_policy_versions",
    tag = "policy",
    params(PageQuery),
    responses((status = 200, body = Page<PolicyView>), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/policy/versions")]
pub(crate) async fn versions(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<PolicyView>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .policies()
        .list(query.cursor(), query.limit())
        .await
        .map_err(|err| Problem::from(err).at("cursor"))?;
    Ok(web::Json(Page::from_store(page, PolicyView::from)))
}

/// What `GET /policy/diff` compares.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The version compared against; absent: the latest scans' verdicts as they are.
    pub old: Option<u64>,
    /// The candidate version of the tenant's policy (or give `pack`; neither: the
    /// policies in force, re-evaluated, which shows what changed since the scans).
    pub new: Option<u64>,
    /// A candidate pack version, `<name>@<version>`, in place of the tenant's pack.
    pub pack: Option<String>,
}

/// Evaluate the tenant's latest scan of each target with a candidate policy version or
/// pack, enforcing nothing, and diff it finding by finding against the verdicts in
/// force (or another version): added, removed, changed (with both traces), unchanged,
/// and per-scan summaries such as newly blocked scans.
#[utoipa::path(
    operation_id = "diff_policy",
    tag = "policy",
    params(DiffQuery),
    responses((status = 200, body = Object), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/policy/diff")]
pub(crate) async fn diff(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<DiffQuery>,
) -> ApiResult<HttpResponse> {
    use stella_actors::rollout::shadow::{diff_tenant, Old};
    use stella_actors::scan::{pack_of, Candidate};
    let tenant = caller.tenant()?;
    let policies = ctx.store.tenant(tenant).policies();
    let candidate_of = |record: PolicyRecord, at: &'static str| {
        Policy::parse(&record.document)
            .map(Candidate::Policy)
            .map_err(|err| Problem::internal(format!("stored policy: {err}")).at(at))
    };
    let new = match (query.new, &query.pack) {
        (Some(version), None) => candidate_of(policies.get(version).await?, "new")?,
        (None, Some(pack)) => {
            let (name, version) = pack
                .rsplit_once('@')
                .and_then(|(n, v)| Some((n, v.parse::<u64>().ok()?)))
                .ok_or_else(|| {
                    Problem::bad_request("pack: give it as <name>@<version>").at("pack")
                })?;
            let record = ctx.store.packs().get(name, version).await?;
            Candidate::Pack(pack_of(&record).map_err(|err| Problem::internal(err.to_string()))?)
        }
        (None, None) => Candidate::InForce,
        (Some(_), Some(_)) => {
            return Err(
                Problem::bad_request("name one candidate: `new` (a version) or `pack`").at("new"),
            )
        }
    };
    let old = match query.old {
        Some(version) => Old::Candidate(candidate_of(policies.get(version).await?, "old")?),
        None => Old::Stored,
    };
    let started = std::time::Instant::now();
    let diff = diff_tenant(&ctx.store, ctx.intake.deps(), tenant, old, new, Utc::now())
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "a policy diff could not be computed");
            match err.retry_kind() {
                stella_supervisor::Retry::Never => {
                    Problem::internal(format!("the diff could not be computed: {err}"))
                }
                _ => Problem::new(
                    actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is unavailable; retry later",
                ),
            }
        })?;
    ctx.shadow_metrics
        .observe("diff", &diff, started.elapsed().as_secs_f64());
    Ok(HttpResponse::Ok().json(diff))
}
