//! The `stella` binary's library half: the composition root.
//!
//! [`Application::build`] turns [`Settings`] into running parts: it connects the store
//! (and migrates it), the object store and the mailbox, makes sure an administrator token
//! exists, and binds the HTTP server. Tests build an `Application` on port 0 and read
//! [`Application::addr`]; `main.rs` only parses the command line and reports errors.
//!
//! Layout:
//! - [`Application`]: build, address, run until stopped;
//! - `bootstrap`: the first administrator token;
//! - [`StartupError`]: a failed start, naming the setting to look at.

mod bootstrap;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer};
use stella_api::{Context, MailboxProbe, Metrics};
use stella_config::{MailboxBackend, ObjectBackend, Settings};
use stella_store::object::{FolderStore, ObjectStore, Objects, S3Store};
use stella_store::{Store, Valkey};

pub use bootstrap::AdminToken;

/// A start that failed, with the setting an operator should look at.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartupError {
    /// The settings key most likely at fault (`database.url`, `s3.secret_access_key`...).
    pub key: &'static str,
    pub message: String,
}

impl StartupError {
    fn new(key: &'static str, err: impl std::fmt::Display) -> Self {
        Self {
            key,
            message: err.to_string(),
        }
    }
}

/// Every part of a running Stella process.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    context: Context,
    admin_token: AdminToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("admin_token", &self.admin_token)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects every dependency, migrates the store, ensures an admin token and binds the
    /// listener. Nothing is served until [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|err| {
            StartupError::new(
                "data_dir",
                format!(
                    "cannot create data dir {}: {err}",
                    settings.data_dir.display()
                ),
            )
        })?;

        let store = Store::connect(&settings.database_backend(), &settings.database)
            .await
            .map_err(|err| StartupError::new("database.url", err))?;
        store
            .migrate()
            .await
            .map_err(|err| StartupError::new("database.url", err))?;

        let objects = connect_objects(&settings).await?;

        let mailbox = match settings.mailbox_backend() {
            MailboxBackend::Embedded => MailboxProbe::Embedded(store.clone()),
            MailboxBackend::Valkey { url } => {
                let valkey = Valkey::new(&url, settings.valkey.pool_size)
                    .map_err(|err| StartupError::new("valkey.url", err))?;
                valkey
                    .ping()
                    .await
                    .map_err(|err| StartupError::new("valkey.url", err))?;
                MailboxProbe::Valkey(valkey)
            }
        };

        let admin_token = bootstrap::ensure_admin_token(&store, &settings).await?;

        let metrics = Metrics::new().map_err(|err| StartupError::new("log", err))?;
        let context = Context {
            store,
            objects,
            mailbox,
            metrics: Arc::new(metrics),
            started_at: Instant::now(),
        };
        let routes = stella_api::configure(context.clone());
        let max_body = usize::try_from(settings.api.max_body_bytes).unwrap_or(usize::MAX);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(actix_web::web::PayloadConfig::new(max_body))
                .wrap(
                    actix_web::middleware::Logger::new("%r %s %b %Dms").log_target("stella::http"),
                )
                .configure(routes.clone())
        })
        .shutdown_timeout(settings.api.shutdown_timeout_secs)
        .bind(settings.listen)
        .map_err(|err| {
            StartupError::new(
                "listen",
                format!("cannot listen on {}: {err}", settings.listen),
            )
        })?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| StartupError::new("listen", "the server bound no address"))?;
        let server = server.run();
        Ok(Self {
            server,
            addr,
            context,
            admin_token,
        })
    }

    /// The address the server listens on (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How the administrator token was obtained at this start.
    pub fn admin_token(&self) -> &AdminToken {
        &self.admin_token
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    /// A handle to stop the server gracefully from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT or SIGTERM (or [`ServerHandle::stop`]), lets in-flight requests
    /// finish within the shutdown timeout, then closes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        // Bounded: a wedged pool must not hold the process past its stop deadline.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.context.store.close()).await;
        result
    }
}

async fn connect_objects(settings: &Settings) -> Result<Objects, StartupError> {
    let store: Arc<dyn ObjectStore> = match settings.object_backend() {
        ObjectBackend::Folder { root } => {
            Arc::new(FolderStore::open(root).map_err(|err| StartupError::new("data_dir", err))?)
        }
        ObjectBackend::S3(target) => {
            let s3 = S3Store::new(&target);
            s3.ensure_bucket().await.map_err(|err| {
                let key = match &err {
                    stella_store::StoreError::Backend { reason, .. }
                        if reason.contains("access denied") =>
                    {
                        "s3.secret_access_key"
                    }
                    _ => "s3.endpoint",
                };
                StartupError::new(key, err)
            })?;
            Arc::new(s3)
        }
    };
    Ok(Objects::new(store))
}
