//! `stella`: the command line. Parses arguments, loads settings, and runs one command;
//! every failure ends as one `error:` line on stderr (a JSON object with `--output
//! json`) and a non-zero exit code.

// Every write goes through `outln!`/`errln!`: `println!` panics on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use stella::client::ClientError;
use stella::{errln, out, outln, Application, StartupError};
use stella_config::Loaded;
use stella_store::Store;

// glibc's malloc keeps what a large scan freed in its per-thread arenas: after the
// largest SBOM the limits admit, `stella serve` stayed 40-210 MB above its baseline with
// glibc and within a few MB of it with mimalloc (docs/BENCHMARKS.md, "Memory", "The
// largest SBOM"). `malloc_trim` would need unsafe code, which the workspace forbids.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Every number on the command line is range-checked where it is parsed: a typo is exit
// code 2 naming the allowed range, never an overflow (or a panic) further in.
/// The longest any `--timeout-secs` waits: a day.
const MAX_WAIT_SECS: u64 = 86_400;
/// The furthest a token's expiry may be: 100 years (the server refuses beyond).
const MAX_EXPIRY_DAYS: i64 = 36_500;
const MAX_JITTER_SECS: i64 = stella_scheduler::spec::MAX_JITTER_SECS as i64;
/// Jobs, messages or tenants a benchmark or diagnostic creates.
const MAX_COUNT: u64 = 100_000_000;
const MAX_TENANTS: i64 = 1_000_000;
const MAX_RUNS: u64 = 100_000;

/// A percentage from 0 to 100.
fn percent(raw: &str) -> Result<f64, String> {
    let value: f64 = raw.parse().map_err(|err| format!("{err}"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{raw} is not in 0..=100"))
    }
}

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

    /// Server of the client commands.
    #[arg(
        long,
        global = true,
        env = "STELLA_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,

    /// API token of the client commands.
    #[arg(long, global = true, env = "STELLA_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Tenant an administrator token acts on (sent as `X-Stella-Tenant`).
    #[arg(long, global = true, env = "STELLA_TENANT")]
    tenant: Option<String>,

    /// Output format.
    #[arg(long, global = true, value_enum, env = "STELLA_OUTPUT", default_value_t = Output::Table)]
    output: Output,

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
    /// Run only the scheduler (no API, no workers): cron firings, drift re-evaluation,
    /// run tracking. Several may run against one database; one leads at a time.
    Scheduler,
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
    /// Tenants (administrator token).
    Tenants {
        #[command(subcommand)]
        action: TenantsAction,
    },
    /// API tokens (administrator token).
    Tokens {
        #[command(subcommand)]
        action: TokensAction,
    },
    /// Jobs of a tenant.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Dead letters of a tenant.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
    },
    /// Advisories (OSV), shared by every tenant.
    Advisories {
        #[command(subcommand)]
        action: AdvisoriesAction,
    },
    /// Scan an SBOM (CycloneDX or SPDX JSON): submit it, and with `--wait` print the
    /// verdict and findings; exit code 1 when the policy blocks, so CI can gate on it.
    Scan {
        /// The SBOM file.
        sbom: PathBuf,
        /// What the SBOM describes (default: its own subject or document name).
        #[arg(long)]
        name: Option<String>,
        /// Evaluation time, RFC 3339 (default: now); fix it to replay a scan exactly.
        #[arg(long)]
        evaluated_at: Option<String>,
        /// Register (or re-point) this target with the SBOM; scheduled re-scans and
        /// drift re-evaluations then cover it.
        #[arg(long)]
        target: Option<String>,
        /// Wait for the verdict.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
        timeout_secs: u64,
    },
    /// Scans of a tenant: status, findings, attestation.
    Scans {
        #[command(subcommand)]
        action: ScansAction,
    },
    /// VEX statements (OpenVEX or CycloneDX VEX).
    Vex {
        #[command(subcommand)]
        action: VexAction,
    },
    /// The tenant's policy (TOML).
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// The events stream (`scan.completed`, `advisory.delta`, `vex.imported`, `policy.updated`).
    Events {
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Targets of a tenant: named images or applications re-scans evaluate.
    Targets {
        #[command(subcommand)]
        action: TargetsAction,
    },
    /// Schedules of a tenant: cron re-scans and advisory syncs.
    Schedules {
        #[command(subcommand)]
        action: SchedulesAction,
    },
    /// Runs of a tenant's schedules and of drift re-evaluations.
    Runs {
        #[command(subcommand)]
        action: RunsAction,
    },
    /// The server's supervision tree (administrator token).
    Actors,
    /// The audit log (administrator token).
    Audit {
        /// Only this tenant's entries.
        #[arg(long = "of-tenant", value_name = "TENANT")]
        of_tenant: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Verify an attestation (a DSSE envelope from `scans/{id}/attestation`) with a public
    /// key file, or with the server's published keys.
    Verify {
        /// The envelope (JSON).
        file: PathBuf,
        /// A public key (PEM); without it, the keys from the server's `/api/v1/keys`.
        #[arg(long, value_name = "PEM")]
        key: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
struct PageArgs {
    /// Items per page (1-500).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: Option<u32>,
    /// Continue after this cursor (printed after a partial page).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow every page.
    #[arg(long)]
    all: bool,
}

impl PageArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            query.push(("cursor", cursor.clone()));
        }
        query
    }
}

#[derive(Debug, Subcommand)]
enum TenantsAction {
    /// Create a tenant.
    Create {
        /// Lowercase slug, e.g. `acme`.
        id: String,
        #[arg(long)]
        name: String,
    },
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    Get {
        id: String,
    },
    /// Change a tenant's display name.
    Rename {
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Disable a tenant: its tokens stop working, its data is kept.
    Disable {
        id: String,
    },
    Enable {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokensAction {
    /// Create a token; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. `jobs:read,jobs:write`.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// The tenant the token acts on (omit for an administrator token).
        #[arg(long = "for-tenant", value_name = "TENANT")]
        for_tenant: Option<String>,
        /// Expire after this many days.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_EXPIRY_DAYS))]
        expires_in_days: Option<u32>,
    },
    /// List a tenant's tokens, or administrator tokens.
    List {
        #[arg(long = "for-tenant", value_name = "TENANT")]
        for_tenant: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    Get {
        id: String,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobsAction {
    /// Submit a job.
    Submit {
        /// Job kind, e.g. `noop`.
        #[arg(long)]
        kind: String,
        /// Parameters as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        max_attempts: Option<u32>,
        /// Wait for the job to finish (exit code 1 unless it succeeded).
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
        timeout_secs: u64,
    },
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// A job with its steps and attempts.
    Get {
        id: String,
    },
    Cancel {
        id: String,
    },
    /// Wait until a job finishes (exit code 1 unless it succeeded).
    Wait {
        id: String,
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
        timeout_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
enum AdvisoriesAction {
    /// Import an OSV collection: a zip such as `all.zip`, a JSON file (one record or an
    /// array), a folder of JSON records, or an http(s) URL of any of those.
    Import {
        /// File, folder or URL.
        from: String,
        /// Source name the records are kept under (default: `osv:` + the file name).
        #[arg(long)]
        source: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ScansAction {
    /// The tenant's scans.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// A scan's status and verdict.
    Get { id: String },
    /// A scan's findings, with their traces in JSON output.
    Findings {
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// A scan's attestation (DSSE envelope), byte for byte, to stdout or a file.
    Attestation {
        id: String,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TargetsAction {
    /// The tenant's targets.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One target, by name or id.
    Get { target: String },
    /// Register a target (or point it at a new SBOM): from a scan, or a stored SBOM.
    Set {
        name: String,
        /// A scan of this tenant (its SBOM; it becomes the target's latest scan).
        #[arg(long, conflicts_with = "sbom", required_unless_present = "sbom")]
        scan: Option<String>,
        /// The sha256 of an SBOM this tenant stored.
        #[arg(long)]
        sbom: Option<String>,
    },
    /// Remove a target.
    Delete { target: String },
}

#[derive(Debug, Subcommand)]
enum SchedulesAction {
    /// The tenant's schedules with their next fire times.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One schedule, by name or id.
    Get { schedule: String },
    /// Create a schedule.
    Create {
        name: String,
        /// Cron expression: 5 fields (`minute hour day-of-month month day-of-week`), 6
        /// with seconds first, or @daily, @hourly...
        #[arg(long)]
        cron: String,
        /// IANA timezone the cron is read in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// `rescan` or `advisory-sync`.
        #[arg(long, default_value = "rescan")]
        kind: String,
        /// Target names (comma-separated); default: every target.
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// Source URLs for `advisory-sync` (comma-separated).
        #[arg(long, value_delimiter = ',')]
        sources: Vec<String>,
        /// Jitter window in seconds (0 disables); default: the server's.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..=MAX_JITTER_SECS))]
        jitter_seconds: Option<i64>,
        /// Missed-fire policy: `skip` or `fire-once`.
        #[arg(long)]
        missed: Option<String>,
        /// Overlap policy: `skip` or `queue`.
        #[arg(long)]
        overlap: Option<String>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Pause a schedule.
    Pause { schedule: String },
    /// Resume a paused schedule.
    Resume { schedule: String },
    /// Run a schedule now.
    Run { schedule: String },
    /// Delete a schedule (its runs stay).
    Delete { schedule: String },
}

#[derive(Debug, Subcommand)]
enum RunsAction {
    /// Runs, newest first.
    List {
        /// Only this schedule's runs, by name or id.
        #[arg(long)]
        schedule: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One run with its per-target results.
    Get { id: String },
}

#[derive(Debug, Subcommand)]
enum VexAction {
    /// Import a VEX document: for the tenant, or global with an administrator token and
    /// no tenant.
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    /// The active policy (the built-in default until one is set).
    Get,
    /// Set the policy from a TOML file (a new version unless unchanged).
    Set { file: PathBuf },
    /// Every version, newest first.
    Versions {
        #[command(flatten)]
        page: PageArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLettersAction {
    List {
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Send a dead letter again as a fresh attempt.
    Replay { role: String, id: String },
    /// Drop a dead letter for good.
    Discard { role: String, id: String },
}

#[derive(Debug, Subcommand)]
enum BenchAction {
    /// Send → runtime → no-op handler → ack, against the backend's raw ceiling.
    Mailbox {
        #[arg(long, value_enum)]
        backend: BenchBackendArg,
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        messages: u64,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        tenants: u32,
        /// Print the report as JSON (default: a table).
        #[arg(long)]
        json: bool,
    },
    /// Matching on real data: the package index against a linear scan over every
    /// advisory, index build time, and whole-scan evaluation p50 / p99.
    Match {
        /// The SBOM (CycloneDX or SPDX JSON).
        #[arg(long)]
        sbom: PathBuf,
        /// OSV collections (zip, JSON array or one record); repeat for several.
        #[arg(long = "advisories", required = true)]
        advisories: Vec<PathBuf>,
        #[arg(long, default_value_t = 50, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RUNS))]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// A warm scan end to end (HTTP submit → analyze → evaluate → seal → completed) on
    /// the configured backends (a fresh data folder), against the same scan as pure
    /// domain work in-process: p50 / p99 of both.
    Scan {
        /// The SBOM (CycloneDX or SPDX JSON).
        #[arg(long)]
        sbom: PathBuf,
        /// OSV collections to import first; repeat for several.
        #[arg(long = "advisories")]
        advisories: Vec<PathBuf>,
        #[arg(long, default_value_t = 50, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RUNS))]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Single-step durable noop jobs on the configured store, against its raw commit
    /// rate.
    /// The scheduler: 10,000 tenants due in the same minute, and an advisory touching
    /// 1 % of their targets; against inserting the same jobs straight into the store.
    Scheduler {
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        tenants: u32,
        /// The schedules' jitter window, in seconds.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(0..=MAX_JITTER_SECS))]
        jitter: u32,
        /// Share of the targets the advisory touches, in percent.
        #[arg(long, default_value_t = 1.0, value_parser = percent)]
        impacted_percent: f64,
        #[arg(long)]
        json: bool,
    },
    Jobs {
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        jobs: u64,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
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
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        count: u64,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        tenants: u32,
        /// Each job sleeps this long.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
        sleep_ms: u64,
        /// Each job fails its first K attempts (retryable).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
        fail_first: u32,
        /// Each job panics on attempt K.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
        panic_on: u32,
        /// Each job panics on every attempt.
        #[arg(long)]
        panic_always: bool,
        /// Attempts per job before it fails.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        max_attempts: u32,
        /// Give up waiting after this long (exit code 1).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS))]
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
    Show,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    if let Some(code) = run_client(&cli) {
        return code;
    }
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let loaded = match stella_config::load(cli.config.as_deref(), &env) {
        Ok(loaded) => loaded,
        Err(err) => return fail(&err.to_string(), cli.output),
    };
    if let Err(message) = init_logging(&loaded, &env) {
        return fail(&message, cli.output);
    }
    // Handler panics are caught and retried by the runtime; log them as one line
    // instead of the default hook's stderr dump.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
    let result = match cli.command {
        Command::Config {
            action: ConfigAction::Show,
        } => {
            show_config(&loaded, cli.output);
            Ok(())
        }
        Command::Tenants { .. }
        | Command::Tokens { .. }
        | Command::Jobs { .. }
        | Command::DeadLetters { .. }
        | Command::Actors
        | Command::Audit { .. }
        | Command::Verify { .. }
        | Command::Advisories { .. }
        | Command::Scan { .. }
        | Command::Scans { .. }
        | Command::Vex { .. }
        | Command::Policy { .. }
        | Command::Events { .. }
        | Command::Targets { .. }
        | Command::Schedules { .. }
        | Command::Runs { .. }
        | Command::Completions { .. } => Ok(()),
        Command::Migrate => actix_web::rt::System::new().block_on(migrate(&loaded)),
        Command::Serve => actix_web::rt::System::new().block_on(serve(&loaded)),
        Command::Worker { roles } => actix_web::rt::System::new().block_on(worker(&loaded, &roles)),
        Command::Scheduler => actix_web::rt::System::new().block_on(scheduler(&loaded)),
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
                BenchBackendArg::Valkey => stella::bench::mailbox::BenchBackend::Valkey,
                BenchBackendArg::Embedded => stella::bench::mailbox::BenchBackend::Embedded,
            },
            messages,
            tenants,
            json,
        )),
        Command::Bench {
            action:
                BenchAction::Match {
                    sbom,
                    advisories,
                    runs,
                    json,
                },
        } => bench_match(&sbom, &advisories, runs, json),
        Command::Bench {
            action:
                BenchAction::Scan {
                    sbom,
                    advisories,
                    runs,
                    json,
                },
        } => actix_web::rt::System::new().block_on(bench_scan(
            &loaded,
            &sbom,
            &advisories,
            runs,
            json,
        )),
        Command::Bench {
            action:
                BenchAction::Scheduler {
                    tenants,
                    jitter,
                    impacted_percent,
                    json,
                },
        } => actix_web::rt::System::new().block_on(bench_scheduler(
            &loaded,
            tenants,
            jitter,
            impacted_percent,
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
    match result.and_then(|()| stella::client::stdout_error().map_or(Ok(()), Err)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message, cli.output),
    }
}

fn fail(message: &str, output: Output) -> ExitCode {
    match output {
        Output::Json => errln!(
            "{}",
            serde_json::json!({ "error": { "message": message, "exit_code": 1 } })
        ),
        Output::Table => errln!("error: {}", message.replace('\n', " ")),
    }
    ExitCode::FAILURE
}

/// A command line clap refused: its own message and exit code 2, or with JSON output
/// asked for, one JSON object (the arguments did not parse, so `--output` is looked for
/// by hand).
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let wants_json = {
        let args: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        args.windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json")
            || args.iter().any(|a| a == "--output=json")
            || std::env::var("STELLA_OUTPUT").is_ok_and(|v| v == "json")
    };
    let informational = matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !wants_json || informational {
        // clap writes help and errors itself, and ignores a closed pipe.
        err.exit();
    }
    // The first line says what is wrong; the rest is usage help for a human.
    let rendered = err.render().to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    errln!(
        "{}",
        serde_json::json!({ "error": { "type": "usage", "message": message, "exit_code": 2 } })
    );
    ExitCode::from(2)
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
            outln!("{json}");
        }
        Output::Table => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
            for row in rows {
                let value = row.value.as_deref().unwrap_or("(unset)");
                outln!("{:width$} = {value}    # {}", row.key, row.source);
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
    outln!(
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

async fn scheduler(loaded: &Loaded) -> Result<(), String> {
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    let registry = prometheus::Registry::new();
    let handle = services
        .start_scheduler(&registry)
        .map_err(|err| explain(loaded, err))?;
    tracing::info!(holder = %handle.holder, "stella scheduler is running");
    stella::shutdown_signal().await;
    tracing::info!("shutdown signal received; stopping");
    handle.stop().await;
    services.store.close().await;
    tracing::info!("stella scheduler stopped");
    Ok(())
}

async fn bench_mailbox(
    loaded: &Loaded,
    backend: stella::bench::mailbox::BenchBackend,
    messages: u64,
    tenants: u32,
    json: bool,
) -> Result<(), String> {
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    let report = stella::bench::mailbox::run(&services, backend, messages, tenants).await?;
    if json {
        outln!(
            "{}",
            serde_json::to_string(&report).map_err(|err| err.to_string())?
        );
    } else {
        outln!(
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

fn bench_match(
    sbom: &std::path::PathBuf,
    advisories: &[std::path::PathBuf],
    runs: usize,
    json: bool,
) -> Result<(), String> {
    let report = stella::bench::matching::run(sbom, advisories, runs)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string(&report).map_err(|err| err.to_string())?
        );
    } else {
        outln!(
            "{} components × {} advisories: {} findings; index built in {:.3} s; {:.0} components/s through the index vs {:.0}/s linear (ratio {:.1}); whole scan p50 {:.2} ms, p99 {:.2} ms over {} runs",
            report.components,
            report.advisories,
            report.findings,
            report.index_build_seconds,
            report.matches_per_sec,
            report.baseline_matches_per_sec,
            report.ratio,
            report.evaluate_p50_ms,
            report.evaluate_p99_ms,
            report.runs
        );
    }
    Ok(())
}

async fn bench_scan(
    loaded: &Loaded,
    sbom: &std::path::PathBuf,
    advisories: &[std::path::PathBuf],
    runs: usize,
    json: bool,
) -> Result<(), String> {
    let report = stella::bench::scan::run(loaded.settings.clone(), sbom, advisories, runs).await?;
    if json {
        outln!(
            "{}",
            serde_json::to_string(&report).map_err(|err| err.to_string())?
        );
    } else {
        outln!(
            "{} ({} components, {} findings) on {}: submit → sealed verdict p50 {:.1} ms, p99 {:.1} ms over {} runs; the scan alone in-process p50 {:.1} ms, p99 {:.1} ms (ratio {:.2})",
            report.sbom,
            report.components,
            report.findings,
            report.store,
            report.p50_ms,
            report.p99_ms,
            report.runs,
            report.baseline_p50_ms,
            report.baseline_p99_ms,
            report.ratio
        );
    }
    Ok(())
}

async fn bench_jobs(loaded: &Loaded, jobs: u64, tenants: u32, json: bool) -> Result<(), String> {
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    let report = stella::bench::jobs::run(&services, jobs, tenants).await?;
    if json {
        outln!(
            "{}",
            serde_json::to_string(&report).map_err(|err| err.to_string())?
        );
    } else {
        outln!(
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

async fn bench_scheduler(
    loaded: &Loaded,
    tenants: u32,
    jitter: u32,
    impacted_percent: f64,
    json: bool,
) -> Result<(), String> {
    if tenants == 0 {
        return Err("--tenants must be at least 1".into());
    }
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    errln!("setting up {tenants} tenants (targets and schedules)...");
    let r = stella::bench::schedule::run(&services, tenants, jitter, impacted_percent).await?;
    if json {
        outln!(
            "{}",
            serde_json::to_string(&r).map_err(|err| err.to_string())?
        );
    } else {
        outln!(
            "{} on {}: {} runs fired, {} queued in {:.3} s after the {} s window \
             (baseline {:.3} s, ratio {:.2}); drift: {} impacted targets, {} runs queued \
             {:.3} s after a {:.3} s import (baseline {:.3} s, ratio {:.2})",
            r.tenants,
            r.store,
            r.fired_runs,
            r.queued_runs,
            r.fire_seconds,
            r.jitter_seconds,
            r.fire_baseline_seconds,
            r.fire_ratio,
            r.impacted_targets,
            r.drift_runs,
            r.drift_enqueue_seconds,
            r.drift_import_seconds,
            r.drift_baseline_seconds,
            r.drift_ratio
        );
    }
    Ok(())
}

async fn diag_noop(loaded: &Loaded, run: &stella::diag::NoopRun) -> Result<(), String> {
    let services = stella::Services::connect(&loaded.settings)
        .await
        .map_err(|err| explain(loaded, err))?;
    let report = stella::diag::noop(&services, run).await?;
    outln!(
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

const TARGET_COLUMNS: &[&str] = &["id", "name", "sbom_sha256", "last_scan_id", "updated_at"];
const SCHEDULE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "cron",
    "timezone",
    "kind",
    "enabled",
    "next_fire_at",
    "last_run_id",
];
const RUN_COLUMNS: &[&str] = &["id", "trigger", "state", "due_at", "counts", "error"];

/// Runs a client command (over HTTP); `None` for the commands that run Stella itself.
fn run_client(cli: &Cli) -> Option<ExitCode> {
    use stella::client::{Client, Format};
    let format = match cli.output {
        Output::Table => Format::Table,
        Output::Json => Format::Json,
    };
    if let Command::Completions { shell } = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        // Generated into memory first: clap_complete panics when its writer fails, as
        // stdout does once the reader of a pipe has gone.
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut command, "stella", &mut script);
        stella::client::write_out_bytes(&script);
        return Some(match stella::client::stdout_error() {
            Some(message) => fail(&message, cli.output),
            None => ExitCode::SUCCESS,
        });
    }
    let is_client = matches!(
        cli.command,
        Command::Verify { .. }
            | Command::Advisories { .. }
            | Command::Scan { .. }
            | Command::Scans { .. }
            | Command::Vex { .. }
            | Command::Policy { .. }
            | Command::Events { .. }
            | Command::Targets { .. }
            | Command::Schedules { .. }
            | Command::Runs { .. }
            | Command::Tenants { .. }
            | Command::Tokens { .. }
            | Command::Jobs { .. }
            | Command::DeadLetters { .. }
            | Command::Actors
            | Command::Audit { .. }
    );
    if !is_client {
        return None;
    }
    let result = Client::new(&cli.server, cli.token.clone(), cli.tenant.clone(), format)
        .and_then(|client| client_command(&client, &cli.command))
        .and_then(|()| match stella::client::stdout_error() {
            Some(message) => Err(ClientError::new(stella::client::ExitKind::Failure, message)),
            None => Ok(()),
        });
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            err.report(format);
            ExitCode::from(err.kind as u8)
        }
    })
}

const TENANT_COLUMNS: &[&str] = &["id", "name", "status", "created_at"];
const TOKEN_COLUMNS: &[&str] = &["id", "tenant", "name", "scopes", "expires_at", "revoked_at"];
const JOB_COLUMNS: &[&str] = &["id", "kind", "state", "step", "attempts", "last_error"];
const FINDING_COLUMNS: &[&str] = &[
    "vulnerability_id",
    "purl",
    "severity",
    "disposition",
    "aliases",
];
const POLICY_COLUMNS: &[&str] = &["version", "digest", "created_by", "created_at"];

/// A scan as a summary, then (table output, once evaluated) its findings.
fn print_scan(
    client: &stella::client::Client,
    scan: &serde_json::Value,
) -> Result<(), stella::client::ClientError> {
    if client.format == stella::client::Format::Json {
        client.print(scan, &[]);
        return Ok(());
    }
    let counts = &scan["counts"];
    let summary = &scan["sbom_summary"];
    let field = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        // A scan's name comes from the SBOM: whoever wrote it chose the characters.
        serde_json::Value::String(s) => stella::client::terminal_safe(s).into_owned(),
        other => other.to_string(),
    };
    for (label, value) in [
        ("scan", field(&scan["id"])),
        ("name", field(&scan["name"])),
        ("status", field(&scan["status"])),
        ("disposition", field(&scan["disposition"])),
        ("components", field(&counts["components"])),
        (
            "not matchable",
            format!(
                "{} without purl, {} invalid purl, {} unsupported ecosystem",
                field(&summary["no_purl"]),
                field(&summary["invalid_purl"]),
                field(&summary["unsupported_ecosystem"])
            ),
        ),
        (
            "findings",
            format!(
                "{} ({} block, {} warn, {} pass, {} with conflicts)",
                field(&counts["findings"]),
                field(&counts["block"]),
                field(&counts["warn"]),
                field(&counts["pass"]),
                field(&counts["conflicts"])
            ),
        ),
        ("inputs hash", field(&scan["inputs_hash"])),
        ("attestation", field(&scan["attestation_sha256"])),
    ] {
        outln!("{label:14} {value}");
    }
    if scan["counts"]["findings"].as_u64().unwrap_or(0) > 0 {
        if let Some(id) = scan["id"].as_str() {
            outln!();
            let findings = client.list(
                &format!("/scans/{}/findings", stella::client::segment(id)),
                vec![("limit", "500".to_owned())],
                true,
            )?;
            client.print(&findings, FINDING_COLUMNS);
        }
    }
    Ok(())
}

const DEAD_COLUMNS: &[&str] = &["id", "role", "job_id", "kind", "deliveries", "error"];

fn client_command(
    client: &stella::client::Client,
    command: &Command,
) -> Result<(), stella::client::ClientError> {
    use serde_json::json;
    use std::time::Duration;
    use stella::client::segment as seg;
    match command {
        Command::Tenants { action } => match action {
            TenantsAction::Create { id, name } => client.print(
                &client.post("/tenants", &json!({ "id": id, "name": name }))?,
                TENANT_COLUMNS,
            ),
            TenantsAction::List { page } => client.print(
                &client.list("/tenants", page.query(), page.all)?,
                TENANT_COLUMNS,
            ),
            TenantsAction::Get { id } => client.print(
                &client.get(&format!("/tenants/{}", seg(id)), &[])?,
                TENANT_COLUMNS,
            ),
            TenantsAction::Rename { id, name } => client.print(
                &client.patch(&format!("/tenants/{}", seg(id)), &json!({ "name": name }))?,
                TENANT_COLUMNS,
            ),
            TenantsAction::Disable { id } => client.print(
                &client.post_empty(&format!("/tenants/{}/disable", seg(id)))?,
                TENANT_COLUMNS,
            ),
            TenantsAction::Enable { id } => client.print(
                &client.post_empty(&format!("/tenants/{}/enable", seg(id)))?,
                TENANT_COLUMNS,
            ),
        },
        Command::Tokens { action } => match action {
            TokensAction::Create {
                name,
                scopes,
                for_tenant,
                expires_in_days,
            } => {
                // clap checks the range; checked_add keeps any day count from panicking
                // on a date past chrono's last year all the same.
                let expires_at = expires_in_days
                    .map(|days| {
                        chrono::Utc::now()
                            .checked_add_signed(chrono::Duration::days(i64::from(days)))
                            .ok_or_else(|| {
                                ClientError::new(
                                    stella::client::ExitKind::Invalid,
                                    format!("--expires-in-days {days} is out of range"),
                                )
                            })
                    })
                    .transpose()?;
                let created = client.post(
                    "/tokens",
                    &json!({ "tenant": for_tenant, "name": name, "scopes": scopes, "expires_at": expires_at }),
                )?;
                client.print(&created, &["id", "tenant", "name", "scopes", "token"]);
                if client.format == stella::client::Format::Table {
                    errln!("the token is shown once; store it now");
                }
            }
            TokensAction::List { for_tenant, page } => {
                let mut query = page.query();
                if let Some(tenant) = for_tenant {
                    query.push(("tenant", tenant.clone()));
                }
                client.print(&client.list("/tokens", query, page.all)?, TOKEN_COLUMNS);
            }
            TokensAction::Get { id } => client.print(
                &client.get(&format!("/tokens/{}", seg(id)), &[])?,
                TOKEN_COLUMNS,
            ),
            TokensAction::Revoke { id } => client.print(
                &client.delete(&format!("/tokens/{}", seg(id)))?,
                TOKEN_COLUMNS,
            ),
        },
        Command::Jobs { action } => match action {
            JobsAction::Submit {
                kind,
                params,
                idempotency_key,
                max_attempts,
                wait,
                timeout_secs,
            } => {
                let params: serde_json::Value = serde_json::from_str(params).map_err(|err| {
                    ClientError::new(
                        stella::client::ExitKind::Invalid,
                        format!("--params is not JSON: {err}"),
                    )
                })?;
                let job = client.post(
                    "/jobs",
                    &json!({ "kind": kind, "params": params, "idempotency_key": idempotency_key, "max_attempts": max_attempts }),
                )?;
                let job = match (wait, job.get("id").and_then(|id| id.as_str())) {
                    (true, Some(id)) => client.wait_job(id, Duration::from_secs(*timeout_secs))?,
                    _ => job,
                };
                client.print(&job, JOB_COLUMNS);
            }
            JobsAction::List { state, kind, page } => {
                let mut query = page.query();
                if let Some(state) = state {
                    query.push(("state", state.clone()));
                }
                if let Some(kind) = kind {
                    query.push(("kind", kind.clone()));
                }
                client.print(&client.list("/jobs", query, page.all)?, JOB_COLUMNS);
            }
            JobsAction::Get { id } => {
                let job = client.get(&format!("/jobs/{}", seg(id)), &[])?;
                client.print(&job, JOB_COLUMNS);
                if client.format == stella::client::Format::Table {
                    outln!();
                    client.print(
                        &json!({ "items": job.get("events").cloned().unwrap_or_default() }),
                        &[
                            "seq",
                            "from_state",
                            "to_state",
                            "step",
                            "attempt",
                            "error",
                            "at",
                        ],
                    );
                }
            }
            JobsAction::Cancel { id } => client.print(
                &client.post_empty(&format!("/jobs/{}/cancel", seg(id)))?,
                JOB_COLUMNS,
            ),
            JobsAction::Wait { id, timeout_secs } => client.print(
                &client.wait_job(id, Duration::from_secs(*timeout_secs))?,
                JOB_COLUMNS,
            ),
        },
        Command::DeadLetters { action } => match action {
            DeadLettersAction::List { role, page } => {
                let mut query = page.query();
                if let Some(role) = role {
                    query.push(("role", role.clone()));
                }
                client.print(
                    &client.list("/dead-letters", query, page.all)?,
                    DEAD_COLUMNS,
                );
            }
            DeadLettersAction::Replay { role, id } => client.print(
                &client.post_empty(&format!("/dead-letters/{}/{}/replay", seg(role), seg(id)))?,
                DEAD_COLUMNS,
            ),
            DeadLettersAction::Discard { role, id } => client.print(
                &client.delete(&format!("/dead-letters/{}/{}", seg(role), seg(id)))?,
                DEAD_COLUMNS,
            ),
        },
        Command::Advisories {
            action: AdvisoriesAction::Import { from, source },
        } => {
            let report = client.import_advisories(from, source.as_deref())?;
            client.print(
                &report,
                &["source", "records", "new", "changed", "unchanged"],
            );
        }
        Command::Verify { file, key } => {
            let report = client.verify(file, key.as_deref())?;
            match client.format {
                stella::client::Format::Json => client.print(&report, &[]),
                stella::client::Format::Table => {
                    // The envelope is the file's author's text, signed or not.
                    let text = |v: &serde_json::Value, default| {
                        stella::client::terminal_safe(v.as_str().unwrap_or(default)).into_owned()
                    };
                    outln!(
                        "verified: signed by key {}; subject {} {}; {} disposition {}",
                        text(&report["key_ids"][0], "?"),
                        text(&report["subject"]["name"], "?"),
                        text(&report["subject"]["digest"], "?"),
                        text(&report["predicate_type"], "?"),
                        text(&report["disposition"], "-"),
                    )
                }
            }
        }
        Command::Scan {
            sbom,
            name,
            evaluated_at,
            target,
            wait,
            timeout_secs,
        } => {
            let mut query = Vec::new();
            if let Some(target) = target {
                query.push(("target", target.clone()));
            }
            if let Some(name) = name {
                query.push(("name", name.clone()));
            }
            if let Some(at) = evaluated_at {
                query.push(("evaluated_at", at.clone()));
            }
            let wait = wait.then(|| Duration::from_secs(*timeout_secs));
            let scan = client.scan(sbom, &query, wait)?;
            if wait.is_none() {
                client.print(&scan, &["job_id", "status", "sbom_sha256"]);
                return Ok(());
            }
            print_scan(client, &scan)?;
            if scan.get("disposition").and_then(|d| d.as_str()) == Some("block") {
                return Err(ClientError::new(
                    stella::client::ExitKind::Failure,
                    format!(
                        "scan {} is blocked by the policy",
                        scan["id"].as_str().unwrap_or("?")
                    ),
                ));
            }
        }
        Command::Scans { action } => match action {
            ScansAction::List { page } => client.print(
                &client.list("/scans", page.query(), page.all)?,
                &["id", "name", "status", "disposition", "created_at"],
            ),
            ScansAction::Get { id } => {
                print_scan(client, &client.get(&format!("/scans/{}", seg(id)), &[])?)?;
            }
            ScansAction::Findings { id, page } => client.print(
                &client.list(
                    &format!("/scans/{}/findings", seg(id)),
                    page.query(),
                    page.all,
                )?,
                FINDING_COLUMNS,
            ),
            ScansAction::Attestation { id, output_file } => {
                let bytes = client.get_bytes(&format!("/scans/{}/attestation", seg(id)))?;
                match output_file {
                    Some(path) => std::fs::write(path, &bytes).map_err(|err| {
                        ClientError::new(
                            stella::client::ExitKind::Failure,
                            format!("cannot write {}: {err}", path.display()),
                        )
                    })?,
                    None => stella::client::write_out_bytes(&bytes),
                }
            }
        },
        Command::Vex {
            action: VexAction::Import { file },
        } => {
            let bytes = std::fs::read(file).map_err(|err| {
                ClientError::new(
                    stella::client::ExitKind::Invalid,
                    format!("cannot read {}: {err}", file.display()),
                )
            })?;
            client.print(
                &client.post_bytes("/vex", &[], "application/json", bytes)?,
                &["sha256", "format", "statements", "scope", "created"],
            );
        }
        Command::Policy { action } => match action {
            PolicyAction::Get => {
                let policy = client.get("/policy", &[])?;
                match client.format {
                    stella::client::Format::Json => client.print(&policy, &[]),
                    stella::client::Format::Table => {
                        errln!(
                            "# version {} ({}){}",
                            policy["version"],
                            policy["digest"].as_str().unwrap_or("?"),
                            if policy["default"] == json!(true) {
                                ", the built-in default"
                            } else {
                                ""
                            }
                        );
                        out!(
                            "{}",
                            stella::client::terminal_safe_lines(
                                policy["document"].as_str().unwrap_or("")
                            )
                        );
                    }
                }
            }
            PolicyAction::Set { file } => {
                let document = std::fs::read_to_string(file).map_err(|err| {
                    ClientError::new(
                        stella::client::ExitKind::Invalid,
                        format!("cannot read {}: {err}", file.display()),
                    )
                })?;
                client.print(
                    &client.put("/policy", &json!({ "document": document }))?,
                    POLICY_COLUMNS,
                );
            }
            PolicyAction::Versions { page } => client.print(
                &client.list("/policy/versions", page.query(), page.all)?,
                POLICY_COLUMNS,
            ),
        },
        Command::Events { kind, page } => {
            let mut query = page.query();
            if let Some(kind) = kind {
                query.push(("kind", kind.clone()));
            }
            client.print(
                &client.list("/events", query, page.all)?,
                &["seq", "kind", "tenant", "created_at", "payload"],
            );
        }
        Command::Targets { action } => match action {
            TargetsAction::List { page } => client.print(
                &client.list("/targets", page.query(), page.all)?,
                TARGET_COLUMNS,
            ),
            TargetsAction::Get { target } => client.print(
                &client.get(&format!("/targets/{}", seg(target)), &[])?,
                TARGET_COLUMNS,
            ),
            TargetsAction::Set { name, scan, sbom } => {
                let mut body = serde_json::json!({ "name": name });
                if let Some(scan) = scan {
                    body["scan_id"] = scan.clone().into();
                }
                if let Some(sbom) = sbom {
                    body["sbom_sha256"] = sbom.clone().into();
                }
                client.print(&client.post("/targets", &body)?, TARGET_COLUMNS);
            }
            TargetsAction::Delete { target } => {
                client.delete(&format!("/targets/{}", seg(target)))?;
            }
        },
        Command::Schedules { action } => match action {
            SchedulesAction::List { page } => client.print(
                &client.list("/schedules", page.query(), page.all)?,
                SCHEDULE_COLUMNS,
            ),
            SchedulesAction::Get { schedule } => client.print(
                &client.get(&format!("/schedules/{}", seg(schedule)), &[])?,
                SCHEDULE_COLUMNS,
            ),
            SchedulesAction::Create {
                name,
                cron,
                timezone,
                kind,
                targets,
                sources,
                jitter_seconds,
                missed,
                overlap,
                paused,
            } => {
                let mut body = serde_json::json!({
                    "name": name, "cron": cron, "timezone": timezone, "kind": kind,
                    "enabled": !paused,
                });
                if !targets.is_empty() {
                    body["targets"] = serde_json::json!(targets);
                }
                if !sources.is_empty() {
                    body["sources"] = serde_json::json!(sources);
                }
                if let Some(jitter) = jitter_seconds {
                    body["jitter_seconds"] = (*jitter).into();
                }
                if let Some(missed) = missed {
                    body["missed"] = missed.clone().into();
                }
                if let Some(overlap) = overlap {
                    body["overlap"] = overlap.clone().into();
                }
                client.print(&client.post("/schedules", &body)?, SCHEDULE_COLUMNS);
            }
            SchedulesAction::Pause { schedule } => client.print(
                &client.post_empty(&format!("/schedules/{}/pause", seg(schedule)))?,
                SCHEDULE_COLUMNS,
            ),
            SchedulesAction::Resume { schedule } => client.print(
                &client.post_empty(&format!("/schedules/{}/resume", seg(schedule)))?,
                SCHEDULE_COLUMNS,
            ),
            SchedulesAction::Run { schedule } => client.print(
                &client.post_empty(&format!("/schedules/{}/run", seg(schedule)))?,
                RUN_COLUMNS,
            ),
            SchedulesAction::Delete { schedule } => {
                client.delete(&format!("/schedules/{}", seg(schedule)))?;
            }
        },
        Command::Runs { action } => match action {
            RunsAction::List { schedule, page } => {
                let mut query = page.query();
                if let Some(schedule) = schedule {
                    query.push(("schedule_id", schedule.clone()));
                }
                client.print(&client.list("/runs", query, page.all)?, RUN_COLUMNS);
            }
            RunsAction::Get { id } => {
                let run = client.get(&format!("/runs/{}", seg(id)), &[])?;
                client.print(&run, RUN_COLUMNS);
                if client.format == stella::client::Format::Table {
                    if let Some(results) = run.get("results") {
                        outln!();
                        client.print(
                            &serde_json::json!({ "items": results }),
                            &["target_name", "state", "scan_id", "diff"],
                        );
                    }
                }
            }
        },
        Command::Actors => {
            let tree = client.get("/system/actors", &[])?;
            match client.format {
                stella::client::Format::Json => client.print(&tree, &[]),
                stella::client::Format::Table => stella::client::print_tree(&tree, 0),
            }
        }
        Command::Audit { of_tenant, page } => {
            let mut query = page.query();
            if let Some(tenant) = of_tenant {
                query.push(("tenant", tenant.clone()));
            }
            client.print(
                &client.list("/audit", query, page.all)?,
                &["seq", "at", "tenant", "actor", "action", "target"],
            );
        }
        _ => {}
    }
    Ok(())
}
