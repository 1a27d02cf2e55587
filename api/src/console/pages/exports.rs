//! Export runs with their progress and file downloads.

use super::*;

pub(super) async fn exports(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/exports").await?;
    let tenant = access.tenant()?;
    let filter = JobFilter {
        state: None,
        kind: Some(<stella_actors::export::Export as Kind>::NAME.to_owned()),
    };
    let page = ctx
        .store
        .tenant(tenant)
        .jobs()
        .list(
            &filter,
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            50,
        )
        .await?;
    let mut items = Vec::new();
    for job in page.items {
        items.push(v1::exports::view(&ctx, job, false).await?);
    }
    let body = html! {
        table data-testid="exports" {
            thead { tr {
                th scope="col" { "Export" } th scope="col" { "Profile" } th scope="col" { "Status" }
                th scope="col" { "Items" } th scope="col" { "Started" } th scope="col" { "Duration" }
            } }
            tbody {
                @for e in &items {
                    tr {
                        td { a href={ (PREFIX) "/exports/" (e.export_id) } { code { (e.export_id) } } }
                        td { (e.profile.clone().unwrap_or_default()) @if let Some(r) = e.revision { " r" (r) } }
                        td { (badge(&e.status)) }
                        td { @if let (Some(d), Some(t)) = (e.items_done, e.items_total) { progress max=(t.max(1)) value=(d) aria-label="items written" {} " " (d) " / " (t) } }
                        td { (time(e.created_at)) }
                        td { @if let Some(done) = e.finished_at { (view::duration(e.created_at, done)) } }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No exports yet: start one with " code { "stella export run" } "." } }
        (view::pager(&format!("{PREFIX}/exports"), &[], page.next_cursor.as_deref()))
    };
    Ok(render(&ctx, &viewer, Section::Exports, "Exports", None, body).await)
}

pub(super) async fn export(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/exports/{export_id}")
        .await?;
    let job = v1::exports::export_job(&ctx, &access.caller, &id).await?;
    let (state, step, terminal) = (
        job.state.as_str().to_owned(),
        job.step.clone(),
        job.state.is_terminal(),
    );
    let e = v1::exports::view(&ctx, job, true).await?;
    let body = html! {
        (live_progress(&format!("{PREFIX}/exports/{}/stream", e.export_id), &state, &step, EXPORT_STEPS, "completed", terminal))
        dl.facts {
            dt { "Id" } dd { code { (e.export_id) } }
            dt { "Profile" } dd { (e.profile.clone().unwrap_or_default()) @if let Some(r) = e.revision { " revision " (r) } }
            dt { "Status" } dd { (badge(&e.status)) }
            dt { "Started" } dd { (time(e.created_at)) }
            dt { "Finished" } dd { (opt_time(e.finished_at)) }
            @if let Some(error) = &e.error { dt { "Error" } dd.error { (error) } }
        }
        h2 { "Files" }
        @if e.files.is_empty() { p.muted { "No files yet." } } @else {
            table data-testid="export-files" {
                thead { tr { th scope="col" { "File" } th scope="col" class="num" { "Bytes" } th scope="col" { "SHA-256" } } }
                tbody {
                    @for f in &e.files {
                        tr {
                            td { a href={ (PREFIX) "/exports/" (e.export_id) "/files/" (f.name) } download { (f.name) } }
                            td.num { (f.size_bytes) }
                            td { code.hash { (f.sha256) } }
                        }
                    }
                }
            }
        }
    };
    Ok(render(&ctx, &viewer, Section::Exports, "Export", None, body).await)
}

pub(super) async fn export_stream(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/exports/{export_id}/stream")
        .await?;
    let tenant = access.tenant()?.clone();
    let job = v1::exports::export_job(&ctx, &access.caller, &id).await?;
    Ok(v1::streams::job_stream(ctx, tenant, job.id, true, &req, None).await?)
}

pub(super) async fn download(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(
            &ctx,
            Method::GET,
            "/api/v1/exports/{export_id}/files/{name}",
        )
        .await?;
    let (id, name) = path.into_inner();
    let job = v1::exports::export_job(&ctx, &access.caller, &id).await?;
    Ok(v1::exports::serve_file(&ctx, &req, &job, &name).await?)
}
