//! The `scan` job kind: an SBOM in, a sealed verdict out, in three durable steps run by
//! three roles: `analyze` (analyzer: parse the SBOM, keep its matchable components),
//! `evaluate` (evaluator: match against the advisories, join VEX, apply the tenant's
//! policy at the scan's evaluation time) and `seal` (sealer: sign the verdict as an
//! in-toto statement in a DSSE envelope, store it, emit `scan.completed`).
//!
//! The handlers are thin: the work is `stella_domain`'s pure functions, run on the
//! blocking pool because parsing and matching are CPU work. Each step's effect is
//! idempotent (the analysis is written once, the verdict is replaced until sealed, the
//! attestation digest and its event are set once), and signing is deterministic
//! (Ed25519, canonical JSON), so a redelivered or resumed step yields the same bytes and
//! never a second attestation.
//!
//! The advisory index is cached per process and rebuilt when the store's `advisories`
//! generation moves (every import that changes a record bumps it), so a warm scan costs
//! one counter read instead of reading the advisory database.
//!
//! An SBOM is parsed once per process: whoever parsed it (the API, which validates every
//! SBOM it receives) leaves its analysis in the [`AnalysisCache`], and the steps take it
//! from there instead of reading and parsing the SBOM again (`analyze`) or decoding the
//! stored analysis (`evaluate`). The analysis is a pure function of the SBOM's bytes, so
//! the cached one is the stored one; a miss (another process, a restart, an evicted
//! entry) falls back to the store.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stella_domain::canonical::Digest;
use stella_domain::dsse::SigningKey;
use stella_domain::osv::{Advisory, Affected};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_domain::sbom::{self, SbomSummary};
use stella_domain::scan::{
    self, AdvisoryIndex, FindingText, InputDigests, SbomContext, ScanComponent, ScanInputs,
    SealedVerdict, VerdictSummary,
};
use stella_domain::vex::{self, VexStatement};
use stella_store::mailbox::Role;
use stella_store::object::{Objects, Sha256Digest};
use stella_store::repo::{NewEvent, NewFinding, VerdictRecord};
use stella_store::{Store, StoreError};
use tokio::sync::Mutex;

use crate::handler::{JobKind, StepContext, StepError, StepHandler, StepOutcome};

pub const KIND: &str = "scan";

/// A scan job's parameters, fixed at submission so every attempt evaluates the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanParams {
    /// Hex SHA-256 of the SBOM (the object `sha256/<hex>`).
    pub sbom_sha256: String,
    /// What the SBOM describes, for the attestation's subject name.
    pub name: String,
    /// The evaluation time: exceptions expire against it, and it is part of the inputs
    /// hash. Never read from the clock during the scan.
    pub evaluated_at: DateTime<Utc>,
}

/// What the analyzer keeps of an SBOM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub format: String,
    pub spec_version: String,
    pub summary: SbomSummary,
    pub context: SbomContext,
    pub components: Vec<ScanComponent>,
}

impl Analysis {
    /// Analyzes SBOM bytes (CycloneDX or SPDX JSON).
    pub fn of(bytes: &[u8]) -> Result<Self, stella_domain::InputError> {
        Ok(Self::from_sbom(sbom::parse(bytes)?))
    }

    /// [`Analysis::of_parsed`], consuming the inventory: its strings move into the
    /// analysis, so the two are never whole in memory at once (a 200,000-component SBOM's
    /// inventory is a few hundred megabytes).
    pub fn from_sbom(parsed: sbom::Sbom) -> Self {
        Self {
            format: parsed.format.to_string(),
            spec_version: parsed.spec_version.clone(),
            summary: parsed.summary(),
            context: SbomContext::of(&parsed),
            components: ScanComponent::all_from(parsed),
        }
    }

    /// How much the analysis holds, for the [`AnalysisCache`]'s budget: its components.
    pub fn weight(&self) -> usize {
        self.components.len().max(1)
    }

    pub fn of_parsed(parsed: &sbom::Sbom) -> Self {
        Self {
            format: parsed.format.to_string(),
            spec_version: parsed.spec_version.clone(),
            summary: parsed.summary(),
            context: SbomContext::of(parsed),
            components: ScanComponent::all_of(parsed),
        }
    }
}

/// What a scan needs besides the store.
#[derive(Debug, Clone)]
pub struct ScanDeps {
    pub objects: Objects,
    pub signing_key: Arc<SigningKey>,
    pub advisories: Arc<AdvisoryCache>,
    pub analyses: Arc<AnalysisCache>,
}

impl ScanDeps {
    pub fn new(objects: Objects, signing_key: Arc<SigningKey>) -> Self {
        Self {
            objects,
            signing_key,
            advisories: Arc::new(AdvisoryCache::default()),
            analyses: Arc::new(AnalysisCache::default()),
        }
    }
}

/// The analyses of the SBOMs this process parsed last, by SBOM digest (hex SHA-256): the
/// hand-off from the parse at submission to the steps (see the module docs).
///
/// Bounded by what the analyses hold (their components, [`Analysis::weight`]) as well as
/// by their number: sixteen analyses of 200,000-component SBOMs held 1.6 GB. An analysis
/// heavier than the whole budget is not kept (its scan reads the store instead), and
/// `evaluate`, the last step that needs it, takes it out, so an idle process holds none.
#[derive(Debug)]
pub struct AnalysisCache {
    budget: usize,
    recent: std::sync::Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    /// Oldest first.
    entries: VecDeque<(String, Arc<Analysis>)>,
    weight: usize,
}

impl Recent {
    fn remove(&mut self, sbom_sha256: &str) -> Option<Arc<Analysis>> {
        let at = self.entries.iter().position(|(d, _)| d == sbom_sha256)?;
        let (_, analysis) = self.entries.remove(at)?;
        self.weight -= analysis.weight();
        Some(analysis)
    }
}

impl Default for AnalysisCache {
    fn default() -> Self {
        Self::with_budget(Self::BUDGET)
    }
}

impl AnalysisCache {
    /// Components held at most: the largest SBOM `api.max_sbom_components` admits by
    /// default (200,000), about 100 MB of analysis, or many smaller ones.
    pub const BUDGET: usize = 200_000;
    /// Analyses held at most, however small: a handful covers the scans in flight.
    const ENTRIES: usize = 16;

    pub fn with_budget(components: usize) -> Self {
        Self {
            budget: components,
            recent: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, sbom_sha256: &str, analysis: Arc<Analysis>) {
        let mut recent = self.lock();
        recent.remove(sbom_sha256);
        let weight = analysis.weight();
        if weight > self.budget {
            return;
        }
        while recent.entries.len() >= Self::ENTRIES || recent.weight + weight > self.budget {
            let Some((_, oldest)) = recent.entries.pop_front() else {
                break;
            };
            recent.weight -= oldest.weight();
        }
        recent.weight += weight;
        recent.entries.push_back((sbom_sha256.to_owned(), analysis));
    }

    pub fn get(&self, sbom_sha256: &str) -> Option<Arc<Analysis>> {
        self.lock()
            .entries
            .iter()
            .find(|(digest, _)| digest == sbom_sha256)
            .map(|(_, analysis)| analysis.clone())
    }

    /// Removes and returns the analysis: for the last step that needs it.
    pub fn take(&self, sbom_sha256: &str) -> Option<Arc<Analysis>> {
        self.lock().remove(sbom_sha256)
    }

    /// The components the cached analyses hold.
    pub fn weight(&self) -> usize {
        self.lock().weight
    }
}

/// The role of each step.
fn role(name: &str) -> Role {
    Role::parse(name).unwrap_or_else(|_| unreachable!("a valid role literal"))
}

pub fn kind(deps: ScanDeps) -> JobKind {
    let deps = Arc::new(deps);
    let mut steps: BTreeMap<&'static str, Arc<dyn StepHandler>> = BTreeMap::new();
    steps.insert("analyze", Arc::new(Analyze(deps.clone())));
    steps.insert("evaluate", Arc::new(Evaluate(deps.clone())));
    steps.insert("seal", Arc::new(Seal(deps)));
    JobKind {
        name: KIND,
        first_step: "analyze",
        role: role("analyzer"),
        steps,
        // Submitted through `POST /scans`, which stores and analyzes the SBOM first.
        submitters: crate::handler::Submitters::Internal,
        params: None,
    }
}

fn params(ctx: &StepContext<'_>) -> Result<ScanParams, StepError> {
    serde_json::from_value(ctx.job.params.clone())
        .map_err(|err| StepError::Abort(format!("invalid scan parameters: {err}")))
}

/// Runs CPU work off the actor thread; a panic inside is a failed attempt.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StepError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| StepError::Retry(format!("scan work did not finish: {err}")))
}

#[derive(Debug)]
struct Analyze(Arc<ScanDeps>);

#[async_trait]
impl StepHandler for Analyze {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
        let params = params(ctx)?;
        let analysis = match self.0.analyses.get(&params.sbom_sha256) {
            Some(analysis) => analysis,
            None => self.analyze(&params.sbom_sha256).await?,
        };
        let text = blocking(move || serde_json::to_string(analysis.as_ref()))
            .await?
            .map_err(|err| StepError::Abort(format!("analysis: {err}")))?;
        ctx.store
            .tenant(&ctx.job.tenant)
            .scans()
            .record_analysis(
                &ctx.job.id,
                &params.sbom_sha256,
                &params.name,
                params.evaluated_at,
                &text,
                ctx.now,
            )
            .await?;
        Ok(StepOutcome::Next {
            step: "evaluate".into(),
            role: role("evaluator"),
        })
    }
}

impl Analyze {
    /// Reads the stored SBOM and analyzes it (and caches the analysis for `evaluate`).
    async fn analyze(&self, sbom_sha256: &str) -> Result<Arc<Analysis>, StepError> {
        let digest = Sha256Digest::parse(sbom_sha256)
            .map_err(|err| StepError::Abort(format!("invalid sbom digest: {err}")))?;
        // Verified against its digest while read: a tampered object is an error here.
        let bytes = self.0.objects.read_content(&digest).await?;
        let analysis = blocking(move || Analysis::of(&bytes))
            .await?
            .map_err(|err| StepError::Abort(format!("the stored SBOM does not parse: {err}")))?;
        let analysis = Arc::new(analysis);
        self.0.analyses.insert(sbom_sha256, analysis.clone());
        Ok(analysis)
    }
}

#[derive(Debug)]
struct Evaluate(Arc<ScanDeps>);

fn is_affected(version: &str, affected: &Affected) -> bool {
    affected.is_affected(version).unwrap_or(false)
}

/// The tenant's active policy, or the shipped default.
pub async fn active_policy(
    store: &Store,
    tenant: &stella_store::TenantId,
) -> Result<Policy, StepError> {
    let text = match store.tenant(tenant).policies().active().await? {
        Some(record) => record.document,
        None => DEFAULT_POLICY.to_owned(),
    };
    Policy::parse(&text).map_err(|err| StepError::Abort(format!("the stored policy: {err}")))
}

#[async_trait]
impl StepHandler for Evaluate {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
        let params = params(ctx)?;
        let scans = ctx.store.tenant(&ctx.job.tenant).scans();
        let scan = scans
            .get_without_analysis(&ctx.job.id)
            .await?
            .ok_or_else(|| StepError::Retry("the scan's analysis is not committed".into()))?;
        if scan.attestation_sha256.is_some() {
            // Sealed by an earlier delivery: the verdict stays what was signed.
            return Ok(next_seal());
        }
        // Taken, not read: nothing after the evaluation needs it, and a large SBOM's
        // analysis is over a hundred megabytes. A redelivery decodes the stored one.
        let analysis = match self.0.analyses.take(&params.sbom_sha256) {
            Some(analysis) => analysis,
            None => Arc::new(stored(scans.analysis(&ctx.job.id).await?, "analysis")?),
        };
        let index = self.0.advisories.current(ctx.store).await?;
        let documents = ctx.store.vex().for_tenant(&ctx.job.tenant).await?;
        let mut statements = Vec::new();
        let mut vex_digests = BTreeSet::new();
        for document in documents {
            let parsed: Vec<VexStatement> = serde_json::from_value(document.statements)
                .map_err(|err| StepError::Abort(format!("stored VEX statements: {err}")))?;
            for statement in parsed {
                let evidence = format!("vex:sha256:{}#{}", document.sha256, statement.pointer);
                statements.push((statement, evidence));
            }
            vex_digests.insert(format!("sha256:{}", document.sha256));
        }
        let policy = active_policy(ctx.store, &ctx.job.tenant).await?;
        let sbom_digest = format!("sha256:{}", params.sbom_sha256);
        let at = params.evaluated_at;
        let record = blocking(move || {
            let inputs = ScanInputs {
                components: &analysis.components,
                sbom: &analysis.context,
                index: &index.index,
                vex: &statements,
                policy: &policy,
                at,
            };
            // Each finding is kept as its canonical text only (a few hundred bytes to a
            // few kilobytes), never as a whole verdict of structs or JSON values.
            let mut findings = Vec::new();
            let mut bytes = 0usize;
            let summary =
                scan::evaluate_each(&inputs, &is_affected, &vex::generic_compare, |finding| {
                    let text = FindingText::of(&finding)
                        .map_err(|err| StepError::Abort(format!("finding: {err}")))?;
                    bytes += text.canonical.len();
                    if bytes > MAX_FINDINGS_BYTES {
                        return Err(too_many_findings(findings.len() + 1));
                    }
                    findings.push(text);
                    Ok(())
                })?;
            let digests = InputDigests {
                sbom: sbom_digest,
                advisories: index.candidate_digests(&analysis.components),
                vex: vex_digests,
                policy: policy.digest(),
                evaluated_at: Some(at),
            };
            verdict_record(summary, findings, &digests)
        })
        .await??;
        scans.record_verdict(&ctx.job.id, &record).await?;
        Ok(next_seal())
    }
}

/// A part of the scan row an earlier step committed, decoded; missing or undecodable is
/// permanent (retrying cannot make it appear).
fn stored<T: serde::de::DeserializeOwned>(
    value: Option<String>,
    what: &str,
) -> Result<T, StepError> {
    let text = value.ok_or_else(|| StepError::Abort(format!("the scan has no {what}")))?;
    serde_json::from_str(&text).map_err(|err| StepError::Abort(format!("stored {what}: {err}")))
}

/// The stored verdict to sign. A scan evaluated before attestations were bounded stored
/// the whole verdict: it is sealed the way it would be now.
fn sealed_verdict(text: Option<String>) -> Result<SealedVerdict, StepError> {
    let text = text.ok_or_else(|| StepError::Abort("the scan has no verdict".into()))?;
    match serde_json::from_str::<SealedVerdict>(&text) {
        Ok(sealed) => Ok(sealed),
        Err(err) => {
            let whole: scan::Verdict = serde_json::from_str(&text)
                .map_err(|_| StepError::Abort(format!("stored verdict: {err}")))?;
            SealedVerdict::of(&whole)
                .map_err(|err| StepError::Abort(format!("sealed verdict: {err}")))
        }
    }
}

fn next_seal() -> StepOutcome {
    StepOutcome::Next {
        step: "seal".into(),
        role: role("sealer"),
    }
}

fn to_value<T: Serialize>(value: &T, what: &str) -> Result<Value, StepError> {
    serde_json::to_value(value).map_err(|err| StepError::Abort(format!("{what}: {err}")))
}

/// How much canonical JSON a scan's findings may take, all together: 128 MiB, about
/// 100,000 findings with their traces. The evaluator holds them (as text) until they are
/// stored, and an SBOM can name one package many times over (a package with 300
/// advisories, 200,000 times, would be 60 million findings): past this the scan fails
/// with a message saying so, instead of taking the process's memory.
pub const MAX_FINDINGS_BYTES: usize = 128 * 1024 * 1024;

fn too_many_findings(found: usize) -> StepError {
    StepError::Abort(format!(
        "the scan's findings exceed {} MiB of JSON (at finding {found}); split the SBOM",
        MAX_FINDINGS_BYTES / (1024 * 1024)
    ))
}

/// The store's form of a verdict: the sealed verdict (what the sealer signs) on the scan
/// row, every finding as its own row.
fn verdict_record(
    summary: VerdictSummary,
    findings: Vec<FindingText>,
    inputs: &InputDigests,
) -> Result<VerdictRecord, StepError> {
    let disposition = summary.disposition.as_str().to_owned();
    let counts = to_value(&summary.counts, "counts")?;
    let sealed = SealedVerdict::new(summary, &findings, scan::ATTESTED_FINDINGS_BYTES)
        .map_err(|err| StepError::Abort(format!("sealed verdict: {err}")))?;
    let verdict = serde_json::to_string(&sealed)
        .map_err(|err| StepError::Abort(format!("verdict: {err}")))?;
    let findings = findings
        .into_iter()
        .enumerate()
        .map(|(i, finding)| NewFinding {
            ordinal: i as u64,
            vulnerability_id: finding.vulnerability_id,
            purl: finding.purl,
            disposition: finding.disposition.as_str().to_owned(),
            finding: finding.canonical,
        })
        .collect();
    Ok(VerdictRecord {
        verdict,
        disposition,
        counts,
        inputs: to_value(inputs, "inputs")?,
        inputs_hash: inputs.hash(),
        findings,
    })
}

#[derive(Debug)]
struct Seal(Arc<ScanDeps>);

#[async_trait]
impl StepHandler for Seal {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
        let params = params(ctx)?;
        let scans = ctx.store.tenant(&ctx.job.tenant).scans();
        let scan = scans
            .get_without_analysis(&ctx.job.id)
            .await?
            .ok_or_else(|| StepError::Abort("the scan has no row".into()))?;
        let verdict = sealed_verdict(scan.verdict)?;
        let inputs: InputDigests = stored(scan.inputs.as_ref().map(Value::to_string), "inputs")?;
        let sbom_digest = Digest::from_hex(&params.sbom_sha256)
            .map_err(|err| StepError::Abort(format!("invalid sbom digest: {err}")))?;
        let key = self.0.signing_key.clone();
        let name = params.name.clone();
        let disposition = verdict.disposition;
        let counts = verdict.counts.clone();
        let inputs_hash = inputs.hash();
        let envelope = blocking(move || {
            scan::seal(&verdict, &inputs, &name, &sbom_digest, &key).map(|e| e.to_json())
        })
        .await?
        .map_err(|err| StepError::Abort(format!("sealing: {err}")))?;
        let stored = self.0.objects.put_content(Bytes::from(envelope)).await?;
        let sha256 = stored.digest.to_string();
        let event = NewEvent {
            kind: "scan.completed".into(),
            dedupe_key: format!("scan.completed:{}", ctx.job.id),
            payload: json!({
                "scan_id": ctx.job.id.as_str(),
                "sbom_sha256": params.sbom_sha256,
                "name": params.name,
                "disposition": disposition.as_str(),
                "counts": counts,
                "inputs_hash": inputs_hash,
                "attestation_sha256": sha256,
            }),
        };
        let attestation = scans
            .record_attestation(&ctx.job.id, &sha256, &event, ctx.now)
            .await?;
        Ok(StepOutcome::Done(json!({
            "disposition": disposition.as_str(),
            "counts": counts,
            "inputs_hash": inputs_hash,
            "attestation_sha256": attestation,
        })))
    }
}

/// The advisory index of one generation of the advisory store.
#[derive(Debug)]
pub struct CachedIndex {
    pub generation: i64,
    pub index: AdvisoryIndex,
    /// Advisory id → the digests of the current records with that id (one per source).
    digests: HashMap<String, Vec<String>>,
}

impl CachedIndex {
    /// The digests of every advisory naming one of `components`' packages, matched or
    /// not: together they decide the findings, so they are the scan's advisory inputs.
    pub fn candidate_digests(&self, components: &[ScanComponent]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for component in components {
            for (advisory, _) in self.index.candidates(&component.package) {
                for digest in self.digests.get(&advisory.id).into_iter().flatten() {
                    out.insert(format!("sha256:{digest}"));
                }
            }
        }
        out
    }
}

/// The per-process advisory index, rebuilt when the store's generation moves.
#[derive(Debug, Default)]
pub struct AdvisoryCache {
    current: Mutex<Option<Arc<CachedIndex>>>,
}

impl AdvisoryCache {
    /// The index of the store's current advisories. Concurrent callers share one rebuild.
    pub async fn current(&self, store: &Store) -> Result<Arc<CachedIndex>, StoreError> {
        let mut slot = self.current.lock().await;
        // Read before the data: the cached index is never older than its generation.
        let generation = stella_store::repo::generation(store, "advisories").await?;
        if let Some(cached) = slot.as_ref().filter(|c| c.generation == generation) {
            return Ok(cached.clone());
        }
        let stored = store.advisories().all().await?;
        let built = tokio::task::spawn_blocking(move || {
            let mut digests: HashMap<String, Vec<String>> = HashMap::new();
            let mut advisories = Vec::with_capacity(stored.len());
            for record in stored {
                let advisory: Advisory = serde_json::from_value(record.normalized)
                    .map_err(|err| StoreError::Corrupt(format!("advisory {}: {err}", record.id)))?;
                digests.entry(record.id).or_default().push(record.sha256);
                advisories.push(advisory);
            }
            Ok::<_, StoreError>(CachedIndex {
                generation,
                index: AdvisoryIndex::build(advisories),
                digests,
            })
        })
        .await
        .map_err(|err| StoreError::Corrupt(format!("building the advisory index: {err}")))??;
        let built = Arc::new(built);
        *slot = Some(built.clone());
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use stella_domain::{Ecosystem, PackageKey};

    use super::*;

    fn analysis(components: usize) -> Arc<Analysis> {
        let component = ScanComponent {
            purl: "pkg:npm/left-pad@1.3.0".into(),
            package_purl: "pkg:npm/left-pad".into(),
            package: PackageKey::new(Ecosystem::Npm, "left-pad"),
            version: Some("1.3.0".into()),
            bom_refs: vec!["left-pad".into()],
            release: None,
        };
        Arc::new(Analysis {
            format: "cyclonedx".into(),
            spec_version: "1.5".into(),
            summary: SbomSummary::default(),
            context: SbomContext::default(),
            components: vec![component; components],
        })
    }

    #[test]
    fn the_analysis_cache_is_bounded_by_the_components_it_holds() {
        let cache = AnalysisCache::with_budget(100);
        cache.insert("a", analysis(60));
        cache.insert("b", analysis(30));
        assert!(cache.get("a").is_some() && cache.get("b").is_some());
        assert_eq!(cache.weight(), 90);
        // Over the budget: the oldest goes.
        cache.insert("c", analysis(20));
        assert!(cache.get("a").is_none());
        assert_eq!(cache.weight(), 50);
        // Heavier than the whole budget: not kept, and nothing else is evicted for it.
        cache.insert("huge", analysis(101));
        assert!(cache.get("huge").is_none());
        assert_eq!(cache.weight(), 50);
        // The same digest again replaces its entry.
        cache.insert("b", analysis(30));
        assert_eq!(cache.weight(), 50);
        // The last step takes it out.
        assert_eq!(cache.take("b").unwrap().components.len(), 30);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.weight(), 20);

        // Sixteen analyses of the largest SBOM were all held before (1.6 GB).
        let cache = AnalysisCache::default();
        let large = analysis(200_000);
        for i in 0..16 {
            cache.insert(&i.to_string(), large.clone());
        }
        assert_eq!(cache.weight(), 200_000);
        assert!(cache.get("15").is_some() && cache.get("14").is_none());
    }
}
