//! Scan intake: an SBOM in, a submitted `scan` job out. The use case behind
//! `POST /sboms` and `POST /scans`. The API adds what is HTTP's (the query's shape, the
//! `Idempotency-Key` header, claimed with a fingerprint of the request between
//! [`Intake::sbom`] and [`Intake::submit`], and the responses) and the target
//! registration, which is the scheduler's (a crate above this one).
//!
//! The SBOM is parsed before anything is stored, so a malformed one is refused with the
//! JSON pointer of its first error and leaves nothing behind; its raw bytes are then
//! stored content-addressed (`sha256/<hex>`) and recorded for the tenant, and its
//! analysis is handed to this process's scan steps ([`AnalysisCache`](super::AnalysisCache)),
//! which then need not parse it again.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use stella_domain::analysis::Analysis;
use stella_domain::sbom::{self, SbomError};
use stella_store::object::Sha256Digest;
use stella_store::repo::{Job, SbomRecord};
use stella_store::{Store, StoreError, TenantId};
use stella_supervisor::{submit, JobRequest, Kind, Registry};

use super::{Scan, ScanDeps, ScanParams};

/// Why an SBOM or a scan was refused.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Not a CycloneDX or SPDX JSON SBOM, or one with more components than allowed.
    #[error(transparent)]
    Sbom(#[from] SbomError),
    /// A request field is wrong (`field` names it).
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Not an image archive, or a hostile one.
    #[error(transparent)]
    Image(#[from] stella_domain::image::ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The work itself failed (a panic while parsing).
    #[error("{0}")]
    Failed(String),
}

/// Where a scan's SBOM comes from.
#[derive(Debug, Clone)]
pub enum SbomSource {
    /// A new SBOM's bytes.
    Body(Bytes),
    /// One the tenant stored before: its hex SHA-256, with or without `sha256:`.
    Stored(String),
}

/// How to submit a scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The evaluation time (exceptions expire against it; part of the inputs hash).
    pub evaluated_at: DateTime<Utc>,
    /// Submitting again with the same key yields the first scan (the client's
    /// `Idempotency-Key`; the job's own key is derived from it).
    pub idempotency_key: Option<String>,
    pub max_attempts: u32,
}

/// An SBOM stored for a tenant, with its analysis.
#[derive(Debug, Clone)]
pub struct StoredSbom {
    pub record: SbomRecord,
    pub analysis: Arc<Analysis>,
}

/// A submitted scan: its job, and the SBOM it scans.
#[derive(Debug, Clone)]
pub struct SubmittedScan {
    pub job: Job,
    pub sbom_sha256: String,
}

/// The longest subject name a scan may carry.
const MAX_NAME_CHARS: usize = 500;

/// Stores SBOMs and submits their scans.
#[derive(Debug, Clone)]
pub struct Intake {
    pub(super) store: Store,
    deps: ScanDeps,
    registry: Registry,
    /// Components an SBOM may have (`api.max_sbom_components`).
    max_components: usize,
}

impl Intake {
    /// What the scan kind's steps share (objects, caches), for the use cases that
    /// evaluate scans outside a job (shadow diffs).
    pub fn deps(&self) -> &ScanDeps {
        &self.deps
    }

    pub fn new(store: Store, deps: ScanDeps, registry: Registry, max_components: usize) -> Self {
        Self {
            store,
            deps,
            registry,
            max_components,
        }
    }

    /// Parses and stores an SBOM for the tenant, under `name` or its own: nothing is
    /// stored unless it parses.
    pub async fn store_sbom(
        &self,
        tenant: &TenantId,
        bytes: Bytes,
        name: Option<&str>,
    ) -> Result<StoredSbom, IntakeError> {
        let parse_bytes = bytes.clone();
        let max_components = self.max_components;
        let (analysis, own_name) = tokio::task::spawn_blocking(move || {
            let parsed = sbom::parse_limited(&parse_bytes, max_components)?;
            let name = parsed
                .subject
                .as_ref()
                .map(|s| s.name.clone())
                .or_else(|| parsed.name.clone());
            Ok::<_, SbomError>((Analysis::from_sbom(parsed), name))
        })
        .await
        .map_err(|err| IntakeError::Failed(format!("parsing the SBOM: {err}")))??;
        let name = match name {
            Some(n) => n.to_owned(),
            None => own_name.unwrap_or_else(|| "sbom".to_owned()),
        };
        if name.trim().is_empty() || name.len() > MAX_NAME_CHARS {
            return Err(IntakeError::Invalid {
                field: "name",
                message: format!("name must be 1-{MAX_NAME_CHARS} characters"),
            });
        }
        let size = bytes.len() as u64;
        let stored = self.deps.objects.put_content(bytes).await?;
        let analysis = Arc::new(analysis);
        self.deps
            .analyses
            .insert(&stored.digest.to_string(), analysis.clone());
        let record = SbomRecord {
            sha256: stored.digest.to_string(),
            name,
            format: analysis.format.clone(),
            spec_version: analysis.spec_version.clone(),
            size_bytes: size,
            created_at: Utc::now(),
        };
        self.store
            .tenant(tenant)
            .scans()
            .record_sbom(&record)
            .await?;
        Ok(StoredSbom { record, analysis })
    }

    /// The SBOM a scan will read, stored now if it is new: its digest and the scan's
    /// subject name (`name`, else the SBOM's own subject or document name, or for a
    /// stored SBOM the name it was stored under).
    pub async fn sbom(
        &self,
        tenant: &TenantId,
        source: SbomSource,
        name: Option<String>,
    ) -> Result<(String, String), IntakeError> {
        match source {
            SbomSource::Stored(reference) => {
                let hex = reference.strip_prefix("sha256:").unwrap_or(&reference);
                Sha256Digest::parse(hex).map_err(|err| IntakeError::Invalid {
                    field: "sbom",
                    message: err.to_string(),
                })?;
                let record = self.store.tenant(tenant).scans().sbom(hex).await?;
                Ok((record.sha256, name.unwrap_or(record.name)))
            }
            SbomSource::Body(bytes) => {
                let stored = self.store_sbom(tenant, bytes, name.as_deref()).await?;
                Ok((stored.record.sha256, stored.record.name))
            }
        }
    }

    /// Submits the scan of a stored SBOM (see [`Intake::sbom`]).
    pub async fn submit(
        &self,
        tenant: &TenantId,
        sbom_sha256: String,
        name: String,
        request: &ScanOptions,
    ) -> Result<SubmittedScan, IntakeError> {
        let params = ScanParams {
            sbom_sha256: sbom_sha256.clone(),
            name,
            evaluated_at: request.evaluated_at,
        };
        let mut job = JobRequest::of::<Scan>(&params)?.with_attempts(request.max_attempts);
        job.idempotency_key = request
            .idempotency_key
            .as_ref()
            .map(|key| format!("{}:{key}", Scan::NAME));
        let submitted = submit(&self.store, &self.registry, tenant, &job, Utc::now()).await?;
        let job = submitted.job;
        // A repeated submission returns the first scan, whose SBOM may differ.
        let sbom_sha256 = serde_json::from_value::<ScanParams>(job.params.clone())
            .map(|p| p.sbom_sha256)
            .unwrap_or(sbom_sha256);
        Ok(SubmittedScan { job, sbom_sha256 })
    }

    /// The analysis of an SBOM this process parsed recently, if it still holds it.
    pub fn analysis(&self, sbom_sha256: &str) -> Option<Arc<Analysis>> {
        self.deps.analyses.get(sbom_sha256)
    }
}
