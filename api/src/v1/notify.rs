//! `/notify`: the caller tenant's notification channels, rules and templates, a draft
//! rule's preview, and the deliveries with their receipts. Secrets are write-only: a
//! channel shows whether it has one, never what it is (a webhook's generated signing
//! secret is returned once, when it is made or rotated). The notifier itself is the
//! `notify` kind (`stella_actors::notify`).

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stella_actors::notify::manage::{self, ChannelView, ManageError};
use stella_store::repo::{
    AttemptRecord, DeliveryFilter, DeliveryRecord, RuleRecord, TemplateRecord,
};
use utoipa::{IntoParams, ToSchema};

use super::{BodyProblems, Page, PageQuery, Problems};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

impl From<ManageError> for Problem {
    fn from(err: ManageError) -> Self {
        match err {
            ManageError::Invalid { pointer, message } => {
                let detail = if pointer.is_empty() {
                    message
                } else {
                    format!("{pointer}: {message}")
                };
                Problem::bad_request(detail).at(pointer)
            }
            ManageError::NotFound(what) => Problem::not_found(what),
            ManageError::Conflict(why) => Problem::conflict(why),
            ManageError::Store(err) => err.into(),
        }
    }
}

/// A channel: `config` says where (`email` with `to`, `webhook` / `slack` / `teams` with
/// `url`; a Slack or Teams URL is shown by its host only), `throttle` (default 10 per 60
/// s) and `quiet_hours` how often and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelBody {
    pub id: String,
    pub name: String,
    pub channel_type: String,
    #[schema(value_type = Object)]
    pub spec: Value,
    pub has_secret: bool,
    /// A webhook's signing secret (`whsec_…`), present only in the answer that made it.
    pub signing_secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ChannelView> for ChannelBody {
    fn from(v: ChannelView) -> Self {
        let c = v.record;
        Self {
            id: c.id,
            name: c.name,
            channel_type: c.channel_type,
            spec: c.spec,
            has_secret: c.has_secret,
            signing_secret: v.signing_secret,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

fn view(record: stella_store::repo::ChannelRecord) -> ChannelBody {
    ChannelView {
        record,
        signing_secret: None,
    }
    .into()
}

/// Create or replace a channel by its `name`. The body is the channel: `{"name": "ops", "config": {"type":
/// "webhook", "url": …}, "throttle": {"max": 10, "per_seconds": 60}, "quiet_hours":
/// {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin", "mode": "hold"}}`,
/// and for a webhook optionally `secret` (else one is generated and returned once).
/// Destinations are checked by the outbound guard (no private or metadata addresses
/// unless allow-listed).
#[utoipa::path(
    operation_id = "put_notify_channel",
    tag = "notify",
    request_body(content = Object, description = "the channel"),
    responses((status = 200, body = ChannelBody), Problems, BodyProblems),
    security(("bearer" = ["notify:write"]))
)]
#[post("/notify/channels")]
pub(crate) async fn put_channel(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<Value>,
) -> ApiResult<web::Json<ChannelBody>> {
    let tenant = caller.tenant()?;
    let name = name_of(&body.0)?;
    let v = manage::put_channel(
        &ctx.store,
        &ctx.notify.secrets,
        &ctx.notify.outbound,
        tenant,
        &name,
        &body.0,
        Utc::now(),
    )
    .await?;
    Ok(web::Json(v.into()))
}

/// The `name` of a body that creates or replaces something by name.
fn name_of(body: &Value) -> Result<String, Problem> {
    let name = body["name"]
        .as_str()
        .ok_or_else(|| Problem::bad_request("/name: required").at("/name"))?;
    check_name(name)?;
    Ok(name.to_owned())
}

/// Names of channels, rules and templates: 1-100 of a-z, 0-9, `-`, `_`, `.`.
fn check_name(name: &str) -> Result<(), Problem> {
    if stella_store::repo::is_notify_name(name) {
        Ok(())
    } else {
        Err(Problem::bad_request(format!(
            "{name:?} is not a valid name (1-100 of a-z, 0-9, '-', '_', '.', starting with a letter or digit)"
        ))
        .at("/name"))
    }
}

/// The tenant's channels, by name.
#[utoipa::path(
    operation_id = "list_notify_channels",
    tag = "notify",
    params(PageQuery),
    responses((status = 200, body = Page<ChannelBody>), Problems),
    security(("bearer" = ["notify:read"]))
)]
#[get("/notify/channels")]
pub(crate) async fn list_channels(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<ChannelBody>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .notify()
        .channels(query.cursor(), query.limit())
        .await?;
    Ok(web::Json(Page::from_store(page, view)))
}

/// One channel, by name or id.
#[utoipa::path(
    operation_id = "get_notify_channel",
    tag = "notify",
    responses((status = 200, body = ChannelBody), Problems),
    security(("bearer" = ["notify:read"]))
)]
#[get("/notify/channels/{name}")]
pub(crate) async fn get_channel(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<web::Json<ChannelBody>> {
    let tenant = caller.tenant()?;
    let c = ctx.store.tenant(tenant).notify().channel(&name).await?;
    Ok(web::Json(view(c)))
}

/// Delete a channel no rule names (409 naming the rules otherwise).
#[utoipa::path(
    operation_id = "delete_notify_channel",
    tag = "notify",
    responses((status = 204), Problems, BodyProblems),
    security(("bearer" = ["notify:write"]))
)]
#[delete("/notify/channels/{name}")]
pub(crate) async fn delete_channel(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    manage::delete_channel(&ctx.store, tenant, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A webhook's new signing secret (the previous one keeps signing for a day).
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    pub signing_secret: String,
}

/// Rotate a webhook channel's signing secret: from now on both the new and, for a day,
/// the previous secret sign each message (`webhook-signature` carries both).
#[utoipa::path(
    operation_id = "rotate_notify_channel_secret",
    tag = "notify",
    responses((status = 200, body = RotatedSecret), Problems, BodyProblems),
    security(("bearer" = ["notify:write"]))
)]
#[post("/notify/channels/{name}/rotate-secret")]
pub(crate) async fn rotate_secret(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<web::Json<RotatedSecret>> {
    let tenant = caller.tenant()?;
    let signing_secret =
        manage::rotate_secret(&ctx.store, &ctx.notify.secrets, tenant, &name, Utc::now()).await?;
    Ok(web::Json(RotatedSecret { signing_secret }))
}

/// A delivery as listed: its event, rule, channel and status (`pending`, `held`,
/// `digested`, `throttled`, `delivered`, `dead_lettered`, `cancelled`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryBody {
    pub id: String,
    pub event_id: String,
    pub event_kind: String,
    pub rule_id: Option<String>,
    pub channel_id: String,
    pub channel_type: String,
    /// `instant`, `digest`, `test` or `redeliver`.
    pub mode: String,
    pub job_id: Option<String>,
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The receipts, one per wire attempt (on `GET /notify/deliveries/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptBody>>,
}

/// One wire attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptBody {
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    /// `ok`, `failed`, or `sending` (the process stopped mid-attempt).
    pub outcome: String,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    /// The first bytes of the receiver's answer.
    pub response_head: Option<String>,
}

impl From<AttemptRecord> for AttemptBody {
    fn from(a: AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            started_at: a.started_at,
            outcome: a.outcome,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error,
            response_head: a.response_head,
        }
    }
}

impl From<DeliveryRecord> for DeliveryBody {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_kind: d.event_kind,
            rule_id: d.rule_id,
            channel_id: d.channel_id,
            channel_type: d.channel_type,
            mode: d.mode,
            job_id: d.job_id,
            status: d.status,
            detail: d.detail,
            created_at: d.created_at,
            updated_at: d.updated_at,
            attempts: None,
        }
    }
}

/// Send a test message through the channel now (no quiet hours, no throttle); its
/// delivery is returned (`202`), with receipts under `/notify/deliveries/{id}`.
#[utoipa::path(
    operation_id = "test_notify_channel",
    tag = "notify",
    responses((status = 202, body = DeliveryBody), Problems, BodyProblems),
    security(("bearer" = ["notify:write"]))
)]
#[post("/notify/channels/{name}/test")]
pub(crate) async fn test_channel(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let d = manage::test_channel(&ctx.store, &ctx.registry, tenant, &name, Utc::now()).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/notify/deliveries/{}", d.id)))
        .json(DeliveryBody::from(d)))
}

/// A rule as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleBody {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub spec: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RuleRecord> for RuleBody {
    fn from(r: RuleRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            enabled: r.enabled,
            spec: r.spec,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Create or replace a rule by its `name`: `{"name": "high", "match": {"event_kinds": ["finding.new"],
/// "min_severity": "high", "dispositions": [], "targets": [], "labels": {},
/// "vulnerabilities": [], "vex_status": []}, "actions": [{"channel": "ops", "template":
/// null, "digest": "instant"}], "enabled": true}`. Channels and templates must exist.
#[utoipa::path(
    operation_id = "put_notify_rule",
    tag = "notify",
    request_body(content = Object, description = "the rule"),
    responses((status = 200, body = RuleBody), Problems, BodyProblems),
    security(("bearer" = ["notify:write"]))
)]
#[post("/notify/rules")]
pub(crate) async fn put_rule(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<Value>,
) -> ApiResult<web::Json<RuleBody>> {
    let tenant = caller.tenant()?;
    let name = name_of(&body.0)?;
    let r = manage::put_rule(&ctx.store, tenant, &name, &body.0, Utc::now()).await?;
    Ok(web::Json(r.into()))
}

/// The tenant's rules, by name.
#[utoipa::path(
    operation_id = "list_notify_rules",
    tag = "notify",
    params(PageQuery),
    responses((status = 200, body = Page<RuleBody>), Problems),
    security(("bearer" = ["notify:read"]))
)]
#[get("/notify/rules")]
pub(crate) async fn list_rules(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<RuleBody>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .notify()
        .rules(query.cursor(), query.limit())
        .await?;
    Ok(web::Json(Page::from_store(page, RuleBody::from)))
}

/// One rule, by name or id.
#[utoipa::path(
    operation_id = "get_notify_rule",
    tag = "notify",
    responses((status = 200, body = RuleBody), Problems),
    security(("bearer" = ["notify:read"]))
)]
#[get("/notify/rules/{name}")]
pub(crate) async fn get_rule(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<web::Json<RuleBody>> {
    let tenant = caller.tenant()?;
    let r = ctx.store.tenant(tenant).notify().rule(&name).await?;
    Ok(web::Json(r.into()))
}

/// Delete a rule.
#[utoipa::path(
    operation_id = "delete_notify_rule",
    tag = "notify",
    responses((status = 204), Problems),
    security(("bearer" = ["notify:write"]))
)]
#[delete("/notify/rules/{name}")]
pub(crate) async fn delete_rule(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let repo = ctx.store.tenant(tenant).notify();
    let r = repo.rule(&name).await?;
    repo.delete_rule(&r.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `?limit=` of a preview: how many of the latest events to examine.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Events to examine, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// Which of the tenant's last `limit` events a draft rule (the body, as for `POST
/// /notify/rules`) would have matched; nothing is saved or sent.
#[utoipa::path(
    operation_id = "preview_notify_rule",
    tag = "notify",
    params(PreviewQuery),
    request_body(content = Object, description = "a draft rule"),
    responses((status = 200, body = Object), Problems, BodyProblems),
    security(("bearer" = ["notify:read"]))
)]
#[post("/notify/rules/preview")]
pub(crate) async fn preview(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PreviewQuery>,
    body: JsonBody<Value>,
) -> ApiResult<web::Json<Value>> {
    let tenant = caller.tenant()?;
    let mut draft = body.0;
    if draft.get("name").is_none() {
        if let Some(o) = draft.as_object_mut() {
            o.insert("name".into(), json!("preview"));
        }
    }
    let out = manage::preview(&ctx.store, tenant, &draft, query.limit.unwrap_or(100)).await?;
    Ok(web::Json(out))
}

/// A template as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateBody {
    pub name: String,
    pub channel_type: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TemplateRecord> for TemplateBody {
    fn from(t: TemplateRecord) -> Self {
        Self {
            name: t.name,
            channel_type: t.channel_type,
            source: t.source,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// Create or replace a template by its `name` (`{"name": "mail", "channel_type": "email", "source": "…"}`, minijinja,
/// sandboxed). One that does not compile or render is refused with its line and column.
#[utoipa::path(
    operation_id = "put_notify_template",
    tag = "notify",
    request_body(content = Object, description = "the template"),
    responses((status = 200, body = TemplateBody), Problems, BodyProblems),
    security(("bearer" = ["notify:write"]))
)]
#[post("/notify/templates")]
pub(crate) async fn put_template(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<Value>,
) -> ApiResult<web::Json<TemplateBody>> {
    let tenant = caller.tenant()?;
    let name = name_of(&body.0)?;
    let t = manage::put_template(&ctx.store, tenant, &name, &body.0, Utc::now()).await?;
    Ok(web::Json(t.into()))
}

/// The tenant's templates.
#[utoipa::path(
    operation_id = "list_notify_templates",
    tag = "notify",
    responses((status = 200, body = Vec<TemplateBody>), Problems),
    security(("bearer" = ["notify:read"]))
)]
#[get("/notify/templates")]
pub(crate) async fn list_templates(
    ctx: web::Data<Context>,
    caller: Caller,
) -> ApiResult<web::Json<Vec<TemplateBody>>> {
    let tenant = caller.tenant()?;
    let all = ctx.store.tenant(tenant).notify().templates().await?;
    Ok(web::Json(all.into_iter().map(Into::into).collect()))
}

/// Delete a template.
#[utoipa::path(
    operation_id = "delete_notify_template",
    tag = "notify",
    responses((status = 204), Problems),
    security(("bearer" = ["notify:write"]))
)]
#[delete("/notify/templates/{name}")]
pub(crate) async fn delete_template(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    ctx.store
        .tenant(tenant)
        .notify()
        .delete_template(&name)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Filters of the deliveries list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `held`, `digested`, `throttled`, `delivered`, `dead_lettered`,
    /// `cancelled`.
    pub status: Option<String>,
    /// A channel's name or id.
    pub channel: Option<String>,
    /// A rule's name or id.
    pub rule: Option<String>,
    pub event_kind: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

const STATUSES: &[&str] = &[
    "pending",
    "held",
    "digested",
    "throttled",
    "delivered",
    "dead_lettered",
    "cancelled",
];

/// The tenant's deliveries, newest first.
#[utoipa::path(
    operation_id = "list_notify_deliveries",
    tag = "notify",
    params(DeliveryQuery),
    responses((status = 200, body = Page<DeliveryBody>), Problems),
    security(("bearer" = ["notify:read"]))
)]
#[get("/notify/deliveries")]
pub(crate) async fn list_deliveries(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<DeliveryQuery>,
) -> ApiResult<web::Json<Page<DeliveryBody>>> {
    let tenant = caller.tenant()?;
    let repo = ctx.store.tenant(tenant).notify();
    let q = query.into_inner();
    if let Some(status) = &q.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(Problem::bad_request(format!(
                "{status:?} is not a delivery status ({})",
                STATUSES.join(", ")
            ))
            .at("status"));
        }
    }
    // A channel or rule named that does not exist has no deliveries.
    let channel_id = match &q.channel {
        Some(c) => Some(repo.channel(c).await.map(|c| c.id).unwrap_or_default()),
        None => None,
    };
    let rule_id = match &q.rule {
        Some(r) => Some(repo.rule(r).await.map(|r| r.id).unwrap_or_default()),
        None => None,
    };
    if channel_id.as_deref() == Some("") || rule_id.as_deref() == Some("") {
        return Ok(web::Json(Page {
            items: Vec::new(),
            next_cursor: None,
        }));
    }
    let filter = DeliveryFilter {
        status: q.status,
        channel_id,
        rule_id,
        event_kind: q.event_kind,
        since: q.since,
        until: q.until,
    };
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    let page = repo
        .deliveries(&filter, cursor, q.limit.unwrap_or(50))
        .await?;
    Ok(web::Json(Page::from_store(page, DeliveryBody::from)))
}

/// One delivery with its receipts (one per wire attempt).
#[utoipa::path(
    operation_id = "get_notify_delivery",
    tag = "notify",
    responses((status = 200, body = DeliveryBody), Problems),
    security(("bearer" = ["notify:read"]))
)]
#[get("/notify/deliveries/{id}")]
pub(crate) async fn get_delivery(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<web::Json<DeliveryBody>> {
    let tenant = caller.tenant()?;
    let repo = ctx.store.tenant(tenant).notify();
    let d = repo.delivery(&id).await?;
    let attempts = repo.attempts(&d.id).await?;
    let mut body = DeliveryBody::from(d);
    body.attempts = Some(attempts.into_iter().map(Into::into).collect());
    Ok(web::Json(body))
}

/// Send a delivery again with the same id on the wire (receivers drop a copy they
/// have): one that was dead-lettered after its channel was fixed, for example.
#[utoipa::path(
    operation_id = "redeliver_notify_delivery",
    tag = "notify",
    responses((status = 202, body = DeliveryBody), Problems, BodyProblems),
    security(("bearer" = ["notify:write"]))
)]
#[post("/notify/deliveries/{id}/redeliver")]
pub(crate) async fn redeliver(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let d = manage::redeliver(&ctx.store, &ctx.registry, tenant, &id, Utc::now()).await?;
    Ok(HttpResponse::Accepted().json(DeliveryBody::from(d)))
}
