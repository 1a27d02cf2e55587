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
            eprintln!("skipping: {var} is not set (run ops/test.sh, or eval \"$(ops/services.sh up)\")");
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
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
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
    let all = "scans:read,scans:write,jobs:read,jobs:write,schedules:read,schedules:write,exports:read";
    let acme = token(&server, "acme", "console-acme", all);
    let globex = token(&server, "globex", "console-globex", all);
    let reader = token(&server, "acme", "console-reader", "scans:read");

    // A schedule of acme's, and a dead letter: a job whose every attempt panics.
    let acme_api = api(&server, &acme, None);
    let (status, body) = acme_api.send(
        reqwest::Method::POST,
        "/schedules",
        Some(json!({"name": "nightly", "cron": "0 2 * * *", "kind": "rescan", "jitter_seconds": 0})),
    );
    assert_eq!(status, 201, "{body}");
    let admin_acme = api(&server, server.admin(), Some("acme"));
    let (status, body) = admin_acme.send(
        reqwest::Method::POST,
        "/jobs",
        Some(json!({"kind": "noop", "params": {"panic_always": true}, "max_attempts": 1})),
    );
    assert_eq!(status, 201, "{body}");
    let dead_job = body["id"].as_str().unwrap().to_owned();
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
        .unwrap();
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
    assert_eq!(schedule["enabled"], false, "paused from the console: {schedule}");
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
    // The replayed job ran again (and, panicking, failed again).
    let job = acme_api.get(&format!("/jobs/{dead_job}"));
    assert!(job["events"].as_array().unwrap().len() >= 2, "{job}");

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
