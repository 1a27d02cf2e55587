//! Rollouts for administrators: waves, gates, history; pause, resume, abort.

use super::*;

pub(super) async fn rollouts(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    viewer.may(&ctx, Method::GET, "/api/v1/rollouts").await?;
    let page = ctx
        .store
        .rollouts()
        .list(query.cursor.as_deref().filter(|c| !c.is_empty()), 50)
        .await?;
    let mut items = Vec::new();
    for record in page.items {
        let tenants = ctx.store.rollouts().tenants(&record.id, None).await?;
        items.push(v1::rollouts::view(record, tenants, None, None));
    }
    let body = html! {
        table data-testid="rollouts" {
            thead { tr {
                th scope="col" { "Rollout" } th scope="col" { "Pack" } th scope="col" { "State" }
                th scope="col" { "Wave" } th scope="col" { "Phase" } th scope="col" { "Created" }
            } }
            tbody {
                @for r in &items {
                    tr {
                        td { a href={ (PREFIX) "/rollouts/" (view::encode(&r.id)) } { code { (r.id) } } }
                        td { (r.pack) "@" (r.version) }
                        td { (badge(&r.state)) }
                        td { (r.wave + 1) " of " (r.waves.len()) }
                        td { (r.phase) }
                        td { (time(r.created_at)) }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No rollouts." } }
        (view::pager(&format!("{PREFIX}/rollouts"), &[], page.next_cursor.as_deref()))
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Rollouts,
        "Rollouts",
        query.notice.as_deref(),
        body,
    )
    .await)
}

pub(super) async fn rollout(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> PageResult<HttpResponse> {
    viewer.may(&ctx, Method::GET, "/api/v1/rollouts").await?;
    let id = v1::not_found_unless(stella_store::RolloutId::parse(&id), "rollout", &id)?;
    let rollouts = ctx.store.rollouts();
    let record = rollouts.get(&id).await?;
    let tenants = rollouts.tenants(&id, None).await?;
    let transitions = rollouts.transitions(&id).await?;
    let r = v1::rollouts::view(record, tenants, Some(transitions), None);
    let can_act = viewer.can(&ctx, Method::POST, "/api/v1/rollouts/{id}/pause");
    let actions: &[(&str, &str)] = match r.state.as_str() {
        "running" => &[("pause", "Pause"), ("abort", "Abort and roll back")],
        "paused" => &[("resume", "Resume"), ("abort", "Abort and roll back")],
        _ => &[],
    };
    let body = html! {
        dl.facts {
            dt { "Pack" } dd { (r.pack) "@" (r.version) }
            dt { "State" } dd data-testid="rollout-state" { (badge(&r.state)) }
            dt { "Wave" } dd { (r.wave + 1) " of " (r.waves.len()) " · phase " (r.phase) }
            dt { "Next step" } dd { (time(r.next_at)) }
            dt { "Created" } dd { (time(r.created_at)) " by " (r.created_by) }
        }
        @if can_act && !actions.is_empty() {
            form.inline method="post" action={ (PREFIX) "/rollouts/" (view::encode(&r.id)) "/" (actions[0].0) } {
                (csrf(&viewer))
                label for="rollout-reason" { "Reason" }
                input id="rollout-reason" name="reason" type="text" required minlength="3"
                    placeholder="why (kept with the move)";
                @for (i, (action, label)) in actions.iter().enumerate() {
                    @if i == 0 {
                        button type="submit" { (label) }
                    } @else {
                        button type="submit" class="danger" formaction={ (PREFIX) "/rollouts/" (view::encode(&r.id)) "/" (action) } { (label) }
                    }
                }
            }
        }
        h2 { "Why it is here" }
        (view::json_block(&r.reason))
        h2 { "Waves" }
        table data-testid="waves" {
            thead { tr {
                th scope="col" class="num" { "#" } th scope="col" { "Wave" } th scope="col" { "State" }
                th scope="col" { "Tenants" } th scope="col" { "Gate" } th scope="col" { "Shadow summary" }
            } }
            tbody {
                @for w in &r.waves {
                    tr {
                        td.num { (w.index + 1) }
                        td { (w.name) }
                        td { (badge(&w.state)) }
                        td { @for t in &w.tenants { code { (t.tenant) } " " } }
                        td { (compact(&w.gate)) }
                        td { (compact(&w.summary)) }
                    }
                }
            }
        }
        @if let Some(transitions) = &r.transitions {
            h2 { "History" }
            table data-testid="transitions" {
                thead { tr {
                    th scope="col" { "Move" } th scope="col" class="num" { "Wave" } th scope="col" { "By" }
                    th scope="col" { "Reason" } th scope="col" { "At" }
                } }
                tbody {
                    @for t in transitions {
                        tr {
                            td { (t.action) }
                            td.num { @if let Some(w) = t.wave { (w + 1) } }
                            td { (t.actor) }
                            td { (t.reason) }
                            td { (time(t.at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Rollouts,
        &format!("Rollout of {}@{}", r.pack, r.version),
        query.notice.as_deref(),
        body,
    )
    .await)
}

pub(super) async fn rollout_action(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ReasonForm>,
) -> PageResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let operation = match action.as_str() {
        "pause" => "/api/v1/rollouts/{id}/pause",
        "resume" => "/api/v1/rollouts/{id}/resume",
        "abort" => "/api/v1/rollouts/{id}/abort",
        _ => return Err(Problem::not_found(format!("no action {action:?} on rollouts")).into()),
    };
    let access = viewer
        .act(&ctx, &req, form.csrf.as_deref(), Method::POST, operation)
        .await?;
    let reason = reason(&form)?;
    let body = v1::rollouts::RolloutAction {
        reason: reason.clone(),
        gate: None,
    };
    let result = v1::rollouts::act(&ctx, &access.caller, &id, &action, body).await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::OK);
    access
        .audit(
            &ctx,
            format!("/api/v1/rollouts/{id}/{action}"),
            status,
            Some(&reason),
        )
        .await;
    let r = result?.into_inner();
    Ok(see_other(&format!(
        "{PREFIX}/rollouts/{}?notice={}",
        view::encode(&r.id),
        view::encode(&format!(
            "Rollout {}: {action} done; it is {} now.",
            r.id, r.state
        ))
    )))
}
