//! A restore, as the runbook describes it (docs/RUNBOOK.md "Backup and restore"): a
//! `pg_dump` of the database, restored with `pg_restore` into an empty one, with the same
//! object store and the same signing key, gives a Stella that serves the same scans,
//! verdicts, findings, attestations and export bundles, byte for byte.

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection, Executor};
use stella_config::{Secret, Settings};

use crate::api::{start, Server};
use crate::exports::{get_file, import_left_pad_advisory, wait_export};
use crate::scans::{attestation, findings, scan_of, tiny_sbom, verified_statement, wait_scan};

/// What a user reads back: the scan, its findings, its attestation, the export run and
/// the sha256 of each of its files.
async fn snapshot(server: &Server, token: &str, scan: &str, export: &str) -> Value {
    let reply = server
        .call(
            Method::GET,
            &format!("/api/v1/scans/{scan}"),
            Some(token),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let envelope = attestation(server, token, scan).await;
    let statement = verified_statement(server, &envelope).await;
    let run = wait_export(server, token, export).await;
    let mut files = serde_json::Map::new();
    for file in run["files"].as_array().unwrap() {
        let name = file["name"].as_str().unwrap();
        let (status, _, bytes) = get_file(
            server,
            token,
            &format!("/api/v1/exports/{export}/files/{name}"),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{name}");
        files.insert(name.to_owned(), json!(hex::encode(Sha256::digest(&bytes))));
    }
    json!({
        "scan": reply.body,
        "findings": findings(server, token, scan).await,
        "attestation_sha256": hex::encode(Sha256::digest(&envelope)),
        "verdict": statement["predicate"]["verdict"],
        "export": {"status": run["status"], "counts": run["counts"], "files": run["files"]},
        "downloaded": files,
    })
}

#[actix_web::test]
async fn a_restore_from_pg_dump_and_the_object_store_serves_the_same_verdicts_and_bundles() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let bindir = std::env::var("STELLA_TEST_PG_BINDIR")
        .expect("STELLA_TEST_PG_BINDIR must be set with the other services");
    let valkey = std::env::var("STELLA_VALKEY_URL").expect("STELLA_VALKEY_URL with the services");
    let s3 = crate::common::s3_target().expect("S3 with the services");
    let keys = tempfile::tempdir().unwrap();
    // The original generates its signing key in its data dir; the backup keeps a copy.
    let configure = |database: String, signing_key: Option<std::path::PathBuf>| {
        let (valkey, s3) = (valkey.clone(), s3.clone());
        move |s: &mut Settings| {
            s.database.url = Some(Secret::new(database));
            s.database.max_connections = 6;
            // A restored site starts with an empty mailbox: nothing was in flight.
            s.valkey.url = Some(Secret::new(valkey));
            s.valkey.key_prefix = format!("restore-{}", uuid::Uuid::new_v4().simple());
            s.s3.endpoint = Some(s3.endpoint);
            s.s3.bucket = s3.bucket;
            s.s3.region = s3.region;
            s.s3.access_key_id = Some(s3.access_key_id);
            s.s3.secret_access_key = Some(s3.secret_access_key);
            s.s3.prefix = s3.prefix;
            s.signing_key_file = signing_key;
        }
    };

    // The original site: a scan with a finding, and an evidence bundle of it.
    let original = start(configure(db.url.clone(), None)).await;
    original.create_tenant("acme").await;
    let (_, acme) = original
        .token(
            "acme",
            &["scans:read", "scans:write", "exports:read", "exports:write"],
        )
        .await;
    import_left_pad_advisory(&original).await;
    let scan = scan_of(&original, &acme, tiny_sbom(), &[]).await;
    wait_scan(&original, &acme, &scan, "completed").await;
    let reply = original
        .call(
            Method::POST,
            "/api/v1/export-profiles",
            Some(&acme),
            None,
            Some(json!({"name": "audit", "kind": "evidence", "selectors": {"scans": [scan]}})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = original
        .call(
            Method::POST,
            "/api/v1/exports",
            Some(&acme),
            None,
            Some(json!({"profile": "audit", "revision": 1})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let export = reply.body["export_id"].as_str().unwrap().to_owned();
    let before = snapshot(&original, &acme, &scan, &export).await;
    assert_eq!(before["export"]["status"], "completed", "{before}");
    assert!(
        before["findings"].as_array().is_some_and(|f| !f.is_empty()),
        "the scan should have a finding to compare: {before}"
    );
    original.handle.stop(true).await;

    // The backup: the signing key, and a custom-format dump restored into an empty
    // database.
    let signing_key = keys.path().join("signing-key.pem");
    std::fs::copy(original.data_dir().join("signing-key.pem"), &signing_key).unwrap();
    let dump = keys.path().join("stella.dump");
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(format!("{bindir}/{program}"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        "pg_dump",
        &["--format=custom", "--file", dump.to_str().unwrap(), &db.url],
    );
    let admin_url = std::env::var("STELLA_DATABASE_URL").unwrap();
    let name = format!("stella_restore_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AnyConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let restored_url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    run(
        "pg_restore",
        &[
            "--no-owner",
            "--dbname",
            &restored_url,
            dump.to_str().unwrap(),
        ],
    );

    // The restored site: the same answers, byte for byte; the tenant's token still works.
    let restored = start(configure(restored_url, Some(signing_key))).await;
    let after = snapshot(&restored, &acme, &scan, &export).await;
    assert_eq!(after, before);
    restored.handle.stop(true).await;

    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    db.finish().await;
}
