//! Policy packs and their rollouts (migration 0015).
//!
//! A pack is an administrator's policy: global, immutable per version. A tenant has at
//! most one pack assigned; packs reach tenants only through rollouts. A rollout moves one
//! pack version through waves of tenants fixed at its creation; the scheduler's leader
//! drives it (every write it makes here is fenced by its lease token), `rollout` jobs
//! evaluate each wave's tenants in shadow ([`super::Effect::RolloutShadowed`], committed
//! with the job), and administrators pause, resume and abort it. Every move is a row of
//! `rollout_transitions` with who and why, written in the transaction that makes it.
//!
//! Activation and rollback are per tenant and conditional (`activated_at IS NULL`,
//! `rolled_back_at IS NULL`), each with the tenant's `policy.updated` event in the same
//! transaction: a leader that dies mid-wave leaves every tenant either done, with its
//! event, or not, and its successor does the rest — none twice, none skipped.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::policies::{checked_reason, Actor};
use super::schedules::fence;
use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::{
    check_limit, insert_event, insert_event_ordered, json_text, lock_event_order, page, parse_json,
    text_cursor, NewEvent, Page,
};
use crate::{RolloutId, Store, TenantId};

/// One version of a policy pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackRecord {
    pub name: String,
    pub version: u64,
    pub digest: String,
    pub document: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Policy packs. Obtained from [`Store::packs`].
#[derive(Debug, Clone, Copy)]
pub struct Packs<'a> {
    pub(crate) store: &'a Store,
}

const PACK_COLUMNS: &str = "name, version, digest, document, created_by, created_at";

impl Packs<'_> {
    /// Stores `document` as the next version of pack `name`, unless its newest version
    /// has the same digest: then that one is returned with `false`.
    pub async fn put(
        &self,
        name: &str,
        document: &str,
        digest: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(PackRecord, bool)> {
        check_pack_name(name)?;
        if let Some(newest) = self.versions(name).await?.into_iter().next() {
            if newest.digest == digest {
                return Ok((newest, false));
            }
        }
        let err = |e| self.store.err(e, "policy pack");
        for _ in 0..64 {
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO policy_packs (name, version, digest, document, created_by, created_at) \
                 SELECT $1, CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT), $2, $3, $4, $5 \
                 FROM policy_packs WHERE name = $1 \
                 ON CONFLICT (name, version) DO NOTHING RETURNING version",
            )
            .bind(name)
            .bind(digest)
            .bind(document)
            .bind(actor)
            .bind(to_millis(now))
            .fetch_optional(&self.store.pool)
            .await
            .map_err(err)?;
            if let Some((version,)) = inserted {
                return Ok((
                    self.get(name, u64::try_from(version).unwrap_or(0)).await?,
                    true,
                ));
            }
        }
        Err(StoreError::Conflict(
            "pack versions kept changing; try again".into(),
        ))
    }

    pub async fn get(&self, name: &str, version: u64) -> Result<PackRecord> {
        let row = sqlx::query(&format!(
            "SELECT {PACK_COLUMNS} FROM policy_packs WHERE name = $1 AND version = $2"
        ))
        .bind(name)
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "policy pack"))?;
        row.map(|row| decode_pack(self.store, &row))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("policy pack {name} version {version}")))
    }

    /// The versions of pack `name`, newest first (at most 500).
    pub async fn versions(&self, name: &str) -> Result<Vec<PackRecord>> {
        self.select(
            "WHERE name = $1 ORDER BY version DESC LIMIT 500",
            Some(name),
        )
        .await
    }

    /// The newest version of every pack, by name.
    pub async fn list(&self) -> Result<Vec<PackRecord>> {
        self.select(
            "WHERE version = (SELECT MAX(p.version) FROM policy_packs p WHERE p.name = policy_packs.name) \
             ORDER BY name LIMIT 500",
            None,
        )
        .await
    }

    async fn select(&self, tail: &str, name: Option<&str>) -> Result<Vec<PackRecord>> {
        let sql = format!("SELECT {PACK_COLUMNS} FROM policy_packs {tail}");
        let mut query = sqlx::query(&sql);
        if let Some(name) = name {
            query = query.bind(name);
        }
        let rows = query
            .fetch_all(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "policy packs"))?;
        rows.iter()
            .map(|row| decode_pack(self.store, row))
            .collect()
    }

    /// The pack version assigned to `tenant`, if any.
    pub async fn assigned(&self, tenant: &TenantId) -> Result<Option<PackRecord>> {
        let row = sqlx::query(
            "SELECT p.name, p.version, p.digest, p.document, p.created_by, p.created_at \
             FROM tenant_packs t JOIN policy_packs p ON p.name = t.pack AND p.version = t.version \
             WHERE t.tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "tenant pack"))?;
        row.map(|row| decode_pack(self.store, &row)).transpose()
    }
}

fn check_pack_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "name: {name:?} is not a pack name (a-z, 0-9 and '-', 1 to 63 characters, a letter first)"
        )))
    }
}

fn decode_pack(store: &Store, row: &sqlx::any::AnyRow) -> Result<PackRecord> {
    let get = |e| store.err(e, "policy pack");
    Ok(PackRecord {
        name: row.try_get("name").map_err(get)?,
        version: u64::try_from(row.try_get::<i64, _>("version").map_err(get)?).unwrap_or(0),
        digest: row.try_get("digest").map_err(get)?,
        document: row.try_get("document").map_err(get)?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
    })
}

/// Where a rollout is. `running` and `rolling_back` are the scheduler's to move;
/// `completed` and `rolled_back` are final.
pub mod state {
    pub const RUNNING: &str = "running";
    pub const PAUSED: &str = "paused";
    pub const COMPLETED: &str = "completed";
    pub const ROLLING_BACK: &str = "rolling_back";
    pub const ROLLED_BACK: &str = "rolled_back";
}

/// Where a running rollout's current wave is: its tenants evaluated in `shadow` (the
/// gate is judged when every result is in, and a passing wave activated), then `bake`
/// until `next_at`; `rollback` while rolling back.
pub mod phase {
    pub const SHADOW: &str = "shadow";
    pub const BAKE: &str = "bake";
    pub const ROLLBACK: &str = "rollback";
    pub const DONE: &str = "done";
}

/// A rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutRecord {
    pub id: RolloutId,
    pub pack: String,
    pub version: u64,
    /// The declared rollout (waves, gates, bake time), as created or as a resume changed
    /// its gate.
    pub spec: Value,
    pub state: String,
    /// The wave in progress (0-based; the canary is 0).
    pub wave: u64,
    pub phase: String,
    /// Increments each time a wave is shadowed (a new wave, or a resume re-checking it).
    pub generation: u64,
    /// The wave a person approved (a gate with `manual_approval`).
    pub approved_wave: Option<u64>,
    pub next_at: DateTime<Utc>,
    /// Why it is where it is: the last gate result, why it paused, what failed.
    pub reason: Value,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One tenant of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutTenantRecord {
    pub tenant: TenantId,
    pub wave: u64,
    /// The pack the tenant had before (restored by a rollback; none: no pack).
    pub previous_pack: Option<String>,
    pub previous_version: Option<u64>,
    pub activated_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    /// The tenant's newest shadow result.
    pub shadow: Option<ShadowRecord>,
}

/// A tenant's shadow evaluation in a rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowRecord {
    pub generation: u64,
    pub job_id: String,
    /// The `DiffSummary` of the tenant's latest scans.
    pub summary: Value,
    /// The per-finding diff, a stored object.
    pub diff_sha256: String,
    pub created_at: DateTime<Utc>,
}

/// One move of a rollout, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutTransition {
    pub action: String,
    pub wave: Option<u64>,
    pub identity: String,
    pub actor: String,
    pub reason: String,
    pub detail: Value,
    pub at: DateTime<Utc>,
}

/// A new rollout: its tenants by wave, fixed now.
#[derive(Debug, Clone)]
pub struct NewRollout<'a> {
    pub pack: &'a str,
    pub version: u64,
    pub spec: &'a Value,
    pub waves: &'a [Vec<TenantId>],
}

/// What the leader does to a rollout, conditional on the rollout being as it read it.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaderMove {
    /// The gate held: activate these tenants of the current wave (a batch; the wave moves
    /// to `bake` until `bake_until` once none is left).
    Activate {
        tenants: Vec<TenantId>,
        gate: Value,
        bake_until: DateTime<Utc>,
    },
    /// Baked: start the next wave's shadow, or complete after the last.
    NextWave {
        wave_name: String,
    },
    Complete,
    /// The gate did not hold (`gate.result`: failed, inconclusive or awaiting approval):
    /// pause, saying why (and `rollout.gate.failed` when it failed).
    Pause {
        gate: Value,
    },
    /// Roll these activated tenants back (a batch; rolled back once none is left).
    RollBack {
        tenants: Vec<TenantId>,
    },
}

const ROLLOUT_COLUMNS: &str = "id, pack, version, spec, state, wave, phase, generation, \
                               approved_wave, next_at, reason, created_by, created_at, updated_at";

/// The system's identity in transitions the scheduler makes.
pub const SCHEDULER_IDENTITY: &str = "scheduler";

/// Rollouts. Obtained from [`Store::rollouts`].
#[derive(Debug, Clone, Copy)]
pub struct Rollouts<'a> {
    pub(crate) store: &'a Store,
}

impl Rollouts<'_> {
    fn err(&self, what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |e| self.store.err(e, what)
    }

    /// Creates a running rollout with its tenants, each with the pack it has now; the
    /// first wave's shadow starts at the scheduler's next pass. Only one rollout may be
    /// unfinished at a time (a conflict names it).
    pub async fn create(
        &self,
        new: &NewRollout<'_>,
        by: Actor<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RolloutRecord> {
        let reason = checked_reason(reason, true)?;
        // The pack version must exist.
        Packs { store: self.store }
            .get(new.pack, new.version)
            .await?;
        if let Some(open) = self.open().await? {
            return Err(open_conflict(&open));
        }
        let id = RolloutId::generate();
        let at = to_millis(now);
        let mut tx = self.store.pool.begin().await.map_err(self.err("rollout"))?;
        sqlx::query(
            "INSERT INTO rollouts (id, pack, version, spec, state, wave, phase, generation, \
                 approved_wave, next_at, reason, open, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'running', 0, 'shadow', 1, NULL, $5, '{}', 'open', $6, $5, $5)",
        )
        .bind(id.as_str())
        .bind(new.pack)
        .bind(i64::try_from(new.version).unwrap_or(i64::MAX))
        .bind(json_text(new.spec))
        .bind(at)
        .bind(by.identity)
        .execute(&mut *tx)
        .await
        .map_err(|e| match self.store.err(e, "rollout") {
            StoreError::Conflict(_) => {
                StoreError::Conflict("another rollout is in progress; finish or abort it first".into())
            }
            other => other,
        })?;
        for (wave, tenants) in new.waves.iter().enumerate() {
            for tenant in tenants {
                sqlx::query(
                    "INSERT INTO rollout_tenants (rollout_id, tenant_id, wave, previous_pack, previous_version) \
                     SELECT $1, $2, $3, \
                        (SELECT pack FROM tenant_packs WHERE tenant_id = $2), \
                        (SELECT version FROM tenant_packs WHERE tenant_id = $2)",
                )
                .bind(id.as_str())
                .bind(tenant.as_str())
                .bind(wave as i64)
                .execute(&mut *tx)
                .await
                .map_err(self.err("rollout tenant"))?;
            }
        }
        let counts: Vec<usize> = new.waves.iter().map(Vec::len).collect();
        record(
            &mut tx,
            self.store,
            &id,
            "created",
            None,
            by,
            reason,
            &serde_json::json!({"pack": new.pack, "version": new.version, "tenants_per_wave": counts}),
            at,
        )
        .await?;
        wave_started(
            &mut tx,
            self.store,
            &id,
            new.pack,
            new.version,
            0,
            "canary",
            1,
            at,
        )
        .await?;
        tx.commit().await.map_err(self.err("rollout"))?;
        self.get(&id).await
    }

    pub async fn get(&self, id: &RolloutId) -> Result<RolloutRecord> {
        let row = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.store.pool)
        .await
        .map_err(self.err("rollout"))?;
        row.map(|row| decode_rollout(self.store, &row))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("rollout {id}")))
    }

    /// The unfinished rollout, if there is one.
    pub async fn open(&self) -> Result<Option<RolloutRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE open = 'open'"
        ))
        .fetch_optional(&self.store.pool)
        .await
        .map_err(self.err("rollout"))?;
        row.map(|row| decode_rollout(self.store, &row)).transpose()
    }

    /// Every rollout, newest first; the cursor is the last id seen.
    pub async fn list(&self, cursor: Option<&str>, limit: u32) -> Result<Page<RolloutRecord>> {
        let limit = check_limit(limit)?;
        let cursor = text_cursor(cursor, "rollout", |c| RolloutId::parse(c).is_ok())?;
        let rows = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE ($1 = '' OR id < $1) \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("rollouts"))?;
        let items = rows
            .iter()
            .map(|row| decode_rollout(self.store, row))
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |r| r.id.to_string()))
    }

    /// Rollouts the leader has something to do for: running or rolling back, and due.
    pub async fn due(&self, now: DateTime<Utc>) -> Result<Vec<RolloutRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts \
             WHERE state IN ('running', 'rolling_back') AND next_at <= $1 ORDER BY id LIMIT 100"
        ))
        .bind(to_millis(now))
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("rollouts"))?;
        rows.iter()
            .map(|row| decode_rollout(self.store, row))
            .collect()
    }

    /// The rollout's tenants (of one wave, or all), each with its newest shadow result.
    pub async fn tenants(
        &self,
        id: &RolloutId,
        wave: Option<u64>,
    ) -> Result<Vec<RolloutTenantRecord>> {
        let rows = sqlx::query(
            "SELECT t.tenant_id, t.wave, t.previous_pack, t.previous_version, t.activated_at, \
                    t.rolled_back_at, s.generation, s.job_id, s.summary, s.diff_sha256, s.created_at \
             FROM rollout_tenants t \
             LEFT JOIN rollout_shadows s ON s.rollout_id = t.rollout_id AND s.tenant_id = t.tenant_id \
                AND s.generation = (SELECT MAX(x.generation) FROM rollout_shadows x \
                                    WHERE x.rollout_id = t.rollout_id AND x.tenant_id = t.tenant_id) \
             WHERE t.rollout_id = $1 AND ($2 < 0 OR t.wave = $2) ORDER BY t.wave, t.tenant_id",
        )
        .bind(id.as_str())
        .bind(wave.map_or(-1, |w| i64::try_from(w).unwrap_or(i64::MAX)))
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("rollout tenants"))?;
        rows.iter()
            .map(|row| {
                let get = |e| self.store.err(e, "rollout tenant");
                let tenant: String = row.try_get("tenant_id").map_err(get)?;
                let generation: Option<i64> = row.try_get("generation").map_err(get)?;
                let shadow = match generation {
                    None => None,
                    Some(generation) => Some(ShadowRecord {
                        generation: u64::try_from(generation).unwrap_or(0),
                        job_id: row.try_get("job_id").map_err(get)?,
                        summary: parse_json(
                            &row.try_get::<String, _>("summary").map_err(get)?,
                            "shadow summary",
                        )?,
                        diff_sha256: row.try_get("diff_sha256").map_err(get)?,
                        created_at: from_millis(row.try_get("created_at").map_err(get)?),
                    }),
                };
                Ok(RolloutTenantRecord {
                    tenant: TenantId::parse(&tenant)
                        .map_err(|e| StoreError::Corrupt(format!("rollout tenant: {e}")))?,
                    wave: u64::try_from(row.try_get::<i64, _>("wave").map_err(get)?).unwrap_or(0),
                    previous_pack: row.try_get("previous_pack").map_err(get)?,
                    previous_version: row
                        .try_get::<Option<i64>, _>("previous_version")
                        .map_err(get)?
                        .map(|v| u64::try_from(v).unwrap_or(0)),
                    activated_at: row
                        .try_get::<Option<i64>, _>("activated_at")
                        .map_err(get)?
                        .map(from_millis),
                    rolled_back_at: row
                        .try_get::<Option<i64>, _>("rolled_back_at")
                        .map_err(get)?
                        .map(from_millis),
                    shadow,
                })
            })
            .collect()
    }

    /// The moves of a rollout, oldest first.
    pub async fn transitions(&self, id: &RolloutId) -> Result<Vec<RolloutTransition>> {
        let rows = sqlx::query(
            "SELECT action, wave, identity, actor, reason, detail, at FROM rollout_transitions \
             WHERE rollout_id = $1 ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("rollout transitions"))?;
        rows.iter()
            .map(|row| {
                let get = |e| self.store.err(e, "rollout transition");
                Ok(RolloutTransition {
                    action: row.try_get("action").map_err(get)?,
                    wave: row
                        .try_get::<Option<i64>, _>("wave")
                        .map_err(get)?
                        .map(|w| u64::try_from(w).unwrap_or(0)),
                    identity: row.try_get("identity").map_err(get)?,
                    actor: row.try_get("actor").map_err(get)?,
                    reason: row.try_get("reason").map_err(get)?,
                    detail: parse_json(
                        &row.try_get::<String, _>("detail").map_err(get)?,
                        "rollout transition",
                    )?,
                    at: from_millis(row.try_get("at").map_err(get)?),
                })
            })
            .collect()
    }

    /// Pauses a running rollout (any phase). A conflict names its state otherwise.
    pub async fn pause(
        &self,
        id: &RolloutId,
        by: Actor<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RolloutRecord> {
        let reason = checked_reason(reason, true)?;
        let current = self.get(id).await?;
        expect_state(&current, &[state::RUNNING], "pause")?;
        let mut tx = self.store.pool.begin().await.map_err(self.err("rollout"))?;
        let detail = serde_json::json!({"paused_by": by.identity, "why": reason});
        self.update(
            &mut tx,
            &current,
            state::PAUSED,
            &current.phase,
            None,
            None,
            &detail,
            now,
        )
        .await?;
        record(
            &mut tx,
            self.store,
            id,
            "paused",
            Some(current.wave),
            by,
            reason,
            &detail,
            to_millis(now),
        )
        .await?;
        rollout_event(
            &mut tx,
            self.store,
            &current,
            "rollout.paused",
            &detail,
            to_millis(now),
        )
        .await?;
        tx.commit().await.map_err(self.err("rollout"))?;
        self.get(id).await
    }

    /// Resumes a paused rollout. A wave that was waiting for a person's approval is
    /// approved by this; a wave whose gate failed or was inconclusive is shadowed again
    /// (a new generation), judged by `gate` when given (it replaces the gate of this wave
    /// and the ones after it; the old and new gates are in the transition).
    pub async fn resume(
        &self,
        id: &RolloutId,
        gate: Option<&Value>,
        by: Actor<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RolloutRecord> {
        let reason = checked_reason(reason, true)?;
        let current = self.get(id).await?;
        expect_state(&current, &[state::PAUSED], "resume")?;
        let awaiting = current.reason["gate"]["result"] == "awaiting_approval";
        let mut spec = current.spec.clone();
        if let Some(gate) = gate {
            spec["gate"] = gate.clone();
            if let Some(waves) = spec["waves"].as_array_mut() {
                for wave in waves
                    .iter_mut()
                    .skip(usize::try_from(current.wave).unwrap_or(0))
                {
                    if let Some(wave) = wave.as_object_mut() {
                        wave.remove("gate");
                    }
                }
            }
        }
        let at = to_millis(now);
        let mut tx = self.store.pool.begin().await.map_err(self.err("rollout"))?;
        let reshadow = current.phase == phase::SHADOW && !(awaiting && gate.is_none());
        // A wave paused while baking bakes on to its end.
        let next_at = if current.phase == phase::BAKE {
            current.next_at.max(now)
        } else {
            now
        };
        let generation = current.generation + u64::from(reshadow);
        let approved = (current.phase == phase::SHADOW && awaiting && gate.is_none())
            .then_some(current.wave)
            .or(current.approved_wave);
        let changed = sqlx::query(
            "UPDATE rollouts SET state = 'running', spec = $2, generation = $3, approved_wave = $4, \
                 next_at = $7, reason = '{}', updated_at = $5 \
             WHERE id = $1 AND state = 'paused' AND generation = $6",
        )
        .bind(id.as_str())
        .bind(json_text(&spec))
        .bind(i64::try_from(generation).unwrap_or(i64::MAX))
        .bind(approved.map(|w| i64::try_from(w).unwrap_or(i64::MAX)))
        .bind(at)
        .bind(i64::try_from(current.generation).unwrap_or(i64::MAX))
        .bind(to_millis(next_at))
        .execute(&mut *tx)
        .await
        .map_err(self.err("rollout"))?
        .rows_affected();
        if changed != 1 {
            return Err(changed_meanwhile(id));
        }
        let detail = serde_json::json!({
            "approved_wave": approved,
            "reshadow": reshadow,
            "old_gate": gate.map(|_| current.spec["gate"].clone()),
            "new_gate": gate,
        });
        record(
            &mut tx,
            self.store,
            id,
            "resumed",
            Some(current.wave),
            by,
            reason,
            &detail,
            at,
        )
        .await?;
        if reshadow {
            let name = wave_name(&spec, current.wave);
            wave_started(
                &mut tx,
                self.store,
                id,
                &current.pack,
                current.version,
                current.wave,
                &name,
                generation,
                at,
            )
            .await?;
        }
        tx.commit().await.map_err(self.err("rollout"))?;
        self.get(id).await
    }

    /// Aborts a rollout and rolls it back: every tenant it activated returns to the pack
    /// it had before (the scheduler does it, a batch at a time, each tenant with its
    /// `policy.updated` event). A completed rollout may be rolled back while no later
    /// rollout exists.
    pub async fn abort(
        &self,
        id: &RolloutId,
        by: Actor<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RolloutRecord> {
        let reason = checked_reason(reason, true)?;
        let current = self.get(id).await?;
        expect_state(
            &current,
            &[state::RUNNING, state::PAUSED, state::COMPLETED],
            "abort",
        )?;
        if current.state == state::COMPLETED {
            let later: Option<(String,)> =
                sqlx::query_as("SELECT id FROM rollouts WHERE id > $1 ORDER BY id LIMIT 1")
                    .bind(id.as_str())
                    .fetch_optional(&self.store.pool)
                    .await
                    .map_err(self.err("rollouts"))?;
            if let Some((later,)) = later {
                return Err(StoreError::Conflict(format!(
                    "rollout {later} came after this one; roll that one back instead"
                )));
            }
        }
        let at = to_millis(now);
        let mut tx = self.store.pool.begin().await.map_err(self.err("rollout"))?;
        let detail =
            serde_json::json!({"aborted_by": by.identity, "why": reason, "from": current.state});
        let changed = sqlx::query(
            "UPDATE rollouts SET state = 'rolling_back', phase = 'rollback', open = 'open', \
                 next_at = $2, reason = $3, updated_at = $2 \
             WHERE id = $1 AND state = $4 AND generation = $5",
        )
        .bind(id.as_str())
        .bind(at)
        .bind(json_text(&detail))
        .bind(&current.state)
        .bind(i64::try_from(current.generation).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(|e| match self.store.err(e, "rollout") {
            StoreError::Conflict(_) => StoreError::Conflict(
                "another rollout is in progress; finish or abort it first".into(),
            ),
            other => other,
        })?
        .rows_affected();
        if changed != 1 {
            return Err(changed_meanwhile(id));
        }
        record(
            &mut tx,
            self.store,
            id,
            "aborted",
            Some(current.wave),
            by,
            reason,
            &detail,
            at,
        )
        .await?;
        tx.commit().await.map_err(self.err("rollout"))?;
        self.get(id).await
    }

    /// The leader's move of `rollout` (as it read it), fenced by its lease `token`.
    pub async fn lead(
        &self,
        token: i64,
        rollout: &RolloutRecord,
        step: &LeaderMove,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let at = to_millis(now);
        let by = Actor {
            identity: SCHEDULER_IDENTITY,
            actor: SCHEDULER_IDENTITY,
        };
        let mut tx = self.store.pool.begin().await.map_err(self.err("rollout"))?;
        fence(&mut tx, self.store, token).await?;
        match step {
            LeaderMove::Activate {
                tenants,
                gate,
                bake_until,
            } => {
                if rollout.reason.get("gate") != Some(gate) {
                    // The first batch of the wave records the gate that let it through.
                    record(
                        &mut tx,
                        self.store,
                        &rollout.id,
                        "gate.passed",
                        Some(rollout.wave),
                        by,
                        "",
                        gate,
                        at,
                    )
                    .await?;
                }
                if !tenants.is_empty() {
                    // Each activation appends an event: the lock once for the batch.
                    lock_event_order(&mut tx, self.store).await?;
                }
                for tenant in tenants {
                    self.activate_one(&mut tx, rollout, tenant, at).await?;
                }
                let left: (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM rollout_tenants \
                     WHERE rollout_id = $1 AND wave = $2 AND activated_at IS NULL",
                )
                .bind(rollout.id.as_str())
                .bind(i64::try_from(rollout.wave).unwrap_or(i64::MAX))
                .fetch_one(&mut *tx)
                .await
                .map_err(self.err("rollout tenants"))?;
                let reason = serde_json::json!({"gate": gate});
                if left.0 == 0 {
                    self.update(
                        &mut tx,
                        rollout,
                        state::RUNNING,
                        phase::BAKE,
                        Some(*bake_until),
                        None,
                        &reason,
                        now,
                    )
                    .await?;
                    record(
                        &mut tx,
                        self.store,
                        &rollout.id,
                        "activated",
                        Some(rollout.wave),
                        by,
                        "",
                        &serde_json::json!({"bake_until": bake_until}),
                        at,
                    )
                    .await?;
                } else {
                    self.update(
                        &mut tx,
                        rollout,
                        state::RUNNING,
                        phase::SHADOW,
                        Some(now),
                        None,
                        &reason,
                        now,
                    )
                    .await?;
                }
            }
            LeaderMove::NextWave { wave_name } => {
                let wave = rollout.wave + 1;
                let generation = rollout.generation + 1;
                let changed = sqlx::query(
                    "UPDATE rollouts SET wave = $2, phase = 'shadow', generation = $3, next_at = $4, \
                         reason = '{}', updated_at = $4 \
                     WHERE id = $1 AND state = 'running' AND phase = 'bake' AND wave = $5",
                )
                .bind(rollout.id.as_str())
                .bind(i64::try_from(wave).unwrap_or(i64::MAX))
                .bind(i64::try_from(generation).unwrap_or(i64::MAX))
                .bind(at)
                .bind(i64::try_from(rollout.wave).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(self.err("rollout"))?
                .rows_affected();
                if changed != 1 {
                    return Err(changed_meanwhile(&rollout.id));
                }
                wave_started(
                    &mut tx,
                    self.store,
                    &rollout.id,
                    &rollout.pack,
                    rollout.version,
                    wave,
                    wave_name,
                    generation,
                    at,
                )
                .await?;
            }
            LeaderMove::Complete => {
                let changed = sqlx::query(
                    "UPDATE rollouts SET state = 'completed', phase = 'done', open = NULL, \
                         updated_at = $2 \
                     WHERE id = $1 AND state = 'running' AND phase = 'bake' AND wave = $3",
                )
                .bind(rollout.id.as_str())
                .bind(at)
                .bind(i64::try_from(rollout.wave).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(self.err("rollout"))?
                .rows_affected();
                if changed != 1 {
                    return Err(changed_meanwhile(&rollout.id));
                }
                let detail = serde_json::json!({"waves": rollout.wave + 1});
                record(
                    &mut tx,
                    self.store,
                    &rollout.id,
                    "completed",
                    Some(rollout.wave),
                    by,
                    "",
                    &detail,
                    at,
                )
                .await?;
                rollout_event(
                    &mut tx,
                    self.store,
                    rollout,
                    "rollout.completed",
                    &detail,
                    at,
                )
                .await?;
            }
            LeaderMove::Pause { gate } => {
                let reason = serde_json::json!({"gate": gate});
                self.update(
                    &mut tx,
                    rollout,
                    state::PAUSED,
                    phase::SHADOW,
                    None,
                    None,
                    &reason,
                    now,
                )
                .await?;
                let result = gate["result"].as_str().unwrap_or("failed");
                let action = format!("gate.{result}");
                record(
                    &mut tx,
                    self.store,
                    &rollout.id,
                    &action,
                    Some(rollout.wave),
                    by,
                    "",
                    gate,
                    at,
                )
                .await?;
                record(
                    &mut tx,
                    self.store,
                    &rollout.id,
                    "paused",
                    Some(rollout.wave),
                    by,
                    "",
                    &reason,
                    at,
                )
                .await?;
                if result == "failed" {
                    rollout_event(
                        &mut tx,
                        self.store,
                        rollout,
                        "rollout.gate.failed",
                        gate,
                        at,
                    )
                    .await?;
                }
                rollout_event(&mut tx, self.store, rollout, "rollout.paused", &reason, at).await?;
            }
            LeaderMove::RollBack { tenants } => {
                if !tenants.is_empty() {
                    // Each tenant given back appends an event: the lock once.
                    lock_event_order(&mut tx, self.store).await?;
                }
                for tenant in tenants {
                    self.roll_back_one(&mut tx, rollout, tenant, at).await?;
                }
                let left: (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM rollout_tenants WHERE rollout_id = $1 \
                     AND activated_at IS NOT NULL AND rolled_back_at IS NULL",
                )
                .bind(rollout.id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(self.err("rollout tenants"))?;
                if left.0 == 0 {
                    let changed = sqlx::query(
                        "UPDATE rollouts SET state = 'rolled_back', phase = 'done', open = NULL, \
                             updated_at = $2 \
                         WHERE id = $1 AND state = 'rolling_back'",
                    )
                    .bind(rollout.id.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err("rollout"))?
                    .rows_affected();
                    if changed != 1 {
                        return Err(changed_meanwhile(&rollout.id));
                    }
                    let restored: (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM rollout_tenants WHERE rollout_id = $1 \
                         AND rolled_back_at IS NOT NULL",
                    )
                    .bind(rollout.id.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(self.err("rollout tenants"))?;
                    let detail = serde_json::json!({"tenants_restored": restored.0});
                    record(
                        &mut tx,
                        self.store,
                        &rollout.id,
                        "rolled_back",
                        Some(rollout.wave),
                        by,
                        "",
                        &detail,
                        at,
                    )
                    .await?;
                    rollout_event(
                        &mut tx,
                        self.store,
                        rollout,
                        "rollout.rolled_back",
                        &detail,
                        at,
                    )
                    .await?;
                }
            }
        }
        tx.commit().await.map_err(self.err("rollout"))
    }

    /// Assigns the rollout's pack to `tenant` unless it already was, with the tenant's
    /// `policy.updated` event.
    async fn activate_one(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        rollout: &RolloutRecord,
        tenant: &TenantId,
        at: i64,
    ) -> Result<()> {
        let marked = sqlx::query(
            "UPDATE rollout_tenants SET activated_at = $3 \
             WHERE rollout_id = $1 AND tenant_id = $2 AND wave = $4 AND activated_at IS NULL",
        )
        .bind(rollout.id.as_str())
        .bind(tenant.as_str())
        .bind(at)
        .bind(i64::try_from(rollout.wave).unwrap_or(i64::MAX))
        .execute(&mut **tx)
        .await
        .map_err(self.err("rollout tenant"))?
        .rows_affected();
        if marked == 0 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO tenant_packs (tenant_id, pack, version, rollout_id, assigned_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id) DO UPDATE SET pack = excluded.pack, version = excluded.version, \
                 rollout_id = excluded.rollout_id, assigned_at = excluded.assigned_at",
        )
        .bind(tenant.as_str())
        .bind(&rollout.pack)
        .bind(i64::try_from(rollout.version).unwrap_or(i64::MAX))
        .bind(rollout.id.as_str())
        .bind(at)
        .execute(&mut **tx)
        .await
        .map_err(self.err("tenant pack"))?;
        let event = NewEvent {
            kind: "policy.updated".into(),
            dedupe_key: format!("policy.updated:rollout:{}:{tenant}:activate", rollout.id),
            payload: serde_json::json!({
                "pack": rollout.pack, "pack_version": rollout.version, "rollout": rollout.id.as_str(),
            }),
        };
        // The caller took the event-order lock for its batch.
        insert_event_ordered(tx, self.store, Some(tenant), &event, at).await
    }

    /// Gives `tenant` back the pack it had before the rollout, unless it already was.
    async fn roll_back_one(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        rollout: &RolloutRecord,
        tenant: &TenantId,
        at: i64,
    ) -> Result<()> {
        let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
            "UPDATE rollout_tenants SET rolled_back_at = $3 \
             WHERE rollout_id = $1 AND tenant_id = $2 AND activated_at IS NOT NULL \
                AND rolled_back_at IS NULL \
             RETURNING previous_pack, previous_version",
        )
        .bind(rollout.id.as_str())
        .bind(tenant.as_str())
        .bind(at)
        .fetch_optional(&mut **tx)
        .await
        .map_err(self.err("rollout tenant"))?;
        let Some((previous_pack, previous_version)) = row else {
            return Ok(());
        };
        match (&previous_pack, previous_version) {
            (Some(pack), Some(version)) => {
                sqlx::query(
                    "UPDATE tenant_packs SET pack = $2, version = $3, rollout_id = NULL, assigned_at = $4 \
                     WHERE tenant_id = $1",
                )
                .bind(tenant.as_str())
                .bind(pack)
                .bind(version)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(self.err("tenant pack"))?;
            }
            _ => {
                sqlx::query("DELETE FROM tenant_packs WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(self.err("tenant pack"))?;
            }
        }
        let event = NewEvent {
            kind: "policy.updated".into(),
            dedupe_key: format!("policy.updated:rollout:{}:{tenant}:rollback", rollout.id),
            payload: serde_json::json!({
                "pack": previous_pack, "pack_version": previous_version,
                "rollout": rollout.id.as_str(), "rolled_back": true,
            }),
        };
        // The caller took the event-order lock for its batch.
        insert_event_ordered(tx, self.store, Some(tenant), &event, at).await
    }

    /// Moves the rollout as read (state, wave, phase and generation unchanged since).
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        current: &RolloutRecord,
        to_state: &str,
        to_phase: &str,
        next_at: Option<DateTime<Utc>>,
        approved_wave: Option<u64>,
        reason: &Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let changed = sqlx::query(
            "UPDATE rollouts SET state = $2, phase = $3, next_at = $4, \
                 approved_wave = COALESCE($5, approved_wave), reason = $6, updated_at = $7 \
             WHERE id = $1 AND state = $8 AND wave = $9 AND phase = $10 AND generation = $11",
        )
        .bind(current.id.as_str())
        .bind(to_state)
        .bind(to_phase)
        .bind(to_millis(next_at.unwrap_or(current.next_at)))
        .bind(approved_wave.map(|w| i64::try_from(w).unwrap_or(i64::MAX)))
        .bind(json_text(reason))
        .bind(to_millis(now))
        .bind(&current.state)
        .bind(i64::try_from(current.wave).unwrap_or(i64::MAX))
        .bind(&current.phase)
        .bind(i64::try_from(current.generation).unwrap_or(i64::MAX))
        .execute(&mut **tx)
        .await
        .map_err(self.err("rollout"))?
        .rows_affected();
        if changed != 1 {
            return Err(changed_meanwhile(&current.id));
        }
        Ok(())
    }
}

fn changed_meanwhile(id: &RolloutId) -> StoreError {
    StoreError::Conflict(format!("rollout {id} changed meanwhile; read it again"))
}

fn open_conflict(open: &RolloutRecord) -> StoreError {
    StoreError::Conflict(format!(
        "rollout {} of {}@{} is {}; finish or abort it first (one rollout at a time)",
        open.id, open.pack, open.version, open.state
    ))
}

fn expect_state(current: &RolloutRecord, from: &[&str], what: &str) -> Result<()> {
    if from.contains(&current.state.as_str()) {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "rollout {} is {}; `{what}` needs one that is {}",
            current.id,
            current.state,
            from.join(" or ")
        )))
    }
}

/// The name of wave `i` in a stored spec (`canary`, `wave-<n>`, or its own).
pub fn wave_name(spec: &Value, i: u64) -> String {
    let index = usize::try_from(i).unwrap_or(usize::MAX);
    match spec["waves"][index]["name"].as_str() {
        Some(name) => name.to_owned(),
        None if i == 0 => "canary".into(),
        None => format!("wave-{}", i + 1),
    }
}

#[allow(clippy::too_many_arguments)]
async fn record(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    store: &Store,
    id: &RolloutId,
    action: &str,
    wave: Option<u64>,
    by: Actor<'_>,
    reason: &str,
    detail: &Value,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO rollout_transitions (rollout_id, action, wave, identity, actor, reason, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(action)
    .bind(wave.map(|w| i64::try_from(w).unwrap_or(i64::MAX)))
    .bind(by.identity)
    .bind(by.actor)
    .bind(reason)
    .bind(json_text(detail))
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(|e| store.err(e, "rollout transition"))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn wave_started(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    store: &Store,
    id: &RolloutId,
    pack: &str,
    version: u64,
    wave: u64,
    name: &str,
    generation: u64,
    at: i64,
) -> Result<()> {
    let detail = serde_json::json!({"wave": wave, "name": name, "generation": generation});
    record(
        tx,
        store,
        id,
        "wave.started",
        Some(wave),
        Actor {
            identity: SCHEDULER_IDENTITY,
            actor: SCHEDULER_IDENTITY,
        },
        "",
        &detail,
        at,
    )
    .await?;
    let event = NewEvent {
        kind: "rollout.wave.started".into(),
        dedupe_key: format!("rollout.wave.started:{id}:{generation}"),
        payload: serde_json::json!({
            "rollout": id.as_str(), "pack": pack, "version": version,
            "wave": wave, "name": name, "generation": generation,
        }),
    };
    insert_event(tx, store, None, &event, at).await
}

async fn rollout_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    store: &Store,
    rollout: &RolloutRecord,
    kind: &str,
    detail: &Value,
    at: i64,
) -> Result<()> {
    let event = NewEvent {
        kind: kind.into(),
        dedupe_key: format!("{kind}:{}:{}:{at}", rollout.id, rollout.generation),
        payload: serde_json::json!({
            "rollout": rollout.id.as_str(), "pack": rollout.pack, "version": rollout.version,
            "wave": rollout.wave, "detail": detail,
        }),
    };
    insert_event(tx, store, None, &event, at).await
}

fn decode_rollout(store: &Store, row: &sqlx::any::AnyRow) -> Result<RolloutRecord> {
    let get = |e| store.err(e, "rollout");
    let id: String = row.try_get("id").map_err(get)?;
    let int = |name: &str| -> Result<u64> {
        Ok(u64::try_from(row.try_get::<i64, _>(name).map_err(get)?).unwrap_or(0))
    };
    Ok(RolloutRecord {
        id: RolloutId::parse(&id).map_err(|e| StoreError::Corrupt(format!("rollout id: {e}")))?,
        pack: row.try_get("pack").map_err(get)?,
        version: int("version")?,
        spec: parse_json(
            &row.try_get::<String, _>("spec").map_err(get)?,
            "rollout spec",
        )?,
        state: row.try_get("state").map_err(get)?,
        wave: int("wave")?,
        phase: row.try_get("phase").map_err(get)?,
        generation: int("generation")?,
        approved_wave: row
            .try_get::<Option<i64>, _>("approved_wave")
            .map_err(get)?
            .map(|w| u64::try_from(w).unwrap_or(0)),
        next_at: from_millis(row.try_get("next_at").map_err(get)?),
        reason: parse_json(
            &row.try_get::<String, _>("reason").map_err(get)?,
            "rollout reason",
        )?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(get)?),
    })
}
