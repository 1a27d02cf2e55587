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
use std::time::{Duration, Instant};

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
use crate::Application;

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
            at: Utc::now(),
        };
        let verdict = scan::evaluate(&inputs, &is_affected, &vex::generic_compare);
        let digests = InputDigests {
            sbom: digest.to_string(),
            policy: policy.digest(),
            evaluated_at: Some(inputs.at),
            ..InputDigests::default()
        };
        let sealed = scan::SealedVerdict::of(&verdict)?;
        scan::seal(&sealed, &digests, "bench", &digest, &key)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

/// Runs the benchmark. Must run inside an actix system.
pub async fn run(
    mut settings: Settings,
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
    // A fresh data folder, so the embedded default starts empty and nothing of the
    // user's is touched; a fresh admin token the benchmark uses.
    let data = tempfile::tempdir()?;
    settings.data_dir = data.path().to_path_buf();
    settings.listen = "127.0.0.1:0".parse()?;
    settings.api.rate_limit_per_second = 0;
    // Set, so a fresh database does not generate (and print) an administrator token into
    // the report's stdout; the benchmark makes its own below.
    settings.bootstrap_token = Some(stella_config::Secret::new(format!(
        "bench-bootstrap-{}",
        uuid_like()
    )));
    let app = Application::build(settings).await?;
    let store = app.context().store.backend().to_string();
    let (_, admin) = app
        .context()
        .store
        .tokens()
        .create(
            &stella_store::repo::NewToken {
                tenant: None,
                name: "bench scan".into(),
                scopes: vec!["admin".into()],
                expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
            },
            Utc::now(),
        )
        .await?;
    let base = format!("http://{}/api/v1", app.addr());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let tenant = format!("bench-{}", uuid_like());
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(anyhow::anyhow!("{status}: {body}"))
        }
    };
    send(
        http.post(format!("{base}/tenants"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"id": tenant, "name": "bench"})),
    )
    .await?;
    for (path, bytes) in advisory_paths.iter().zip(&collections) {
        let source = format!(
            "osv:{}",
            path.file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default()
        );
        send(
            http.post(format!("{base}/advisories/imports"))
                .query(&[("source", source)])
                .bearer_auth(&admin)
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    }
    let scan_once = || async {
        let started = Instant::now();
        let accepted = send(
            http.post(format!("{base}/scans"))
                .bearer_auth(&admin)
                .header("X-Stella-Tenant", &tenant)
                .header("content-type", "application/json")
                .body(sbom_bytes.clone()),
        )
        .await?;
        let id = accepted["job_id"].as_str().unwrap_or_default().to_owned();
        loop {
            let scan = send(
                http.get(format!("{base}/scans/{id}"))
                    .bearer_auth(&admin)
                    .header("X-Stella-Tenant", &tenant),
            )
            .await?;
            match scan["status"].as_str() {
                Some("completed") => return Ok::<_, anyhow::Error>((started.elapsed(), scan)),
                Some("failed" | "cancelled") => {
                    return Err(anyhow::anyhow!("scan {id} ended: {scan}"))
                }
                _ if started.elapsed() > Duration::from_secs(120) => {
                    return Err(anyhow::anyhow!("scan {id} did not finish in 120 s"))
                }
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    };
    // Warm: the advisory index is built by the first scan, statement caches fill.
    let mut last = Value::Null;
    for _ in 0..3 {
        last = scan_once().await?.1;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        times.push(scan_once().await?.0.as_secs_f64() * 1000.0);
    }
    handle.stop(true).await;
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

fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}
