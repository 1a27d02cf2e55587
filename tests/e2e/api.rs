//! The admin API as its users meet it: tokens and scopes, the wall between tenants
//! (checked for every route in the OpenAPI document), problem responses for bad input,
//! the audit log, pagination, and the external checkers (schemathesis, promtool).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stella::Application;
use stella_config::{Secret, Settings};

pub(crate) const ADMIN: &str = "api-test-admin-token-0123456789";

/// Routes anyone may call: the signing keys, so anyone can verify an attestation.
const PUBLIC: &[&str] = &["/api/v1/keys"];

/// Every scope a tenant token can have.
pub(crate) const TENANT_SCOPES: &[&str] = &[
    "scans:read",
    "scans:write",
    "vex:write",
    "policy:read",
    "policy:author",
    "policy:review",
    "policy:approve",
    "policy:operate",
    "schedules:read",
    "schedules:write",
    "exports:read",
    "exports:write",
    "notify:read",
    "notify:write",
    "jobs:read",
    "jobs:write",
];

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) handle: actix_web::dev::ServerHandle,
    pub(crate) http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        bootstrap_token: Some(Secret::new(ADMIN)),
        ..Settings::default()
    };
    settings.api.rate_limit_per_second = 0;
    // Most tests drive the runtime with the diagnostic `noop` kind as a tenant would.
    settings.api.tenant_noop_jobs = true;
    settings.runtime.poll_interval_ms = 20;
    settings
}

pub(crate) async fn start(configure: impl FnOnce(&mut Settings)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path());
    configure(&mut settings);
    let app = Application::build(settings).await.unwrap();
    let addr = app.addr();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    Server {
        addr,
        handle,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Server {
    /// The server's data dir (its SQLite database and object folder).
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) async fn of(mut response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let streaming = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = if streaming {
            // An event stream runs until the job ends or the client leaves: what arrives
            // in its first second is the reply.
            let mut text = String::new();
            let until = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
            while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, response.chunk()).await {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            text
        } else {
            response.text().await.unwrap()
        };
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}

impl Server {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.addr));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(tenant) = tenant {
            request = request.header("X-Stella-Tenant", tenant);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::of(request.send().await.unwrap()).await
    }

    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(ADMIN), None, body).await
    }

    pub(crate) async fn create_tenant(&self, id: &str) {
        let reply = self
            .admin(
                Method::POST,
                "/api/v1/tenants",
                Some(json!({"id": id, "name": format!("Tenant {id}")})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }

    pub(crate) async fn token(&self, tenant: &str, scopes: &[&str]) -> (String, String) {
        self.token_named(tenant, "test", scopes).await
    }

    /// A token of `tenant` for the identity `name` (what separation of duties compares).
    pub(crate) async fn token_named(
        &self,
        tenant: &str,
        name: &str,
        scopes: &[&str],
    ) -> (String, String) {
        let reply = self
            .admin(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"tenant": tenant, "name": name, "scopes": scopes})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        (
            reply.body["id"].as_str().unwrap().to_owned(),
            reply.body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Makes `document` the tenant's active policy the way people do: an author drafts
    /// and submits it, another identity approves and activates it. Returns the active
    /// version.
    pub(crate) async fn activate_policy(&self, tenant: &str, document: &str) -> Value {
        let (_, author) = self
            .token_named(tenant, "policy-author", &["policy:author"])
            .await;
        let (_, approver) = self
            .token_named(
                tenant,
                "policy-approver",
                &["policy:approve", "policy:operate"],
            )
            .await;
        let reply = self
            .call(
                Method::POST,
                "/api/v1/policy/versions",
                Some(&author),
                None,
                Some(json!({ "document": document })),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let version = reply.body["version"].as_u64().unwrap();
        let mut last = reply.body;
        for (action, token) in [
            ("submit", &author),
            ("approve", &approver),
            ("activate", &approver),
        ] {
            let reply = self
                .call(
                    Method::POST,
                    &format!("/api/v1/policy/versions/{version}/{action}"),
                    Some(token),
                    None,
                    Some(json!({})),
                )
                .await;
            assert_eq!(reply.status, 200, "{action}: {}", reply.text);
            last = reply.body;
        }
        assert_eq!(last["status"], "active");
        last
    }

    pub(crate) async fn submit(&self, token: &str, params: Value, max_attempts: u32) -> String {
        let reply = self
            .call(
                Method::POST,
                "/api/v1/jobs",
                Some(token),
                None,
                Some(json!({"kind": "noop", "params": params, "max_attempts": max_attempts})),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn wait_job(&self, token: &str, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reply = self
                .call(
                    Method::GET,
                    &format!("/api/v1/jobs/{id}"),
                    Some(token),
                    None,
                    None,
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            if reply.body["state"] == state {
                return reply.body;
            }
            assert!(
                Instant::now() < deadline,
                "job never {state}: {}",
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A problem body and nothing else: no resource data leaks through an error.
pub(crate) fn assert_problem(reply: &Reply, status: u16, context: &str) {
    assert_eq!(reply.status.as_u16(), status, "{context}: {}", reply.text);
    assert_eq!(
        reply.headers["content-type"], "application/problem+json",
        "{context}"
    );
    let body = reply
        .body
        .as_object()
        .unwrap_or_else(|| panic!("{context}: {}", reply.text));
    for key in body.keys() {
        assert!(
            [
                "type",
                "title",
                "status",
                "detail",
                "request_id",
                "location"
            ]
            .contains(&key.as_str()),
            "{context}: unexpected key {key} in {}",
            reply.text
        );
    }
    assert_eq!(body["status"], status, "{context}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:stella:problem:"),
        "{context}"
    );
    assert_eq!(
        body["request_id"].as_str(),
        reply.headers["x-request-id"].to_str().ok(),
        "{context}"
    );
}

/// The resources of tenant `a` the matrix points routes at.
struct Fixture {
    job: String,
    scan: String,
    token_id: String,
    dead: (String, String),
    target: String,
    schedule: String,
    run: String,
    export: String,
    delivery: String,
    exception: String,
    image: String,
}

fn fill(path: &str, fixture: &Fixture) -> String {
    let filled = if path.starts_with("/api/v1/tenants/") {
        path.replace("{id}", "a")
    } else if path.starts_with("/api/v1/tokens/") {
        path.replace("{id}", &fixture.token_id)
    } else if path.starts_with("/api/v1/scans/") {
        path.replace("{id}", &fixture.scan)
    } else if path.starts_with("/api/v1/jobs/") {
        path.replace("{id}", &fixture.job)
    } else if path.starts_with("/api/v1/targets/") {
        path.replace("{target}", &fixture.target)
    } else if path.starts_with("/api/v1/schedules/") {
        path.replace("{schedule}", &fixture.schedule)
    } else if path.starts_with("/api/v1/runs/") {
        path.replace("{id}", &fixture.run)
    } else if path.starts_with("/api/v1/export-profiles/") {
        path.replace("{name}", "every-finding")
    } else if path.starts_with("/api/v1/exports/") {
        path.replace("{export_id}", &fixture.export)
            .replace("{name}", "findings.csv")
    } else if path.starts_with("/api/v1/notify/channels/") {
        path.replace("{name}", "hook")
    } else if path.starts_with("/api/v1/notify/rules/") {
        path.replace("{name}", "r")
    } else if path.starts_with("/api/v1/notify/templates/") {
        path.replace("{name}", "t")
    } else if path.starts_with("/api/v1/notify/deliveries/") {
        path.replace("{id}", &fixture.delivery)
    } else if path.starts_with("/api/v1/exceptions/") {
        path.replace("{id}", &fixture.exception)
    } else if path.starts_with("/api/v1/images/") {
        path.replace("{digest}", &fixture.image)
    } else if path.starts_with("/api/v1/policy/versions/") {
        path.replace("{version}", "1")
    } else if path.starts_with("/api/v1/policy-packs/") {
        path.replace("{name}", "baseline")
    } else if path.starts_with("/api/v1/rollouts/") {
        // No rollout includes tenant b, and the diff route names tenant a.
        path.replace("{id}", "rol_none").replace("{tenant}", "a")
    } else if path.starts_with("/api/v1/dead-letters/") {
        path.replace("{role}", &fixture.dead.0)
            .replace("{id}", &fixture.dead.1)
    } else {
        path.to_owned()
    };
    assert!(
        !filled.contains('{'),
        "no fixture for the parameters of {path}: extend `fill` when adding a route"
    );
    filled
}

/// Every route of the OpenAPI document × {no token → 401, a token without the route's
/// scope → 403, another tenant's token → 404 with no data (or, for lists, none of the
/// first tenant's data)}.
async fn isolation_matrix(server: &Server) {
    server.create_tenant("a").await;
    server.create_tenant("b").await;
    let (a_token_id, a_all) = server.token("a", TENANT_SCOPES).await;
    let (_, b_all) = server.token("b", TENANT_SCOPES).await;
    let job = server.submit(&a_all, json!({}), 3).await;
    server.wait_job(&a_all, &job, "succeeded").await;
    let dead_job = server
        .submit(&a_all, json!({"panic_always": true}), 1)
        .await;
    server.wait_job(&a_all, &dead_job, "failed").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead = loop {
        let reply = server
            .call(
                Method::GET,
                "/api/v1/dead-letters",
                Some(&a_all),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if let Some(item) = reply.body["items"].as_array().unwrap().first() {
            assert_eq!(item["job_id"], dead_job.as_str());
            break (
                item["role"].as_str().unwrap().to_owned(),
                item["id"].as_str().unwrap().to_owned(),
            );
        }
        assert!(Instant::now() < deadline, "no dead letter appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let scan = crate::scans::scan_of(server, &a_all, crate::scans::tiny_sbom(), &[]).await;
    crate::scans::wait_scan(server, &a_all, &scan, "completed").await;
    let reply = server
        .call(
            Method::POST,
            "/api/v1/targets",
            Some(&a_all),
            None,
            Some(json!({"name": "web", "scan_id": scan})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let target = reply.body["id"].as_str().unwrap().to_owned();
    let reply = server
        .call(
            Method::POST,
            "/api/v1/schedules",
            Some(&a_all),
            None,
            Some(json!({"name": "nightly", "cron": "0 2 * * *"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let schedule = reply.body["id"].as_str().unwrap().to_owned();
    let reply = server
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{schedule}/run"),
            Some(&a_all),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let run = reply.body["id"].as_str().unwrap().to_owned();
    let reply = server
        .call(
            Method::POST,
            "/api/v1/export-profiles",
            Some(&a_all),
            None,
            Some(json!({"name": "every-finding", "kind": "csv", "selectors": {"scans": [scan]}})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = server
        .call(
            Method::POST,
            "/api/v1/exports",
            Some(&a_all),
            None,
            Some(json!({"profile": "every-finding"})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let export = reply.body["export_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = server
            .call(
                Method::GET,
                &format!("/api/v1/exports/{export}"),
                Some(&a_all),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if reply.body["status"] == "completed" {
            break;
        }
        assert_ne!(reply.body["status"], "failed", "{}", reply.text);
        assert!(
            Instant::now() < deadline,
            "the export did not finish: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Notification resources of `a`: a channel (to a local port nothing listens on),
    // a rule, a template and a delivery (the channel's test message).
    for (path, body) in [
        (
            "/api/v1/notify/channels",
            json!({"name": "hook", "config": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}}),
        ),
        (
            "/api/v1/notify/rules",
            json!({"name": "r", "match": {"event_kinds": ["scan.completed"]}, "actions": [{"channel": "hook"}]}),
        ),
        (
            "/api/v1/notify/templates",
            json!({"name": "t", "channel_type": "webhook", "source": "{% block subject %}{{ event.kind }}{% endblock %}{% block text %}{{ event.kind }}{% endblock %}"}),
        ),
    ] {
        let reply = server
            .call(Method::POST, path, Some(&a_all), None, Some(body))
            .await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
    let reply = server
        .call(
            Method::POST,
            "/api/v1/notify/channels/hook/test",
            Some(&a_all),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let delivery = reply.body["id"].as_str().unwrap().to_owned();
    // A draft policy version of `a` (version 1).
    let reply = server
        .call(
            Method::POST,
            "/api/v1/policy/versions",
            Some(&a_all),
            None,
            Some(json!({"document": "name = \"p\"\nversion = 1\nrules = []\n"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // A requested exception of `a`.
    let reply = server
        .call(
            Method::POST,
            "/api/v1/exceptions",
            Some(&a_all),
            None,
            Some(json!({
                "vulnerability": "CVE-2024-0001",
                "type": "accepted_risk",
                "justification": "Replaced next quarter; not reachable until then.",
                "expires_at": (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339(),
            })),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let exception = reply.body["id"].as_str().unwrap().to_owned();
    // An image of tenant a.
    let archive = crate::binary::docker_archive(&[(
        "var/lib/dpkg/status",
        b"Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\n".to_vec(),
    )]);
    let uploaded = server
        .http
        .post(format!("http://{}/api/v1/images", server.addr))
        .bearer_auth(&a_all)
        .header("content-type", "application/x-tar")
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let image = uploaded.json::<Value>().await.unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let fixture = Fixture {
        job: job.clone(),
        scan: scan.clone(),
        token_id: a_token_id,
        dead: dead.clone(),
        target: target.clone(),
        schedule: schedule.clone(),
        run: run.clone(),
        export: export.clone(),
        delivery: delivery.clone(),
        exception: exception.clone(),
        image: image.clone(),
    };

    let doc = server
        .call(Method::GET, "/api/v1/openapi.json", None, None, None)
        .await;
    assert_eq!(doc.status, 200);
    let mut checked = 0;
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            if PUBLIC.contains(&path.as_str()) {
                assert_eq!(op["security"], json!([{}]), "{path} is declared public");
                let reply = server.call(method.clone(), path, None, None, None).await;
                assert_eq!(reply.status, 200, "{path} without a token: {}", reply.text);
                checked += 1;
                continue;
            }
            let scope = op["security"][0]["bearer"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} declares no scope"));
            let url = fill(path, &fixture);
            let what = format!("{method} {path}");
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));

            let reply = server
                .call(method.clone(), &url, None, None, body.clone())
                .await;
            assert_problem(&reply, 401, &format!("{what} without a token"));

            let without: Vec<&str> = TENANT_SCOPES
                .iter()
                .copied()
                .filter(|s| *s != scope)
                .collect();
            let (_, narrow) = server.token("a", &without).await;
            let reply = server
                .call(method.clone(), &url, Some(&narrow), None, body.clone())
                .await;
            assert_problem(&reply, 403, &format!("{what} without `{scope}`"));

            // Global scopes (administrators only) have no tenant wall to test.
            if scope != "admin" && scope != "advisories:write" {
                let reply = server
                    .call(method.clone(), &url, Some(&b_all), None, body.clone())
                    .await;
                if path.contains('{') {
                    assert_problem(&reply, 404, &format!("{what} with tenant b's token"));
                } else if method == Method::GET {
                    assert_eq!(reply.status, 200, "{what}: {}", reply.text);
                    // Ids long enough to mean something in a body (an embedded dead
                    // letter's id is a small number; its job id stands for it).
                    for secret in [
                        &job, &dead_job, &dead.1, &scan, &target, &schedule, &run, &export,
                        &delivery, &exception, &image,
                    ]
                    .into_iter()
                    .filter(|s| s.len() >= 8)
                    {
                        assert!(
                            !reply.text.contains(secret.as_str()),
                            "{what} leaks {secret}: {}",
                            reply.text
                        );
                    }
                }
                // Tenant b naming tenant a in the header gets nothing either.
                let reply = server
                    .call(method.clone(), &url, Some(&b_all), Some("a"), body.clone())
                    .await;
                assert_problem(
                    &reply,
                    404,
                    &format!("{what} with tenant b's token naming a"),
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations in the document");

    // The resources are all still there for their owner.
    let reply = server
        .call(
            Method::GET,
            &format!("/api/v1/jobs/{job}"),
            Some(&a_all),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["state"], "succeeded");
}

#[actix_web::test]
async fn every_route_enforces_tokens_scopes_and_tenants_embedded() {
    let server = start(|s| s.outbound.allow_hosts = "127.0.0.1".into()).await;
    isolation_matrix(&server).await;
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn every_route_enforces_tokens_scopes_and_tenants_on_services() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let valkey = std::env::var("STELLA_VALKEY_URL").expect("STELLA_VALKEY_URL with the services");
    let url = db.url.clone();
    let prefix = format!("api-{}", uuid::Uuid::new_v4().simple());
    let server = start(|s| {
        s.database.url = Some(Secret::new(url));
        s.database.max_connections = 6;
        s.valkey.url = Some(Secret::new(valkey));
        s.valkey.key_prefix = prefix;
        s.outbound.allow_hosts = "127.0.0.1".into();
    })
    .await;
    isolation_matrix(&server).await;
    server.handle.stop(true).await;
    db.finish().await;
}

#[actix_web::test]
async fn a_tenant_runs_jobs_and_an_admin_manages_tenants_and_tokens() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (token_id, acme) = server.token("acme", &["jobs:read", "jobs:write"]).await;

    // A job runs to the end; its history shows the attempt.
    let id = server.submit(&acme, json!({"fail_first": 1}), 3).await;
    let job = server.wait_job(&acme, &id, "succeeded").await;
    assert_eq!(job["attempts"], 2);
    let states: Vec<&str> = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"retrying"), "{states:?}");
    assert_eq!(states.last(), Some(&"succeeded"));

    // Filters and pagination: three pages of two over five jobs, no repeats, none lost.
    for _ in 0..4 {
        server.submit(&acme, json!({}), 3).await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply = server
            .call(
                Method::GET,
                &format!("/api/v1/jobs?limit=2&kind=noop&cursor={cursor}"),
                Some(&acme),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        for item in reply.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages are in stable id order without repeats");
    let failed = server
        .call(
            Method::GET,
            "/api/v1/jobs?state=failed",
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_eq!(failed.body["items"], json!([]));
    let bad = server
        .call(
            Method::GET,
            "/api/v1/jobs?state=exploded",
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_problem(&bad, 400, "unknown state filter");

    // Cancelling: a queued long job can be cancelled; a finished one cannot.
    let long = server.submit(&acme, json!({"sleep_ms": 60_000}), 1).await;
    let cancelled = server
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{long}/cancel"),
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["state"], "cancelled");
    let again = server
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_problem(&again, 409, "cancel a succeeded job");

    // An administrator acts on a tenant by naming it; without the header it is told how.
    let listed = server
        .call(Method::GET, "/api/v1/jobs", Some(ADMIN), Some("acme"), None)
        .await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 6);
    let unnamed = server.admin(Method::GET, "/api/v1/jobs", None).await;
    assert_problem(&unnamed, 400, "admin without X-Stella-Tenant");
    assert!(unnamed.body["detail"]
        .as_str()
        .unwrap()
        .contains("X-Stella-Tenant"));

    // Disabling the tenant stops its tokens; enabling brings them back; revoking ends one.
    let reply = server
        .admin(Method::POST, "/api/v1/tenants/acme/disable", None)
        .await;
    assert_eq!(reply.body["status"], "disabled");
    let denied = server
        .call(Method::GET, "/api/v1/jobs", Some(&acme), None, None)
        .await;
    assert_problem(&denied, 401, "token of a disabled tenant");
    server
        .admin(Method::POST, "/api/v1/tenants/acme/enable", None)
        .await;
    let allowed = server
        .call(Method::GET, "/api/v1/jobs", Some(&acme), None, None)
        .await;
    assert_eq!(allowed.status, 200);
    let revoked = server
        .admin(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None)
        .await;
    assert!(revoked.body["revoked_at"].is_string(), "{}", revoked.text);
    let denied = server
        .call(Method::GET, "/api/v1/jobs", Some(&acme), None, None)
        .await;
    assert_problem(&denied, 401, "revoked token");

    // Token listing never shows a secret.
    let tokens = server
        .admin(Method::GET, "/api/v1/tokens?tenant=acme", None)
        .await;
    assert_eq!(tokens.body["items"].as_array().unwrap().len(), 1);
    assert!(!tokens.text.contains(&acme));
    assert!(!tokens.text.contains("\"token\""));

    // Scope rules of token creation, with the field at fault.
    let reply = server
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"tenant": "acme", "name": "x", "scopes": ["jobs:read", "root"]})),
        )
        .await;
    assert_problem(&reply, 400, "unknown scope");
    assert_eq!(reply.body["location"], "scopes[1]");
    let reply = server
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"tenant": "acme", "name": "x", "scopes": ["admin"]})),
        )
        .await;
    assert_problem(&reply, 400, "admin scope on a tenant token");
    let reply = server
        .admin(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"id": "acme", "name": "again"})),
        )
        .await;
    assert_problem(&reply, 409, "duplicate tenant");
    let reply = server
        .admin(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"id": "Not A Slug", "name": "x"})),
        )
        .await;
    assert_problem(&reply, 400, "tenant id not a slug");
    assert_eq!(reply.body["location"], "id");

    // Every mutating call is in the audit log with who, what and the request id.
    let created = server
        .admin(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"id": "audited", "name": "Audited"})),
        )
        .await;
    let request_id = created.headers["x-request-id"].to_str().unwrap().to_owned();
    let audit = server
        .admin(Method::GET, "/api/v1/audit?limit=500", None)
        .await;
    let entry = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no audit entry for {request_id}: {}", audit.text));
    assert_eq!(entry["action"], "create_tenant");
    assert_eq!(entry["target"], "/api/v1/tenants");
    assert_eq!(entry["details"]["status"], 201);
    assert!(entry["actor"].as_str().unwrap().starts_with("token:tok_"));
    let cancel_entry = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == format!("/api/v1/jobs/{long}/cancel"))
        .expect("cancel is audited");
    assert_eq!(cancel_entry["tenant"], "acme");

    // The supervision tree is served.
    let tree = server
        .admin(Method::GET, "/api/v1/system/actors", None)
        .await;
    assert_eq!(tree.status, 200, "{}", tree.text);
    assert_eq!(tree.body["kind"], "root");
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn bad_input_gets_a_precise_problem_never_a_500() {
    let server = start(|s| s.api.max_body_bytes = 2048).await;
    let url = format!("http://{}/api/v1/tenants", server.addr);
    let send = |body: &'static str, content_type: &'static str| {
        let request = server
            .http
            .post(&url)
            .bearer_auth(ADMIN)
            .header("content-type", content_type)
            .body(body);
        async move { Reply::of(request.send().await.unwrap()).await }
    };
    let reply = send("{\"id\": \"x\",\n \"name\": }", "application/json").await;
    assert_problem(&reply, 400, "malformed JSON");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("line 2"),
        "{}",
        reply.text
    );

    let reply = send(
        r#"{"id": "x", "name": "X", "colour": "red"}"#,
        "application/json",
    )
    .await;
    assert_problem(&reply, 400, "unknown field");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("colour"),
        "{}",
        reply.text
    );

    let reply = send(r#"{"id": 7, "name": "X"}"#, "application/json").await;
    assert_problem(&reply, 400, "wrong type");
    assert_eq!(reply.body["location"], "id");

    let reply = send(r#"{"id": "x", "name": "X"}"#, "text/plain").await;
    assert_problem(&reply, 415, "wrong content type");

    let big: &'static str =
        Box::leak(format!(r#"{{"id": "x", "name": "{}"}}"#, "n".repeat(4096)).into_boxed_str());
    let reply = send(big, "application/json").await;
    assert_problem(&reply, 413, "body over the limit");

    let reply = send("", "application/json").await;
    assert_problem(&reply, 400, "empty body");

    let reply = server.admin(Method::GET, "/api/v1/nowhere", None).await;
    assert_problem(&reply, 404, "unknown route");
    let reply = server.admin(Method::PUT, "/api/v1/tenants", None).await;
    assert_problem(&reply, 405, "wrong method");
    let reply = server
        .admin(Method::GET, "/api/v1/tenants?limit=lots", None)
        .await;
    assert_problem(&reply, 400, "bad query");
    let reply = server
        .admin(Method::GET, "/api/v1/audit?cursor=zzz", None)
        .await;
    assert_problem(&reply, 400, "bad cursor");
    let reply = server
        .call(
            Method::GET,
            "/api/v1/tenants",
            Some("stella_not-a-real-token"),
            None,
            None,
        )
        .await;
    assert_problem(&reply, 401, "unknown token");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");

    // Nothing half-made: the rejected tenant does not exist.
    let reply = server.admin(Method::GET, "/api/v1/tenants/x", None).await;
    assert_problem(&reply, 404, "rejected tenant");
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let server = start(|s| {
        s.api.rate_limit_per_second = 1;
        s.api.rate_limit_burst = 3;
    })
    .await;
    server.create_tenant("busy").await;
    server.create_tenant("calm").await;
    let (_, busy) = server.token("busy", &["jobs:read"]).await;
    let (_, calm) = server.token("calm", &["jobs:read"]).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = server
            .call(Method::GET, "/api/v1/jobs", Some(&busy), None, None)
            .await;
        if reply.status == 429 {
            assert_problem(&reply, 429, "rate limited");
            let retry: u64 = reply.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry), "{retry}");
        }
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let reply = server
        .call(Method::GET, "/api/v1/jobs", Some(&calm), None, None)
        .await;
    assert_eq!(reply.status, 200, "another tenant is not slowed down");
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn a_token_expiry_in_the_past_or_beyond_100_years_is_a_400_problem() {
    let server = start(|_| {}).await;
    let create = |expires_at: &str| {
        server.admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ci", "scopes": ["admin"], "expires_at": expires_at})),
        )
    };
    for (expires_at, context) in [
        ("9999-12-31T23:59:59Z", "the year 9999"),
        ("2001-01-01T00:00:00Z", "in the past"),
    ] {
        let reply = create(expires_at).await;
        assert_problem(&reply, 400, context);
        assert_eq!(reply.body["location"], "expires_at", "{context}");
    }
    let in_a_year = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let reply = create(&in_a_year).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    server.handle.stop(true).await;
}

pub(crate) fn tool(name: &str) -> Option<String> {
    let var = format!("STELLA_TEST_{}", name.to_uppercase());
    match std::env::var(&var) {
        Ok(path) => Some(path),
        Err(_) if std::env::var_os("STELLA_TEST_SERVICES").is_some() => {
            panic!("{var} must be set by ops/services.sh when STELLA_TEST_SERVICES is set")
        }
        Err(_) => None,
    }
}

#[actix_web::test]
async fn metrics_pass_promtool_check() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let server = start(|_| {}).await;
    server.create_tenant("m").await;
    let (_, token) = server.token("m", &["jobs:write", "jobs:read"]).await;
    let id = server.submit(&token, json!({}), 1).await;
    server.wait_job(&token, &id, "succeeded").await;
    let text = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("stella_job_executions_total"), "{text}");
    assert!(
        text.contains(
            r#"stella_http_requests_total{method="POST",route="/api/v1/jobs",status="201"} 1"#
        ),
        "{text}"
    );
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn schemathesis_finds_no_server_error_and_no_schema_mismatch() {
    let Some(schemathesis) = tool("schemathesis") else {
        return;
    };
    let server = start(|_| {}).await;
    server.create_tenant("fuzz").await;
    let addr = server.addr;
    let cwd = tempfile::tempdir().unwrap();
    let cwd_path = cwd.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(schemathesis)
            .current_dir(cwd_path)
            .args([
                "run",
                &format!("http://{addr}/api/v1/openapi.json"),
                "--url",
                &format!("http://{addr}"),
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--max-examples",
                "15",
                // Event streams run until the job ends or the client leaves: a fuzzer's
                // request would wait out its timeout. tests/e2e/streams.rs checks them.
                "--exclude-path-regex",
                "/stream$",
                "--header",
                &format!("Authorization: Bearer {ADMIN}"),
                "--header",
                "X-Stella-Tenant: fuzz",
                "--no-color",
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It really exercised every operation, with every schema part resolved.
    assert!(!stdout.contains("nresolvable"), "{stdout}");
    let tested = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    assert!(tested.trim().parse::<u32>().unwrap() >= 19, "{stdout}");
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn advisories_import_over_http_idempotently_and_refuse_bad_records_whole() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/advisories/Go-all.zip");
    let Ok(zip) = std::fs::read(&data) else {
        println!("skipping: {} not found", data.display());
        return;
    };
    let server = start(|_| {}).await;
    let url = format!(
        "http://{}/api/v1/advisories/imports?source=osv:Go",
        server.addr
    );
    let post = |body: Vec<u8>, content_type: &'static str| {
        let request = server
            .http
            .post(&url)
            .bearer_auth(ADMIN)
            .header("content-type", content_type)
            .body(body);
        async move { Reply::of(request.send().await.unwrap()).await }
    };
    let first = post(zip.clone(), "application/zip").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["records"], 4291);
    assert_eq!(first.body["new"], 4291);
    assert!(first.body["delta_packages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "Go/golang.org/x/net"));
    let again = post(zip, "application/zip").await;
    assert_eq!(again.body["unchanged"], 4291, "{}", again.text);
    assert_eq!(again.body["delta_packages"], json!([]));

    // One bad record in a collection refuses the whole collection and names it.
    let bad = json!([
        {"id": "X-1", "modified": "2024-01-01T00:00:00Z"},
        {"id": "X-2", "modified": "not a time"}
    ]);
    let reply = post(bad.to_string().into_bytes(), "application/json").await;
    assert_problem(&reply, 400, "bad record");
    assert!(
        reply.body["detail"].as_str().unwrap().contains("[1]"),
        "{}",
        reply.text
    );
    assert_eq!(reply.body["location"], "/modified");
    let reply = post(b"PK\x03\x04 not really a zip".to_vec(), "application/zip").await;
    assert_problem(&reply, 400, "broken zip");
    let reply = post(b"{}".to_vec(), "text/plain").await;
    assert_problem(&reply, 415, "wrong type");
    let stored = server
        .call(Method::GET, "/api/v1/jobs", Some(ADMIN), None, None)
        .await;
    assert_problem(&stored, 400, "admin must name a tenant for jobs");
    server.handle.stop(true).await;
}
