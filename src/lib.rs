//! The `stella` binary's library half: the composition root.
//!
//! [`Application::build`] turns [`Settings`] into running parts: it connects the store
//! (and migrates it), the object store and the mailbox, makes sure an administrator token
//! exists, starts the actor runtime and binds the HTTP server. Tests build an
//! `Application` on port 0 and read [`Application::addr`]; `main.rs` only hands the
//! process to [`cli::main`].
//!
//! Layout:
//! - [`Application`]: build, address, run until stopped;
//! - [`Services`]: the connected store, mailbox and object store, shared by every command;
//! - `bootstrap`: the first administrator token;
//! - [`cli`]: the command line (`cli/`: one file per client resource, server commands);
//! - `bench`: `stella bench ...`, one file per benchmark;
//! - `diag`: `stella diag noop`;
//! - [`StartupError`]: a failed start, naming the setting to look at.

pub mod bench;
mod bootstrap;
pub mod cli;
pub mod diag;
pub mod signing;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer};
use stella_actors::scan::{Intake, ScanDeps};
use stella_actors::KindDeps;
use stella_api::{Context, Metrics, Parts};
use stella_config::{MailboxBackend, ObjectBackend, Settings};
use stella_store::mailbox::{
    ConsumerName, EmbeddedMailbox, Mailbox, MailboxConfig, Role, ValkeyMailbox,
};
use stella_store::object::{FolderStore, ObjectStore, Objects, S3Store};
use stella_store::{Store, Valkey};
use stella_supervisor::{Registry, Runtime, RuntimeConfig, RuntimeMetrics};

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
    pub fn new(key: &'static str, err: impl std::fmt::Display) -> Self {
        Self {
            key,
            message: err.to_string(),
        }
    }
}

/// The connected backends every command works with.
#[derive(Debug, Clone)]
pub struct Services {
    pub settings: Settings,
    pub store: Store,
    pub mailbox: Arc<dyn Mailbox>,
    pub objects: Objects,
    /// Signs attestations.
    pub signing_key: Arc<stella_domain::dsse::SigningKey>,
    /// Every job kind this process runs.
    pub registry: Registry,
    /// What the scan kind's steps and its intake share (the object store, the key, the
    /// analysis and advisory index caches).
    pub scan: ScanDeps,
    /// The exporter's metrics, registered with a runtime's registry when it starts.
    pub export_metrics: stella_actors::export::ExportMetrics,
    /// The operator's named export destinations (`[export.destinations]`).
    pub export_destinations: stella_actors::export::Destinations,
    /// The notifier's wire, secrets and metrics.
    pub notify: stella_actors::notify::NotifyDeps,
    /// Shadow evaluations' metrics (rollout jobs and `GET /policy/diff`).
    pub shadow_metrics: stella_actors::rollout::ShadowMetrics,
}

impl Services {
    /// Connects the store (migrating it), the mailbox and the object store.
    pub async fn connect(settings: &Settings) -> Result<Self, StartupError> {
        use std::os::unix::fs::DirBuilderExt;
        // Private: it holds the database, tenants' documents and the admin token.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&settings.data_dir)
            .map_err(|err| {
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
        let mailbox = connect_mailbox(settings, &store).await?;
        let objects = connect_objects(settings).await?;
        let signing_key = Arc::new(signing::load_or_create(settings)?);
        let scan = ScanDeps::new(objects.clone(), signing_key.clone());
        let export_metrics = stella_actors::export::ExportMetrics::new();
        let outbound = stella_actors::outbound::Outbound::new(&settings.outbound);
        let notify = stella_actors::notify::NotifyDeps::from_settings(settings, outbound.clone())
            .map_err(|err| StartupError::new("notify.secrets_key_file", err))?;
        let export_destinations = stella_actors::export::Destinations::from_settings(settings)
            .map_err(|(key, err)| {
                StartupError::new("export.destinations", format!("{key}: {err}"))
            })?;
        let shadow_metrics = stella_actors::rollout::ShadowMetrics::new();
        let registry = stella_actors::kinds(&KindDeps {
            scan: scan.clone(),
            outbound,
            export_metrics: export_metrics.clone(),
            export_destinations: export_destinations.clone(),
            notify: notify.clone(),
            shadow_metrics: shadow_metrics.clone(),
        });
        Ok(Self {
            settings: settings.clone(),
            store,
            mailbox,
            objects,
            signing_key,
            registry,
            scan,
            export_metrics,
            export_destinations,
            notify,
            shadow_metrics,
        })
    }

    /// Scan intake on these services (what `POST /scans` uses).
    pub fn intake(&self) -> Intake {
        Intake::new(
            self.store.clone(),
            self.scan.clone(),
            self.registry.clone(),
            usize::try_from(self.settings.api.max_sbom_components).unwrap_or(usize::MAX),
        )
    }

    /// Starts the actor runtime for `roles` on these services.
    pub async fn start_runtime(
        &self,
        roles: &[Role],
        registry: &prometheus::Registry,
    ) -> Result<Runtime, StartupError> {
        let metrics = RuntimeMetrics::new(registry).map_err(|err| StartupError::new("log", err))?;
        self.export_metrics
            .register(registry)
            .map_err(|err| StartupError::new("log", err))?;
        self.notify
            .metrics
            .register(registry)
            .map_err(|err| StartupError::new("log", err))?;
        self.shadow_metrics
            .register(registry)
            .map_err(|err| StartupError::new("log", err))?;
        let consumer = match &self.settings.runtime.consumer_name {
            Some(name) => ConsumerName::parse(name)
                .map_err(|err| StartupError::new("runtime.consumer_name", err))?,
            None => ConsumerName::generate(),
        };
        Runtime::start(RuntimeConfig {
            store: self.store.clone(),
            mailbox: self.mailbox.clone(),
            settings: self.settings.runtime.clone(),
            roles: roles.to_vec(),
            registry: self.registry.clone(),
            metrics,
            consumer,
        })
        .await
        .map_err(|err| StartupError::new("runtime.consumer_name", err))
    }
}

/// A running scheduler loop; [`SchedulerHandle::stop`] ends it and gives up the lease.
#[derive(Debug)]
pub struct SchedulerHandle {
    stop: tokio::sync::oneshot::Sender<()>,
    task: actix_web::rt::task::JoinHandle<()>,
    pub holder: String,
}

impl SchedulerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl Services {
    /// Starts the scheduler loop on these services (see `stella_scheduler`). Several
    /// processes may run one: the leader lease decides which fires.
    pub fn start_scheduler(
        &self,
        registry: &prometheus::Registry,
    ) -> Result<SchedulerHandle, StartupError> {
        let s = &self.settings.scheduler;
        let clock: Arc<dyn stella_scheduler::Clock> = match &s.clock_origin {
            Some(origin) => Arc::new(stella_scheduler::AcceleratedClock {
                origin: chrono::DateTime::parse_from_rfc3339(origin)
                    .map_err(|err| StartupError::new("scheduler.clock_origin", err))?
                    .with_timezone(&chrono::Utc),
                speed: u32::try_from(s.clock_speed).unwrap_or(u32::MAX),
            }),
            None => Arc::new(stella_scheduler::SystemClock),
        };
        let metrics = stella_scheduler::SchedulerMetrics::new(registry)
            .map_err(|err| StartupError::new("log", err))?;
        let holder = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "stella".into()),
            std::process::id(),
            rand::random::<u32>()
        );
        let scheduler = stella_scheduler::Scheduler::new(
            self.store.clone(),
            self.registry.clone(),
            holder.clone(),
            stella_scheduler::SchedulerConfig::from_settings(&self.settings),
        )
        .with_metrics(metrics);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = actix_web::rt::spawn(async move {
            scheduler
                .run(clock, async {
                    let _ = stopped.await;
                })
                .await;
        });
        tracing::info!(%holder, "scheduler started");
        Ok(SchedulerHandle { stop, task, holder })
    }
}

/// Every role.
pub fn all_roles() -> Vec<Role> {
    stella_actors::Role::ALL
        .iter()
        .map(|role| role.mailbox())
        .collect()
}

/// Every part of a running Stella process.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    context: Context,
    admin_token: AdminToken,
    /// `None` for an API-only process (`runtime.in_serve = false`).
    runtime: Option<Runtime>,
    scheduler: Option<SchedulerHandle>,
    shutdown_timeout: Duration,
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
    /// Connects every dependency, migrates the store, ensures an admin token, starts the
    /// runtime and binds the listener. Must run inside an actix system.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let services = Services::connect(&settings).await?;
        let admin_token = bootstrap::ensure_admin_token(&services.store, &settings).await?;

        let metrics = Metrics::new().map_err(|err| StartupError::new("log", err))?;
        let runtime = if settings.runtime.in_serve {
            Some(
                services
                    .start_runtime(&all_roles(), &metrics.registry)
                    .await?,
            )
        } else {
            None
        };
        let scheduler = if settings.scheduler.enabled {
            Some(services.start_scheduler(&metrics.registry)?)
        } else {
            None
        };
        services
            .shadow_metrics
            .register(&metrics.registry)
            .map_err(|err| StartupError::new("log", err))?;
        let context = Context::new(Parts {
            store: services.store.clone(),
            objects: services.objects.clone(),
            mailbox: services.mailbox.clone(),
            metrics: Arc::new(metrics),
            registry: services.registry.clone(),
            intake: services.intake(),
            observer: runtime.as_ref().map(Runtime::observer),
            public_keys: vec![services.signing_key.public_key().clone()],
            settings: settings.api.clone(),
            job_max_attempts: settings.runtime.max_attempts,
            default_jitter_secs: u32::try_from(settings.scheduler.default_jitter_secs)
                .unwrap_or(60),
            notify: services.notify.clone(),
            export_destinations: services.export_destinations.clone(),
            shadow_metrics: services.shadow_metrics.clone(),
        });
        let routes = stella_api::configure(context.clone());
        let max_body = usize::try_from(settings.api.max_body_bytes).unwrap_or(usize::MAX);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(actix_web::web::PayloadConfig::new(max_body))
                // The access log is written by the request-id middleware.
                .wrap(actix_web::middleware::from_fn(
                    stella_api::request_id::middleware,
                ))
                .configure(routes.clone())
        })
        .disable_signals()
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
            runtime,
            scheduler,
            shutdown_timeout: Duration::from_secs(settings.runtime.shutdown_timeout_secs),
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

    /// Serves until SIGINT or SIGTERM (or [`ServerHandle::stop`]). Then, at the same
    /// time, the server lets in-flight requests finish and the runtime lets in-flight
    /// jobs finish, each within its shutdown timeout; the store is closed last.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = actix_web::rt::spawn(self.server);
        let lost = self.runtime.as_ref().map(Runtime::lost);
        let lost = async move {
            match lost {
                Some(lost) => lost.await,
                None => std::future::pending().await,
            }
        };
        let mut lost_reason = None;
        let result = tokio::select! {
            result = &mut server => result,
            () = shutdown_signal() => {
                tracing::info!("shutdown signal received; stopping");
                let (_, result) = tokio::join!(handle.stop(true), &mut server);
                result
            }
            reason = lost => {
                lost_reason = Some(reason);
                let (_, result) = tokio::join!(handle.stop(true), &mut server);
                result
            }
        };
        if let Some(scheduler) = self.scheduler {
            scheduler.stop().await;
        }
        if let Some(runtime) = self.runtime {
            // A runtime that lost its deliveries has nothing more to finish.
            let deadline = if lost_reason.is_some() {
                Duration::ZERO
            } else {
                self.shutdown_timeout
            };
            runtime.shutdown(deadline).await;
        }
        // Bounded: a wedged pool must not hold the process past its stop deadline.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.context.store.close()).await;
        if let Some(reason) = lost_reason {
            return Err(std::io::Error::other(format!(
                "the runtime stopped acting: {reason}; start stella again"
            )));
        }
        result.unwrap_or_else(|err| Err(std::io::Error::other(err)))
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn connect_mailbox(
    settings: &Settings,
    store: &Store,
) -> Result<Arc<dyn Mailbox>, StartupError> {
    let config = MailboxConfig {
        max_deliveries: settings.runtime.max_deliveries,
        lease: Duration::from_secs(settings.runtime.lease_secs),
        ..MailboxConfig::default()
    };
    Ok(match settings.mailbox_backend() {
        MailboxBackend::Embedded => Arc::new(EmbeddedMailbox::new(store.clone(), config)),
        MailboxBackend::Valkey { url, cluster } => {
            let valkey = Valkey::new(&url, settings.valkey.pool_size, cluster)
                .map_err(|err| StartupError::new("valkey.url", err))?;
            valkey
                .ping()
                .await
                .map_err(|err| StartupError::new("valkey.url", err))?;
            Arc::new(ValkeyMailbox::with_replicas(
                valkey,
                &settings.valkey.key_prefix,
                config,
                settings.valkey.wait_replicas,
            ))
        }
    })
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
