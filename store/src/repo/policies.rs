//! A tenant's policy versions and their lifecycle. A version is immutable; its status
//! moves draft → submitted → approved → active → archived (request-changes sends a
//! submitted version back to draft). Exactly one version is active, and scans read that
//! one. Activating appends a `policy.updated` event in the same transaction, so the
//! scheduler re-evaluates the tenant's targets; every transition is a row of
//! `policy_transitions` (who, why) written with it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::{check_limit, insert_event, numeric_cursor, page, NewEvent, Page};
use crate::{Store, TenantId};

/// Where a version is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyStatus {
    Draft,
    Submitted,
    Approved,
    Active,
    Archived,
}

impl PolicyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::Approved => "approved",
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "draft" => Self::Draft,
            "submitted" => Self::Submitted,
            "approved" => Self::Approved,
            "active" => Self::Active,
            "archived" => Self::Archived,
            other => return Err(StoreError::Corrupt(format!("policy status {other:?}"))),
        })
    }
}

/// A move of one version through its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyTransition {
    /// draft → submitted, for review.
    Submit,
    /// submitted → draft, with what to change.
    RequestChanges,
    /// submitted → approved, by another identity than the submitter.
    Approve,
    /// approved → active (the active one is archived). An archived version that was
    /// approved once may be activated again: that is how a rollback returns to it.
    Activate,
    /// draft, submitted or approved → archived, never to be activated.
    Archive,
}

impl PolicyTransition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::RequestChanges => "request-changes",
            Self::Approve => "approve",
            Self::Activate => "activate",
            Self::Archive => "archive",
        }
    }

    /// The statuses this transition starts from, and where it goes.
    fn moves(self) -> (&'static [PolicyStatus], PolicyStatus) {
        use PolicyStatus::*;
        match self {
            Self::Submit => (&[Draft], Submitted),
            Self::RequestChanges => (&[Submitted], Draft),
            Self::Approve => (&[Submitted], Approved),
            Self::Activate => (&[Approved, Archived], Active),
            Self::Archive => (&[Draft, Submitted, Approved], Archived),
        }
    }
}

/// One version of a tenant's policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRecord {
    pub version: u64,
    pub digest: String,
    pub document: String,
    pub status: PolicyStatus,
    /// The caller that wrote the document (as the audit log names it).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The identity (token name) that submitted it, while submitted or later.
    pub submitted_by: Option<String>,
    /// The identity that approved it.
    pub approved_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One transition of a version, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionRecord {
    pub version: u64,
    pub from: Option<PolicyStatus>,
    pub to: PolicyStatus,
    /// The identity (token name) that made it.
    pub identity: String,
    /// The caller, as the audit log names it.
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The reason kept with a transition or a decision, trimmed: at most 2,000 characters,
/// and required when `required` (what sends work back or ends it says why).
pub(crate) fn checked_reason(reason: &str, required: bool) -> Result<&str> {
    let reason = reason.trim();
    if required && reason.is_empty() {
        return Err(StoreError::Invalid(
            "reason: say why; it is required here".into(),
        ));
    }
    if reason.len() > 2_000 {
        return Err(StoreError::Invalid(
            "reason: at most 2,000 characters".into(),
        ));
    }
    Ok(reason)
}

/// Who makes a change: the identity separation of duties compares (a token's name), and
/// the caller as the audit log names it.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub identity: &'a str,
    pub actor: &'a str,
}

const COLUMNS: &str = "version, digest, document, status, created_by, created_at, \
                       submitted_by, approved_by, updated_at";

/// A tenant's policy versions. Obtained from [`crate::TenantScope::policies`].
#[derive(Debug, Clone, Copy)]
pub struct Policies<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Policies<'_> {
    /// Stores `document` as the next version, a draft, unless a version with the same
    /// digest is still in play (draft, submitted, approved or active): then that one is
    /// returned with `false`.
    pub async fn draft(
        &self,
        document: &str,
        digest: &str,
        by: Actor<'_>,
        now: DateTime<Utc>,
    ) -> Result<(PolicyRecord, bool)> {
        if let Some(same) = self
            .select(
                "AND digest = $2 AND status <> 'archived' ORDER BY version DESC LIMIT 1",
                Some(Bind::Text(digest)),
            )
            .await?
        {
            return Ok((same, false));
        }
        let err = |e| self.store.err(e, "policy");
        // The next version is computed in the insert itself. Two writers racing for one
        // version: the primary key lets one win and the other inserts nothing; it tries
        // again and sees the winner, so every round lets at least one writer through.
        for _ in 0..64 {
            let mut tx = self.store.pool.begin().await.map_err(err)?;
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO policies (tenant_id, version, digest, document, created_by, created_at, \
                                       status, updated_at) \
                 SELECT $1, CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT), $2, $3, $4, $5, 'draft', $5 \
                 FROM policies WHERE tenant_id = $1 \
                 ON CONFLICT (tenant_id, version) DO NOTHING RETURNING version",
            )
            .bind(self.tenant.as_str())
            .bind(digest)
            .bind(document)
            .bind(by.actor)
            .bind(to_millis(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            if let Some((version,)) = inserted {
                record_transition(
                    &mut tx,
                    self,
                    version,
                    None,
                    PolicyStatus::Draft,
                    by,
                    "",
                    now,
                )
                .await?;
                tx.commit().await.map_err(err)?;
                return self
                    .get(u64::try_from(version).unwrap_or(0))
                    .await
                    .map(|r| (r, true));
            }
        }
        Err(StoreError::Conflict(
            "policy versions kept changing; try again".into(),
        ))
    }

    /// Moves `version` through its lifecycle, in one transaction with its record in
    /// `policy_transitions` (and, for an activation, the archiving of the active version
    /// and the `policy.updated` event). A version not in a status the transition starts
    /// from is a conflict naming its status; approving what the same identity submitted
    /// is forbidden; requesting changes without a reason is invalid (`reason: …`).
    pub async fn transition(
        &self,
        version: u64,
        transition: PolicyTransition,
        by: Actor<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyRecord> {
        let err = |e| self.store.err(e, "policy");
        let version_i64 = i64::try_from(version).unwrap_or(i64::MAX);
        let (from, to) = transition.moves();
        let current = self.get(version).await?;
        let reason = checked_reason(reason, transition == PolicyTransition::RequestChanges)?;
        if !from.contains(&current.status)
            || (transition == PolicyTransition::Activate
                && current.status == PolicyStatus::Archived
                && current.approved_by.is_none())
        {
            return Err(StoreError::Conflict(format!(
                "policy version {version} is {}; `{}` needs a version that is {}",
                current.status.as_str(),
                transition.as_str(),
                expected(transition),
            )));
        }
        if transition == PolicyTransition::Approve
            && current.submitted_by.as_deref() == Some(by.identity)
        {
            return Err(StoreError::Forbidden(format!(
                "{} submitted policy version {version}; another identity must approve it \
                 (separation of duties)",
                by.identity
            )));
        }
        let superseded = match transition {
            PolicyTransition::Activate => self.active().await?,
            _ => None,
        };
        let mut tx = self.store.pool.begin().await.map_err(err)?;
        if let Some(active) = &superseded {
            let archived = sqlx::query(
                "UPDATE policies SET status = 'archived', updated_at = $3 \
                 WHERE tenant_id = $1 AND version = $2 AND status = 'active'",
            )
            .bind(self.tenant.as_str())
            .bind(i64::try_from(active.version).unwrap_or(i64::MAX))
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if archived != 1 {
                return Err(StoreError::Conflict(
                    "the active policy version changed meanwhile; try again".into(),
                ));
            }
            let why = format!("superseded by version {version}");
            record_transition(
                &mut tx,
                self,
                i64::try_from(active.version).unwrap_or(i64::MAX),
                Some(PolicyStatus::Active),
                PolicyStatus::Archived,
                by,
                &why,
                now,
            )
            .await?;
        }
        let (submitted_by, approved_by) = match transition {
            PolicyTransition::Submit => (Some(by.identity), None),
            PolicyTransition::RequestChanges => (None, None),
            PolicyTransition::Approve => (current.submitted_by.as_deref(), Some(by.identity)),
            PolicyTransition::Activate | PolicyTransition::Archive => (
                current.submitted_by.as_deref(),
                current.approved_by.as_deref(),
            ),
        };
        // Conditional on the status read above: a concurrent transition of the same
        // version makes this one change nothing, and it fails as a conflict.
        let changed = sqlx::query(
            "UPDATE policies SET status = $3, submitted_by = $4, approved_by = $5, updated_at = $6 \
             WHERE tenant_id = $1 AND version = $2 AND status = $7",
        )
        .bind(self.tenant.as_str())
        .bind(version_i64)
        .bind(to.as_str())
        .bind(submitted_by)
        .bind(approved_by)
        .bind(to_millis(now))
        .bind(current.status.as_str())
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        if changed != 1 {
            return Err(StoreError::Conflict(format!(
                "policy version {version} changed meanwhile; read it again"
            )));
        }
        let seq = record_transition(
            &mut tx,
            self,
            version_i64,
            Some(current.status),
            to,
            by,
            reason,
            now,
        )
        .await?;
        if transition == PolicyTransition::Activate {
            // The scheduler re-evaluates the tenant's targets on this event; the
            // transition's number makes a re-activation (a rollback) a new event.
            let event = NewEvent {
                kind: "policy.updated".into(),
                dedupe_key: format!("policy.updated:{}:{version}:{seq}", self.tenant),
                payload: serde_json::json!({"version": version, "digest": current.digest}),
            };
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
        self.get(version).await
    }

    /// The transitions of `version`, oldest first.
    pub async fn transitions(&self, version: u64) -> Result<Vec<TransitionRecord>> {
        let rows = sqlx::query(
            "SELECT version, from_status, to_status, identity, actor, reason, at \
             FROM policy_transitions WHERE tenant_id = $1 AND version = $2 ORDER BY seq",
        )
        .bind(self.tenant.as_str())
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "policy transitions"))?;
        rows.iter()
            .map(|row| {
                let get = |e| self.store.err(e, "policy transition");
                let from: Option<String> = row.try_get("from_status").map_err(get)?;
                Ok(TransitionRecord {
                    version: u64::try_from(row.try_get::<i64, _>("version").map_err(get)?)
                        .unwrap_or(0),
                    from: from.as_deref().map(PolicyStatus::parse).transpose()?,
                    to: PolicyStatus::parse(&row.try_get::<String, _>("to_status").map_err(get)?)?,
                    identity: row.try_get("identity").map_err(get)?,
                    actor: row.try_get("actor").map_err(get)?,
                    reason: row.try_get("reason").map_err(get)?,
                    at: from_millis(row.try_get("at").map_err(get)?),
                })
            })
            .collect()
    }

    /// The active version: the one scans use. `None` means the built-in default.
    pub async fn active(&self) -> Result<Option<PolicyRecord>> {
        self.select("AND status = 'active'", None).await
    }

    pub async fn get(&self, version: u64) -> Result<PolicyRecord> {
        self.select(
            "AND version = $2",
            Some(Bind::Int(i64::try_from(version).unwrap_or(i64::MAX))),
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("policy version {version}")))
    }

    /// The first version whose digest is `digest`: the document a verdict recording that
    /// digest was evaluated with (a later version with the same digest parses to the same
    /// policy, so the first is the stable answer). `None` when no version has it (the
    /// built-in default, or a policy of another tenant).
    pub async fn by_digest(&self, digest: &str) -> Result<Option<PolicyRecord>> {
        self.select(
            "AND digest = $2 ORDER BY version LIMIT 1",
            Some(Bind::Text(digest)),
        )
        .await
    }

    async fn select(&self, tail: &str, bind: Option<Bind<'_>>) -> Result<Option<PolicyRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM policies WHERE tenant_id = $1 {tail}");
        let query = sqlx::query(&sql).bind(self.tenant.as_str());
        let query = match bind {
            Some(Bind::Int(value)) => query.bind(value),
            Some(Bind::Text(value)) => query.bind(value),
            None => query,
        };
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
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM policies \
             WHERE tenant_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3"
        ))
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

enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

/// What a transition needs the version to be, for its conflict message.
fn expected(transition: PolicyTransition) -> &'static str {
    match transition {
        PolicyTransition::Submit => "a draft",
        PolicyTransition::RequestChanges | PolicyTransition::Approve => "submitted",
        PolicyTransition::Activate => "approved (or archived after being approved)",
        PolicyTransition::Archive => "a draft, submitted or approved",
    }
}

#[allow(clippy::too_many_arguments)]
async fn record_transition(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    policies: &Policies<'_>,
    version: i64,
    from: Option<PolicyStatus>,
    to: PolicyStatus,
    by: Actor<'_>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO policy_transitions (tenant_id, version, from_status, to_status, identity, actor, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
    )
    .bind(policies.tenant.as_str())
    .bind(version)
    .bind(from.map(PolicyStatus::as_str))
    .bind(to.as_str())
    .bind(by.identity)
    .bind(by.actor)
    .bind(reason)
    .bind(to_millis(now))
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| policies.store.err(e, "policy transition"))?;
    Ok(seq)
}

fn decode_policy(store: &Store, row: &sqlx::any::AnyRow) -> Result<PolicyRecord> {
    let get = |e| store.err(e, "policy");
    Ok(PolicyRecord {
        version: u64::try_from(row.try_get::<i64, _>("version").map_err(get)?).unwrap_or(0),
        digest: row.try_get("digest").map_err(get)?,
        document: row.try_get("document").map_err(get)?,
        status: PolicyStatus::parse(&row.try_get::<String, _>("status").map_err(get)?)?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
        submitted_by: row.try_get("submitted_by").map_err(get)?,
        approved_by: row.try_get("approved_by").map_err(get)?,
        updated_at: from_millis(row.try_get("updated_at").map_err(get)?),
    })
}
