//! Exports over HTTP on the embedded default: a profile, its revisions, a run, and its
//! files downloaded whole and resumed with `Range`, as a client would.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::{assert_problem, start, Reply, Server, ADMIN};
use crate::scans::{scan_of, tiny_sbom, wait_scan};

pub(crate) async fn import_left_pad_advisory(server: &Server) {
    let advisory = json!([{
        "id": "GHSA-left-pad", "modified": "2024-01-01T00:00:00Z",
        "summary": "left-pad pads wrongly",
        "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]}]
    }]);
    let reply = server
        .http
        .post(format!(
            "http://{}/api/v1/advisories/imports?source=osv:test",
            server.addr
        ))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(advisory.to_string())
        .send()
        .await
        .unwrap();
    let reply = Reply::of(reply).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

pub(crate) async fn get_file(
    server: &Server,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = server
        .http
        .get(format!("http://{}{path}", server.addr))
        .bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

pub(crate) async fn wait_export(server: &Server, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = server
            .call(
                Method::GET,
                &format!("/api/v1/exports/{id}"),
                Some(token),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if matches!(reply.body["status"].as_str(), Some("completed" | "failed")) {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "{}", reply.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn an_export_runs_from_a_profile_and_downloads_whole_and_in_ranges() {
    let server = start(|_| {}).await;
    server.create_tenant("acme").await;
    let (_, acme) = server
        .token(
            "acme",
            &["scans:read", "scans:write", "exports:read", "exports:write"],
        )
        .await;
    import_left_pad_advisory(&server).await;
    let scan = scan_of(&server, &acme, tiny_sbom(), &[("name", "=cmd|calc")]).await;
    wait_scan(&server, &acme, &scan, "completed").await;

    // A profile: a kind that does not exist and a bad selector are refused with their field.
    let put = |body: Value| {
        let server = &server;
        let acme = &acme;
        async move {
            server
                .call(
                    Method::POST,
                    "/api/v1/export-profiles",
                    Some(acme),
                    None,
                    Some(body),
                )
                .await
        }
    };
    let reply = put(json!({"name": "weekly", "kind": "xml", "selectors": {"scans": [scan]}})).await;
    assert_problem(&reply, 400, "a kind that does not exist");
    assert_eq!(reply.body["location"], "kind", "{}", reply.text);
    let reply =
        put(json!({"name": "weekly", "kind": "csv", "selectors": {"scans": ["nope"]}})).await;
    assert_problem(&reply, 400, "a scan id that is none");
    assert_eq!(
        reply.body["location"], "selectors.scans[0]",
        "{}",
        reply.text
    );
    let reply = put(json!({"name": "weekly", "kind": "csv", "selectors": {"scans": [scan]}})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["revision"], 1);
    let reply = put(json!({"name": "weekly", "kind": "csv", "selectors": {"scans": [scan]}})).await;
    assert_eq!(reply.status, 200, "the same definition is no new revision");
    let reply = put(json!({"name": "weekly", "kind": "csv", "selectors": {"scans": [scan]}, "retention_days": 7})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["revision"], 2);
    let reply = server
        .call(
            Method::GET,
            "/api/v1/export-profiles/weekly/revisions",
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body.as_array().unwrap().len(), 2);

    // A run of revision 1.
    let reply = server
        .call(
            Method::POST,
            "/api/v1/exports",
            Some(&acme),
            None,
            Some(json!({"profile": "weekly", "revision": 1, "as_of": "2026-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.body["export_id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        format!("/api/v1/exports/{id}")
    );
    let export = wait_export(&server, &acme, &id).await;
    assert_eq!(export["status"], "completed", "{export}");
    assert_eq!(export["revision"], 1);
    assert_eq!(export["counts"]["findings"], 1, "{export}");
    let files = export["files"].as_array().unwrap();
    let csv = files.iter().find(|f| f["name"] == "findings.csv").unwrap();

    // The whole file: its digest is the one listed, the formula-like name is defused.
    let path = format!("/api/v1/exports/{id}/files/findings.csv");
    let (status, headers, whole) = get_file(&server, &acme, &path, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["accept-ranges"], "bytes");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        hex::encode(Sha256::digest(&whole)),
        csv["sha256"].as_str().unwrap()
    );
    assert_eq!(whole.len() as u64, csv["size_bytes"].as_u64().unwrap());
    let text = String::from_utf8(whole.clone()).unwrap();
    assert!(
        text.contains("GHSA-left-pad") && text.contains("'=cmd|calc"),
        "{text}"
    );

    // Resumed in two parts, with `If-Range` naming the same bytes.
    let split = whole.len() / 2;
    let (status, headers, first) = get_file(
        &server,
        &acme,
        &path,
        &[("range", &format!("bytes=0-{}", split - 1))],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(
        headers["content-range"].to_str().unwrap(),
        format!("bytes 0-{}/{}", split - 1, whole.len())
    );
    let (status, _, rest) = get_file(
        &server,
        &acme,
        &path,
        &[("range", &format!("bytes={split}-")), ("if-range", &etag)],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!([first, rest].concat(), whole);
    // Other bytes than the first part had: the whole file again.
    let (status, _, again) = get_file(
        &server,
        &acme,
        &path,
        &[("range", "bytes=10-"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again, whole);
    // Past the end.
    let (status, _, _) = get_file(
        &server,
        &acme,
        &path,
        &[("range", &format!("bytes={}-", whole.len()))],
    )
    .await;
    assert_eq!(status, 416);

    // The manifest lists the file with the same digest; unknown files and runs are 404.
    let (status, _, manifest) = get_file(
        &server,
        &acme,
        &format!("/api/v1/exports/{id}/files/export.json"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["files"][0]["sha256"], csv["sha256"]);
    let reply = server
        .call(
            Method::GET,
            &format!("/api/v1/exports/{id}/files/secret.txt"),
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_problem(&reply, 404, "a file the run did not write");
    let reply = server
        .call(
            Method::GET,
            &format!("/api/v1/exports/{scan}"),
            Some(&acme),
            None,
            None,
        )
        .await;
    assert_problem(&reply, 404, "a scan is not an export");
    let reply = server
        .call(
            Method::POST,
            "/api/v1/exports",
            Some(&acme),
            None,
            Some(json!({"profile": "missing"})),
        )
        .await;
    assert_problem(&reply, 404, "a run of a profile that does not exist");
    server.handle.stop(true).await;
}

/// What a run's owner does with runs besides downloading them: lists them, cancels one,
/// reads the manifest and provenance, and finds the files of an expired run gone.
#[actix_web::test]
async fn runs_are_listed_cancelled_and_expire() {
    let server = start(|s| s.api.max_export_runs_per_tenant = 2).await;
    server.create_tenant("acme").await;
    let (_, acme) = server
        .token(
            "acme",
            &["scans:read", "scans:write", "exports:read", "exports:write"],
        )
        .await;
    import_left_pad_advisory(&server).await;
    let scan = scan_of(&server, &acme, tiny_sbom(), &[("name", "shop")]).await;
    wait_scan(&server, &acme, &scan, "completed").await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let server = &server;
        let acme = &acme;
        async move { server.call(method, &path, Some(acme), None, body).await }
    };
    let reply = call(
        Method::POST,
        "/api/v1/export-profiles".into(),
        Some(
            json!({"name": "daily", "kind": "csv", "selectors": {"scans": [scan]},
                    "retention_days": 1}),
        ),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // Another tenant naming acme's scan finds no such scan.
    server.create_tenant("globex").await;
    let (_, globex) = server.token("globex", &["exports:write"]).await;
    let reply = server
        .call(
            Method::POST,
            "/api/v1/export-profiles",
            Some(&globex),
            None,
            Some(json!({"name": "stolen", "kind": "csv", "selectors": {"scans": [scan]}})),
        )
        .await;
    assert_problem(&reply, 404, "another tenant's scan");
    assert_eq!(
        reply.body["location"], "selectors.scans[0]",
        "{}",
        reply.text
    );

    let start_run = |key: &'static str| {
        let server = &server;
        let acme = &acme;
        async move {
            let response = server
                .http
                .post(format!("http://{}/api/v1/exports", server.addr))
                .bearer_auth(acme)
                .header("idempotency-key", key)
                .json(&json!({"profile": "daily", "as_of": "2026-01-01T00:00:00Z"}))
                .send()
                .await
                .unwrap();
            Reply::of(response).await
        }
    };
    let first = start_run("one").await;
    assert_eq!(first.status, 202, "{}", first.text);
    let first_id = first.body["export_id"].as_str().unwrap().to_owned();
    let done = wait_export(&server, &acme, &first_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["step"], "distribute");
    assert_eq!(
        (done["items_done"].as_u64(), done["items_total"].as_u64()),
        (Some(1), Some(1))
    );

    // The manifest and the provenance have routes of their own; the provenance's
    // subjects are the manifest's files and the manifest.
    let manifest = call(
        Method::GET,
        format!("/api/v1/exports/{first_id}/manifest"),
        None,
    )
    .await;
    assert_eq!(manifest.status, 200, "{}", manifest.text);
    let provenance = call(
        Method::GET,
        format!("/api/v1/exports/{first_id}/provenance"),
        None,
    )
    .await;
    assert_eq!(provenance.status, 200, "{}", provenance.text);
    assert_eq!(provenance.body["_type"], "https://in-toto.io/Statement/v1");
    let subjects: Vec<&str> = provenance.body["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["export.json", "findings.csv"]);
    assert_eq!(manifest.body["files"][0]["name"], "findings.csv");

    // Two more runs (the run limit, 2, counts runs that have not ended; it is tested
    // where runs can be held queued, in `actors/tests/export.rs`), then cancelled;
    // repeating a request gets its run, not a new one.
    let mut waiting = Vec::new();
    for key in ["two", "three"] {
        let reply = start_run(key).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        waiting.push(reply.body["export_id"].as_str().unwrap().to_owned());
    }
    let again = start_run("two").await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.body["export_id"], waiting[0].as_str());
    // The list: every run, newest last, filtered by status and profile.
    let all = call(Method::GET, "/api/v1/exports".into(), None).await;
    assert_eq!(all.status, 200, "{}", all.text);
    let ids: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["export_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.len() >= 3 && ids.contains(&first_id.as_str()),
        "{ids:?}"
    );
    let completed = call(
        Method::GET,
        "/api/v1/exports?status=completed&profile=daily".into(),
        None,
    )
    .await;
    assert!(completed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["status"] == "completed" && e["profile"] == "daily"));
    let other = call(Method::GET, "/api/v1/exports?profile=weekly".into(), None).await;
    assert_eq!(other.body["items"], json!([]));
    let bad = call(Method::GET, "/api/v1/exports?status=done".into(), None).await;
    assert_problem(&bad, 400, "an unknown status");
    assert_eq!(bad.body["location"], "status");
    let reply = call(
        Method::POST,
        format!("/api/v1/exports/{first_id}/cancel"),
        None,
    )
    .await;
    assert_problem(&reply, 409, "cancelling a completed run");

    // A day and a bit after the run ended its retention has passed: its files are gone
    // (410), its record is not. The end time is moved back in the server's own database.
    let db = server.data_dir().join("stella.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let past = chrono::Utc::now().timestamp_millis() - 25 * 3600 * 1000;
    sqlx::query("UPDATE jobs SET finished_at = ?1 WHERE id = ?2")
        .bind(past)
        .bind(&first_id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    for path in [
        format!("/api/v1/exports/{first_id}/files/findings.csv"),
        format!("/api/v1/exports/{first_id}/manifest"),
    ] {
        let reply = call(Method::GET, path.clone(), None).await;
        assert_problem(&reply, 410, &path);
        assert!(
            reply.body["type"]
                .as_str()
                .unwrap()
                .ends_with("export-expired"),
            "{}",
            reply.text
        );
    }
    let reply = call(Method::GET, format!("/api/v1/exports/{first_id}"), None).await;
    assert_eq!(reply.status, 200);
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn a_mirror_delta_runs_since_a_base_of_its_own_tenant() {
    let server = start(|_| {}).await;
    let mut tokens = Vec::new();
    for tenant in ["acme", "beta"] {
        server.create_tenant(tenant).await;
        let (_, token) = server
            .token(tenant, &["exports:read", "exports:write"])
            .await;
        tokens.push(token);
    }
    let (acme, beta) = (&tokens[0], &tokens[1]);
    import_left_pad_advisory(&server).await;
    let post = |token: &str, path: &str, body: Value| {
        let server = &server;
        let token = token.to_owned();
        let path = path.to_owned();
        async move {
            server
                .call(Method::POST, &path, Some(&token), None, Some(body))
                .await
        }
    };

    // A mirror takes no scan selectors; it exports every advisory and VEX document.
    let reply = post(
        acme,
        "/api/v1/export-profiles",
        json!({"name": "feeds", "kind": "mirror:full", "selectors": {"scans": ["x"]}}),
    )
    .await;
    assert_problem(&reply, 400, "a scan selector on a mirror");
    assert_eq!(reply.body["location"], "selectors.scans", "{}", reply.text);
    for (token, name, kind) in [
        (acme, "feeds", "mirror:full"),
        (acme, "feeds-delta", "mirror:delta"),
        (beta, "feeds-delta", "mirror:delta"),
    ] {
        let reply = post(
            token,
            "/api/v1/export-profiles",
            json!({"name": name, "kind": kind, "selectors": {}}),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let reply = post(acme, "/api/v1/exports", json!({"profile": "feeds"})).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let full = reply.body["export_id"].as_str().unwrap().to_owned();
    let export = wait_export(&server, acme, &full).await;
    assert_eq!(export["status"], "completed", "{export}");
    assert_eq!(export["counts"]["advisories"], 1, "{export}");
    assert!(
        export["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "mirror.tar.zst"),
        "{export}"
    );

    // A delta names its base; nothing else takes one; another tenant's export is as
    // missing as one that does not exist.
    let reply = post(acme, "/api/v1/exports", json!({"profile": "feeds-delta"})).await;
    assert_problem(&reply, 400, "a delta without a base");
    assert_eq!(reply.body["location"], "base", "{}", reply.text);
    let reply = post(
        acme,
        "/api/v1/exports",
        json!({"profile": "feeds", "base": full}),
    )
    .await;
    assert_problem(&reply, 400, "a base on a full mirror");
    assert_eq!(reply.body["location"], "base", "{}", reply.text);
    let reply = post(
        beta,
        "/api/v1/exports",
        json!({"profile": "feeds-delta", "base": full}),
    )
    .await;
    assert_problem(&reply, 404, "another tenant's export as the base");
    assert_eq!(reply.body["location"], "base", "{}", reply.text);
    let reply = post(
        acme,
        "/api/v1/exports",
        json!({"profile": "feeds-delta", "base": full}),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let delta = reply.body["export_id"].as_str().unwrap().to_owned();
    let export = wait_export(&server, acme, &delta).await;
    assert_eq!(export["status"], "completed", "{export}");
    assert_eq!(
        export["counts"]["advisories"], 0,
        "nothing changed since the base: {export}"
    );

    // A scheduled delta names no base: it follows the profile's previous completed run.
    let reply = server
        .call(
            Method::POST,
            "/api/v1/schedules",
            Some(ADMIN),
            Some("acme"),
            Some(json!({"name": "deltas", "cron": "0 3 * * *", "kind": "export", "profile": "feeds-delta"})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let reply = server
        .call(
            Method::POST,
            "/api/v1/schedules/deltas/run",
            Some(ADMIN),
            Some("acme"),
            None,
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let followed = loop {
        let reply = server
            .call(
                Method::GET,
                "/api/v1/exports?profile=feeds-delta",
                Some(acme),
                None,
                None,
            )
            .await;
        let later: Vec<Value> = reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["export_id"].as_str() != Some(delta.as_str()))
            .cloned()
            .collect();
        if let Some(e) = later.first() {
            let id = e["export_id"].as_str().unwrap().to_owned();
            break (id.clone(), wait_export(&server, acme, &id).await);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled delta: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (followed_id, followed) = followed;
    assert_eq!(followed["status"], "completed", "{followed}");
    let manifest = server
        .call(
            Method::GET,
            &format!("/api/v1/exports/{followed_id}/manifest"),
            Some(acme),
            None,
            None,
        )
        .await;
    assert_eq!(
        manifest.body["mirror"]["base"]["export_id"],
        delta.as_str(),
        "the previous run is the base: {}",
        manifest.text
    );
    server.handle.stop(true).await;
}

/// A named destination on the embedded default: a folder the operator declared for
/// `acme` only. `globex` cannot name it (the same 400 as a name that does not exist, at
/// `distribution.name`); `acme`'s run lands in it under its tenant id, one file each, with
/// the digests the run lists.
#[actix_web::test]
async fn a_profile_sends_its_files_to_a_destination_the_operator_opened_to_its_tenant() {
    let destination = tempfile::tempdir().unwrap();
    let root = destination.path().join("archive");
    let declared = root.clone();
    let server = start(move |settings| {
        settings.export.destinations.insert(
            "archive".into(),
            stella_config::DestinationSettings {
                path: Some(declared),
                prefix: "stella/exports".into(),
                tenants: vec!["acme".into()],
                ..Default::default()
            },
        );
    })
    .await;
    server.create_tenant("acme").await;
    server.create_tenant("globex").await;
    let scopes = ["scans:read", "scans:write", "exports:read", "exports:write"];
    let (_, acme) = server.token("acme", &scopes).await;
    let (_, globex) = server.token("globex", &scopes).await;
    import_left_pad_advisory(&server).await;
    let scan = scan_of(&server, &acme, tiny_sbom(), &[("name", "web")]).await;
    wait_scan(&server, &acme, &scan, "completed").await;
    let other_scan = scan_of(&server, &globex, tiny_sbom(), &[("name", "web")]).await;
    wait_scan(&server, &globex, &other_scan, "completed").await;

    let put = |token: &str, scan: &str, distribution: Value| {
        let body = json!({
            "name": "archived", "kind": "csv",
            "selectors": {"scans": [scan]},
            "distribution": distribution,
        });
        let server = &server;
        let token = token.to_owned();
        async move {
            server
                .call(
                    Method::POST,
                    "/api/v1/export-profiles",
                    Some(&token),
                    None,
                    Some(body),
                )
                .await
        }
    };
    // Another tenant's destination and one that does not exist: the same refusal.
    let not_allowed = put(
        &globex,
        &other_scan,
        json!({"to": "destination", "name": "archive"}),
    )
    .await;
    assert_problem(&not_allowed, 400, "a destination not opened to globex");
    assert_eq!(
        not_allowed.body["location"], "distribution.name",
        "{}",
        not_allowed.text
    );
    let unknown = put(
        &globex,
        &other_scan,
        json!({"to": "destination", "name": "elsewhere"}),
    )
    .await;
    assert_problem(&unknown, 400, "a destination that does not exist");
    assert_eq!(unknown.body["location"], "distribution.name");
    assert_eq!(
        unknown.body["detail"]
            .as_str()
            .unwrap()
            .replace("elsewhere", "archive"),
        not_allowed.body["detail"].as_str().unwrap(),
        "unknown and not allowed must read alike"
    );
    let bad_prefix = put(
        &acme,
        &scan,
        json!({"to": "destination", "name": "archive", "prefix": "../globex"}),
    )
    .await;
    assert_problem(&bad_prefix, 400, "a prefix that climbs out");
    assert_eq!(bad_prefix.body["location"], "distribution.prefix");
    let no_name = put(&acme, &scan, json!({"to": "destination"})).await;
    assert_problem(&no_name, 400, "a destination without a name");

    let created = put(
        &acme,
        &scan,
        json!({"to": "destination", "name": "archive", "prefix": "nightly"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.body["definition"]["distribution"],
        json!({"to": "destination", "name": "archive", "prefix": "nightly"})
    );
    let started = server
        .call(
            Method::POST,
            "/api/v1/exports",
            Some(&acme),
            None,
            Some(json!({"profile": "archived"})),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let id = started.body["export_id"].as_str().unwrap().to_owned();
    let export = wait_export(&server, &acme, &id).await;
    assert_eq!(export["status"], "completed", "{export}");

    // Exactly the run's files, under <destination prefix>/<tenant>/<prefix>/<export id>/,
    // each with the listed SHA-256; nothing anywhere else in the folder.
    let run_dir = root.join(format!("stella/exports/acme/nightly/{id}"));
    let mut expected: Vec<(String, String)> = export["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    expected.sort();
    assert!(expected.iter().any(|(name, _)| name == "findings.csv"));
    let mut landed = Vec::new();
    for entry in walk(&root) {
        let relative = entry
            .strip_prefix(&run_dir)
            .unwrap_or_else(|_| panic!("{} is outside the run's folder", entry.display()));
        let bytes = std::fs::read(&entry).unwrap();
        landed.push((
            relative.to_str().unwrap().to_owned(),
            hex::encode(Sha256::digest(&bytes)),
        ));
    }
    landed.sort();
    assert_eq!(landed, expected);
}

/// Every file under `dir` (the folder store's temporary folder aside).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
