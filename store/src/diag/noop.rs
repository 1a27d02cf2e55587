use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::group::{Coalescer, MAX_BATCH};
use crate::ids::to_millis;
use crate::repo::JobKey;
use crate::{JobId, Store, TenantId};
use std::collections::{HashMap, HashSet};

/// The built-in `noop` job kind's records: its single effect, an idempotent row keyed by
/// job id, and a count of handler runs (redeliveries included). The diagnostics compare
/// the two to prove at-least-once delivery gave exactly-once effects.
#[derive(Debug, Clone, Copy)]
pub struct Noop<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

/// The noop kind's group commits (shared by a store's clones): concurrent effect writes
/// and execution counts of many jobs become one statement each.
#[derive(Debug)]
pub(crate) struct NoopGroups {
    effects: Coalescer<(JobKey, i64), bool>,
    executions: Coalescer<JobKey, ()>,
}

impl Default for NoopGroups {
    fn default() -> Self {
        Self {
            effects: Coalescer::new(|store, keys| {
                Box::pin(async move { write_noop_effects(&store, &keys).await })
            }),
            executions: Coalescer::new(|store, keys| {
                Box::pin(async move { count_noop_executions(&store, &keys).await })
            }),
        }
    }
}

/// Totals over a set of tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoopTotals {
    pub effects: u64,
    pub executions: u64,
}

impl Noop<'_> {
    /// Writes the job's effect; `false` if it was already written (a redelivery).
    /// Concurrent writes share one statement (group commit); each caller still returns
    /// only once its own row is committed.
    pub async fn write_effect(&self, job: &JobId, now: DateTime<Utc>) -> Result<bool> {
        let key = JobKey {
            tenant: self.tenant.clone(),
            id: job.clone(),
        };
        self.store
            .noop
            .effects
            .call(self.store, (key, to_millis(now)))
            .await
    }

    /// Counts one handler run of the job (group commit, like [`Noop::write_effect`]).
    pub async fn count_execution(&self, job: &JobId) -> Result<()> {
        let key = JobKey {
            tenant: self.tenant.clone(),
            id: job.clone(),
        };
        self.store.noop.executions.call(self.store, key).await
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

/// Writes many jobs' effects in one statement; for each key, whether its row is new.
/// A key given twice is new at most once.
async fn write_noop_effects(store: &Store, keys: &[(JobKey, i64)]) -> Vec<Result<bool>> {
    let inserted = if store.backend() == crate::Backend::Postgres {
        insert_effects_pg(store, keys).await
    } else {
        insert_effects(store, keys).await
    };
    match inserted {
        Ok(mut fresh) => keys
            .iter()
            .map(|(key, _)| Ok(fresh.remove(&(key.tenant.to_string(), key.id.to_string()))))
            .collect(),
        Err(err) => keys.iter().map(|_| Err(err.clone())).collect(),
    }
}

/// The effect rows that were new, as (tenant, job).
async fn insert_effects(
    store: &Store,
    keys: &[(JobKey, i64)],
) -> Result<HashSet<(String, String)>> {
    let mut fresh = HashSet::new();
    for chunk in keys.chunks(MAX_BATCH) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO noop_effects (tenant_id, job_id, written_at) VALUES {} \
             ON CONFLICT (tenant_id, job_id) DO NOTHING RETURNING tenant_id, job_id",
            rows.join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, String)>(&sql);
        for (key, at) in chunk {
            query = query
                .bind(key.tenant.as_str())
                .bind(key.id.as_str())
                .bind(*at);
        }
        let rows = query
            .fetch_all(&store.pool)
            .await
            .map_err(|err| store.err(err, "noop effect"))?;
        fresh.extend(rows);
    }
    Ok(fresh)
}

/// [`insert_effects`] on PostgreSQL: the rows as one JSON parameter, so the statement
/// text is the same for every batch size and stays prepared on each connection.
async fn insert_effects_pg(
    store: &Store,
    keys: &[(JobKey, i64)],
) -> Result<HashSet<(String, String)>> {
    let rows: Vec<serde_json::Value> = keys
        .iter()
        .map(|(key, at)| serde_json::json!([key.tenant.as_str(), key.id.as_str(), at]))
        .collect();
    let rows = sqlx::query_as::<_, (String, String)>(
        "INSERT INTO noop_effects (tenant_id, job_id, written_at) \
         SELECT r->>0, r->>1, CAST(r->>2 AS BIGINT) FROM json_array_elements($1::json) AS x(r) \
         ON CONFLICT (tenant_id, job_id) DO NOTHING RETURNING tenant_id, job_id",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .fetch_all(&store.pool)
    .await
    .map_err(|err| store.err(err, "noop effect"))?;
    Ok(rows.into_iter().collect())
}

/// Counts one handler run per key (a key given twice counts twice), in one statement.
async fn count_noop_executions(store: &Store, keys: &[JobKey]) -> Vec<Result<()>> {
    // One row per job: an upsert may not touch the same row twice in one statement.
    let mut runs: HashMap<&JobKey, i64> = HashMap::new();
    for key in keys {
        *runs.entry(key).or_default() += 1;
    }
    let runs: Vec<(&JobKey, i64)> = runs.into_iter().collect();
    if store.backend() == crate::Backend::Postgres {
        // One statement text for every batch size, as in `write_noop_effects`.
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|(key, n)| serde_json::json!([key.tenant.as_str(), key.id.as_str(), n]))
            .collect();
        let counted = sqlx::query(
            "INSERT INTO noop_executions (tenant_id, job_id, runs) \
             SELECT r->>0, r->>1, CAST(r->>2 AS BIGINT) FROM json_array_elements($1::json) AS x(r) \
             ON CONFLICT (tenant_id, job_id) DO UPDATE SET runs = noop_executions.runs + excluded.runs",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(&store.pool)
        .await;
        return match counted {
            Ok(_) => keys.iter().map(|_| Ok(())).collect(),
            Err(err) => {
                let err = store.err(err, "noop execution");
                keys.iter().map(|_| Err(err.clone())).collect()
            }
        };
    }
    for chunk in runs.chunks(MAX_BATCH) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO noop_executions (tenant_id, job_id, runs) VALUES {} \
             ON CONFLICT (tenant_id, job_id) DO UPDATE SET runs = noop_executions.runs + excluded.runs",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (key, n) in chunk {
            query = query
                .bind(key.tenant.as_str())
                .bind(key.id.as_str())
                .bind(*n);
        }
        if let Err(err) = query.execute(&store.pool).await {
            let err = store.err(err, "noop execution");
            return keys.iter().map(|_| Err(err.clone())).collect();
        }
    }
    keys.iter().map(|_| Ok(())).collect()
}
