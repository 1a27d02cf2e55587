use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{clamp_limit, page, Page};
use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis, JobId};
use crate::{Store, TenantId};

/// The life of a job. Terminal states never change again.
///
/// ```text
/// queued ──▶ running ──▶ succeeded
///   ▲  │        │ │ └──▶ failed      (attempts exhausted or not retryable)
///   │  │        │ └────▶ retrying ──▶ running
///   │  │        └──────▶ queued      (step committed, next step enqueued)
///   │  └──▶ cancelled ◀── running, retrying
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| StoreError::Invalid(format!("unknown job state {value:?}")))
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// Whether the state machine allows `self → next`.
    pub fn can_become(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Queued, Running | Cancelled)
                // Running → running: a redelivered attempt whose first runner died.
                | (Running, Running | Queued | Retrying | Succeeded | Failed | Cancelled)
                | (Retrying, Running | Cancelled | Failed)
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub tenant: TenantId,
    pub id: JobId,
    pub kind: String,
    pub state: JobState,
    /// The step the job is at; a crashed job resumes here.
    pub step: String,
    pub params: Value,
    pub result: Option<Value>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job to submit.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub step: String,
    pub params: Value,
    pub max_attempts: u32,
    /// Submitting twice with the same key returns the first job.
    pub idempotency_key: Option<String>,
}

/// A message to send once the surrounding change commits (the transactional outbox).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub role: String,
    pub kind: String,
    pub payload: Value,
    pub idempotency_key: String,
    /// Handler attempts before the one this message asks for.
    pub attempt: u32,
    pub not_before: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Submitted {
    pub job: Job,
    /// `false` when the idempotency key matched an existing job, which is returned as is.
    pub created: bool,
}

/// A state change, applied only if the job is in `from` (and at `expect_step`, if given).
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: JobState,
    pub to: JobState,
    pub expect_step: Option<String>,
    /// Applies only if the job has counted exactly this many attempts.
    pub expect_attempts: Option<u32>,
    /// The step after the change; `None` keeps the current one.
    pub step: Option<String>,
    /// Counts an attempt (set when a handler starts running the job).
    pub count_attempt: bool,
    pub error: Option<String>,
    pub result: Option<Value>,
    pub not_before: Option<DateTime<Utc>>,
}

impl Transition {
    pub fn new(from: JobState, to: JobState) -> Self {
        Self {
            from,
            to,
            expect_step: None,
            expect_attempts: None,
            step: None,
            count_attempt: false,
            error: None,
            result: None,
            not_before: None,
        }
    }
}

/// One recorded state change of a job: the job's history of steps and attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    pub seq: i64,
    pub from_state: Option<JobState>,
    pub to_state: JobState,
    pub step: String,
    pub attempt: u32,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
}

/// Jobs of one tenant.
#[derive(Debug, Clone, Copy)]
pub struct Jobs<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

const COLUMNS: &str = "tenant_id, id, kind, state, step, params, result, attempts, max_attempts, \
     last_error, idempotency_key, created_at, updated_at, not_before, finished_at";

impl<'a> Jobs<'a> {
    /// Stores a new job in `queued` and, in the same transaction, its first messages.
    pub async fn submit(
        &self,
        new: &NewJob,
        messages: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<Submitted> {
        self.submit_with(new, now, |_| messages.to_vec()).await
    }

    /// Like [`Jobs::submit`], with the first messages built from the new job's id.
    pub async fn submit_with(
        &self,
        new: &NewJob,
        now: DateTime<Utc>,
        messages: impl FnOnce(&JobId) -> Vec<NewMessage>,
    ) -> Result<Submitted> {
        if new.kind.is_empty() || new.max_attempts == 0 {
            return Err(StoreError::Invalid(
                "job kind must be set and max_attempts at least 1".into(),
            ));
        }
        let id = JobId::generate();
        let at = to_millis(now);
        let mut tx = self.begin().await?;
        // ON CONFLICT keeps a duplicate submission from failing the transaction; the
        // write comes first so SQLite takes its write lock before any read.
        let inserted = sqlx::query(
            "INSERT INTO jobs (tenant_id, id, kind, state, step, params, attempts, max_attempts, \
                 idempotency_key, created_at, updated_at, not_before) \
             VALUES ($1, $2, $3, 'queued', $4, $5, 0, $6, $7, $8, $8, $8) \
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(&new.kind)
        .bind(&new.step)
        .bind(new.params.to_string())
        .bind(i64::from(new.max_attempts))
        .bind(new.idempotency_key.as_deref())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|err| self.store.err(err, "job"))?
        .rows_affected()
            == 1;
        if !inserted {
            tx.rollback()
                .await
                .map_err(|err| self.store.err(err, "job"))?;
            let key = new.idempotency_key.as_deref().unwrap_or_default();
            let job = self.by_idempotency_key(key).await?;
            return Ok(Submitted {
                job,
                created: false,
            });
        }
        self.insert_event(&mut tx, &id, None, JobState::Queued, &new.step, 0, None, at)
            .await?;
        self.insert_messages(&mut tx, &id, &messages(&id), at)
            .await?;
        tx.commit()
            .await
            .map_err(|err| self.store.err(err, "job"))?;
        Ok(Submitted {
            job: self.get(&id).await?,
            created: true,
        })
    }

    pub async fn get(&self, id: &JobId) -> Result<Job> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .fetch_one(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, &format!("job {id}")))?;
        decode(&row)
    }

    async fn by_idempotency_key(&self, key: &str) -> Result<Job> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2"
        ))
        .bind(self.tenant.as_str())
        .bind(key)
        .fetch_one(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "job"))?;
        decode(&row)
    }

    /// Jobs ordered by id (creation order), optionally filtered by state and kind.
    pub async fn list(
        &self,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Job>> {
        let limit = clamp_limit(limit);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE tenant_id = $1 AND id > $2 \
             AND ($3 = '' OR state = $3) AND ($4 = '' OR kind = $4) ORDER BY id LIMIT $5"
        ))
        .bind(self.tenant.as_str())
        .bind(cursor.unwrap_or(""))
        .bind(filter.state.map(JobState::as_str).unwrap_or(""))
        .bind(filter.kind.as_deref().unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "jobs"))?;
        let jobs = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(page(jobs, limit, |job| job.id.to_string()))
    }

    /// Number of this tenant's jobs in `state`.
    pub async fn count_in(&self, state: JobState) -> Result<u64> {
        let row: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE tenant_id = $1 AND state = $2")
                .bind(self.tenant.as_str())
                .bind(state.as_str())
                .fetch_one(&self.store.pool)
                .await
                .map_err(|err| self.store.err(err, "jobs"))?;
        Ok(u64::try_from(row.0).unwrap_or(0))
    }

    /// Number of this tenant's jobs in each non-empty state.
    pub async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE tenant_id = $1 GROUP BY state ORDER BY state",
        )
        .bind(self.tenant.as_str())
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "jobs"))?;
        rows.iter()
            .map(|row| {
                let state: String = row
                    .try_get("state")
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let n: i64 = row
                    .try_get("n")
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((JobState::parse(&state)?, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// Applies `change` and enqueues `messages` in one transaction: either the new state
    /// and its messages are both committed, or neither is. Fails with `Conflict` when the
    /// job is no longer in `change.from` (another worker moved it first).
    pub async fn transition(
        &self,
        id: &JobId,
        change: &Transition,
        messages: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<Job> {
        if !change.from.can_become(change.to) {
            return Err(StoreError::Invalid(format!(
                "a job cannot go from {} to {}",
                change.from, change.to
            )));
        }
        let at = to_millis(now);
        let mut tx = self.begin().await?;
        let updated = sqlx::query(&format!(
            "UPDATE jobs SET state = $1, step = COALESCE($2, step), \
                 attempts = attempts + $3, last_error = COALESCE($4, last_error), \
                 result = COALESCE($5, result), not_before = COALESCE($6, not_before), \
                 finished_at = $7, updated_at = $8 \
             WHERE tenant_id = $9 AND id = $10 AND state = $11 AND ($12 = '' OR step = $12) \
                 AND ($13 < 0 OR attempts = $13) RETURNING {COLUMNS}"
        ))
        .bind(change.to.as_str())
        .bind(change.step.as_deref())
        .bind(i64::from(change.count_attempt))
        .bind(change.error.as_deref())
        .bind(change.result.as_ref().map(Value::to_string))
        .bind(change.not_before.map(to_millis))
        .bind(change.to.is_terminal().then_some(at))
        .bind(at)
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(change.from.as_str())
        .bind(change.expect_step.as_deref().unwrap_or(""))
        .bind(change.expect_attempts.map_or(-1, i64::from))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|err| self.store.err(err, &format!("job {id}")))?;
        let Some(row) = updated else {
            tx.rollback()
                .await
                .map_err(|err| self.store.err(err, "job"))?;
            let current = self.get(id).await?;
            return Err(StoreError::Conflict(format!(
                "job {id} is {} at step {:?} after {} attempts, expected {}{}",
                current.state,
                current.step,
                current.attempts,
                change.from,
                change
                    .expect_step
                    .as_ref()
                    .map(|s| format!(" at step {s:?}"))
                    .unwrap_or_default()
            )));
        };
        let job = decode(&row)?;
        self.insert_event(
            &mut tx,
            id,
            Some(change.from),
            change.to,
            &job.step,
            i64::from(job.attempts),
            change.error.as_deref(),
            at,
        )
        .await?;
        self.insert_messages(&mut tx, id, messages, at).await?;
        tx.commit()
            .await
            .map_err(|err| self.store.err(err, "job"))?;
        Ok(job)
    }

    /// The job's recorded state changes, oldest first.
    pub async fn events(&self, id: &JobId) -> Result<Vec<JobEvent>> {
        // Existence check first, so an unknown job is NotFound rather than an empty list.
        self.get(id).await?;
        let rows = sqlx::query(
            "SELECT seq, from_state, to_state, step, attempt, error, at FROM job_events \
             WHERE tenant_id = $1 AND job_id = $2 ORDER BY seq",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .fetch_all(&self.store.pool)
        .await
        .map_err(|err| self.store.err(err, "job events"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| StoreError::Corrupt(format!("job event: {e}"));
                Ok(JobEvent {
                    seq: row.try_get("seq").map_err(get)?,
                    from_state: row
                        .try_get::<Option<String>, _>("from_state")
                        .map_err(get)?
                        .map(|s| JobState::parse(&s))
                        .transpose()?,
                    to_state: JobState::parse(&row.try_get::<String, _>("to_state").map_err(get)?)?,
                    step: row.try_get("step").map_err(get)?,
                    attempt: to_u32(row.try_get("attempt").map_err(get)?),
                    error: row.try_get("error").map_err(get)?,
                    at: from_millis(row.try_get("at").map_err(get)?),
                })
            })
            .collect()
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        self.store
            .pool
            .begin()
            .await
            .map_err(|err| self.store.err(err, "transaction"))
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_event(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &JobId,
        from: Option<JobState>,
        to: JobState,
        step: &str,
        attempt: i64,
        error: Option<&str>,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO job_events (tenant_id, job_id, from_state, to_state, step, attempt, error, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(from.map(JobState::as_str))
        .bind(to.as_str())
        .bind(step)
        .bind(attempt)
        .bind(error)
        .bind(at)
        .execute(&mut **tx)
        .await
        .map_err(|err| self.store.err(err, "job event"))?;
        Ok(())
    }

    async fn insert_messages(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: &JobId,
        messages: &[NewMessage],
        at: i64,
    ) -> Result<()> {
        for message in messages {
            sqlx::query(
                "INSERT INTO outbox (tenant_id, job_id, role, kind, payload, idempotency_key, attempt, not_before, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .bind(&message.role)
            .bind(&message.kind)
            .bind(message.payload.to_string())
            .bind(&message.idempotency_key)
            .bind(i64::from(message.attempt))
            .bind(to_millis(message.not_before))
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(|err| self.store.err(err, "outbox message"))?;
        }
        Ok(())
    }
}

fn to_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn decode(row: &AnyRow) -> Result<Job> {
    let get = |e: sqlx::Error| StoreError::Corrupt(format!("job row: {e}"));
    let json = |text: String| {
        serde_json::from_str(&text).map_err(|err| StoreError::Corrupt(format!("job json: {err}")))
    };
    Ok(Job {
        tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(get)?)?,
        id: JobId::parse(&row.try_get::<String, _>("id").map_err(get)?)?,
        kind: row.try_get("kind").map_err(get)?,
        state: JobState::parse(&row.try_get::<String, _>("state").map_err(get)?)?,
        step: row.try_get("step").map_err(get)?,
        params: json(row.try_get("params").map_err(get)?)?,
        result: row
            .try_get::<Option<String>, _>("result")
            .map_err(get)?
            .map(json)
            .transpose()?,
        attempts: to_u32(row.try_get("attempts").map_err(get)?),
        max_attempts: to_u32(row.try_get("max_attempts").map_err(get)?),
        last_error: row.try_get("last_error").map_err(get)?,
        idempotency_key: row.try_get("idempotency_key").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(get)?),
        not_before: from_millis(row.try_get("not_before").map_err(get)?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")
            .map_err(get)?
            .map(from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::JobState::*;
    use super::*;

    #[test]
    fn terminal_states_never_change() {
        for terminal in [Succeeded, Failed, Cancelled] {
            for next in JobState::ALL {
                assert!(!terminal.can_become(next), "{terminal} -> {next}");
            }
        }
    }

    #[test]
    fn states_round_trip_through_text() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()).unwrap(), state);
        }
        assert!(JobState::parse("done").is_err());
    }
}
