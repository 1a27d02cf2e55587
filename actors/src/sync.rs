//! The `advisory-sync` job kind: the fetcher downloads each source URL (an OSV
//! `all.zip`, a JSON array or one record) and imports it (see [`crate::fetcher`]). An
//! import of unchanged records is a no-op, so a redelivered or retried step changes
//! nothing twice; changed records raise the `advisory.delta` the scheduler re-evaluates
//! from. The job's result is one import report per source.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use stella_domain::osv::Limits;
use stella_store::mailbox::Role;
use stella_store::object::Objects;

use crate::fetcher::{import_advisories, ImportError};
use crate::handler::{JobKind, StepContext, StepError, StepHandler, StepOutcome};

pub const KIND: &str = "advisory-sync";

/// The largest download accepted from one source (compressed bytes).
const MAX_DOWNLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// An advisory-sync job's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncParams {
    /// http(s) URLs of OSV collections.
    pub sources: Vec<String>,
}

pub fn kind(objects: Objects) -> JobKind {
    let mut steps: BTreeMap<&'static str, Arc<dyn StepHandler>> = BTreeMap::new();
    steps.insert(
        "fetch",
        Arc::new(Fetch {
            objects,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(600))
                .build()
                .unwrap_or_default(),
        }),
    );
    JobKind {
        name: KIND,
        first_step: "fetch",
        role: Role::parse("fetcher").unwrap_or_else(|_| unreachable!("a valid role literal")),
        steps,
    }
}

#[derive(Debug)]
struct Fetch {
    objects: Objects,
    http: reqwest::Client,
}

impl Fetch {
    /// The body of `url`, at most [`MAX_DOWNLOAD_BYTES`]; server and network failures are
    /// worth a retry, a client error (404, 403) is not.
    async fn download(&self, url: &str) -> Result<Vec<u8>, StepError> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|err| StepError::Retry(format!("cannot fetch {url}: {err}")))?;
        let status = response.status();
        if status.is_client_error() {
            return Err(StepError::Abort(format!("{url} answered {status}")));
        }
        if !status.is_success() {
            return Err(StepError::Retry(format!("{url} answered {status}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| StepError::Retry(format!("reading {url}: {err}")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > MAX_DOWNLOAD_BYTES {
                return Err(StepError::Abort(format!(
                    "{url} is larger than {MAX_DOWNLOAD_BYTES} bytes"
                )));
            }
        }
        Ok(body)
    }
}

#[async_trait]
impl StepHandler for Fetch {
    async fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
        let params: SyncParams = serde_json::from_value(ctx.job.params.clone())
            .map_err(|err| StepError::Abort(format!("invalid advisory-sync parameters: {err}")))?;
        let mut reports = Vec::with_capacity(params.sources.len());
        for url in &params.sources {
            let bytes = self.download(url).await?;
            let report = import_advisories(
                ctx.store,
                &self.objects,
                url,
                &bytes,
                Limits::default(),
                ctx.now,
            )
            .await
            .map_err(|err| match err {
                ImportError::Store(err) => StepError::from(err),
                other => StepError::Abort(format!("{url}: {other}")),
            })?;
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
