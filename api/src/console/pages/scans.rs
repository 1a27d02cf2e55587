//! Scans: the list (following the events stream), submitting an SBOM, a scan with its
//! live progress and findings, and a finding's explain trace.

use super::*;

pub(super) async fn scans(
    ctx: web::Data<Context>,
    viewer: Viewer,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/scans").await?;
    let tenant = access.tenant()?;
    let filter = JobFilter {
        state: None,
        kind: Some(Scan::NAME.to_owned()),
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
        let status = v1::scans::status_of(&ctx, tenant, &job.id).await?;
        items.push(v1::scans::view(job, status)?);
    }
    let can_submit = viewer.can(&ctx, Method::POST, "/api/v1/scans");
    // The list follows the scans completed after it was drawn.
    let latest = ctx.store.tenant(tenant).events().latest_seq().await?;
    let body = html! {
        @if can_submit {
            details.submit open[items.is_empty()] {
                summary { "Submit a scan" }
                form method="post" action={ (PREFIX) "/scans" } data-testid="submit-scan" {
                    (csrf(&viewer))
                    label for="sbom-file" { "SBOM file (CycloneDX or SPDX JSON)" }
                    input id="sbom-file" type="file" accept=".json,application/json" data-fills="sbom";
                    label for="sbom" { "or paste it" }
                    textarea id="sbom" name="sbom" rows="6" required spellcheck="false" {}
                    label for="scan-name" { "Name (optional: what the SBOM describes)" }
                    input id="scan-name" name="name" type="text";
                    button type="submit" { "Submit scan" }
                }
            }
        }
        p.live role="status" data-testid="live-news" data-live-events={ (PREFIX) "/events/stream?kind=scan.completed&after=" (latest) } {}
        table data-testid="scans" {
            thead { tr {
                th scope="col" { "Scan" } th scope="col" { "Name" } th scope="col" { "Status" }
                th scope="col" { "Disposition" } th scope="col" class="num" { "Findings" }
                th scope="col" { "Submitted" } th scope="col" { "Duration" }
            } }
            tbody {
                @for s in &items {
                    tr data-scan=(s.id) {
                        td { a href={ (PREFIX) "/scans/" (s.id) } { code { (s.id) } } }
                        td { (s.name) }
                        td data-field="status" { (badge(&s.status)) }
                        td data-field="disposition" { @if let Some(d) = &s.disposition { (badge(d)) } }
                        td.num data-field="findings" { @if let Some(n) = s.counts.as_ref().and_then(|c| c.get("findings")) { (n) } }
                        td { (time(s.created_at)) }
                        td { @if let Some(done) = s.completed_at { (view::duration(s.created_at, done)) } }
                    }
                }
            }
        }
        @if items.is_empty() { p.muted { "No scans yet." } }
        (view::pager(&format!("{PREFIX}/scans"), &[], page.next_cursor.as_deref()))
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Scans,
        "Scans",
        query.notice.as_deref(),
        body,
    )
    .await)
}

#[derive(Debug, Deserialize)]
pub(super) struct ScanForm {
    csrf: Option<String>,
    sbom: String,
    name: Option<String>,
}

pub(super) async fn submit_scan(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    form: web::Form<ScanForm>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .act(
            &ctx,
            &req,
            form.csrf.as_deref(),
            Method::POST,
            "/api/v1/scans",
        )
        .await?;
    let tenant = access.tenant()?.clone();
    let form = form.into_inner();
    let body = actix_web::web::Bytes::from(form.sbom.into_bytes());
    if body.len() as u64 > ctx.settings.max_body_bytes {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the SBOM is over api.max_body_bytes",
        )
        .into());
    }
    let name = form.name.filter(|n| !n.trim().is_empty());
    let intake = &ctx.intake;
    let result = async {
        let (sha256, name) = intake
            .sbom(&tenant, SbomSource::Body(body), name)
            .await
            .map_err(v1::scans::intake_problem)?;
        let options = ScanOptions {
            evaluated_at: Utc::now(),
            idempotency_key: None,
            max_attempts: ctx.job_max_attempts,
        };
        intake
            .submit(&tenant, sha256, name, &options)
            .await
            .map_err(v1::scans::intake_problem)
    }
    .await;
    let status = result
        .as_ref()
        .map_or_else(|p| p.status, |_| StatusCode::ACCEPTED);
    access
        .audit(&ctx, "/api/v1/scans".into(), status, None)
        .await;
    let submitted = result?;
    Ok(see_other(&format!("{PREFIX}/scans/{}", submitted.job.id)))
}

pub(super) async fn scan(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
    query: web::Query<CursorQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer.may(&ctx, Method::GET, "/api/v1/scans/{id}").await?;
    let tenant = access.tenant()?;
    let job = v1::scans::scan_job(&ctx, tenant, &id).await?;
    let terminal = job.state.is_terminal();
    let (state, step) = (job.state.as_str().to_owned(), job.step.clone());
    let status = v1::scans::status_of(&ctx, tenant, &job.id).await?;
    let scan = v1::scans::view(job, status)?;
    let findings = if scan.disposition.is_some() {
        ctx.store
            .tenant(tenant)
            .scans()
            .findings(
                &JobId::parse(&scan.id).map_err(Problem::from)?,
                query.cursor.as_deref().filter(|c| !c.is_empty()),
                200,
            )
            .await?
    } else {
        stella_store::repo::Page {
            items: Vec::new(),
            next_cursor: None,
        }
    };
    let body = html! {
        (live_progress(&format!("{PREFIX}/scans/{}/stream", scan.id), &state, &step, SCAN_STEPS, "completed", terminal))
        dl.facts {
            dt { "Id" } dd { code { (scan.id) } " · " a href={ (PREFIX) "/jobs/" (scan.id) } { "its job" } }
            dt { "Name" } dd { (scan.name) }
            dt { "Status" } dd { (badge(&scan.status)) }
            dt { "Disposition" } dd data-testid="disposition" { @if let Some(d) = &scan.disposition { (badge(d)) } @else { span.muted { "not evaluated yet" } } }
            dt { "SBOM" } dd { code { (scan.sbom_sha256) } }
            dt { "Evaluated at" } dd { (time(scan.evaluated_at)) }
            dt { "Submitted" } dd { (time(scan.created_at)) }
            dt { "Completed" } dd { (opt_time(scan.completed_at)) }
            @if let Some(hash) = &scan.inputs_hash { dt { "Inputs hash" } dd { code { (hash) } } }
            @if let Some(error) = &scan.error { dt { "Error" } dd.error { (error) } }
        }
        @if let Some(counts) = scan.counts.as_ref().and_then(Value::as_object) {
            h2 { "Counts" }
            dl.facts.counts data-testid="counts" {
                @for (k, v) in counts { dt { (k) } dd { (compact(v)) } }
            }
        }
        h2 { "Findings" }
        @if scan.disposition.is_none() {
            p.muted { "Findings appear once the scan is evaluated." }
        } @else if findings.items.is_empty() {
            p { "No findings." }
        } @else {
            table data-testid="findings" {
                thead { tr {
                    th scope="col" { "Vulnerability" } th scope="col" { "Component" }
                    th scope="col" { "Disposition" } th scope="col" { "Severity" } th scope="col" { "Trace" }
                } }
                tbody {
                    @for f in &findings.items {
                        tr {
                            td { code { (f.vulnerability_id) } }
                            td { code { (f.purl) } }
                            td { (badge(&f.disposition)) }
                            td { (f.finding.get("severity").map(compact).unwrap_or_default()) }
                            td { a href={ (PREFIX) "/scans/" (scan.id) "/finding?vulnerability=" (view::encode(&f.vulnerability_id)) "&purl=" (view::encode(&f.purl)) } { "Explain" span.sr { " " (f.vulnerability_id) " in " (f.purl) } } }
                        }
                    }
                }
            }
            (view::pager(&format!("{PREFIX}/scans/{}", scan.id), &[], findings.next_cursor.as_deref()))
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Scans,
        &format!("Scan {}", scan.name),
        None,
        body,
    )
    .await)
}

/// The tenant's events as they happen, for the live lists (`GET /api/v1/events/stream`).
pub(super) async fn events_stream(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    query: web::Query<v1::streams::EventStreamQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/events/stream")
        .await?;
    let tenant = access.tenant()?.clone();
    let query = query.into_inner();
    Ok(v1::streams::events_stream(ctx, tenant, &req, query.kind, query.after).await?)
}

pub(super) async fn scan_stream(
    ctx: web::Data<Context>,
    viewer: Viewer,
    req: HttpRequest,
    id: web::Path<String>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/scans/{id}/stream")
        .await?;
    let tenant = access.tenant()?.clone();
    let job = v1::scans::scan_job(&ctx, &tenant, &id).await?;
    Ok(v1::streams::job_stream(ctx, tenant, job.id, false, &req, None).await?)
}

#[derive(Debug, Deserialize)]
pub(super) struct FindingQuery {
    vulnerability: String,
    purl: String,
}

/// A finding's explain trace: the decision chain (rule by rule, with the inputs each
/// looked at and why it decided) and the evidence the assessment rests on.
pub(super) async fn finding(
    ctx: web::Data<Context>,
    viewer: Viewer,
    id: web::Path<String>,
    query: web::Query<FindingQuery>,
) -> PageResult<HttpResponse> {
    let access = viewer
        .may(&ctx, Method::GET, "/api/v1/scans/{id}/findings")
        .await?;
    let tenant = access.tenant()?;
    let job = v1::scans::scan_job(&ctx, tenant, &id).await?;
    let scans = ctx.store.tenant(tenant);
    let scans = scans.scans();
    let mut cursor: Option<String> = None;
    let mut found = None;
    // Findings are read in pages; a scan holds at most a few thousand.
    for _ in 0..100 {
        let page = scans.findings(&job.id, cursor.as_deref(), 500).await?;
        found = page
            .items
            .into_iter()
            .find(|f| f.vulnerability_id == query.vulnerability && f.purl == query.purl);
        cursor = page.next_cursor;
        if found.is_some() || cursor.is_none() {
            break;
        }
    }
    let Some(f) = found else {
        return Err(Problem::not_found(format!(
            "finding {} in {} not found in scan {}",
            query.vulnerability, query.purl, job.id
        ))
        .into());
    };
    let trace = f
        .finding
        .get("trace")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut evidence = f.finding.clone();
    if let Some(object) = evidence.as_object_mut() {
        object.remove("trace");
    }
    let body = html! {
        p { a href={ (PREFIX) "/scans/" (job.id) } { "← Back to the scan" } }
        dl.facts {
            dt { "Vulnerability" } dd { code { (f.vulnerability_id) } }
            dt { "Component" } dd { code { (f.purl) } }
            dt { "Disposition" } dd data-testid="finding-disposition" { (badge(&f.disposition)) }
        }
        h2 { "Decision chain" }
        ol.trace data-testid="trace" {
            @for step in &trace {
                li {
                    p {
                        strong { (step.get("by").map(compact).unwrap_or_default()) }
                        @if let Some(pack) = step.get("pack").and_then(Value::as_str) { " (pack " (pack) ")" }
                        " · policy v" (step.get("policy_version").map(compact).unwrap_or_default())
                        @if let Some(out) = step.get("output").filter(|o| !o.is_null()) { " → " (badge(&compact(out))) }
                    }
                    p { (step.get("because").map(compact).unwrap_or_default()) }
                    details { summary { "Inputs" } (view::json_block(step.get("inputs").unwrap_or(&Value::Null))) }
                }
            }
        }
        @if trace.is_empty() { p.muted { "This finding carries no trace." } }
        h2 { "Evidence" }
        @let claims = evidence.pointer("/assessment/claims").and_then(Value::as_array).cloned().unwrap_or_default();
        @if !claims.is_empty() {
            table data-testid="claims" {
                caption.sr { "The claims the assessment rests on" }
                thead { tr { th scope="col" { "Question" } th scope="col" { "Value" } th scope="col" { "Evidence" } } }
                tbody {
                    @for c in &claims {
                        tr {
                            td { (c.get("question").map(compact).unwrap_or_default()) }
                            td { (c.get("value").map(compact).unwrap_or_default()) }
                            td { code { (c.get("evidence").map(compact).unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
        details open[claims.is_empty()] {
            summary { "The whole finding (JSON)" }
            (view::json_block(&evidence))
        }
    };
    Ok(render(
        &ctx,
        &viewer,
        Section::Scans,
        &format!("Why {} is {}", f.vulnerability_id, f.disposition),
        None,
        body,
    )
    .await)
}
