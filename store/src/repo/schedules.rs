//! The scheduler's records: a tenant's targets (with the impact index of their packages),
//! schedules, runs and run results; and, across tenants, what the leading scheduler
//! reads and writes: due schedules, runs to plan and track, the events stream, its
//! leader lease and cursor.
//!
//! Every write of the leader goes through [`Scheduling::apply`], fenced by its lease
//! token: the transaction first updates the lease row *only if the token is still the
//! current one*, which also locks the row (PostgreSQL) or the database (SQLite) until
//! commit, so a process whose lease was taken over cannot write, even if it does not know
//! yet. Runs are unique per `dedupe_key` (`cron:<schedule>:<due ms>` for firings), so
//! two leaders could not fire one due time twice anyway.
//!
//! The store keeps kinds, states and policies as the scheduler names them; it does not
//! interpret them beyond the few states its queries select.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::jobs::placeholders;
use crate::repo::{check_limit, page, text_cursor, Page};
use crate::{JobId, RunId, ScheduleId, Store, TargetId, TenantId};

/// Rows per multi-row statement.
const CHUNK: usize = 200;

/// The scheduler's leader lease (the row [`Scheduling::apply`] fences on).
pub const SCHEDULER_LEASE: &str = "scheduler";

/// A named image or application of a tenant, with the SBOM of its latest scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetRecord {
    pub id: TargetId,
    pub name: String,
    pub sbom_sha256: String,
    /// The latest completed scan of the target (the base the next re-scan diffs against).
    pub last_scan_id: Option<JobId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A schedule as stored; the scheduler validates and interprets the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleRecord {
    pub id: ScheduleId,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub kind: String,
    /// Target names; `None` for every target of the tenant.
    pub targets: Option<Vec<String>>,
    /// Source URLs (advisory-sync).
    pub sources: Option<Vec<String>>,
    /// The export profile an `export` schedule runs.
    pub profile: Option<String>,
    pub jitter_seconds: u32,
    pub missed: String,
    pub overlap: String,
    /// `active` or `paused`.
    pub state: String,
    /// The next due time (cron), and when it fires (due time plus the jitter offset);
    /// `None` while paused.
    pub next_due_at: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<RunId>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub tenant: TenantId,
    pub id: RunId,
    pub schedule_id: Option<ScheduleId>,
    pub trigger: String,
    pub kind: String,
    pub state: String,
    pub due_at: DateTime<Utc>,
    pub targets: Option<Vec<String>>,
    pub sources: Option<Vec<String>>,
    /// The export profile an `export` run runs.
    pub profile: Option<String>,
    /// Why the run exists (the event, the packages, the missed due times...).
    pub reason: Value,
    pub counts: Value,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub tenant: TenantId,
    pub id: RunId,
    pub schedule_id: Option<ScheduleId>,
    pub trigger: String,
    pub kind: String,
    pub state: String,
    pub due_at: DateTime<Utc>,
    /// Unique across runs: a second run with the same key is not created.
    pub dedupe_key: String,
    pub targets: Option<Vec<String>>,
    pub sources: Option<Vec<String>>,
    pub profile: Option<String>,
    pub reason: Value,
    pub counts: Value,
    pub error: Option<String>,
}

/// One target's part of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunTargetRecord {
    /// The target's id; for an advisory-sync run, `sources`.
    pub target_id: String,
    pub target_name: String,
    pub scan_id: JobId,
    pub previous_scan_id: Option<JobId>,
    /// `queued` until its scan ends, then `completed` or `failed`.
    pub state: String,
    /// New, resolved and changed findings against the previous scan.
    pub diff: Option<Value>,
}

/// A run target whose scan job has ended (`job_state`), for the tracker.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedRunTarget {
    pub tenant: TenantId,
    pub run_id: RunId,
    pub target: RunTargetRecord,
    pub job_state: String,
}

/// A target whose SBOM contains one of the packages asked about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImpactedTarget {
    pub tenant: TenantId,
    pub target_id: TargetId,
    pub name: String,
}

/// The leader lease a process holds: its fencing token and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: i64,
    pub expires_at: DateTime<Utc>,
}

/// A schedule's next times, set only if its due time is still `expected_due`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleAdvance {
    pub tenant: TenantId,
    pub id: ScheduleId,
    pub expected_due: DateTime<Utc>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<RunId>,
}

/// A run's new state, set only if it is still in `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunUpdate {
    pub tenant: TenantId,
    pub id: RunId,
    pub from: String,
    pub to: String,
    pub counts: Value,
    pub error: Option<String>,
    /// The run ends (completed, cancelled, error).
    pub finished: bool,
}

/// A run target's outcome; on success the target's latest scan moves to `scan_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetOutcome {
    pub tenant: TenantId,
    pub run_id: RunId,
    pub target_id: String,
    pub scan_id: JobId,
    pub state: String,
    pub diff: Value,
}

/// Everything one pass of the leader writes, committed together under its lease.
#[derive(Debug, Clone, Default)]
pub struct SchedulerChanges {
    pub new_runs: Vec<NewRun>,
    /// Jobs to submit (the planner's scans); a job whose idempotency key exists is not
    /// submitted again, and run targets naming it get the existing job.
    pub jobs: Vec<crate::repo::NewTenantJob>,
    pub advances: Vec<ScheduleAdvance>,
    /// Run targets to add (the planner's output), with their run.
    pub run_targets: Vec<(TenantId, RunId, RunTargetRecord)>,
    pub outcomes: Vec<TargetOutcome>,
    pub run_updates: Vec<RunUpdate>,
    /// `(cursor name, position)` to store.
    pub cursor: Option<(String, i64)>,
    /// Events to append (`finding.new`, `advisory.impact`, ...), each once by its key.
    pub events: Vec<(Option<TenantId>, crate::repo::NewEvent)>,
    /// Notification deliveries the dispatcher made (with their jobs in `jobs`).
    pub deliveries: Vec<crate::repo::NewDelivery>,
    /// Events joining digests.
    pub digest_items: Vec<crate::repo::NewDigestItem>,
}

/// What [`Scheduling::apply`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The runs created (a run whose dedupe key existed is not among them).
    pub created_runs: Vec<RunId>,
}

fn json_list(value: Option<&Vec<String>>) -> Option<String> {
    value.map(|v| serde_json::Value::from(v.clone()).to_string())
}

fn parse_list(text: Option<String>, what: &str) -> Result<Option<Vec<String>>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{what} JSON: {e}")))
    })
    .transpose()
}

fn parse_value(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what} JSON: {e}")))
}

fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(from_millis)
}

fn id<T>(text: Option<String>, parse: fn(&str) -> Result<T>) -> Result<Option<T>> {
    text.map(|t| parse(&t)).transpose()
}

const TARGET_COLUMNS: &str = "id, name, sbom_sha256, last_scan_id, created_at, updated_at";

fn target_of(store: &Store, row: &AnyRow) -> Result<TargetRecord> {
    let get = |e| store.err(e, "target");
    Ok(TargetRecord {
        id: TargetId::parse(&row.try_get::<String, _>("id").map_err(get)?)?,
        name: row.try_get("name").map_err(get)?,
        sbom_sha256: row.try_get("sbom_sha256").map_err(get)?,
        last_scan_id: id(row.try_get("last_scan_id").map_err(get)?, JobId::parse)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(get)?),
    })
}

const SCHEDULE_COLUMNS: &str = "id, name, cron, timezone, kind, targets, sources, profile, jitter_seconds, \
    missed, overlap, state, next_due_at, next_fire_at, last_run_id, created_by, created_at, updated_at";

fn schedule_of(store: &Store, row: &AnyRow) -> Result<ScheduleRecord> {
    let get = |e| store.err(e, "schedule");
    let jitter: i64 = row.try_get("jitter_seconds").map_err(get)?;
    Ok(ScheduleRecord {
        id: ScheduleId::parse(&row.try_get::<String, _>("id").map_err(get)?)?,
        name: row.try_get("name").map_err(get)?,
        cron: row.try_get("cron").map_err(get)?,
        timezone: row.try_get("timezone").map_err(get)?,
        kind: row.try_get("kind").map_err(get)?,
        targets: parse_list(row.try_get("targets").map_err(get)?, "schedule targets")?,
        sources: parse_list(row.try_get("sources").map_err(get)?, "schedule sources")?,
        profile: row.try_get("profile").map_err(get)?,
        jitter_seconds: u32::try_from(jitter).unwrap_or(0),
        missed: row.try_get("missed").map_err(get)?,
        overlap: row.try_get("overlap").map_err(get)?,
        state: row.try_get("state").map_err(get)?,
        next_due_at: opt_time(row.try_get("next_due_at").map_err(get)?),
        next_fire_at: opt_time(row.try_get("next_fire_at").map_err(get)?),
        last_run_id: id(row.try_get("last_run_id").map_err(get)?, RunId::parse)?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(get)?),
    })
}

const RUN_COLUMNS: &str =
    "tenant_id, id, schedule_id, triggered_by, kind, state, due_at, targets, \
    sources, profile, reason, counts, error, created_at, updated_at, finished_at";

fn run_of(store: &Store, row: &AnyRow) -> Result<RunRecord> {
    let get = |e| store.err(e, "run");
    let reason: String = row.try_get("reason").map_err(get)?;
    let counts: String = row.try_get("counts").map_err(get)?;
    Ok(RunRecord {
        tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(get)?)?,
        id: RunId::parse(&row.try_get::<String, _>("id").map_err(get)?)?,
        schedule_id: id(row.try_get("schedule_id").map_err(get)?, ScheduleId::parse)?,
        trigger: row.try_get("triggered_by").map_err(get)?,
        kind: row.try_get("kind").map_err(get)?,
        state: row.try_get("state").map_err(get)?,
        due_at: from_millis(row.try_get("due_at").map_err(get)?),
        targets: parse_list(row.try_get("targets").map_err(get)?, "run targets")?,
        sources: parse_list(row.try_get("sources").map_err(get)?, "run sources")?,
        profile: row.try_get("profile").map_err(get)?,
        reason: parse_value(&reason, "run reason")?,
        counts: parse_value(&counts, "run counts")?,
        error: row.try_get("error").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(get)?),
        finished_at: opt_time(row.try_get("finished_at").map_err(get)?),
    })
}

const RUN_TARGET_COLUMNS: &str =
    "rt.target_id, rt.target_name, rt.scan_id, rt.previous_scan_id, rt.state, rt.diff";

fn run_target_of(store: &Store, row: &AnyRow) -> Result<RunTargetRecord> {
    let get = |e| store.err(e, "run target");
    let diff: Option<String> = row.try_get("diff").map_err(get)?;
    Ok(RunTargetRecord {
        target_id: row.try_get("target_id").map_err(get)?,
        target_name: row.try_get("target_name").map_err(get)?,
        scan_id: JobId::parse(&row.try_get::<String, _>("scan_id").map_err(get)?)?,
        previous_scan_id: id(row.try_get("previous_scan_id").map_err(get)?, JobId::parse)?,
        state: row.try_get("state").map_err(get)?,
        diff: diff
            .map(|d| parse_value(&d, "run target diff"))
            .transpose()?,
    })
}

/// A tenant-owned table of `T`s as the generic readers below see it.
struct Table<T> {
    name: &'static str,
    columns: &'static str,
    /// What one row is called in errors.
    what: &'static str,
    decode: fn(&Store, &AnyRow) -> Result<T>,
    /// The unique text column lists are ordered by, and its value for a row (the cursor).
    order: &'static str,
    cursor_of: fn(&T) -> String,
    /// Whether a text could be a `cursor_of` value.
    cursor_valid: fn(&str) -> bool,
}

const TARGETS: Table<TargetRecord> = Table {
    name: "targets",
    columns: TARGET_COLUMNS,
    what: "target",
    decode: target_of,
    order: "name",
    cursor_of: |t| t.name.clone(),
    // A target name: 1-200 characters, no control characters.
    cursor_valid: |c| !c.trim().is_empty() && c.len() <= 200 && !c.chars().any(char::is_control),
};

const SCHEDULES: Table<ScheduleRecord> = Table {
    name: "schedules",
    columns: SCHEDULE_COLUMNS,
    what: "schedule",
    decode: schedule_of,
    order: "id",
    cursor_of: |s| s.id.to_string(),
    cursor_valid: |c| ScheduleId::parse(c).is_ok(),
};

/// A tenant's row by id or by (unique) name.
async fn by_id_or_name<T>(
    store: &Store,
    tenant: &TenantId,
    table: &Table<T>,
    id_or_name: &str,
) -> Result<T> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM {} WHERE tenant_id = $1 AND (id = $2 OR name = $2)",
        table.columns, table.name
    ))
    .bind(tenant.as_str())
    .bind(id_or_name)
    .fetch_optional(&store.pool)
    .await
    .map_err(|e| store.err(e, table.what))?
    .ok_or_else(|| StoreError::NotFound(format!("{} {id_or_name}", table.what)))?;
    (table.decode)(store, &row)
}

/// A page of a tenant's rows in the table's list order, after `cursor`.
async fn tenant_page<T>(
    store: &Store,
    tenant: &TenantId,
    table: &Table<T>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<T>> {
    let limit = check_limit(limit)?;
    let cursor = text_cursor(cursor, table.what, table.cursor_valid)?;
    let order = table.order;
    let rows = sqlx::query(&format!(
        "SELECT {} FROM {} WHERE tenant_id = $1 AND {order} > $2 ORDER BY {order} LIMIT $3",
        table.columns, table.name
    ))
    .bind(tenant.as_str())
    .bind(cursor)
    .bind(limit + 1)
    .fetch_all(&store.pool)
    .await
    .map_err(|e| store.err(e, table.what))?;
    let items = rows
        .iter()
        .map(|row| (table.decode)(store, row))
        .collect::<Result<Vec<_>>>()?;
    Ok(page(items, limit, table.cursor_of))
}

/// A tenant's targets. Obtained from [`crate::TenantScope::targets`].
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Targets<'_> {
    /// Registers the target `name` with an SBOM the tenant stored, or points an existing
    /// one at it; `packages` (the SBOM's, as `ecosystem/name`) replace the target's entries
    /// in the impact index in the same transaction.
    pub async fn put(
        &self,
        name: &str,
        sbom_sha256: &str,
        packages: &[String],
        now: DateTime<Utc>,
    ) -> Result<TargetRecord> {
        let err = |e| self.store.err(e, "target");
        let at = to_millis(now);
        let mut tx = self.store.pool.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO targets (tenant_id, id, name, sbom_sha256, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (tenant_id, name) DO UPDATE SET \
             sbom_sha256 = excluded.sbom_sha256, updated_at = excluded.updated_at",
        )
        .bind(self.tenant.as_str())
        .bind(TargetId::generate().as_str())
        .bind(name)
        .bind(sbom_sha256)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match self.store.err(e, "target") {
            StoreError::NotFound(_) => StoreError::NotFound(format!("sbom sha256:{sbom_sha256}")),
            other => other,
        })?;
        let row = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM targets WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(self.tenant.as_str())
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let target = target_of(self.store, &row)?;
        sqlx::query("DELETE FROM target_packages WHERE tenant_id = $1 AND target_id = $2")
            .bind(self.tenant.as_str())
            .bind(target.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let mut packages: Vec<&String> = packages.iter().collect();
        packages.sort();
        packages.dedup();
        for chunk in packages.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO target_packages (tenant_id, target_id, package) VALUES {}",
                placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for package in chunk {
                query = query
                    .bind(self.tenant.as_str())
                    .bind(target.id.as_str())
                    .bind(package.as_str());
            }
            query.execute(&mut *tx).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(target)
    }

    /// A target by id or by name.
    pub async fn get(&self, id_or_name: &str) -> Result<TargetRecord> {
        by_id_or_name(self.store, self.tenant, &TARGETS, id_or_name).await
    }

    /// Targets by name, in name order.
    pub async fn list(&self, cursor: Option<&str>, limit: u32) -> Result<Page<TargetRecord>> {
        tenant_page(self.store, self.tenant, &TARGETS, cursor, limit).await
    }

    /// Removes a target and its impact-index entries (its runs' results stay).
    pub async fn delete(&self, id_or_name: &str) -> Result<()> {
        let target = self.get(id_or_name).await?;
        sqlx::query("DELETE FROM targets WHERE tenant_id = $1 AND id = $2")
            .bind(self.tenant.as_str())
            .bind(target.id.as_str())
            .execute(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "target"))?;
        Ok(())
    }

    /// Records `scan_id` as the target's latest scan.
    pub async fn set_last_scan(&self, id: &TargetId, scan_id: &JobId) -> Result<()> {
        sqlx::query("UPDATE targets SET last_scan_id = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .bind(scan_id.as_str())
            .execute(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "target"))?;
        Ok(())
    }
}

/// A tenant's schedules. Obtained from [`crate::TenantScope::schedules`].
#[derive(Debug, Clone, Copy)]
pub struct Schedules<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Schedules<'_> {
    /// Creates a schedule; a second one with the same name is `Conflict`.
    pub async fn create(&self, schedule: &ScheduleRecord) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO schedules (tenant_id, id, name, cron, timezone, kind, targets, sources, \
             jitter_seconds, missed, overlap, state, next_due_at, next_fire_at, last_run_id, \
             created_by, created_at, updated_at, profile) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        );
        bind_schedule(query, self.tenant, schedule)
            .bind(schedule.last_run_id.as_ref().map(RunId::as_str))
            .bind(&schedule.created_by)
            .bind(to_millis(schedule.created_at))
            .bind(to_millis(schedule.updated_at))
            .bind(schedule.profile.as_deref())
            .execute(&self.store.pool)
            .await
            .map_err(|e| match self.store.err(e, "schedule") {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("a schedule named {:?} exists", schedule.name))
                }
                other => other,
            })?;
        Ok(())
    }

    /// Replaces a schedule's definition and next times (everything but its id, creator
    /// and creation time), if its `updated_at` is still `expected_updated_at`.
    pub async fn update(
        &self,
        schedule: &ScheduleRecord,
        expected_updated_at: DateTime<Utc>,
    ) -> Result<()> {
        let query = sqlx::query(
            "UPDATE schedules SET name = $3, cron = $4, timezone = $5, kind = $6, targets = $7, \
             sources = $8, jitter_seconds = $9, missed = $10, overlap = $11, state = $12, \
             next_due_at = $13, next_fire_at = $14, updated_at = $15, profile = $17 \
             WHERE tenant_id = $1 AND id = $2 AND updated_at = $16",
        );
        let done = bind_schedule(query, self.tenant, schedule)
            .bind(to_millis(schedule.updated_at))
            .bind(to_millis(expected_updated_at))
            .bind(schedule.profile.as_deref())
            .execute(&self.store.pool)
            .await
            .map_err(|e| match self.store.err(e, "schedule") {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("a schedule named {:?} exists", schedule.name))
                }
                other => other,
            })?;
        if done.rows_affected() == 0 {
            self.get(schedule.id.as_str()).await?;
            return Err(StoreError::Conflict(format!(
                "schedule {} changed meanwhile; read it again",
                schedule.id
            )));
        }
        Ok(())
    }

    /// A schedule by id or by name.
    pub async fn get(&self, id_or_name: &str) -> Result<ScheduleRecord> {
        by_id_or_name(self.store, self.tenant, &SCHEDULES, id_or_name).await
    }

    /// Schedules in creation order.
    pub async fn list(&self, cursor: Option<&str>, limit: u32) -> Result<Page<ScheduleRecord>> {
        tenant_page(self.store, self.tenant, &SCHEDULES, cursor, limit).await
    }

    /// Deletes a schedule (its runs stay, naming it).
    pub async fn delete(&self, id: &ScheduleId) -> Result<()> {
        let done = sqlx::query("DELETE FROM schedules WHERE tenant_id = $1 AND id = $2")
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .execute(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "schedule"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("schedule {id}")));
        }
        Ok(())
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds `$1` tenant, `$2` id and `$3`–`$14` a schedule's definition and next times, the
/// order `create` and `update` share.
fn bind_schedule<'q>(
    query: AnyQuery<'q>,
    tenant: &'q TenantId,
    schedule: &'q ScheduleRecord,
) -> AnyQuery<'q> {
    query
        .bind(tenant.as_str())
        .bind(schedule.id.as_str())
        .bind(&schedule.name)
        .bind(&schedule.cron)
        .bind(&schedule.timezone)
        .bind(&schedule.kind)
        .bind(json_list(schedule.targets.as_ref()))
        .bind(json_list(schedule.sources.as_ref()))
        .bind(i64::from(schedule.jitter_seconds))
        .bind(&schedule.missed)
        .bind(&schedule.overlap)
        .bind(&schedule.state)
        .bind(schedule.next_due_at.map(to_millis))
        .bind(schedule.next_fire_at.map(to_millis))
}

/// A tenant's runs. Obtained from [`crate::TenantScope::runs`].
#[derive(Debug, Clone, Copy)]
pub struct Runs<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Runs<'_> {
    /// Creates a run (manual triggers); a run with the same dedupe key is returned
    /// instead.
    pub async fn create(&self, run: &NewRun, now: DateTime<Utc>) -> Result<RunRecord> {
        if run.tenant != *self.tenant {
            return Err(StoreError::Invalid("run of another tenant".into()));
        }
        let mut tx = self
            .store
            .pool
            .begin()
            .await
            .map_err(|e| self.store.err(e, "run"))?;
        insert_runs(
            &mut tx,
            self.store,
            std::slice::from_ref(run),
            to_millis(now),
        )
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE dedupe_key = $1 AND tenant_id = $2"
        ))
        .bind(&run.dedupe_key)
        .bind(self.tenant.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.store.err(e, "run"))?;
        tx.commit().await.map_err(|e| self.store.err(e, "run"))?;
        run_of(self.store, &row)
    }

    pub async fn get(&self, id: &RunId) -> Result<RunRecord> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "run"))?
        .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
        run_of(self.store, &row)
    }

    /// Runs, newest first, optionally of one schedule.
    pub async fn list(
        &self,
        schedule: Option<&ScheduleId>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RunRecord>> {
        let limit = check_limit(limit)?;
        let cursor = text_cursor(cursor, "run", |c| RunId::parse(c).is_ok())?;
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = $1 \
             AND ($2 = '' OR schedule_id = $2) AND ($3 = '' OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(self.tenant.as_str())
        .bind(schedule.map_or("", ScheduleId::as_str))
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "runs"))?;
        let items = rows
            .iter()
            .map(|row| run_of(self.store, row))
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |r| r.id.to_string()))
    }

    /// A run's per-target results, in target-name order.
    pub async fn targets(&self, id: &RunId) -> Result<Vec<RunTargetRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_TARGET_COLUMNS} FROM run_targets rt \
             WHERE rt.tenant_id = $1 AND rt.run_id = $2 ORDER BY rt.target_name"
        ))
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "run targets"))?;
        rows.iter()
            .map(|row| run_target_of(self.store, row))
            .collect()
    }
}

async fn insert_runs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    store: &Store,
    runs: &[NewRun],
    at: i64,
) -> Result<Vec<RunId>> {
    let mut created = Vec::new();
    for chunk in runs.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO runs (tenant_id, id, schedule_id, triggered_by, kind, state, due_at, \
             dedupe_key, targets, sources, reason, counts, error, created_at, updated_at, profile) \
             VALUES {} ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            placeholders(chunk.len(), 16)
        );
        let mut query = sqlx::query_as::<_, (String,)>(&sql);
        for run in chunk {
            query = query
                .bind(run.tenant.as_str())
                .bind(run.id.as_str())
                .bind(run.schedule_id.as_ref().map(ScheduleId::as_str))
                .bind(&run.trigger)
                .bind(&run.kind)
                .bind(&run.state)
                .bind(to_millis(run.due_at))
                .bind(&run.dedupe_key)
                .bind(json_list(run.targets.as_ref()))
                .bind(json_list(run.sources.as_ref()))
                .bind(run.reason.to_string())
                .bind(run.counts.to_string())
                .bind(run.error.as_deref())
                .bind(at)
                .bind(at)
                .bind(run.profile.as_deref());
        }
        let rows = query
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| store.err(e, "run"))?;
        for (id,) in rows {
            created.push(RunId::parse(&id)?);
        }
    }
    Ok(created)
}

/// What the leading scheduler reads and writes across tenants. Obtained from
/// [`Store::scheduling`].
#[derive(Debug, Clone, Copy)]
pub struct Scheduling<'a> {
    pub(crate) store: &'a Store,
}

impl Scheduling<'_> {
    fn err(&self, what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |e| self.store.err(e, what)
    }

    /// Takes or renews the lease `name` for `holder` until `now + ttl`. Renewing keeps
    /// the token; taking over an expired lease increments it, fencing out the previous
    /// holder's writes. `None`: another holder's lease is still valid.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let at = to_millis(now);
        let until = at.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let renewed: Option<(i64,)> = sqlx::query_as(
            "UPDATE leases SET expires_at = $3 \
             WHERE name = $1 AND holder = $2 AND expires_at > $4 RETURNING token",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(at)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(self.err("lease"))?;
        let taken = match renewed {
            Some(row) => Some(row),
            None => sqlx::query_as(
                "UPDATE leases SET holder = $2, token = token + 1, expires_at = $3 \
                 WHERE name = $1 AND expires_at <= $4 RETURNING token",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(at)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("lease"))?,
        };
        Ok(taken.map(|(token,)| Lease {
            token,
            expires_at: from_millis(until),
        }))
    }

    /// Gives the lease up if `holder` (unique per process) holds it, so another process
    /// takes over at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.store.pool)
            .await
            .map_err(self.err("lease"))?;
        Ok(())
    }

    /// Active schedules of active tenants whose fire time has come, earliest first (a
    /// disabled tenant's schedules wait; re-enabled, their missed-fire policy decides).
    pub async fn due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(TenantId, ScheduleRecord)>> {
        let rows = sqlx::query(&format!(
            "SELECT tenant_id, {SCHEDULE_COLUMNS} FROM schedules \
             WHERE next_fire_at <= $1 AND state = 'active' \
             AND tenant_id IN (SELECT id FROM tenants WHERE status = 'active') \
             ORDER BY next_fire_at LIMIT $2"
        ))
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("schedules"))?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(self.err("schedule"))?;
                Ok((TenantId::parse(&tenant)?, schedule_of(self.store, row)?))
            })
            .collect()
    }

    /// The earliest fire time of any active schedule.
    pub async fn next_fire_at(&self) -> Result<Option<DateTime<Utc>>> {
        let (next,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(next_fire_at) FROM schedules WHERE state = 'active'")
                .fetch_one(&self.store.pool)
                .await
                .map_err(self.err("schedules"))?;
        Ok(opt_time(next))
    }

    /// Runs in `state` (e.g. `planning`) with ids after `after`, oldest first.
    pub async fn runs_in_state(
        &self,
        state: &str,
        after: Option<&RunId>,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE state = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(state)
        .bind(after.map_or("", RunId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("runs"))?;
        rows.iter().map(|row| run_of(self.store, row)).collect()
    }

    /// The oldest run that has not ended (`planning`, `queued`, `running`) of each of
    /// `schedules` that has one.
    pub async fn active_runs_of(
        &self,
        schedules: &[&ScheduleId],
    ) -> Result<HashMap<ScheduleId, RunId>> {
        let mut active = HashMap::new();
        for chunk in schedules.chunks(CHUNK) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT schedule_id, MIN(id) FROM runs WHERE schedule_id IN ({}) \
                 AND state IN ('planning', 'queued', 'running') GROUP BY schedule_id",
                list.join(", ")
            );
            let mut query = sqlx::query_as::<_, (String, String)>(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for (schedule, run) in query
                .fetch_all(&self.store.pool)
                .await
                .map_err(self.err("runs"))?
            {
                active.insert(ScheduleId::parse(&schedule)?, RunId::parse(&run)?);
            }
        }
        Ok(active)
    }

    /// The targets of each of `tenants`, by name.
    pub async fn targets_of(
        &self,
        tenants: &[&TenantId],
    ) -> Result<HashMap<TenantId, Vec<TargetRecord>>> {
        let mut out: HashMap<TenantId, Vec<TargetRecord>> = HashMap::new();
        for chunk in tenants.chunks(CHUNK) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT tenant_id, {TARGET_COLUMNS} FROM targets WHERE tenant_id IN ({}) \
                 ORDER BY tenant_id, name",
                list.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for tenant in chunk {
                query = query.bind(tenant.as_str());
            }
            for row in query
                .fetch_all(&self.store.pool)
                .await
                .map_err(self.err("targets"))?
            {
                let tenant: String = row.try_get("tenant_id").map_err(self.err("target"))?;
                out.entry(TenantId::parse(&tenant)?)
                    .or_default()
                    .push(target_of(self.store, &row)?);
            }
        }
        Ok(out)
    }

    /// Run targets still `queued` whose scan job has ended.
    pub async fn ended_run_targets(&self, limit: u32) -> Result<Vec<EndedRunTarget>> {
        let rows = sqlx::query(&format!(
            "SELECT rt.tenant_id, rt.run_id, {RUN_TARGET_COLUMNS}, j.state AS job_state \
             FROM run_targets rt JOIN jobs j ON j.tenant_id = rt.tenant_id AND j.id = rt.scan_id \
             WHERE rt.state = 'queued' AND j.state IN ('succeeded', 'failed', 'cancelled') \
             ORDER BY rt.run_id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("run targets"))?;
        rows.iter()
            .map(|row| {
                let get = self.err("run target");
                Ok(EndedRunTarget {
                    tenant: TenantId::parse(&row.try_get::<String, _>("tenant_id").map_err(&get)?)?,
                    run_id: RunId::parse(&row.try_get::<String, _>("run_id").map_err(&get)?)?,
                    target: run_target_of(self.store, row)?,
                    job_state: row.try_get("job_state").map_err(&get)?,
                })
            })
            .collect()
    }

    /// Queued runs one of whose scans has started: they become `running`.
    pub async fn start_running_runs(&self, token: i64, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.store.pool.begin().await.map_err(self.err("runs"))?;
        fence(&mut tx, self.store, token).await?;
        let done = sqlx::query(
            "UPDATE runs SET state = 'running', updated_at = $1 WHERE state = 'queued' AND EXISTS \
             (SELECT 1 FROM run_targets rt JOIN jobs j ON j.tenant_id = rt.tenant_id AND j.id = rt.scan_id \
              WHERE rt.tenant_id = runs.tenant_id AND rt.run_id = runs.id AND j.state <> 'queued')",
        )
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await
        .map_err(self.err("runs"))?;
        tx.commit().await.map_err(self.err("runs"))?;
        Ok(done.rows_affected())
    }

    /// The targets, of any tenant, whose SBOM contains one of `packages`
    /// (`ecosystem/name`).
    pub async fn impacted_targets(&self, packages: &[String]) -> Result<Vec<ImpactedTarget>> {
        let mut out = Vec::new();
        for chunk in packages.chunks(CHUNK) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT DISTINCT t.tenant_id, t.id, t.name FROM target_packages p \
                 JOIN targets t ON t.tenant_id = p.tenant_id AND t.id = p.target_id \
                 WHERE p.package IN ({})",
                list.join(", ")
            );
            let mut query = sqlx::query_as::<_, (String, String, String)>(&sql);
            for package in chunk {
                query = query.bind(package.as_str());
            }
            for (tenant, id, name) in query
                .fetch_all(&self.store.pool)
                .await
                .map_err(self.err("impact index"))?
            {
                out.push(ImpactedTarget {
                    tenant: TenantId::parse(&tenant)?,
                    target_id: TargetId::parse(&id)?,
                    name,
                });
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every target of `tenant`, or of every tenant (a global VEX change concerns them
    /// all).
    pub async fn all_targets(&self, tenant: Option<&TenantId>) -> Result<Vec<ImpactedTarget>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT tenant_id, id, name FROM targets WHERE ($1 = '' OR tenant_id = $1) \
             ORDER BY tenant_id, name",
        )
        .bind(tenant.map_or("", TenantId::as_str))
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("targets"))?;
        rows.into_iter()
            .map(|(tenant, id, name)| {
                Ok(ImpactedTarget {
                    tenant: TenantId::parse(&tenant)?,
                    target_id: TargetId::parse(&id)?,
                    name,
                })
            })
            .collect()
    }

    /// A stored cursor position.
    pub async fn cursor(&self, name: &str) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT position FROM cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("cursor"))?;
        Ok(row.map_or(0, |r| r.0))
    }

    /// Events of every tenant after `seq`, oldest first: `(seq, tenant or None, kind,
    /// payload)`.
    pub async fn events_after(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Option<TenantId>, String, Value)>> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT seq, tenant_id, kind, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("events"))?;
        rows.into_iter()
            .map(|(seq, tenant, kind, payload)| {
                let tenant = if tenant.is_empty() {
                    None
                } else {
                    Some(TenantId::parse(&tenant)?)
                };
                Ok((seq, tenant, kind, parse_value(&payload, "event payload")?))
            })
            .collect()
    }

    /// Commits one pass of the leader, if `token` is still the lease's token
    /// (`Conflict` otherwise, and nothing is written).
    pub async fn apply(
        &self,
        token: i64,
        changes: &SchedulerChanges,
        now: DateTime<Utc>,
    ) -> Result<Applied> {
        let at = to_millis(now);
        let err = self.err("scheduler");
        let mut tx = self.store.pool.begin().await.map_err(&err)?;
        fence(&mut tx, self.store, token).await?;
        let created_runs = insert_runs(&mut tx, self.store, &changes.new_runs, at).await?;
        // Many rows per statement: `UPDATE … FROM (VALUES …)`, each row carrying its own
        // compare-and-set (the due time it expects).
        for chunk in changes.advances.chunks(CHUNK) {
            let sql = format!(
                "UPDATE schedules SET next_due_at = v.column3, next_fire_at = v.column4, \
                 last_run_id = COALESCE(v.column5, schedules.last_run_id) FROM (VALUES {}) AS v \
                 WHERE schedules.tenant_id = v.column1 AND schedules.id = v.column2 \
                 AND schedules.next_due_at = v.column6",
                typed_rows(
                    chunk.len(),
                    &["TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "BIGINT"]
                )
            );
            let mut query = sqlx::query(&sql);
            for a in chunk {
                query = query
                    .bind(a.tenant.as_str())
                    .bind(a.id.as_str())
                    .bind(a.next_due_at.map(to_millis))
                    .bind(a.next_fire_at.map(to_millis))
                    .bind(a.last_run_id.as_ref().map(RunId::as_str))
                    .bind(to_millis(a.expected_due));
            }
            query.execute(&mut *tx).await.map_err(&err)?;
        }
        let mut existing: HashMap<JobId, JobId> = HashMap::new();
        if !changes.jobs.is_empty() {
            let inserted = crate::repo::insert_jobs(self.store, &mut tx, &changes.jobs, at).await?;
            for (row, created) in changes.jobs.iter().zip(inserted) {
                if created.is_none() {
                    let (id,): (String,) = sqlx::query_as(
                        "SELECT id FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2",
                    )
                    .bind(row.tenant.as_str())
                    .bind(row.job.idempotency_key.as_deref())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(&err)?;
                    existing.insert(row.id.clone(), JobId::parse(&id)?);
                }
            }
        }
        for chunk in changes.run_targets.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO run_targets (tenant_id, run_id, target_id, target_name, scan_id, \
                 previous_scan_id, state, diff) VALUES {} \
                 ON CONFLICT (tenant_id, run_id, target_id) DO NOTHING",
                placeholders(chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql);
            for (tenant, run, target) in chunk {
                let scan = existing.get(&target.scan_id).unwrap_or(&target.scan_id);
                query = query
                    .bind(tenant.as_str())
                    .bind(run.as_str())
                    .bind(&target.target_id)
                    .bind(&target.target_name)
                    .bind(scan.as_str())
                    .bind(target.previous_scan_id.as_ref().map(JobId::as_str))
                    .bind(&target.state)
                    .bind(target.diff.as_ref().map(Value::to_string));
            }
            query.execute(&mut *tx).await.map_err(&err)?;
        }
        for o in &changes.outcomes {
            let done = sqlx::query(
                "UPDATE run_targets SET state = $5, diff = $6 \
                 WHERE tenant_id = $1 AND run_id = $2 AND target_id = $3 AND scan_id = $4 \
                 AND state = 'queued'",
            )
            .bind(o.tenant.as_str())
            .bind(o.run_id.as_str())
            .bind(&o.target_id)
            .bind(o.scan_id.as_str())
            .bind(&o.state)
            .bind(o.diff.to_string())
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
            if done.rows_affected() > 0 && o.state == "completed" {
                sqlx::query(
                    "UPDATE targets SET last_scan_id = $3 WHERE tenant_id = $1 AND id = $2 \
                     AND (last_scan_id IS NULL OR last_scan_id < $3)",
                )
                .bind(o.tenant.as_str())
                .bind(&o.target_id)
                .bind(o.scan_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
            }
        }
        for chunk in changes.run_updates.chunks(CHUNK) {
            let sql = format!(
                "UPDATE runs SET state = v.column4, counts = v.column5, error = v.column6, \
                 updated_at = v.column7, \
                 finished_at = CASE WHEN v.column8 = 1 THEN v.column7 ELSE runs.finished_at END \
                 FROM (VALUES {}) AS v \
                 WHERE runs.tenant_id = v.column1 AND runs.id = v.column2 AND runs.state = v.column3",
                typed_rows(
                    chunk.len(),
                    &["TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT"]
                )
            );
            let mut query = sqlx::query(&sql);
            for u in chunk {
                query = query
                    .bind(u.tenant.as_str())
                    .bind(u.id.as_str())
                    .bind(&u.from)
                    .bind(&u.to)
                    .bind(u.counts.to_string())
                    .bind(u.error.as_deref())
                    .bind(at)
                    .bind(i64::from(u.finished));
            }
            query.execute(&mut *tx).await.map_err(&err)?;
        }
        if !changes.events.is_empty() {
            crate::repo::lock_event_order(&mut tx, self.store).await?;
        }
        for (tenant, event) in &changes.events {
            crate::repo::insert_event_ordered(&mut tx, self.store, tenant.as_ref(), event, at)
                .await?;
        }
        crate::repo::insert_deliveries(self.store, &mut tx, &changes.deliveries, now).await?;
        crate::repo::insert_digest_items(self.store, &mut tx, &changes.digest_items, now).await?;
        if let Some((name, position)) = &changes.cursor {
            sqlx::query("UPDATE cursors SET position = $2 WHERE name = $1 AND position < $2")
                .bind(name)
                .bind(position)
                .execute(&mut *tx)
                .await
                .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)?;
        if !changes.jobs.is_empty() {
            self.store.signal_outbox();
        }
        Ok(Applied { created_runs })
    }
}

/// `rows` rows of `(CAST($1 AS T1), CAST($2 AS T2), …)` for a `VALUES` list: the casts
/// give PostgreSQL the column types (a bare parameter there would be text) and are no-ops
/// for SQLite; both engines name the columns `column1…`.
fn typed_rows(rows: usize, types: &[&str]) -> String {
    let width = types.len();
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = types
                .iter()
                .enumerate()
                .map(|(c, t)| format!("CAST(${} AS {t})", r * width + c + 1))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Proceeds only if `token` is the scheduler lease's current token; holds the lease row
/// until the transaction ends, so no takeover commits in between.
pub(crate) async fn fence(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    store: &Store,
    token: i64,
) -> Result<()> {
    let held = sqlx::query("UPDATE leases SET token = token WHERE name = $1 AND token = $2")
        .bind(SCHEDULER_LEASE)
        .bind(token)
        .execute(&mut **tx)
        .await
        .map_err(|e| store.err(e, "lease"))?;
    if held.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "the scheduler lease moved on from token {token}: another process leads"
        )));
    }
    Ok(())
}
