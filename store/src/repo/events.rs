//! The events stream: what happened, for whoever follows it (the scheduler re-evaluates
//! on `advisory.delta`, `vex.imported` and `policy.updated`; tenants read it through the
//! API). A writer appends its event inside its own transaction with [`insert_event`]; a
//! second append with the same key is dropped. Global events (`advisory.delta`, a
//! vendor's `vex.imported`) have no tenant, and every tenant sees them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::error::Result;
use crate::ids::from_millis;
use crate::repo::{
    check_limit, json_text, numeric_cursor, owner_column, owner_of, page, parse_json, Page, GLOBAL,
};
use crate::{Store, TenantId};

/// One entry of the events stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub seq: i64,
    /// `None` for a global event (e.g. `advisory.delta`).
    pub tenant: Option<String>,
    pub kind: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

/// An event to append; a second append with the same `dedupe_key` is dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: String,
    pub dedupe_key: String,
    pub payload: Value,
}
pub(crate) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    store: &Store,
    tenant: Option<&TenantId>,
    event: &NewEvent,
    at: i64,
) -> Result<()> {
    lock_event_order(conn, store).await?;
    insert_event_ordered(conn, store, tenant, event, at).await
}

/// [`insert_event`] in a transaction that took [`lock_event_order`] already: a loop of
/// appends takes the lock once, not once per event.
pub(crate) async fn insert_event_ordered(
    conn: &mut sqlx::AnyConnection,
    store: &Store,
    tenant: Option<&TenantId>,
    event: &NewEvent,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (tenant_id, kind, dedupe_key, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(owner_column(tenant))
    .bind(&event.kind)
    .bind(&event.dedupe_key)
    .bind(json_text(&event.payload))
    .bind(at)
    .execute(conn)
    .await
    .map_err(|e| store.err(e, "event"))?;
    Ok(())
}

/// The advisory lock (PostgreSQL) every transaction takes before it appends to the
/// events stream.
pub const EVENT_ORDER_LOCK: i64 = 0x5354_454c_4c41_4556; // "STELLAEV"

/// Makes the events stream's `seq` order its commit order, so that a follower reading
/// `seq > cursor` never moves its cursor past an event still to commit. On PostgreSQL
/// the identity value is taken at insert and the row becomes visible at commit: two
/// writers could commit out of order (an event at 100 committing after one at 101 was
/// read, and never read at all: the chaos run lost a `scan.completed` notification that
/// way). Holding one transaction-level advisory lock from just before the insert until
/// commit orders the writers; it is taken only by transactions that append events. On
/// SQLite writers are serialized already.
pub(crate) async fn lock_event_order(conn: &mut sqlx::AnyConnection, store: &Store) -> Result<()> {
    if store.backend() == crate::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(EVENT_ORDER_LOCK)
            .execute(conn)
            .await
            .map_err(|e| store.err(e, "event order lock"))?;
    }
    Ok(())
}

/// The events a tenant sees: its own and the global ones. Obtained from
/// [`crate::TenantScope::events`].
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Events<'_> {
    /// Events after `after` (a `seq`), oldest first, optionally of one kind.
    /// The newest event's sequence number (0 with none): where a live reader that wants
    /// only what happens from now on starts.
    pub async fn latest_seq(&self) -> Result<i64> {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "events"))?;
        Ok(seq)
    }

    pub async fn list(
        &self,
        after: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Page<EventRecord>> {
        let after = numeric_cursor(after, 0, "event")?;
        let limit = check_limit(limit)?;
        let rows = sqlx::query(
            "SELECT seq, tenant_id, kind, payload, created_at FROM events \
             WHERE (tenant_id = $1 OR tenant_id = $2) AND seq > $3 AND ($4 = '' OR kind = $4) \
             ORDER BY seq LIMIT $5",
        )
        .bind(self.tenant.as_str())
        .bind(GLOBAL)
        .bind(after)
        .bind(kind.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "events"))?;
        let get = |e| self.store.err(e, "event");
        let items = rows
            .iter()
            .map(|row| {
                let owner: String = row.try_get("tenant_id").map_err(get)?;
                let payload: String = row.try_get("payload").map_err(get)?;
                Ok(EventRecord {
                    seq: row.try_get("seq").map_err(get)?,
                    tenant: owner_of(owner),
                    kind: row.try_get("kind").map_err(get)?,
                    payload: parse_json(&payload, "event payload")?,
                    created_at: from_millis(row.try_get("created_at").map_err(get)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |e| e.seq.to_string()))
    }
}

impl Store {
    /// Appends one event outside any other write (a process-level fact such as a
    /// tenant's quarantine); a second append with the same key is dropped.
    pub async fn append_event(
        &self,
        tenant: Option<&TenantId>,
        event: &NewEvent,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.err(e, "transaction"))?;
        insert_event(&mut tx, self, tenant, event, crate::ids::to_millis(at)).await?;
        tx.commit().await.map_err(|e| self.err(e, "event"))
    }
}
