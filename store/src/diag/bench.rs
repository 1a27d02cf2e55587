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
