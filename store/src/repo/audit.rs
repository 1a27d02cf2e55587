use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::{check_limit, numeric_cursor, page, Page};
use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::{Store, TenantId};

/// One mutating action: who did what to which target, under which request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// The tenant acted on (creating or renaming it and its tokens included); `None` for
    /// actions outside any tenant (an administrator token, an advisory import).
    pub tenant: Option<TenantId>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub request_id: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// The append-only audit log.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    pub(crate) store: &'a Store,
}

impl Audit<'_> {
    pub async fn record(&self, entry: &AuditEntry, now: DateTime<Utc>) -> Result<i64> {
        let row: (i64,) = sqlx::query_as(
            "INSERT INTO audit_log (tenant_id, actor, action, target, request_id, details, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
        )
        .bind(entry.tenant.as_ref().map(TenantId::as_str))
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(entry.request_id.as_deref())
        .bind(entry.details.to_string())
        .bind(to_millis(now))
        .fetch_one(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "audit entry"))?;
        Ok(row.0)
    }

    /// Entries oldest first; with `tenant`, only that tenant's entries.
    pub async fn list(
        &self,
        tenant: Option<&TenantId>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<AuditRecord>> {
        let limit = check_limit(limit)?;
        let after = numeric_cursor(cursor, 0, "audit")?;
        let rows = sqlx::query(
            "SELECT seq, tenant_id, actor, action, target, request_id, details, at FROM audit_log \
             WHERE seq > $1 AND ($2 = '' OR tenant_id = $2) ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(tenant.map(TenantId::as_str).unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "audit log"))?;
        let records = rows
            .iter()
            .map(|row| {
                let get = |e: sqlx::Error| StoreError::Corrupt(format!("audit row: {e}"));
                let details: String = row.try_get("details").map_err(get)?;
                Ok(AuditRecord {
                    seq: row.try_get("seq").map_err(get)?,
                    at: from_millis(row.try_get("at").map_err(get)?),
                    entry: AuditEntry {
                        tenant: row
                            .try_get::<Option<String>, _>("tenant_id")
                            .map_err(get)?
                            .map(|t| TenantId::parse(&t))
                            .transpose()?,
                        actor: row.try_get("actor").map_err(get)?,
                        action: row.try_get("action").map_err(get)?,
                        target: row.try_get("target").map_err(get)?,
                        request_id: row.try_get("request_id").map_err(get)?,
                        details: serde_json::from_str(&details)
                            .map_err(|err| StoreError::Corrupt(format!("audit details: {err}")))?,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(page(records, limit, |r| r.seq.to_string()))
    }
}
