//! The supervision tree (administrators).

use super::*;

pub(super) fn actor_tree(node: &ActorSnapshot) -> Markup {
    html! {
        li {
            span.actor {
                strong { (node.name) } " " span.muted { (node.kind) }
                " · queue " (node.queue_depth) " · in flight " (node.in_flight) " · restarts " (node.restarts)
                @if node.quarantined { " " (badge("quarantined")) }
            }
            @if let Some(err) = &node.last_error { br; span.error { (err) } }
            @if !node.children.is_empty() {
                ul { @for child in &node.children { (actor_tree(child)) } }
            }
        }
    }
}

pub(super) async fn system(ctx: web::Data<Context>, viewer: Viewer) -> PageResult<HttpResponse> {
    viewer
        .may(&ctx, Method::GET, "/api/v1/system/actors")
        .await?;
    let body = match &ctx.observer {
        None => html! { p.muted { "This process runs no actors." } },
        Some(observer) => {
            let root = observer.snapshot().await;
            html! { ul.tree data-testid="tree" { (actor_tree(&root)) } }
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::System,
        "Supervision tree",
        None,
        body,
    )
    .await)
}
