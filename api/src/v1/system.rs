//! The process's supervision tree (administrators only).

use actix_web::http::StatusCode;
use actix_web::{get, web};
use serde::Serialize;
use stella_supervisor::ActorSnapshot;
use utoipa::ToSchema;

use super::Problems;
use crate::problem::{ApiResult, Problem};
use crate::Context;

/// One actor and, below it, the actors it supervises.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActorView {
    pub name: String,
    /// `root`, `tenant`, `job`, ...
    pub kind: String,
    /// Messages waiting for this actor.
    pub queue_depth: u64,
    pub in_flight: u64,
    pub restarts: u64,
    /// A quarantined actor takes no work until its quarantine ends.
    pub quarantined: bool,
    pub last_error: Option<String>,
    #[schema(no_recursion)]
    pub children: Vec<ActorView>,
}

impl From<ActorSnapshot> for ActorView {
    fn from(s: ActorSnapshot) -> Self {
        Self {
            name: s.name,
            kind: s.kind,
            queue_depth: s.queue_depth,
            in_flight: s.in_flight,
            restarts: s.restarts,
            quarantined: s.quarantined,
            last_error: s.last_error,
            children: s.children.into_iter().map(ActorView::from).collect(),
        }
    }
}

/// The supervision tree of the process serving this request.
#[utoipa::path(
    operation_id = "get_actor_tree",
    tag = "system",
    responses((status = 200, body = ActorView), (status = 503, description = "No actor runtime in this process"), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/system/actors")]
pub(crate) async fn actors(ctx: web::Data<Context>) -> ApiResult<web::Json<ActorView>> {
    let observer = ctx.observer.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this process runs no actors",
        )
    })?;
    Ok(web::Json(observer.snapshot().await.into()))
}
