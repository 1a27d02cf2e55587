//! The scan's three steps. Each is thin: the work is `stella_domain`'s pure functions, run
//! on the blocking pool because parsing and matching are CPU work.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};
use stella_domain::analysis::Analysis;
use stella_domain::canonical::Digest;
use stella_domain::osv::Affected;
use stella_domain::policy::{Pack, Policy, DEFAULT_POLICY};
use stella_domain::sbom::ImageSubject;
use stella_domain::scan::{
    self, FindingText, InputDigests, ScanInputs, SealedVerdict, VerdictSummary,
};
use stella_domain::vex::{self, VexStatement};
use stella_store::object::Sha256Digest;
use stella_store::repo::{NewEvent, NewFinding, VerdictRecord};
use stella_store::Store;
use stella_supervisor::{StepContext, StepError, StepOutcome};

use super::{ScanDeps, ScanParams, ScanStep};

/// Runs CPU work off the actor thread; a panic inside is a failed attempt.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StepError> {
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        StepError::retry(format!("scan work did not finish: {err}")).with_source(err)
    })
}

/// `analyze` (analyzer): keeps the SBOM's analysis on the scan row.
pub(super) async fn analyze(
    deps: &ScanDeps,
    params: &ScanParams,
    ctx: &StepContext<'_>,
) -> Result<StepOutcome<ScanStep>, StepError> {
    let analysis = match deps.analyses.get(&params.sbom_sha256) {
        Some(analysis) => analysis,
        None => analyze_stored(deps, &params.sbom_sha256).await?,
    };
    let text = blocking(move || serde_json::to_string(analysis.as_ref()))
        .await?
        .map_err(|err| StepError::abort(format!("analysis: {err}")))?;
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
    Ok(StepOutcome::Next(ScanStep::Evaluate))
}

/// Reads the stored SBOM and analyzes it (and caches the analysis for `evaluate`).
async fn analyze_stored(deps: &ScanDeps, sbom_sha256: &str) -> Result<Arc<Analysis>, StepError> {
    let digest = Sha256Digest::parse(sbom_sha256)
        .map_err(|err| StepError::abort(format!("invalid sbom digest: {err}")))?;
    // Verified against its digest while read: a tampered object is an error here.
    let bytes = deps.objects.read_content(&digest).await?;
    let analysis = blocking(move || Analysis::of(&bytes))
        .await?
        .map_err(|err| StepError::abort(format!("the stored SBOM does not parse: {err}")))?;
    let analysis = Arc::new(analysis);
    deps.analyses.insert(sbom_sha256, analysis.clone());
    Ok(analysis)
}

pub(crate) fn is_affected(version: &str, affected: &Affected) -> bool {
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
    Policy::parse(&text).map_err(|err| StepError::abort(format!("the stored policy: {err}")))
}

/// The pack assigned to the tenant, parsed, with the digest verdict inputs record for it
/// (`pack:<name>@<version>:sha256:<digest>`).
pub async fn assigned_pack(
    store: &Store,
    tenant: &stella_store::TenantId,
) -> Result<Option<(Pack, String)>, StepError> {
    let Some(record) = store.packs().assigned(tenant).await? else {
        return Ok(None);
    };
    pack_of(&record).map(Some)
}

/// A stored pack version, parsed, with its inputs digest.
pub fn pack_of(record: &stella_store::repo::PackRecord) -> Result<(Pack, String), StepError> {
    let policy = Policy::parse(&record.document).map_err(|err| {
        StepError::abort(format!(
            "the stored policy pack {}@{}: {err}",
            record.name, record.version
        ))
    })?;
    let pack = Pack {
        name: record.name.clone(),
        version: record.version,
        policy,
    };
    let digest = format!("pack:{}:{}", pack.label(), pack.policy.digest());
    Ok((pack, digest))
}

/// Everything a tenant's scan of one target is decided by: the active policy and the
/// assigned pack, each with the tenant's exceptions in force, and the digests the
/// verdict's inputs record.
#[derive(Debug)]
pub struct Policies {
    pub policy: Policy,
    pub policy_digest: String,
    pub pack: Option<Pack>,
    pub pack_digest: Option<String>,
    pub exception_digests: BTreeSet<String>,
}

impl Policies {
    /// The tenant's policies for `target` now: its active policy (or the default) and
    /// its assigned pack, or `candidate` instead of either when given.
    pub async fn load(
        store: &Store,
        tenant: &stella_store::TenantId,
        target: &str,
        candidate: Candidate,
    ) -> Result<Policies, StepError> {
        TenantPolicies::load(store, tenant, candidate)
            .await?
            .for_target(target)
    }
}

/// A tenant's policies read once (active policy, pack, every exception in force), to be
/// specialised per target: what a shadow evaluation of many targets reads.
#[derive(Debug, Clone)]
pub struct TenantPolicies {
    policy: Policy,
    pack: Option<(Pack, String)>,
    /// Each with the target it is scoped to (`None`: every target).
    exceptions: Vec<(Option<String>, stella_domain::policy::Exception)>,
}

impl TenantPolicies {
    /// Reads the tenant's policies, with `candidate` in place of its own.
    pub async fn load(
        store: &Store,
        tenant: &stella_store::TenantId,
        candidate: Candidate,
    ) -> Result<TenantPolicies, StepError> {
        let policy = match &candidate {
            Candidate::Policy(policy) => policy.clone(),
            _ => active_policy(store, tenant).await?,
        };
        let pack = match candidate {
            Candidate::Pack(pack) => Some(pack),
            _ => assigned_pack(store, tenant).await?,
        };
        let exceptions = exceptions_in_force(store, tenant).await?;
        Ok(TenantPolicies {
            policy,
            pack,
            exceptions,
        })
    }

    /// The policies a scan of `target` is decided by.
    pub fn for_target(&self, target: &str) -> Result<Policies, StepError> {
        let exceptions: Vec<_> = self
            .exceptions
            .iter()
            .filter(|(scope, _)| scope.as_deref().is_none_or(|t| t == target))
            .map(|(_, exception)| exception.clone())
            .collect();
        let (pack, pack_digest) = match &self.pack {
            Some((pack, digest)) => {
                let mut pack = pack.clone();
                pack.policy.exceptions.extend(exceptions.iter().cloned());
                (Some(pack), Some(digest.clone()))
            }
            None => (None, None),
        };
        let exception_digests = exceptions
            .iter()
            .map(exception_digest)
            .collect::<Result<_, _>>()?;
        let mut policy = self.policy.clone();
        let policy_digest = policy.digest();
        policy.exceptions.extend(exceptions);
        Ok(Policies {
            policy,
            policy_digest,
            pack,
            pack_digest,
            exception_digests,
        })
    }
}

/// What a shadow evaluation puts in place of the tenant's own.
#[derive(Debug, Clone)]
pub enum Candidate {
    /// Nothing: the tenant's policies as they are.
    InForce,
    /// This policy instead of the tenant's active one (its pack stays).
    Policy(Policy),
    /// This pack (parsed, with its digest) instead of the tenant's assigned one.
    Pack((Pack, String)),
}

fn exception_digest(exception: &stella_domain::policy::Exception) -> Result<String, StepError> {
    let terms = to_value(exception, "exception")?;
    let digest = stella_domain::canonical::Digest::sha256(
        &stella_domain::canonical::canonical_bytes(&terms),
    );
    Ok(format!("exception:{}:{digest}", exception.id))
}

/// The tenant's exceptions in force, with their target scope, each as a policy's own
/// exception (so the one evaluation path decides whether it still applies at the
/// evaluation time, and the explain trace names it with its approver and expiry). They
/// apply to the tenant's policy and to its pack alike.
async fn exceptions_in_force(
    store: &Store,
    tenant: &stella_store::TenantId,
) -> Result<Vec<(Option<String>, stella_domain::policy::Exception)>, StepError> {
    let records = store.tenant(tenant).exceptions().in_force().await?;
    let mut exceptions = Vec::new();
    for record in records {
        let scope = record.target;
        let exception = stella_domain::policy::Exception {
            id: record.id.to_string(),
            vulnerabilities: vec![record.vulnerability],
            packages: record.package.into_iter().collect(),
            reason: format!("{}: {}", record.kind, record.justification),
            approver: record.decided_by.unwrap_or_default(),
            expires: Some(record.expires_at),
            outcome: stella_domain::policy::Disposition::Pass,
        };
        exceptions.push((scope, exception));
    }
    Ok(exceptions)
}

/// The VEX statements a tenant's scans read (its own documents and the global ones), each
/// with its evidence reference, and the documents' digests.
pub async fn vex_statements(
    store: &Store,
    tenant: &stella_store::TenantId,
) -> Result<(Vec<(VexStatement, String)>, BTreeSet<String>), StepError> {
    let documents = store.vex().for_tenant(tenant).await?;
    let mut statements = Vec::new();
    let mut digests = BTreeSet::new();
    for document in documents {
        let parsed: Vec<VexStatement> = serde_json::from_value(document.statements)
            .map_err(|err| StepError::abort(format!("stored VEX statements: {err}")))?;
        for statement in parsed {
            let evidence = format!("vex:sha256:{}#{}", document.sha256, statement.pointer);
            statements.push((statement, evidence));
        }
        digests.insert(format!("sha256:{}", document.sha256));
    }
    Ok((statements, digests))
}

/// `evaluate` (evaluator): matches the analysis against the advisories, joins VEX and
/// applies the tenant's policy at the scan's evaluation time.
pub(super) async fn evaluate(
    deps: &ScanDeps,
    params: &ScanParams,
    ctx: &StepContext<'_>,
) -> Result<StepOutcome<ScanStep>, StepError> {
    let scans = ctx.store.tenant(&ctx.job.tenant).scans();
    let scan = scans
        .get_without_analysis(&ctx.job.id)
        .await?
        .ok_or_else(|| StepError::retry("the scan's analysis is not committed"))?;
    if scan.attestation_sha256.is_some() {
        // Sealed by an earlier delivery: the verdict stays what was signed.
        return Ok(next_seal());
    }
    // Taken, not read: nothing after the evaluation needs it, and a large SBOM's
    // analysis is over a hundred megabytes. A redelivery decodes the stored one.
    let analysis = match deps.analyses.take(&params.sbom_sha256) {
        Some(analysis) => analysis,
        None => Arc::new(stored(scans.analysis(&ctx.job.id).await?, "analysis")?),
    };
    let index = deps.advisories.current(ctx.store).await?;
    let (statements, vex_digests) = vex_statements(ctx.store, &ctx.job.tenant).await?;
    let Policies {
        policy,
        policy_digest,
        pack,
        pack_digest,
        exception_digests,
    } = Policies::load(ctx.store, &ctx.job.tenant, &params.name, Candidate::InForce).await?;
    let sbom_digest = format!("sha256:{}", params.sbom_sha256);
    let at = params.evaluated_at;
    let record = blocking(move || {
        let inputs = ScanInputs {
            components: &analysis.components,
            sbom: &analysis.context,
            index: &index.index,
            vex: &statements,
            policy: &policy,
            pack: pack.as_ref(),
            at,
        };
        // Each finding is kept as its canonical text only (a few hundred bytes to a
        // few kilobytes), never as a whole verdict of structs or JSON values.
        let mut findings = Vec::new();
        let mut bytes = 0usize;
        let summary =
            scan::evaluate_each(&inputs, &is_affected, &vex::generic_compare, |finding| {
                let text = FindingText::of(&finding)
                    .map_err(|err| StepError::abort(format!("finding: {err}")))?;
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
            policy: policy_digest,
            evaluated_at: Some(at),
            exceptions: exception_digests,
            pack: pack_digest,
        };
        verdict_record(summary, findings, &digests)
    })
    .await??;
    scans.record_verdict(&ctx.job.id, &record).await?;
    Ok(next_seal())
}

/// A part of the scan row an earlier step committed, decoded; missing or undecodable is
/// permanent (retrying cannot make it appear).
fn stored<T: serde::de::DeserializeOwned>(
    value: Option<String>,
    what: &str,
) -> Result<T, StepError> {
    let text = value.ok_or_else(|| StepError::abort(format!("the scan has no {what}")))?;
    serde_json::from_str(&text).map_err(|err| StepError::abort(format!("stored {what}: {err}")))
}

/// The stored verdict to sign. A scan evaluated before attestations were bounded stored
/// the whole verdict: it is sealed the way it would be now.
fn sealed_verdict(text: Option<String>) -> Result<SealedVerdict, StepError> {
    let text = text.ok_or_else(|| StepError::abort("the scan has no verdict"))?;
    match serde_json::from_str::<SealedVerdict>(&text) {
        Ok(sealed) => Ok(sealed),
        Err(err) => {
            let whole: scan::Verdict = serde_json::from_str(&text)
                .map_err(|_| StepError::abort(format!("stored verdict: {err}")))?;
            SealedVerdict::of(&whole)
                .map_err(|err| StepError::abort(format!("sealed verdict: {err}")))
        }
    }
}

fn next_seal() -> StepOutcome<ScanStep> {
    StepOutcome::Next(ScanStep::Seal)
}

fn to_value<T: Serialize>(value: &T, what: &str) -> Result<Value, StepError> {
    serde_json::to_value(value).map_err(|err| StepError::abort(format!("{what}: {err}")))
}

/// How much canonical JSON a scan's findings may take, all together: 128 MiB, about
/// 100,000 findings with their traces. The evaluator holds them (as text) until they are
/// stored, and an SBOM can name one package many times over (a package with 300
/// advisories, 200,000 times, would be 60 million findings): past this the scan fails
/// with a message saying so, instead of taking the process's memory.
pub const MAX_FINDINGS_BYTES: usize = 128 * 1024 * 1024;

fn too_many_findings(found: usize) -> StepError {
    StepError::abort(format!(
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
        .map_err(|err| StepError::abort(format!("sealed verdict: {err}")))?;
    let verdict = serde_json::to_string(&sealed)
        .map_err(|err| StepError::abort(format!("verdict: {err}")))?;
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

/// `seal` (sealer): signs the verdict as an in-toto statement in a DSSE envelope, stores
/// it and emits `scan.completed`.
pub(super) async fn seal(
    deps: &ScanDeps,
    params: &ScanParams,
    ctx: &StepContext<'_>,
) -> Result<StepOutcome<ScanStep>, StepError> {
    let scans = ctx.store.tenant(&ctx.job.tenant).scans();
    let status = scans
        .status(&ctx.job.id)
        .await?
        .ok_or_else(|| StepError::abort("the scan has no row"))?;
    let declared: Option<ImageSubject> = status
        .image
        .map(serde_json::from_value)
        .transpose()
        .map_err(|err| StepError::abort(format!("the analysis' image: {err}")))?;
    // The attestation names the image only when Stella made this SBOM of it here (an
    // upload of this tenant): an SBOM anyone wrote may claim any digest.
    let image = match declared {
        Some(image) => match ctx
            .store
            .tenant(&ctx.job.tenant)
            .images()
            .get(&image.digest)
            .await
        {
            Ok(record) if record.sbom_sha256 == params.sbom_sha256 => Some(image),
            Ok(_) | Err(stella_store::StoreError::NotFound(_)) => None,
            Err(err) => return Err(err.into()),
        },
        None => None,
    };
    let scan = status.scan;
    let verdict = sealed_verdict(scan.verdict)?;
    let inputs: InputDigests = stored(scan.inputs.as_ref().map(Value::to_string), "inputs")?;
    let sbom_digest = Digest::from_hex(&params.sbom_sha256)
        .map_err(|err| StepError::abort(format!("invalid sbom digest: {err}")))?;
    let key = deps.signing_key.clone();
    let name = params.name.clone();
    let disposition = verdict.disposition;
    let counts = verdict.counts.clone();
    let inputs_hash = inputs.hash();
    let envelope = blocking(move || {
        scan::seal(&verdict, &inputs, &name, &sbom_digest, image.as_ref(), &key)
            .map(|e| e.to_json())
    })
    .await?
    .map_err(|err| StepError::abort(format!("sealing: {err}")))?;
    let stored = deps.objects.put_content(Bytes::from(envelope)).await?;
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
