//! Schedules (next fire times, pause, resume, run now) and their runs.

use super::*;

pub(super) async fn schedules(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/schedules").await?;
    let tenant = access.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .schedules()
        .list(query.cursor.as_deref().filter(|c| !c.is_empty()), 100)
        .await?;
    let can_act = viewer.can(&ctx, Method::POST, "/api/v1/schedules/{schedule}/pause");
    let body = html! {
        table data-testid="schedules" {
            thead { tr {
                th scope="col" { "Schedule" } th scope="col" { "Kind" } th scope="col" { "When" }
                th scope="col" { "State" } th scope="col" { "Next fire" } th scope="col" { "Last run" }
                @if can_act { th scope="col" { "Actions" } }
            } }
            tbody {
                @for s in &page.items {
                    @let active = s.state == "active";
                    tr data-schedule=(s.name) {
                        th scope="row" { (s.name) }
                        td { (s.kind) }
                        td { code { (s.cron) } " " span.muted { (s.timezone) } }
                        td { (badge(if active { "active" } else { "paused" })) }
                        td { @if active { (opt_time(s.next_fire_at.or(s.next_due_at))) } @else { span.muted { "paused" } } }
                        td {
                            @if let Some(run) = &s.last_run_id { a href={ (PREFIX) "/runs/" (run) } { code { (run) } } " · " }
                            a href={ (PREFIX) "/runs?schedule=" (view::encode(&s.name)) } { "all runs" span.sr { " of " (s.name) } }
                        }
                        @if can_act {
                            td {
                                form.inline method="post" action={ (PREFIX) "/schedules/" (s.id) "/" (if active { "pause" } else { "resume" }) } {
                                    (csrf(&viewer))
                                    button type="submit" aria-label={ (if active { "Pause " } else { "Resume " }) (s.name) } { (if active { "Pause" } else { "Resume" }) }
                                }
                                form.inline method="post" action={ (PREFIX) "/schedules/" (s.id) "/run" } {
                                    (csrf(&viewer))
                                    button type="submit" aria-label={ "Run " (s.name) " now" } { "Run now" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if page.items.is_empty() { p.muted { "No schedules." } }
        (view::pager(&format!("{PREFIX}/schedules"), &[], page.next_cursor.as_deref()))
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Schedules,
        "Schedules",
        query.notice.as_deref(),
        body,
    )
    .await)
}

pub(super) async fn schedule_action(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> PageResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let operation = match action.as_str() {
        "pause" => "/api/v1/schedules/{schedule}/pause",
        "resume" => "/api/v1/schedules/{schedule}/resume",
        "run" => "/api/v1/schedules/{schedule}/run",
        _ => return Err(Problem::not_found(format!("no action {action:?} on schedules")).into()),
    };
    let access: Access = viewer
        .act(&ctx, &req, form.csrf.as_deref(), Method::POST, operation)
        .await?;
    let tenant = access.tenant()?.clone();
    let now = Utc::now();
    let result: Result<String, Problem> = async {
        Ok(match action.as_str() {
            "pause" => {
                let s = stella_scheduler::manage::set_enabled(&ctx.store, &tenant, &id, false, now)
                    .await?;
                format!("Schedule {} paused.", s.name)
            }
            "resume" => {
                let s = stella_scheduler::manage::set_enabled(&ctx.store, &tenant, &id, true, now)
                    .await?;
                format!("Schedule {} resumed.", s.name)
            }
            _ => {
                let run = stella_scheduler::manage::trigger(&ctx.store, &tenant, &id, now).await?;
                format!("Run {} started.", run.id)
            }
        })
    }
    .await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::OK);
    access
        .audit(
            &ctx,
            format!("/api/v1/schedules/{id}/{action}"),
            status,
            None,
        )
        .await;
    let notice = result?;
    Ok(see_other(&format!(
        "{PREFIX}/schedules?notice={}",
        view::encode(&notice)
    )))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RunsQuery {
    schedule: Option<String>,
    cursor: Option<String>,
}

pub(super) async fn runs(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<RunsQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/runs").await?;
    let tenant = access.tenant()?;
    let name = query.schedule.clone().unwrap_or_default();
    let schedule = match Some(name.as_str()).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(ctx.store.tenant(tenant).schedules().get(raw).await?.id),
    };
    let page = ctx
        .store
        .tenant(tenant)
        .runs()
        .list(
            schedule.as_ref(),
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            50,
        )
        .await?;
    let items: Vec<v1::schedules::RunView> = page
        .items
        .into_iter()
        .map(|r| v1::schedules::RunView::of(r, None))
        .collect();
    let title = if name.is_empty() {
        "Runs".to_owned()
    } else {
        format!("Runs of {name}")
    };
    let body = html! {
        table data-testid="runs" {
            thead { tr {
                th scope="col" { "Run" } th scope="col" { "Trigger" } th scope="col" { "Kind" }
                th scope="col" { "State" } th scope="col" { "Due" } th scope="col" { "Duration" }
            } }
            tbody {
                @for r in &items {
                    tr {
                        td { a href={ (PREFIX) "/runs/" (r.id) } { code { (r.id) } } }
                        td { (r.trigger) }
                        td { (r.kind) }
                        td { (badge(&r.state)) }
                        td { (time(r.due_at)) }
                        td { @if let Some(done) = r.finished_at { (view::duration(r.created_at, done)) } }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No runs." } }
        (view::pager(&format!("{PREFIX}/runs"), &[("schedule", &name)], page.next_cursor.as_deref()))
    };
    Ok(render(&ctx, &viewer, Section::Schedules, &title, None, body).await)
}

pub(super) async fn run(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/runs/{id}").await?;
    let tenant = access.tenant()?;
    let id = v1::not_found_unless(stella_store::RunId::parse(&id), "run", &id)?;
    let runs = ctx.store.tenant(tenant);
    let runs = runs.runs();
    let record = runs.get(&id).await?;
    let results = runs.targets(&id).await?;
    let r = v1::schedules::RunView::of(record, Some(results));
    let body = html! {
        dl.facts {
            dt { "Id" } dd { code { (r.id) } }
            dt { "Trigger" } dd { (r.trigger) }
            dt { "Kind" } dd { (r.kind) }
            dt { "State" } dd { (badge(&r.state)) }
            dt { "Due" } dd { (time(r.due_at)) }
            dt { "Finished" } dd { (opt_time(r.finished_at)) }
            dt { "Counts" } dd { (compact(&r.counts)) }
            @if let Some(error) = &r.error { dt { "Error" } dd.error { (error) } }
        }
        h2 { "Targets" }
        @let results = r.results.as_deref().unwrap_or_default();
        @if results.is_empty() { p.muted { "No targets." } } @else {
            table data-testid="run-targets" {
                thead { tr {
                    th scope="col" { "Target" } th scope="col" { "Scan" } th scope="col" { "State" } th scope="col" { "Against the previous scan" }
                } }
                tbody {
                    @for t in results {
                        tr {
                            td { (t.target_name) }
                            td { a href={ (PREFIX) "/scans/" (t.scan_id) } { code { (t.scan_id) } } }
                            td { (badge(&t.state)) }
                            td { @if let Some(diff) = &t.diff { (compact(diff)) } }
                        }
                    }
                }
            }
        }
        h2 { "Why" }
        (view::json_block(&r.reason))
    };
    Ok(render(&ctx, &viewer, Section::Schedules, "Run", None, body).await)
}
