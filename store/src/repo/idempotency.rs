use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::ids::to_millis;
use crate::{Store, TenantId};

/// Idempotency keys of one tenant: the unique constraint that turns at-least-once delivery
/// into exactly-once effects. A handler claims `(scope, key)` before performing an effect and records the
/// outcome after.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Idempotency<'_> {
    /// Claims the key. `true` the first time, `false` for every later call with the same
    /// scope and key, from any process.
    pub async fn claim(&self, scope: &str, key: &str, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, scope, key, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, scope, key) DO NOTHING",
        )
        .bind(self.tenant.as_str())
        .bind(scope)
        .bind(key)
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "idempotency key"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims the key for a request with this fingerprint (a digest of what it asked
    /// for), in one statement, so a crash cannot leave a claim without its fingerprint.
    /// `None` the first time; afterwards the fingerprint the key was first claimed with,
    /// so a caller can tell a retry (same fingerprint) from a reuse of the key for
    /// another request.
    pub async fn claim_for(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let done = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, scope, key, created_at, outcome) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, scope, key) DO NOTHING",
        )
        .bind(self.tenant.as_str())
        .bind(scope)
        .bind(key)
        .bind(to_millis(now))
        .bind(fingerprint)
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "idempotency key"))?;
        if done.rows_affected() == 1 {
            return Ok(None);
        }
        Ok(Some(
            self.outcome(scope, key)
                .await?
                .flatten()
                .unwrap_or_default(),
        ))
    }

    /// Records what the claimed effect produced, so a duplicate can answer the same.
    pub async fn complete(&self, scope: &str, key: &str, outcome: &str) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET outcome = $1 WHERE tenant_id = $2 AND scope = $3 AND key = $4",
        )
        .bind(outcome)
        .bind(self.tenant.as_str())
        .bind(scope)
        .bind(key)
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "idempotency key"))?;
        Ok(())
    }

    /// `None` if never claimed; `Some(None)` if claimed but not completed.
    pub async fn outcome(&self, scope: &str, key: &str) -> Result<Option<Option<String>>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT outcome FROM idempotency_keys WHERE tenant_id = $1 AND scope = $2 AND key = $3",
        )
        .bind(self.tenant.as_str())
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "idempotency key"))?;
        Ok(row.map(|(outcome,)| outcome))
    }
}
