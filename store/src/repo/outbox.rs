use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, JobId};
use crate::{Store, TenantId};

/// A committed message waiting to be moved into the mailbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub seq: i64,
    pub tenant: TenantId,
    pub job_id: Option<JobId>,
    pub role: String,
    pub kind: String,
    pub payload: Value,
    pub idempotency_key: String,
    pub attempt: u32,
    pub not_before: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The sender's W3C `traceparent`.
    pub trace: Option<String>,
}

/// The relay's side of the transactional outbox. Rows are written by tenant-scoped
/// transactions (see `Jobs::submit` and `Jobs::transition`); the relay reads them across
/// tenants, sends them, then marks them relayed. A crash between send and mark sends a
/// row twice, which the mailbox's idempotency key absorbs.
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'a> {
    pub(crate) store: &'a Store,
}

impl Outbox<'_> {
    /// The oldest rows not yet relayed.
    pub async fn pending(&self, limit: u32) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT seq, tenant_id, job_id, role, kind, payload, idempotency_key, attempt, not_before, created_at, trace \
             FROM outbox WHERE relayed_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "outbox"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| StoreError::Corrupt(format!("outbox row: {e}"));
                let payload: String = row.try_get("payload").map_err(get)?;
                Ok(OutboxRow {
                    seq: row.try_get("seq").map_err(get)?,
                    tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(get)?)?,
                    job_id: row
                        .try_get::<Option<String>, _>("job_id")
                        .map_err(get)?
                        .map(|id| JobId::parse(&id))
                        .transpose()?,
                    role: row.try_get("role").map_err(get)?,
                    kind: row.try_get("kind").map_err(get)?,
                    payload: serde_json::from_str(&payload)
                        .map_err(|err| StoreError::Corrupt(format!("outbox payload: {err}")))?,
                    idempotency_key: row.try_get("idempotency_key").map_err(get)?,
                    attempt: u32::try_from(row.try_get::<i64, _>("attempt").map_err(get)?)
                        .unwrap_or(u32::MAX),
                    not_before: from_millis(row.try_get("not_before").map_err(get)?),
                    created_at: from_millis(row.try_get("created_at").map_err(get)?),
                    trace: row.try_get("trace").map_err(get)?,
                })
            })
            .collect()
    }

    /// Removes rows the mailbox has taken; removing a row twice is harmless, and so is
    /// sending one twice before it is removed (the mailbox drops a second send of the
    /// same idempotency key and attempt). A relayed row is never read again, so it is
    /// deleted rather than marked: no new row version, no index entries, and a table
    /// that holds only what is still to send. Exact sequence numbers, never a range: a
    /// row with a lower number may commit later and must not be lost.
    pub async fn mark_relayed(&self, seqs: &[i64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        if self.store.backend() == crate::Backend::Postgres {
            // One statement text whatever the count, so it stays prepared.
            let list = serde_json::to_string(seqs)
                .map_err(|err| StoreError::Invalid(format!("outbox sequence numbers: {err}")))?;
            sqlx::query(
                "DELETE FROM outbox WHERE seq IN \
                 (SELECT CAST(value AS BIGINT) FROM json_array_elements_text($1::json))",
            )
            .bind(list)
            .execute(&self.store.pool)
            .await
            .map_err(|err| self.store.err(err, "outbox"))?;
            return Ok(());
        }
        for chunk in seqs.chunks(1000) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
            let sql = format!(
                "DELETE FROM outbox WHERE seq IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for seq in chunk {
                query = query.bind(*seq);
            }
            query
                .execute(&self.store.pool)
                .await
                .map_err(|err| self.store.err(err, "outbox"))?;
        }
        Ok(())
    }

    /// Number of rows not yet relayed (a gauge for the relay's lag).
    pub async fn backlog(&self) -> Result<u64> {
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE relayed_at IS NULL")
            .fetch_one(&self.store.pool)
            .await
            .map_err(|err| self.store.err(err, "outbox"))?;
        Ok(u64::try_from(row.0).unwrap_or(0))
    }
}
