use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use stella_config::{redact_url, DatabaseBackend, DatabaseSettings};

use crate::diag::noop::{Noop, NoopGroups};
use crate::error::{Backend, Result, StoreError};
use crate::group::Groups;
use crate::repo::{Audit, Idempotency, Jobs, Outbox, Tenants, Tokens};
use crate::TenantId;

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The relational store: one repository API over PostgreSQL or SQLite.
///
/// Statements are written once, in the SQL both engines accept (`$n` placeholders, BIGINT
/// millisecond times, TEXT JSON), and run through sqlx's `Any` driver. Tenant data is only
/// reachable through [`Store::tenant`], whose handle binds the tenant id into every query.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// Group commit for the runtime's hot path (see `group`), shared by every clone.
    pub(crate) group: Arc<Groups>,
    /// The diagnostic `noop` kind's group commits.
    pub(crate) noop: Arc<NoopGroups>,
    /// Signalled after every commit that may have written outbox rows, so this process's
    /// relay moves them at once instead of at its next poll.
    pub(crate) outbox_signal: Arc<tokio::sync::Notify>,
    /// The SQLite file this store opened, to tell "the file is gone" from other errors.
    file: Option<Arc<SqliteFile>>,
}

/// The SQLite file a store was opened on, by identity. An open connection keeps writing
/// to a file that was deleted (or replaced) under it, and every such write is lost on
/// restart; checking the path still names the same file before a connection is handed
/// out turns that into `Unavailable` instead of a success.
#[derive(Debug, Clone)]
struct SqliteFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SqliteFile {
    fn identify(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    fn check(&self) -> std::io::Result<()> {
        let gone = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "database file {} was {what}; writes would be lost, restart the server",
                    self.path.display()
                ),
            )
        };
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => Ok(()),
            Ok(_) => Err(gone("replaced")),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(gone("removed")),
            Err(err) => Err(err),
        }
    }
}

impl Store {
    /// Connects, creating the SQLite file (and its folder) if needed. The error names the
    /// backend and the (password-redacted) URL.
    pub async fn connect(target: &DatabaseBackend, settings: &DatabaseSettings) -> Result<Self> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let (backend, url, file) = match target {
            DatabaseBackend::Postgres { url } => (Backend::Postgres, url.clone(), None),
            DatabaseBackend::Sqlite { url } => {
                let file = prepare_sqlite_file(url)?;
                (Backend::Sqlite, sqlite_url_without_create(url), file)
            }
        };
        let unavailable = |reason: String| StoreError::Unavailable {
            backend,
            reason: format!("cannot connect to {}: {reason}", redact_url(&url)),
        };
        let options: AnyConnectOptions = url.parse().map_err(|err: sqlx::Error| {
            StoreError::Invalid(format!("database URL {}: {err}", redact_url(&url)))
        })?;
        let is_sqlite = backend == Backend::Sqlite;
        let file_for_errors = file.clone().map(Arc::new);
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite {
                // One writer at a time is SQLite's model; a small pool avoids busy storms.
                settings.max_connections.min(4)
            } else {
                settings.max_connections
            })
            .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .before_acquire({
                let file = file.clone();
                move |_conn, _meta| {
                    let checked = file.as_ref().map_or(Ok(()), SqliteFile::check);
                    // An error closes the connection; the pool then opens a new one,
                    // which fails on a missing file (`mode=rw`): the caller gets that.
                    Box::pin(async move { checked.map(|()| true).map_err(sqlx::Error::Io) })
                }
            })
            .after_connect(move |conn, _meta| {
                let checked = file.as_ref().map_or(Ok(()), SqliteFile::check);
                Box::pin(async move {
                    checked.map_err(sqlx::Error::Io)?;
                    if is_sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|err| unavailable(describe_connect_error(&err)))?;
        Ok(Self {
            pool,
            backend,
            group: Arc::default(),
            noop: Arc::default(),
            outbox_signal: Arc::default(),
            file: file_for_errors,
        })
    }

    /// The same pool without the group-commit tasks: what those tasks themselves hold,
    /// so they end once every ordinary handle is dropped. It shares the outbox signal:
    /// group commits wake this process's relay like direct ones.
    pub(crate) fn detached(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            backend: self.backend,
            group: Arc::default(),
            noop: Arc::default(),
            outbox_signal: self.outbox_signal.clone(),
            file: self.file.clone(),
        }
    }

    /// Applies the embedded migrations of this backend; safe to call on every start.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            _ => &SQLITE_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|err| StoreError::Backend {
                backend: self.backend,
                reason: format!("migration failed: {err}"),
            })
    }

    /// Number of the newest migration applied, for diagnostics.
    pub async fn schema_version(&self) -> Result<i64> {
        let row: (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(|err| self.err(err, "schema version"))?;
        Ok(row.0)
    }

    /// The readiness check: a small committed write (one row of `store_probe`), so a
    /// store that answers reads but cannot take writes (read-only files, a full disk, a
    /// standby, a deleted SQLite file) is not ready.
    pub async fn ping(&self) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        sqlx::query(
            "INSERT INTO store_probe (id, probed_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|err| self.err(err, "write probe"))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn tenants(&self) -> Tenants<'_> {
        Tenants { store: self }
    }

    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { store: self }
    }

    pub fn audit(&self) -> Audit<'_> {
        Audit { store: self }
    }

    /// Advisories: global to every tenant.
    pub fn advisories(&self) -> crate::repo::Advisories<'_> {
        crate::repo::Advisories { store: self }
    }

    /// VEX documents, global and per tenant.
    pub fn vex(&self) -> crate::repo::VexDocuments<'_> {
        crate::repo::VexDocuments { store: self }
    }

    /// Policy packs (global, administrator-owned) and the pack each tenant has.
    pub fn packs(&self) -> crate::repo::Packs<'_> {
        crate::repo::Packs { store: self }
    }

    /// Rollouts of policy packs: administrator operations over many tenants, by design.
    pub fn rollouts(&self) -> crate::repo::Rollouts<'_> {
        crate::repo::Rollouts { store: self }
    }

    /// Mirror bundles imported into this instance, and those quarantined.
    pub fn mirror_imports(&self) -> crate::repo::MirrorImports<'_> {
        crate::repo::MirrorImports { store: self }
    }

    /// The leading scheduler's view: due schedules, runs and the impact index of every
    /// tenant, by design; its writes are fenced by its lease.
    pub fn scheduling(&self) -> crate::repo::Scheduling<'_> {
        crate::repo::Scheduling { store: self }
    }

    /// The outbox relay's view: pending messages of every tenant, by design.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { store: self }
    }

    /// Resolves when outbox rows were committed through this store (by any clone) since
    /// the last wait: the relay's wake-up. Other processes' rows are found by polling.
    pub fn outbox_written(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_signal.clone()
    }

    pub(crate) fn signal_outbox(&self) {
        // One stored permit: a relay that is busy finds it on its next wait.
        self.outbox_signal.notify_one();
    }

    /// The only door to tenant-owned data: every query made through the handle is scoped
    /// to `tenant`.
    pub fn tenant<'a>(&'a self, tenant: &'a TenantId) -> TenantScope<'a> {
        TenantScope {
            store: self,
            tenant,
        }
    }

    pub(crate) fn err(&self, err: sqlx::Error, what: &str) -> StoreError {
        match StoreError::from_sqlx(self.backend, err, what) {
            // "unable to open database file" says less than why: the file went away.
            StoreError::Unavailable { backend, reason } => StoreError::Unavailable {
                backend,
                reason: match self.file.as_deref().map(SqliteFile::check) {
                    Some(Err(gone)) => gone.to_string(),
                    _ => reason,
                },
            },
            other => other,
        }
    }
}

/// Tenant-scoped repositories. Obtained from [`Store::tenant`].
#[derive(Debug, Clone, Copy)]
pub struct TenantScope<'a> {
    store: &'a Store,
    tenant: &'a TenantId,
}

impl<'a> TenantScope<'a> {
    pub fn id(&self) -> &'a TenantId {
        self.tenant
    }

    pub fn jobs(&self) -> Jobs<'a> {
        Jobs {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn noop(&self) -> Noop<'a> {
        Noop {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn images(&self) -> crate::repo::Images<'a> {
        crate::repo::Images {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn scans(&self) -> crate::repo::Scans<'a> {
        crate::repo::Scans {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn export_profiles(&self) -> crate::repo::ExportProfiles<'a> {
        crate::repo::ExportProfiles {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn export_files(&self) -> crate::repo::ExportFiles<'a> {
        crate::repo::ExportFiles {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn export_runs(&self) -> crate::repo::ExportRuns<'a> {
        crate::repo::ExportRuns {
            store: self.store,
            tenant: self.tenant,
        }
    }

    /// What the tenant's mirror exports read: every advisory, and the VEX documents its
    /// scans consider.
    pub fn mirror(&self) -> crate::repo::MirrorSource<'a> {
        crate::repo::MirrorSource {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn exceptions(&self) -> crate::repo::Exceptions<'a> {
        crate::repo::Exceptions {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn policies(&self) -> crate::repo::Policies<'a> {
        crate::repo::Policies {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn targets(&self) -> crate::repo::Targets<'a> {
        crate::repo::Targets {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn schedules(&self) -> crate::repo::Schedules<'a> {
        crate::repo::Schedules {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn runs(&self) -> crate::repo::Runs<'a> {
        crate::repo::Runs {
            store: self.store,
            tenant: self.tenant,
        }
    }

    /// The tenant's notification channels, rules, templates and deliveries.
    pub fn notify(&self) -> crate::repo::Notify<'a> {
        crate::repo::Notify {
            store: self.store,
            tenant: self.tenant,
        }
    }

    /// The tenant's events and the global ones.
    pub fn events(&self) -> crate::repo::Events<'a> {
        crate::repo::Events {
            store: self.store,
            tenant: self.tenant,
        }
    }

    pub fn idempotency(&self) -> Idempotency<'a> {
        Idempotency {
            store: self.store,
            tenant: self.tenant,
        }
    }
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Creates the SQLite file's folder (0700) and the file itself (0600, an empty file is
/// an empty database) if missing, and identifies the file. SQLite gives its `-wal` and
/// `-shm` files the mode of the database file, so they are private too.
fn prepare_sqlite_file(url: &str) -> Result<Option<SqliteFile>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let Some(path) = sqlite_path(url).map(Path::new) else {
        return Ok(None);
    };
    let unavailable = |what: &str, at: &Path, err: std::io::Error| StoreError::Unavailable {
        backend: Backend::Sqlite,
        reason: format!("cannot {what} {}: {err}", at.display()),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|err| unavailable("create folder", parent, err))?;
    }
    if !creates(url) {
        // The URL chose another mode (read-only, read-write, memory): the file is as given.
        return Ok(SqliteFile::identify(path).ok());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|err| unavailable("create", path, err))?;
    SqliteFile::identify(path)
        .map(Some)
        .map_err(|err| unavailable("open", path, err))
}

/// The file exists by now (`prepare_sqlite_file`); connections open it without creating
/// it, so a file deleted later is an error on the next connection, not a new empty
/// database.
fn sqlite_url_without_create(url: &str) -> String {
    if sqlite_path(url).is_none() || !creates(url) {
        url.to_owned()
    } else if url.contains("mode=rwc") {
        url.replacen("mode=rwc", "mode=rw", 1)
    } else if url.contains('?') {
        format!("{url}&mode=rw")
    } else {
        format!("{url}?mode=rw")
    }
}

/// Whether the URL asks for the file to be created: `mode=rwc`, or no mode at all (Stella
/// always wants the file created then).
fn creates(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("mode="))
        .all(|mode| mode == "rwc")
}

fn describe_connect_error(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_open_without_create_mode() {
        assert_eq!(
            sqlite_url_without_create("sqlite://d/s.db"),
            "sqlite://d/s.db?mode=rw"
        );
        assert_eq!(
            sqlite_url_without_create("sqlite://d/s.db?mode=rwc"),
            "sqlite://d/s.db?mode=rw"
        );
        assert_eq!(
            sqlite_url_without_create("sqlite://d/s.db?mode=ro"),
            "sqlite://d/s.db?mode=ro"
        );
        assert_eq!(
            sqlite_url_without_create("sqlite::memory:"),
            "sqlite::memory:"
        );
    }
}
