//! Notification deliveries and their attempts.

use super::*;

pub(super) const DELIVERY_STATUSES: &[&str] = &[
    "pending",
    "held",
    "digested",
    "throttled",
    "delivered",
    "dead_lettered",
    "cancelled",
];

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeliveriesQuery {
    status: Option<String>,
    cursor: Option<String>,
}

pub(super) async fn deliveries(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<DeliveriesQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/notify/deliveries")
        .await?;
    let tenant = access.tenant()?;
    let status = query.status.clone().filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if !DELIVERY_STATUSES.contains(&s.as_str()) {
            return Err(Problem::bad_request(format!("{s:?} is not a delivery status")).into());
        }
    }
    let filter = stella_store::repo::DeliveryFilter {
        status: status.clone(),
        channel_id: None,
        rule_id: None,
        event_kind: None,
        since: None,
        until: None,
    };
    let page = ctx
        .store
        .tenant(tenant)
        .notify()
        .deliveries(
            &filter,
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            50,
        )
        .await?;
    let items: Vec<v1::notify::DeliveryBody> = page.items.into_iter().map(Into::into).collect();
    let status_text = status.unwrap_or_default();
    let body = html! {
        form.filters method="get" action={ (PREFIX) "/notifications" } {
            label for="f-status" { "Status" }
            select id="f-status" name="status" {
                option value="" { "any" }
                @for s in DELIVERY_STATUSES { option value=(s) selected[status_text == *s] { (s) } }
            }
            button type="submit" { "Filter" }
        }
        table data-testid="deliveries" {
            thead { tr {
                th scope="col" { "Delivery" } th scope="col" { "Event" } th scope="col" { "Channel" }
                th scope="col" { "Mode" } th scope="col" { "Status" } th scope="col" { "Created" }
            } }
            tbody {
                @for d in &items {
                    tr {
                        td { a href={ (PREFIX) "/notifications/" (view::encode(&d.id)) } { code { (d.id) } } }
                        td { (d.event_kind) }
                        td { (d.channel_type) " " code { (d.channel_id) } }
                        td { (d.mode) }
                        td { (badge(&d.status)) }
                        td { (time(d.created_at)) }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No deliveries." } }
        (view::pager(&format!("{PREFIX}/notifications"), &[("status", &status_text)], page.next_cursor.as_deref()))
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Notifications,
        "Notification deliveries",
        None,
        body,
    )
    .await)
}

pub(super) async fn delivery(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
    query: web::Query<Notice>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/notify/deliveries/{id}")
        .await?;
    let tenant = access.tenant()?;
    let repo = ctx.store.tenant(tenant);
    let repo = repo.notify();
    let d = repo.delivery(&id).await?;
    let attempts = repo.attempts(&d.id).await?;
    let d = v1::notify::DeliveryBody::from(d);
    let can_redeliver = viewer.can(
        &ctx,
        Method::POST,
        "/api/v1/notify/deliveries/{id}/redeliver",
    );
    let attempts: Vec<v1::notify::AttemptBody> = attempts.into_iter().map(Into::into).collect();
    let body = html! {
        dl.facts {
            dt { "Id" } dd { code { (d.id) } }
            dt { "Event" } dd { (d.event_kind) " " code { (d.event_id) } }
            dt { "Channel" } dd { (d.channel_type) " " code { (d.channel_id) } }
            @if let Some(rule) = &d.rule_id { dt { "Rule" } dd { code { (rule) } } }
            dt { "Mode" } dd { (d.mode) }
            dt { "Status" } dd { (badge(&d.status)) }
            dt { "Created" } dd { (time(d.created_at)) }
            dt { "Updated" } dd { (time(d.updated_at)) }
        }
        @if can_redeliver && !matches!(d.status.as_str(), "pending" | "held") {
            form.inline method="post" action={ (PREFIX) "/notifications/" (view::encode(&d.id)) "/redeliver" } {
                (csrf(&viewer))
                button type="submit" { "Redeliver" }
                span.muted { " Sent again with the same id: a receiver that has it drops the copy." }
            }
        }
        h2 { "Attempts" }
        @if attempts.is_empty() { p.muted { "Not sent yet." } } @else {
            table data-testid="attempts" {
                thead { tr {
                    th scope="col" class="num" { "#" } th scope="col" { "Started" } th scope="col" { "Outcome" }
                    th scope="col" class="num" { "HTTP" } th scope="col" class="num" { "Latency" } th scope="col" { "Error" }
                } }
                tbody {
                    @for a in &attempts {
                        tr {
                            td.num { (a.attempt) }
                            td { (time(a.started_at)) }
                            td { (badge(&a.outcome)) }
                            td.num { @if let Some(code) = a.status_code { (code) } }
                            td.num { @if let Some(ms) = a.latency_ms { (ms) " ms" } }
                            td.error { @if let Some(e) = &a.error { (e) } }
                        }
                    }
                }
            }
        }
        @if let Some(detail) = &d.detail { h2 { "Detail" } (view::json_block(detail)) }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Notifications,
        "Notification delivery",
        query.notice.as_deref(),
        body,
    )
    .await)
}

/// Sends a delivery again (the API's redeliver, audited as it).
pub(super) async fn redeliver(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/notify/deliveries/{id}/redeliver",
        )
        .await?;
    let tenant = access.tenant()?.clone();
    let result = stella_actors::notify::manage::redeliver(
        &ctx.store,
        &ctx.registry,
        &tenant,
        &id,
        Utc::now(),
    )
    .await
    .map_err(Problem::from);
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::ACCEPTED);
    access
        .audit(
            &ctx,
            format!("/api/v1/notify/deliveries/{id}/redeliver"),
            status,
            None,
        )
        .await;
    let d = result?;
    Ok(see_other(&format!(
        "{PREFIX}/notifications/{}?notice={}",
        view::encode(&d.id),
        view::encode("Sent again.")
    )))
}
