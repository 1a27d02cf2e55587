//! The web console in a real browser: `stella serve` with two tenants, their tokens, a
//! schedule and a dead letter; `console/console.mjs` drives Debian's chromium through
//! playwright-core (sign in, submit a scan and watch its progress bar reach "completed"
//! through the stream, open a finding's trace, replay a dead letter, pause a schedule,
//! the tenancy wall, scopes, CSRF). Then the API confirms what the browser did, and the
//! audit log holds the console's actions with their reasons.
//!
//! Needs `STELLA_TEST_CHROMIUM` and `STELLA_TEST_PLAYWRIGHT` (set by `ops/services.sh`);
//! without them the test is skipped, unless `STELLA_TEST_SERVICES` is set: then it fails.
//! Screenshots of the main pages are written to `$CARGO_TARGET_TMPDIR/console-screenshots`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::binary::CliServer;

fn browser_tool(var: &str) -> Option<PathBuf> {
    match std::env::var(var) {
        Ok(path) if Path::new(&path).exists() => Some(PathBuf::from(path)),
        found => {
            assert!(
                std::env::var_os("STELLA_TEST_SERVICES").is_none(),
                "{var} must name an existing path when STELLA_TEST_SERVICES is set \
                 (ops/services.sh installs chromium and playwright-core): {found:?}"
            );
            eprintln!(
                "skipping: {var} is not set (run ops/test.sh, or eval \"$(ops/services.sh up)\")"
            );
            None
        }
    }
}

fn api(server: &CliServer, token: &str, tenant: Option<&str>) -> ApiClient {
    ApiClient {
        base: format!("{}/api/v1", server.url()),
        token: token.to_owned(),
        tenant: tenant.map(str::to_owned),
        http: reqwest::blocking::Client::new(),
    }
}

struct ApiClient {
    base: String,
    token: String,
    tenant: Option<String>,
    http: reqwest::blocking::Client,
}

impl ApiClient {
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Stella-Tenant", tenant);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

fn token(server: &CliServer, tenant: &str, name: &str, scopes: &str) -> String {
    let out = server.ok(&[
        "--output",
        "json",
        "tokens",
        "create",
        "--for-tenant",
        tenant,
        "--name",
        name,
        "--scopes",
        scopes,
    ]);
    let created: Value = serde_json::from_str(&out).unwrap();
    created["token"].as_str().unwrap().to_owned()
}

#[test]
fn console_in_a_browser_signs_in_scans_live_explains_replays_pauses_and_keeps_tenants_apart() {
    let (Some(chromium), Some(playwright)) = (
        browser_tool("STELLA_TEST_CHROMIUM"),
        browser_tool("STELLA_TEST_PLAYWRIGHT"),
    ) else {
        return;
    };
    let server = CliServer::start();
    for tenant in ["acme", "globex"] {
        server.ok(&["tenants", "create", tenant, "--name", tenant]);
    }
    let advisories = server.dir.path().join("advisories");
    std::fs::create_dir(&advisories).unwrap();
    std::fs::write(
        advisories.join("NPM-1.json"),
        r#"{"id": "NPM-1", "modified": "2024-01-01T00:00:00Z", "summary": "left-pad loses padding", "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "9.0.0"}]}]}]}"#,
    )
    .unwrap();
    server.ok(&["advisories", "import", advisories.to_str().unwrap()]);
    let all =
        "scans:read,scans:write,jobs:read,jobs:write,schedules:read,schedules:write,exports:read";
    let acme = token(&server, "acme", "console-acme", all);
    let globex = token(&server, "globex", "console-globex", all);
    let reader = token(&server, "acme", "console-reader", "scans:read");

    // A schedule of acme's, and a dead letter: a job whose every attempt panics.
    let acme_api = api(&server, &acme, None);
    let (status, body) = acme_api.send(
        reqwest::Method::POST,
        "/schedules",
        Some(
            json!({"name": "nightly", "cron": "0 2 * * *", "kind": "rescan", "jitter_seconds": 0}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let admin_acme = api(&server, server.admin(), Some("acme"));
    let (status, body) = admin_acme.send(
        reqwest::Method::POST,
        "/jobs",
        Some(json!({"kind": "noop", "params": {"panic_always": true}, "max_attempts": 1})),
    );
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while acme_api.get("/dead-letters")["items"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no dead letter appeared");
        std::thread::sleep(Duration::from_millis(100));
    }

    let sbom = server.dir.path().join("app.cdx.json");
    std::fs::write(&sbom, crate::scans::tiny_sbom()).unwrap();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/console/console.mjs");
    let output = Command::new("node")
        .arg(&script)
        .env("CONSOLE_URL", server.url())
        .env("ACME_TOKEN", &acme)
        .env("GLOBEX_TOKEN", &globex)
        .env("READER_TOKEN", &reader)
        .env("ADMIN_TOKEN", server.admin())
        .env("SBOM_PATH", &sbom)
        .env("SHOTS_DIR", &shots)
        .env("STELLA_TEST_CHROMIUM", &chromium)
        .env("STELLA_TEST_PLAYWRIGHT", &playwright)
        .output()
        .unwrap_or_else(|err| panic!("cannot run node (ops/services.sh installs it): {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );
    let found: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    // What the browser did, as the API sees it.
    let scan_id = found["scan"].as_str().unwrap();
    let scan = acme_api.get(&format!("/scans/{scan_id}"));
    assert_eq!(scan["status"], "completed", "{scan}");
    assert_eq!(scan["name"], "console-app", "{scan}");
    assert!(found["trace_steps"].as_u64().unwrap() >= 1, "{found}");
    let schedule = acme_api.get("/schedules/nightly");
    assert_eq!(
        schedule["enabled"], false,
        "paused from the console: {schedule}"
    );
    // The chart counts the scan by its disposition.
    let disposition = scan["disposition"].as_str().unwrap();
    assert_eq!(
        found["chart"][disposition],
        format!("{disposition} 1"),
        "{found}"
    );

    // The console's actions are in the audit log under the API's operation names, with
    // the reason given; the refused CSRF-less posts changed nothing and are not actions.
    let audit = api(&server, server.admin(), None).get("/audit?tenant=acme&limit=500");
    let entries = audit["items"].as_array().unwrap();
    let via_console: Vec<&Value> = entries
        .iter()
        .filter(|e| e["details"]["via"] == "console")
        .collect();
    let replay = via_console
        .iter()
        .find(|e| e["action"] == "replay_dead_letter")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(replay["details"]["reason"], "fixed the worker; try again");
    assert_eq!(replay["details"]["status"], 200);
    assert!(replay["actor"].as_str().unwrap().contains("console-acme"));
    assert!(via_console
        .iter()
        .any(|e| e["action"] == "pause_schedule" && e["details"]["status"] == 200));
    assert!(via_console
        .iter()
        .any(|e| e["action"] == "submit_scan" && e["details"]["status"] == 202));
    assert!(
        !via_console.iter().any(|e| e["action"] == "resume_schedule"),
        "a refused form is not an action: {audit}"
    );
    assert!(
        replay["target"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/dead-letters/"),
        "{replay}"
    );

    for name in [
        "overview",
        "scan",
        "finding",
        "jobs",
        "job",
        "dead-letters",
        "schedules",
        "supervision",
    ] {
        let file = shots.join(format!("{name}.png"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{}", file.display());
    }
}

/// A console client without a browser: the session cookie by hand, redirects not
/// followed.
struct Console {
    base: String,
    http: reqwest::blocking::Client,
    cookie: Option<String>,
}

impl Console {
    fn new(server: &CliServer) -> Self {
        Self {
            base: format!("{}/console", server.url()),
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// The console's origin, as a browser names it in `Origin`.
    fn origin(&self) -> String {
        self.base.trim_end_matches("/console").to_owned()
    }

    /// A sign-in form posted with these extra headers only (no `Origin` of its own).
    fn sign_in_with(&self, token: &str, headers: &[(&str, &str)]) -> u16 {
        let mut request = self
            .http
            .post(format!("{}/sign-in", self.base))
            .form(&[("token", token)]);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().unwrap().status().as_u16()
    }

    fn sign_in(&mut self, token: &str) -> reqwest::blocking::Response {
        let response = self
            .http
            .post(format!("{}/sign-in", self.base))
            .form(&[("token", token)])
            .header("origin", self.origin())
            .send()
            .unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        response
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    fn post(&self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> (u16, String) {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    /// The CSRF token in a page's forms.
    fn csrf(&self) -> String {
        let (status, html) = self.get("");
        assert_eq!(status, 200, "{html}");
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        html[at..at + 64].to_owned()
    }
}

#[test]
fn console_sessions_need_the_csrf_token_keep_tenants_apart_and_end_with_the_token() {
    // A notification channel on loopback (nothing listens there: its attempts fail).
    let server = CliServer::start_with_config("[outbound]\nallow_hosts = \"127.0.0.1\"\n");
    for tenant in ["acme", "globex"] {
        server.ok(&["tenants", "create", tenant, "--name", tenant]);
    }
    let scopes = "jobs:read,jobs:write,schedules:read,schedules:write,scans:read,scans:write,\
                  exports:read,exports:write,notify:read,notify:write";
    let acme = token(&server, "acme", "acme-console", scopes);
    let globex = token(&server, "globex", "globex-console", scopes);
    let acme_api = api(&server, &acme, None);
    let (status, body) = acme_api.send(
        reqwest::Method::POST,
        "/schedules",
        Some(json!({"name": "nightly", "cron": "0 2 * * *", "kind": "rescan"})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, job) = api(&server, server.admin(), Some("acme")).send(
        reqwest::Method::POST,
        "/jobs",
        Some(json!({"kind": "noop"})),
    );
    assert_eq!(status, 201, "{job}");
    let job = job["id"].as_str().unwrap().to_owned();

    let mut console = Console::new(&server);
    let (status, _) = console.get("/jobs");
    assert_eq!(status, 303, "no session: to the sign-in page");
    let refused = console.sign_in("stella_0000000000000000000000000000");
    assert_eq!(refused.status(), 401);
    assert!(console.cookie.is_none(), "no session for a wrong token");
    // Login CSRF: a sign-in form that does not come from the console's own page.
    assert_eq!(
        console.sign_in_with(&acme, &[]),
        403,
        "no Origin, no Sec-Fetch-Site"
    );
    assert_eq!(
        console.sign_in_with(&acme, &[("origin", "http://evil.example")]),
        403
    );
    assert_eq!(
        console.sign_in_with(&acme, &[("sec-fetch-site", "cross-site")]),
        403
    );
    let signed_in = console.sign_in(&acme);
    assert_eq!(signed_in.status(), 303);
    let set = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains(&acme), "the cookie is not the token: {set}");

    // A state change without the CSRF token, with a wrong one, or from another origin is
    // refused and changes nothing; with it, it is done.
    let csrf = console.csrf();
    let pause = "/schedules/nightly/pause";
    for (form, origin) in [
        (vec![], None),
        (vec![("csrf", "0".repeat(64))], None),
        (vec![("csrf", csrf.clone())], Some("http://evil.example")),
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, html) = console.post(pause, &form, origin);
        assert_eq!(status, 403, "{form:?} {origin:?}: {html}");
        assert_eq!(acme_api.get("/schedules/nightly")["enabled"], true);
    }
    let (status, html) = console.post(pause, &[("csrf", &csrf)], Some(&server.url()));
    assert_eq!(status, 303, "{html}");
    assert_eq!(acme_api.get("/schedules/nightly")["enabled"], false);

    // Run now, even paused; the run is listed under the schedule and has its page.
    let (status, html) = console.post("/schedules/nightly/run", &[("csrf", &csrf)], None);
    assert_eq!(status, 303, "{html}");
    let runs = acme_api.get("/runs?schedule_id=nightly");
    let run = runs["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(runs["items"][0]["trigger"], "manual", "{runs}");
    let (status, html) = console.get("/runs?schedule=nightly");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&run), "{html}");
    let (status, html) = console.get(&format!("/runs/{run}"));
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("manual"), "{html}");

    // Another tenant's session sees none of it.
    let mut other = Console::new(&server);
    assert_eq!(other.sign_in(&globex).status(), 303);
    let (status, _) = other.get(&format!("/runs/{run}"));
    assert_eq!(status, 404, "another tenant's run");
    let (status, _) = other.get(&format!("/jobs/{job}"));
    assert_eq!(status, 404);
    let (status, html) = other.get("/schedules");
    assert_eq!(status, 200);
    assert!(!html.contains("nightly"), "{html}");
    let (status, html) = other.get("/jobs");
    assert_eq!(status, 200);
    assert!(!html.contains(&job), "{html}");
    let (status, _) = other.post(
        "/schedules/nightly/resume",
        &[("csrf", &other.csrf())],
        None,
    );
    assert_eq!(status, 404, "another tenant's schedule");
    // Each session has its own CSRF token.
    let (status, _) = other.post("/schedules/nightly/resume", &[("csrf", &csrf)], None);
    assert_eq!(status, 403);

    // A bulk cancel by filter says how many jobs it will touch before it runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acme_api.get(&format!("/jobs/{job}"))["state"] != "succeeded" {
        assert!(Instant::now() < deadline, "the noop job did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let admin_acme = api(&server, server.admin(), Some("acme"));
    let sleepers: Vec<String> = (0..3)
        .map(|_| {
            let (status, body) = admin_acme.send(
                reqwest::Method::POST,
                "/jobs",
                Some(json!({"kind": "noop", "params": {"sleep_ms": 600_000}})),
            );
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    // One job cancelled from its page, with a reason.
    let (status, body) = admin_acme.send(
        reqwest::Method::POST,
        "/jobs",
        Some(json!({"kind": "noop", "params": {"sleep_ms": 600_000}})),
    );
    assert_eq!(status, 201, "{body}");
    let one = body["id"].as_str().unwrap().to_owned();
    let (status, html) = console.get(&format!("/jobs/{one}"));
    assert_eq!(status, 200);
    assert!(html.contains("Cancel this job"), "{html}");
    let (status, html) = console.post(
        &format!("/jobs/{one}/cancel"),
        &[("csrf", &csrf), ("reason", "started by mistake")],
        None,
    );
    assert_eq!(status, 303, "{html}");
    assert_eq!(acme_api.get(&format!("/jobs/{one}"))["state"], "cancelled");
    let (_, html) = console.get(&format!("/jobs/{one}"));
    assert!(!html.contains("Cancel this job"), "a finished job: {html}");

    let (status, html) = console.get("/jobs/cancel?kind=noop");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("3 unfinished jobs match"), "{html}");
    let (status, html) = console.post(
        "/jobs/cancel",
        &[("csrf", &csrf), ("kind", "noop"), ("expected", "3")],
        None,
    );
    assert_eq!(status, 400, "a reason is required: {html}");
    let (status, html) = console.post(
        "/jobs/cancel",
        &[
            ("csrf", &csrf),
            ("kind", "noop"),
            ("expected", "3"),
            ("reason", "runaway sleepers"),
        ],
        None,
    );
    assert_eq!(status, 303, "{html}");
    for id in &sleepers {
        assert_eq!(acme_api.get(&format!("/jobs/{id}"))["state"], "cancelled");
    }
    assert_eq!(
        acme_api.get(&format!("/jobs/{job}"))["state"],
        "succeeded",
        "a finished job is not touched"
    );

    // A bulk replay of dead letters says how many it will replay, then replays each with
    // the reason, audited one by one.
    for _ in 0..2 {
        let (status, body) = admin_acme.send(
            reqwest::Method::POST,
            "/jobs",
            Some(json!({"kind": "noop", "params": {"panic_always": true}, "max_attempts": 1})),
        );
        assert_eq!(status, 201, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acme_api.get("/dead-letters")["items"]
        .as_array()
        .unwrap()
        .len()
        < 2
    {
        assert!(Instant::now() < deadline, "no dead letters appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, html) = console.get("/dead-letters/replay");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("2 dead letters of role"), "{html}");
    let (status, html) = console.get("/dead-letters/replay?role=nobody");
    assert_eq!(status, 400, "{html}");
    let (status, html) = console.post(
        "/dead-letters/replay",
        &[("csrf", &csrf), ("reason", "the worker is fixed")],
        None,
    );
    assert_eq!(status, 303, "{html}");
    let audit = api(&server, server.admin(), None).get("/audit?tenant=acme&limit=500");
    let replays = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "replay_dead_letter"
                && e["details"]["reason"] == "the worker is fixed"
                && e["details"]["status"] == 200
        })
        .count();
    assert_eq!(replays, 2, "{audit}");

    // An export run's page links its files; the console's download is the API's file,
    // and another tenant's session cannot fetch it.
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/scans", server.url()))
        .bearer_auth(&acme)
        .header("content-type", "application/json")
        .body(crate::scans::tiny_sbom())
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
    let scan: Value = response.json().unwrap();
    let scan = scan["job_id"].as_str().unwrap().to_owned();
    let until = |path: &str, field: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = acme_api.get(path);
            if body[field] == want {
                return body;
            }
            assert!(Instant::now() < deadline, "{path}: {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    until(&format!("/scans/{scan}"), "status", "completed");
    let (status, body) = acme_api.send(
        reqwest::Method::POST,
        "/export-profiles",
        Some(json!({"name": "daily", "kind": "csv", "selectors": {"scans": [scan]}, "retention_days": 1})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = acme_api.send(
        reqwest::Method::POST,
        "/exports",
        Some(json!({"profile": "daily"})),
    );
    assert_eq!(status, 202, "{body}");
    let export = body["export_id"].as_str().unwrap().to_owned();
    let done = until(&format!("/exports/{export}"), "status", "completed");
    let (status, html) = console.get("/exports");
    assert_eq!(status, 200);
    assert!(html.contains(&export), "{html}");
    let (status, html) = console.get(&format!("/exports/{export}"));
    assert_eq!(status, 200, "{html}");
    let name = done["files"][0]["name"].as_str().unwrap();
    let link = format!("/exports/{export}/files/{name}");
    assert!(html.contains(&format!("/console{link}")), "{html}");
    let mut request = console.http.get(format!("{}{link}", console.base));
    request = request.header("cookie", console.cookie.as_deref().unwrap());
    let file = request.send().unwrap();
    assert_eq!(file.status(), 200);
    assert!(file.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let from_console = file.bytes().unwrap();
    let from_api = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1{link}", server.url()))
        .bearer_auth(&acme)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(from_console, from_api);
    assert!(!from_console.is_empty());
    let (status, _) = other.get(&link);
    assert_eq!(status, 404, "another tenant's export file");

    // An administrator pauses, resumes and aborts a rollout, each with a reason; a
    // tenant's session has no rollouts page (they span tenants).
    let admin_api = api(&server, server.admin(), None);
    let (status, body) = admin_api.send(
        reqwest::Method::POST,
        "/policy-packs",
        Some(json!({"name": "baseline", "document": "name = \"baseline\"\nversion = 1\n[[rules]]\nid = \"no-left-pad\"\nwhen = { packages = [\"pkg:npm/left-pad\"] }\noutcome = \"block\"\nbecause = \"left-pad is banned\"\n"})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin_api.send(
        reqwest::Method::POST,
        "/rollouts",
        Some(
            json!({"pack": "baseline", "version": 1, "waves": [{"tenants": ["acme"]}],
                    "bake_seconds": 3600, "reason": "ban left-pad"}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let rollout = body["id"].as_str().unwrap().to_owned();
    let mut admin = Console::new(&server);
    assert_eq!(admin.sign_in(server.admin()).status(), 303);
    let admin_csrf = admin.csrf();
    let (status, html) = admin.get("/rollouts");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&rollout), "{html}");
    let (status, html) = console.get("/rollouts");
    assert_eq!(status, 403, "a tenant token: {html}");
    let act = |action: &str, reason: &str| {
        admin.post(
            &format!("/rollouts/{rollout}/{action}"),
            &[("csrf", &admin_csrf), ("reason", reason)],
            None,
        )
    };
    let (status, html) = act("pause", "");
    assert_eq!(status, 400, "a reason is required: {html}");
    assert_eq!(
        admin_api.get(&format!("/rollouts/{rollout}"))["state"],
        "running"
    );
    for (action, state) in [("pause", "paused"), ("resume", "running")] {
        let (status, html) = act(action, "checking the canary");
        assert_eq!(status, 303, "{action}: {html}");
        assert_eq!(
            admin_api.get(&format!("/rollouts/{rollout}"))["state"],
            state
        );
    }
    let (status, html) = admin.get(&format!("/rollouts/{rollout}"));
    assert_eq!(status, 200);
    assert!(
        html.contains("checking the canary"),
        "the history shows the reason: {html}"
    );
    let (status, html) = act("abort", "the canary blocks too much");
    assert_eq!(status, 303, "{html}");
    let state = admin_api.get(&format!("/rollouts/{rollout}"))["state"].clone();
    assert!(state == "rolling_back" || state == "rolled_back", "{state}");

    // A notification delivery and its attempts.
    let (status, body) = acme_api.send(
        reqwest::Method::POST,
        "/notify/channels",
        Some(json!({"name": "ops-hook", "config": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = acme_api.send(
        reqwest::Method::POST,
        "/notify/channels/ops-hook/test",
        None,
    );
    assert_eq!(status, 202, "{body}");
    let delivery = body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let attempts = loop {
        let body = acme_api.get(&format!("/notify/deliveries/{delivery}"));
        let attempts = body["attempts"].as_array().cloned().unwrap_or_default();
        if !attempts.is_empty() {
            break attempts;
        }
        assert!(Instant::now() < deadline, "no attempt: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (status, html) = console.get("/notifications");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&delivery), "{html}");
    let (status, html) = console.get(&format!("/notifications/{delivery}"));
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("data-testid=\"attempts\""), "{html}");
    let outcome = attempts[0]["outcome"].as_str().unwrap();
    assert!(html.contains(outcome), "{outcome}: {html}");
    let (status, _) = other.get(&format!("/notifications/{delivery}"));
    assert_eq!(status, 404, "another tenant's delivery");
    assert!(
        !html.contains(">Redeliver<"),
        "a delivery still being tried has no redeliver button: {html}"
    );
    // With a webhook receiver listening: a delivered notification is sent again from its
    // page, and the receiver gets it a second time.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    if let Some(receiver) = crate::webhook::Receiver::start(&[secret], json!([])) {
        let (status, body) = acme_api.send(
            reqwest::Method::POST,
            "/notify/channels",
            Some(json!({"name": "ok-hook", "config": {"type": "webhook", "url": receiver.url("/hook")},
                        "secret": secret})),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) =
            acme_api.send(reqwest::Method::POST, "/notify/channels/ok-hook/test", None);
        assert_eq!(status, 202, "{body}");
        let sent = body["id"].as_str().unwrap().to_owned();
        until(&format!("/notify/deliveries/{sent}"), "status", "delivered");
        let (status, html) = console.get(&format!("/notifications/{sent}"));
        assert_eq!(status, 200);
        assert!(html.contains(">Redeliver<"), "{html}");
        let (status, html) = console.post(
            &format!("/notifications/{sent}/redeliver"),
            &[("csrf", &csrf)],
            None,
        );
        assert_eq!(status, 303, "{html}");
        assert_eq!(receiver.wait_for(2, Duration::from_secs(60)).len(), 2);
    }

    // The assets are cached for good (their URL carries their digest).
    let (_, html) = console.get("/jobs");
    let at = html.find("/console/assets/console.js?v=").unwrap();
    let src = &html[at + "/console".len()..];
    let src = &src[..src.find('"').unwrap()];
    let response = console
        .http
        .get(format!("{}{src}", console.base))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));

    // Revoking the token ends its session at the next request.
    let tokens = api(&server, server.admin(), None).get("/tokens?tenant=acme");
    let id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme-console")
        .unwrap_or_else(|| panic!("{tokens}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = api(&server, server.admin(), Some("acme")).send(
        reqwest::Method::DELETE,
        &format!("/tokens/{id}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = console.get("/jobs");
    assert_eq!(status, 303, "a revoked token's session is over");
}
