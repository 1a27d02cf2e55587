//! The server as a hostile tenant tries it (issue 16): internal job kinds through
//! `/jobs`, writes to the advisories every tenant shares, `Idempotency-Key` reused for
//! another request, diagnostic jobs that sleep forever. Everything runs on 127.0.0.1.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::{assert_problem, start, Reply, Server, ADMIN, TENANT_SCOPES};
use crate::scans::tiny_sbom;

async fn submit(server: &Server, token: &str, tenant: Option<&str>, body: Value) -> Reply {
    server
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(token),
            tenant,
            Some(body),
        )
        .await
}

#[actix_web::test]
async fn tenants_cannot_submit_internal_or_diagnostic_job_kinds() {
    // The default settings: `noop` is for administrators only.
    let server = start(|s| s.api.tenant_noop_jobs = false).await;
    server.create_tenant("acme").await;
    let (_, token) = server.token("acme", &["jobs:read", "jobs:write"]).await;

    // The SSRF of the report: an advisory sync pointed at a loopback port.
    let sync =
        json!({"kind": "advisory-sync", "params": {"sources": ["http://127.0.0.1:5432/x.json"]}});
    let reply = submit(&server, &token, None, sync).await;
    assert_problem(&reply, 403, "advisory-sync from a tenant");
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("administrator"),
        "{}",
        reply.text
    );
    let reply = submit(&server, &token, None, json!({"kind": "scan", "params": {}})).await;
    assert_problem(&reply, 403, "scan through /jobs");
    assert!(reply.text.contains("/api/v1/scans"), "{}", reply.text);
    let reply = submit(&server, &token, None, json!({"kind": "noop"})).await;
    assert_problem(&reply, 403, "noop from a tenant");
    let listed = server
        .call(Method::GET, "/api/v1/jobs", Some(&token), None, None)
        .await;
    assert_eq!(listed.body["items"], json!([]), "nothing was accepted");

    // An administrator may run diagnostics on a tenant, within bounds.
    let reply = submit(
        &server,
        ADMIN,
        Some("acme"),
        json!({"kind": "noop", "params": {"sleep_ms": u64::MAX}}),
    )
    .await;
    assert_problem(&reply, 400, "an endless sleep");
    assert_eq!(reply.body["location"], "params.sleep_ms", "{}", reply.text);
    let reply = submit(&server, ADMIN, Some("acme"), json!({"kind": "noop"})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // Even an administrator's sync is checked before it is accepted.
    let sync = json!({"kind": "advisory-sync", "params": {"sources": ["http://169.254.169.254/latest/meta-data/"]}});
    let reply = submit(&server, ADMIN, Some("acme"), sync).await;
    assert_problem(&reply, 400, "a sync of the metadata address");
    assert_eq!(
        reply.body["location"], "params.sources[0]",
        "{}",
        reply.text
    );
}

#[actix_web::test]
async fn an_advisory_sync_to_a_loopback_port_fails_without_connecting() {
    // An administrator's sync of a loopback URL is accepted when it names a host (the
    // name resolves only when fetched), and then refused by the guard with no port in
    // the error: the fetch cannot probe the server's own ports.
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sync = json!({"kind": "advisory-sync", "max_attempts": 1,
        "params": {"sources": [format!("http://localhost:{port}/x.json")]}});
    let reply = submit(&server, ADMIN, Some("acme"), sync).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap();
    let job = wait_state(&server, id, &["failed"]).await;
    let error = job["last_error"].as_str().unwrap();
    assert!(error.contains("does not fetch from"), "{error}");
    assert!(!error.contains(&port.to_string()), "{error}");
    assert!(
        listener.accept().is_err(),
        "the guard connected to the loopback listener"
    );
}

async fn wait_state(server: &Server, id: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = server
            .call(
                Method::GET,
                &format!("/api/v1/jobs/{id}"),
                Some(ADMIN),
                Some("acme"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if states.iter().any(|s| reply.body["state"] == *s) {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "job never {states:?}: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_tenant_token_never_writes_the_shared_advisories() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (token_id, token) = server.token("acme", TENANT_SCOPES).await;
    // A token row written before the rule still carries the scope: it is refused anyway.
    let db = format!("sqlite://{}", server.data_dir().join("stella.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE api_tokens SET scopes = $1 WHERE id = $2")
        .bind(json!(["advisories:write", "scans:read"]).to_string())
        .bind(&token_id)
        .execute(&mut conn)
        .await
        .unwrap();
    let record = r#"{"id": "GO-2020-0017", "modified": "2030-01-01T00:00:00Z", "affected": []}"#;
    let reply = Reply::of(
        server
            .http
            .post(format!(
                "http://{}/api/v1/advisories/imports?source=osv:Go-all",
                server.addr
            ))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(record)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_problem(&reply, 403, "an advisory import with a tenant token");
    assert!(reply.text.contains("every tenant"), "{}", reply.text);
}

async fn scan_with_key(server: &Server, token: &str, key: &str, sbom: Vec<u8>) -> Reply {
    Reply::of(
        server
            .http
            .post(format!("http://{}/api/v1/scans", server.addr))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("Idempotency-Key", key)
            .body(sbom)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[actix_web::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (_, token) = server.token("acme", TENANT_SCOPES).await;

    let first = scan_with_key(&server, &token, "ci-run-42", tiny_sbom()).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let retry = scan_with_key(&server, &token, "ci-run-42", tiny_sbom()).await;
    assert_eq!(retry.status, 202, "{}", retry.text);
    assert_eq!(
        retry.body["job_id"], first.body["job_id"],
        "a retry is the same scan"
    );
    let mut other = serde_json::from_slice::<Value>(&tiny_sbom()).unwrap();
    other["components"][0]["version"] = json!("1.3.1");
    other["components"][0]["purl"] = json!("pkg:npm/left-pad@1.3.1");
    let reused = scan_with_key(&server, &token, "ci-run-42", other.to_string().into_bytes()).await;
    assert_problem(&reused, 422, "a key reused for another SBOM");
    assert!(reused.text.contains("ci-run-42"), "{}", reused.text);
    assert_eq!(reused.body["location"], "Idempotency-Key");
    let scans = server
        .call(Method::GET, "/api/v1/scans", Some(&token), None, None)
        .await;
    assert_eq!(
        scans.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        scans.text
    );

    // `/jobs` honours the header too, and refuses the same key with other parameters.
    let job = |params: Value| {
        let request = server
            .http
            .post(format!("http://{}/api/v1/jobs", server.addr))
            .bearer_auth(&token)
            .header("Idempotency-Key", "nightly-7")
            .json(&json!({"kind": "noop", "params": params}));
        async move { Reply::of(request.send().await.unwrap()).await }
    };
    let created = job(json!({})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let again = job(json!({})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["id"], created.body["id"]);
    let changed = job(json!({"fail_first": 1})).await;
    assert_problem(&changed, 422, "a job key reused with other parameters");
}

#[actix_web::test]
async fn cancelling_a_running_job_stops_its_step() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (_, token) = server.token("acme", TENANT_SCOPES).await;
    let id = server
        .submit(&token, json!({"sleep_ms": 3_600_000}), 1)
        .await;
    wait_state(&server, &id, &["running"]).await;
    let tree = server
        .admin(Method::GET, "/api/v1/system/actors", None)
        .await;
    assert_eq!(in_flight(&tree.body), 1, "the sleep runs: {}", tree.text);
    let cancel = server
        .call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&token),
            None,
            None,
        )
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    assert_eq!(cancel.body["state"], "cancelled");
    // The step was running an hour-long sleep: the supervision tree lets it go at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tree = server
            .admin(Method::GET, "/api/v1/system/actors", None)
            .await;
        assert_eq!(tree.status, 200, "{}", tree.text);
        if in_flight(&tree.body) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled step is still in flight: {}",
            tree.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        wait_state(&server, &id, &["cancelled"]).await["state"],
        "cancelled"
    );
}

/// Deliveries in flight anywhere in a snapshot tree.
fn in_flight(node: &Value) -> u64 {
    let own = if node["kind"] == "tenant" {
        node["in_flight"].as_u64().unwrap_or(0)
    } else {
        0
    };
    own + node["children"]
        .as_array()
        .map(|children| children.iter().map(in_flight).sum())
        .unwrap_or(0)
}
