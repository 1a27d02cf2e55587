use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{check_limit, page, text_cursor, Page};
use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis, TokenId};
use crate::{Store, TenantId};

/// Prefix of every generated secret, so leaked tokens are easy to recognize in logs and
/// secret scanners.
pub const TOKEN_PREFIX: &str = "stella_";

/// How fresh a token's `last_used_at` is kept.
const LAST_USED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// An API token as stored: never the secret, only its SHA-256. Secrets are 256 random bits,
/// so a fast hash is enough (no password stretching is needed for high-entropy secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: TokenId,
    /// `None` for administrator tokens, which act on any tenant.
    pub tenant: Option<TenantId>,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub tenant: Option<TenantId>,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    pub(crate) store: &'a Store,
}

const COLUMNS: &str =
    "id, tenant_id, name, scopes, created_at, expires_at, revoked_at, last_used_at";

pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Tokens<'_> {
    /// Creates a token with a fresh random secret; the secret is returned once and never
    /// stored.
    pub async fn create(
        &self,
        new: &NewToken,
        now: DateTime<Utc>,
    ) -> Result<(TokenRecord, String)> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
        let record = self.create_with_secret(new, &secret, now).await?;
        Ok((record, secret))
    }

    /// Creates a token whose secret the caller chose (`STELLA_BOOTSTRAP_TOKEN`).
    pub async fn create_with_secret(
        &self,
        new: &NewToken,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenRecord> {
        if secret.len() < 16 {
            return Err(StoreError::Invalid(
                "token secret must be at least 16 characters".into(),
            ));
        }
        if new.name.trim().is_empty() || new.name.len() > 200 {
            return Err(StoreError::Invalid(
                "token name must be 1-200 characters".into(),
            ));
        }
        let id = TokenId::generate();
        let scopes = serde_json::to_string(&new.scopes)
            .map_err(|err| StoreError::Invalid(format!("scopes: {err}")))?;
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, name, secret_hash, scopes, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_str())
        .bind(new.tenant.as_ref().map(TenantId::as_str))
        .bind(&new.name)
        .bind(hash_secret(secret))
        .bind(scopes)
        .bind(to_millis(now))
        .bind(new.expires_at.map(to_millis))
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "token"))?;
        self.get(&id).await
    }

    pub async fn get(&self, id: &TokenId) -> Result<TokenRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id.as_str())
            .fetch_one(&self.store.pool)
            .await
            .map_err(|err| self.store.err(err, &format!("token {id}")))?;
        decode(&row)
    }

    /// The active token with this secret, if any: not revoked, not expired, and (for a
    /// tenant token) its tenant not disabled. Records the use, at most once a minute: a
    /// write per request would make every read a write, and on SQLite every writer waits
    /// for the one before.
    pub async fn authenticate(
        &self,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens t WHERE secret_hash = $1 \
             AND (tenant_id IS NULL OR EXISTS \
                 (SELECT 1 FROM tenants WHERE tenants.id = t.tenant_id AND tenants.status = 'active'))"
        ))
        .bind(hash_secret(secret))
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "token"))?;
        let Some(record) = row.as_ref().map(decode).transpose()? else {
            return Ok(None);
        };
        if !record.is_active(now) {
            return Ok(None);
        }
        if record
            .last_used_at
            .is_some_and(|at| now - at < LAST_USED_RESOLUTION)
        {
            return Ok(Some(record));
        }
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(to_millis(now))
            .bind(record.id.as_str())
            .execute(&self.store.pool)
            .await
            .map_err(|err| self.store.err(err, "token"))?;
        Ok(Some(record))
    }

    pub async fn revoke(&self, id: &TokenId, now: DateTime<Utc>) -> Result<TokenRecord> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "token"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        self.get(id).await
    }

    /// Tokens of one tenant, ordered by id.
    pub async fn list_for_tenant(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<TokenRecord>> {
        let limit = check_limit(limit)?;
        let cursor = text_cursor(cursor, "token", |c| TokenId::parse(c).is_ok())?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant.as_str())
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "tokens"))?;
        let records = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(page(records, limit, |t| t.id.to_string()))
    }

    /// Administrator tokens (no tenant), ordered by id.
    pub async fn list_admin(&self, cursor: Option<&str>, limit: u32) -> Result<Page<TokenRecord>> {
        let limit = check_limit(limit)?;
        let cursor = text_cursor(cursor, "token", |c| TokenId::parse(c).is_ok())?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE tenant_id IS NULL AND id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "tokens"))?;
        let records = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(page(records, limit, |t| t.id.to_string()))
    }

    /// Whether any administrator token that is not revoked exists.
    pub async fn admin_exists(&self) -> Result<bool> {
        let row: (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM api_tokens WHERE tenant_id IS NULL AND revoked_at IS NULL",
        )
        .fetch_one(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "tokens"))?;
        Ok(row.0 > 0)
    }
}

fn decode(row: &AnyRow) -> Result<TokenRecord> {
    let get = |e: sqlx::Error| StoreError::Corrupt(format!("token row: {e}"));
    let scopes: String = row.try_get("scopes").map_err(get)?;
    let opt_time = |name: &str| -> Result<Option<DateTime<Utc>>> {
        Ok(row
            .try_get::<Option<i64>, _>(name)
            .map_err(get)?
            .map(from_millis))
    };
    Ok(TokenRecord {
        id: TokenId::parse(&row.try_get::<String, _>("id").map_err(get)?)?,
        tenant: row
            .try_get::<Option<String>, _>("tenant_id")
            .map_err(get)?
            .map(|t| TenantId::parse(&t))
            .transpose()?,
        name: row.try_get("name").map_err(get)?,
        scopes: serde_json::from_str(&scopes)
            .map_err(|err| StoreError::Corrupt(format!("token scopes: {err}")))?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
        expires_at: opt_time("expires_at")?,
        revoked_at: opt_time("revoked_at")?,
        last_used_at: opt_time("last_used_at")?,
    })
}
