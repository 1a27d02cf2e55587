//! Dead letters: replay or discard one with a reason, or replay many by role after a
//! count.

use super::*;

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeadLetterQuery {
    role: Option<String>,
    notice: Option<String>,
}

/// The tenant's dead letters, of one role or all, at most `max`.
pub(super) async fn letters_of(
    ctx: &Context,
    tenant: &TenantId,
    role: &str,
    max: usize,
) -> PageResult<Vec<stella_store::mailbox::DeadLetter>> {
    let mut items = Vec::new();
    for name in stella_actors::ROLES {
        if !role.is_empty() && role != name {
            continue;
        }
        let role = Role::parse(name).map_err(Problem::from)?;
        for letter in v1::dead_letters::of_tenant(ctx, &role, tenant).await? {
            if items.len() >= max {
                return Ok(items);
            }
            items.push(letter);
        }
    }
    Ok(items)
}

pub(super) fn check_role(role: &str) -> PageResult<()> {
    if role.is_empty() || stella_actors::ROLES.contains(&role) {
        Ok(())
    } else {
        Err(Problem::bad_request(format!(
            "unknown role {role:?}; roles: {}",
            stella_actors::ROLES.join(", ")
        ))
        .into())
    }
}

pub(super) async fn dead_letters(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<DeadLetterQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/dead-letters")
        .await?;
    let tenant = access.tenant()?;
    let role_filter = query.role.clone().unwrap_or_default();
    check_role(&role_filter)?;
    let items = letters_of(&ctx, tenant, &role_filter, 500).await?;
    let can_act = viewer.can(
        &ctx,
        Method::POST,
        "/api/v1/dead-letters/{role}/{id}/replay",
    );
    let body = html! {
        p.muted { "Messages that failed every attempt. Replaying sends one again as a fresh attempt; discarding drops it for good. Both ask for a reason, kept in the audit log." }
        form.filters method="get" action={ (PREFIX) "/dead-letters" } {
            label for="f-role" { "Role" }
            select id="f-role" name="role" {
                option value="" { "any" }
                @for r in stella_actors::ROLES { option value=(r) selected[role_filter == *r] { (r) } }
            }
            button type="submit" { "Filter" }
            @if can_act && !items.is_empty() {
                a href={ (PREFIX) "/dead-letters/replay?" (maud::PreEscaped(view::encode_query(&[("role", &role_filter)], None))) } { "Replay every dead letter of this filter…" }
            }
        }
        @if items.is_empty() { p data-testid="no-dead-letters" { "No dead letters." } }
        @for d in &items {
            @let role = d.envelope.role.as_str();
            article.card data-testid="dead-letter" {
                h2 { (d.envelope.kind) " in " (role) " " small { code { (d.id) } } }
                dl.facts {
                    @if let Some(job) = &d.envelope.job_id { dt { "Job" } dd { a href={ (PREFIX) "/jobs/" (job) } { code { (job) } } } }
                    dt { "Attempts" } dd { (d.envelope.attempt + 1) " · delivered " (d.deliveries) " times" }
                    dt { "Error" } dd.error { (d.error) }
                    dt { "Died" } dd { (time(d.died_at)) }
                }
                @if can_act {
                    form.inline method="post" action={ (PREFIX) "/dead-letters/" (view::encode(role)) "/" (view::encode(&d.id)) "/replay" } {
                        (csrf(&viewer))
                        label for={ "reason-" (d.id) } { "Reason" }
                        input id={ "reason-" (d.id) } name="reason" type="text" required minlength="3"
                            placeholder="why (kept in the audit log)";
                        button type="submit" { "Replay" }
                        button type="submit" class="danger" formaction={ (PREFIX) "/dead-letters/" (view::encode(role)) "/" (view::encode(&d.id)) "/discard" } { "Discard" }
                    }
                }
            }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::DeadLetters,
        "Dead letters",
        query.notice.as_deref(),
        body,
    )
    .await)
}

/// Dead letters a bulk replay touches at most.
pub(super) const BULK_REPLAY_MAX: usize = 500;

/// What a bulk replay will touch, before it runs.
pub(super) async fn bulk_replay_preview(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<DeadLetterQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(
            &ctx,
            Method::POST,
            "/api/v1/dead-letters/{role}/{id}/replay",
        )
        .await?;
    let tenant = access.tenant()?;
    let role = query.role.clone().unwrap_or_default();
    check_role(&role)?;
    let items = letters_of(&ctx, tenant, &role, BULK_REPLAY_MAX + 1).await?;
    let count = items.len().min(BULK_REPLAY_MAX);
    let body = html! {
        p data-testid="bulk-count" {
            @if items.len() > BULK_REPLAY_MAX { "More than " (BULK_REPLAY_MAX) " dead letters match; this replays the first " (BULK_REPLAY_MAX) "." }
            @else { (count) " dead " (if count == 1 { "letter" } else { "letters" }) " of role " strong { (if role.is_empty() { "any" } else { role.as_str() }) } " will be replayed." }
        }
        @if count > 0 {
            form.signin method="post" action={ (PREFIX) "/dead-letters/replay" } {
                (csrf(&viewer))
                input type="hidden" name="role" value=(role);
                label for="bulk-reason" { "Reason (kept in the audit log)" }
                input id="bulk-reason" name="reason" type="text" required minlength="3";
                button type="submit" { "Replay " (count) " dead " (if count == 1 { "letter" } else { "letters" }) }
            }
        }
        p { a href={ (PREFIX) "/dead-letters" } { "Back to the dead letters" } }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::DeadLetters,
        "Replay dead letters by filter",
        None,
        body,
    )
    .await)
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkReplayForm {
    csrf: Option<String>,
    role: Option<String>,
    reason: Option<String>,
}

pub(super) async fn bulk_replay(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    form: web::Form<BulkReplayForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/dead-letters/{role}/{id}/replay",
        )
        .await?;
    let reason = reason(&ReasonForm {
        csrf: None,
        reason: form.reason.clone(),
    })?;
    let tenant = access.tenant()?.clone();
    let role = form.role.clone().unwrap_or_default();
    check_role(&role)?;
    let mut replayed = 0usize;
    for letter in letters_of(&ctx, &tenant, &role, BULK_REPLAY_MAX).await? {
        // One by one as the API replays one, each audited as its own replay.
        let result = ctx
            .mailbox
            .replay_dead_letter(&letter.envelope.role, &letter.id, Utc::now())
            .await
            .map_err(Problem::from);
        let status = result
            .as_ref()
            .map_or_else(|p| p.status, |_| StatusCode::OK);
        access
            .audit(
                &ctx,
                format!(
                    "/api/v1/dead-letters/{}/{}/replay",
                    letter.envelope.role.as_str(),
                    letter.id
                ),
                status,
                Some(&reason),
            )
            .await;
        if result.is_ok() {
            replayed += 1;
        }
    }
    Ok(see_other(&format!(
        "{PREFIX}/dead-letters?notice={}",
        view::encode(&format!("Replayed {replayed} dead letters."))
    )))
}

pub(super) async fn replay(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
) -> PageResult<HttpResponse> {
    dead_letter_action(ctx, viewer, req, path, form, true).await
}

pub(super) async fn discard(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
) -> PageResult<HttpResponse> {
    dead_letter_action(ctx, viewer, req, path, form, false).await
}

pub(super) async fn dead_letter_action(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
    replay: bool,
) -> PageResult<HttpResponse> {
    let (method, operation) = if replay {
        (Method::POST, "/api/v1/dead-letters/{role}/{id}/replay")
    } else {
        (Method::DELETE, "/api/v1/dead-letters/{role}/{id}")
    };
    let access = viewer
        .act(&ctx, &req, form.csrf.as_deref(), method, operation)
        .await?;
    let reason = reason(&form)?;
    let (role, id) = path.into_inner();
    let target = format!(
        "/api/v1/dead-letters/{role}/{id}{}",
        if replay { "/replay" } else { "" }
    );
    let result = async {
        let (role, dead) = v1::dead_letters::find(&ctx, &access.caller, &role, &id).await?;
        if replay {
            ctx.mailbox
                .replay_dead_letter(&role, &dead.id, Utc::now())
                .await?;
        } else {
            ctx.mailbox.discard_dead_letter(&role, &dead.id).await?;
        }
        Ok::<_, Problem>(dead)
    }
    .await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::OK);
    access.audit(&ctx, target, status, Some(&reason)).await;
    let dead = result?;
    let done = if replay { "replayed" } else { "discarded" };
    Ok(see_other(&format!(
        "{PREFIX}/dead-letters?notice={}",
        view::encode(&format!(
            "Dead letter {} ({}) {done}.",
            dead.id, dead.envelope.kind
        ))
    )))
}
