use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::ids::to_millis;
use crate::{JobId, Store, TenantId};

/// The built-in `noop` job kind's records: its single effect, an idempotent row keyed by
/// job id, and a count of handler runs (redeliveries included). The diagnostics compare
/// the two to prove at-least-once delivery gave exactly-once effects.
#[derive(Debug, Clone, Copy)]
pub struct Noop<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

/// Totals over a set of tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoopTotals {
    pub effects: u64,
    pub executions: u64,
}

impl Noop<'_> {
    /// Writes the job's effect; `false` if it was already written (a redelivery).
    pub async fn write_effect(&self, job: &JobId, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO noop_effects (tenant_id, job_id, written_at) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, job_id) DO NOTHING",
        )
        .bind(self.tenant.as_str())
        .bind(job.as_str())
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "noop effect"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts one handler run of the job.
    pub async fn count_execution(&self, job: &JobId) -> Result<()> {
        sqlx::query(
            "INSERT INTO noop_executions (tenant_id, job_id, runs) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant_id, job_id) DO UPDATE SET runs = noop_executions.runs + 1",
        )
        .bind(self.tenant.as_str())
        .bind(job.as_str())
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "noop execution"))?;
        Ok(())
    }

    pub async fn totals(&self) -> Result<NoopTotals> {
        let effects: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM noop_effects WHERE tenant_id = $1")
                .bind(self.tenant.as_str())
                .fetch_one(&self.store.pool)
                .await
                .map_err(|err| self.store.err(err, "noop effects"))?;
        let runs: (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(runs), 0) AS BIGINT) FROM noop_executions WHERE tenant_id = $1",
        )
        .bind(self.tenant.as_str())
        .fetch_one(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "noop executions"))?;
        Ok(NoopTotals {
            effects: u64::try_from(effects.0).unwrap_or(0),
            executions: u64::try_from(runs.0).unwrap_or(0),
        })
    }
}
