//! The overview: per tenant, queue depth, throughput, failures, dead letters and
//! quarantine; scans by disposition over the last day.

use super::*;

#[derive(Debug, Default)]
pub(super) struct TenantStats {
    queued: u64,
    running: u64,
    per_minute: f64,
    failures: u64,
    dead_letters: usize,
    quarantined: bool,
}

pub(super) fn quarantined_tenants(snapshot: &ActorSnapshot, out: &mut Vec<String>) {
    if snapshot.kind == "tenant" && snapshot.quarantined {
        out.push(snapshot.name.clone());
    }
    for child in &snapshot.children {
        quarantined_tenants(child, out);
    }
}

/// Scans per hour and disposition over the last day.
pub(super) type Chart = BTreeMap<DateTime<Utc>, BTreeMap<String, u64>>;

pub(super) async fn overview(ctx: web::Data<Context>, viewer: Viewer) -> PageResult<HttpResponse> {
    // The tenants' job figures need `jobs:read`, the chart `scans:read`; the page shows
    // what the token may see, and is refused only when it may see neither.
    let can_jobs = viewer.can(&ctx, Method::GET, "/api/v1/jobs");
    let can_scans = viewer.can(&ctx, Method::GET, "/api/v1/scans");
    let mirrored = if can_jobs || !can_scans {
        "/api/v1/jobs"
    } else {
        "/api/v1/scans"
    };
    let access = viewer.may(&ctx, Method::GET, mirrored).await?;
    let tenants: Vec<TenantId> = match &access.caller.tenant {
        Some(tenant) => vec![tenant.clone()],
        None => ctx
            .store
            .tenants()
            .list(None, 500)
            .await?
            .items
            .into_iter()
            .map(|t| t.id)
            .collect(),
    };
    let now = Utc::now();
    let mut quarantined = Vec::new();
    if let Some(observer) = &ctx.observer {
        quarantined_tenants(&observer.snapshot().await, &mut quarantined);
    }
    let mut dead: HashMap<TenantId, usize> = HashMap::new();
    for name in stella_actors::ROLES.iter().filter(|_| can_jobs) {
        let role = Role::parse(name).map_err(Problem::from)?;
        for letter in ctx
            .mailbox
            .dead_letters(&role, v1::dead_letters::SCAN)
            .await?
        {
            *dead.entry(letter.envelope.tenant).or_default() += 1;
        }
    }
    let mut chart = Chart::new();
    let start = (now - Duration::hours(23))
        .duration_trunc(Duration::hours(1))
        .unwrap_or(now);
    let mut hour = start;
    while hour <= now {
        chart.insert(hour, BTreeMap::new());
        hour += Duration::hours(1);
    }
    let mut rows = Vec::new();
    for tenant in &tenants {
        let jobs = ctx.store.tenant(tenant);
        let jobs = jobs.jobs();
        if can_jobs {
            let stats = TenantStats {
                queued: jobs.count_in(JobState::Queued).await?
                    + jobs.count_in(JobState::Retrying).await?,
                running: jobs.count_in(JobState::Running).await?,
                per_minute: jobs
                    .count_finished_since(now - Duration::minutes(15), None)
                    .await? as f64
                    / 15.0,
                failures: jobs
                    .count_finished_since(now - Duration::hours(24), Some(JobState::Failed))
                    .await?,
                dead_letters: dead.get(tenant).copied().unwrap_or(0),
                quarantined: quarantined.iter().any(|q| q == tenant.as_str()),
            };
            rows.push((tenant.clone(), stats));
        }
        if can_scans {
            for (hour, disposition, n) in ctx
                .store
                .tenant(tenant)
                .scans()
                .dispositions_by_hour(start)
                .await?
            {
                *chart
                    .entry(hour)
                    .or_default()
                    .entry(disposition)
                    .or_default() += n;
            }
        }
    }
    let quarantined_here: Vec<&TenantId> = rows
        .iter()
        .filter(|(_, s)| s.quarantined)
        .map(|(t, _)| t)
        .collect();
    let body = html! {
        @if !can_jobs {
            section aria-labelledby="tenants-h" {
                h2 id="tenants-h" { "Tenants" }
                p.muted data-testid="no-jobs-scope" { "This token has no " code { "jobs:read" } " scope: queue depth, throughput, failures, dead letters and quarantine are not shown." }
            }
        } @else {
        section aria-labelledby="tenants-h" {
            h2 id="tenants-h" { "Tenants" }
            table {
                caption.sr { "Per tenant: jobs waiting and running, jobs finished per minute over the last 15 minutes, failures over 24 hours, dead letters" }
                thead { tr {
                    th scope="col" { "Tenant" }
                    th scope="col" class="num" { "Queue depth" }
                    th scope="col" class="num" { "Running" }
                    th scope="col" class="num" { "Jobs / min (15 min)" }
                    th scope="col" class="num" { "Failures (24 h)" }
                    th scope="col" class="num" { "Dead letters" }
                    th scope="col" { "Supervision" }
                } }
                tbody {
                    @for (tenant, s) in &rows {
                        tr {
                            th scope="row" { (tenant) }
                            td.num { (s.queued) }
                            td.num { (s.running) }
                            td.num { (format!("{:.1}", s.per_minute)) }
                            td.num { a href={ (PREFIX) "/jobs?state=failed" } { (s.failures) } }
                            td.num { a href={ (PREFIX) "/dead-letters" } { (s.dead_letters) } }
                            td { @if s.quarantined { (badge("quarantined")) } @else { (badge("healthy")) } }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.muted { "No tenants yet: create one with " code { "stella tenants create" } "." } }
        }
        section aria-labelledby="quarantine-h" {
            h2 id="quarantine-h" { "Quarantined tenants" }
            @if ctx.observer.is_none() {
                p.muted { "This process runs no actors; the workers' supervision trees are not visible here." }
            } @else if quarantined_here.is_empty() {
                p { "None." }
            } @else {
                ul { @for t in &quarantined_here { li { (t) } } }
            }
        }
        }
        section aria-labelledby="chart-h" {
            h2 id="chart-h" { "Scans by disposition, last 24 hours (UTC)" }
            @if can_scans { (disposition_chart(&chart)) } @else {
                p.muted { "This token has no " code { "scans:read" } " scope." }
            }
        }
    };
    Ok(render(&ctx, &viewer, Section::Overview, "Overview", None, body).await)
}

/// Stacked bars per hour: pass, warn, block, each bar with its count as a tooltip; the
/// totals below it are the text alternative.
pub(super) fn disposition_chart(chart: &Chart) -> Markup {
    let kinds = ["pass", "warn", "block"];
    let max = chart
        .values()
        .map(|by| by.values().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, bar) = (720u64, 160u64, 26u64);
    let total: u64 = chart.values().flat_map(|by| by.values()).sum();
    // (x, y, height, kind, count, hour) of every segment.
    let mut segments = Vec::new();
    let mut labels = Vec::new();
    for (i, (hour, by)) in chart.iter().enumerate() {
        let x = i as u64 * (bar + 4) + 4;
        let mut y = height;
        for kind in kinds {
            let n = by.get(kind).copied().unwrap_or(0);
            if n > 0 {
                let h = (n * (height - 10) / max).max(2);
                y = y.saturating_sub(h);
                segments.push((x, y, h, kind, n, *hour));
            }
        }
        if i % 3 == 0 {
            labels.push((x, *hour));
        }
    }
    html! {
        figure.chart {
            svg role="img" aria-labelledby="chart-title" viewBox={ "0 0 " (width) " " (height + 20) }
                preserveAspectRatio="xMinYMin meet" {
                title id="chart-title" { (total) " scans evaluated in the last 24 hours" }
                line x1="0" y1=(height) x2=(width) y2=(height) class="base" {}
                @for (x, y, h, kind, n, hour) in &segments {
                    rect class={ "bar " (kind) } x=(x) y=(y) width=(bar) height=(h) {
                        title { (hour.format("%H:00")) " UTC: " (n) " " (kind) }
                    }
                }
                @for (x, hour) in &labels {
                    text x=(x) y=(height + 16) class="axis" { (hour.format("%H:00")) }
                }
            }
            figcaption {
                @for kind in kinds {
                    span class={ "key " (kind) } data-testid={ "chart-" (kind) } {
                        (kind) " " (chart.values().filter_map(|by| by.get(kind)).sum::<u64>())
                    }
                }
            }
        }
    }
}
