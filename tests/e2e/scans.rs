//! The scan pipeline as a tenant meets it over HTTP: submit an SBOM, get a verdict whose
//! findings are the advisories' (checked against an independent oracle), a signed
//! attestation anyone can verify, VEX and policy that change the verdict for their tenant
//! only, events, precise errors for bad input, and byte-identical evidence on SQLite and
//! on PostgreSQL for equal inputs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use stella_config::{Secret, Settings};
use stella_domain::dsse::{self, Envelope, PublicKey};

use crate::api::{assert_problem, start, Reply, Server, ADMIN, TENANT_SCOPES};

const EVALUATED_AT: &str = "2026-01-01T00:00:00Z";

fn data(path: &str) -> Option<PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(path);
    if path.exists() {
        Some(path)
    } else {
        println!("skipping: {} not found", path.display());
        None
    }
}

/// A one-component CycloneDX SBOM.
pub(crate) fn tiny_sbom() -> Vec<u8> {
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [
            {"type": "library", "name": "left-pad", "version": "1.3.0",
             "purl": "pkg:npm/left-pad@1.3.0", "bom-ref": "left-pad"}
        ]
    })
    .to_string()
    .into_bytes()
}

pub(crate) async fn post_bytes(
    server: &Server,
    token: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let request = server
        .http
        .post(format!("http://{}/api/v1{path}", server.addr))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body);
    Reply::of(request.send().await.unwrap()).await
}

/// Submits a scan of `sbom` and returns its id.
pub(crate) async fn scan_of(
    server: &Server,
    token: &str,
    sbom: Vec<u8>,
    query: &[(&str, &str)],
) -> String {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let path = format!("/scans?{}", query.join("&"));
    let reply = post_bytes(server, token, &path, "application/json", sbom).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["status"], "queued", "{}", reply.text);
    let id = reply.body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        format!("/api/v1/scans/{id}")
    );
    id
}

pub(crate) async fn wait_scan(server: &Server, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reply = server
            .call(
                Method::GET,
                &format!("/api/v1/scans/{id}"),
                Some(token),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if reply.body["status"] == status {
            return reply.body;
        }
        assert!(
            !["failed", "cancelled"].contains(&reply.body["status"].as_str().unwrap_or("")),
            "scan ended {}",
            reply.text
        );
        assert!(
            Instant::now() < deadline,
            "scan never {status}: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn findings(server: &Server, token: &str, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/scans/{id}/findings?limit=20");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let reply = server
            .call(Method::GET, &path, Some(token), None, None)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        out.extend(reply.body["items"].as_array().unwrap().iter().cloned());
        match reply.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

pub(crate) async fn attestation(server: &Server, token: &str, id: &str) -> Vec<u8> {
    let response = server
        .http
        .get(format!(
            "http://{}/api/v1/scans/{id}/attestation",
            server.addr
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

async fn public_keys(server: &Server) -> Vec<PublicKey> {
    let reply = server
        .call(Method::GET, "/api/v1/keys", None, None, None)
        .await;
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| PublicKey::from_pem(k["public_key_pem"].as_str().unwrap()).unwrap())
        .collect()
}

/// Verifies an envelope with the server's published keys; returns the statement.
pub(crate) async fn verified_statement(server: &Server, envelope: &[u8]) -> Value {
    let envelope = Envelope::from_json(envelope).unwrap();
    let payload = dsse::verify(&envelope, &public_keys(server).await)
        .unwrap()
        .into_payload_of_type("application/vnd.in-toto+json")
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

async fn import_go(server: &Server, zip: Vec<u8>) {
    let reply = post_bytes(
        server,
        ADMIN,
        "/advisories/imports?source=osv:Go",
        "application/zip",
        zip,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// The ids and modules the independent oracle found in proton-bridge 1.6.3.
fn oracle() -> BTreeSet<(String, String)> {
    include_str!("../../actors/domain/tests/data/proton-bridge-1.6.3-go-findings.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect()
}

fn finding_of<'a>(findings: &'a [Value], id: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["vulnerability_id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}"))
}

const ECHO: &str = "pkg:golang/github.com/labstack/echo/v4";

async fn pipeline(server: &Server) {
    let (Some(go), Some(sbom)) = (
        data("advisories/Go-all.zip"),
        data("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"),
    ) else {
        return;
    };
    let sbom = std::fs::read(sbom).unwrap();
    server.create_tenant("acme").await;
    server.create_tenant("other").await;
    let (_, acme) = server.token("acme", TENANT_SCOPES).await;
    let (_, other) = server.token("other", TENANT_SCOPES).await;
    import_go(server, std::fs::read(go).unwrap()).await;

    // Submit → analyzed, evaluated, sealed.
    let id = scan_of(
        server,
        &acme,
        sbom.clone(),
        &[("evaluated_at", EVALUATED_AT)],
    )
    .await;
    let scan = wait_scan(server, &acme, &id, "completed").await;
    assert_eq!(scan["disposition"], "warn", "{scan}");
    assert_eq!(scan["counts"]["findings"], 58, "{scan}");
    assert_eq!(
        scan["counts"]["warn"], 58,
        "Go advisories carry no CVSS: {scan}"
    );
    assert_eq!(scan["evaluated_at"], EVALUATED_AT);
    assert!(
        scan["sbom_summary"]["declared"].as_u64().unwrap() > 0,
        "{scan}"
    );
    let inputs_hash = scan["inputs_hash"].as_str().unwrap().to_owned();
    assert!(inputs_hash.starts_with("sha256:"), "{scan}");
    assert!(!scan["inputs"]["advisories"].as_array().unwrap().is_empty());

    // Every finding, paged, equals the independent oracle's; each carries its trace.
    let all = findings(server, &acme, &id).await;
    assert_eq!(all.len(), 58);
    let found: BTreeSet<(String, String)> = all
        .iter()
        .map(|f| {
            let purl = f["purl"].as_str().unwrap();
            let module = purl
                .strip_prefix("pkg:golang/")
                .unwrap()
                .split('@')
                .next()
                .unwrap();
            (
                f["vulnerability_id"].as_str().unwrap().to_owned(),
                module.to_owned(),
            )
        })
        .collect();
    assert_eq!(found, oracle());
    for finding in &all {
        assert!(finding["aliases"].is_array(), "{finding}");
        assert!(
            !finding["trace"].as_array().unwrap().is_empty(),
            "{finding}"
        );
        assert_eq!(finding["disposition"], "warn");
    }
    let echo = finding_of(&all, "GO-2022-1031");
    assert_eq!(echo["purl"], format!("{ECHO}@v4.1.11"));

    // The attestation verifies with the published key and says what the API says.
    let envelope = attestation(server, &acme, &id).await;
    let statement = verified_statement(server, &envelope).await;
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        scan["sbom_sha256"]
    );
    assert_eq!(statement["predicate"]["inputs_hash"], inputs_hash.as_str());
    assert_eq!(statement["predicate"]["verdict"]["counts"]["findings"], 58);
    // A real SBOM's findings are all in its attestation, with their traces.
    assert_eq!(statement["predicate"]["verdict"]["findings_omitted"], 0);
    assert_eq!(
        statement["predicate"]["verdict"]["findings"]
            .as_array()
            .unwrap()
            .len(),
        58
    );
    assert_eq!(
        stella_store::object::Sha256Digest::of(&envelope).to_string(),
        scan["attestation_sha256"].as_str().unwrap()
    );

    // Replaying the stored SBOM with the same inputs gives the same evidence, byte for byte.
    let sha = scan["sbom_sha256"].as_str().unwrap().to_owned();
    let again = scan_of(
        server,
        &acme,
        Vec::new(),
        &[("sbom", &sha), ("evaluated_at", EVALUATED_AT)],
    )
    .await;
    let replay = wait_scan(server, &acme, &again, "completed").await;
    assert_eq!(replay["inputs_hash"], inputs_hash.as_str());
    assert_eq!(attestation(server, &acme, &again).await, envelope);
    // Another tenant cannot name acme's SBOM.
    let reply = post_bytes(
        server,
        &other,
        &format!("/scans?sbom={sha}"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_problem(&reply, 404, "another tenant's sbom");

    // The tenant's scans are listed, the other tenant's list is empty.
    let reply = server
        .call(
            Method::GET,
            "/api/v1/scans?limit=1",
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_eq!(reply.body["items"][0]["id"], id.as_str(), "{}", reply.text);
    assert_eq!(reply.body["items"][0]["disposition"], "warn");
    assert!(reply.body["next_cursor"].is_string());
    let reply = server
        .call(Method::GET, "/api/v1/scans", Some(&other), None, None)
        .await;
    assert_eq!(reply.body["items"], json!([]));

    // The events stream has the completion and the advisory delta.
    let reply = server
        .call(
            Method::GET,
            "/api/v1/events?limit=500",
            Some(&acme),
            None,
            None,
        )
        .await;
    let events = reply.body["items"].as_array().unwrap();
    assert!(events
        .iter()
        .any(|e| e["kind"] == "scan.completed" && e["payload"]["scan_id"] == id.as_str()));
    let delta = events
        .iter()
        .find(|e| e["kind"] == "advisory.delta")
        .expect("an advisory.delta event");
    assert!(delta["payload"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "Go/github.com/labstack/echo/v4"));
    let completions = events
        .iter()
        .filter(|e| e["kind"] == "scan.completed")
        .count();
    assert_eq!(completions, 2, "one per scan, none twice");

    // VEX for acme: echo is not affected. It rules the finding out for acme only.
    let vex = json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/acme-1",
        "author": "acme security",
        "timestamp": "2025-06-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "GO-2022-1031"},
            "products": [{"@id": ECHO}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path"
        }]
    })
    .to_string()
    .into_bytes();
    let reply = post_bytes(server, &acme, "/vex", "application/json", vex.clone()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["statements"], 1);
    assert_eq!(reply.body["scope"], "acme");
    let reply = post_bytes(server, &acme, "/vex", "application/json", vex).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["created"], false);

    let with_vex = scan_of(
        server,
        &acme,
        Vec::new(),
        &[("sbom", &sha), ("evaluated_at", EVALUATED_AT)],
    )
    .await;
    let scan = wait_scan(server, &acme, &with_vex, "completed").await;
    assert_ne!(scan["inputs_hash"], inputs_hash.as_str());
    assert_eq!(scan["inputs"]["vex"].as_array().unwrap().len(), 1);
    assert_eq!(scan["counts"]["findings"], 58, "VEX never hides a finding");
    assert_eq!(scan["counts"]["pass"], 1);
    let echo = finding_of(&findings(server, &acme, &with_vex).await, "GO-2022-1031").clone();
    assert_eq!(echo["disposition"], "pass", "{echo}");
    assert_eq!(echo["assessment"]["values"]["applies"], "false", "{echo}");
    assert!(echo.to_string().contains("not-applicable"), "{echo}");

    let theirs = scan_of(server, &other, sbom, &[("evaluated_at", EVALUATED_AT)]).await;
    wait_scan(server, &other, &theirs, "completed").await;
    let echo = finding_of(&findings(server, &other, &theirs).await, "GO-2022-1031").clone();
    assert_eq!(
        echo["disposition"], "warn",
        "acme's VEX is not other's: {echo}"
    );

    // A policy of acme's own blocks gin; putting it again creates no version.
    let policy = r#"
name = "acme"
version = 2
default = "warn"

[[rules]]
id = "no-gin"
when = { packages = ["pkg:golang/github.com/gin-gonic/gin"] }
outcome = "block"
because = "gin is banned here"
"#;
    let active = server.activate_policy("acme", policy).await;
    assert_eq!(active["version"], 1);
    let digest = active["digest"].clone();
    // The same document again is the version already in play, not a new one.
    let reply = server
        .call(
            Method::POST,
            "/api/v1/policy/versions",
            Some(&acme),
            None,
            Some(json!({ "document": policy })),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["version"], 1);
    let reply = server
        .call(Method::GET, "/api/v1/policy", Some(&other), None, None)
        .await;
    assert_eq!(reply.body["default"], true, "{}", reply.text);
    let blocked = scan_of(
        server,
        &acme,
        Vec::new(),
        &[("sbom", &sha), ("evaluated_at", EVALUATED_AT)],
    )
    .await;
    let scan = wait_scan(server, &acme, &blocked, "completed").await;
    assert_eq!(scan["disposition"], "block", "{scan}");
    assert_eq!(scan["policy_digest"], digest);
    let gin = finding_of(&findings(server, &acme, &blocked).await, "GO-2023-1737").clone();
    assert_eq!(gin["disposition"], "block");
    assert!(gin.to_string().contains("no-gin"), "{gin}");
}

#[actix_web::test]
async fn a_scan_is_analyzed_evaluated_and_sealed_embedded() {
    let server = start(|_| {}).await;
    pipeline(&server).await;
    server.handle.stop(true).await;
}

/// Settings for PostgreSQL + Valkey + S3, each under a fresh name.
fn on_services(s: &mut Settings, db_url: &str) {
    let valkey = std::env::var("STELLA_VALKEY_URL").expect("STELLA_VALKEY_URL with the services");
    let s3 = crate::common::s3_target().expect("S3 with the services");
    s.database.url = Some(Secret::new(db_url));
    s.database.max_connections = 6;
    s.valkey.url = Some(Secret::new(valkey));
    s.valkey.key_prefix = format!("scan-{}", uuid::Uuid::new_v4().simple());
    s.s3.endpoint = Some(s3.endpoint);
    s.s3.bucket = s3.bucket;
    s.s3.region = s3.region;
    s.s3.access_key_id = Some(s3.access_key_id);
    s.s3.secret_access_key = Some(s3.secret_access_key);
    s.s3.prefix = s3.prefix;
}

#[actix_web::test]
async fn a_scan_is_analyzed_evaluated_and_sealed_on_services() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let server = start(|s| on_services(s, &url)).await;
    pipeline(&server).await;
    server.handle.stop(true).await;
    db.finish().await;
}

#[actix_web::test]
async fn every_shared_sbom_scans_and_its_evidence_verifies() {
    let (Some(go), Some(pypi), Some(sboms)) = (
        data("advisories/Go-all.zip"),
        data("advisories/PyPI-all.zip"),
        data("sboms"),
    ) else {
        return;
    };
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (_, acme) = server.token("acme", &["scans:read", "scans:write"]).await;
    import_go(&server, std::fs::read(go).unwrap()).await;
    let reply = post_bytes(
        &server,
        ADMIN,
        "/advisories/imports?source=osv:PyPI",
        "application/zip",
        std::fs::read(pypi).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut files = Vec::new();
    for folder in ["cyclonedx", "spdx"] {
        for entry in std::fs::read_dir(sboms.join(folder)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    assert!(files.len() >= 11, "{files:?}");
    let mut ids = Vec::new();
    for file in &files {
        ids.push(scan_of(&server, &acme, std::fs::read(file).unwrap(), &[]).await);
    }
    for (file, id) in files.iter().zip(&ids) {
        let scan = wait_scan(&server, &acme, id, "completed").await;
        let summary = &scan["sbom_summary"];
        let counted = [
            "matched_ecosystem",
            "no_purl",
            "invalid_purl",
            "unsupported_ecosystem",
        ]
        .iter()
        .map(|k| summary[*k].as_u64().unwrap())
        .sum::<u64>();
        assert_eq!(
            counted,
            summary["distinct"].as_u64().unwrap(),
            "{}: every component is counted somewhere: {scan}",
            file.display()
        );
        let statement = verified_statement(&server, &attestation(&server, &acme, id).await).await;
        assert_eq!(
            statement["predicate"]["verdict"]["counts"],
            scan["counts"],
            "{}",
            file.display()
        );
    }
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn bad_sboms_vex_and_policies_get_precise_problems_and_store_nothing() {
    let server = start(|s| s.api.max_body_bytes = 64 * 1024).await;
    server.create_tenant("acme").await;
    let (_, acme) = server.token("acme", TENANT_SCOPES).await;

    let reply = post_bytes(
        &server,
        &acme,
        "/scans",
        "application/json",
        b"{\"bomFormat\": ".to_vec(),
    )
    .await;
    assert_problem(&reply, 400, "truncated JSON");
    let bad = json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "components": [
            {"type": "library", "name": "ok", "version": "1", "purl": "pkg:npm/ok@1"},
            {"type": "library", "version": "2"}
        ]
    })
    .to_string()
    .into_bytes();
    let reply = post_bytes(&server, &acme, "/scans", "application/json", bad.clone()).await;
    assert_problem(&reply, 400, "component without a name");
    assert_eq!(reply.body["type"], "urn:stella:problem:invalid-sbom");
    assert_eq!(
        reply.body["location"], "/components/1/name",
        "{}",
        reply.text
    );
    // Nothing of it was stored: it cannot be named.
    let sha = stella_store::object::Sha256Digest::of(&bad).to_string();
    let reply = post_bytes(
        &server,
        &acme,
        &format!("/scans?sbom={sha}"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_problem(&reply, 404, "the refused sbom was not stored");
    let reply = server
        .call(Method::GET, "/api/v1/jobs", Some(&acme), None, None)
        .await;
    assert_eq!(reply.body["items"], json!([]), "no job for a refused scan");

    let reply = post_bytes(
        &server,
        &acme,
        "/scans",
        "application/json",
        vec![b' '; 70 * 1024],
    )
    .await;
    assert_problem(&reply, 413, "over the limit");
    let reply = post_bytes(&server, &acme, "/scans", "text/plain", tiny_sbom()).await;
    assert_problem(&reply, 415, "not JSON");
    let reply = post_bytes(&server, &acme, "/scans", "application/json", Vec::new()).await;
    assert_problem(&reply, 400, "empty body");
    let reply = post_bytes(
        &server,
        &acme,
        "/scans?evaluated_at=yesterday",
        "application/json",
        tiny_sbom(),
    )
    .await;
    assert_problem(&reply, 400, "bad evaluation time");
    let reply = post_bytes(
        &server,
        &acme,
        "/scans?sbom=xyz",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_problem(&reply, 400, "bad reference");
    let reply = server
        .call(
            Method::GET,
            "/api/v1/scans/job_nope",
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_problem(&reply, 404, "unknown scan");
    // A job of another kind is not a scan.
    let noop = server.submit(&acme, json!({}), 1).await;
    let reply = server
        .call(
            Method::GET,
            &format!("/api/v1/scans/{noop}"),
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_problem(&reply, 404, "a noop job is not a scan");

    let vex = json!({"@context": "https://openvex.dev/ns/v0.2.0", "statements": [
        {"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:npm/a"}], "status": "maybe"}
    ]})
    .to_string()
    .into_bytes();
    let reply = post_bytes(&server, &acme, "/vex", "application/json", vex).await;
    assert_problem(&reply, 400, "bad VEX status");
    assert_eq!(
        reply.body["location"], "/statements/0/status",
        "{}",
        reply.text
    );

    let reply = server
        .call(
            Method::POST,
            "/api/v1/policy/versions",
            Some(&acme),
            None,
            Some(json!({"document": "default = \"maybe\""})),
        )
        .await;
    assert_problem(&reply, 400, "bad policy");
    let reply = server
        .call(
            Method::GET,
            "/api/v1/policy/versions",
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_eq!(
        reply.body["items"],
        json!([]),
        "a refused policy is no version"
    );
    server.handle.stop(true).await;
}

/// Equal inputs on SQLite + folder + embedded mailbox and on PostgreSQL + S3 + Valkey
/// give byte-identical attestations (same signing key).
#[actix_web::test]
async fn equal_inputs_give_identical_evidence_on_sqlite_and_postgres() {
    let (Some(go), Some(sbom)) = (
        data("advisories/Go-all.zip"),
        data("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"),
    ) else {
        return;
    };
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("signing-key.pem");
    std::fs::write(
        &key_file,
        stella_domain::dsse::SigningKey::generate([7; 32])
            .to_file_string()
            .as_bytes(),
    )
    .unwrap();
    let url = db.url.clone();
    let embedded = start(|s| s.signing_key_file = Some(key_file.clone())).await;
    let services = start(|s| {
        on_services(s, &url);
        s.signing_key_file = Some(key_file.clone());
    })
    .await;
    let zip = std::fs::read(go).unwrap();
    let sbom = std::fs::read(sbom).unwrap();
    let vex =
        std::fs::read(data("vex/cyclonedx-cisa/Case-1_vex-not_affected.json").unwrap()).unwrap();
    let mut evidence = Vec::new();
    for server in [&embedded, &services] {
        server.create_tenant("acme").await;
        let (_, token) = server.token("acme", TENANT_SCOPES).await;
        import_go(server, zip.clone()).await;
        let reply = post_bytes(server, &token, "/vex", "application/json", vex.clone()).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let id = scan_of(
            server,
            &token,
            sbom.clone(),
            &[("evaluated_at", EVALUATED_AT)],
        )
        .await;
        let scan = wait_scan(server, &token, &id, "completed").await;
        evidence.push((
            scan["inputs_hash"].clone(),
            attestation(server, &token, &id).await,
        ));
    }
    assert_eq!(evidence[0].0, evidence[1].0);
    assert!(
        evidence[0].1 == evidence[1].1,
        "the envelopes differ:\n{}\n{}",
        String::from_utf8_lossy(&evidence[0].1),
        String::from_utf8_lossy(&evidence[1].1)
    );
    embedded.handle.stop(true).await;
    services.handle.stop(true).await;
    db.finish().await;
}

#[actix_web::test]
async fn an_sbom_over_the_component_limit_gets_a_precise_problem_and_stores_nothing() {
    let server = start(|s| s.api.max_sbom_components = 3).await;
    server.create_tenant("acme").await;
    let (_, acme) = server.token("acme", TENANT_SCOPES).await;
    let sbom = |n: usize| {
        let components: Vec<Value> = (0..n)
            .map(|i| {
                json!({"type": "library", "name": format!("p{i}"), "version": "1.0.0",
                "purl": format!("pkg:npm/p{i}@1.0.0")})
            })
            .collect();
        json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components})
            .to_string()
            .into_bytes()
    };
    for path in ["/scans", "/sboms"] {
        let reply = post_bytes(&server, &acme, path, "application/json", sbom(4)).await;
        assert_problem(&reply, 413, "over the component limit");
        assert_eq!(reply.body["type"], "urn:stella:problem:sbom-too-large");
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("4 components")
                && detail.contains("limit of 3")
                && detail.contains("api.max_sbom_components"),
            "{detail}"
        );
    }
    let sha = stella_store::object::Sha256Digest::of(&sbom(4)).to_string();
    let reply = post_bytes(
        &server,
        &acme,
        &format!("/scans?sbom={sha}"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_problem(&reply, 404, "the refused sbom was not stored");
    let reply = server
        .call(Method::GET, "/api/v1/jobs", Some(&acme), None, None)
        .await;
    assert_eq!(reply.body["items"], json!([]), "no job for a refused scan");
    // At the limit it is a scan like any other.
    let id = scan_of(&server, &acme, sbom(3), &[]).await;
    let scan = wait_scan(&server, &acme, &id, "completed").await;
    assert_eq!(scan["sbom_summary"]["declared"], 3);
    server.handle.stop(true).await;
}

/// Go modules that many advisories name from version 0 on.
const MANY_ADVISORIES: [&str; 9] = [
    "github.com/mattermost/mattermost-server",
    "github.com/mattermost/mattermost/server/v8",
    "github.com/mattermost/mattermost-server/v5",
    "github.com/mattermost/mattermost-server/v6",
    "gogs.io/gogs",
    "code.gitea.io/gitea",
    "github.com/usememos/memos",
    "github.com/traefik/traefik",
    "github.com/siyuan-note/siyuan/kernel",
];

#[actix_web::test]
async fn a_large_verdict_s_attestation_stays_under_its_cap_verifies_and_pins_every_finding() {
    let Some(go) = data("advisories/Go-all.zip") else {
        return;
    };
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (_, acme) = server.token("acme", TENANT_SCOPES).await;
    import_go(&server, std::fs::read(go).unwrap()).await;
    // Old pseudo-versions of much-advised modules: thousands of findings, each with its
    // trace, several megabytes of them.
    let components: Vec<Value> = MANY_ADVISORIES
        .iter()
        .flat_map(|module| {
            (1..=4).map(move |i| {
                let purl = format!("pkg:golang/{module}@v0.0.0-2019010{i}000000-0123456789ab");
                json!({"type": "library", "name": module, "bom-ref": purl, "purl": purl,
                    "version": format!("v0.0.0-2019010{i}000000-0123456789ab")})
            })
        })
        .collect();
    let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components})
        .to_string()
        .into_bytes();
    let id = scan_of(&server, &acme, sbom, &[("evaluated_at", EVALUATED_AT)]).await;
    let scan = wait_scan(&server, &acme, &id, "completed").await;
    let total = scan["counts"]["findings"].as_u64().unwrap();
    assert!(total > 3000, "{scan}");

    let envelope = attestation(&server, &acme, &id).await;
    // Listing every finding made an attestation of ~1.3 kB per finding (base64 included).
    assert!(
        envelope.len() < 2 * 1024 * 1024,
        "{} bytes for {total} findings",
        envelope.len()
    );
    let statement = verified_statement(&server, &envelope).await;
    let verdict = &statement["predicate"]["verdict"];
    assert_eq!(verdict["counts"], scan["counts"]);
    let listed = verdict["findings"].as_array().unwrap().len() as u64;
    let omitted = verdict["findings_omitted"].as_u64().unwrap();
    assert!(
        listed > 100 && omitted > 0,
        "{listed} listed, {omitted} omitted"
    );
    assert_eq!(listed + omitted, total);

    // The digest in the attestation is that of every finding the API serves, as one
    // canonical JSON array: a verifier can check the findings it did not list.
    let all = findings(&server, &acme, &id).await;
    assert_eq!(all.len() as u64, total);
    let digest = stella_domain::canonical::Digest::sha256(
        &stella_domain::canonical::canonical_bytes(&Value::Array(all.clone())),
    );
    assert_eq!(verdict["findings_digest"], digest.to_string());
    // And the listed ones are those findings, whole.
    for finding in verdict["findings"].as_array().unwrap() {
        assert!(all.contains(finding), "{finding}");
    }
    server.handle.stop(true).await;
}

/// A `csaf_vex` document saying echo v4.1.11 is not affected by GO-2022-1031's CVE.
fn csaf_echo_not_affected(product_id: &str, purl: &str) -> Vec<u8> {
    json!({
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "publisher": {"category": "vendor", "name": "Acme PSIRT", "namespace": "https://acme.example"},
            "title": "Acme VEX for echo",
            "tracking": {
                "id": "ACME-VEX-1", "version": "4", "status": "final",
                "current_release_date": "2025-06-01T00:00:00Z",
                "initial_release_date": "2025-05-01T00:00:00Z",
                "revision_history": [{"date": "2025-06-01T00:00:00Z", "number": "4", "summary": "echo"}]
            }
        },
        "product_tree": {"full_product_names": [{"name": "echo v4.1.11", "product_id": product_id,
            "product_identification_helper": {"purl": purl}}]},
        "vulnerabilities": [{
            "cve": "CVE-2022-40083",
            "product_status": {"known_not_affected": [product_id]},
            "flags": [{"label": "vulnerable_code_not_in_execute_path", "product_ids": [product_id]}]
        }]
    })
    .to_string()
    .into_bytes()
}

#[actix_web::test]
async fn csaf_vex_is_sniffed_or_named_refused_with_a_pointer_and_explained_in_findings() {
    let server = start(|_| {}).await;
    let (Some(go), Some(sbom), Some(uc02)) = (
        data("advisories/Go-all.zip"),
        data("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"),
        data("vex/csaf/2022-evd-uc-02-na-001.json"),
    ) else {
        return;
    };
    server.create_tenant("acme").await;
    let (_, acme) = server.token("acme", TENANT_SCOPES).await;
    import_go(&server, std::fs::read(go).unwrap()).await;

    // A real OASIS document, told by its content: kept whole, and said to name no
    // component the scans could match.
    let reply = post_bytes(
        &server,
        &acme,
        "/vex",
        "application/json",
        std::fs::read(uc02).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["format"], "csaf");
    assert_eq!(reply.body["statements"], 19);
    assert_eq!(reply.body["without_component_identity"], 19);

    // Named by its content type.
    let csaf = csaf_echo_not_affected("ECHO-4111", &format!("{ECHO}@v4.1.11"));
    let reply = post_bytes(&server, &acme, "/vex", "application/csaf+json", csaf).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["format"], "csaf");
    assert_eq!(reply.body["statements"], 1);
    assert_eq!(reply.body["without_component_identity"], 0);

    // Refused, naming the JSON pointer: a product id never defined, and a document that
    // is not what its content type says.
    let mut bad: Value = serde_json::from_slice(&csaf_echo_not_affected("ECHO", ECHO)).unwrap();
    bad["vulnerabilities"][0]["product_status"]["known_not_affected"] = json!(["NOPE"]);
    let reply = post_bytes(
        &server,
        &acme,
        "/vex",
        "application/json",
        bad.to_string().into_bytes(),
    )
    .await;
    assert_problem(&reply, 400, "undefined product id");
    assert_eq!(reply.body["type"], "urn:stella:problem:invalid-vex");
    assert_eq!(
        reply.body["location"], "/vulnerabilities/0/product_status/known_not_affected/0",
        "{}",
        reply.text
    );
    let openvex = json!({"@context": "https://openvex.dev/ns/v0.2.0", "statements": []});
    let reply = post_bytes(
        &server,
        &acme,
        "/vex",
        "application/csaf+json",
        openvex.to_string().into_bytes(),
    )
    .await;
    assert_problem(&reply, 400, "OpenVEX sent as CSAF");
    assert_eq!(reply.body["location"], "/document", "{}", reply.text);

    // The scan: echo's finding is ruled out, and its claim names the CSAF document, its
    // tracking id and version, and the product.
    let id = scan_of(
        &server,
        &acme,
        std::fs::read(sbom).unwrap(),
        &[("evaluated_at", EVALUATED_AT)],
    )
    .await;
    let scan = wait_scan(&server, &acme, &id, "completed").await;
    assert_eq!(scan["inputs"]["vex"].as_array().unwrap().len(), 2, "{scan}");
    assert_eq!(scan["counts"]["pass"], 1, "{scan}");
    let echo = finding_of(&findings(&server, &acme, &id).await, "GO-2022-1031").clone();
    assert_eq!(echo["disposition"], "pass", "{echo}");
    let claim = echo["assessment"]["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["evidence"].as_str().unwrap().starts_with("vex:sha256:"))
        .unwrap()
        .clone();
    assert_eq!(
        claim["about"], "CSAF ACME-VEX-1 version 4 (Acme VEX for echo), product ECHO-4111",
        "{claim}"
    );
    assert!(
        claim["evidence"]
            .as_str()
            .unwrap()
            .ends_with("#/vulnerabilities/0/product_status/known_not_affected/0"),
        "{claim}"
    );
    server.handle.stop(true).await;
}
