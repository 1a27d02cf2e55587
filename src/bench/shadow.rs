//! `stella bench shadow`: a policy pack's shadow evaluation over many tenants' latest
//! scans of real SBOMs, as a rollout's canary runs it: `POST /api/v1/rollouts` with one
//! wave of every tenant and a gate that waits for a person, timed until the scheduler has
//! judged the gate (every tenant's `rollout` job has evaluated its targets in shadow and
//! committed its diff). Each round's rollout is then aborted (nothing was activated).
//!
//! The scheduler passes every 50 ms here (500 ms by default), so a round's time is the
//! work rather than the wait for the next pass. Setup: each SBOM is scanned once for real; its scan is copied as the latest scan of
//! `--targets` targets of each of `--tenants` tenants (`stella_store::diag::bench`), so
//! there are tenants × targets latest scans without scanning each.
//!
//! Baseline in the same run, rounds interleaved: the same evaluations in this process
//! with the domain crate alone (parse the stored analysis, evaluate with the tenant's
//! policy and the pack, parse the stored findings, diff), one thread, no store, no jobs.
//! Then the gate of a rollout over `--gate-tenants` tenants: once their shadow results
//! are in, the leader's judgment (read the wave's rows, sum, judge) timed alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use stella_config::Settings;
use stella_domain::analysis::Analysis;
use stella_domain::osv::{parse_record, split_collection, Limits};
use stella_domain::policy::{Pack, Policy, DEFAULT_POLICY};
use stella_domain::scan::{self, AdvisoryIndex, Finding, ScanInputs};
use stella_domain::shadow::{diff_scan, DiffSummary};
use stella_domain::vex;
use stella_store::{JobId, TenantId};

use super::matching::is_affected;
use super::server::BenchServer;
use crate::cli::output::errln;

/// The pack every round rolls out: a floor that blocks what is critical, and every Go
/// finding not shown to be inapplicable (the Go database carries no CVSS, so this is the
/// rule that changes verdicts: the diff has work to do).
const PACK: &str = "name = \"bench-floor\"\nversion = 1\n\n[[rules]]\nid = \"critical\"\n\
                    when = { applies = [\"true\", \"unknown\"], min_severity = 9.0 }\n\
                    outcome = \"block\"\nbecause = \"critical\"\n\n[[rules]]\nid = \"go\"\n\
                    when = { applies = [\"true\", \"unknown\"], ecosystems = [\"Go\"] }\n\
                    outcome = \"block\"\nbecause = \"Go modules are held to the floor\"\n";

/// The scheduler's pass interval in the benchmark: short, so the time to the gate is the
/// work and not the wait for the next pass (the default is 500 ms).
const POLL_MS: u64 = 50;

#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    pub store: String,
    pub sboms: Vec<String>,
    pub tenants: u32,
    pub targets_per_tenant: u32,
    /// Latest scans evaluated per round (tenants × targets, and the benchmark's own
    /// tenant's scans).
    pub scans: u64,
    /// Findings over those scans.
    pub findings: u64,
    pub setup_seconds: f64,
    pub rounds: Vec<ShadowRound>,
    pub median_ratio: f64,
    pub gate: Option<GateTiming>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShadowRound {
    pub round: u32,
    /// Rollout created → gate judged, through the API, the scheduler and the jobs.
    pub stella_seconds: f64,
    pub stella_scans_per_sec: f64,
    /// The same evaluations with the domain crate alone, one thread.
    pub baseline_seconds: f64,
    pub baseline_scans_per_sec: f64,
    /// `baseline_seconds / stella_seconds`.
    pub ratio: f64,
    /// The wave's summed diff, as the gate saw it.
    pub summary: DiffSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateTiming {
    pub tenants: u32,
    /// Rollout created → gate judged (10,000 shadow jobs of tenants without targets).
    pub shadow_seconds: f64,
    /// The judgment alone, each repetition: read the wave's rows with their shadow
    /// results, sum, judge.
    pub judge_seconds: Vec<f64>,
}

/// The rollout's state once its gate was judged (it waits for approval), or an error.
async fn until_judged(server: &BenchServer, id: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let rollout = server
            .admin(server.http.get(format!("{}/rollouts/{id}", server.base)))
            .await?;
        match rollout["state"].as_str() {
            Some("paused") => {
                let result = &rollout["reason"]["gate"]["result"];
                return if result == "awaiting_approval" {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "the gate did not hold: {}",
                        rollout["reason"]
                    ))
                };
            }
            Some("running") => {}
            other => return Err(anyhow::anyhow!("the rollout is {other:?}")),
        }
        if started.elapsed() > limit {
            return Err(anyhow::anyhow!(
                "the gate was not judged in {} s",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates a one-wave rollout of the bench pack waiting for approval, waits for its
/// gate, aborts it; the seconds to the gate and the rollout's id.
async fn one_rollout(
    server: &BenchServer,
    wave: serde_json::Value,
) -> anyhow::Result<(f64, String)> {
    let started = Instant::now();
    let rollout = server
        .admin(server.http.post(format!("{}/rollouts", server.base)).json(&json!({
            "pack": "bench-floor", "version": 1, "waves": [wave],
            "gate": {"max_newly_blocked_percent": 100.0, "max_errors": 0, "manual_approval": true},
            "bake_seconds": 0, "reason": "stella bench shadow"
        })))
        .await?;
    let id = rollout["id"].as_str().unwrap_or_default().to_owned();
    until_judged(server, &id, Duration::from_secs(3600)).await?;
    let seconds = started.elapsed().as_secs_f64();
    server
        .admin(
            server
                .http
                .post(format!("{}/rollouts/{id}/abort", server.base))
                .json(&json!({"reason": "benchmark round over"})),
        )
        .await?;
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        let r = server
            .admin(server.http.get(format!("{}/rollouts/{id}", server.base)))
            .await?;
        if r["state"] == "rolled_back" {
            break;
        }
        if Instant::now() > limit {
            return Err(anyhow::anyhow!("the rollout did not roll back"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((seconds, id))
}

/// One scan's stored parts, for the in-process baseline.
struct Stored {
    analysis: String,
    disposition: stella_domain::policy::Disposition,
    findings: Vec<String>,
}

/// The SBOM (an index into the scanned ones) of each tenant's target `i`: the same for
/// the copies and the baseline, so both evaluate the same scans.
fn sbom_of(target: u32, sboms: usize) -> usize {
    usize::try_from(target).unwrap_or(0) % sboms
}

/// The baseline: every (tenant, target) scan evaluated with the policy and the pack and
/// diffed against its stored findings, in this thread.
fn baseline(
    stored: &[Stored],
    tenants: u32,
    targets: u32,
    index: &AdvisoryIndex,
) -> anyhow::Result<(f64, DiffSummary)> {
    let policy = Policy::parse(DEFAULT_POLICY)?;
    let pack = Pack {
        name: "bench-floor".into(),
        version: 1,
        policy: Policy::parse(PACK)?,
    };
    let at = Utc::now();
    let mut summary = DiffSummary::default();
    let started = Instant::now();
    let scans = (0..tenants).flat_map(|_| (0..targets).map(|i| &stored[sbom_of(i, stored.len())]));
    for scan in scans {
        let analysis: Analysis = serde_json::from_str(&scan.analysis)?;
        let inputs = ScanInputs {
            components: &analysis.components,
            sbom: &analysis.context,
            index,
            vex: &[],
            policy: &policy,
            pack: Some(&pack),
            at,
        };
        let verdict = scan::evaluate(&inputs, &is_affected, &vex::generic_compare);
        let old: Vec<Finding> = scan
            .findings
            .iter()
            .map(|f| serde_json::from_str(f))
            .collect::<Result<_, _>>()?;
        let diff = diff_scan(
            "scan",
            "target",
            scan.disposition,
            old,
            verdict.disposition,
            verdict.findings,
        );
        summary.add(&diff);
    }
    Ok((started.elapsed().as_secs_f64(), summary))
}

fn disposition(text: Option<&str>) -> stella_domain::policy::Disposition {
    use stella_domain::policy::Disposition;
    match text {
        Some("block") => Disposition::Block,
        Some("warn") => Disposition::Warn,
        _ => Disposition::Pass,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the benchmark. Must run inside an actix system.
pub async fn run(
    settings: Settings,
    sbom_paths: &[PathBuf],
    advisory_paths: &[PathBuf],
    tenants: u32,
    targets: u32,
    rounds: u32,
    gate_tenants: u32,
) -> anyhow::Result<ShadowReport> {
    let mut settings = settings;
    settings.scheduler.poll_interval_ms = POLL_MS;
    let server = BenchServer::start(settings, advisory_paths, "bench shadow").await?;
    let setup = Instant::now();
    let own = TenantId::parse(&server.tenant)?;
    let mut scans = Vec::new();
    let mut stored = Vec::new();
    for path in sbom_paths {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let (_, scan) = server.scan(&bytes).await?;
        let id = JobId::parse(scan["job_id"].as_str().unwrap_or_default())?;
        let db_scans = server.db.tenant(&own).scans();
        let record = db_scans
            .get(&id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("scan {id} has no row"))?;
        let mut findings = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = db_scans.finding_rows(&id, cursor.as_deref(), 500).await?;
            findings.extend(page.items.into_iter().map(|r| r.text));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        stored.push(Stored {
            analysis: record.analysis.unwrap_or_default(),
            disposition: disposition(record.disposition.as_deref()),
            findings,
        });
        scans.push(id);
    }
    if scans.is_empty() {
        anyhow::bail!("give at least one --sbom");
    }
    errln!(
        "copying {} scans to {tenants} tenants × {targets} targets...",
        scans.len()
    );
    let copies = stella_store::diag::bench::ScanCopies::new(&server.db);
    let prefix = &server.tenant[6..];
    for t in 0..tenants {
        let tenant = TenantId::parse(&format!("s{prefix}-{t:05}"))?;
        server
            .db
            .tenants()
            .create(&tenant, tenant.as_str(), Utc::now())
            .await?;
        for i in 0..targets {
            let scan = &scans[sbom_of(i, scans.len())];
            copies
                .copy(&own, scan, &tenant, &format!("target-{i:02}"))
                .await?;
        }
    }
    server
        .admin(
            server
                .http
                .post(format!("{}/policy-packs", server.base))
                .json(&json!({"name": "bench-floor", "document": PACK})),
        )
        .await?;
    // The advisory index the baseline matches against: the same collections.
    let mut advisories = Vec::new();
    for path in advisory_paths {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        for entry in split_collection(&bytes, Limits::default())? {
            advisories.push(parse_record(&entry.bytes)?);
        }
    }
    let index = AdvisoryIndex::build(advisories);
    let setup_seconds = setup.elapsed().as_secs_f64();
    // Every tenant's targets, and the benchmark tenant's own scans (its targets are none:
    // its scans were not made with `?target=`).
    let total = u64::from(tenants) * u64::from(targets);
    let findings: u64 = u64::from(tenants)
        * (0..targets)
            .map(|i| stored[sbom_of(i, stored.len())].findings.len() as u64)
            .sum::<u64>();
    let mut report_rounds = Vec::new();
    for round in 1..=rounds {
        errln!("round {round}: Stella...");
        let (stella_seconds, id) = one_rollout(&server, json!({"percent": 100})).await?;
        let wave = server
            .admin(server.http.get(format!("{}/rollouts/{id}", server.base)))
            .await?;
        let summary: DiffSummary =
            serde_json::from_value(wave["waves"][0]["summary"].clone()).unwrap_or_default();
        errln!("round {round}: the domain alone...");
        // On this thread: the server has nothing to do between rounds.
        let (baseline_seconds, check) = baseline(&stored, tenants, targets, &index)?;
        if check != summary {
            anyhow::bail!(
                "the in-process evaluations disagree with Stella's: {check:?} vs {summary:?}"
            );
        }
        report_rounds.push(ShadowRound {
            round,
            stella_seconds,
            stella_scans_per_sec: total as f64 / stella_seconds.max(1e-9),
            baseline_seconds,
            baseline_scans_per_sec: total as f64 / baseline_seconds.max(1e-9),
            ratio: baseline_seconds / stella_seconds.max(1e-9),
            summary,
        });
    }
    let mut ratios: Vec<f64> = report_rounds.iter().map(|r| r.ratio).collect();
    let gate = if gate_tenants > 0 {
        errln!("the gate over {gate_tenants} tenants...");
        let mut names = Vec::new();
        for t in 0..gate_tenants {
            let tenant = TenantId::parse(&format!("g{prefix}-{t:05}"))?;
            server
                .db
                .tenants()
                .create(&tenant, tenant.as_str(), Utc::now())
                .await?;
            names.push(tenant.to_string());
        }
        // One of them with a scan, so the wave has something to judge.
        copies
            .copy(&own, &scans[0], &TenantId::parse(&names[0])?, "target-00")
            .await?;
        let started = Instant::now();
        let rollout = server
            .admin(
                server
                    .http
                    .post(format!("{}/rollouts", server.base))
                    .json(&json!({
                        "pack": "bench-floor", "version": 1, "waves": [{"tenants": names}],
                        "gate": {"max_newly_blocked_percent": 100.0, "manual_approval": true},
                        "bake_seconds": 0, "reason": "stella bench shadow: gate"
                    })),
            )
            .await?;
        let id = rollout["id"].as_str().unwrap_or_default().to_owned();
        until_judged(&server, &id, Duration::from_secs(3600)).await?;
        let shadow_seconds = started.elapsed().as_secs_f64();
        let rollout_id = stella_store::RolloutId::parse(&id)?;
        let record = server.db.rollouts().get(&rollout_id).await?;
        let spec: stella_domain::rollout::RolloutSpec = serde_json::from_value(record.spec)?;
        let mut judge_seconds = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let rows = server.db.rollouts().tenants(&rollout_id, Some(0)).await?;
            let mut sum = DiffSummary::default();
            for row in &rows {
                if let Some(shadow) = &row.shadow {
                    let one: DiffSummary = serde_json::from_value(shadow.summary.clone())?;
                    sum.merge(&one);
                }
            }
            let _ = spec.gate_of(0).judge(&sum, false);
            judge_seconds.push(started.elapsed().as_secs_f64());
        }
        Some(GateTiming {
            tenants: gate_tenants,
            shadow_seconds,
            judge_seconds,
        })
    } else {
        None
    };
    let store = server.store.clone();
    server.stop().await;
    Ok(ShadowReport {
        store,
        sboms: sbom_paths.iter().map(|p| p.display().to_string()).collect(),
        tenants,
        targets_per_tenant: targets,
        scans: total,
        findings,
        setup_seconds,
        median_ratio: median(&mut ratios),
        rounds: report_rounds,
        gate,
    })
}
