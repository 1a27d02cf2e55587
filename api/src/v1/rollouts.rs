//! Policy packs and their rollouts. Packs are global and administrator-owned; a rollout
//! moves one pack version through waves of tenants (shadow → gate → activate → bake),
//! driven by the scheduler's leader. Administrators create, pause, resume and abort
//! rollouts and see all of them; a tenant token with `policy:read` sees only its own
//! tenant's part of a rollout (its wave, its activation, its shadow diff).

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_domain::rollout::RolloutSpec;
use stella_store::repo::{PackRecord, RolloutRecord, RolloutTenantRecord, RolloutTransition};
use stella_store::{RolloutId, TenantId};
use utoipa::ToSchema;

use super::{acting, not_found_unless, refused, BodyProblems, Page, PageQuery, Problems};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct PackView {
    pub name: String,
    pub version: u64,
    /// sha256 of the pack's canonical JSON.
    pub digest: String,
    /// The TOML document (a policy; its `default` is not used: a pack is a floor).
    pub document: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<PackRecord> for PackView {
    fn from(r: PackRecord) -> Self {
        Self {
            name: r.name,
            version: r.version,
            digest: r.digest,
            document: r.document,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPack {
    /// The pack's name: a-z, 0-9 and '-', a letter first.
    pub name: String,
    /// The policy as TOML.
    pub document: String,
}

/// Write the next version of a policy pack (an unchanged document returns the newest
/// version with 200).
#[utoipa::path(
    operation_id = "create_policy_pack_version",
    tag = "rollouts",
    request_body = PutPack,
    responses((status = 201, body = PackView), (status = 200, body = PackView), Problems, BodyProblems),
    security(("bearer" = ["admin"]))
)]
#[post("/policy-packs")]
pub(crate) async fn put_pack(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<PutPack>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let policy = super::policy::parsed(&body.document, "policy pack")?;
    let (record, created) = ctx
        .store
        .packs()
        .put(
            &body.name,
            &body.document,
            &policy.digest(),
            &caller.actor(),
            Utc::now(),
        )
        .await
        .map_err(refused)?;
    let location = format!(
        "/api/v1/policy-packs/{}/versions/{}",
        record.name, record.version
    );
    let view = PackView::from(record);
    Ok(if created {
        HttpResponse::Created()
            .insert_header(("Location", location))
            .json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// List the packs (the newest version of each).
#[utoipa::path(
    operation_id = "list_policy_packs",
    tag = "rollouts",
    responses((status = 200, body = Vec<PackView>), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/policy-packs")]
pub(crate) async fn list_packs(ctx: web::Data<Context>) -> ApiResult<web::Json<Vec<PackView>>> {
    let packs = ctx.store.packs().list().await?;
    Ok(web::Json(packs.into_iter().map(Into::into).collect()))
}

/// A pack's versions, newest first.
#[utoipa::path(
    operation_id = "list_policy_pack_versions",
    tag = "rollouts",
    params(("name" = String, Path, description = "the pack's name")),
    responses((status = 200, body = Vec<PackView>), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/policy-packs/{name}")]
pub(crate) async fn pack_versions(
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> ApiResult<web::Json<Vec<PackView>>> {
    let versions = ctx.store.packs().versions(&name).await?;
    if versions.is_empty() {
        return Err(Problem::not_found(format!("policy pack {name} not found")));
    }
    Ok(web::Json(versions.into_iter().map(Into::into).collect()))
}

/// A rollout with its waves, gates, tenants and history.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutView {
    pub id: String,
    pub pack: String,
    pub version: u64,
    /// `running`, `paused`, `completed`, `rolling_back` or `rolled_back`.
    pub state: String,
    /// The wave in progress (0 is the canary).
    pub wave: u64,
    /// `shadow`, `bake`, `rollback` or `done`.
    pub phase: String,
    pub generation: u64,
    /// When the scheduler acts next (the end of a bake time).
    pub next_at: DateTime<Utc>,
    /// Why it is where it is: the last gate's result (with the wave's diff summary), or
    /// why it was paused or aborted.
    #[schema(value_type = Object)]
    pub reason: Value,
    /// The rollout as declared (waves, gate, bake time).
    #[schema(value_type = Object)]
    pub spec: Value,
    pub waves: Vec<WaveView>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every move, oldest first (administrators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Vec<RolloutTransitionView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaveView {
    pub index: u64,
    pub name: String,
    /// `pending`, `shadow`, `paused`, `baking`, `done` or `rolled_back`.
    pub state: String,
    /// The wave's gate.
    #[schema(value_type = Object)]
    pub gate: Value,
    /// The sum of its tenants' newest shadow summaries.
    #[schema(value_type = Object)]
    pub summary: Value,
    pub tenants: Vec<RolloutTenantView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutTenantView {
    pub tenant: String,
    pub previous_pack: Option<String>,
    pub previous_version: Option<u64>,
    pub activated_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    /// The newest shadow result: generation, summary and the diff's object digest.
    #[schema(value_type = Object)]
    pub shadow: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutTransitionView {
    pub action: String,
    pub wave: Option<u64>,
    pub identity: String,
    pub actor: String,
    pub reason: String,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub at: DateTime<Utc>,
}

impl From<RolloutTransition> for RolloutTransitionView {
    fn from(t: RolloutTransition) -> Self {
        Self {
            action: t.action,
            wave: t.wave,
            identity: t.identity,
            actor: t.actor,
            reason: t.reason,
            detail: t.detail,
            at: t.at,
        }
    }
}

fn tenant_view(t: RolloutTenantRecord) -> RolloutTenantView {
    RolloutTenantView {
        tenant: t.tenant.to_string(),
        previous_pack: t.previous_pack,
        previous_version: t.previous_version,
        activated_at: t.activated_at,
        rolled_back_at: t.rolled_back_at,
        shadow: t.shadow.map(|s| {
            serde_json::json!({
                "generation": s.generation,
                "job_id": s.job_id,
                "summary": s.summary,
                "diff_sha256": s.diff_sha256,
                "created_at": s.created_at,
            })
        }),
    }
}

fn wave_state(rollout: &RolloutRecord, index: u64, tenants: &[RolloutTenantView]) -> &'static str {
    if !tenants.is_empty() && tenants.iter().all(|t| t.rolled_back_at.is_some()) {
        return "rolled_back";
    }
    if rollout.state == "completed" || index < rollout.wave {
        return "done";
    }
    if index > rollout.wave {
        return "pending";
    }
    match (rollout.state.as_str(), rollout.phase.as_str()) {
        ("paused", _) => "paused",
        (_, "bake") => "baking",
        (_, "shadow") => "shadow",
        _ => "done",
    }
}

/// The view of a rollout: all of it, or (`only`) one tenant's wave with that tenant alone.
pub(crate) fn view(
    rollout: RolloutRecord,
    tenants: Vec<RolloutTenantRecord>,
    transitions: Option<Vec<RolloutTransition>>,
    only: Option<&TenantId>,
) -> RolloutView {
    let spec: Option<RolloutSpec> = serde_json::from_value(rollout.spec.clone()).ok();
    let count = spec.as_ref().map_or(0, |s| s.waves.len());
    let mut waves: Vec<WaveView> = (0..count)
        .map(|i| WaveView {
            index: i as u64,
            name: spec.as_ref().map(|s| s.wave_name(i)).unwrap_or_default(),
            state: String::new(),
            gate: spec
                .as_ref()
                .map(|s| serde_json::to_value(s.gate_of(i)).unwrap_or_default())
                .unwrap_or_default(),
            summary: Value::Null,
            tenants: Vec::new(),
        })
        .collect();
    for tenant in tenants {
        if let Some(wave) = waves.get_mut(usize::try_from(tenant.wave).unwrap_or(usize::MAX)) {
            wave.tenants.push(tenant_view(tenant));
        }
    }
    for wave in &mut waves {
        let mut summary = stella_domain::shadow::DiffSummary::default();
        for t in &wave.tenants {
            if let Some(one) = t
                .shadow
                .as_ref()
                .and_then(|s| serde_json::from_value(s["summary"].clone()).ok())
            {
                summary.merge(&one);
            }
        }
        wave.summary = serde_json::to_value(summary).unwrap_or_default();
        wave.state = wave_state(&rollout, wave.index, &wave.tenants).to_owned();
    }
    if let Some(only) = only {
        waves.retain_mut(|w| {
            w.tenants.retain(|t| t.tenant == only.as_str());
            !w.tenants.is_empty()
        });
        for wave in &mut waves {
            // A tenant sees its own numbers, not its wave's.
            wave.summary = wave.tenants[0]
                .shadow
                .as_ref()
                .map(|s| s["summary"].clone())
                .unwrap_or_default();
        }
    }
    RolloutView {
        id: rollout.id.to_string(),
        pack: rollout.pack,
        version: rollout.version,
        state: rollout.state,
        wave: rollout.wave,
        phase: rollout.phase,
        generation: rollout.generation,
        next_at: rollout.next_at,
        reason: if only.is_some() {
            Value::Null
        } else {
            rollout.reason
        },
        spec: if only.is_some() {
            Value::Null
        } else {
            rollout.spec
        },
        waves,
        created_by: rollout.created_by,
        created_at: rollout.created_at,
        updated_at: rollout.updated_at,
        transitions: transitions.map(|t| t.into_iter().map(Into::into).collect()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRollout {
    /// The pack version to roll out, its waves (the first is the canary), the gate and
    /// the bake time.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub spec: Value,
    /// Why (kept with the rollout's creation).
    pub reason: String,
}

/// Start a rollout of a pack version: waves are fixed now (explicit tenants, or
/// percentages by a deterministic hash); the canary's shadow starts at the scheduler's
/// next pass. One rollout at a time.
#[utoipa::path(
    operation_id = "create_rollout",
    tag = "rollouts",
    request_body = CreateRollout,
    responses((status = 201, body = RolloutView), Problems, BodyProblems),
    security(("bearer" = ["admin"]))
)]
#[post("/rollouts")]
pub(crate) async fn create(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    let mut body = body.0;
    let reason = body
        .as_object_mut()
        .and_then(|o| o.remove("reason"))
        .and_then(|r| r.as_str().map(str::to_owned))
        .unwrap_or_default();
    let spec: RolloutSpec = serde_path_to_error::deserialize(body).map_err(|err| {
        Problem::bad_request(format!("invalid rollout: {}", err.inner())).at(err.path().to_string())
    })?;
    spec.check().map_err(|err| {
        Problem::bad_request(format!("invalid rollout: {}", err.message)).at(err.pointer)
    })?;
    let all = all_tenants(&ctx).await?;
    let waves = spec.assign(&all).map_err(|err| {
        Problem::bad_request(format!("invalid rollout: {}", err.message)).at(err.pointer)
    })?;
    let waves: Vec<Vec<TenantId>> = waves
        .into_iter()
        .map(|w| w.iter().filter_map(|t| TenantId::parse(t).ok()).collect())
        .collect();
    let spec_value =
        serde_json::to_value(&spec).map_err(|e| Problem::internal(format!("spec: {e}")))?;
    let actor = caller.actor();
    let record = ctx
        .store
        .rollouts()
        .create(
            &stella_store::repo::NewRollout {
                pack: &spec.pack,
                version: spec.version,
                spec: &spec_value,
                waves: &waves,
            },
            acting(&caller, &actor),
            &reason,
            Utc::now(),
        )
        .await
        .map_err(|err| match err {
            stella_store::StoreError::NotFound(what) => {
                Problem::bad_request(format!("invalid rollout: no {what}")).at("version")
            }
            other => refused(other),
        })?;
    let tenants = ctx.store.rollouts().tenants(&record.id, None).await?;
    let location = format!("/api/v1/rollouts/{}", record.id);
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .json(view(record, tenants, None, None)))
}

async fn all_tenants(ctx: &Context) -> ApiResult<Vec<stella_domain::rollout::TenantInfo>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ctx.store.tenants().list(cursor.as_deref(), 500).await?;
        out.extend(
            page.items
                .into_iter()
                .filter(|t| t.status == stella_store::repo::TenantStatus::Active)
                .map(|t| stella_domain::rollout::TenantInfo {
                    id: t.id.to_string(),
                    labels: t.labels,
                }),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// List rollouts, newest first (administrators: all of them).
#[utoipa::path(
    operation_id = "list_rollouts",
    tag = "rollouts",
    params(PageQuery),
    responses((status = 200, body = Page<RolloutView>), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/rollouts")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<RolloutView>>> {
    let page = ctx
        .store
        .rollouts()
        .list(query.cursor(), query.limit())
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for record in page.items {
        let tenants = ctx.store.rollouts().tenants(&record.id, None).await?;
        items.push(view(record, tenants, None, None));
    }
    Ok(web::Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

fn rollout_id(raw: &str) -> ApiResult<RolloutId> {
    not_found_unless(RolloutId::parse(raw), "rollout", raw)
}

/// One rollout with its waves, gates, per-tenant state and shadow summaries. A tenant
/// token sees its own tenant's part only (404 if the rollout does not include it).
#[utoipa::path(
    operation_id = "get_rollout",
    tag = "rollouts",
    params(("id" = String, Path, description = "the rollout id")),
    responses((status = 200, body = RolloutView), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/rollouts/{id}")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<web::Json<RolloutView>> {
    let id = rollout_id(&id)?;
    let record = ctx.store.rollouts().get(&id).await?;
    let tenants = ctx.store.rollouts().tenants(&id, None).await?;
    if caller.is_admin() {
        let transitions = ctx.store.rollouts().transitions(&id).await?;
        return Ok(web::Json(view(record, tenants, Some(transitions), None)));
    }
    let tenant = caller.tenant()?;
    if !tenants.iter().any(|t| &t.tenant == tenant) {
        return Err(Problem::not_found(format!("rollout {id} not found")));
    }
    Ok(web::Json(view(record, tenants, None, Some(tenant))))
}

/// A tenant's shadow diff in a rollout, finding by finding (administrators name any
/// tenant of the rollout; a tenant token its own).
#[utoipa::path(
    operation_id = "get_rollout_diff",
    tag = "rollouts",
    params(
        ("id" = String, Path, description = "the rollout id"),
        ("tenant" = String, Path, description = "a tenant of the rollout"),
    ),
    responses((status = 200, body = Object), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/rollouts/{id}/tenants/{tenant}/diff")]
pub(crate) async fn diff(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (raw_id, raw_tenant) = path.into_inner();
    let id = rollout_id(&raw_id)?;
    let tenant = not_found_unless(TenantId::parse(&raw_tenant), "tenant", &raw_tenant)?;
    if !caller.is_admin() && caller.tenant()? != &tenant {
        return Err(Problem::not_found(format!("rollout {id} not found")));
    }
    let not_found = || Problem::not_found(format!("no shadow diff of {tenant} in rollout {id}"));
    let tenants = ctx.store.rollouts().tenants(&id, None).await?;
    let shadow = tenants
        .into_iter()
        .find(|t| t.tenant == tenant)
        .and_then(|t| t.shadow)
        .filter(|s| !s.diff_sha256.is_empty())
        .ok_or_else(not_found)?;
    let digest =
        stella_store::object::Sha256Digest::parse(&shadow.diff_sha256).map_err(|_| not_found())?;
    // Streamed (a diff holds both traces of every changed finding); the reader checks the
    // digest as the bytes pass.
    let reader = ctx.objects.get_content(&digest).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(tokio_util::io::ReaderStream::new(reader)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutAction {
    /// Why (required; kept with the move).
    #[serde(default)]
    pub reason: String,
    /// `resume` only: a gate replacing the one of the current wave and the waves after
    /// it (the wave is shadowed again and judged by it).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub gate: Option<Value>,
}

pub(crate) async fn act(
    ctx: &Context,
    caller: &Caller,
    raw: &str,
    action: &str,
    body: RolloutAction,
) -> ApiResult<web::Json<RolloutView>> {
    let id = rollout_id(raw)?;
    let actor = caller.actor();
    let by = acting(caller, &actor);
    let now = Utc::now();
    let rollouts = ctx.store.rollouts();
    if body.gate.is_some() && action != "resume" {
        return Err(Problem::bad_request("only `resume` takes a gate").at("gate"));
    }
    let record = match action {
        "pause" => rollouts.pause(&id, by, &body.reason, now).await,
        "resume" => {
            if let Some(gate) = &body.gate {
                let parsed: stella_domain::rollout::Gate =
                    serde_path_to_error::deserialize(gate.clone()).map_err(|err| {
                        Problem::bad_request(format!("invalid gate: {}", err.inner()))
                            .at(format!("gate.{}", err.path()))
                    })?;
                parsed.check("/gate").map_err(|err| {
                    Problem::bad_request(format!("invalid gate: {}", err.message)).at(err.pointer)
                })?;
            }
            rollouts
                .resume(&id, body.gate.as_ref(), by, &body.reason, now)
                .await
        }
        _ => rollouts.abort(&id, by, &body.reason, now).await,
    }
    .map_err(refused)?;
    let tenants = rollouts.tenants(&id, None).await?;
    let transitions = rollouts.transitions(&id).await?;
    Ok(web::Json(view(record, tenants, Some(transitions), None)))
}

macro_rules! action_route {
    ($fn:ident, $op:literal, $path:literal, $action:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
                            operation_id = $op,
                            tag = "rollouts",
                            params(("id" = String, Path, description = "the rollout id")),
                            request_body = RolloutAction,
                            responses((status = 200, body = RolloutView), Problems, BodyProblems),
                            security(("bearer" = ["admin"]))
                        )]
        #[post($path)]
        pub(crate) async fn $fn(
            ctx: web::Data<Context>,
            caller: Caller,
            id: web::Path<String>,
            body: JsonBody<RolloutAction>,
        ) -> ApiResult<web::Json<RolloutView>> {
            act(&ctx, &caller, &id, $action, body.0).await
        }
    };
}

action_route!(
    pause,
    "pause_rollout",
    "/rollouts/{id}/pause",
    "pause",
    "Pause a running rollout, at any point (a wave being activated finishes its batch)."
);
action_route!(
    resume,
    "resume_rollout",
    "/rollouts/{id}/resume",
    "resume",
    "Resume a paused rollout: approves a wave waiting for approval, or shadows a wave \
     whose gate did not hold again (with a replacement `gate` if given)."
);
action_route!(
    abort,
    "abort_rollout",
    "/rollouts/{id}/abort",
    "abort",
    "Abort a rollout and roll it back: every tenant it activated returns to its previous \
     pack, and its targets are re-evaluated."
);
