//! VEX documents: global (vendor statements, every tenant's scans see them) or a
//! tenant's own. An import bumps the `vex` generation and appends a `vex.imported` event
//! in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Any, Row, Transaction};

use crate::error::Result;
use crate::ids::{from_millis, to_millis};
use crate::repo::{
    bump_generation, insert_event, json_text, owner_column, owner_of, parse_json, NewEvent, GLOBAL,
};
use crate::{Store, TenantId};

/// A VEX document as stored: its normalized statements (JSON array).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VexDocumentRecord {
    /// `None` for a global (vendor) document.
    pub tenant: Option<String>,
    pub sha256: String,
    pub format: String,
    pub statements: Value,
    pub statement_count: u64,
    pub created_at: DateTime<Utc>,
}
/// VEX documents: global (vendor statements, every tenant's scans see them) or a
/// tenant's own. Obtained from [`Store::vex`].
#[derive(Debug, Clone, Copy)]
pub struct VexDocuments<'a> {
    pub(crate) store: &'a Store,
}

impl VexDocuments<'_> {
    /// Stores a document for `tenant` (`None`: global) once per digest; `true` if new.
    /// A new document appends a `vex.imported` event and bumps the `vex` generation.
    pub async fn import(
        &self,
        tenant: Option<&TenantId>,
        document: &VexDocumentRecord,
    ) -> Result<bool> {
        let err = |e| self.store.err(e, "vex document");
        let mut tx = self.store.pool.begin().await.map_err(err)?;
        let inserted = import_in(self.store, &mut tx, tenant, document).await?;
        tx.commit().await.map_err(err)?;
        Ok(inserted)
    }

    /// Every document a scan of `tenant` considers: the global ones and the tenant's,
    /// ordered by (scope, digest).
    pub async fn for_tenant(&self, tenant: &TenantId) -> Result<Vec<VexDocumentRecord>> {
        let rows = sqlx::query(
            "SELECT tenant_id, sha256, format, statements, statement_count, created_at \
             FROM vex_documents WHERE tenant_id = $1 OR tenant_id = $2 ORDER BY tenant_id, sha256",
        )
        .bind(GLOBAL)
        .bind(tenant.as_str())
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "vex documents"))?;
        rows.iter().map(|row| self.decode(row)).collect()
    }

    /// One document of `owner` (`None`: global) by digest.
    pub async fn get(
        &self,
        owner: Option<&TenantId>,
        sha256: &str,
    ) -> Result<Option<VexDocumentRecord>> {
        let row = sqlx::query(
            "SELECT tenant_id, sha256, format, statements, statement_count, created_at \
             FROM vex_documents WHERE tenant_id = $1 AND sha256 = $2",
        )
        .bind(owner_column(owner))
        .bind(sha256)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "vex document"))?;
        row.map(|row| self.decode(&row)).transpose()
    }

    fn decode(&self, row: &sqlx::any::AnyRow) -> Result<VexDocumentRecord> {
        let get = |e| self.store.err(e, "vex document");
        let owner: String = row.try_get("tenant_id").map_err(get)?;
        let statements: String = row.try_get("statements").map_err(get)?;
        Ok(VexDocumentRecord {
            tenant: owner_of(owner),
            sha256: row.try_get("sha256").map_err(get)?,
            format: row.try_get("format").map_err(get)?,
            statements: parse_json(&statements, "vex statements")?,
            statement_count: u64::try_from(row.try_get::<i64, _>("statement_count").map_err(get)?)
                .unwrap_or(0),
            created_at: from_millis(row.try_get("created_at").map_err(get)?),
        })
    }
}

/// Stores a document inside `tx` (see [`VexDocuments::import`]); a mirror import runs it
/// in the transaction that also writes the bundle's advisories and its import record. A
/// new document carries the generation its commit brings the `vex` counter to.
pub(crate) async fn import_in(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    tenant: Option<&TenantId>,
    document: &VexDocumentRecord,
) -> Result<bool> {
    let err = |e| store.err(e, "vex document");
    let at = to_millis(document.created_at);
    // Write first (the SQLite write lock, the PostgreSQL row lock): imports are ordered,
    // so generations are assigned in commit order.
    sqlx::query("UPDATE generations SET value = value WHERE name = 'vex'")
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    let inserted = sqlx::query(
        "INSERT INTO vex_documents \
         (tenant_id, sha256, format, statements, statement_count, created_at, generation) \
         VALUES ($1, $2, $3, $4, $5, $6, (SELECT value + 1 FROM generations WHERE name = 'vex')) \
         ON CONFLICT (tenant_id, sha256) DO NOTHING",
    )
    .bind(owner_column(tenant))
    .bind(&document.sha256)
    .bind(&document.format)
    .bind(json_text(&document.statements))
    .bind(i64::try_from(document.statement_count).unwrap_or(i64::MAX))
    .bind(at)
    .execute(&mut **tx)
    .await
    .map_err(err)?
    .rows_affected();
    if inserted == 1 {
        bump_generation(&mut **tx, store, "vex").await?;
        let scope = tenant.map_or("global", TenantId::as_str);
        let event = NewEvent {
            kind: "vex.imported".into(),
            dedupe_key: format!("vex.imported:{scope}:{}", document.sha256),
            payload: serde_json::json!({
                "sha256": document.sha256,
                "format": document.format,
                "statements": document.statement_count,
                "scope": scope,
            }),
        };
        insert_event(tx, store, tenant, &event, at).await?;
    }
    Ok(inserted == 1)
}
