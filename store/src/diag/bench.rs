//! Raw-SQL baselines for benchmarks: what the store does with none of the mailbox's
//! guarantees, measured on the same tables so the comparison is like for like.

use sqlx::{Any, Transaction};

use crate::error::{Result, StoreError};
use crate::Store;

#[derive(Debug)]
pub struct RawSql<'a> {
    store: &'a Store,
    role: String,
}

impl<'a> RawSql<'a> {
    pub fn new(store: &'a Store, role: &str) -> Self {
        Self {
            store,
            role: format!("{role}-raw"),
        }
    }

    fn err(&self, err: sqlx::Error) -> StoreError {
        self.store.err(err, "bench")
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        self.store.pool.begin().await.map_err(|e| self.err(e))
    }

    /// Inserts `messages` rows in transactions of `batch`, then claims and deletes them
    /// `batch` at a time.
    pub async fn run(&self, messages: u64, batch: usize) -> Result<()> {
        let payload = "x".repeat(320);
        let mut sent = 0u64;
        while sent < messages {
            let n = (messages - sent).min(batch as u64);
            let mut tx = self.begin().await?;
            for _ in 0..n {
                sqlx::query(
                    "INSERT INTO mailbox_entries (role, tenant_id, envelope, visible_at) VALUES ($1, 'bench', $2, 0)",
                )
                .bind(&self.role)
                .bind(&payload)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            }
            tx.commit().await.map_err(|e| self.err(e))?;
            sent += n;
        }
        loop {
            let rows: Vec<(i64,)> = sqlx::query_as(
                "UPDATE mailbox_entries SET consumer = 'raw', claimed_at = 0 WHERE seq IN \
                 (SELECT seq FROM mailbox_entries WHERE role = $1 AND consumer IS NULL ORDER BY seq LIMIT $2) \
                 RETURNING seq",
            )
            .bind(&self.role)
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .fetch_all(&self.store.pool)
            .await
            .map_err(|e| self.err(e))?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = self.begin().await?;
            for (seq,) in rows {
                sqlx::query("DELETE FROM mailbox_entries WHERE seq = $1")
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
            }
            tx.commit().await.map_err(|e| self.err(e))?;
        }
    }
}

impl RawSql<'_> {
    /// `count` single-row transactions (insert, commit), `parallel` at a time: the
    /// store's raw commit rate, the ceiling for anything that commits per job.
    pub async fn commits(&self, count: u64, parallel: usize) -> Result<()> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let tenant = crate::TenantId::parse("bench")?;
        self.store
            .tenants()
            .ensure(&tenant, "benchmarks", chrono::Utc::now())
            .await?;
        stream::iter(0..count)
            .map(|i| async move {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "INSERT INTO idempotency_keys (tenant_id, scope, key, created_at) VALUES ('bench', $1, $2, 0) \
                     ON CONFLICT (tenant_id, scope, key) DO NOTHING",
                )
                .bind(&self.role)
                .bind(i.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
                tx.commit().await.map_err(|e| self.err(e))
            })
            .buffer_unordered(parallel.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = 'bench' AND scope = $1")
            .bind(&self.role)
            .execute(&self.store.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// Benchmark fixtures: copies of a completed scan as another tenant's target, so a
/// benchmark can stand up thousands of tenants' latest scans of real SBOMs without
/// scanning each (`stella bench shadow`). The copy is the same rows under a new job id
/// (job, SBOM record, scan, findings, target pointing at it); nothing on the production
/// path calls this.
#[derive(Debug)]
pub struct ScanCopies<'a> {
    store: &'a Store,
}

impl<'a> ScanCopies<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Copies `scan` of `from` to `to` as the latest scan of its target `target`, in one
    /// transaction.
    pub async fn copy(
        &self,
        from: &crate::TenantId,
        scan: &crate::JobId,
        to: &crate::TenantId,
        target: &str,
    ) -> Result<crate::JobId> {
        let err = |e| self.store.err(e, "bench scan copy");
        let id = crate::JobId::generate();
        let target_id = crate::TargetId::generate();
        let mut tx = self.store.pool.begin().await.map_err(err)?;
        let statements = [
            "INSERT INTO jobs (tenant_id, id, kind, state, step, params, result, attempts, \
                 max_attempts, last_error, idempotency_key, created_at, updated_at, not_before, \
                 finished_at) \
             SELECT $3, $4, kind, state, step, params, result, attempts, max_attempts, last_error, \
                 NULL, created_at, updated_at, not_before, finished_at \
             FROM jobs WHERE tenant_id = $1 AND id = $2",
            "INSERT INTO sboms (tenant_id, sha256, name, format, spec_version, size_bytes, created_at) \
             SELECT $3, b.sha256, b.name, b.format, b.spec_version, b.size_bytes, b.created_at \
             FROM sboms b JOIN scans s ON s.tenant_id = b.tenant_id AND s.sbom_sha256 = b.sha256 \
             WHERE s.tenant_id = $1 AND s.id = $2 AND $4 <> '' \
             ON CONFLICT (tenant_id, sha256) DO NOTHING",
            "INSERT INTO scans (tenant_id, id, sbom_sha256, sbom_name, evaluated_at, analysis, \
                 verdict, disposition, counts, inputs, inputs_hash, attestation_sha256, created_at, \
                 completed_at) \
             SELECT $3, $4, sbom_sha256, sbom_name, evaluated_at, analysis, verdict, disposition, \
                 counts, inputs, inputs_hash, attestation_sha256, created_at, completed_at \
             FROM scans WHERE tenant_id = $1 AND id = $2",
            "INSERT INTO scan_findings (tenant_id, scan_id, ordinal, vulnerability_id, purl, \
                 disposition, finding) \
             SELECT $3, $4, ordinal, vulnerability_id, purl, disposition, finding \
             FROM scan_findings WHERE tenant_id = $1 AND scan_id = $2",
        ];
        for sql in statements {
            sqlx::query(sql)
                .bind(from.as_str())
                .bind(scan.as_str())
                .bind(to.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        sqlx::query(
            "INSERT INTO targets (tenant_id, id, name, sbom_sha256, last_scan_id, created_at, updated_at) \
             SELECT $1, $2, $3, sbom_sha256, $4, created_at, created_at FROM scans \
             WHERE tenant_id = $1 AND id = $4",
        )
        .bind(to.as_str())
        .bind(target_id.as_str())
        .bind(target)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(id)
    }
}
