//! What a user meets when things go wrong around the API: storage that fails under a
//! running server (503 and not ready, never a 2xx for work that was not stored), private
//! file modes in the data dir, throttled failed authentication, slow bodies, bad page
//! parameters, and the audit trail of an administrator's work on a tenant.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{assert_problem, start, Reply, Server};

async fn readyz(server: &Server) -> (u16, Value) {
    let reply = server.call(Method::GET, "/readyz", None, None, None).await;
    (reply.status.as_u16(), reply.body)
}

fn assert_unavailable(reply: &Reply, context: &str) {
    assert_problem(reply, 503, context);
    assert_eq!(
        reply.body["type"], "urn:stella:problem:unavailable",
        "{context}: {}",
        reply.text
    );
}

/// `chattr +i` on the files, undone on drop (also when the test fails), so the temp dir
/// can be removed. `None` where the filesystem or the user cannot set the flag.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: &[PathBuf]) -> Option<Self> {
        let ok = Command::new("chattr")
            .arg("+i")
            .args(paths)
            .status()
            .is_ok_and(|status| status.success());
        let guard = Self(paths.to_vec());
        ok.then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

fn sqlite_files(dir: &Path) -> Vec<PathBuf> {
    ["stella.db", "stella.db-wal"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect()
}

#[actix_web::test]
async fn immutable_sqlite_files_answer_503_and_readyz_says_not_ready() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 200, "{ready}");

    // Not the -shm file: SQLite maps it, and a write fault there is a SIGBUS.
    let Some(_guard) = Immutable::set(&sqlite_files(server.data_dir())) else {
        eprintln!("skipping: chattr +i is not available here");
        return;
    };
    let reply = server
        .admin(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"id": "beta", "name": "Beta"})),
        )
        .await;
    assert_unavailable(&reply, "a write to read-only files");
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready", "{ready}");
    assert_eq!(ready["checks"]["store"]["ready"], false, "{ready}");
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn a_deleted_data_dir_answers_503_for_writes_and_object_reads() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (_, acme) = server
        .token(
            "acme",
            &["scans:read", "scans:write", "jobs:read", "jobs:write"],
        )
        .await;
    let scan = crate::scans::scan_of(&server, &acme, crate::scans::tiny_sbom(), &[]).await;
    crate::scans::wait_scan(&server, &acme, &scan, "completed").await;
    let attestation = format!("/api/v1/scans/{scan}/attestation");

    // The object folder goes first: the scan's record is there, its evidence is not.
    std::fs::remove_dir_all(server.data_dir().join("objects")).unwrap();
    let reply = server
        .call(Method::GET, &attestation, Some(&acme), None, None)
        .await;
    assert_unavailable(&reply, "an object read without the object folder");
    assert!(
        !server.data_dir().join("objects").exists(),
        "a write must not re-create the object folder"
    );

    // Then the database: open connections would keep writing to the deleted file.
    for name in ["stella.db", "stella.db-wal", "stella.db-shm"] {
        let _ = std::fs::remove_file(server.data_dir().join(name));
    }
    let reply = server
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&acme),
            None,
            Some(json!({"kind": "noop", "params": {}})),
        )
        .await;
    assert_unavailable(
        &reply,
        "a job submitted after the database file was deleted",
    );
    assert!(
        !server.data_dir().join("stella.db").exists(),
        "no new empty database in its place"
    );
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["store"]["ready"], false, "{ready}");
    assert_eq!(ready["checks"]["objects"]["ready"], false, "{ready}");
    assert!(
        ready["checks"]["store"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("removed"),
        "{ready}"
    );
    server.handle.stop(true).await;
}

/// Every documented list without path parameters (the routes taking `limit`).
async fn list_routes(server: &Server) -> Vec<String> {
    let doc = server
        .call(Method::GET, "/api/v1/openapi.json", None, None, None)
        .await
        .body;
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(get) = item.get("get") else { continue };
        let params = get["parameters"].as_array().cloned().unwrap_or_default();
        let takes_limit = params.iter().any(|p| p["name"] == "limit");
        let in_path = params.iter().any(|p| p["in"] == "path");
        if takes_limit && !in_path {
            routes.push(path.clone());
        }
    }
    routes
}

#[actix_web::test]
async fn limit_zero_and_garbage_cursors_are_400_on_every_list() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let routes = list_routes(&server).await;
    assert!(routes.len() >= 10, "{routes:?}");
    for route in &routes {
        let call = |query: String| {
            let server = &server;
            let route = route.clone();
            async move {
                server
                    .call(
                        Method::GET,
                        &format!("{route}?{query}"),
                        Some(crate::api::ADMIN),
                        Some("acme"),
                        None,
                    )
                    .await
            }
        };
        let reply = call("limit=1".into()).await;
        assert_eq!(reply.status, 200, "{route}: {}", reply.text);
        let reply = call("limit=0".into()).await;
        assert_problem(&reply, 400, &format!("{route} limit=0"));
        // A control character is never a position in any list; `!garbage!` is not one
        // in any list but targets', whose cursor is a (free-text) target name.
        let mut garbage = vec!["%01"];
        if route != "/api/v1/targets" {
            garbage.push("%21garbage%21");
        }
        for cursor in garbage {
            let reply = call(format!("cursor={cursor}")).await;
            assert_problem(&reply, 400, &format!("{route} cursor={cursor}"));
        }
    }
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn a_created_token_names_its_id_once_and_admin_work_on_a_tenant_is_in_its_audit() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let reply = server
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"tenant": "acme", "name": "ci", "scopes": ["jobs:read"]})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.text.matches("\"id\"").count(), 1, "{}", reply.text);
    let token_id = reply.body["id"].as_str().unwrap().to_owned();
    let reply = server
        .admin(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = server
        .admin(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(json!({"name": "Acme Corp"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.create_tenant("globex").await;

    let reply = server
        .admin(Method::GET, "/api/v1/audit?tenant=acme", None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let actions: Vec<&str> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "create_tenant",
            "create_token",
            "revoke_token",
            "update_tenant"
        ],
        "{}",
        reply.text
    );
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn failed_authentications_are_throttled_per_address() {
    let server = start(|s| {
        s.api.auth_failures_per_minute = 1;
        s.api.auth_failure_burst = 3;
    })
    .await;
    let guess = |secret: &'static str| {
        let server = &server;
        async move {
            server
                .call(Method::GET, "/api/v1/tenants", Some(secret), None, None)
                .await
        }
    };
    for _ in 0..3 {
        assert_problem(&guess("stella_wrong").await, 401, "a wrong token");
    }
    let reply = guess("stella_wrong").await;
    assert_problem(&reply, 429, "a guess over the limit");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The address is refused before its token is looked at: a right guess now tells
    // nothing either.
    let reply = guess(crate::api::ADMIN).await;
    assert_problem(&reply, 429, "even the right token from that address");
    // Public routes and health checks need no token and stay open.
    let reply = server
        .call(Method::GET, "/api/v1/keys", None, None, None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(|s| s.api.body_read_timeout_secs = 1).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/tenants HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"id\": ",
        server.addr,
        crate::api::ADMIN
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the head of the answer is in (the body is a small problem).
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.handle.stop(true).await;
}
