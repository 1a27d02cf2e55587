//! `stella bench scan`: a warm scan end to end, as a user sees it: `POST /api/v1/scans`
//! with the SBOM → analyze → evaluate → seal through the durable runtime → the scan reads
//! `completed` on `GET /api/v1/scans/{id}`. It starts a whole Stella (`Application`) on
//! the configured backends (the embedded default: a fresh data folder), imports the
//! advisory collections, warms up, then times `runs` scans one after another.
//!
//! Baseline in the same run: the same scan as pure domain work in this process (parse the
//! SBOM, match, evaluate, seal; no store, no mailbox, no HTTP). The ratio `baseline p50 /
//! p50` is the share of the end-to-end time that is the scan itself; the rest is the
//! runtime's durability (commits, outbox, mailbox hops) and HTTP.

use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use stella_config::Settings;
use stella_domain::canonical::Digest;
use stella_domain::dsse::SigningKey;
use stella_domain::osv::{parse_record, split_collection, Limits};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_domain::scan::{
    self, AdvisoryIndex, InputDigests, SbomContext, ScanComponent, ScanInputs,
};
use stella_domain::{sbom, vex};

use super::matching::{is_affected, percentile};
use super::server::BenchServer;

#[derive(Debug, Clone, Serialize)]
pub struct ScanBenchReport {
    pub sbom: String,
    pub store: String,
    pub components: u64,
    pub findings: u64,
    pub advisories: usize,
    pub runs: usize,
    /// Submit → sealed verdict, through HTTP and the runtime.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The same scan as pure domain work in-process.
    pub baseline_p50_ms: f64,
    pub baseline_p99_ms: f64,
    /// `baseline_p50_ms / p50_ms`.
    pub ratio: f64,
}

/// The pure-domain baseline: per run, parse + match + evaluate + seal.
fn baseline(sbom_bytes: &[u8], collections: &[Vec<u8>], runs: usize) -> anyhow::Result<Vec<f64>> {
    let mut advisories = Vec::new();
    for bytes in collections {
        for entry in split_collection(bytes, Limits::default())? {
            advisories.push(parse_record(&entry.bytes)?);
        }
    }
    let index = AdvisoryIndex::build(advisories);
    let policy = Policy::parse(DEFAULT_POLICY)?;
    let key = SigningKey::generate([9; 32]);
    let digest = Digest::sha256(sbom_bytes);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let parsed = sbom::parse(sbom_bytes)?;
        let components = ScanComponent::all_of(&parsed);
        let context = SbomContext::of(&parsed);
        let inputs = ScanInputs {
            components: &components,
            sbom: &context,
            index: &index,
            vex: &[],
            policy: &policy,
            pack: None,
            at: Utc::now(),
        };
        let verdict = scan::evaluate(&inputs, &is_affected, &vex::generic_compare);
        let digests = InputDigests {
            sbom: digest.to_string(),
            policy: policy.digest(),
            evaluated_at: Some(inputs.at),
            exceptions: Default::default(),
            ..InputDigests::default()
        };
        let sealed = scan::SealedVerdict::of(&verdict)?;
        scan::seal(&sealed, &digests, "bench", &digest, None, &key)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

/// Runs the benchmark. Must run inside an actix system.
pub async fn run(
    settings: Settings,
    sbom_path: &PathBuf,
    advisory_paths: &[PathBuf],
    runs: usize,
) -> anyhow::Result<ScanBenchReport> {
    let sbom_bytes =
        std::fs::read(sbom_path).with_context(|| format!("{}", sbom_path.display()))?;
    let mut collections = Vec::new();
    for path in advisory_paths {
        collections.push(std::fs::read(path).with_context(|| format!("{}", path.display()))?);
    }
    let server = BenchServer::start(settings, advisory_paths, "bench scan").await?;
    let store = server.store.clone();
    // Warm: the advisory index is built by the first scan, statement caches fill.
    let mut last = Value::Null;
    for _ in 0..3 {
        last = server.scan(&sbom_bytes).await?.1;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        times.push(server.scan(&sbom_bytes).await?.0.as_secs_f64() * 1000.0);
    }
    server.stop().await;
    times.sort_by(f64::total_cmp);

    let mut base_times = tokio::task::spawn_blocking({
        let sbom_bytes = sbom_bytes.clone();
        move || baseline(&sbom_bytes, &collections, runs.max(1))
    })
    .await??;
    base_times.sort_by(f64::total_cmp);
    let p50 = percentile(&times, 50.0);
    let baseline_p50 = percentile(&base_times, 50.0);
    Ok(ScanBenchReport {
        sbom: sbom_path.display().to_string(),
        store,
        components: last["counts"]["components"].as_u64().unwrap_or(0),
        findings: last["counts"]["findings"].as_u64().unwrap_or(0),
        advisories: advisory_paths.len(),
        runs: times.len(),
        p50_ms: p50,
        p99_ms: percentile(&times, 99.0),
        baseline_p50_ms: baseline_p50,
        baseline_p99_ms: percentile(&base_times, 99.0),
        ratio: if p50 > 0.0 { baseline_p50 / p50 } else { 0.0 },
    })
}
