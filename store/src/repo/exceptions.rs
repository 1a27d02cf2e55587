//! Exceptions (waivers): requested by one identity, approved or rejected by another,
//! then in force until they expire or are revoked. Scans read the tenant's active
//! exceptions and the domain decides, against the evaluation time, whether each still
//! applies (one evaluation path: an expired exception never applies, even before the
//! scheduler has marked it expired). Activation, revocation and expiry each append an
//! event in their transaction (`exception.activated`, `exception.revoked`,
//! `exception.expired`), which the scheduler turns into a re-evaluation of the targets
//! the exception touches.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use super::policies::{checked_reason, Actor};
use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::{check_limit, insert_event, page, NewEvent, Page};
use crate::{ExceptionId, Store, TenantId};

/// Why a finding is waived.
pub const EXCEPTION_KINDS: &[&str] = &[
    "false_positive",
    "not_affected",
    "mitigated",
    "accepted_risk",
    "fix_pending",
];

/// The longest an exception may last: one year.
pub const MAX_EXCEPTION_DAYS: i64 = 366;

/// What a requester asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewException {
    pub vulnerability: String,
    /// A package URL without version; `None`: every package.
    pub package: Option<String>,
    /// A target name; `None`: every target of the tenant.
    pub target: Option<String>,
    pub kind: String,
    pub justification: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExceptionRecord {
    pub id: ExceptionId,
    pub vulnerability: String,
    pub package: Option<String>,
    pub target: Option<String>,
    pub kind: String,
    pub justification: String,
    pub expires_at: DateTime<Utc>,
    /// `requested`, `active`, `rejected`, `expired` or `revoked`.
    pub status: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// Who approved, rejected or revoked it.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    /// When it stopped applying (expired or revoked).
    pub ended_at: Option<DateTime<Utc>>,
}

/// A decision on a requested exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

/// What a list keeps.
#[derive(Debug, Clone, Default)]
pub struct ExceptionFilter {
    pub status: Option<String>,
    /// Active exceptions whose expiry is before this time.
    pub expiring_before: Option<DateTime<Utc>>,
    pub vulnerability: Option<String>,
}

const COLUMNS: &str = "id, vulnerability, package, target, kind, justification, expires_at, \
                       status, requested_by, requested_at, decided_by, decided_at, \
                       decision_reason, ended_at";

/// A tenant's exceptions. Obtained from [`crate::TenantScope::exceptions`].
#[derive(Debug, Clone, Copy)]
pub struct Exceptions<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Exceptions<'_> {
    /// Records a request, checked: a known type, a justification of at least a sentence
    /// (20 characters, three words), an expiry in the future and within a year.
    pub async fn request(
        &self,
        new: &NewException,
        by: Actor<'_>,
        now: DateTime<Utc>,
    ) -> Result<ExceptionRecord> {
        check(new, now)?;
        let id = ExceptionId::generate();
        sqlx::query(
            "INSERT INTO policy_exceptions (tenant_id, id, vulnerability, package, target, kind, \
             justification, expires_at, status, requested_by, requested_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'requested', $9, $10)",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(new.vulnerability.trim())
        .bind(new.package.as_deref())
        .bind(new.target.as_deref())
        .bind(&new.kind)
        .bind(new.justification.trim())
        .bind(to_millis(new.expires_at))
        .bind(by.identity)
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "exception"))?;
        self.get(&id).await
    }

    /// Approves (it is in force at once) or rejects a requested exception (saying why);
    /// the identity that requested it cannot decide it.
    pub async fn decide(
        &self,
        id: &ExceptionId,
        decision: Decision,
        by: Actor<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ExceptionRecord> {
        let current = self.get(id).await?;
        let reason = checked_reason(reason, decision == Decision::Reject)?;
        if current.status != "requested" {
            return Err(StoreError::Conflict(format!(
                "exception {id} is {}; only a requested exception is approved or rejected",
                current.status
            )));
        }
        if current.requested_by == by.identity {
            return Err(StoreError::Forbidden(format!(
                "{} requested exception {id}; another identity must decide it \
                 (separation of duties)",
                by.identity
            )));
        }
        if decision == Decision::Approve && current.expires_at <= now {
            return Err(StoreError::Conflict(format!(
                "exception {id} expired at {} before it was approved; request a new one",
                current.expires_at.to_rfc3339()
            )));
        }
        let status = match decision {
            Decision::Approve => "active",
            Decision::Reject => "rejected",
        };
        let event = (decision == Decision::Approve).then_some("exception.activated");
        self.change(
            &current,
            "requested",
            status,
            by.identity,
            reason,
            event,
            now,
        )
        .await
    }

    /// Ends an active exception before its expiry, saying why.
    pub async fn revoke(
        &self,
        id: &ExceptionId,
        by: Actor<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ExceptionRecord> {
        let current = self.get(id).await?;
        let reason = checked_reason(reason, true)?;
        if current.status != "active" {
            return Err(StoreError::Conflict(format!(
                "exception {id} is {}; only an active exception is revoked",
                current.status
            )));
        }
        self.change(
            &current,
            "active",
            "revoked",
            by.identity,
            reason,
            Some("exception.revoked"),
            now,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        current: &ExceptionRecord,
        from: &str,
        to: &str,
        identity: &str,
        reason: &str,
        event: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ExceptionRecord> {
        let err = |e| self.store.err(e, "exception");
        let mut tx = self.store.pool.begin().await.map_err(err)?;
        let ended = (to == "revoked").then_some(to_millis(now));
        let changed = sqlx::query(
            "UPDATE policy_exceptions SET status = $3, decided_by = $4, decided_at = $5, \
             decision_reason = $6, ended_at = COALESCE($7, ended_at) \
             WHERE tenant_id = $1 AND id = $2 AND status = $8",
        )
        .bind(self.tenant.as_str())
        .bind(current.id.as_str())
        .bind(to)
        .bind(identity)
        .bind(to_millis(now))
        .bind(reason)
        .bind(ended)
        .bind(from)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        if changed != 1 {
            return Err(StoreError::Conflict(format!(
                "exception {} changed meanwhile; read it again",
                current.id
            )));
        }
        if let Some(kind) = event {
            let event = exception_event(kind, current);
            insert_event(
                &mut tx,
                self.store,
                Some(self.tenant),
                &event,
                to_millis(now),
            )
            .await?;
        }
        tx.commit().await.map_err(err)?;
        self.get(&current.id).await
    }

    pub async fn get(&self, id: &ExceptionId) -> Result<ExceptionRecord> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policy_exceptions WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "exception"))?
        .ok_or_else(|| StoreError::NotFound(format!("exception {id}")))?;
        decode(self.store, &row)
    }

    /// Every active exception of the tenant, whatever target it is scoped to (the
    /// evaluator keeps those whose scope is empty or the scan's target).
    pub async fn in_force(&self) -> Result<Vec<ExceptionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policy_exceptions WHERE tenant_id = $1 AND status = 'active' \
             ORDER BY id"
        ))
        .bind(self.tenant.as_str())
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "exceptions"))?;
        rows.iter().map(|row| decode(self.store, row)).collect()
    }

    /// Newest first; the cursor is the last id seen.
    pub async fn list(
        &self,
        filter: &ExceptionFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ExceptionRecord>> {
        let limit = check_limit(limit)?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policy_exceptions WHERE tenant_id = $1 \
             AND ($2 = '' OR id < $2) AND ($3 = '' OR status = $3) \
             AND ($4 < 0 OR (status = 'active' AND expires_at < $4)) \
             AND ($5 = '' OR vulnerability = $5) ORDER BY id DESC LIMIT $6"
        ))
        .bind(self.tenant.as_str())
        .bind(cursor.unwrap_or(""))
        .bind(filter.status.as_deref().unwrap_or(""))
        .bind(filter.expiring_before.map_or(-1, to_millis))
        .bind(filter.vulnerability.as_deref().unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "exceptions"))?;
        let items = rows
            .iter()
            .map(|row| decode(self.store, row))
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |e| e.id.to_string()))
    }
}

/// Marks every active exception whose expiry has come (any tenant) expired, with its
/// `exception.expired` event, at most `limit` per call; returns how many. Each row moves
/// once (conditional on `active`) and its event has one dedupe key, so two schedulers
/// running it at once expire each exception once.
pub async fn expire_due(store: &Store, now: DateTime<Utc>, limit: u32) -> Result<usize> {
    let rows = sqlx::query(&format!(
        "SELECT tenant_id, {COLUMNS} FROM policy_exceptions \
         WHERE status = 'active' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
    ))
    .bind(to_millis(now))
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(|e| store.err(e, "exceptions"))?;
    let mut expired = 0;
    for row in &rows {
        let tenant = TenantId::parse(
            &row.try_get::<String, _>("tenant_id")
                .map_err(|e| store.err(e, "exception"))?,
        )?;
        let record = decode(store, row)?;
        let err = |e| store.err(e, "exception");
        let mut tx = store.pool.begin().await.map_err(err)?;
        let changed = sqlx::query(
            "UPDATE policy_exceptions SET status = 'expired', ended_at = expires_at \
             WHERE tenant_id = $1 AND id = $2 AND status = 'active'",
        )
        .bind(tenant.as_str())
        .bind(record.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        if changed == 1 {
            let event = exception_event("exception.expired", &record);
            insert_event(&mut tx, store, Some(&tenant), &event, to_millis(now)).await?;
            expired += 1;
        }
        tx.commit().await.map_err(err)?;
    }
    Ok(expired)
}

fn exception_event(kind: &str, record: &ExceptionRecord) -> NewEvent {
    NewEvent {
        kind: kind.to_owned(),
        dedupe_key: format!("{kind}:{}", record.id),
        payload: serde_json::json!({
            "exception": record.id.as_str(),
            "vulnerability": record.vulnerability,
            "package": record.package,
            "target": record.target,
            "expires_at": record.expires_at.to_rfc3339(),
        }),
    }
}

fn check(new: &NewException, now: DateTime<Utc>) -> Result<()> {
    let invalid = |what: &str| Err(StoreError::Invalid(what.to_owned()));
    let vulnerability = new.vulnerability.trim();
    if vulnerability.is_empty() || vulnerability.len() > 200 {
        return invalid("vulnerability: 1-200 characters");
    }
    if let Some(package) = &new.package {
        if !package.starts_with("pkg:") || package.contains('@') || package.len() > 500 {
            return invalid("package: a package URL without version (pkg:type/name)");
        }
    }
    if new
        .target
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.len() > 200)
    {
        return invalid("target: 1-200 characters");
    }
    if !EXCEPTION_KINDS.contains(&new.kind.as_str()) {
        return Err(StoreError::Invalid(format!(
            "type: one of {}",
            EXCEPTION_KINDS.join(", ")
        )));
    }
    let justification = new.justification.trim();
    if justification.len() < 20
        || justification.split_whitespace().count() < 3
        || justification.len() > 4_000
    {
        return invalid(
            "justification: at least a sentence (20 characters, three words), at most 4,000",
        );
    }
    if new.expires_at <= now {
        return invalid("expires_at: in the future");
    }
    if new.expires_at > now + Duration::days(MAX_EXCEPTION_DAYS) {
        return Err(StoreError::Invalid(format!(
            "expires_at: within {MAX_EXCEPTION_DAYS} days"
        )));
    }
    Ok(())
}

fn decode(store: &Store, row: &sqlx::any::AnyRow) -> Result<ExceptionRecord> {
    let get = |e| store.err(e, "exception");
    let millis = |name: &str| -> Result<Option<DateTime<Utc>>> {
        Ok(row
            .try_get::<Option<i64>, _>(name)
            .map_err(get)?
            .map(from_millis))
    };
    Ok(ExceptionRecord {
        id: ExceptionId::parse(&row.try_get::<String, _>("id").map_err(get)?)?,
        vulnerability: row.try_get("vulnerability").map_err(get)?,
        package: row.try_get("package").map_err(get)?,
        target: row.try_get("target").map_err(get)?,
        kind: row.try_get("kind").map_err(get)?,
        justification: row.try_get("justification").map_err(get)?,
        expires_at: from_millis(row.try_get("expires_at").map_err(get)?),
        status: row.try_get("status").map_err(get)?,
        requested_by: row.try_get("requested_by").map_err(get)?,
        requested_at: from_millis(row.try_get("requested_at").map_err(get)?),
        decided_by: row.try_get("decided_by").map_err(get)?,
        decided_at: millis("decided_at")?,
        decision_reason: row.try_get("decision_reason").map_err(get)?,
        ended_at: millis("ended_at")?,
    })
}
