//! `stella bench export`: export runs of a large scan, kind by kind, end to end (`POST
//! /api/v1/exports` → plan → write → seal → distribute → `completed`) on the configured
//! backends, as they run in production: an API-only `stella serve` (this process,
//! `runtime.in_serve = false`) and the work in `stella worker` processes started beside it
//! on the same data folder and services. A pipeline worker (every role but the exporter)
//! scans the SBOM and is stopped; then one `stella worker --roles exporter` runs every
//! export, so its peak RSS (`VmHWM`, reset through `/proc/<pid>/clear_refs` before each
//! run) and CPU time (`utime + stime` of `/proc/<pid>/stat`) are the export's alone.
//!
//! Baselines in the same run:
//!
//! - **serde**: the same findings, already in memory, serialised with `serde_json` alone
//!   (no store, no runtime, no format): the cost of turning records into bytes, in
//!   findings/s and MB/s, with raw zstd -3 over serde's own output beside it, so the
//!   report says whether any JSON writer could reach a fraction of zstd's speed;
//! - **zstd**: raw `zstd -3` over the bytes the run wrote (its data files, the manifest
//!   and signatures left out): what merely compressing the output costs, the issue's
//!   yardstick for bundles.
//!
//! With `--rounds N` every kind runs N times, the kinds interleaved (csv, sarif, …, csv,
//! sarif, …), each run and each round's serde baseline reported: on a shared machine one
//! figure alone says little.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{json, Value};
use stella_config::Settings;

use super::round;
use super::server::BenchServer;

/// The roles of the worker that scans (every role but the exporter).
const PIPELINE_ROLES: &str = "fetcher,analyzer,evaluator,sealer,notifier,diag";

/// How often the benchmark asks whether a run has completed.
const POLL: Duration = Duration::from_millis(10);

/// Linux reports process times in these ticks per second (`USER_HZ`, 100 on every
/// architecture Stella builds for).
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone, Serialize)]
pub struct ExportBenchReport {
    pub sbom: String,
    pub store: String,
    pub findings: u64,
    pub rounds: usize,
    /// The median over rounds of serialising the findings with serde alone, in memory.
    pub serde_findings_per_sec: f64,
    /// Each round's serde baseline.
    pub serde: Vec<SerdeBaseline>,
    /// Every run, in the order they ran.
    pub kinds: Vec<KindReport>,
    /// `/proc/loadavg` before the first run and after the last: the machine's other load.
    pub loadavg_before: String,
    pub loadavg_after: String,
}

/// Serialising the findings with `serde_json` alone, and raw zstd -3 over its output.
#[derive(Debug, Clone, Serialize)]
pub struct SerdeBaseline {
    pub round: usize,
    pub bytes: u64,
    pub findings_per_sec: f64,
    pub mb_per_sec: f64,
    /// Raw zstd -3 over serde's output.
    pub zstd_mb_per_sec: f64,
    /// `mb_per_sec` over `zstd_mb_per_sec`: the ceiling of a JSON writer against zstd.
    pub zstd_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: String,
    pub round: usize,
    /// Wall time, submission to `completed`.
    pub seconds: f64,
    /// The exporter worker's CPU time (user + system) during the run.
    pub worker_cpu_seconds: f64,
    /// The data files' bytes (manifest and signatures left out).
    pub bytes: u64,
    pub findings_per_sec: f64,
    pub mb_per_sec: f64,
    /// Bytes over the worker's CPU seconds.
    pub mb_per_cpu_sec: f64,
    /// `findings_per_sec` over the round's serde baseline.
    pub serde_ratio: f64,
    /// Raw zstd -3 over the same bytes.
    pub zstd_mb_per_sec: f64,
    /// `mb_per_sec` over zstd's.
    pub zstd_ratio: f64,
    /// The exporter worker's resident set before the run, in MB.
    pub worker_rss_before_mb: f64,
    /// The exporter worker's peak resident set during the run, in MB.
    pub worker_peak_rss_mb: f64,
}

/// The files a run writes about its data (not data themselves).
fn is_seal(name: &str) -> bool {
    matches!(
        name,
        "export.json" | "export.json.dsse" | "provenance.json" | "provenance.json.dsse"
    )
}

/// A `stella worker` started by the benchmark on its data folder.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Worker {
    /// Starts `stella [--config FILE] worker --roles ROLES` with this process's
    /// environment (so the same services), on `data_dir`.
    fn spawn(
        config: Option<&Path>,
        data_dir: &Path,
        roles: &str,
        name: &str,
    ) -> anyhow::Result<Self> {
        let log = data_dir.join(format!("{name}.log"));
        let mut command = Command::new(std::env::current_exe()?);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .args(["worker", "--roles", roles])
            .env("STELLA_DATA_DIR", data_dir)
            .env("STELLA_LOG", "warn")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting a stella worker")?;
        Ok(Self { child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error if the worker has exited, with the end of its log.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(anyhow::anyhow!(
                    "the worker exited ({status}):\n{}",
                    tail.join("\n")
                ))
            }
        }
    }

    /// A `kB` field of `/proc/<pid>/status`, in MB.
    fn status_mb(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                status.lines().find_map(|line| {
                    let kb = line.strip_prefix(field)?.trim().strip_suffix("kB")?;
                    kb.trim().parse::<f64>().ok()
                })
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Resets the worker's peak RSS to its current RSS (Linux `clear_refs` 5).
    fn reset_peak_rss(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .context("resetting the worker's peak RSS (/proc/<pid>/clear_refs)")
    }

    /// The worker's CPU time so far (every thread, user + system), in seconds.
    fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())) else {
            return 0.0;
        };
        // The command name (field 2) may hold spaces: count from the `)` that ends it.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return 0.0;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 (utime) and 15 (stime) of the whole line; `rest` starts at field 3.
        let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok());
        match (ticks(14), ticks(15)) {
            (Some(user), Some(system)) => (user + system) / TICKS_PER_SEC,
            _ => 0.0,
        }
    }

    /// Stops the worker (SIGTERM, then SIGKILL after ten seconds).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Polls `GET {path}` until its `status` is `completed`, failing if the worker exits.
async fn wait_completed(
    server: &BenchServer,
    worker: &mut Worker,
    path: &str,
) -> anyhow::Result<Value> {
    let limit = Duration::from_secs(3600);
    let started = Instant::now();
    loop {
        let value = server
            .send(server.http.get(format!("{}/{path}", server.base)))
            .await?;
        match value["status"].as_str() {
            Some("completed") => return Ok(value),
            Some("failed" | "cancelled") => return Err(anyhow::anyhow!("{path} ended: {value}")),
            _ if started.elapsed() > limit => {
                return Err(anyhow::anyhow!(
                    "{path} did not finish in {} s",
                    limit.as_secs()
                ))
            }
            _ => {
                worker.check_alive()?;
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Every finding of the scan, read through the API.
async fn read_findings(server: &BenchServer, scan_id: &str) -> anyhow::Result<Vec<Value>> {
    let mut records: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = server
            .http
            .get(format!("{}/scans/{scan_id}/findings", server.base))
            .query(&[("limit", "500")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let page = server.send(request).await?;
        if let Some(items) = page["items"].as_array() {
            records.extend(items.iter().cloned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(records),
        }
    }
}

/// The serde baseline: `records` serialised one per line, then raw zstd over the output.
fn serde_baseline(records: &[Value], round_no: usize) -> anyhow::Result<SerdeBaseline> {
    let started = Instant::now();
    let mut sink = Vec::with_capacity(records.len() * 1024);
    for record in records {
        serde_json::to_writer(&mut sink, record)?;
        sink.write_all(b"\n")?;
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let mb = sink.len() as f64 / 1e6;
    let zstd_seconds = zstd_seconds(&sink)?;
    let mb_per_sec = mb / seconds;
    let zstd_mb_per_sec = mb / zstd_seconds;
    Ok(SerdeBaseline {
        round: round_no,
        bytes: sink.len() as u64,
        findings_per_sec: round(records.len() as f64 / seconds),
        mb_per_sec: round(mb_per_sec),
        zstd_mb_per_sec: round(zstd_mb_per_sec),
        zstd_ratio: round(mb_per_sec / zstd_mb_per_sec),
    })
}

/// Seconds raw zstd -3 takes over `data` (one shot, in memory).
fn zstd_seconds(data: &[u8]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let compressed = zstd::bulk::compress(data, 3)?;
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    drop(compressed);
    Ok(seconds)
}

/// Runs the benchmark. Must run inside an actix system. `config` is the settings file
/// this process read, handed to the workers.
pub async fn run(
    mut settings: Settings,
    config: Option<&Path>,
    sbom_path: &PathBuf,
    advisory_paths: &[PathBuf],
    kinds: &[String],
    rounds: usize,
) -> anyhow::Result<ExportBenchReport> {
    let sbom = std::fs::read(sbom_path).with_context(|| format!("{}", sbom_path.display()))?;
    settings.runtime.in_serve = false;
    // No schedules here: the scheduler's lease would only contend for the database.
    settings.scheduler.enabled = false;
    let server = BenchServer::start(settings, advisory_paths, "bench export").await?;
    crate::cli::output::errln!("scanning {}...", sbom_path.display());
    let mut pipeline = Worker::spawn(config, server.data_dir(), PIPELINE_ROLES, "pipeline")?;
    let accepted = server
        .send(
            server
                .http
                .post(format!("{}/scans", server.base))
                .header("content-type", "application/json")
                .body(sbom),
        )
        .await?;
    let scan_id = accepted["job_id"].as_str().unwrap_or_default().to_owned();
    let scan = wait_completed(&server, &mut pipeline, &format!("scans/{scan_id}")).await;
    pipeline.stop();
    let scan = scan?;
    let findings = scan["counts"]["findings"].as_u64().unwrap_or(0);

    let records = read_findings(&server, &scan_id).await?;
    let mut exporter = Worker::spawn(config, server.data_dir(), "exporter", "exporter")?;
    let loadavg_before = loadavg();
    let mut serde = Vec::with_capacity(rounds);
    let mut reports = Vec::new();
    for kind in kinds {
        let profile = format!("bench-{}", kind.replace(':', "-"));
        server
            .send(
                server
                    .http
                    .post(format!("{}/export-profiles", server.base))
                    .json(&json!({
                        "name": profile, "kind": kind,
                        "selectors": {"scans": [scan_id]},
                        "options": {"include_sboms": true, "include_evidence": true},
                    })),
            )
            .await
            .with_context(|| format!("profile of kind {kind}"))?;
    }
    for round_no in 1..=rounds {
        let baseline = serde_baseline(&records, round_no)?;
        for kind in kinds {
            let report = run_kind(&server, &mut exporter, kind, round_no, findings, &baseline)
                .await
                .with_context(|| format!("{kind}, round {round_no}"))?;
            crate::cli::output::errln!(
                "round {round_no} {kind}: {:.2} s, worker {:.2} s CPU, peak {:.0} MB",
                report.seconds,
                report.worker_cpu_seconds,
                report.worker_peak_rss_mb
            );
            reports.push(report);
        }
        serde.push(baseline);
    }
    let loadavg_after = loadavg();
    exporter.stop();
    drop(records);
    let store = server.store.clone();
    server.stop().await;
    let mut per_sec: Vec<f64> = serde.iter().map(|b| b.findings_per_sec).collect();
    per_sec.sort_by(f64::total_cmp);
    Ok(ExportBenchReport {
        sbom: sbom_path.display().to_string(),
        store,
        findings,
        rounds,
        serde_findings_per_sec: per_sec.get(per_sec.len() / 2).copied().unwrap_or(0.0),
        serde,
        kinds: reports,
        loadavg_before,
        loadavg_after,
    })
}

/// One export run of `kind` through the exporter worker, measured.
async fn run_kind(
    server: &BenchServer,
    worker: &mut Worker,
    kind: &str,
    round_no: usize,
    findings: u64,
    baseline: &SerdeBaseline,
) -> anyhow::Result<KindReport> {
    let profile = format!("bench-{}", kind.replace(':', "-"));
    worker.check_alive()?;
    let rss_before = worker.status_mb("VmRSS:");
    worker.reset_peak_rss()?;
    let cpu_before = worker.cpu_seconds();
    let started = Instant::now();
    let accepted = server
        .send(
            server
                .http
                .post(format!("{}/exports", server.base))
                .json(&json!({"profile": profile})),
        )
        .await?;
    let id = accepted["export_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let export = wait_completed(server, worker, &format!("exports/{id}")).await?;
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let cpu = (worker.cpu_seconds() - cpu_before).max(0.0);
    let peak = worker.status_mb("VmHWM:");
    // The data files' bytes, downloaded, for zstd.
    let mut data = Vec::new();
    for file in export["files"].as_array().into_iter().flatten() {
        let name = file["name"].as_str().unwrap_or_default();
        // A bundle packs the run's other files: its members are the data.
        if is_seal(name) || name.ends_with(".tar.zst") {
            continue;
        }
        // Bundle members are named with a folder (`sboms/<sha256>.json`).
        let response = server
            .http
            .get(format!(
                "{}/exports/{id}/files/{}",
                server.base,
                name.replace('/', "%2F")
            ))
            .bearer_auth(&server.admin)
            .header("X-Stella-Tenant", &server.tenant)
            .send()
            .await?
            .error_for_status()?;
        data.extend_from_slice(&response.bytes().await?);
    }
    let bytes = data.len() as u64;
    let zstd_seconds = zstd_seconds(&data)?;
    drop(data);
    let mb = bytes as f64 / 1e6;
    let mb_per_sec = mb / seconds;
    let zstd_mb_per_sec = mb / zstd_seconds;
    let findings_per_sec = findings as f64 / seconds;
    Ok(KindReport {
        kind: kind.to_owned(),
        round: round_no,
        seconds: round(seconds),
        worker_cpu_seconds: round(cpu),
        bytes,
        findings_per_sec: round(findings_per_sec),
        mb_per_sec: round(mb_per_sec),
        mb_per_cpu_sec: round(if cpu > 0.0 { mb / cpu } else { 0.0 }),
        serde_ratio: round(findings_per_sec / baseline.findings_per_sec.max(1e-9)),
        zstd_mb_per_sec: round(zstd_mb_per_sec),
        zstd_ratio: round(mb_per_sec / zstd_mb_per_sec.max(1e-9)),
        worker_rss_before_mb: round(rss_before),
        worker_peak_rss_mb: round(peak),
    })
}
