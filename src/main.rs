//! `stella`: the command line. Parses arguments, loads settings, and runs one command;
//! every failure ends as one `error:` line on stderr and a non-zero exit code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use stella::{Application, StartupError};
use stella_config::Loaded;
use stella_store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "stella",
    version,
    about = "Multi-tenant job orchestration for container-security pipelines"
)]
struct Cli {
    /// TOML settings file (default: $STELLA_CONFIG, else built-in defaults only).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process: API, workers and scheduler.
    Serve,
    /// Run only the actors (no API): take work from the shared mailbox.
    Worker {
        /// Roles to run, comma-separated (default: all).
        #[arg(long, value_delimiter = ',', value_name = "ROLE,...")]
        roles: Vec<String>,
    },
    /// Benchmarks that measure a baseline in the same run and report the ratio.
    Bench {
        #[command(subcommand)]
        action: BenchAction,
    },
    /// Diagnostics that exercise the runtime end to end.
    Diag {
        #[command(subcommand)]
        action: DiagAction,
    },
    /// Apply the database migrations, then exit.
    Migrate,
    /// Inspect the effective settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum BenchAction {
    /// Send → runtime → no-op handler → ack, against the backend's raw ceiling.
    Mailbox {
        #[arg(long, value_enum)]
        backend: BenchBackendArg,
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
        #[arg(long, default_value_t = 10)]
        tenants: u32,
        /// Print the report as JSON (default: a table).
        #[arg(long)]
        json: bool,
    },
    /// Single-step durable noop jobs on the configured store, against its raw commit
    /// rate.
    Jobs {
        #[arg(long, default_value_t = 20_000)]
        jobs: u64,
        #[arg(long, default_value_t = 10)]
        tenants: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BenchBackendArg {
    Valkey,
    Embedded,
}

#[derive(Debug, Subcommand)]
enum DiagAction {
    /// Submit noop jobs through the normal path, wait for them, print a JSON report
    /// (`submitted`, `completed`, `effects`, `executions`, `dead_lettered`, `seconds`).
    Noop {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 10)]
        tenants: u32,
        /// Each job sleeps this long.
        #[arg(long, default_value_t = 0)]
        sleep_ms: u64,
        /// Each job fails its first K attempts (retryable).
        #[arg(long, default_value_t = 0)]
        fail_first: u32,
        /// Each job panics on attempt K.
        #[arg(long, default_value_t = 0)]
        panic_on: u32,
        /// Each job panics on every attempt.
        #[arg(long)]
        panic_always: bool,
        /// Attempts per job before it fails.
        #[arg(long, default_value_t = 5)]
        max_attempts: u32,
        /// Give up waiting after this long (exit code 1).
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// Also run workers in this process (otherwise `stella serve`/`stella worker`
        /// processes do the work).
        #[arg(long)]
        run_worker: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print every setting with its value (secrets redacted) and where it came from.
    Show {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let loaded = match stella_config::load(cli.config.as_deref(), &env) {
        Ok(loaded) => loaded,
        Err(err) => return fail(&err.to_string()),
    };
    if let Err(message) = init_logging(&loaded, &env) {
        return fail(&message);
    }
    // Handler panics are caught and retried by the runtime; log them as one line
    // instead of the default hook's stderr dump.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
    let result = match cli.command {
        Command::Config {
            action: ConfigAction::Show { output },
        } => {
            show_config(&loaded, output);
            Ok(())
        }
        Command::Migrate => actix_web::rt::System::new().block_on(migrate(&loaded)),
        Command::Serve => actix_web::rt::System::new().block_on(serve(&loaded)),
        Command::Worker { roles } => actix_web::rt::System::new().block_on(worker(&loaded, &roles)),
        Command::Bench {
            action:
                BenchAction::Mailbox {
                    backend,
                    messages,
                    tenants,
                    json,
                },
        } => actix_web::rt::System::new().block_on(bench_mailbox(
            &loaded,
            match backend {
                BenchBackendArg::Valkey => stella::bench::BenchBackend::Valkey,
                BenchBackendArg::Embedded => stella::bench::BenchBackend::Embedded,
            },
            messages,
            tenants,
            json,
        )),
        Command::Bench {
            action:
                BenchAction::Jobs {
                    jobs,
                    tenants,
                    json,
                },
        } => actix_web::rt::System::new().block_on(bench_jobs(&loaded, jobs, tenants, json)),
        Command::Diag {
            action:
                DiagAction::Noop {
                    count,
                    tenants,
                    sleep_ms,
                    fail_first,
                    panic_on,
                    panic_always,
                    max_attempts,
                    timeout_secs,
                    run_worker,
                },
        } => {
            let run = stella::diag::NoopRun {
                count,
                tenants,
                params: stella_actors::noop::NoopParams {
                    sleep_ms,
                    fail_first,
                    panic_on_attempt: panic_on,
                    panic_always,
                },
                max_attempts,
                timeout: std::time::Duration::from_secs(timeout_secs),
                run_worker,
            };
            actix_web::rt::System::new().block_on(diag_noop(&loaded, &run))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {}", message.replace('\n', " "));
    ExitCode::FAILURE
}

/// Appends which setting to check, and where its value came from, to a startup error.
fn explain(loaded: &Loaded, err: StartupError) -> String {
    format!(
        "{} (check `{}`, set by {})",
        err.message,
        err.key,
        loaded.source_of(err.key)
    )
}

fn init_logging(loaded: &Loaded, env: &BTreeMap<String, String>) -> Result<(), String> {
    let settings = &loaded.settings;
    // RUST_LOG, when set, wins: the usual escape hatch while debugging.
    let directive = env.get("RUST_LOG").unwrap_or(&settings.log);
    let filter = tracing_subscriber::EnvFilter::try_new(directive).map_err(|err| {
        format!(
            "invalid value for `log` from {}: {err}",
            loaded.source_of("log")
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if settings.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

fn show_config(loaded: &Loaded, output: Output) {
    let rows = loaded.show();
    match output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&rows).unwrap_or_default();
            println!("{json}");
        }
        Output::Table => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
            for row in rows {
                let value = row.value.as_deref().unwrap_or("(unset)");
                println!("{:width$} = {value}    # {}", row.key, row.source);
            }
        }
    }
}

async fn migrate(loaded: &Loaded) -> Result<(), String> {
    let settings = &loaded.settings;
    let startup = |err| {
        explain(
            loaded,
            StartupError {
                key: "database.url",
                message: format!("{err}"),
            },
        )
    };
    if let stella_config::DatabaseBackend::Sqlite { .. } = settings.database_backend() {
        std::fs::create_dir_all(&settings.data_dir).map_err(|err| {
            format!(
                "cannot create data dir {}: {err}",
                settings.data_dir.display()
            )
        })?;
    }
    let store = Store::connect(&settings.database_backend(), &settings.database)
        .await
        .map_err(startup)?;
    store.migrate().await.map_err(startup)?;
    let version = store.schema_version().await.map_err(startup)?;
    println!(
        "database ({}) is at schema version {version}",
        store.backend()
    );
    store.close().await;
    Ok(())
}

async fn worker(loaded: &Loaded, roles: &[String]) -> Result<(), String> {
    let roles = if roles.is_empty() {
        stella::all_roles()
    } else {
        roles
            .iter()
            .map(|r| stella_store::mailbox::Role::parse(r).map_err(|err| format!("--roles: {err}")))
            .collect::<Result<Vec<_>, _>>()?
    };
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    let registry = prometheus::Registry::new();
    let runtime = services
        .start_runtime(&roles, &registry)
        .await
        .map_err(|err| explain(loaded, err))?;
    tracing::info!("stella worker is running");
    stella::shutdown_signal().await;
    tracing::info!("shutdown signal received; stopping");
    runtime
        .shutdown(std::time::Duration::from_secs(
            loaded.settings.runtime.shutdown_timeout_secs,
        ))
        .await;
    services.store.close().await;
    tracing::info!("stella worker stopped");
    Ok(())
}

async fn bench_mailbox(
    loaded: &Loaded,
    backend: stella::bench::BenchBackend,
    messages: u64,
    tenants: u32,
    json: bool,
) -> Result<(), String> {
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    let report = stella::bench::mailbox(&services, backend, messages, tenants).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|err| err.to_string())?
        );
    } else {
        println!(
            "{} messages on {} over {} tenants: {:.0} msgs/s through the runtime, {:.0} msgs/s raw ceiling, ratio {:.3}",
            report.messages,
            report.backend,
            report.tenants,
            report.msgs_per_sec,
            report.baseline_msgs_per_sec,
            report.ratio
        );
    }
    Ok(())
}

async fn bench_jobs(loaded: &Loaded, jobs: u64, tenants: u32, json: bool) -> Result<(), String> {
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    let report = stella::bench::jobs(&services, jobs, tenants).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|err| err.to_string())?
        );
    } else {
        println!(
            "{} jobs on {} over {} tenants: {:.0} jobs/s, raw commits {:.0}/s, ratio {:.3}",
            report.jobs,
            report.store,
            report.tenants,
            report.jobs_per_sec,
            report.baseline_commits_per_sec,
            report.ratio
        );
    }
    Ok(())
}

async fn diag_noop(loaded: &Loaded, run: &stella::diag::NoopRun) -> Result<(), String> {
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    let report = stella::diag::noop(&services, run).await?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|err| err.to_string())?
    );
    if report.timed_out {
        return Err(format!(
            "timed out after {}s with {} of {} jobs finished",
            run.timeout.as_secs(),
            report.completed + report.dead_lettered,
            report.submitted
        ));
    }
    Ok(())
}

async fn serve(loaded: &Loaded) -> Result<(), String> {
    let app = Application::build(loaded.settings.clone())
        .await
        .map_err(|err| explain(loaded, err))?;
    tracing::info!(addr = %app.addr(), "stella is serving");
    app.run_until_stopped()
        .await
        .map_err(|err| format!("server failed: {err}"))?;
    tracing::info!("stella stopped");
    Ok(())
}
