//! What the exported findings cite, for the document formats: the advisory records they
//! were matched against and the VEX statements their claims name.
//!
//! A scan records its inputs by digest (`inputs.advisories`: every candidate record's
//! SHA-256), and observations are immutable, so the record a finding was decided on is the
//! observation with the finding's advisory id and one of the scan's digests: what it was
//! then, not what the advisory says now. Its bytes are an entry of the collection it was
//! imported in; each collection is read once per run, only for the entries cited
//! ([`read_entries`]). VEX statements are found by the evidence the claims name
//! (`vex:sha256:<document>#<pointer>`) in the tenant's documents or the global ones.
//!
//! The formats collect [`Citations`] in a first pass over the findings (ids and evidence
//! only, never the findings), [`CitedRecords::load`] them, and look each finding up in the
//! second pass ([`CitedRecords::cited`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;

use serde_json::Value;
use stella_domain::export::{parse_vex_evidence, vex_evidence, Cited, ExportFinding};
use stella_domain::osv::{parse_record, read_entries, Advisory};
use stella_domain::scan::InputDigests;
use stella_domain::vex::VexStatement;
use stella_store::object::Sha256Digest;
use stella_store::repo::{FindingRow, ObservationRecord, ScanRecord};
use stella_store::{JobId, StoreError};
use stella_supervisor::{StepContext, StepError};
use tokio::io::AsyncWriteExt;

use super::plan::PlannedScan;
use super::write::{Pass, WriteRun};
use super::ExportDeps;

/// The most bytes one advisory record may have when read back (the import's default
/// limit is 4 MiB).
const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// What the findings name, gathered in a first pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Citations {
    /// Advisory ids.
    pub(super) ids: BTreeSet<String>,
    /// VEX evidence references.
    pub(super) vex: BTreeSet<String>,
}

impl Citations {
    pub(super) fn add(&mut self, finding: &ExportFinding<'_>, stored: &Value) {
        if !self.ids.contains(finding.vulnerability_id) {
            self.ids.insert(finding.vulnerability_id.to_owned());
        }
        for evidence in vex_evidence(stored) {
            if !self.vex.contains(evidence) {
                self.vex.insert(evidence.to_owned());
            }
        }
    }

    /// [`Self::add`] for a finding as stored, unparsed: its advisory id is the row's, and
    /// only a finding whose text holds a string starting `vex:` (canonical JSON escapes no
    /// letter, so the text then holds `"vex:`) is parsed for its VEX evidence.
    pub(super) fn add_row(&mut self, row: &FindingRow) -> Result<(), StepError> {
        if !self.ids.contains(&row.vulnerability_id) {
            self.ids.insert(row.vulnerability_id.clone());
        }
        if row.text.contains("\"vex:") {
            let stored: Value = serde_json::from_str(&row.text).map_err(|err| {
                StepError::abort(format!("finding {}: {err}", row.ordinal)).with_source(err)
            })?;
            for evidence in vex_evidence(&stored) {
                if !self.vex.contains(evidence) {
                    self.vex.insert(evidence.to_owned());
                }
            }
        }
        Ok(())
    }

    pub(super) fn extend(&mut self, other: &Citations) {
        self.ids.extend(other.ids.iter().cloned());
        self.vex.extend(other.vex.iter().cloned());
    }
}

/// A planned scan's row and its input digests, read once per step.
#[derive(Debug, Clone)]
pub(super) struct ScanFacts {
    pub(super) record: ScanRecord,
    pub(super) inputs: InputDigests,
    /// The hex digests of `inputs.advisories`.
    pub(super) advisories: BTreeSet<String>,
}

impl ScanFacts {
    pub(super) async fn load(ctx: &StepContext<'_>, scan: &PlannedScan) -> Result<Self, StepError> {
        let id = JobId::parse(&scan.id)
            .map_err(|err| StepError::abort(format!("scan {:?}: {err}", scan.id)))?;
        let record = ctx
            .store
            .tenant(&ctx.job.tenant)
            .scans()
            .get_without_analysis(&id)
            .await?
            .ok_or_else(|| StepError::abort(format!("scan {id} not found")))?;
        let inputs: InputDigests = record
            .inputs
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|err| StepError::abort(format!("the inputs of scan {id}: {err}")))?
            .ok_or_else(|| StepError::abort(format!("scan {id} has no verdict")))?;
        let advisories = inputs
            .advisories
            .iter()
            .map(|d| d.strip_prefix("sha256:").unwrap_or(d).to_owned())
            .collect();
        Ok(Self {
            record,
            inputs,
            advisories,
        })
    }
}

/// A cited advisory observation, read back.
#[derive(Debug, Clone)]
pub(super) struct CitedAdvisory {
    pub(super) observation: ObservationRecord,
    pub(super) advisory: Advisory,
    /// The record's text as fetched.
    pub(super) record: String,
}

/// A cited VEX statement and the document it is in.
#[derive(Debug, Clone)]
pub(super) struct CitedStatement {
    pub(super) statement: VexStatement,
    /// The statement as stored.
    pub(super) stored: Value,
    /// Its place in the document's statements, for document order.
    pub(super) index: usize,
}

/// A VEX document some statement of which is cited.
#[derive(Debug, Clone)]
pub(super) struct CitedDocument {
    /// `global` or `tenant`.
    pub(super) scope: &'static str,
    pub(super) format: String,
}

/// The records a run's findings cite, loaded.
#[derive(Debug, Default)]
pub(super) struct CitedRecords {
    /// By record digest (hex).
    pub(super) advisories: BTreeMap<String, CitedAdvisory>,
    /// Advisory id → the digests of its cited observations.
    by_id: BTreeMap<String, Vec<String>>,
    /// By evidence reference.
    pub(super) statements: BTreeMap<String, CitedStatement>,
    /// By document digest (hex).
    pub(super) documents: BTreeMap<String, CitedDocument>,
}

impl CitedRecords {
    /// Loads what `citations` name among the records `digests` (hex; the scans' inputs).
    pub(super) async fn load(
        deps: &ExportDeps,
        ctx: &StepContext<'_>,
        citations: &Citations,
        digests: &BTreeSet<String>,
    ) -> Result<Self, StepError> {
        let mut out = CitedRecords::default();
        let observations = ctx
            .store
            .advisories()
            .observations_of(&citations.ids, digests)
            .await?;
        let mut by_collection: BTreeMap<String, Vec<ObservationRecord>> = BTreeMap::new();
        for observation in observations {
            by_collection
                .entry(observation.collection_sha256.clone())
                .or_default()
                .push(observation);
        }
        for (collection, observations) in by_collection {
            for loaded in read_collection(deps, &collection, observations).await? {
                out.by_id
                    .entry(loaded.observation.id.clone())
                    .or_default()
                    .push(loaded.observation.sha256.clone());
                out.advisories
                    .insert(loaded.observation.sha256.clone(), loaded);
            }
        }
        for digests in out.by_id.values_mut() {
            digests.sort_by(|a, b| {
                let source = |d: &String| &out.advisories[d].observation.source;
                (source(a), a).cmp(&(source(b), b))
            });
        }
        out.load_vex(ctx, &citations.vex).await?;
        Ok(out)
    }

    async fn load_vex(
        &mut self,
        ctx: &StepContext<'_>,
        evidence: &BTreeSet<String>,
    ) -> Result<(), StepError> {
        let mut by_document: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for reference in evidence {
            if let Some((sha256, pointer)) = parse_vex_evidence(reference) {
                by_document
                    .entry(sha256)
                    .or_default()
                    .push((reference.as_str(), pointer));
            }
        }
        let vex = ctx.store.vex();
        for (sha256, cited) in by_document {
            // The tenant's own document first, then a vendor's: a scan saw both.
            let (document, scope) = match vex.get(Some(&ctx.job.tenant), sha256).await? {
                Some(document) => (document, "tenant"),
                None => match vex.get(None, sha256).await? {
                    Some(document) => (document, "global"),
                    // Gone since (nothing deletes VEX documents today): nothing to cite.
                    None => continue,
                },
            };
            let statements = document.statements.as_array().cloned().unwrap_or_default();
            for (reference, pointer) in cited {
                let found = statements
                    .iter()
                    .enumerate()
                    .find(|(_, s)| s.get("pointer").and_then(Value::as_str) == Some(pointer));
                let Some((index, stored)) = found else {
                    continue;
                };
                let statement: VexStatement =
                    serde_json::from_value(stored.clone()).map_err(|err| {
                        StepError::abort(format!("stored VEX statement {reference}: {err}"))
                    })?;
                self.statements.insert(
                    reference.to_owned(),
                    CitedStatement {
                        statement,
                        stored: stored.clone(),
                        index,
                    },
                );
            }
            self.documents.insert(
                sha256.to_owned(),
                CitedDocument {
                    scope,
                    format: document.format,
                },
            );
        }
        Ok(())
    }

    /// The observation of advisory `id` among a scan's input digests (the first source's
    /// when two sources have the id).
    pub(super) fn observation(&self, id: &str, scan: &ScanFacts) -> Option<&CitedAdvisory> {
        self.by_id
            .get(id)?
            .iter()
            .find(|d| scan.advisories.contains(*d))
            .map(|d| &self.advisories[d])
    }

    /// What `finding` (the view of `stored`) of `scan` cites.
    pub(super) fn cited(
        &self,
        finding: &ExportFinding<'_>,
        stored: &Value,
        scan: &ScanFacts,
    ) -> Cited<'_> {
        Cited {
            advisory: self
                .observation(finding.vulnerability_id, scan)
                .map(|a| &a.advisory),
            vex: vex_evidence(stored)
                .into_iter()
                .filter_map(|reference| self.statements.get(reference))
                .map(|s| &s.statement)
                .collect(),
        }
    }
}

/// Reads the cited records of one collection object: spooled to a temporary file (a
/// collection can be hundreds of megabytes), each entry found by name, checked against
/// its digest and parsed.
async fn read_collection(
    deps: &ExportDeps,
    collection: &str,
    observations: Vec<ObservationRecord>,
) -> Result<Vec<CitedAdvisory>, StepError> {
    let spool = spool_collection(deps, collection).await?;
    let names: BTreeSet<String> = observations.iter().map(|o| o.entry.clone()).collect();
    let entries = read_spooled(spool.path(), collection, names).await?;
    drop(spool);
    let by_name: BTreeMap<&str, &[u8]> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.bytes.as_slice()))
        .collect();
    let mut out = Vec::with_capacity(observations.len());
    for observation in observations {
        let bytes = by_name.get(observation.entry.as_str()).ok_or_else(|| {
            StepError::abort(format!(
                "advisory {} is not in its collection at {:?}",
                observation.id, observation.entry
            ))
        })?;
        if stella_domain::canonical::sha256_hex(bytes) != observation.sha256 {
            return Err(StepError::abort(format!(
                "advisory {} at {:?} does not hash to its observation {}",
                observation.id, observation.entry, observation.sha256
            )));
        }
        let advisory = parse_record(bytes)
            .map_err(|err| StepError::abort(format!("advisory {}: {err}", observation.id)))?;
        let record = String::from_utf8(bytes.to_vec()).map_err(|err| {
            StepError::abort(format!("advisory {} is not UTF-8: {err}", observation.id))
        })?;
        out.push(CitedAdvisory {
            observation,
            advisory,
            record,
        });
    }
    Ok(out)
}

/// The collection object `collection` (hex digest) in a temporary file, verified.
pub(super) async fn spool_collection(
    deps: &ExportDeps,
    collection: &str,
) -> Result<tempfile::NamedTempFile, StepError> {
    let digest = Sha256Digest::parse(collection)?;
    let spool = tempfile::NamedTempFile::new()
        .map_err(|err| StepError::retry(format!("a temporary file: {err}")).with_source(err))?;
    let mut file = tokio::fs::File::create(spool.path())
        .await
        .map_err(|err| StepError::retry(format!("a temporary file: {err}")).with_source(err))?;
    let mut reader = deps.objects.get_content(&digest).await?;
    tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|err| {
            // The verifying reader fails at the end when the bytes do not match their
            // digest: that stays so. Anything else (a store gone away, a full disk) may
            // pass.
            match err.get_ref().and_then(|e| e.downcast_ref::<StoreError>()) {
                Some(StoreError::Corrupt(reason)) => {
                    StepError::abort(format!("advisory collection sha256/{collection}: {reason}"))
                }
                _ => StepError::retry(format!(
                    "reading advisory collection sha256/{collection}: {err}"
                ))
                .with_source(err),
            }
        })?;
    file.flush()
        .await
        .map_err(|err| StepError::retry(format!("a temporary file: {err}")).with_source(err))?;
    drop(file);
    Ok(spool)
}

/// The entries `names` of a spooled collection (see [`spool_collection`]).
pub(super) async fn read_spooled(
    path: &std::path::Path,
    collection: &str,
    names: BTreeSet<String>,
) -> Result<Vec<stella_domain::osv::RawEntry>, StepError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        Ok::<_, std::io::Error>(read_entries(BufReader::new(file), &names, MAX_RECORD_BYTES))
    })
    .await
    .map_err(|err| StepError::retry(format!("reading a collection did not finish: {err}")))?
    .map_err(|err| StepError::retry(format!("a temporary file: {err}")).with_source(err))?
    .map_err(|err| StepError::abort(format!("advisory collection sha256/{collection}: {err}")))
}

/// The first pass of the formats that cite: each planned scan's facts and what its kept
/// findings cite (read as the run's counted items), and the cited records, loaded.
pub(super) async fn gather(
    run: &mut WriteRun<'_, '_>,
) -> Result<(Vec<(ScanFacts, Citations)>, CitedRecords), StepError> {
    let plan = run.plan;
    let mut scans = Vec::with_capacity(plan.scans.len());
    let mut all = Citations::default();
    let mut digests = BTreeSet::new();
    for scan in &plan.scans {
        let facts = ScanFacts::load(run.ctx, scan).await?;
        let mut citations = Citations::default();
        run.each_stored(scan, Pass::Counted, |finding, record| {
            citations.add(finding, &record.finding);
            Ok(())
        })
        .await?;
        all.extend(&citations);
        digests.extend(facts.advisories.iter().cloned());
        scans.push((facts, citations));
    }
    let records = CitedRecords::load(run.deps, run.ctx, &all, &digests).await?;
    Ok((scans, records))
}
