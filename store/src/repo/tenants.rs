use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{check_limit, page, text_cursor, Page};
use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::{Store, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    /// The tenant's tokens stop working; its data is kept.
    Disabled,
}

impl TenantStatus {
    fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Disabled => "disabled",
        }
    }

    fn parse(value: &str) -> Result<Self> {
        match value {
            "active" => Ok(TenantStatus::Active),
            "disabled" => Ok(TenantStatus::Disabled),
            other => Err(StoreError::Corrupt(format!("tenant status {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub status: TenantStatus,
    /// What rollout waves select tenants by (`env` → `prod`).
    pub labels: std::collections::BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The most labels a tenant may carry.
pub const MAX_TENANT_LABELS: usize = 32;

/// Tenants themselves (the administrator's view).
#[derive(Debug, Clone, Copy)]
pub struct Tenants<'a> {
    pub(crate) store: &'a Store,
}

const COLUMNS: &str = "id, name, status, labels, created_at, updated_at";

impl Tenants<'_> {
    pub async fn create(&self, id: &TenantId, name: &str, now: DateTime<Utc>) -> Result<Tenant> {
        validate_name(name)?;
        let at = to_millis(now);
        sqlx::query(
            "INSERT INTO tenants (id, name, status, created_at, updated_at) VALUES ($1, $2, 'active', $3, $3)",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(at)
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, &format!("tenant {id}")))?;
        self.get(id).await
    }

    /// Creates the tenant unless it exists; returns it either way.
    pub async fn ensure(&self, id: &TenantId, name: &str, now: DateTime<Utc>) -> Result<Tenant> {
        validate_name(name)?;
        let at = to_millis(now);
        sqlx::query(
            "INSERT INTO tenants (id, name, status, created_at, updated_at) VALUES ($1, $2, 'active', $3, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(at)
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, &format!("tenant {id}")))?;
        self.get(id).await
    }

    pub async fn get(&self, id: &TenantId) -> Result<Tenant> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"))
            .bind(id.as_str())
            .fetch_one(&self.store.pool)
            .await
            .map_err(|err| self.store.err(err, &format!("tenant {id}")))?;
        decode(&row)
    }

    /// Tenants ordered by id, `limit` at a time, starting after `cursor` (a tenant id).
    pub async fn list(&self, cursor: Option<&str>, limit: u32) -> Result<Page<Tenant>> {
        let limit = check_limit(limit)?;
        let cursor = text_cursor(cursor, "tenant", |c| TenantId::parse(c).is_ok())?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tenants WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "tenants"))?;
        let tenants = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(page(tenants, limit, |t| t.id.to_string()))
    }

    pub async fn rename(&self, id: &TenantId, name: &str, now: DateTime<Utc>) -> Result<Tenant> {
        validate_name(name)?;
        self.update(id, "name", name, now).await
    }

    /// Replaces the tenant's labels. Keys: 1-63 of a-z, 0-9, `.`, `_`, `-`, `/`, a letter
    /// or digit first; values: up to 63 of A-Z, a-z, 0-9, `.`, `_`, `-`.
    pub async fn set_labels(
        &self,
        id: &TenantId,
        labels: &std::collections::BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Tenant> {
        validate_labels(labels)?;
        let text = serde_json::to_string(labels)
            .map_err(|e| StoreError::Invalid(format!("labels: {e}")))?;
        self.update(id, "labels", &text, now).await
    }

    pub async fn set_status(
        &self,
        id: &TenantId,
        status: TenantStatus,
        now: DateTime<Utc>,
    ) -> Result<Tenant> {
        self.update(id, "status", status.as_str(), now).await
    }

    async fn update(
        &self,
        id: &TenantId,
        column: &'static str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<Tenant> {
        let done = sqlx::query(&format!(
            "UPDATE tenants SET {column} = $1, updated_at = $2 WHERE id = $3"
        ))
        .bind(value)
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, &format!("tenant {id}")))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant {id}")));
        }
        self.get(id).await
    }
}

fn validate_labels(labels: &std::collections::BTreeMap<String, String>) -> Result<()> {
    if labels.len() > MAX_TENANT_LABELS {
        return Err(StoreError::Invalid(format!(
            "labels: at most {MAX_TENANT_LABELS}"
        )));
    }
    for (key, value) in labels {
        let key_ok = (1..=63).contains(&key.len())
            && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && key.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/')
            });
        if !key_ok {
            return Err(StoreError::Invalid(format!(
                "labels: {key:?} is not a label key (1-63 of a-z, 0-9, '.', '_', '-', '/', \
                 a letter or digit first)"
            )));
        }
        let value_ok = value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !value_ok {
            return Err(StoreError::Invalid(format!(
                "labels: the value of {key:?} is not a label value (up to 63 of A-Z, a-z, 0-9, \
                 '.', '_', '-')"
            )));
        }
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(StoreError::Invalid(
            "tenant name must be 1-200 characters".into(),
        ));
    }
    Ok(())
}

fn decode(row: &AnyRow) -> Result<Tenant> {
    let get = |e: sqlx::Error| StoreError::Corrupt(format!("tenant row: {e}"));
    Ok(Tenant {
        id: TenantId::parse(&row.try_get::<String, _>("id").map_err(get)?)?,
        name: row.try_get("name").map_err(get)?,
        status: TenantStatus::parse(&row.try_get::<String, _>("status").map_err(get)?)?,
        labels: serde_json::from_str(&row.try_get::<String, _>("labels").map_err(get)?)
            .map_err(|e| StoreError::Corrupt(format!("tenant labels: {e}")))?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(get)?),
    })
}
