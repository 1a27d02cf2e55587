//! The events stream a tenant sees: its own (`scan.completed`, `vex.imported`,
//! `policy.updated`) and the global ones (`advisory.delta`, global `vex.imported`), oldest
//! first. Poll with the last `next_cursor` (or the last `seq`) to read what happened
//! since.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_store::repo::EventRecord;
use utoipa::{IntoParams, ToSchema};

use super::{Page, Problems};
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    /// `scan.completed`, `advisory.delta`, `vex.imported`, `policy.updated`.
    pub kind: String,
    /// Absent for global events.
    pub tenant: Option<String>,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

impl From<EventRecord> for EventView {
    fn from(record: EventRecord) -> Self {
        Self {
            seq: record.seq,
            kind: record.kind,
            tenant: record.tenant,
            payload: record.payload,
            created_at: record.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events of this kind.
    pub kind: Option<String>,
    pub limit: Option<u32>,
    /// Events after this cursor (`next_cursor`, or a `seq`).
    pub cursor: Option<String>,
}

/// Read the events stream.
#[utoipa::path(
    operation_id = "list_events",
    tag = "events",
    params(EventQuery),
    responses((status = 200, body = Page<EventView>), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/events")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<EventQuery>,
) -> ApiResult<web::Json<Page<EventView>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .events()
        .list(
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            query.kind.as_deref().filter(|k| !k.is_empty()),
            query.limit.unwrap_or(50),
        )
        .await
        .map_err(|err| Problem::from(err).at("cursor"))?;
    Ok(web::Json(Page::from_store(page, EventView::from)))
}
