//! Per-test backends for Stella's tests: every test gets its own SQLite file or PostgreSQL
//! database, its own folder or S3 key prefix and its own Valkey key prefix, so tests run
//! in parallel. The store's conformance suites, the actors' and the scheduler's tests and
//! the end-to-end tests use it (as `common`); it is a dev-dependency only, never part of
//! the server.
//!
//! The server backends come from the variables `ops/services.sh up` prints. Without them a
//! server test is skipped with a message, unless `STELLA_TEST_SERVICES=1` (which
//! `ops/test.sh` sets), where a missing service is a failure.
//!
//! It hands out real `stella-store` values (`Store`, `Arc<dyn ObjectStore>`,
//! `Arc<dyn Mailbox>`), so it depends on `stella-store`, and `stella-store` has it as a
//! dev-dependency. Cargo allows that cycle, and it costs nothing here: the store's tests
//! that use the harness are integration tests (`store/tests/`), which link the same build
//! of `stella-store` the harness does, so its types are the ones the tests name. Only the
//! store's unit tests (`#[cfg(test)]` in `store/src/`) are a second copy of the crate, and
//! they do not use the harness.
//!
//! Layout (one file; each value has a `finish` that removes what the test wrote):
//! - [`TestDb`] from [`sqlite`] or [`postgres`];
//! - [`TestObjects`] from [`folder`] or [`s3`], and [`s3_target`] for a store built by hand;
//! - [`TestMailbox`] from [`embedded_mailbox`] or [`valkey_mailbox`].
// A setup step that fails panics, as in the tests themselves: the test that asked fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{AnyConnection, Connection, Executor};
use stella_config::{DatabaseBackend, DatabaseSettings, S3Target, Secret};
use stella_store::object::{FolderStore, ObjectStore, S3Store};
use stella_store::Store;

fn service_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            if std::env::var("STELLA_TEST_SERVICES").as_deref() == Ok("1") {
                panic!("{name} is not set but STELLA_TEST_SERVICES=1: run `eval \"$(ops/services.sh up)\"`");
            }
            eprintln!(
                "skipping: {name} is not set (run ops/test.sh, or eval \"$(ops/services.sh up)\")"
            );
            None
        }
    }
}

#[derive(Debug)]
pub struct TestDb {
    pub store: Store,
    /// A URL a test can open directly to look at the raw rows.
    pub url: String,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn raw(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.url).await.unwrap()
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = self.cleanup {
            let mut admin = AnyConnection::connect(&admin_url).await.unwrap();
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
        }
    }
}

fn settings() -> DatabaseSettings {
    DatabaseSettings::default()
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stella.db").display());
    let store = Store::connect(&DatabaseBackend::Sqlite { url: url.clone() }, &settings())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    TestDb {
        store,
        url,
        cleanup: None,
        _dir: Some(dir),
    }
}

/// A fresh database on the PostgreSQL server named by `STELLA_DATABASE_URL`.
pub async fn postgres() -> Option<TestDb> {
    let admin_url = service_env("STELLA_DATABASE_URL")?;
    sqlx::any::install_default_drivers();
    let name = format!("stella_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AnyConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to STELLA_DATABASE_URL: {err}"));
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap();
    let url = format!("{base}/{name}");
    let store = Store::connect(&DatabaseBackend::Postgres { url: url.clone() }, &settings())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Some(TestDb {
        store,
        url,
        cleanup: Some((admin_url, name)),
        _dir: None,
    })
}

#[derive(Debug)]
pub struct TestObjects {
    pub store: Arc<dyn ObjectStore>,
    _dir: Option<tempfile::TempDir>,
    pub root: Option<PathBuf>,
}

impl TestObjects {
    /// Removes everything the test wrote (the folder goes with its temp dir).
    pub async fn finish(self) {
        for info in self.store.list("").await.unwrap() {
            self.store.delete(&info.key).await.unwrap();
        }
    }
}

pub fn folder() -> TestObjects {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    TestObjects {
        store: Arc::new(FolderStore::open(&root).unwrap()),
        _dir: Some(dir),
        root: Some(root),
    }
}

/// The S3 target from the environment, under a fresh key prefix.
pub fn s3_target() -> Option<S3Target> {
    let endpoint = service_env("STELLA_S3_ENDPOINT")?;
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set with STELLA_S3_ENDPOINT"))
    };
    Some(S3Target {
        endpoint,
        bucket: var("STELLA_S3_BUCKET"),
        region: var("STELLA_S3_REGION"),
        access_key_id: var("STELLA_S3_ACCESS_KEY_ID"),
        secret_access_key: Secret::new(var("STELLA_S3_SECRET_ACCESS_KEY")),
        prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
        part_size_bytes: 5 * 1024 * 1024,
    })
}

pub async fn s3() -> Option<TestObjects> {
    let target = s3_target()?;
    let store = S3Store::new(&target);
    store.ensure_bucket().await.unwrap();
    Some(TestObjects {
        store: Arc::new(store),
        _dir: None,
        root: None,
    })
}

/// A mailbox under test, with what its cleanup needs.
#[derive(Debug)]
pub struct TestMailbox {
    pub mailbox: Arc<dyn stella_store::mailbox::Mailbox>,
    db: Option<TestDb>,
    valkey: Option<(stella_store::Valkey, String)>,
}

impl TestMailbox {
    pub async fn finish(self) {
        if let Some(db) = self.db {
            db.finish().await;
        }
        if let Some((valkey, prefix)) = self.valkey {
            let mut conn = valkey.conn().await.unwrap();
            // On a cluster KEYS asks every primary; DEL is split by slot.
            let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            for key in &keys {
                let _: i64 = deadpool_redis::redis::cmd("DEL")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// The Valkey connection and key prefix, for tests that inspect raw keys.
    pub fn valkey(&self) -> Option<&(stella_store::Valkey, String)> {
        self.valkey.as_ref()
    }
}

pub fn mailbox_config() -> stella_store::mailbox::MailboxConfig {
    stella_store::mailbox::MailboxConfig {
        max_deliveries: 3,
        lease: std::time::Duration::from_secs(30),
        dedupe_window: std::time::Duration::from_secs(3600),
    }
}

pub async fn embedded_mailbox(db: TestDb) -> TestMailbox {
    let mailbox = stella_store::mailbox::EmbeddedMailbox::new(db.store.clone(), mailbox_config());
    TestMailbox {
        mailbox: Arc::new(mailbox),
        db: Some(db),
        valkey: None,
    }
}

pub async fn valkey_mailbox() -> Option<TestMailbox> {
    let url = service_env("STELLA_VALKEY_URL")?;
    valkey_mailbox_at(&url, false, 0).await
}

/// A mailbox on the local Valkey Cluster (three primaries, a replica each, started by
/// `ops/services.sh up`); sends wait for a replica to hold them as a production cluster would.
pub async fn valkey_cluster_mailbox() -> Option<TestMailbox> {
    let url = service_env("STELLA_TEST_VALKEY_CLUSTER_URL")?;
    valkey_mailbox_at(&url, true, 1).await
}

async fn valkey_mailbox_at(url: &str, cluster: bool, wait_replicas: u32) -> Option<TestMailbox> {
    let valkey = stella_store::Valkey::new(url, 8, cluster).unwrap();
    valkey.ping().await.unwrap();
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let mailbox = stella_store::mailbox::ValkeyMailbox::with_replicas(
        valkey.clone(),
        &prefix,
        mailbox_config(),
        wait_replicas,
    );
    Some(TestMailbox {
        mailbox: Arc::new(mailbox),
        db: None,
        valkey: Some((valkey, prefix)),
    })
}
