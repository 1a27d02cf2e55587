//! A tenant's policy versions: append-only, the newest is the active one. A new version
//! appends a `policy.updated` event in the same transaction, so the scheduler
//! re-evaluates the tenant's targets.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::{check_limit, insert_event, numeric_cursor, page, NewEvent, Page};
use crate::{Store, TenantId};

/// One version of a tenant's policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRecord {
    pub version: u64,
    pub digest: String,
    pub document: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}
/// A tenant's policy versions. Obtained from [`crate::TenantScope::policies`].
#[derive(Debug, Clone, Copy)]
pub struct Policies<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Policies<'_> {
    /// Stores `document` as the next version, unless it is the active one already
    /// (same digest): then the active version is returned with `false`.
    pub async fn put(
        &self,
        document: &str,
        digest: &str,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<(PolicyRecord, bool)> {
        if let Some(active) = self.active().await? {
            if active.digest == digest {
                return Ok((active, false));
            }
        }
        let err = |e| self.store.err(e, "policy");
        // The next version is computed in the insert itself. Two writers racing for one
        // version: the primary key lets one win and the other inserts nothing; it tries
        // again and sees the winner, so every round lets at least one writer through.
        for _ in 0..64 {
            let mut tx = self.store.pool.begin().await.map_err(err)?;
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO policies (tenant_id, version, digest, document, created_by, created_at) \
                 SELECT $1, CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT), $2, $3, $4, $5 \
                 FROM policies WHERE tenant_id = $1 \
                 ON CONFLICT (tenant_id, version) DO NOTHING RETURNING version",
            )
            .bind(self.tenant.as_str())
            .bind(digest)
            .bind(document)
            .bind(created_by)
            .bind(to_millis(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            if let Some((version,)) = inserted {
                // The scheduler re-evaluates the tenant's targets on this event.
                let event = NewEvent {
                    kind: "policy.updated".into(),
                    dedupe_key: format!("policy.updated:{}:{version}", self.tenant),
                    payload: serde_json::json!({"version": version, "digest": digest}),
                };
                insert_event(
                    &mut *tx,
                    self.store,
                    Some(self.tenant),
                    &event,
                    to_millis(now),
                )
                .await?;
                tx.commit().await.map_err(err)?;
                return Ok((
                    PolicyRecord {
                        version: u64::try_from(version).unwrap_or(0),
                        digest: digest.to_owned(),
                        document: document.to_owned(),
                        created_by: created_by.to_owned(),
                        created_at: from_millis(to_millis(now)),
                    },
                    true,
                ));
            }
        }
        Err(StoreError::Conflict(
            "policy versions kept changing; try again".into(),
        ))
    }

    /// The newest version: the one scans use. `None` means the built-in default.
    pub async fn active(&self) -> Result<Option<PolicyRecord>> {
        self.select("ORDER BY version DESC LIMIT 1", None).await
    }

    pub async fn get(&self, version: u64) -> Result<PolicyRecord> {
        self.select(
            "AND version = $2",
            Some(i64::try_from(version).unwrap_or(i64::MAX)),
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("policy version {version}")))
    }

    /// The first version whose digest is `digest`: the document a verdict recording that
    /// digest was evaluated with (a later version with the same digest parses to the same
    /// policy, so the first is the stable answer). `None` when no version has it (the
    /// built-in default, or a policy of another tenant).
    pub async fn by_digest(&self, digest: &str) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query(
            "SELECT version, digest, document, created_by, created_at FROM policies \
             WHERE tenant_id = $1 AND digest = $2 ORDER BY version LIMIT 1",
        )
        .bind(self.tenant.as_str())
        .bind(digest)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "policy"))?;
        row.map(|row| decode_policy(self.store, &row)).transpose()
    }

    async fn select(&self, tail: &str, version: Option<i64>) -> Result<Option<PolicyRecord>> {
        let sql = format!(
            "SELECT version, digest, document, created_by, created_at FROM policies \
             WHERE tenant_id = $1 {tail}"
        );
        let mut query = sqlx::query(&sql).bind(self.tenant.as_str());
        if let Some(version) = version {
            query = query.bind(version);
        }
        let row = query
            .fetch_optional(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "policy"))?;
        row.map(|row| decode_policy(self.store, &row)).transpose()
    }

    /// Every version, newest first; the cursor is the last version seen.
    pub async fn list(&self, cursor: Option<&str>, limit: u32) -> Result<Page<PolicyRecord>> {
        let before = numeric_cursor(cursor, i64::MAX, "policy")?;
        let limit = check_limit(limit)?;
        let rows = sqlx::query(
            "SELECT version, digest, document, created_by, created_at FROM policies \
             WHERE tenant_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
        )
        .bind(self.tenant.as_str())
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "policies"))?;
        let items = rows
            .iter()
            .map(|row| decode_policy(self.store, row))
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |p| p.version.to_string()))
    }
}

fn decode_policy(store: &Store, row: &sqlx::any::AnyRow) -> Result<PolicyRecord> {
    let get = |e| store.err(e, "policy");
    Ok(PolicyRecord {
        version: u64::try_from(row.try_get::<i64, _>("version").map_err(get)?).unwrap_or(0),
        digest: row.try_get("digest").map_err(get)?,
        document: row.try_get("document").map_err(get)?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
    })
}
