//! The commands that run Stella itself on the configured backends: `serve`, `worker`,
//! `scheduler`, `migrate`, `mirror import`, `config show`, and the `bench` and `diag`
//! commands. Each loads the settings (defaults → file → environment) and starts logging
//! first; a start that fails names the setting to check and where its value came from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use clap::Subcommand;
use stella_config::Loaded;
use stella_store::Store;

use crate::cli::connect::{block_on, connect, explain};
use crate::cli::diag::DiagCommand;
use crate::cli::output::{outln, Format};
use crate::{Application, StartupError};

/// The commands that run Stella (`stella COMMAND`, flattened into the root).
#[derive(Debug, Subcommand)]
pub(crate) enum ServerCommand {
    /// Run every role in one process: API, workers and scheduler.
    Serve,
    /// Run only the actors (no API): take work from the shared mailbox.
    Worker {
        /// Roles to run, comma-separated (default: all).
        #[arg(long, value_delimiter = ',', value_name = "ROLE,...")]
        roles: Vec<String>,
    },
    /// Run only the scheduler (no API, no workers): cron firings, drift re-evaluation,
    /// run tracking. Several may run against one database; one leads at a time.
    Scheduler,
    /// Benchmarks that measure a baseline in the same run and report the ratio.
    Bench {
        #[command(subcommand)]
        action: crate::bench::BenchCommand,
    },
    /// Diagnostics that exercise the runtime end to end.
    Diag {
        #[command(subcommand)]
        action: DiagCommand,
    },
    /// Apply the database migrations, then exit.
    Migrate,
    /// Mirror bundles of advisories and VEX from another instance (air-gapped installs).
    Mirror {
        #[command(subcommand)]
        action: crate::cli::mirror::MirrorCommand,
    },
    /// Inspect the effective settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigAction {
    /// Print every setting with its value (secrets redacted) and where it came from.
    Show,
}

impl ServerCommand {
    /// Loads the settings from `config` and the environment, starts logging, and runs.
    pub(crate) fn run(self, config: Option<&Path>, format: Format) -> anyhow::Result<()> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let loaded = stella_config::load(config, &env)?;
        let command = match &self {
            Self::Serve => Some("serve"),
            Self::Worker { .. } => Some("worker"),
            Self::Scheduler => Some("scheduler"),
            _ => None,
        };
        // Flushes the exported spans when the command returns.
        let _telemetry = init_logging(&loaded, &env, command)?;
        // Handler panics are caught and retried by the runtime; log them as one line
        // instead of the default hook's stderr dump.
        std::panic::set_hook(Box::new(|info| {
            tracing::error!(panic = %info, "panic");
        }));
        match self {
            Self::Serve => block_on(serve(&loaded)),
            Self::Worker { roles } => block_on(worker(&loaded, &roles)),
            Self::Scheduler => block_on(scheduler(&loaded)),
            Self::Bench { action } => action.run(&loaded, config, format),
            Self::Diag { action } => action.run(&loaded),
            Self::Migrate => block_on(migrate(&loaded)),
            Self::Mirror { action } => action.run(&loaded, format),
            Self::Config {
                action: ConfigAction::Show,
            } => {
                show_config(&loaded, format);
                Ok(())
            }
        }
    }
}

fn init_logging(
    loaded: &Loaded,
    env: &BTreeMap<String, String>,
    command: Option<&str>,
) -> anyhow::Result<Option<crate::telemetry::Telemetry>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let settings = &loaded.settings;
    // RUST_LOG, when set, wins: the usual escape hatch while debugging.
    let directive = env.get("RUST_LOG").unwrap_or(&settings.log);
    // Formatted rather than chained: the filter's parse error repeats its source.
    let filter = tracing_subscriber::EnvFilter::try_new(directive).map_err(|err| {
        anyhow::anyhow!(
            "invalid value for `log` from {}: {err}",
            loaded.source_of("log")
        )
    })?;
    // One filter for the whole stack: a span the log's filter enables is logged and, with
    // `otlp_endpoint`, exported; one it disables costs nothing. (Per-layer filters would
    // let the two differ, but tracing-subscriber's per-layer filtering loses events when
    // layers are boxed: tokio-rs/tracing#2929.)
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt = if settings.log_format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    // Traces only from the long-running commands.
    let (traces, telemetry) = match (&settings.otlp_endpoint, command) {
        (Some(endpoint), Some(command)) => {
            let (layer, guard) = crate::telemetry::layer(endpoint, command)?;
            (Some(layer), Some(guard))
        }
        _ => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(traces)
        .init();
    Ok(telemetry)
}

fn show_config(loaded: &Loaded, format: Format) {
    let rows = loaded.show();
    match format {
        Format::Json => {
            let json = serde_json::to_string_pretty(&rows).unwrap_or_default();
            outln!("{json}");
        }
        Format::Table => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
            for row in rows {
                let value = row.value.as_deref().unwrap_or("(unset)");
                outln!("{:width$} = {value}    # {}", row.key, row.source);
            }
        }
    }
}

async fn migrate(loaded: &Loaded) -> anyhow::Result<()> {
    let settings = &loaded.settings;
    let startup = |err| explain(loaded, StartupError::new("database.url", err));
    if let stella_config::DatabaseBackend::Sqlite { .. } = settings.database_backend() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data dir {}", settings.data_dir.display()))?;
    }
    let store = Store::connect(&settings.database_backend(), &settings.database)
        .await
        .map_err(startup)?;
    store.migrate().await.map_err(startup)?;
    let version = store.schema_version().await.map_err(startup)?;
    outln!(
        "database ({}) is at schema version {version}",
        store.backend()
    );
    store.close().await;
    Ok(())
}

async fn serve(loaded: &Loaded) -> anyhow::Result<()> {
    let app = Application::build(loaded.settings.clone())
        .await
        .map_err(|err| explain(loaded, err))?;
    tracing::info!(addr = %app.addr(), "stella is serving");
    // The console's address, reachable from this machine even when listening on all
    // interfaces.
    let mut shown = app.addr();
    if shown.ip().is_unspecified() {
        shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    outln!("console: http://{shown}/console (sign in with an API token)");
    app.run_until_stopped().await.context("server failed")?;
    tracing::info!("stella stopped");
    Ok(())
}

/// `GET /metrics` (Prometheus text of `registry`) and `GET /healthz` on
/// `metrics_listen`, for the processes without the API: a worker, a scheduler. Returns
/// the running server's handle, or `None` when the setting is unset.
fn serve_metrics(
    loaded: &Loaded,
    registry: &prometheus::Registry,
) -> anyhow::Result<Option<actix_web::dev::ServerHandle>> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let Some(addr) = loaded.settings.metrics_listen else {
        return Ok(None);
    };
    let registry = registry.clone();
    let server = HttpServer::new(move || {
        let registry = registry.clone();
        App::new()
            .route(
                "/metrics",
                web::get().to(move || {
                    let registry = registry.clone();
                    async move { stella_api::metrics::render(&registry) }
                }),
            )
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(addr)
    .with_context(|| {
        format!(
            "cannot listen on {addr} (`metrics_listen` from {})",
            loaded.source_of("metrics_listen")
        )
    })?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    tracing::info!(addr = %bound, "metrics on http://{bound}/metrics");
    Ok(Some(handle))
}

async fn worker(loaded: &Loaded, roles: &[String]) -> anyhow::Result<()> {
    let roles = if roles.is_empty() {
        crate::all_roles()
    } else {
        roles
            .iter()
            .map(|r| stella_store::mailbox::Role::parse(r).context("--roles"))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let services = connect(loaded).await?;
    let registry = prometheus::Registry::new();
    // Bound first: a taken port fails the start, not a running worker.
    let metrics = serve_metrics(loaded, &registry)?;
    let runtime = services
        .start_runtime(&roles, &registry)
        .await
        .map_err(|err| explain(loaded, err))?;
    tracing::info!("stella worker is running");
    let lost = tokio::select! {
        () = crate::shutdown_signal() => None,
        reason = runtime.lost() => Some(reason),
    };
    let deadline = if lost.is_some() {
        // Its deliveries belong to other processes now: nothing more to finish.
        std::time::Duration::ZERO
    } else {
        tracing::info!("shutdown signal received; stopping");
        std::time::Duration::from_secs(loaded.settings.runtime.shutdown_timeout_secs)
    };
    runtime.shutdown(deadline).await;
    if let Some(metrics) = metrics {
        metrics.stop(true).await;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), services.store.close()).await;
    if let Some(reason) = lost {
        anyhow::bail!("the worker stopped acting: {reason}; start it again");
    }
    tracing::info!("stella worker stopped");
    Ok(())
}

async fn scheduler(loaded: &Loaded) -> anyhow::Result<()> {
    let services = connect(loaded).await?;
    let registry = prometheus::Registry::new();
    let metrics = serve_metrics(loaded, &registry)?;
    let handle = services
        .start_scheduler(&registry)
        .map_err(|err| explain(loaded, err))?;
    tracing::info!(holder = %handle.holder, "stella scheduler is running");
    crate::shutdown_signal().await;
    tracing::info!("shutdown signal received; stopping");
    handle.stop().await;
    if let Some(metrics) = metrics {
        metrics.stop(true).await;
    }
    services.store.close().await;
    tracing::info!("stella scheduler stopped");
    Ok(())
}
