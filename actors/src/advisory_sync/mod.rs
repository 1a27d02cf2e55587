//! The `advisory-sync` job kind: the fetcher downloads each source URL (an OSV
//! `all.zip`, a JSON array or one record) through the outbound guard and imports it (see
//! [`import`]). Advisories are shared by every tenant, so only administrators
//! start a sync: through an advisory-sync schedule or `POST /jobs` with an administrator
//! token. An import of unchanged records is a no-op, so a redelivered or retried step
//! changes nothing twice; changed records raise the `advisory.delta` the scheduler
//! re-evaluates from. The job's result is one import report per source.

mod import;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stella_domain::osv::Limits;
use stella_store::object::Objects;
use stella_supervisor::{
    InvalidParams, Kind, Step, StepContext, StepError, StepOutcome, Submitters,
};

pub use import::{import_advisories, import_collection, Collection, ImportError, ImportReport};

use crate::outbound::{FetchError, Outbound};
use crate::roles::Role;

/// The most sources one sync may name.
pub const MAX_SOURCES: usize = 32;

/// An advisory-sync job's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncParams {
    /// http(s) URLs of OSV collections.
    pub sources: Vec<String>,
}

impl SyncParams {
    /// Checks the sources as the fetcher will: 1 to [`MAX_SOURCES`] URLs, each one the
    /// outbound guard accepts before resolving it.
    pub fn check(&self, outbound: &Outbound) -> Result<(), InvalidParams> {
        if self.sources.is_empty() || self.sources.len() > MAX_SOURCES {
            return Err(InvalidParams::new(
                "sources",
                format!("an advisory sync needs 1 to {MAX_SOURCES} source URLs"),
            ));
        }
        for (i, url) in self.sources.iter().enumerate() {
            outbound
                .check(url)
                .map_err(|err| InvalidParams::new(format!("sources[{i}]"), err.to_string()))?;
        }
        Ok(())
    }
}

/// The `advisory-sync` job kind: what its one step needs.
#[derive(Debug, Clone)]
pub struct AdvisorySync {
    objects: Objects,
    outbound: Outbound,
}

impl AdvisorySync {
    pub fn new(objects: Objects, outbound: Outbound) -> Self {
        Self { objects, outbound }
    }
}

/// Its one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStep {
    Fetch,
}

impl Step for SyncStep {
    const ALL: &'static [Self] = &[SyncStep::Fetch];

    fn name(self) -> &'static str {
        "fetch"
    }

    fn role(self) -> stella_store::mailbox::Role {
        Role::Fetcher.mailbox()
    }
}

#[async_trait]
impl Kind for AdvisorySync {
    const NAME: &'static str = "advisory-sync";
    const SUBMITTERS: Submitters = Submitters::Administrators;
    type Params = SyncParams;
    type Step = SyncStep;

    fn check(&self, params: &SyncParams) -> Result<(), InvalidParams> {
        params.check(&self.outbound)
    }

    async fn run(
        &self,
        _step: SyncStep,
        params: &SyncParams,
        ctx: &mut StepContext<'_>,
    ) -> Result<StepOutcome<SyncStep>, StepError> {
        let mut reports = Vec::with_capacity(params.sources.len());
        for (i, url) in params.sources.iter().enumerate() {
            let source = i + 1;
            // A download is spooled to a temporary file and read from there one record
            // at a time: its size is bounded by `outbound.max_bytes`, not by memory.
            let download = self
                .outbound
                .download(url, &std::env::temp_dir())
                .await
                .map_err(|err| {
                    let message = format!("source {source}: {err}");
                    match err {
                        FetchError::Transient(_) => StepError::retry(message),
                        FetchError::Forbidden(_) | FetchError::Refused(_) => {
                            StepError::abort(message)
                        }
                    }
                    .with_source(err)
                })?;
            let report = import_collection(
                ctx.store,
                &self.objects,
                url,
                Collection::File(download.file.path().to_owned()),
                Limits::default(),
                ctx.now,
            )
            .await
            .map_err(|err| match err {
                ImportError::Store(err) => StepError::from(err),
                other => StepError::abort(format!("source {source}: {other}")).with_source(other),
            })?;
            drop(download);
            reports.push(serde_json::json!({
                "source": report.source,
                "records": report.records,
                "new": report.new,
                "changed": report.changed,
                "unchanged": report.unchanged,
            }));
        }
        Ok(StepOutcome::Done(serde_json::json!({ "imports": reports })))
    }
}
