use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{
    name_taken, no_dead_letter, too_many_deliveries, Claimed, ConsumerLease, ConsumerName,
    DeadLetter, DeadLetters, Deliver, Delivery, Envelope, Inspect, MailboxConfig, MailboxStats,
    Receipt, Reclaim, Role,
};
use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::{Store, TenantId};

/// The mailbox contract on the relational store (SQLite for the embedded default; it runs
/// on PostgreSQL too). Fairness comes from the receive query: it ranks each tenant's ready
/// entries and takes rank 1 of every tenant before rank 2 of any.
#[derive(Debug, Clone)]
pub struct EmbeddedMailbox {
    store: Store,
    config: MailboxConfig,
}

const RETURNING: &str = "RETURNING seq, tenant_id, envelope, deliveries";

impl EmbeddedMailbox {
    pub fn new(store: Store, config: MailboxConfig) -> Self {
        Self { store, config }
    }

    /// PostgreSQL row-lock clause for claiming rows; SQLite has one writer at a time and
    /// needs none.
    fn skip_locked(&self) -> &'static str {
        match self.store.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        }
    }

    fn err(&self, err: sqlx::Error, what: &str) -> StoreError {
        self.store.err(err, what)
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        self.store
            .pool
            .begin()
            .await
            .map_err(|err| self.err(err, "mailbox transaction"))
    }

    /// Inserts one entry unless its dedupe key was seen; `dedupe` is off for replays.
    async fn insert(
        &self,
        tx: &mut Transaction<'static, Any>,
        envelope: &Envelope,
        dedupe: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        if dedupe {
            let window = millis(self.config.dedupe_window);
            let fresh = sqlx::query(
                "INSERT INTO mailbox_dedupe (dedupe_key, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (dedupe_key) DO NOTHING",
            )
            .bind(envelope.dedupe_key())
            .bind(to_millis(now).saturating_add(window))
            .execute(&mut **tx)
            .await
            .map_err(|err| self.err(err, "mailbox dedupe"))?
            .rows_affected()
                == 1;
            if !fresh {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO mailbox_entries (role, tenant_id, envelope, visible_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(envelope.role.as_str())
        .bind(envelope.tenant.as_str())
        .bind(envelope.to_json()?)
        .bind(to_millis(envelope.not_before))
        .execute(&mut **tx)
        .await
        .map_err(|err| self.err(err, "mailbox entry"))?;
        Ok(true)
    }

    async fn remove(&self, tx: &mut Transaction<'static, Any>, receipt: &Receipt) -> Result<()> {
        sqlx::query("DELETE FROM mailbox_entries WHERE seq = $1")
            .bind(seq_of(receipt)?)
            .execute(&mut **tx)
            .await
            .map_err(|err| self.err(err, "mailbox ack"))?;
        Ok(())
    }

    async fn bury(
        &self,
        tx: &mut Transaction<'static, Any>,
        envelope: &Envelope,
        error: &str,
        deliveries: u32,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO mailbox_dead (role, tenant_id, envelope, error, deliveries, died_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(envelope.role.as_str())
        .bind(envelope.tenant.as_str())
        .bind(envelope.to_json()?)
        .bind(error)
        .bind(i64::from(deliveries))
        .bind(to_millis(now))
        .execute(&mut **tx)
        .await
        .map_err(|err| self.err(err, "dead letter"))?;
        Ok(())
    }

    /// Ready entries per tenant of `role`, the largest first (at most the few that
    /// `busiest` keeps).
    async fn ready_by_tenant(&self, role: &Role, now: i64) -> Result<Vec<(TenantId, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT tenant_id, COUNT(*) AS n FROM mailbox_entries \
             WHERE role = $1 AND consumer IS NULL AND visible_at <= $2 \
             GROUP BY tenant_id ORDER BY n DESC, tenant_id LIMIT $3",
        )
        .bind(role.as_str())
        .bind(now)
        .bind(i64::try_from(super::BUSIEST_TENANTS).unwrap_or(10))
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.err(err, "mailbox stats"))?;
        rows.into_iter()
            .map(|(tenant, n)| Ok((TenantId::parse(&tenant)?, u64::try_from(n).unwrap_or(0))))
            .collect()
    }

    async fn count(&self, sql: &str, role: &Role, now: Option<i64>) -> Result<u64> {
        let mut query = sqlx::query_as(sql).bind(role.as_str());
        if let Some(now) = now {
            query = query.bind(now);
        }
        let row: (i64,) = query
            .fetch_one(&self.store.pool)
            .await
            .map_err(|err| self.err(err, "mailbox stats"))?;
        Ok(u64::try_from(row.0).unwrap_or(0))
    }
}

fn seq_of(receipt: &Receipt) -> Result<i64> {
    receipt.id.parse().map_err(|_| {
        StoreError::Invalid(format!("receipt {:?} is not from this mailbox", receipt.id))
    })
}

fn decode(row: &AnyRow) -> Result<Delivery> {
    let get = |e: sqlx::Error| StoreError::Corrupt(format!("mailbox row: {e}"));
    let seq: i64 = row.try_get("seq").map_err(get)?;
    let tenant: String = row.try_get("tenant_id").map_err(get)?;
    let envelope: String = row.try_get("envelope").map_err(get)?;
    let deliveries: i64 = row.try_get("deliveries").map_err(get)?;
    Ok(Delivery {
        envelope: Envelope::from_json(&envelope)?,
        receipt: Receipt {
            tenant: TenantId::parse(&tenant)?,
            id: seq.to_string(),
        },
        deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `max` as a SQL `LIMIT` of at least one row: asking for none is read as asking for one.
fn row_limit(max: usize) -> i64 {
    i64::try_from(max.max(1)).unwrap_or(i64::MAX)
}

#[async_trait]
impl Deliver for EmbeddedMailbox {
    async fn send(&self, envelopes: &[Envelope], now: DateTime<Utc>) -> Result<usize> {
        let mut tx = self.begin().await?;
        let mut sent = 0;
        for envelope in envelopes {
            sent += usize::from(self.insert(&mut tx, envelope, true, now).await?);
        }
        tx.commit()
            .await
            .map_err(|err| self.err(err, "mailbox send"))?;
        Ok(sent)
    }

    async fn receive(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        max: usize,
        own_pending: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>> {
        let max = row_limit(max);
        let rows = if own_pending {
            sqlx::query(
                "SELECT seq, tenant_id, envelope, deliveries FROM mailbox_entries \
                 WHERE role = $1 AND consumer = $2 ORDER BY seq LIMIT $3",
            )
            .bind(role.as_str())
            .bind(consumer.as_str())
            .bind(max)
            .fetch_all(&self.store.pool)
            .await
        } else {
            // Rank 1 of every tenant, then rank 2, ...: round-robin across tenants. On
            // PostgreSQL, rows another receiver (or an ack) holds are skipped, not waited
            // for, so concurrent receivers never deadlock; the `consumer IS NULL` recheck
            // keeps a row from being taken twice.
            let lock = self.skip_locked();
            sqlx::query(&format!(
                "UPDATE mailbox_entries SET consumer = $1, claimed_at = $2, deliveries = deliveries + 1 \
                 WHERE seq IN (SELECT seq FROM mailbox_entries WHERE consumer IS NULL AND seq IN ( \
                     SELECT seq FROM ( \
                         SELECT seq, ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY seq) AS rank \
                         FROM mailbox_entries WHERE role = $3 AND consumer IS NULL AND visible_at <= $2 \
                     ) ranked ORDER BY rank, seq LIMIT $4) ORDER BY seq{lock}) \
                 AND consumer IS NULL {RETURNING}"
            ))
            .bind(consumer.as_str())
            .bind(to_millis(now))
            .bind(role.as_str())
            .bind(max)
            .fetch_all(&self.store.pool)
            .await
        }
        .map_err(|err| self.err(err, "mailbox receive"))?;
        let mut deliveries = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        // RETURNING gives no order guarantee; hand out in queue order per tenant.
        deliveries.sort_by_key(|d| d.receipt.id.parse::<i64>().unwrap_or(0));
        Ok(deliveries)
    }

    async fn ack(&self, _role: &Role, receipts: &[Receipt]) -> Result<()> {
        let mut tx = self.begin().await?;
        for receipt in receipts {
            self.remove(&mut tx, receipt).await?;
        }
        tx.commit()
            .await
            .map_err(|err| self.err(err, "mailbox ack"))
    }

    async fn retry_later(
        &self,
        delivery: &Delivery,
        next: &Envelope,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        self.remove(&mut tx, &delivery.receipt).await?;
        self.insert(&mut tx, next, true, now).await?;
        tx.commit()
            .await
            .map_err(|err| self.err(err, "mailbox retry"))
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        self.remove(&mut tx, &delivery.receipt).await?;
        self.bury(&mut tx, &delivery.envelope, error, delivery.deliveries, now)
            .await?;
        tx.commit()
            .await
            .map_err(|err| self.err(err, "dead letter"))
    }
}

#[async_trait]
impl Reclaim for EmbeddedMailbox {
    async fn promote_due(&self, _role: &Role, now: DateTime<Utc>) -> Result<usize> {
        // Delayed entries become ready by themselves (`visible_at`); only expired dedupe
        // keys need sweeping.
        sqlx::query("DELETE FROM mailbox_dedupe WHERE expires_at < $1")
            .bind(to_millis(now))
            .execute(&self.store.pool)
            .await
            .map_err(|err| self.err(err, "mailbox dedupe sweep"))?;
        Ok(0)
    }

    async fn claim_abandoned(
        &self,
        role: &Role,
        consumer: &ConsumerName,
        min_idle: Duration,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Claimed> {
        let idle_since = to_millis(now).saturating_sub(millis(min_idle));
        let rows = sqlx::query(&format!(
            "UPDATE mailbox_entries SET consumer = $1, claimed_at = $2, deliveries = deliveries + 1 \
             WHERE seq IN (SELECT seq FROM mailbox_entries WHERE role = $3 AND consumer IS NOT NULL \
                 AND claimed_at <= $4 ORDER BY seq LIMIT $5{lock}) \
             AND consumer IS NOT NULL AND claimed_at <= $4 {RETURNING}",
            lock = self.skip_locked()
        ))
        .bind(consumer.as_str())
        .bind(to_millis(now))
        .bind(role.as_str())
        .bind(idle_since)
        .bind(row_limit(max))
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.err(err, "mailbox claim"))?;
        let mut claimed = Claimed::default();
        for delivery in rows.iter().map(decode) {
            let delivery = delivery?;
            if delivery.deliveries > self.config.max_deliveries {
                let reason = too_many_deliveries(delivery.deliveries, self.config.max_deliveries);
                self.dead_letter(&delivery, &reason, now).await?;
                claimed.dead_lettered.push((delivery.envelope, reason));
            } else {
                claimed.deliveries.push(delivery);
            }
        }
        claimed
            .deliveries
            .sort_by_key(|d| d.receipt.id.parse::<i64>().unwrap_or(0));
        Ok(claimed)
    }

    async fn touch(
        &self,
        _role: &Role,
        consumer: &ConsumerName,
        receipts: &[Receipt],
        now: DateTime<Utc>,
    ) -> Result<()> {
        for receipt in receipts {
            sqlx::query(
                "UPDATE mailbox_entries SET claimed_at = $1 WHERE seq = $2 AND consumer = $3",
            )
            .bind(to_millis(now))
            .bind(seq_of(receipt)?)
            .bind(consumer.as_str())
            .execute(&self.store.pool)
            .await
            .map_err(|err| self.err(err, "mailbox touch"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl DeadLetters for EmbeddedMailbox {
    async fn replay_dead_letter(&self, role: &Role, id: &str, now: DateTime<Utc>) -> Result<()> {
        let seq: i64 = id.parse().map_err(|_| no_dead_letter(id))?;
        let mut tx = self.begin().await?;
        let row: Option<(String,)> = sqlx::query_as(
            "DELETE FROM mailbox_dead WHERE seq = $1 AND role = $2 RETURNING envelope",
        )
        .bind(seq)
        .bind(role.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|err| self.err(err, "dead letter"))?;
        let Some((envelope,)) = row else {
            return Err(no_dead_letter(id));
        };
        let fresh = Envelope::from_json(&envelope)?.replayed(now);
        self.insert(&mut tx, &fresh, false, now).await?;
        tx.commit()
            .await
            .map_err(|err| self.err(err, "dead letter replay"))
    }

    async fn discard_dead_letter(&self, role: &Role, id: &str) -> Result<()> {
        let seq: i64 = id.parse().map_err(|_| no_dead_letter(id))?;
        let done = sqlx::query("DELETE FROM mailbox_dead WHERE seq = $1 AND role = $2")
            .bind(seq)
            .bind(role.as_str())
            .execute(&self.store.pool)
            .await
            .map_err(|err| self.err(err, "dead letter"))?;
        if done.rows_affected() == 0 {
            return Err(no_dead_letter(id));
        }
        Ok(())
    }
}

#[async_trait]
impl ConsumerLease for EmbeddedMailbox {
    async fn register(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        let now = to_millis(Utc::now());
        let expires = now.saturating_add(millis(self.config.lease));
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM mailbox_consumers WHERE name = $1 AND expires_at < $2")
            .bind(consumer.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|err| self.err(err, "consumer lease"))?;
        sqlx::query(
            "INSERT INTO mailbox_consumers (name, instance, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(consumer.as_str())
        .bind(instance)
        .bind(expires)
        .execute(&mut *tx)
        .await
        .map_err(|err| self.err(err, "consumer lease"))?;
        let (holder,): (String,) =
            sqlx::query_as("SELECT instance FROM mailbox_consumers WHERE name = $1")
                .bind(consumer.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(|err| self.err(err, "consumer lease"))?;
        tx.commit()
            .await
            .map_err(|err| self.err(err, "consumer lease"))?;
        if holder != instance {
            return Err(name_taken(consumer));
        }
        Ok(())
    }

    async fn renew(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        let expires = to_millis(Utc::now()).saturating_add(millis(self.config.lease));
        let done = sqlx::query(
            "UPDATE mailbox_consumers SET expires_at = $1 WHERE name = $2 AND instance = $3",
        )
        .bind(expires)
        .bind(consumer.as_str())
        .bind(instance)
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.err(err, "consumer lease"))?;
        if done.rows_affected() == 0 {
            // Expired and taken, or expired and swept: take it again if free.
            return self.register(consumer, instance).await;
        }
        Ok(())
    }

    async fn unregister(&self, consumer: &ConsumerName, instance: &str) -> Result<()> {
        sqlx::query("DELETE FROM mailbox_consumers WHERE name = $1 AND instance = $2")
            .bind(consumer.as_str())
            .bind(instance)
            .execute(&self.store.pool)
            .await
            .map_err(|err| self.err(err, "consumer lease"))?;
        Ok(())
    }
}

#[async_trait]
impl Inspect for EmbeddedMailbox {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }

    async fn stats(&self, role: &Role, now: DateTime<Utc>) -> Result<MailboxStats> {
        let at = to_millis(now);
        Ok(MailboxStats {
            ready: self
                .count(
                    "SELECT COUNT(*) FROM mailbox_entries WHERE role = $1 AND consumer IS NULL AND visible_at <= $2",
                    role,
                    Some(at),
                )
                .await?,
            pending: self
                .count(
                    "SELECT COUNT(*) FROM mailbox_entries WHERE role = $1 AND consumer IS NOT NULL",
                    role,
                    None,
                )
                .await?,
            delayed: self
                .count(
                    "SELECT COUNT(*) FROM mailbox_entries WHERE role = $1 AND consumer IS NULL AND visible_at > $2",
                    role,
                    Some(at),
                )
                .await?,
            dead: self
                .count(
                    "SELECT COUNT(*) FROM mailbox_dead WHERE role = $1",
                    role,
                    None,
                )
                .await?,
            // Ready since `visible_at` (sent, or due after a delay or a retry).
            oldest_ready_ms: self
                .count(
                    "SELECT $2 - COALESCE(MIN(visible_at), $2) FROM mailbox_entries \
                     WHERE role = $1 AND consumer IS NULL AND visible_at <= $2",
                    role,
                    Some(at),
                )
                .await?,
            busiest: super::busiest(self.ready_by_tenant(role, at).await?),
        })
    }

    async fn dead_letters(&self, role: &Role, limit: usize) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT seq, envelope, error, deliveries, died_at FROM mailbox_dead \
             WHERE role = $1 ORDER BY seq LIMIT $2",
        )
        .bind(role.as_str())
        .bind(row_limit(limit))
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.err(err, "dead letters"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| StoreError::Corrupt(format!("dead letter row: {e}"));
                let seq: i64 = row.try_get("seq").map_err(get)?;
                let envelope: String = row.try_get("envelope").map_err(get)?;
                let deliveries: i64 = row.try_get("deliveries").map_err(get)?;
                Ok(DeadLetter {
                    id: seq.to_string(),
                    envelope: Envelope::from_json(&envelope)?,
                    error: row.try_get("error").map_err(get)?,
                    deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
                    died_at: from_millis(row.try_get("died_at").map_err(get)?),
                })
            })
            .collect()
    }
}
