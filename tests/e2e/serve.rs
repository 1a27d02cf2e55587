use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use chrono::Utc;
use serde_json::Value;
use stella::{AdminToken, Application};
use stella_config::{Secret, Settings};

fn embedded(dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Settings::default()
    }
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Serves the app in the background; the handle stops it.
fn spawn(app: Application) -> (SocketAddr, actix_web::dev::ServerHandle) {
    let addr = app.addr();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    (addr, handle)
}

#[actix_web::test]
async fn embedded_default_is_live_and_ready_with_no_server_installed() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(embedded(dir.path())).await.unwrap();
    assert_ne!(app.addr().port(), 0);
    let (addr, handle) = spawn(app);
    let (status, health) = get(addr, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");

    let (status, ready) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["store"]["backend"], "sqlite");
    assert_eq!(ready["checks"]["mailbox"]["backend"], "embedded");
    assert_eq!(ready["checks"]["objects"]["backend"], "folder");
    for check in ["store", "mailbox", "objects"] {
        assert_eq!(ready["checks"][check]["ready"], true, "{check}: {ready}");
    }
    assert!(dir.path().join("stella.db").is_file());
    assert!(dir.path().join("objects").is_dir());

    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("stella_dependency_up{dependency=\"store\"} 1"),
        "{metrics}"
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn first_start_generates_a_private_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(embedded(dir.path())).await.unwrap();
    let file = dir.path().join("admin-token");
    assert_eq!(
        app.admin_token(),
        &AdminToken::Generated { file: file.clone() }
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let record = app
        .context()
        .store
        .tokens()
        .authenticate(&secret, Utc::now())
        .await
        .unwrap()
        .expect("the token in admin-token authenticates");
    assert_eq!(record.scopes, ["admin"]);
    assert_eq!(record.tenant, None);
    drop(app);

    // A second start over the same data dir keeps that token and creates none.
    let again = Application::build(embedded(dir.path())).await.unwrap();
    assert_eq!(again.admin_token(), &AdminToken::Existing);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), secret);
    let admins = again
        .context()
        .store
        .tokens()
        .list_admin(None, 10)
        .await
        .unwrap();
    assert_eq!(admins.items.len(), 1);
}

#[actix_web::test]
async fn bootstrap_token_becomes_exactly_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        bootstrap_token: Some(Secret::new("ci-chosen-admin-token-0123456789")),
        ..embedded(dir.path())
    };
    let app = Application::build(settings).await.unwrap();
    assert_eq!(app.admin_token(), &AdminToken::FromBootstrap);
    assert!(!dir.path().join("admin-token").exists());
    let tokens = app.context().store.tokens();
    assert!(tokens
        .authenticate("ci-chosen-admin-token-0123456789", Utc::now())
        .await
        .unwrap()
        .is_some());
}

#[actix_web::test]
async fn services_from_ops_are_all_reported_ready() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let Some(s3) = crate::common::s3_target() else {
        return;
    };
    let Ok(valkey_url) = std::env::var("STELLA_VALKEY_URL") else {
        panic!("STELLA_VALKEY_URL must be set with the other services");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = embedded(dir.path());
    settings.database.url = Some(Secret::new(db.url.clone()));
    settings.valkey.url = Some(Secret::new(valkey_url));
    settings.s3.endpoint = Some(s3.endpoint.clone());
    settings.s3.bucket = s3.bucket.clone();
    settings.s3.region = s3.region.clone();
    settings.s3.access_key_id = Some(s3.access_key_id.clone());
    settings.s3.secret_access_key = Some(s3.secret_access_key.clone());
    settings.s3.prefix = s3.prefix.clone();
    settings.bootstrap_token = Some(Secret::new("services-admin-token-0123456789"));

    let app = Application::build(settings).await.unwrap();
    let (addr, handle) = spawn(app);
    let (status, ready) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["store"]["backend"], "postgres");
    assert_eq!(ready["checks"]["mailbox"]["backend"], "valkey");
    assert_eq!(ready["checks"]["objects"]["backend"], "s3");
    assert!(
        !dir.path().join("stella.db").exists(),
        "SQLite used despite database.url"
    );
    handle.stop(true).await;
    db.finish().await;
}
