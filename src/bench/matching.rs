//! `stella bench match`: the scan domain on real data, with its baseline in the same run.
//! It reads advisory collections (OSV zips or JSON) and one SBOM, builds the package index
//! (timed), then matches every component of the SBOM through the index and through the
//! naive linear scan over every advisory (the baseline), and evaluates the whole scan
//! (matching, VEX, policy, verdict) repeatedly for p50 / p99.

use anyhow::Context as _;
use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use stella_domain::osv::{parse_record, split_collection, Advisory, Affected, Limits};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_domain::scan::{self, AdvisoryIndex, SbomContext, ScanComponent, ScanInputs};
use stella_domain::{sbom, vex};

#[derive(Debug, Clone, Serialize)]
pub struct MatchReport {
    pub sbom: String,
    pub components: usize,
    pub advisories: usize,
    pub findings: usize,
    pub parse_seconds: f64,
    pub index_build_seconds: f64,
    /// Components matched per second through the index.
    pub matches_per_sec: f64,
    /// The same through a pass over every advisory per component.
    pub baseline_matches_per_sec: f64,
    pub ratio: f64,
    pub evaluate_p50_ms: f64,
    pub evaluate_p99_ms: f64,
    pub runs: usize,
}

pub(crate) fn is_affected(version: &str, affected: &Affected) -> bool {
    affected.is_affected(version).unwrap_or(false)
}

/// The `p`th percentile of sorted samples (nearest rank).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs the benchmark; `runs` evaluations of the whole scan.
pub fn run(
    sbom_path: &PathBuf,
    advisory_paths: &[PathBuf],
    runs: usize,
) -> anyhow::Result<MatchReport> {
    let started = Instant::now();
    let mut advisories: Vec<Advisory> = Vec::new();
    for path in advisory_paths {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let entries = split_collection(&bytes, Limits::default())
            .with_context(|| format!("{}", path.display()))?;
        for entry in entries {
            advisories.push(
                parse_record(&entry.bytes)
                    .with_context(|| format!("{}/{}", path.display(), entry.name))?,
            );
        }
    }
    let bytes = std::fs::read(sbom_path).with_context(|| format!("{}", sbom_path.display()))?;
    let parsed = sbom::parse(&bytes).with_context(|| format!("{}", sbom_path.display()))?;
    let components = ScanComponent::all_of(&parsed);
    let parse_seconds = started.elapsed().as_secs_f64();

    let built = Instant::now();
    let index = AdvisoryIndex::build(advisories.clone());
    let index_build_seconds = built.elapsed().as_secs_f64();

    // Enough rounds that each side runs for a measurable time.
    let rounds = 20;
    let timed = Instant::now();
    let mut fast = 0usize;
    for _ in 0..rounds {
        for component in &components {
            fast += scan::index_matches(&index, component, &is_affected).len();
        }
    }
    let index_seconds = timed.elapsed().as_secs_f64();
    let timed = Instant::now();
    let mut slow = 0usize;
    for component in &components {
        slow += scan::naive_matches(&advisories, component, &is_affected).len();
    }
    let naive_seconds = timed.elapsed().as_secs_f64();
    if fast != slow * rounds {
        return Err(anyhow::anyhow!(
            "the index found {} matches per round and the linear scan {slow}",
            fast / rounds
        ));
    }

    let policy = Policy::parse(DEFAULT_POLICY)?;
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
    let mut times = Vec::with_capacity(runs);
    let mut findings = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let verdict = scan::evaluate(&inputs, &is_affected, &vex::generic_compare);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        findings = verdict.counts.findings;
    }
    times.sort_by(f64::total_cmp);
    let per_sec = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let matches_per_sec = per_sec(components.len() * rounds, index_seconds);
    let baseline_matches_per_sec = per_sec(components.len(), naive_seconds);
    Ok(MatchReport {
        sbom: sbom_path.display().to_string(),
        components: components.len(),
        advisories: advisories.len(),
        findings,
        parse_seconds,
        index_build_seconds,
        matches_per_sec,
        baseline_matches_per_sec,
        ratio: if baseline_matches_per_sec > 0.0 {
            matches_per_sec / baseline_matches_per_sec
        } else {
            0.0
        },
        evaluate_p50_ms: percentile(&times, 50.0),
        evaluate_p99_ms: percentile(&times, 99.0),
        runs: times.len(),
    })
}
