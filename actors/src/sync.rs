//! The `advisory-sync` job kind: the fetcher downloads each source URL (an OSV
//! `all.zip`, a JSON array or one record) through the outbound guard and imports it (see
//! [`crate::fetcher`]). Advisories are shared by every tenant, so only administrators
//! start a sync: through an advisory-sync schedule or `POST /jobs` with an administrator
//! token. An import of unchanged records is a no-op, so a redelivered or retried step
//! changes nothing twice; changed records raise the `advisory.delta` the scheduler
//! re-evaluates from. The job's result is one import report per source.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stella_domain::osv::Limits;
use stella_store::mailbox::Role;
use stella_store::object::Objects;

use crate::fetcher::{import_collection, Collection, ImportError};
use crate::handler::{
    CheckParams, JobKind, StepContext, StepError, StepHandler, StepOutcome, Submitters,
};
use crate::outbound::{FetchError, Outbound};

pub const KIND: &str = "advisory-sync";

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
    pub fn check(&self, outbound: &Outbound) -> Result<(), (String, String)> {
        if self.sources.is_empty() || self.sources.len() > MAX_SOURCES {
            return Err((
                "sources".into(),
                format!("an advisory sync needs 1 to {MAX_SOURCES} source URLs"),
            ));
        }
        for (i, url) in self.sources.iter().enumerate() {
            outbound
                .check(url)
                .map_err(|err| (format!("sources[{i}]"), err.to_string()))?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Check(Outbound);

impl CheckParams for Check {
    fn check(&self, params: &serde_json::Value) -> Result<(), (String, String)> {
        let params: SyncParams = serde_json::from_value(params.clone()).map_err(|err| {
            (
                String::new(),
                format!("invalid advisory-sync parameters: {err}"),
            )
        })?;
        params.check(&self.0)
    }
}

pub fn kind(objects: Objects, outbound: Outbound) -> JobKind {
    let mut steps: BTreeMap<&'static str, Arc<dyn StepHandler>> = BTreeMap::new();
    steps.insert(
        "fetch",
        Arc::new(Fetch {
            objects,
            outbound: outbound.clone(),
        }),
    );
    JobKind {
        name: KIND,
        first_step: "fetch",
        role: Role::parse("fetcher").unwrap_or_else(|_| unreachable!("a valid role literal")),
        steps,
        submitters: Submitters::Administrators,
        params: Some(Arc::new(Check(outbound))),
    }
}

#[derive(Debug)]
struct Fetch {
    objects: Objects,
    outbound: Outbound,
}

#[async_trait]
impl StepHandler for Fetch {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
        let params: SyncParams = serde_json::from_value(ctx.job.params.clone())
            .map_err(|err| StepError::Abort(format!("invalid advisory-sync parameters: {err}")))?;
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
                        FetchError::Transient(_) => StepError::Retry(message),
                        FetchError::Forbidden(_) | FetchError::Refused(_) => {
                            StepError::Abort(message)
                        }
                    }
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
                other => StepError::Abort(format!("source {source}: {other}")),
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
