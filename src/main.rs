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
    /// Apply the database migrations, then exit.
    Migrate,
    /// Inspect the effective settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
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
    let result = match cli.command {
        Command::Config {
            action: ConfigAction::Show { output },
        } => {
            show_config(&loaded, output);
            Ok(())
        }
        Command::Migrate => actix_web::rt::System::new().block_on(migrate(&loaded)),
        Command::Serve => actix_web::rt::System::new().block_on(serve(&loaded)),
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
