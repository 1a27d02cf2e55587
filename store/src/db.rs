use std::path::Path;
use std::sync::Arc;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use stella_config::{redact_url, DatabaseBackend, DatabaseSettings};

use crate::error::{Backend, Result, StoreError};
use crate::group::Groups;
use crate::repo::{Audit, Idempotency, Jobs, Noop, Outbox, Tenants, Tokens};
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
    /// Signalled after every commit that may have written outbox rows, so this process's
    /// relay moves them at once instead of at its next poll.
    pub(crate) outbox_signal: Arc<tokio::sync::Notify>,
}

impl Store {
    /// Connects, creating the SQLite file (and its folder) if needed. The error names the
    /// backend and the (password-redacted) URL.
    pub async fn connect(target: &DatabaseBackend, settings: &DatabaseSettings) -> Result<Self> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let (backend, url) = match target {
            DatabaseBackend::Postgres { url } => (Backend::Postgres, url.clone()),
            DatabaseBackend::Sqlite { url } => {
                prepare_sqlite_dir(url)?;
                (Backend::Sqlite, sqlite_url_with_create(url))
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
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite {
                // One writer at a time is SQLite's model; a small pool avoids busy storms.
                settings.max_connections.min(4)
            } else {
                settings.max_connections
            })
            .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
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
            outbox_signal: Arc::default(),
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
            outbox_signal: self.outbox_signal.clone(),
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

    /// Round-trips a trivial query: the readiness check.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|err| self.err(err, "ping"))
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
        StoreError::from_sqlx(self.backend, err, what)
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

    pub fn scans(&self) -> crate::repo::Scans<'a> {
        crate::repo::Scans {
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

fn prepare_sqlite_dir(url: &str) -> Result<()> {
    if let Some(parent) = sqlite_path(url).and_then(|path| Path::new(path).parent()) {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|err| StoreError::Unavailable {
                backend: Backend::Sqlite,
                reason: format!("cannot create folder {}: {err}", parent.display()),
            })?;
        }
    }
    Ok(())
}

/// SQLite refuses to create a missing file unless asked; Stella always wants it created.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || sqlite_path(url).is_none() {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
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
    fn sqlite_urls_get_create_mode() {
        assert_eq!(
            sqlite_url_with_create("sqlite://d/s.db"),
            "sqlite://d/s.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_with_create("sqlite://d/s.db?mode=ro"),
            "sqlite://d/s.db?mode=ro"
        );
        assert_eq!(sqlite_url_with_create("sqlite::memory:"), "sqlite::memory:");
    }
}
