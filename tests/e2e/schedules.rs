//! The scheduler as a tenant meets it over HTTP, and as operators run it: schedules with
//! precise errors for bad cron and timezones; manual runs; drift re-evaluation of only the
//! targets an advisory touches, with the diff against their previous scan; and two
//! `stella scheduler` processes on one PostgreSQL with an accelerated clock, firing each
//! due time exactly once across a SIGKILL of the leader.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{assert_problem, start, Server, TENANT_SCOPES};
use crate::scans::{scan_of, tiny_sbom, wait_scan};

async fn tenant(server: &Server, id: &str) -> String {
    server.create_tenant(id).await;
    server.token(id, TENANT_SCOPES).await.1
}

async fn call(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> crate::api::Reply {
    server
        .call(method, &format!("/api/v1{path}"), Some(token), None, body)
        .await
}

async fn wait_run(server: &Server, token: &str, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reply = call(server, token, Method::GET, &format!("/runs/{id}"), None).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if reply.body["state"] == state {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "run never {state}: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn schedules_are_validated_managed_and_run_on_demand() {
    let server = start(|_| {}).await;
    let token = tenant(&server, "acme").await;
    let other = tenant(&server, "globex").await;

    // Bad input: 400 naming the field and what is wrong.
    for (body, location, needle) in [
        (
            json!({"name": "n", "cron": "61 * * * *"}),
            "cron",
            "minute field (field 1 of 5) value 61 is out of range 0-59",
        ),
        (
            json!({"name": "n", "cron": "0 0 * * * * *"}),
            "cron",
            "expected 5 fields",
        ),
        (
            json!({"name": "n", "cron": "0 0 30 2 *"}),
            "cron",
            "never matches",
        ),
        (
            json!({"name": "n", "cron": "0 2 * * *", "timezone": "Mars/Olympus"}),
            "timezone",
            "not an IANA timezone",
        ),
        (
            json!({"name": "n", "cron": "0 2 * * *", "jitter_seconds": 7200}),
            "jitter_seconds",
            "out of range",
        ),
        (
            json!({"name": "n", "cron": "0 2 * * *", "kind": "bake"}),
            "kind",
            "not a schedule kind",
        ),
        (
            json!({"name": "n", "cron": "0 2 * * *", "missed": "later"}),
            "missed",
            "skip, fire-once",
        ),
        (
            json!({"name": "n", "cron": "0 2 * * *", "kind": "advisory-sync"}),
            "sources",
            "at least one source",
        ),
        (json!({"name": "n"}), "cron", "is required"),
    ] {
        // An advisory sync is an administrator's (acting on the tenant).
        let reply = if body["kind"] == "advisory-sync" {
            server
                .call(
                    Method::POST,
                    "/api/v1/schedules",
                    Some(crate::api::ADMIN),
                    Some("acme"),
                    Some(body.clone()),
                )
                .await
        } else {
            call(
                &server,
                &token,
                Method::POST,
                "/schedules",
                Some(body.clone()),
            )
            .await
        };
        assert_problem(&reply, 400, &body.to_string());
        assert_eq!(reply.body["location"], location, "{}", reply.text);
        assert!(
            reply.body["detail"].as_str().unwrap().contains(needle),
            "{}",
            reply.text
        );
    }

    let reply = call(
        &server,
        &token,
        Method::POST,
        "/schedules",
        Some(json!({"name": "nightly", "cron": "0 2 * * *", "timezone": "Europe/Berlin", "kind": "rescan", "jitter_seconds": 0})),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let schedule = reply.body.clone();
    let id = schedule["id"].as_str().unwrap().to_owned();
    assert_eq!(schedule["enabled"], true);
    assert_eq!(
        schedule["next_due_at"], schedule["next_fire_at"],
        "no jitter"
    );
    // The next due time is 02:00 in Berlin, within a day.
    let due: chrono::DateTime<Utc> = schedule["next_due_at"].as_str().unwrap().parse().unwrap();
    let local = due.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!((local.hour(), local.minute()), (2, 0), "{schedule}");
    assert!(due > Utc::now() && due - Utc::now() <= chrono::Duration::days(1));

    // Names are unique per tenant; another tenant sees nothing of it.
    let again = call(
        &server,
        &token,
        Method::POST,
        "/schedules",
        Some(json!({"name": "nightly", "cron": "@daily"})),
    )
    .await;
    assert_problem(&again, 409, "duplicate name");
    let hidden = call(
        &server,
        &other,
        Method::GET,
        &format!("/schedules/{id}"),
        None,
    )
    .await;
    assert_problem(&hidden, 404, "another tenant's schedule");

    // Jitter: a fixed offset within the window.
    let jittered = call(
        &server,
        &token,
        Method::POST,
        "/schedules",
        Some(json!({"name": "spread", "cron": "0 0 * * *", "jitter_seconds": 600})),
    )
    .await;
    assert_eq!(jittered.status, 201, "{}", jittered.text);
    let due: chrono::DateTime<Utc> = jittered.body["next_due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let fire: chrono::DateTime<Utc> = jittered.body["next_fire_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fire >= due && fire - due < chrono::Duration::seconds(600));

    // Update, pause, resume.
    let patched = call(
        &server,
        &token,
        Method::PATCH,
        &format!("/schedules/{id}"),
        Some(json!({"cron": "30 3 * * *"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["cron"], "30 3 * * *");
    let bad_patch = call(
        &server,
        &token,
        Method::PATCH,
        &format!("/schedules/{id}"),
        Some(json!({"cron": "30 25 * * *"})),
    )
    .await;
    assert_problem(&bad_patch, 400, "bad cron on update");
    assert_eq!(bad_patch.body["location"], "cron");
    let paused = call(
        &server,
        &token,
        Method::POST,
        &format!("/schedules/{id}/pause"),
        None,
    )
    .await;
    assert_eq!(paused.body["enabled"], false, "{}", paused.text);
    assert_eq!(paused.body["next_fire_at"], Value::Null);
    let resumed = call(
        &server,
        &token,
        Method::POST,
        "/schedules/nightly/resume",
        None,
    )
    .await;
    assert_eq!(resumed.body["enabled"], true, "{}", resumed.text);
    assert!(resumed.body["next_fire_at"].is_string());

    // Run now: a manual run; with no targets it completes at once.
    let run = call(
        &server,
        &token,
        Method::POST,
        &format!("/schedules/{id}/run"),
        None,
    )
    .await;
    assert_eq!(run.status, 202, "{}", run.text);
    let run_id = run.body["id"].as_str().unwrap().to_owned();
    let done = wait_run(&server, &token, &run_id, "completed").await;
    assert_eq!(done["trigger"], "manual");
    assert_eq!(done["counts"]["targets"], 0);
    let listed = call(
        &server,
        &token,
        Method::GET,
        &format!("/runs?schedule_id={id}"),
        None,
    )
    .await;
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", listed.text);
    for key in ["id", "schedule_id", "trigger", "state", "due_at"] {
        assert!(!items[0][key].is_null(), "{key} in {}", listed.text);
    }
    assert_problem(
        &call(
            &server,
            &other,
            Method::GET,
            &format!("/runs/{run_id}"),
            None,
        )
        .await,
        404,
        "another tenant's run",
    );

    let deleted = call(
        &server,
        &token,
        Method::DELETE,
        &format!("/schedules/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_problem(
        &call(
            &server,
            &token,
            Method::GET,
            &format!("/schedules/{id}"),
            None,
        )
        .await,
        404,
        "deleted",
    );
}

fn left_pad_advisory() -> Vec<u8> {
    json!([{
        "id": "T-DRIFT-1",
        "modified": "2026-11-01T00:00:00Z",
        "affected": [{
            "package": {"ecosystem": "npm", "name": "left-pad"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]
        }]
    }])
    .to_string()
    .into_bytes()
}

fn chalk_sbom() -> Vec<u8> {
    json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"type": "library", "name": "chalk", "version": "2.0.0", "purl": "pkg:npm/chalk@2.0.0"}]
    })
    .to_string()
    .into_bytes()
}

#[actix_web::test]
async fn an_advisory_rescans_only_the_targets_it_touches() {
    let server = start(|_| {}).await;
    let token = tenant(&server, "acme").await;
    // `web` is registered by its scan (`?target=`), `api` afterwards from its scan.
    let web_scan = scan_of(
        &server,
        &token,
        tiny_sbom(),
        &[("name", "web"), ("target", "web")],
    )
    .await;
    let api_scan = scan_of(&server, &token, chalk_sbom(), &[("name", "api")]).await;
    let web = wait_scan(&server, &token, &web_scan, "completed").await;
    assert_eq!(web["counts"]["findings"], 0, "no advisory yet: {web}");
    wait_scan(&server, &token, &api_scan, "completed").await;
    let reply = call(
        &server,
        &token,
        Method::POST,
        "/targets",
        Some(json!({"name": "api", "scan_id": api_scan})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["last_scan_id"], api_scan.as_str());
    let reply = call(&server, &token, Method::GET, "/targets/web", None).await;
    assert_eq!(
        reply.body["last_scan_id"],
        web_scan.as_str(),
        "{}",
        reply.text
    );
    let bad = call(
        &server,
        &token,
        Method::POST,
        "/targets",
        Some(json!({"name": "x", "scan_id": api_scan, "sbom_sha256": "00"})),
    )
    .await;
    assert_problem(&bad, 400, "both sources");
    let targets = call(&server, &token, Method::GET, "/targets", None).await;
    assert_eq!(targets.body["items"].as_array().unwrap().len(), 2);

    let import = server
        .http
        .post(format!(
            "http://{}/api/v1/advisories/imports?source=osv:drift",
            server.addr
        ))
        .bearer_auth(crate::api::ADMIN)
        .header("content-type", "application/json")
        .body(left_pad_advisory())
        .send()
        .await
        .unwrap();
    assert!(
        import.status().is_success(),
        "{}",
        import.text().await.unwrap()
    );
    let imported_at = Instant::now();

    // The drift run appears and completes: only `web` was re-evaluated.
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let runs = call(&server, &token, Method::GET, "/runs", None).await;
        let advisory_runs: Vec<&Value> = runs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["trigger"] == "advisory")
            .collect();
        if let Some(run) = advisory_runs.first() {
            assert_eq!(advisory_runs.len(), 1, "{}", runs.text);
            break (*run).clone();
        }
        assert!(Instant::now() < deadline, "no advisory run: {}", runs.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "drift run created {:?} after the import",
        imported_at.elapsed()
    );
    assert_eq!(run["targets"], json!(["web"]));
    assert_eq!(run["reason"]["advisories"], json!(["osv:drift:T-DRIFT-1"]));
    let done = wait_run(&server, &token, run["id"].as_str().unwrap(), "completed").await;
    let results = done["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{done}");
    assert_eq!(results[0]["target_name"], "web");
    assert_eq!(results[0]["state"], "completed");
    assert_eq!(results[0]["previous_scan_id"], web_scan.as_str());
    let diff = &results[0]["diff"];
    assert_eq!(diff["new_count"], 1, "{done}");
    assert_eq!(diff["new"][0]["vulnerability_id"], "T-DRIFT-1");
    assert_eq!(diff["new"][0]["purl"], "pkg:npm/left-pad@1.3.0");
    assert_eq!(diff["resolved_count"], 0);
    assert_eq!(done["counts"]["new_findings"], 1);
    // The re-scan is a real scan of the target's SBOM, now with the finding; the
    // target's latest scan moved to it.
    let rescan = results[0]["scan_id"].as_str().unwrap();
    let rescanned = wait_scan(&server, &token, rescan, "completed").await;
    assert_eq!(rescanned["counts"]["findings"], 1, "{rescanned}");
    let target = call(&server, &token, Method::GET, "/targets/web", None).await;
    assert_eq!(target.body["last_scan_id"], rescan);

    // A policy change re-evaluates every target of the tenant.
    let document = "name = \"strict\"\nversion = 1\ndefault = \"block\"\nrules = []\n";
    server.activate_policy("acme", document).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = call(&server, &token, Method::GET, "/runs", None).await;
        if let Some(run) = runs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "policy")
        {
            let mut names: Vec<&str> = run["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            names.sort_unstable();
            assert_eq!(names, ["api", "web"]);
            let done = wait_run(&server, &token, run["id"].as_str().unwrap(), "completed").await;
            // web's finding was `warn` under the default policy (no severity); now `block`.
            let web = done["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["target_name"] == "web")
                .unwrap();
            assert_eq!(web["diff"]["changed_count"], 1, "{done}");
            assert_eq!(web["diff"]["changed"][0]["to"], "block", "{done}");
            break;
        }
        assert!(Instant::now() < deadline, "no policy run: {}", runs.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn two_scheduler_processes_fire_each_due_time_once_across_a_leader_kill() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // 60× faster from now: one minute a second. The lease lasts 2 s of real time, so the
    // survivor takes over that fast; a generous misfire grace keeps the handover's due
    // time a normal firing.
    let origin = Utc::now();
    let spawn = |name: &str| {
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        Proc(
            Command::new(env!("CARGO_BIN_EXE_stella"))
                .arg("scheduler")
                .env_clear()
                .env("STELLA_DATA_DIR", dir.path().join(name))
                .env("STELLA_DATABASE_URL", &db.url)
                .env("STELLA_DATABASE_MAX_CONNECTIONS", "4")
                .env("STELLA_SCHEDULER_CLOCK_SPEED", "60")
                .env("STELLA_SCHEDULER_CLOCK_ORIGIN", origin.to_rfc3339())
                .env("STELLA_SCHEDULER_LEASE_TTL_SECS", "120")
                .env("STELLA_SCHEDULER_POLL_INTERVAL_MS", "100")
                .env("STELLA_SCHEDULER_MISFIRE_GRACE_SECS", "3600")
                .env("STELLA_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    let store = db.store.clone();
    let tenant = stella_store::TenantId::parse("acme").unwrap();
    store
        .tenants()
        .ensure(&tenant, "Acme", Utc::now())
        .await
        .unwrap();
    let input = serde_json::from_value(
        json!({"name": "every-minute", "cron": "* * * * *", "jitter_seconds": 0}),
    )
    .unwrap();
    let clock_now = || origin + (Utc::now() - origin) * 60;
    let schedule =
        stella_scheduler::manage::create_schedule(&store, &tenant, input, "test", 0, clock_now())
            .await
            .unwrap();
    let mut a = Some(spawn("a"));
    let b = spawn("b");
    let (a_pid, b_pid) = (a.as_ref().unwrap().0.id(), b.0.id());
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Kill whichever leads (the lease names its holder: `<host>-<pid>-<random>`).
    let (holder,): (String,) = sqlx::query_as("SELECT holder FROM leases WHERE name = 'scheduler'")
        .fetch_one(&mut db.raw().await)
        .await
        .unwrap();
    let leader_pid = holder
        .split('-')
        .rev()
        .nth(1)
        .unwrap()
        .parse::<u32>()
        .unwrap();
    assert!([a_pid, b_pid].contains(&leader_pid), "{holder}");
    let survivor = if leader_pid == a_pid {
        let mut leader = a.take().unwrap();
        Command::new("kill")
            .args(["-9", &leader_pid.to_string()])
            .status()
            .unwrap();
        let _ = leader.0.wait();
        b
    } else {
        Command::new("kill")
            .args(["-9", &leader_pid.to_string()])
            .status()
            .unwrap();
        drop(b);
        a.take().unwrap()
    };
    tokio::time::sleep(Duration::from_secs(8)).await;
    drop(survivor);
    let runs = store
        .tenant(&tenant)
        .runs()
        .list(Some(&schedule.id), None, 500)
        .await
        .unwrap()
        .items;
    let mut dues: Vec<i64> = runs.iter().map(|r| r.due_at.timestamp()).collect();
    dues.sort_unstable();
    assert!(
        dues.len() >= 10,
        "only {} runs in ~14 accelerated minutes",
        dues.len()
    );
    for pair in dues.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            60,
            "every minute exactly once, none skipped: {dues:?}"
        );
    }
    assert!(
        runs.iter()
            .all(|r| r.trigger == "cron" && r.error.is_none()),
        "{runs:?}"
    );
    let (token,): (i64,) = sqlx::query_as("SELECT token FROM leases WHERE name = 'scheduler'")
        .fetch_one(&mut db.raw().await)
        .await
        .unwrap();
    assert!(
        token >= 2,
        "the survivor took the lease over (token {token})"
    );
    db.finish().await;
}

/// Serves `body` at `/osv.json` (404 elsewhere) on a free port: an advisory source.
fn serve_source(body: Vec<u8>) -> String {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/osv.json",
            web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    actix_web::rt::spawn(server.run());
    format!("http://{addr}")
}

#[actix_web::test]
async fn an_advisory_sync_schedule_imports_its_sources_and_drift_follows() {
    // The source listens on loopback, which the outbound guard refuses unless an
    // administrator allow-lists it.
    let server = start(|s| s.outbound.allow_hosts = "127.0.0.1".into()).await;
    server.create_tenant("acme").await;
    let (_, token) = server.token("acme", TENANT_SCOPES).await;
    let base = serve_source(left_pad_advisory());
    let web_scan = scan_of(&server, &token, tiny_sbom(), &[("target", "web")]).await;
    wait_scan(&server, &token, &web_scan, "completed").await;

    // Advisories are shared by every tenant: a tenant token cannot create a sync, and
    // cannot even be given the scope that imports them.
    let body = json!({"name": "sync", "cron": "@hourly", "kind": "advisory-sync", "sources": [format!("{base}/osv.json")]});
    let refused = call(
        &server,
        &token,
        Method::POST,
        "/schedules",
        Some(body.clone()),
    )
    .await;
    assert_problem(&refused, 403, "advisory-sync with a tenant token");
    let scoped = server
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"tenant": "acme", "name": "t", "scopes": ["advisories:write"]})),
        )
        .await;
    assert_problem(&scoped, 400, "a tenant token with advisories:write");
    assert_eq!(scoped.body["location"], "scopes[0]", "{}", scoped.text);
    let admin = |method: Method, path: &str, body: Option<Value>| {
        let path = format!("/api/v1{path}");
        let server = &server;
        async move {
            server
                .call(method, &path, Some(crate::api::ADMIN), Some("acme"), body)
                .await
        }
    };
    // A source the guard refuses is refused when the schedule is made, not at 2 a.m.
    let metadata = json!({"name": "meta", "cron": "@hourly", "kind": "advisory-sync", "sources": ["http://169.254.169.254/latest/meta-data/"]});
    let refused = admin(Method::POST, "/schedules", Some(metadata)).await;
    assert_problem(&refused, 400, "a metadata-address source");
    assert_eq!(refused.body["location"], "sources[0]", "{}", refused.text);
    let created = admin(Method::POST, "/schedules", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.text);

    let run = call(&server, &token, Method::POST, "/schedules/sync/run", None).await;
    assert_eq!(run.status, 202, "{}", run.text);
    let done = wait_run(
        &server,
        &token,
        run.body["id"].as_str().unwrap(),
        "completed",
    )
    .await;
    let result = &done["results"][0];
    assert_eq!(result["state"], "completed", "{done}");
    assert_eq!(result["diff"]["imports"][0]["new"], 1, "{done}");
    // The import's delta re-scans the target that has left-pad.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = call(&server, &token, Method::GET, "/runs", None).await;
        if let Some(drift) = runs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "advisory")
        {
            assert_eq!(drift["targets"], json!(["web"]));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no drift run after the sync: {}",
            runs.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A source that answers 404 fails its run's job without retrying, with the reason.
    let missing = json!({"name": "broken", "cron": "@hourly", "kind": "advisory-sync", "sources": [format!("{base}/missing.json")]});
    assert_eq!(
        admin(Method::POST, "/schedules", Some(missing))
            .await
            .status,
        201
    );
    let run = call(&server, &token, Method::POST, "/schedules/broken/run", None).await;
    // The run did not complete: it ended in error, saying which job failed and why.
    let done = wait_run(&server, &token, run.body["id"].as_str().unwrap(), "error").await;
    assert_eq!(done["results"][0]["state"], "failed", "{done}");
    assert_eq!(done["counts"]["failed"], 1, "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(
        error.starts_with("the advisory-sync job failed") && error.contains("404"),
        "{done}"
    );
}
