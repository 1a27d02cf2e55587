//! A tenant's notification channels, rules and templates, and the notifier's deliveries,
//! their wire attempts (receipts), digest items and throttle counters (migration 0012).
//!
//! A delivery is one (event, rule, channel), unique per tenant by its dedupe key, so a
//! redelivered event or a replayed dispatch makes none twice. Its status moves forward
//! only: `pending` → `held` / `digested` / `throttled` → `delivered`; a delivery whose
//! job failed for good reads as `dead_lettered`, one whose job was cancelled as
//! `cancelled` (from the job's row, so the two can never disagree).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::{check_limit, json_text, page, parse_json, text_cursor, Page};
use crate::{ChannelId, DeliveryId, JobId, RuleId, Store, TenantId};

/// A notification channel (its secret is never read back through this record).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelRecord {
    pub id: String,
    pub name: String,
    pub channel_type: String,
    pub spec: Value,
    pub has_secret: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A notification rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleRecord {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub spec: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tenant's template, overriding the shipped one of its channel type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateRecord {
    pub name: String,
    pub channel_type: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A delivery to create (once per dedupe key).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub tenant: TenantId,
    pub id: DeliveryId,
    pub dedupe_key: String,
    pub event_id: String,
    pub event_kind: String,
    pub event_seq: i64,
    pub rule_id: Option<RuleId>,
    pub channel_id: ChannelId,
    pub channel_type: String,
    /// `instant`, `digest`, `test` or `redeliver`.
    pub mode: String,
    /// The job carrying it (an instant delivery's own job).
    pub job_id: Option<JobId>,
    /// `pending`, or `digested` for a delivery folded into a digest at once.
    pub status: String,
}

/// A delivery as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub id: String,
    pub event_id: String,
    pub event_kind: String,
    pub event_seq: i64,
    pub rule_id: Option<String>,
    pub channel_id: String,
    pub channel_type: String,
    pub mode: String,
    pub job_id: Option<String>,
    pub status: String,
    pub detail: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One wire attempt of a delivery: its receipt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
    /// `sending` (no answer recorded: the process stopped mid-attempt), `ok` or `failed`.
    pub outcome: String,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub response_head: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttemptEnd {
    pub ok: bool,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub response_head: Option<String>,
}

/// Which deliveries to list (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub channel_id: Option<String>,
    pub rule_id: Option<String>,
    pub event_kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// An event waiting for a digest (a digest action, a throttled or quiet-hours delivery).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDigestItem {
    pub tenant: TenantId,
    /// Which digest it joins: `rule:<rule>:<channel>:<window>`, `throttle:<channel>`, ...
    pub group_key: String,
    pub channel_id: ChannelId,
    pub rule_id: Option<RuleId>,
    pub template: Option<String>,
    pub delivery_id: DeliveryId,
    /// `window`, `throttled` or `quiet`.
    pub reason: String,
    /// The event's envelope.
    pub event: Value,
    /// Not summarised before this time.
    pub due_at: DateTime<Utc>,
}

/// A digest group with unclaimed items: one digest job per generation.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenDigest {
    pub tenant: TenantId,
    pub group_key: String,
    pub channel_id: String,
    pub rule_id: Option<String>,
    pub template: Option<String>,
    pub generation: i64,
    /// The earliest due time of its unclaimed items.
    pub due_at: DateTime<Utc>,
}

/// An item a digest job claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestItem {
    pub delivery_id: String,
    pub reason: String,
    pub event: Value,
}

/// Whether `name` can name a channel, rule or template: 1-100 of a-z, 0-9, `-`, `_`,
/// `.`, starting with a letter or digit (the API refuses other names; a list cursor must
/// be one).
pub fn is_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// A tenant's notification state. Obtained from [`crate::TenantScope::notify`].
#[derive(Debug, Clone, Copy)]
pub struct Notify<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

fn get_err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::Corrupt(format!("{what} row: {e}"))
}

fn channel(row: &AnyRow) -> Result<ChannelRecord> {
    let get = get_err("channel");
    let spec: String = row.try_get("spec").map_err(&get)?;
    let secret: Option<String> = row.try_get("secret_sealed").map_err(&get)?;
    Ok(ChannelRecord {
        id: row.try_get("id").map_err(&get)?,
        name: row.try_get("name").map_err(&get)?,
        channel_type: row.try_get("channel_type").map_err(&get)?,
        spec: parse_json(&spec, "channel spec")?,
        has_secret: secret.is_some(),
        created_at: from_millis(row.try_get("created_at").map_err(&get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(&get)?),
    })
}

fn rule(row: &AnyRow) -> Result<RuleRecord> {
    let get = get_err("rule");
    let spec: String = row.try_get("spec").map_err(&get)?;
    Ok(RuleRecord {
        id: row.try_get("id").map_err(&get)?,
        name: row.try_get("name").map_err(&get)?,
        enabled: row.try_get::<i64, _>("enabled").map_err(&get)? != 0,
        spec: parse_json(&spec, "rule spec")?,
        created_at: from_millis(row.try_get("created_at").map_err(&get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(&get)?),
    })
}

fn template(row: &AnyRow) -> Result<TemplateRecord> {
    let get = get_err("template");
    Ok(TemplateRecord {
        name: row.try_get("name").map_err(&get)?,
        channel_type: row.try_get("channel_type").map_err(&get)?,
        source: row.try_get("source").map_err(&get)?,
        created_at: from_millis(row.try_get("created_at").map_err(&get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(&get)?),
    })
}

/// A delivery's status as the user sees it: its own, unless its job ended otherwise.
const DELIVERY_COLUMNS: &str = "d.id, d.event_id, d.event_kind, d.event_seq, d.rule_id, \
     d.channel_id, d.channel_type, d.mode, d.job_id, d.detail, d.created_at, d.updated_at, \
     CASE WHEN d.status = 'delivered' THEN d.status \
          WHEN j.state = 'failed' THEN 'dead_lettered' \
          WHEN j.state = 'cancelled' THEN 'cancelled' \
          ELSE d.status END AS status";

const DELIVERY_FROM: &str = "notify_deliveries d LEFT JOIN jobs j \
     ON j.tenant_id = d.tenant_id AND j.id = d.job_id";

fn delivery(row: &AnyRow) -> Result<DeliveryRecord> {
    let get = get_err("delivery");
    let detail: Option<String> = row.try_get("detail").map_err(&get)?;
    Ok(DeliveryRecord {
        id: row.try_get("id").map_err(&get)?,
        event_id: row.try_get("event_id").map_err(&get)?,
        event_kind: row.try_get("event_kind").map_err(&get)?,
        event_seq: row.try_get("event_seq").map_err(&get)?,
        rule_id: row.try_get("rule_id").map_err(&get)?,
        channel_id: row.try_get("channel_id").map_err(&get)?,
        channel_type: row.try_get("channel_type").map_err(&get)?,
        mode: row.try_get("mode").map_err(&get)?,
        job_id: row.try_get("job_id").map_err(&get)?,
        status: row.try_get("status").map_err(&get)?,
        detail: detail
            .map(|d| parse_json(&d, "delivery detail"))
            .transpose()?,
        created_at: from_millis(row.try_get("created_at").map_err(&get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(&get)?),
    })
}

fn attempt(row: &AnyRow) -> Result<AttemptRecord> {
    let get = get_err("attempt");
    let code: Option<i64> = row.try_get("status_code").map_err(&get)?;
    let latency: Option<i64> = row.try_get("latency_ms").map_err(&get)?;
    Ok(AttemptRecord {
        attempt: u32::try_from(row.try_get::<i64, _>("attempt").map_err(&get)?).unwrap_or(0),
        started_at: from_millis(row.try_get("started_at").map_err(&get)?),
        outcome: row.try_get("outcome").map_err(&get)?,
        status_code: code.and_then(|c| u16::try_from(c).ok()),
        latency_ms: latency.and_then(|l| u64::try_from(l).ok()),
        error: row.try_get("error").map_err(&get)?,
        response_head: row.try_get("response_head").map_err(&get)?,
    })
}

impl Notify<'_> {
    fn err(&self, what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |e| self.store.err(e, what)
    }

    // ---- channels ----

    /// Creates a channel; a name the tenant already uses is a conflict.
    pub async fn create_channel(
        &self,
        name: &str,
        channel_type: &str,
        spec: &Value,
        secret_sealed: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ChannelRecord> {
        let id = ChannelId::generate();
        let at = to_millis(now);
        sqlx::query(
            "INSERT INTO notify_channels (tenant_id, id, name, channel_type, spec, secret_sealed, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(name)
        .bind(channel_type)
        .bind(json_text(spec))
        .bind(secret_sealed)
        .bind(at)
        .execute(&self.store.pool)
        .await
        .map_err(|e| match self.store.err(e, "channel") {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a channel named {name:?} exists"))
            }
            other => other,
        })?;
        self.channel(id.as_str()).await
    }

    /// The channel with this id or name.
    pub async fn channel(&self, id_or_name: &str) -> Result<ChannelRecord> {
        sqlx::query("SELECT * FROM notify_channels WHERE tenant_id = $1 AND (id = $2 OR name = $2)")
            .bind(self.tenant.as_str())
            .bind(id_or_name)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("channel"))?
            .map(|row| channel(&row))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("channel {id_or_name}")))
    }

    /// A channel and its sealed secret (for the notifier to open), in one read.
    pub async fn channel_with_secret(&self, id: &str) -> Result<(ChannelRecord, Option<String>)> {
        let row = sqlx::query("SELECT * FROM notify_channels WHERE tenant_id = $1 AND id = $2")
            .bind(self.tenant.as_str())
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("channel"))?
            .ok_or_else(|| StoreError::NotFound(format!("channel {id}")))?;
        let sealed: Option<String> = row.try_get("secret_sealed").map_err(get_err("channel"))?;
        Ok((channel(&row)?, sealed))
    }

    /// The sealed secret of a channel (for the notifier to open), if it has one.
    pub async fn channel_secret(&self, id: &str) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT secret_sealed FROM notify_channels WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(self.err("channel"))?;
        row.map(|r| r.0)
            .ok_or_else(|| StoreError::NotFound(format!("channel {id}")))
    }

    /// Channels by name.
    pub async fn channels(&self, after: Option<&str>, limit: u32) -> Result<Page<ChannelRecord>> {
        let after = text_cursor(after, "channel", is_name)?;
        let limit = check_limit(limit)?;
        let rows = sqlx::query(
            "SELECT * FROM notify_channels WHERE tenant_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(self.tenant.as_str())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("channels"))?;
        let items = rows.iter().map(channel).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |c| c.name.clone()))
    }

    /// Replaces a channel's spec, and its secret when `secret_sealed` is given.
    pub async fn update_channel(
        &self,
        id: &str,
        spec: &Value,
        secret_sealed: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ChannelRecord> {
        let done = sqlx::query(
            "UPDATE notify_channels SET spec = $3, secret_sealed = COALESCE($4, secret_sealed), \
             updated_at = $5 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(id)
        .bind(json_text(spec))
        .bind(secret_sealed)
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(self.err("channel"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("channel {id}")));
        }
        self.channel(id).await
    }

    /// Deletes a channel; a rule naming it then fails its deliveries visibly.
    pub async fn delete_channel(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM notify_channels WHERE tenant_id = $1 AND id = $2")
            .bind(self.tenant.as_str())
            .bind(id)
            .execute(&self.store.pool)
            .await
            .map_err(self.err("channel"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("channel {id}")));
        }
        Ok(())
    }

    // ---- rules ----

    /// Creates a rule; a name the tenant already uses is a conflict.
    pub async fn create_rule(
        &self,
        name: &str,
        enabled: bool,
        spec: &Value,
        now: DateTime<Utc>,
    ) -> Result<RuleRecord> {
        let id = RuleId::generate();
        sqlx::query(
            "INSERT INTO notify_rules (tenant_id, id, name, enabled, spec, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(name)
        .bind(i64::from(enabled))
        .bind(json_text(spec))
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(|e| match self.store.err(e, "rule") {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a rule named {name:?} exists")),
            other => other,
        })?;
        self.rule(id.as_str()).await
    }

    /// The rule with this id or name.
    pub async fn rule(&self, id_or_name: &str) -> Result<RuleRecord> {
        sqlx::query("SELECT * FROM notify_rules WHERE tenant_id = $1 AND (id = $2 OR name = $2)")
            .bind(self.tenant.as_str())
            .bind(id_or_name)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("rule"))?
            .map(|row| rule(&row))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("rule {id_or_name}")))
    }

    /// Rules by name.
    pub async fn rules(&self, after: Option<&str>, limit: u32) -> Result<Page<RuleRecord>> {
        let after = text_cursor(after, "rule", is_name)?;
        let limit = check_limit(limit)?;
        let rows = sqlx::query(
            "SELECT * FROM notify_rules WHERE tenant_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(self.tenant.as_str())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("rules"))?;
        let items = rows.iter().map(rule).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |r| r.name.clone()))
    }

    /// Every enabled rule of the tenant (what the dispatcher matches events against).
    pub async fn enabled_rules(&self) -> Result<Vec<RuleRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM notify_rules WHERE tenant_id = $1 AND enabled = 1 ORDER BY id",
        )
        .bind(self.tenant.as_str())
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("rules"))?;
        rows.iter().map(rule).collect()
    }

    /// Replaces a rule's spec and enabled flag.
    pub async fn update_rule(
        &self,
        id: &str,
        enabled: bool,
        spec: &Value,
        now: DateTime<Utc>,
    ) -> Result<RuleRecord> {
        let done = sqlx::query(
            "UPDATE notify_rules SET enabled = $3, spec = $4, updated_at = $5 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(id)
        .bind(i64::from(enabled))
        .bind(json_text(spec))
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(self.err("rule"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("rule {id}")));
        }
        self.rule(id).await
    }

    pub async fn delete_rule(&self, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM notify_rules WHERE tenant_id = $1 AND id = $2")
            .bind(self.tenant.as_str())
            .bind(id)
            .execute(&self.store.pool)
            .await
            .map_err(self.err("rule"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("rule {id}")));
        }
        Ok(())
    }

    // ---- templates ----

    /// Creates or replaces a template.
    pub async fn put_template(
        &self,
        name: &str,
        channel_type: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<TemplateRecord> {
        sqlx::query(
            "INSERT INTO notify_templates (tenant_id, name, channel_type, source, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (tenant_id, name) DO UPDATE \
             SET channel_type = $3, source = $4, updated_at = $5",
        )
        .bind(self.tenant.as_str())
        .bind(name)
        .bind(channel_type)
        .bind(source)
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(self.err("template"))?;
        self.template(name).await
    }

    pub async fn template(&self, name: &str) -> Result<TemplateRecord> {
        sqlx::query("SELECT * FROM notify_templates WHERE tenant_id = $1 AND name = $2")
            .bind(self.tenant.as_str())
            .bind(name)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("template"))?
            .map(|row| template(&row))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("template {name}")))
    }

    pub async fn templates(&self) -> Result<Vec<TemplateRecord>> {
        let rows = sqlx::query("SELECT * FROM notify_templates WHERE tenant_id = $1 ORDER BY name")
            .bind(self.tenant.as_str())
            .fetch_all(&self.store.pool)
            .await
            .map_err(self.err("templates"))?;
        rows.iter().map(template).collect()
    }

    pub async fn delete_template(&self, name: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM notify_templates WHERE tenant_id = $1 AND name = $2")
            .bind(self.tenant.as_str())
            .bind(name)
            .execute(&self.store.pool)
            .await
            .map_err(self.err("template"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("template {name}")));
        }
        Ok(())
    }

    // ---- deliveries ----

    /// Creates a delivery unless one with its dedupe key exists; either way returns the
    /// delivery of that key.
    pub async fn insert_delivery(
        &self,
        delivery: &NewDelivery,
        now: DateTime<Utc>,
    ) -> Result<DeliveryRecord> {
        let mut tx = self
            .store
            .pool
            .begin()
            .await
            .map_err(self.err("delivery"))?;
        insert_deliveries(self.store, &mut tx, std::slice::from_ref(delivery), now).await?;
        tx.commit().await.map_err(self.err("delivery"))?;
        self.delivery_by_key(&delivery.dedupe_key).await
    }

    pub async fn delivery(&self, id: &str) -> Result<DeliveryRecord> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.tenant_id = $1 AND d.id = $2"
        );
        sqlx::query(&sql)
            .bind(self.tenant.as_str())
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("delivery"))?
            .map(|row| delivery(&row))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))
    }

    pub async fn delivery_by_key(&self, dedupe_key: &str) -> Result<DeliveryRecord> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} \
             WHERE d.tenant_id = $1 AND d.dedupe_key = $2"
        );
        sqlx::query(&sql)
            .bind(self.tenant.as_str())
            .bind(dedupe_key)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("delivery"))?
            .map(|row| delivery(&row))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("delivery {dedupe_key}")))
    }

    /// Deliveries, newest first.
    pub async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Page<DeliveryRecord>> {
        let before = match before {
            Some(c) => DeliveryId::parse(c)
                .map_err(|_| StoreError::Invalid(format!("cursor {c:?} is not a delivery cursor")))?
                .to_string(),
            None => "dlv_~".to_owned(),
        };
        let limit = check_limit(limit)?;
        let sql = format!(
            "SELECT * FROM (SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} \
             WHERE d.tenant_id = $1 AND d.id < $2 \
             AND ($3 = '' OR d.channel_id = $3) AND ($4 = '' OR d.rule_id = $4) \
             AND ($5 = '' OR d.event_kind = $5) AND d.created_at >= $6 AND d.created_at < $7) s \
             WHERE ($8 = '' OR s.status = $8) ORDER BY s.id DESC LIMIT $9"
        );
        let rows = sqlx::query(&sql)
            .bind(self.tenant.as_str())
            .bind(before)
            .bind(filter.channel_id.as_deref().unwrap_or(""))
            .bind(filter.rule_id.as_deref().unwrap_or(""))
            .bind(filter.event_kind.as_deref().unwrap_or(""))
            .bind(filter.since.map_or(i64::MIN, to_millis))
            .bind(filter.until.map_or(i64::MAX, to_millis))
            .bind(filter.status.as_deref().unwrap_or(""))
            .bind(limit + 1)
            .fetch_all(&self.store.pool)
            .await
            .map_err(self.err("deliveries"))?;
        let items = rows.iter().map(delivery).collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |d| d.id.clone()))
    }

    /// Moves a delivery's status forward (a delivered one stays delivered) and records
    /// the job now carrying it and a detail.
    pub async fn set_delivery(
        &self,
        id: &str,
        status: &str,
        job_id: Option<&JobId>,
        detail: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notify_deliveries SET status = $3, job_id = COALESCE($4, job_id), \
             detail = COALESCE($5, detail), updated_at = $6 \
             WHERE tenant_id = $1 AND id = $2 AND status <> 'delivered'",
        )
        .bind(self.tenant.as_str())
        .bind(id)
        .bind(status)
        .bind(job_id.map(JobId::as_str))
        .bind(detail.map(json_text))
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(self.err("delivery"))?;
        Ok(())
    }

    /// Records that `job` now carries the delivery (a digest job that claimed it), so its
    /// status follows that job's end.
    pub async fn carry(&self, id: &str, job: &JobId, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE notify_deliveries SET job_id = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2 AND status <> 'delivered'",
        )
        .bind(self.tenant.as_str())
        .bind(id)
        .bind(job.as_str())
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(self.err("delivery"))?;
        Ok(())
    }

    /// Records the start of a wire attempt; returns its number (1, 2, ...).
    pub async fn begin_attempt(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<u32> {
        let (n,): (i64,) = sqlx::query_as(
            "INSERT INTO notify_attempts (tenant_id, delivery_id, attempt, started_at, outcome) \
             SELECT $1, $2, COALESCE(MAX(attempt), 0) + 1, $3, 'sending' FROM notify_attempts \
             WHERE tenant_id = $1 AND delivery_id = $2 RETURNING attempt",
        )
        .bind(self.tenant.as_str())
        .bind(delivery_id)
        .bind(to_millis(now))
        .fetch_one(&self.store.pool)
        .await
        .map_err(self.err("attempt"))?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    /// Records how a wire attempt ended.
    pub async fn end_attempt(
        &self,
        delivery_id: &str,
        attempt: u32,
        end: &AttemptEnd,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE notify_attempts SET outcome = $4, status_code = $5, latency_ms = $6, \
             error = $7, response_head = $8 \
             WHERE tenant_id = $1 AND delivery_id = $2 AND attempt = $3",
        )
        .bind(self.tenant.as_str())
        .bind(delivery_id)
        .bind(i64::from(attempt))
        .bind(if end.ok { "ok" } else { "failed" })
        .bind(end.status_code.map(i64::from))
        .bind(end.latency_ms.map(|l| i64::try_from(l).unwrap_or(i64::MAX)))
        .bind(end.error.as_deref())
        .bind(end.response_head.as_deref())
        .execute(&self.store.pool)
        .await
        .map_err(self.err("attempt"))?;
        Ok(())
    }

    /// A delivery's wire attempts, first first.
    pub async fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM notify_attempts WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY attempt",
        )
        .bind(self.tenant.as_str())
        .bind(delivery_id)
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("attempts"))?;
        rows.iter().map(attempt).collect()
    }

    // ---- throttles and digests ----

    /// Takes one of a channel's `max` sends in the throttle window starting at
    /// `window_start`; `false` when the window is full.
    pub async fn take_throttle(
        &self,
        channel_id: &str,
        window_start: DateTime<Utc>,
        max: u32,
    ) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO notify_throttle (tenant_id, channel_id, window_start, sent) \
             VALUES ($1, $2, $3, 1) ON CONFLICT (tenant_id, channel_id, window_start) \
             DO UPDATE SET sent = notify_throttle.sent + 1 WHERE notify_throttle.sent < $4 \
             RETURNING sent",
        )
        .bind(self.tenant.as_str())
        .bind(channel_id)
        .bind(to_millis(window_start))
        .bind(i64::from(max))
        .fetch_optional(&self.store.pool)
        .await
        .map_err(self.err("throttle"))?;
        Ok(row.is_some() && max > 0)
    }

    /// Adds an item to its digest group (once per group and delivery).
    pub async fn add_digest_item(&self, item: &NewDigestItem, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.store.pool.begin().await.map_err(self.err("digest"))?;
        insert_digest_items(self.store, &mut tx, std::slice::from_ref(item), now).await?;
        tx.commit().await.map_err(self.err("digest"))?;
        Ok(())
    }

    /// Claims, for digest job `job`, the group's unclaimed items due by `now`, and moves
    /// the group to its next generation; returns every item the job holds (so a retried
    /// job finds what it claimed before).
    pub async fn claim_digest(
        &self,
        group_key: &str,
        generation: i64,
        job: &JobId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DigestItem>> {
        let err = self.err("digest");
        let mut tx = self.store.pool.begin().await.map_err(&err)?;
        let moved = sqlx::query(
            "UPDATE notify_digest_groups SET generation = generation + 1 \
             WHERE tenant_id = $1 AND group_key = $2 AND generation = $3",
        )
        .bind(self.tenant.as_str())
        .bind(group_key)
        .bind(generation)
        .execute(&mut *tx)
        .await
        .map_err(&err)?;
        if moved.rows_affected() > 0 {
            sqlx::query(
                "UPDATE notify_digest_items SET digest_job = $3 \
                 WHERE tenant_id = $1 AND group_key = $2 AND digest_job IS NULL AND due_at <= $4",
            )
            .bind(self.tenant.as_str())
            .bind(group_key)
            .bind(job.as_str())
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        }
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT delivery_id, reason, event FROM notify_digest_items \
             WHERE tenant_id = $1 AND group_key = $2 AND digest_job = $3 ORDER BY created_at, delivery_id",
        )
        .bind(self.tenant.as_str())
        .bind(group_key)
        .bind(job.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
        tx.commit().await.map_err(&err)?;
        rows.into_iter()
            .map(|(delivery_id, reason, event)| {
                Ok(DigestItem {
                    delivery_id,
                    reason,
                    event: parse_json(&event, "digest item")?,
                })
            })
            .collect()
    }
}

/// `(tenant, group, channel, rule, template, generation, earliest due)`.
type OpenDigestRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

/// An event as the notifier reads it: `(seq, tenant or None, kind, dedupe key, payload,
/// created_at)`.
pub type NotifyEventRow = (i64, Option<TenantId>, String, String, Value, DateTime<Utc>);

impl Store {
    /// Digest groups of every tenant with unclaimed items and no digest job yet for their
    /// generation (the scheduler gives each one; a group whose job waits for its due time
    /// is not read again every pass).
    pub async fn open_digests(&self, limit: u32) -> Result<Vec<OpenDigest>> {
        let rows: Vec<OpenDigestRow> = sqlx::query_as(
                "SELECT g.tenant_id, g.group_key, g.channel_id, g.rule_id, g.template, g.generation, \
                 MIN(i.due_at) FROM notify_digest_groups g JOIN notify_digest_items i \
                 ON i.tenant_id = g.tenant_id AND i.group_key = g.group_key AND i.digest_job IS NULL \
                 WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.tenant_id = g.tenant_id \
                 AND j.idempotency_key = 'digest:' || g.group_key || ':' || CAST(g.generation AS TEXT)) \
                 GROUP BY g.tenant_id, g.group_key, g.channel_id, g.rule_id, g.template, g.generation \
                 ORDER BY MIN(i.due_at) LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e, "digests"))?;
        rows.into_iter()
            .map(
                |(tenant, group_key, channel_id, rule_id, template, generation, due)| {
                    Ok(OpenDigest {
                        tenant: TenantId::parse(&tenant)?,
                        group_key,
                        channel_id,
                        rule_id,
                        template,
                        generation,
                        due_at: from_millis(due),
                    })
                },
            )
            .collect()
    }

    /// Events of every tenant after `seq`, oldest first, with their dedupe keys and times:
    /// `(seq, tenant or None, kind, dedupe key, payload, created_at)`.
    pub async fn events_for_notify(&self, seq: i64, limit: u32) -> Result<Vec<NotifyEventRow>> {
        let rows: Vec<(i64, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT seq, tenant_id, kind, dedupe_key, payload, created_at FROM events \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e, "events"))?;
        rows.into_iter()
            .map(|(seq, tenant, kind, key, payload, at)| {
                let tenant = if tenant.is_empty() {
                    None
                } else {
                    Some(TenantId::parse(&tenant)?)
                };
                Ok((
                    seq,
                    tenant,
                    kind,
                    key,
                    parse_json(&payload, "event")?,
                    from_millis(at),
                ))
            })
            .collect()
    }
}

/// Inserts deliveries (a dedupe key that exists is left as it is) inside `tx`.
pub(crate) async fn insert_deliveries(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    rows: &[NewDelivery],
    now: DateTime<Utc>,
) -> Result<()> {
    let at = to_millis(now);
    for d in rows {
        sqlx::query(
            "INSERT INTO notify_deliveries (tenant_id, id, dedupe_key, event_id, event_kind, \
             event_seq, rule_id, channel_id, channel_type, mode, job_id, status, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
             ON CONFLICT (tenant_id, dedupe_key) DO NOTHING",
        )
        .bind(d.tenant.as_str())
        .bind(d.id.as_str())
        .bind(&d.dedupe_key)
        .bind(&d.event_id)
        .bind(&d.event_kind)
        .bind(d.event_seq)
        .bind(d.rule_id.as_ref().map(RuleId::as_str))
        .bind(d.channel_id.as_str())
        .bind(&d.channel_type)
        .bind(&d.mode)
        .bind(d.job_id.as_ref().map(JobId::as_str))
        .bind(&d.status)
        .bind(at)
        .execute(&mut **tx)
        .await
        .map_err(|e| store.err(e, "delivery"))?;
    }
    Ok(())
}

/// Inserts digest items (and their groups) inside `tx`; an item already in its group is
/// left as it is.
pub(crate) async fn insert_digest_items(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    items: &[NewDigestItem],
    now: DateTime<Utc>,
) -> Result<()> {
    let at = to_millis(now);
    let err = |e| store.err(e, "digest item");
    for item in items {
        sqlx::query(
            "INSERT INTO notify_digest_groups (tenant_id, group_key, channel_id, rule_id, template, \
             generation) VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (tenant_id, group_key) DO NOTHING",
        )
        .bind(item.tenant.as_str())
        .bind(&item.group_key)
        .bind(item.channel_id.as_str())
        .bind(item.rule_id.as_ref().map(RuleId::as_str))
        .bind(item.template.as_deref())
        .execute(&mut **tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "INSERT INTO notify_digest_items (tenant_id, group_key, delivery_id, reason, event, \
             due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, group_key, delivery_id) DO NOTHING",
        )
        .bind(item.tenant.as_str())
        .bind(&item.group_key)
        .bind(item.delivery_id.as_str())
        .bind(&item.reason)
        .bind(json_text(&item.event))
        .bind(to_millis(item.due_at))
        .bind(at)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    Ok(())
}

impl Notify<'_> {
    /// The tenant's latest `limit` events, oldest first: `(seq, kind, dedupe key,
    /// payload, created_at)` (what a rule preview matches against).
    pub async fn recent_events(
        &self,
        limit: u32,
    ) -> Result<Vec<(i64, String, String, Value, DateTime<Utc>)>> {
        let limit = check_limit(limit)?;
        let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT seq, kind, dedupe_key, payload, created_at FROM events \
             WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(self.tenant.as_str())
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("events"))?;
        let mut out = rows
            .into_iter()
            .map(|(seq, kind, key, payload, at)| {
                Ok((
                    seq,
                    kind,
                    key,
                    parse_json(&payload, "event")?,
                    from_millis(at),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    /// The event envelope a digested delivery waits with, if it is one.
    pub async fn digest_event(&self, delivery_id: &str) -> Result<Option<Value>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT event FROM notify_digest_items WHERE tenant_id = $1 AND delivery_id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(delivery_id)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(self.err("digest item"))?;
        row.map(|(e,)| parse_json(&e, "digest item")).transpose()
    }

    /// Whether any rule names the channel (a channel in use is not deleted).
    pub async fn rules_naming_channel(&self, name: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, spec FROM notify_rules WHERE tenant_id = $1")
                .bind(self.tenant.as_str())
                .fetch_all(&self.store.pool)
                .await
                .map_err(self.err("rules"))?;
        for (rule, spec) in rows {
            let spec = parse_json(&spec, "rule spec")?;
            let uses = spec["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["channel"] == name));
            if uses {
                names.push(rule);
            }
        }
        Ok(names)
    }
}
