//! `stella bench export`: export runs of a large scan, kind by kind, end to end (`POST
//! /api/v1/exports` → plan → write → seal → distribute → `completed`) on the configured
//! backends, against two baselines in the same run:
//!
//! - **serde**: the same findings, already in memory, serialised with `serde_json` alone
//!   (no store, no runtime, no format): the cost of turning records into bytes;
//! - **zstd**: raw `zstd -3` over the bytes the run wrote (its data files, the manifest
//!   and signatures left out): what merely compressing the output costs, the issue's
//!   yardstick for bundles.
//!
//! Throughputs are in findings per second and MB/s of written bytes; the ratios are the
//! run's throughput over each baseline's. The worker's peak RSS is the process's (the
//! runtime runs in-process), reset before each run (`/proc/self/clear_refs`) so each
//! kind's peak is its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{json, Value};
use stella_config::Settings;

use super::round;
use super::server::BenchServer;

#[derive(Debug, Clone, Serialize)]
pub struct ExportBenchReport {
    pub sbom: String,
    pub store: String,
    pub findings: u64,
    /// Serialising the findings with serde alone, in memory.
    pub serde_findings_per_sec: f64,
    pub kinds: Vec<KindReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: String,
    pub seconds: f64,
    /// The data files' bytes (manifest and signatures left out).
    pub bytes: u64,
    pub findings_per_sec: f64,
    pub mb_per_sec: f64,
    /// `findings_per_sec` over serde's.
    pub serde_ratio: f64,
    /// Raw zstd -3 over the same bytes.
    pub zstd_mb_per_sec: f64,
    /// `mb_per_sec` over zstd's.
    pub zstd_ratio: f64,
    /// The process's peak resident set during the run, in MB.
    pub peak_rss_mb: f64,
}

/// The files a run writes about its data (not data themselves).
fn is_seal(name: &str) -> bool {
    matches!(
        name,
        "export.json" | "export.json.dsse" | "provenance.json" | "provenance.json.dsse"
    )
}

/// Resets the process's peak RSS (Linux `clear_refs` 5); false where it cannot.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The process's peak RSS since the last reset, in MB (`VmHWM`).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let kb = line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?;
                kb.trim().parse::<f64>().ok()
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the benchmark. Must run inside an actix system.
pub async fn run(
    settings: Settings,
    sbom_path: &PathBuf,
    advisory_paths: &[PathBuf],
    kinds: &[String],
) -> anyhow::Result<ExportBenchReport> {
    let sbom = std::fs::read(sbom_path).with_context(|| format!("{}", sbom_path.display()))?;
    let server = BenchServer::start(settings, advisory_paths, "bench export").await?;
    crate::cli::output::errln!("scanning {}...", sbom_path.display());
    let (_, scan) = server.scan(&sbom).await?;
    let scan_id = scan["scan_id"]
        .as_str()
        .or_else(|| scan["job_id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let findings = scan["counts"]["findings"].as_u64().unwrap_or(0);

    // The serde baseline: every finding, read once into memory, then serialised.
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
            None => break,
        }
    }
    let started = Instant::now();
    let mut sink = Vec::with_capacity(records.len() * 512);
    for record in &records {
        serde_json::to_writer(&mut sink, record)?;
        sink.push(b'\n');
    }
    let serde_seconds = started.elapsed().as_secs_f64();
    let serde_per_sec = records.len() as f64 / serde_seconds.max(1e-9);
    drop(sink);
    drop(records);

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
        let reset = reset_peak_rss();
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
        let export = server
            .wait(
                &format!("exports/{id}"),
                "completed",
                Duration::from_secs(3600),
            )
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let peak = if reset { peak_rss_mb() } else { 0.0 };
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
        let started = Instant::now();
        let compressed = zstd::bulk::compress(&data, 3)?;
        let zstd_seconds = started.elapsed().as_secs_f64();
        drop(compressed);
        let mb = bytes as f64 / 1e6;
        let mb_per_sec = mb / seconds.max(1e-9);
        let zstd_mb_per_sec = mb / zstd_seconds.max(1e-9);
        let findings_per_sec = findings as f64 / seconds.max(1e-9);
        reports.push(KindReport {
            kind: kind.clone(),
            seconds: round(seconds),
            bytes,
            findings_per_sec: round(findings_per_sec),
            mb_per_sec: round(mb_per_sec),
            serde_ratio: round(findings_per_sec / serde_per_sec.max(1e-9)),
            zstd_mb_per_sec: round(zstd_mb_per_sec),
            zstd_ratio: round(mb_per_sec / zstd_mb_per_sec.max(1e-9)),
            peak_rss_mb: round(peak),
        });
    }
    let store = server.store.clone();
    server.stop().await;
    Ok(ExportBenchReport {
        sbom: sbom_path.display().to_string(),
        store,
        findings,
        serde_findings_per_sec: round(serde_per_sec),
        kinds: reports,
    })
}
