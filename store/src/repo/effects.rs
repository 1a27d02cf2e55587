//! Writes a job step stages to commit with its outcome ([`Transition::effects`]): in the
//! same transaction (or group-commit batch) as the job's new state, its event and its
//! next message, and only where the job's compare-and-set held. Each effect has a unique
//! key in its table, so committing the same effect twice is impossible, not merely
//! unlikely.
//!
//! A new family of effects is a variant here, its rows in [`insert_effects`] (one
//! statement per family) and, for PostgreSQL's one-statement batch, a parameter of the
//! batch statement (`jobs.rs`, `PG_APPLY_CHANGES`).
//!
//! [`Transition::effects`]: super::Transition::effects

use serde_json::Value;
use sqlx::{Any, Transaction};

use crate::error::Result;
use crate::{JobId, Store, TenantId};

/// A store write staged by a job step.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Effect {
    /// The diagnostic `noop` job's one effect: its row in `noop_effects` (unique per
    /// job), which the crash tests count against executions.
    NoopWritten,
    /// A file an export run wrote (its object is stored before the step commits): its
    /// row in `export_files`, unique per run and name.
    ExportFile {
        name: String,
        size_bytes: u64,
        sha256: String,
    },
    /// The plan an export run's first step fixed (an object, by digest) and the number
    /// of items it counts: its row in `export_runs`, one per run.
    ExportPlanned {
        plan_sha256: String,
        items_total: u64,
    },
    /// An event on the job's tenant's events stream (`export.completed`, ...), written
    /// once: a second append with the same `dedupe_key` is dropped.
    Event(super::NewEvent),
    /// A notification's wire attempt that the receiver took: its receipt (the row
    /// `begin_attempt` wrote before the attempt, keyed by delivery and attempt) becomes
    /// `ok` with the answer's status, latency and first bytes. Committed with the step, so
    /// a delivery costs no separate write for it; a failed attempt's receipt is written at
    /// once instead, since a failed step's staged writes are dropped.
    NotifyAttemptOk {
        delivery_id: String,
        attempt: u32,
        status_code: Option<u16>,
        latency_ms: Option<u64>,
        response_head: Option<String>,
    },
    /// A notification delivery that this job delivered: its status becomes `delivered`
    /// (once: a delivered one stays as it is), carried by the committing job, with
    /// `detail` when given.
    NotifyDelivered {
        delivery_id: String,
        detail: Option<Value>,
    },
    /// A rollout's shadow evaluation of the job's tenant: its row in `rollout_shadows`,
    /// one per rollout, tenant and generation.
    RolloutShadowed {
        rollout_id: String,
        generation: u64,
        /// The tenant's `DiffSummary`.
        summary: Value,
        /// The per-finding diff, a stored object.
        diff_sha256: String,
    },
}

/// One staged effect of one job, at the commit's time (milliseconds).
pub(crate) struct EffectRow<'a> {
    pub(crate) tenant: &'a TenantId,
    pub(crate) job: &'a JobId,
    pub(crate) effect: &'a Effect,
    pub(crate) at: i64,
}

/// Rows per INSERT (at most 6 bound parameters each).
const CHUNK: usize = 500;

/// Writes effects inside a transaction, each family in its own statement; an effect
/// already written is left as it is.
pub(crate) async fn insert_effects(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    rows: &[EffectRow<'_>],
) -> Result<()> {
    let noop: Vec<&EffectRow<'_>> = rows
        .iter()
        .filter(|row| matches!(row.effect, Effect::NoopWritten))
        .collect();
    for chunk in noop.chunks(CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO noop_effects (tenant_id, job_id, written_at) VALUES {} \
             ON CONFLICT (tenant_id, job_id) DO NOTHING",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(row.tenant.as_str())
                .bind(row.job.as_str())
                .bind(row.at);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(|err| store.err(err, "noop effect"))?;
    }
    let files: Vec<(&EffectRow<'_>, &str, u64, &str)> = rows
        .iter()
        .filter_map(|row| match row.effect {
            Effect::ExportFile {
                name,
                size_bytes,
                sha256,
            } => Some((row, name.as_str(), *size_bytes, sha256.as_str())),
            _ => None,
        })
        .collect();
    for chunk in files.chunks(CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = 6 * i;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO export_files (tenant_id, export_id, name, size_bytes, sha256, created_at) \
             VALUES {} ON CONFLICT (tenant_id, export_id, name) DO NOTHING",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (row, name, size, sha256) in chunk {
            query = query
                .bind(row.tenant.as_str())
                .bind(row.job.as_str())
                .bind(*name)
                .bind(i64::try_from(*size).unwrap_or(i64::MAX))
                .bind(*sha256)
                .bind(row.at);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(|err| store.err(err, "export file"))?;
    }
    for row in rows {
        if let Effect::ExportPlanned {
            plan_sha256,
            items_total,
        } = row.effect
        {
            sqlx::query(
                "INSERT INTO export_runs (tenant_id, export_id, plan_sha256, items_total, \
                 items_done, created_at) VALUES ($1, $2, $3, $4, 0, $5) \
                 ON CONFLICT (tenant_id, export_id) DO NOTHING",
            )
            .bind(row.tenant.as_str())
            .bind(row.job.as_str())
            .bind(plan_sha256.as_str())
            .bind(i64::try_from(*items_total).unwrap_or(i64::MAX))
            .bind(row.at)
            .execute(&mut **tx)
            .await
            .map_err(|err| store.err(err, "export run"))?;
        }
    }
    for row in rows {
        if let Effect::RolloutShadowed {
            rollout_id,
            generation,
            summary,
            diff_sha256,
        } = row.effect
        {
            sqlx::query(
                "INSERT INTO rollout_shadows (rollout_id, tenant_id, generation, job_id, summary, \
                 diff_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (rollout_id, tenant_id, generation) DO NOTHING",
            )
            .bind(rollout_id.as_str())
            .bind(row.tenant.as_str())
            .bind(i64::try_from(*generation).unwrap_or(i64::MAX))
            .bind(row.job.as_str())
            .bind(super::json_text(summary))
            .bind(diff_sha256.as_str())
            .bind(row.at)
            .execute(&mut **tx)
            .await
            .map_err(|err| store.err(err, "rollout shadow"))?;
        }
    }
    for row in rows {
        if let Effect::Event(event) = row.effect {
            super::insert_event(tx, store, Some(row.tenant), event, row.at).await?;
        }
    }
    insert_notify_effects(store, tx, rows).await
}

/// The notify families: on SQLite one `UPDATE … FROM (VALUES …)` per family and chunk, so
/// a group commit of many deliveries adds two statements, not two per delivery; on
/// PostgreSQL (the single-transition path: its batches use `PG_APPLY_CHANGES`) a statement
/// per row, whose parameters it can type.
async fn insert_notify_effects(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    rows: &[EffectRow<'_>],
) -> Result<()> {
    let attempts: Vec<_> = rows
        .iter()
        .filter_map(|row| match row.effect {
            Effect::NotifyAttemptOk {
                delivery_id,
                attempt,
                status_code,
                latency_ms,
                response_head,
            } => Some((
                row,
                delivery_id.as_str(),
                i64::from(*attempt),
                status_code.map(i64::from),
                latency_ms.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
                response_head.as_deref(),
            )),
            _ => None,
        })
        .collect();
    let delivered: Vec<_> = rows
        .iter()
        .filter_map(|row| match row.effect {
            Effect::NotifyDelivered {
                delivery_id,
                detail,
            } => Some((
                row,
                delivery_id.as_str(),
                detail.as_ref().map(super::json_text),
            )),
            _ => None,
        })
        .collect();
    let batched = store.backend() == crate::Backend::Sqlite;
    let chunk = if batched { CHUNK / 2 } else { 1 };
    for part in attempts.chunks(chunk) {
        let sql = if batched {
            format!(
                "UPDATE notify_attempts SET outcome = 'ok', status_code = v.column4, \
                 latency_ms = v.column5, response_head = v.column6 FROM (VALUES {}) AS v \
                 WHERE notify_attempts.tenant_id = v.column1 \
                 AND notify_attempts.delivery_id = v.column2 AND notify_attempts.attempt = v.column3",
                super::jobs::placeholders(part.len(), 6)
            )
        } else {
            "UPDATE notify_attempts SET outcome = 'ok', status_code = $4, latency_ms = $5, \
             response_head = $6 WHERE tenant_id = $1 AND delivery_id = $2 AND attempt = $3"
                .to_owned()
        };
        let mut query = sqlx::query(&sql);
        for (row, delivery_id, attempt, status_code, latency_ms, head) in part {
            query = query
                .bind(row.tenant.as_str())
                .bind(*delivery_id)
                .bind(*attempt)
                .bind(*status_code)
                .bind(*latency_ms)
                .bind(*head);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(|err| store.err(err, "notify attempt"))?;
    }
    for part in delivered.chunks(chunk) {
        let sql = if batched {
            format!(
                "UPDATE notify_deliveries SET status = 'delivered', job_id = v.column3, \
                 detail = COALESCE(v.column4, notify_deliveries.detail), updated_at = v.column5 \
                 FROM (VALUES {}) AS v \
                 WHERE notify_deliveries.tenant_id = v.column1 AND notify_deliveries.id = v.column2 \
                 AND notify_deliveries.status <> 'delivered'",
                super::jobs::placeholders(part.len(), 5)
            )
        } else {
            "UPDATE notify_deliveries SET status = 'delivered', job_id = $3, \
             detail = COALESCE($4, detail), updated_at = $5 \
             WHERE tenant_id = $1 AND id = $2 AND status <> 'delivered'"
                .to_owned()
        };
        let mut query = sqlx::query(&sql);
        for (row, delivery_id, detail) in part {
            query = query
                .bind(row.tenant.as_str())
                .bind(*delivery_id)
                .bind(row.job.as_str())
                .bind(detail.clone())
                .bind(row.at);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(|err| store.err(err, "notify delivery"))?;
    }
    Ok(())
}

/// The `notify_attempts` ends of a PostgreSQL batch, as its JSON parameter.
pub(crate) fn pg_notify_attempt_rows(rows: &[EffectRow<'_>]) -> Value {
    Value::Array(
        rows.iter()
            .filter_map(|row| match row.effect {
                Effect::NotifyAttemptOk {
                    delivery_id,
                    attempt,
                    status_code,
                    latency_ms,
                    response_head,
                } => Some(serde_json::json!({
                    "tenant_id": row.tenant.as_str(),
                    "job_id": row.job.as_str(),
                    "delivery_id": delivery_id,
                    "attempt": attempt,
                    "status_code": status_code,
                    "latency_ms": latency_ms,
                    "response_head": response_head,
                })),
                _ => None,
            })
            .collect(),
    )
}

/// The delivered `notify_deliveries` of a PostgreSQL batch, as its JSON parameter.
pub(crate) fn pg_notify_delivered_rows(rows: &[EffectRow<'_>]) -> Value {
    Value::Array(
        rows.iter()
            .filter_map(|row| match row.effect {
                Effect::NotifyDelivered {
                    delivery_id,
                    detail,
                } => Some(serde_json::json!({
                    "tenant_id": row.tenant.as_str(),
                    "job_id": row.job.as_str(),
                    "delivery_id": delivery_id,
                    "detail": detail.as_ref().map(super::json_text),
                    "at": row.at,
                })),
                _ => None,
            })
            .collect(),
    )
}

/// The `export_files` rows of a PostgreSQL batch, as its JSON parameter.
pub(crate) fn pg_export_file_rows(rows: &[EffectRow<'_>]) -> Value {
    Value::Array(
        rows.iter()
            .filter_map(|row| match row.effect {
                Effect::ExportFile {
                    name,
                    size_bytes,
                    sha256,
                } => Some(serde_json::json!({
                    "tenant_id": row.tenant.as_str(),
                    "export_id": row.job.as_str(),
                    "name": name,
                    "size_bytes": size_bytes,
                    "sha256": sha256,
                    "at": row.at,
                })),
                _ => None,
            })
            .collect(),
    )
}

/// The `noop_effects` rows of a PostgreSQL batch, as its JSON parameter.
pub(crate) fn pg_noop_rows(rows: &[EffectRow<'_>]) -> Value {
    Value::Array(
        rows.iter()
            .filter(|row| matches!(row.effect, Effect::NoopWritten))
            .map(|row| {
                serde_json::json!({
                    "tenant_id": row.tenant.as_str(),
                    "job_id": row.job.as_str(),
                    "at": row.at,
                })
            })
            .collect(),
    )
}

/// The `export_runs` rows of a PostgreSQL batch, as its JSON parameter.
pub(crate) fn pg_export_plan_rows(rows: &[EffectRow<'_>]) -> Value {
    Value::Array(
        rows.iter()
            .filter_map(|row| match row.effect {
                Effect::ExportPlanned {
                    plan_sha256,
                    items_total,
                } => Some(serde_json::json!({
                    "tenant_id": row.tenant.as_str(),
                    "export_id": row.job.as_str(),
                    "plan_sha256": plan_sha256,
                    "items_total": items_total,
                    "at": row.at,
                })),
                _ => None,
            })
            .collect(),
    )
}

/// The `events` rows of a PostgreSQL batch, as its JSON parameter.
pub(crate) fn pg_event_rows(rows: &[EffectRow<'_>]) -> Value {
    Value::Array(
        rows.iter()
            .filter_map(|row| match row.effect {
                Effect::Event(event) => Some(serde_json::json!({
                    "tenant_id": row.tenant.as_str(),
                    "job_id": row.job.as_str(),
                    "kind": event.kind,
                    "dedupe_key": event.dedupe_key,
                    "payload": super::json_text(&event.payload),
                    "at": row.at,
                })),
                _ => None,
            })
            .collect(),
    )
}

/// The `rollout_shadows` rows of a PostgreSQL batch, as its JSON parameter.
pub(crate) fn pg_rollout_shadow_rows(rows: &[EffectRow<'_>]) -> Value {
    Value::Array(
        rows.iter()
            .filter_map(|row| match row.effect {
                Effect::RolloutShadowed {
                    rollout_id,
                    generation,
                    summary,
                    diff_sha256,
                } => Some(serde_json::json!({
                    "tenant_id": row.tenant.as_str(),
                    "job_id": row.job.as_str(),
                    "rollout_id": rollout_id,
                    "generation": generation,
                    "summary": super::json_text(summary),
                    "diff_sha256": diff_sha256,
                    "at": row.at,
                })),
                _ => None,
            })
            .collect(),
    )
}
