//! Jobs: the list with its filters in the URL, a job with its steps, attempts and live
//! progress, cancelling one or many (a bulk cancel shows its count first).

use super::*;

#[derive(Debug, Default, Deserialize)]
pub(super) struct JobsQuery {
    state: Option<String>,
    kind: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

pub(super) const STATES: &[&str] = &[
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "cancelled",
];

pub(super) async fn jobs(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<JobsQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/jobs").await?;
    let tenant = access.tenant()?;
    let state_text = query.state.clone().unwrap_or_default();
    let kind_text = query.kind.clone().unwrap_or_default();
    let state = Some(state_text.as_str())
        .filter(|s| !s.is_empty())
        .map(JobState::parse)
        .transpose()
        .map_err(Problem::from)?;
    let filter = JobFilter {
        state,
        kind: Some(kind_text.clone()).filter(|k| !k.is_empty()),
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
    let now = Utc::now();
    let kinds: Vec<&str> = ctx.registry.names().collect();
    let can_cancel = viewer.can(&ctx, Method::POST, "/api/v1/jobs/{id}/cancel");
    let body = html! {
        form.filters method="get" action={ (PREFIX) "/jobs" } {
            label for="f-state" { "State" }
            select id="f-state" name="state" {
                option value="" { "any" }
                @for s in STATES { option value=(s) selected[state_text == *s] { (s) } }
            }
            label for="f-kind" { "Kind" }
            select id="f-kind" name="kind" {
                option value="" { "any" }
                @for k in &kinds { option value=(k) selected[kind_text == *k] { (k) } }
            }
            button type="submit" { "Filter" }
        }
        table data-testid="jobs" {
            thead { tr {
                th scope="col" { "Job" } th scope="col" { "Kind" } th scope="col" { "State" }
                th scope="col" { "Step" } th scope="col" class="num" { "Attempts" }
                th scope="col" { "Created" } th scope="col" { "Duration" }
            } }
            tbody {
                @for job in &page.items {
                    tr {
                        td { a href={ (PREFIX) "/jobs/" (job.id) } { code { (job.id) } } }
                        td { (job.kind) }
                        td { (badge(job.state.as_str())) }
                        td { (job.step) }
                        td.num { (job.attempts) " / " (job.max_attempts) }
                        td { (time(job.created_at)) }
                        td { (view::duration(job.created_at, job.finished_at.unwrap_or(now))) }
                    }
                }
            }
        }
        @if page.items.is_empty() { p.muted { "No jobs match." } }
        (view::pager(&format!("{PREFIX}/jobs"), &[("state", &state_text), ("kind", &kind_text)], page.next_cursor.as_deref()))
        @if can_cancel && !matches!(state, Some(s) if s.is_terminal()) {
            p { a href={ (PREFIX) "/jobs/cancel?" (maud::PreEscaped(view::encode_query(&[("state", &state_text), ("kind", &kind_text)], None))) } { "Cancel the unfinished jobs of this filter…" } }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Jobs,
        "Jobs",
        query.notice.as_deref(),
        body,
    )
    .await)
}

/// Jobs a bulk action touches at most.
pub(super) const BULK_MAX: usize = 1000;

/// The unfinished jobs of a filter (a terminal state matches none), at most
/// [`BULK_MAX`] + 1 (so "more than" can be said). One pass in id order, so a job that
/// moves from queued to running meanwhile is counted once.
pub(super) async fn unfinished_of(
    ctx: &Context,
    tenant: &TenantId,
    state: Option<&str>,
    kind: Option<&str>,
) -> PageResult<Vec<JobId>> {
    let state = state
        .filter(|s| !s.is_empty())
        .map(JobState::parse)
        .transpose()
        .map_err(Problem::from)?;
    if state.is_some_and(JobState::is_terminal) {
        return Ok(Vec::new());
    }
    let filter = JobFilter {
        state,
        kind: kind.filter(|k| !k.is_empty()).map(str::to_owned),
    };
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ctx
            .store
            .tenant(tenant)
            .jobs()
            .list(&filter, cursor.as_deref(), 500)
            .await?;
        ids.extend(
            page.items
                .into_iter()
                .filter(|j| !j.state.is_terminal())
                .map(|j| j.id),
        );
        if ids.len() > BULK_MAX {
            ids.truncate(BULK_MAX + 1);
            return Ok(ids);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(ids),
        }
    }
}

/// What a bulk cancel by filter will touch, before it runs: the count, and a form that
/// asks for a reason.
pub(super) async fn bulk_cancel_preview(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<JobsQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::POST, "/api/v1/jobs/{id}/cancel")
        .await?;
    let tenant = access.tenant()?;
    let (state, kind) = (
        query.state.clone().unwrap_or_default(),
        query.kind.clone().unwrap_or_default(),
    );
    let ids = unfinished_of(&ctx, tenant, Some(&state), Some(&kind)).await?;
    let count = ids.len().min(BULK_MAX);
    let body = html! {
        p data-testid="bulk-count" {
            @if ids.len() > BULK_MAX { "More than " (BULK_MAX) " unfinished jobs match; this cancels the first " (BULK_MAX) "." }
            @else { (count) " unfinished " (if count == 1 { "job matches" } else { "jobs match" }) " state " strong { (if state.is_empty() { "any unfinished" } else { state.as_str() }) } " and kind " strong { (if kind.is_empty() { "any" } else { kind.as_str() }) } "." }
        }
        @if count > 0 {
            form.signin method="post" action={ (PREFIX) "/jobs/cancel" } {
                (csrf(&viewer))
                input type="hidden" name="state" value=(state);
                input type="hidden" name="kind" value=(kind);
                input type="hidden" name="expected" value=(count);
                label for="bulk-reason" { "Reason (kept in the audit log)" }
                input id="bulk-reason" name="reason" type="text" required minlength="3";
                button type="submit" class="danger" { "Cancel " (count) " " (if count == 1 { "job" } else { "jobs" }) }
            }
        }
        p { a href={ (PREFIX) "/jobs?" (maud::PreEscaped(view::encode_query(&[("state", &state), ("kind", &kind)], None))) } { "Back to the jobs" } }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Jobs,
        "Cancel jobs by filter",
        None,
        body,
    )
    .await)
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkForm {
    csrf: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    reason: Option<String>,
    /// The count the preview showed.
    expected: Option<usize>,
}

pub(super) async fn bulk_cancel(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    form: web::Form<BulkForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/jobs/{id}/cancel",
        )
        .await?;
    let reason = reason(&ReasonForm {
        csrf: None,
        reason: form.reason.clone(),
    })?;
    let tenant = access.tenant()?.clone();
    let ids = unfinished_of(&ctx, &tenant, form.state.as_deref(), form.kind.as_deref()).await?;
    let (mut cancelled, mut skipped) = (0usize, 0usize);
    for id in ids.iter().take(BULK_MAX) {
        // One by one through the API's cancel, each audited as its own cancel.
        let result = v1::jobs::cancel_job(&ctx, &tenant, id, &access.caller).await;
        let status = result
            .as_ref()
            .map_or_else(|p| p.status, |_| StatusCode::OK);
        access
            .audit(
                &ctx,
                format!("/api/v1/jobs/{id}/cancel"),
                status,
                Some(&reason),
            )
            .await;
        match result {
            Ok(_) => cancelled += 1,
            // Finished meanwhile: nothing to cancel.
            Err(_) => skipped += 1,
        }
    }
    let mut notice = format!("Cancelled {cancelled} jobs; {skipped} had finished meanwhile.");
    if form.expected.is_some_and(|n| n != ids.len().min(BULK_MAX)) {
        notice.push_str(" The filter matched a different number than the preview showed.");
    }
    Ok(see_other(&format!(
        "{PREFIX}/jobs?notice={}",
        view::encode(&notice)
    )))
}

pub(super) fn job_id(raw: &str) -> PageResult<JobId> {
    Ok(v1::not_found_unless(JobId::parse(raw), "job", raw)?)
}

pub(super) async fn job(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/jobs/{id}").await?;
    let tenant = access.tenant()?;
    let id = job_id(&id)?;
    let jobs = ctx.store.tenant(tenant);
    let jobs = jobs.jobs();
    let job = jobs.get(&id).await?;
    let events = jobs.events(&id).await?;
    let terminal = job.state.is_terminal();
    let (steps, link): (&[&str], Option<String>) = if job.kind == Scan::NAME {
        (SCAN_STEPS, Some(format!("{PREFIX}/scans/{}", job.id)))
    } else if job.kind == <stella_actors::export::Export as Kind>::NAME {
        (EXPORT_STEPS, Some(format!("{PREFIX}/exports/{}", job.id)))
    } else {
        (&[], None)
    };
    let can_cancel = !terminal && viewer.can(&ctx, Method::POST, "/api/v1/jobs/{id}/cancel");
    let steps: Vec<&str> = if steps.is_empty() {
        vec![job.step.as_str()]
    } else {
        steps.to_vec()
    };
    let body = html! {
        (live_progress(&format!("{PREFIX}/jobs/{}/stream", job.id), job.state.as_str(), &job.step, &steps, "succeeded", terminal))
        dl.facts {
            dt { "Id" } dd { code { (job.id) } }
            dt { "Kind" } dd { (job.kind) @if let Some(link) = &link { " · " a href=(link) { "open the " (job.kind) } } }
            dt { "State" } dd { (badge(job.state.as_str())) }
            dt { "Attempts" } dd { (job.attempts) " of " (job.max_attempts) }
            dt { "Created" } dd { (time(job.created_at)) }
            dt { "Finished" } dd { (opt_time(job.finished_at)) }
            dt { "Duration" } dd { (view::duration(job.created_at, job.finished_at.unwrap_or_else(Utc::now))) }
            @if let Some(error) = &job.last_error { dt { "Last error" } dd.error { (error) } }
        }
        @if can_cancel {
            form.inline method="post" action={ (PREFIX) "/jobs/" (job.id) "/cancel" } data-testid="cancel-job" {
                (csrf(&viewer))
                label for="cancel-reason" { "Reason" }
                input id="cancel-reason" name="reason" type="text" required minlength="3"
                    placeholder="why (kept in the audit log)";
                button type="submit" class="danger" { "Cancel this job" }
            }
        }
        h2 { "Steps and attempts" }
        table data-testid="job-events" {
            thead { tr {
                th scope="col" class="num" { "#" } th scope="col" { "From" } th scope="col" { "To" }
                th scope="col" { "Step" } th scope="col" class="num" { "Attempt" }
                th scope="col" { "Error" } th scope="col" { "At" }
            } }
            tbody {
                @for e in &events {
                    tr {
                        td.num { (e.seq) }
                        td { @if let Some(from) = e.from_state { (from.as_str()) } }
                        td { (badge(e.to_state.as_str())) }
                        td { (e.step) }
                        td.num { (e.attempt) }
                        td.error { @if let Some(err) = &e.error { (err) } }
                        td { (time(e.at)) }
                    }
                }
            }
        }
        h2 { "Parameters" }
        (view::json_block(&job.params))
        @if let Some(result) = &job.result { h2 { "Result" } (view::json_block(result)) }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Jobs,
        &format!("Job {}", job.kind),
        query.notice.as_deref(),
        body,
    )
    .await)
}

/// Cancels one job, with a reason (the API's `cancel_job`, audited as it).
pub(super) async fn cancel_job(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
    form: web::Form<ReasonForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/jobs/{id}/cancel",
        )
        .await?;
    let reason = reason(&form)?;
    let tenant = access.tenant()?.clone();
    let id = job_id(&id)?;
    let result = v1::jobs::cancel_job(&ctx, &tenant, &id, &access.caller).await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::OK);
    access
        .audit(
            &ctx,
            format!("/api/v1/jobs/{id}/cancel"),
            status,
            Some(&reason),
        )
        .await;
    let job = result?;
    Ok(see_other(&format!(
        "{PREFIX}/jobs/{}?notice={}",
        job.id,
        view::encode(&format!("Job {} is {}.", job.id, job.state))
    )))
}

pub(super) async fn job_stream(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/jobs/{id}/stream")
        .await?;
    let tenant = access.tenant()?.clone();
    let id = job_id(&id)?;
    let job = ctx.store.tenant(&tenant).jobs().get(&id).await?;
    let export = job.kind == <stella_actors::export::Export as Kind>::NAME;
    Ok(v1::streams::job_stream(ctx, tenant, id, export, &req, None).await?)
}
