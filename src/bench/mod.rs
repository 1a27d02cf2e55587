//! `stella bench`: benchmarks that measure a baseline in the same run and report the
//! ratio (absolute times on shared machines drift from run to run; the ratio does not).
//! Each prints one line, or its report as JSON with `--output json`.
//!
//! Layout:
//! - `mailbox`: `bench mailbox`, the runtime against the mailbox backend's raw ceiling,
//!   and `bench baseline`, the raw ceilings alone (for `ops/bench/peers.sh`);
//! - `jobs`: `bench jobs`, durable noop jobs against the store's raw commit rate;
//! - `matching`: `bench match`, the package index against a linear scan;
//! - `scan`: `bench scan`, a scan end to end against the same scan in-process;
//! - `schedule`: `bench scheduler`, firing and drift against inserting the jobs directly;
//! - `export`: `bench export`, export runs of a large scan against serde alone and raw
//!   zstd over the same bytes;
//! - `notify`: `bench notify`, webhook deliveries against a raw POST loop through the same
//!   client, and a throttled burst over many tenants counted at the receiver;
//! - `shadow`: `bench shadow`, a pack's shadow evaluation over many tenants' latest scans
//!   against the same evaluations with the domain crate alone, and a large wave's gate;
//! - `server`: the whole Stella the end-to-end benchmarks drive over HTTP;
//! - this file: the command line of each and how its report reads.

// Every write goes through `outln!`/`errln!`: `println!` panics on a closed pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod export;
pub mod jobs;
pub mod mailbox;
pub mod matching;
pub mod notify;
pub mod scan;
pub mod schedule;
mod server;
pub mod shadow;

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;
use stella_config::Loaded;

use crate::cli::args::{percent, MAX_COUNT, MAX_JITTER_SECS, MAX_RUNS, MAX_TENANTS};
use crate::cli::connect::{block_on, with_services};
use crate::cli::output::{errln, outln, Format};
use mailbox::BenchBackend;

/// A short random id that keeps one run's keys and tenants apart from another's.
fn run_id() -> String {
    use rand::Rng;
    format!("{:08x}", rand::rng().random::<u32>())
}

/// `x` to three decimals.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// The raw ceilings alone, for comparing other systems with: the Valkey loop
    /// (pipelined `XADD`, `XREADGROUP` + `XACK` at the runtime's batch size) when Valkey
    /// is configured, and the store's single-row commits at the pool's parallelism.
    Baseline {
        /// Messages through the raw Valkey loop, and commits.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        messages: u64,
    },
    /// Send → runtime → no-op handler → ack, against the backend's raw ceiling.
    Mailbox {
        /// The mailbox to measure.
        #[arg(long, value_enum)]
        backend: BenchBackend,
        /// Messages to send.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        messages: u64,
        /// Tenants the messages are spread over.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        tenants: u32,
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
        /// Evaluations of the whole scan the percentiles are taken over.
        #[arg(long, default_value_t = 50, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RUNS))]
        runs: usize,
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
        /// Scans timed (after a warm-up), one after another.
        #[arg(long, default_value_t = 50, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RUNS))]
        runs: usize,
    },
    /// Export runs of one large scan, kind by kind, end to end; against serialising the
    /// same findings with serde alone and raw zstd -3 over the bytes each run wrote; the
    /// runs in a `stella worker` of their own, its peak RSS and CPU time per run.
    Export {
        /// The SBOM to scan (`ops/bench/big_sbom.py` writes a large one).
        #[arg(long)]
        sbom: PathBuf,
        /// OSV collections to import first; repeat for several.
        #[arg(long = "advisories")]
        advisories: Vec<PathBuf>,
        /// The export kinds to run, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "csv,sarif")]
        kinds: Vec<String>,
        /// Runs of each kind, the kinds interleaved; every run is reported.
        #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RUNS))]
        rounds: usize,
    },
    /// The scheduler: 10,000 tenants due in the same minute, and an advisory touching
    /// 1 % of their targets; against inserting the same jobs straight into the store.
    Scheduler {
        /// Tenants, each with one target and one schedule due at the same minute.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        tenants: u32,
        /// The schedules' jitter window, in seconds.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(0..=MAX_JITTER_SECS))]
        jitter: u32,
        /// Share of the targets the advisory touches, in percent.
        #[arg(long, default_value_t = 1.0, value_parser = percent)]
        impacted_percent: f64,
    },
    /// A policy pack's shadow evaluation as a rollout's wave runs it, over tenants ×
    /// targets latest scans of real SBOMs, against the same evaluations in-process with
    /// the domain crate alone (rounds interleaved); then a wave of `--gate-tenants`
    /// tenants and its gate's judgment timed alone.
    Shadow {
        /// The SBOMs (CycloneDX or SPDX JSON) the targets' scans are of; repeat.
        #[arg(long = "sbom", required = true)]
        sboms: Vec<PathBuf>,
        /// OSV collections to import first; repeat for several.
        #[arg(long = "advisories")]
        advisories: Vec<PathBuf>,
        /// Tenants, each with `--targets` targets.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        tenants: u32,
        /// Targets per tenant, their scans cycling through the SBOMs.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000))]
        targets: u32,
        /// Rounds; each is one rollout and one in-process pass.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
        /// Tenants of the gate timing's wave; 0 skips it.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=MAX_TENANTS))]
        gate_tenants: u32,
    },
    /// Single-step durable noop jobs on the configured store, against its raw commit
    /// rate, and against the same jobs writing their effect in a statement of its own.
    Jobs {
        /// Jobs to run.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        jobs: u64,
        /// Tenants the jobs are spread over.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        tenants: u32,
    },
    /// Webhook deliveries to a receiver in this process (event appended → dispatch →
    /// notify job → POST) against a raw POST loop through the same client, concurrency
    /// and body size, rounds interleaved; then a burst over many tenants with throttles
    /// on, every event counted at the receiver (alone or in a digest), none twice.
    Notify {
        /// Events (so deliveries) per round.
        #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
        events: u64,
        /// Rounds; each is one Stella run and one raw loop.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
        /// Events in the burst; 0 skips it.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=MAX_COUNT))]
        burst_events: u64,
        /// Tenants the burst is spread over, each with its own throttled channel.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=MAX_TENANTS))]
        burst_tenants: u32,
        /// Messages each burst channel lets through per window.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        burst_throttle: u32,
        /// The burst channels' throttle window, in seconds.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=86_400))]
        burst_window: u32,
    },
}

impl BenchCommand {
    /// Runs the benchmark on the loaded settings' backends and prints its report.
    /// `config` is the settings file `loaded` was read from, for the workers a benchmark
    /// starts beside itself.
    pub(crate) fn run(
        self,
        loaded: &Loaded,
        config: Option<&Path>,
        format: Format,
    ) -> anyhow::Result<()> {
        match self {
            Self::Mailbox {
                backend,
                messages,
                tenants,
            } => {
                let r = with_services(loaded, async |services| {
                    mailbox::run(services, backend, messages, tenants).await
                })?;
                print(&r, format, || {
                    format!(
                        "{} messages on {} over {} tenants: {:.0} msgs/s through the runtime, \
                         {:.0} msgs/s raw ceiling, ratio {:.3}",
                        r.messages,
                        r.backend,
                        r.tenants,
                        r.msgs_per_sec,
                        r.baseline_msgs_per_sec,
                        r.ratio
                    )
                })
            }
            Self::Match {
                sbom,
                advisories,
                runs,
            } => {
                let r = matching::run(&sbom, &advisories, runs)?;
                print(&r, format, || {
                    format!(
                        "{} components × {} advisories: {} findings; index built in {:.3} s; \
                         {:.0} components/s through the index vs {:.0}/s linear (ratio {:.1}); \
                         whole scan p50 {:.2} ms, p99 {:.2} ms over {} runs",
                        r.components,
                        r.advisories,
                        r.findings,
                        r.index_build_seconds,
                        r.matches_per_sec,
                        r.baseline_matches_per_sec,
                        r.ratio,
                        r.evaluate_p50_ms,
                        r.evaluate_p99_ms,
                        r.runs
                    )
                })
            }
            Self::Export {
                sbom,
                advisories,
                kinds,
                rounds,
            } => {
                let r = block_on(export::run(
                    loaded.settings.clone(),
                    config,
                    &sbom,
                    &advisories,
                    &kinds,
                    rounds,
                ))?;
                print(&r, format, || {
                    let mut lines = vec![format!(
                        "{} findings on {}; load {} before, {} after",
                        r.findings, r.store, r.loadavg_before, r.loadavg_after
                    )];
                    for b in &r.serde {
                        lines.push(format!(
                            "round {} serde alone: {:.0} findings/s, {:.1} MB/s vs raw zstd -3 \
                             over its output {:.1} MB/s (ratio {:.3})",
                            b.round,
                            b.findings_per_sec,
                            b.mb_per_sec,
                            b.zstd_mb_per_sec,
                            b.zstd_ratio
                        ));
                    }
                    for k in &r.kinds {
                        lines.push(format!(
                            "round {} {}: {:.2} s (worker CPU {:.2} s), {} bytes, \
                             {:.0} findings/s (serde ratio {:.3}), {:.1} MB/s vs raw zstd -3 \
                             {:.1} MB/s (ratio {:.3}), worker peak RSS {:.0} MB",
                            k.round,
                            k.kind,
                            k.seconds,
                            k.worker_cpu_seconds,
                            k.bytes,
                            k.findings_per_sec,
                            k.serde_ratio,
                            k.mb_per_sec,
                            k.zstd_mb_per_sec,
                            k.zstd_ratio,
                            k.worker_peak_rss_mb
                        ));
                    }
                    lines.join("\n")
                })
            }
            Self::Scan {
                sbom,
                advisories,
                runs,
            } => {
                let r = block_on(scan::run(loaded.settings.clone(), &sbom, &advisories, runs))?;
                print(&r, format, || {
                    format!(
                        "{} ({} components, {} findings) on {}: submit → sealed verdict \
                         p50 {:.1} ms, p99 {:.1} ms over {} runs; the scan alone in-process \
                         p50 {:.1} ms, p99 {:.1} ms (ratio {:.2})",
                        r.sbom,
                        r.components,
                        r.findings,
                        r.store,
                        r.p50_ms,
                        r.p99_ms,
                        r.runs,
                        r.baseline_p50_ms,
                        r.baseline_p99_ms,
                        r.ratio
                    )
                })
            }
            Self::Scheduler {
                tenants,
                jitter,
                impacted_percent,
            } => {
                let r = with_services(loaded, async |services| {
                    errln!("setting up {tenants} tenants (targets and schedules)...");
                    schedule::run(services, tenants, jitter, impacted_percent).await
                })?;
                print(&r, format, || {
                    format!(
                        "{} on {}: {} runs fired, {} queued in {:.3} s after the {} s window \
                         (baseline {:.3} s, ratio {:.2}); drift: {} impacted targets, {} runs \
                         queued {:.3} s after a {:.3} s import (baseline {:.3} s, ratio {:.2})",
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
                    )
                })
            }
            Self::Notify {
                events,
                rounds,
                burst_events,
                burst_tenants,
                burst_throttle,
                burst_window,
            } => {
                let shape = notify::Burst {
                    events: burst_events,
                    tenants: burst_tenants
                        .min(u32::try_from(burst_events).unwrap_or(u32::MAX))
                        .max(1),
                    throttle_max: burst_throttle,
                    throttle_seconds: burst_window,
                };
                let r = block_on(notify::run(loaded.settings.clone(), events, rounds, shape))?;
                print(&r, format, || {
                    let mut lines = vec![format!(
                        "{} webhook deliveries per round on {} ({} bytes each), raw loop at \
                         concurrency {} (one tenant: {} jobs in flight)",
                        r.events, r.store, r.body_bytes, r.concurrency, r.tenant_concurrency
                    )];
                    for x in &r.rounds {
                        lines.push(format!(
                            "round {}: Stella {:.0}/s ({:.3} s), raw {:.0}/s ({:.3} s), \
                             ratio {:.3}",
                            x.round,
                            x.stella_per_sec,
                            x.stella_seconds,
                            x.raw_per_sec,
                            x.raw_seconds,
                            x.ratio
                        ));
                    }
                    lines.push(format!("median ratio {:.3}", r.median_ratio));
                    if let Some(b) = &r.burst {
                        lines.push(format!(
                            "burst: {} events over {} tenants (throttle {} per {} s): {} \
                             accounted for in {:.2} s ({} alone, {} in {} digests), {} \
                             duplicates, {} requests",
                            b.events,
                            b.tenants,
                            b.throttle_max,
                            b.throttle_seconds,
                            b.accounted,
                            b.seconds,
                            b.alone,
                            b.digested,
                            b.digests,
                            b.duplicates,
                            b.requests
                        ));
                    }
                    lines.join("\n")
                })
            }
            Self::Shadow {
                sboms,
                advisories,
                tenants,
                targets,
                rounds,
                gate_tenants,
            } => {
                let r = block_on(shadow::run(
                    loaded.settings.clone(),
                    &sboms,
                    &advisories,
                    tenants,
                    targets,
                    rounds,
                    gate_tenants,
                ))?;
                print(&r, format, || {
                    let mut lines = vec![format!(
                        "{} latest scans ({} tenants × {} targets of {} SBOMs, {} findings) \
                         on {}; setup {:.1} s",
                        r.scans,
                        r.tenants,
                        r.targets_per_tenant,
                        r.sboms.len(),
                        r.findings,
                        r.store,
                        r.setup_seconds
                    )];
                    for x in &r.rounds {
                        lines.push(format!(
                            "round {}: Stella {:.2} s ({:.0} scans/s), the domain alone {:.2} s \
                             ({:.0} scans/s), ratio {:.3}; {} newly blocked",
                            x.round,
                            x.stella_seconds,
                            x.stella_scans_per_sec,
                            x.baseline_seconds,
                            x.baseline_scans_per_sec,
                            x.ratio,
                            x.summary.newly_blocked_scans
                        ));
                    }
                    lines.push(format!("median ratio {:.3}", r.median_ratio));
                    if let Some(g) = &r.gate {
                        let judge: Vec<String> = g
                            .judge_seconds
                            .iter()
                            .map(|s| format!("{:.3}", s))
                            .collect();
                        lines.push(format!(
                            "gate over {} tenants: shadowed in {:.2} s; judgment {} s",
                            g.tenants,
                            g.shadow_seconds,
                            judge.join(", ")
                        ));
                    }
                    lines.join("\n")
                })
            }
            Self::Baseline { messages } => {
                let r = with_services(loaded, async |services| {
                    mailbox::baseline(services, messages).await
                })?;
                print(&r, format, || {
                    let valkey = r.raw_valkey_msgs_per_sec.map_or_else(
                        || "no Valkey configured".to_owned(),
                        |rate| format!("raw Valkey loop {rate:.0} msgs/s"),
                    );
                    format!(
                        "{valkey}; raw commits on {} {:.0}/s",
                        r.store, r.raw_commits_per_sec
                    )
                })
            }
            Self::Jobs { jobs, tenants } => {
                let r = with_services(loaded, async |services| {
                    jobs::run(services, jobs, tenants).await
                })?;
                print(&r, format, || {
                    format!(
                        "{} jobs on {} over {} tenants: {:.0} jobs/s, raw commits {:.0}/s, \
                         ratio {:.3}; effect in its own statement {:.0} jobs/s (staged \
                         {:.3}x)",
                        r.jobs,
                        r.store,
                        r.tenants,
                        r.jobs_per_sec,
                        r.baseline_commits_per_sec,
                        r.ratio,
                        r.separate_effect_jobs_per_sec,
                        r.staged_over_separate
                    )
                })
            }
        }
    }
}

/// Prints a report: as JSON with `--output json`, else the one line `summary` makes.
fn print(
    report: &impl Serialize,
    format: Format,
    summary: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match format {
        Format::Json => outln!("{}", serde_json::to_string(report)?),
        Format::Table => outln!("{}", summary()),
    }
    Ok(())
}
