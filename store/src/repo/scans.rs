//! The scan pipeline's records: a tenant's SBOMs, its scans with their findings, its
//! policy versions; VEX documents (global or a tenant's); the events stream; and the
//! generation counters that tell a process when its cached advisory index is stale.
//!
//! A scan's row has the scan job's id and is written in three steps, each idempotent so a
//! redelivered step changes nothing: the analysis (insert once), the verdict (replaced
//! whole with its findings until the scan is sealed, never after), the attestation digest
//! (set once, in the same transaction as the `scan.completed` event). The store holds the
//! JSON the domain produced without looking into it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::jobs::placeholders;
use crate::repo::{check_limit, numeric_cursor, page, Page};
use crate::{JobId, Store, TenantId};

/// The `tenant_id` of global rows (VEX documents from vendors, advisory events). Never a
/// tenant's id: tenant ids are non-empty.
const GLOBAL: &str = "";

/// An SBOM a tenant submitted; its bytes are the object `sha256/<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SbomRecord {
    pub sha256: String,
    pub name: String,
    pub format: String,
    pub spec_version: String,
    pub size_bytes: u64,
    pub created_at: DateTime<Utc>,
}

/// A scan as stored: what was asked, then what each step committed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanRecord {
    pub id: JobId,
    pub sbom_sha256: String,
    pub sbom_name: String,
    pub evaluated_at: DateTime<Utc>,
    /// The analyzer's output (components and SBOM summary), as the JSON text it was
    /// recorded with. It and the verdict are the large parts of the row, so they are left
    /// for the readers that need them to decode.
    pub analysis: Option<String>,
    /// The evaluator's verdict, findings included, as JSON text.
    pub verdict: Option<String>,
    pub disposition: Option<String>,
    pub counts: Option<Value>,
    /// The digests of every input, and their hash.
    pub inputs: Option<Value>,
    pub inputs_hash: Option<String>,
    /// The sealed DSSE envelope is the object `sha256/<attestation_sha256>`.
    pub attestation_sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A verdict to record, with its findings in order.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRecord {
    /// JSON text, written as given: a verdict is built as text, not as a `Value` tree
    /// (several times larger), since a large SBOM's can be tens of megabytes.
    pub verdict: String,
    pub disposition: String,
    pub counts: Value,
    pub inputs: Value,
    pub inputs_hash: String,
    pub findings: Vec<NewFinding>,
}

/// One finding to record; `finding` is its JSON text (see [`VerdictRecord::verdict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    pub ordinal: u64,
    pub vulnerability_id: String,
    pub purl: String,
    pub disposition: String,
    pub finding: String,
}

/// One finding of a scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRecord {
    pub ordinal: u64,
    pub vulnerability_id: String,
    pub purl: String,
    pub disposition: String,
    pub finding: Value,
}

/// One version of a tenant's policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRecord {
    pub version: u64,
    pub digest: String,
    pub document: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

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

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what} JSON: {e}")))
}

fn opt_json(text: Option<String>, what: &str) -> Result<Option<Value>> {
    text.map(|t| parse_json(&t, what)).transpose()
}

pub(crate) async fn insert_event<'c, E>(
    executor: E,
    store: &Store,
    tenant: Option<&TenantId>,
    event: &NewEvent,
    at: i64,
) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO events (tenant_id, kind, dedupe_key, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(tenant.map_or(GLOBAL, TenantId::as_str))
    .bind(&event.kind)
    .bind(&event.dedupe_key)
    .bind(json_text(&event.payload))
    .bind(at)
    .execute(executor)
    .await
    .map_err(|e| store.err(e, "event"))?;
    Ok(())
}

/// Bumps a generation counter inside a transaction.
pub(crate) async fn bump_generation<'c, E>(executor: E, store: &Store, name: &str) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("UPDATE generations SET value = value + 1 WHERE name = $1")
        .bind(name)
        .execute(executor)
        .await
        .map_err(|e| store.err(e, "generation"))?;
    Ok(())
}

/// The current value of a generation counter (`advisories`, `vex`): it changes whenever
/// the data it names changes, so a cache keyed by it is never stale.
pub async fn generation(store: &Store, name: &str) -> Result<i64> {
    let row: (i64,) = sqlx::query_as("SELECT value FROM generations WHERE name = $1")
        .bind(name)
        .fetch_one(&store.pool)
        .await
        .map_err(|e| store.err(e, "generation"))?;
    Ok(row.0)
}

/// A tenant's SBOMs and scans. Obtained from [`crate::TenantScope::scans`].
#[derive(Debug, Clone, Copy)]
pub struct Scans<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

const SCAN_COLUMNS: &str = "id, sbom_sha256, sbom_name, evaluated_at, analysis, verdict, \
    disposition, counts, inputs, inputs_hash, attestation_sha256, created_at, completed_at";
const SCAN_COLUMNS_WITHOUT_ANALYSIS: &str = "id, sbom_sha256, sbom_name, evaluated_at, \
    verdict, disposition, counts, inputs, inputs_hash, attestation_sha256, created_at, \
    completed_at";

impl Scans<'_> {
    fn err(&self, what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |e| self.store.err(e, what)
    }

    /// Records an SBOM the tenant submitted (once per digest; a second time is a no-op).
    pub async fn record_sbom(&self, sbom: &SbomRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sboms (tenant_id, sha256, name, format, spec_version, size_bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, sha256) DO NOTHING",
        )
        .bind(self.tenant.as_str())
        .bind(&sbom.sha256)
        .bind(&sbom.name)
        .bind(&sbom.format)
        .bind(&sbom.spec_version)
        .bind(i64::try_from(sbom.size_bytes).unwrap_or(i64::MAX))
        .bind(to_millis(sbom.created_at))
        .execute(&self.store.pool)
        .await
        .map_err(self.err("sbom"))?;
        Ok(())
    }

    /// An SBOM this tenant submitted; another tenant's is `NotFound` like a missing one.
    pub async fn sbom(&self, sha256: &str) -> Result<SbomRecord> {
        let row = sqlx::query(
            "SELECT sha256, name, format, spec_version, size_bytes, created_at FROM sboms \
             WHERE tenant_id = $1 AND sha256 = $2",
        )
        .bind(self.tenant.as_str())
        .bind(sha256)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(self.err("sbom"))?
        .ok_or_else(|| StoreError::NotFound(format!("sbom {sha256}")))?;
        let get = self.err("sbom");
        Ok(SbomRecord {
            sha256: row.try_get("sha256").map_err(&get)?,
            name: row.try_get("name").map_err(&get)?,
            format: row.try_get("format").map_err(&get)?,
            spec_version: row.try_get("spec_version").map_err(&get)?,
            size_bytes: u64::try_from(row.try_get::<i64, _>("size_bytes").map_err(&get)?)
                .unwrap_or(0),
            created_at: from_millis(row.try_get("created_at").map_err(&get)?),
        })
    }

    /// Creates the scan's row with the analysis (JSON text); a second call (a redelivered
    /// analyze step) keeps the first.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_analysis(
        &self,
        id: &JobId,
        sbom_sha256: &str,
        sbom_name: &str,
        evaluated_at: DateTime<Utc>,
        analysis: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO scans (tenant_id, id, sbom_sha256, sbom_name, evaluated_at, analysis, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(sbom_sha256)
        .bind(sbom_name)
        .bind(to_millis(evaluated_at))
        .bind(analysis)
        .bind(to_millis(now))
        .execute(&self.store.pool)
        .await
        .map_err(self.err("scan"))?;
        Ok(())
    }

    /// The scan, `None` while its analysis is not committed yet.
    pub async fn get(&self, id: &JobId) -> Result<Option<ScanRecord>> {
        self.get_columns(id, SCAN_COLUMNS).await
    }

    /// The scan without its analysis (`analysis` is `None`): for the steps that do not
    /// need it, since a large SBOM's analysis is tens of megabytes of text.
    pub async fn get_without_analysis(&self, id: &JobId) -> Result<Option<ScanRecord>> {
        self.get_columns(id, SCAN_COLUMNS_WITHOUT_ANALYSIS).await
    }

    /// The scan's analysis (JSON text), `None` while it is not committed yet.
    pub async fn analysis(&self, id: &JobId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT analysis FROM scans WHERE tenant_id = $1 AND id = $2")
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("scan analysis"))?;
        match row {
            Some(row) => row.try_get("analysis").map_err(self.err("scan analysis")),
            None => Ok(None),
        }
    }

    /// The scan without its analysis, and the SBOM summary in the analysis (JSON text,
    /// `None` while the analysis is not committed), in one read. The database extracts
    /// the summary: a status read, which clients repeat while a scan runs, then never
    /// moves a large SBOM's analysis (tens of megabytes) into this process.
    pub async fn status(&self, id: &JobId) -> Result<Option<(ScanRecord, Option<String>)>> {
        let summary = match self.store.backend() {
            crate::Backend::Postgres => "(analysis::json -> 'summary')::text",
            _ => "json_extract(analysis, '$.summary')",
        };
        let sql = format!(
            "SELECT {SCAN_COLUMNS_WITHOUT_ANALYSIS}, {summary} AS sbom_summary \
             FROM scans WHERE tenant_id = $1 AND id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("scan"))?;
        let Some(row) = row else { return Ok(None) };
        let summary = row
            .try_get("sbom_summary")
            .map_err(self.err("scan summary"))?;
        Ok(Some((self.decode(&row)?, summary)))
    }

    async fn get_columns(&self, id: &JobId, columns: &str) -> Result<Option<ScanRecord>> {
        let sql = format!("SELECT {columns} FROM scans WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("scan"))?;
        row.map(|row| self.decode(&row)).transpose()
    }

    fn decode(&self, row: &sqlx::any::AnyRow) -> Result<ScanRecord> {
        let get = self.err("scan");
        let id: String = row.try_get("id").map_err(&get)?;
        Ok(ScanRecord {
            id: JobId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            sbom_sha256: row.try_get("sbom_sha256").map_err(&get)?,
            sbom_name: row.try_get("sbom_name").map_err(&get)?,
            evaluated_at: from_millis(row.try_get("evaluated_at").map_err(&get)?),
            analysis: match row.try_column("analysis") {
                Ok(_) => row.try_get("analysis").map_err(&get)?,
                Err(_) => None,
            },
            verdict: row.try_get("verdict").map_err(&get)?,
            disposition: row.try_get("disposition").map_err(&get)?,
            counts: opt_json(row.try_get("counts").map_err(&get)?, "scan counts")?,
            inputs: opt_json(row.try_get("inputs").map_err(&get)?, "scan inputs")?,
            inputs_hash: row.try_get("inputs_hash").map_err(&get)?,
            attestation_sha256: row.try_get("attestation_sha256").map_err(&get)?,
            created_at: from_millis(row.try_get("created_at").map_err(&get)?),
            completed_at: row
                .try_get::<Option<i64>, _>("completed_at")
                .map_err(&get)?
                .map(from_millis),
        })
    }

    /// Replaces the scan's verdict and findings in one transaction. A sealed scan keeps
    /// the verdict it was sealed with: the call then changes nothing and returns `false`.
    pub async fn record_verdict(&self, id: &JobId, verdict: &VerdictRecord) -> Result<bool> {
        const CHUNK: usize = 200;
        let err = self.err("scan verdict");
        let mut tx = self.store.pool.begin().await.map_err(&err)?;
        let updated = sqlx::query(
            "UPDATE scans SET verdict = $3, disposition = $4, counts = $5, inputs = $6, inputs_hash = $7 \
             WHERE tenant_id = $1 AND id = $2 AND attestation_sha256 IS NULL",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(&verdict.verdict)
        .bind(&verdict.disposition)
        .bind(json_text(&verdict.counts))
        .bind(json_text(&verdict.inputs))
        .bind(&verdict.inputs_hash)
        .execute(&mut *tx)
        .await
        .map_err(&err)?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await.map_err(&err)?;
            return match self.get(id).await? {
                Some(_) => Ok(false),
                None => Err(StoreError::NotFound(format!("scan {id}"))),
            };
        }
        sqlx::query("DELETE FROM scan_findings WHERE tenant_id = $1 AND scan_id = $2")
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        for chunk in verdict.findings.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO scan_findings \
                 (tenant_id, scan_id, ordinal, vulnerability_id, purl, disposition, finding) VALUES {}",
                placeholders(chunk.len(), 7)
            );
            let mut query = sqlx::query(&sql);
            for finding in chunk {
                query = query
                    .bind(self.tenant.as_str())
                    .bind(id.as_str())
                    .bind(i64::try_from(finding.ordinal).unwrap_or(i64::MAX))
                    .bind(&finding.vulnerability_id)
                    .bind(&finding.purl)
                    .bind(&finding.disposition)
                    .bind(&finding.finding);
            }
            query.execute(&mut *tx).await.map_err(&err)?;
        }
        tx.commit().await.map_err(&err)?;
        Ok(true)
    }

    /// Seals the scan: sets its attestation digest and appends `event`, in one
    /// transaction, once. Returns the attestation digest the scan has: `sha256`, or the
    /// one an earlier (redelivered) step already set.
    pub async fn record_attestation(
        &self,
        id: &JobId,
        sha256: &str,
        event: &NewEvent,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let err = self.err("scan attestation");
        let mut tx = self.store.pool.begin().await.map_err(&err)?;
        let updated = sqlx::query(
            "UPDATE scans SET attestation_sha256 = $3, completed_at = $4 \
             WHERE tenant_id = $1 AND id = $2 AND attestation_sha256 IS NULL AND verdict IS NOT NULL",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(sha256)
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await
        .map_err(&err)?
        .rows_affected();
        if updated == 1 {
            insert_event(
                &mut *tx,
                self.store,
                Some(self.tenant),
                event,
                to_millis(now),
            )
            .await?;
            tx.commit().await.map_err(&err)?;
            return Ok(sha256.to_owned());
        }
        tx.rollback().await.map_err(&err)?;
        match self.get(id).await? {
            Some(ScanRecord {
                attestation_sha256: Some(existing),
                ..
            }) => Ok(existing),
            Some(_) => Err(StoreError::Conflict(format!(
                "scan {id} has no verdict to seal"
            ))),
            None => Err(StoreError::NotFound(format!("scan {id}"))),
        }
    }

    /// A page of the scan's findings, in verdict order; the cursor is the last ordinal.
    pub async fn findings(
        &self,
        id: &JobId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<FindingRecord>> {
        let after = numeric_cursor(cursor, -1, "finding")?;
        let limit = check_limit(limit)?;
        let rows = sqlx::query(
            "SELECT ordinal, vulnerability_id, purl, disposition, finding FROM scan_findings \
             WHERE tenant_id = $1 AND scan_id = $2 AND ordinal > $3 ORDER BY ordinal LIMIT $4",
        )
        .bind(self.tenant.as_str())
        .bind(id.as_str())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("scan findings"))?;
        let get = self.err("scan finding");
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let text: String = row.try_get("finding").map_err(&get)?;
            items.push(FindingRecord {
                ordinal: u64::try_from(row.try_get::<i64, _>("ordinal").map_err(&get)?)
                    .unwrap_or(0),
                vulnerability_id: row.try_get("vulnerability_id").map_err(&get)?,
                purl: row.try_get("purl").map_err(&get)?,
                disposition: row.try_get("disposition").map_err(&get)?,
                finding: parse_json(&text, "finding")?,
            });
        }
        Ok(page(items, limit, |f| f.ordinal.to_string()))
    }
}

/// A tenant's policy versions. Obtained from [`crate::TenantScope::policies`].
#[derive(Debug, Clone, Copy)]
pub struct Policies<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl Policies<'_> {
    /// Stores `document` as the next version, unless it is the active one already
    /// (same digest): then the active version is returned with `false`.
    pub async fn put(
        &self,
        document: &str,
        digest: &str,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<(PolicyRecord, bool)> {
        if let Some(active) = self.active().await? {
            if active.digest == digest {
                return Ok((active, false));
            }
        }
        let err = |e| self.store.err(e, "policy");
        // The next version is computed in the insert itself. Two writers racing for one
        // version: the primary key lets one win and the other inserts nothing; it tries
        // again and sees the winner, so every round lets at least one writer through.
        for _ in 0..64 {
            let mut tx = self.store.pool.begin().await.map_err(err)?;
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO policies (tenant_id, version, digest, document, created_by, created_at) \
                 SELECT $1, CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT), $2, $3, $4, $5 \
                 FROM policies WHERE tenant_id = $1 \
                 ON CONFLICT (tenant_id, version) DO NOTHING RETURNING version",
            )
            .bind(self.tenant.as_str())
            .bind(digest)
            .bind(document)
            .bind(created_by)
            .bind(to_millis(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            if let Some((version,)) = inserted {
                // The scheduler re-evaluates the tenant's targets on this event.
                let event = NewEvent {
                    kind: "policy.updated".into(),
                    dedupe_key: format!("policy.updated:{}:{version}", self.tenant),
                    payload: serde_json::json!({"version": version, "digest": digest}),
                };
                insert_event(
                    &mut *tx,
                    self.store,
                    Some(self.tenant),
                    &event,
                    to_millis(now),
                )
                .await?;
                tx.commit().await.map_err(err)?;
                return Ok((
                    PolicyRecord {
                        version: u64::try_from(version).unwrap_or(0),
                        digest: digest.to_owned(),
                        document: document.to_owned(),
                        created_by: created_by.to_owned(),
                        created_at: from_millis(to_millis(now)),
                    },
                    true,
                ));
            }
        }
        Err(StoreError::Conflict(
            "policy versions kept changing; try again".into(),
        ))
    }

    /// The newest version: the one scans use. `None` means the built-in default.
    pub async fn active(&self) -> Result<Option<PolicyRecord>> {
        self.select("ORDER BY version DESC LIMIT 1", None).await
    }

    pub async fn get(&self, version: u64) -> Result<PolicyRecord> {
        self.select(
            "AND version = $2",
            Some(i64::try_from(version).unwrap_or(i64::MAX)),
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("policy version {version}")))
    }

    async fn select(&self, tail: &str, version: Option<i64>) -> Result<Option<PolicyRecord>> {
        let sql = format!(
            "SELECT version, digest, document, created_by, created_at FROM policies \
             WHERE tenant_id = $1 {tail}"
        );
        let mut query = sqlx::query(&sql).bind(self.tenant.as_str());
        if let Some(version) = version {
            query = query.bind(version);
        }
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
        let rows = sqlx::query(
            "SELECT version, digest, document, created_by, created_at FROM policies \
             WHERE tenant_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
        )
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

fn decode_policy(store: &Store, row: &sqlx::any::AnyRow) -> Result<PolicyRecord> {
    let get = |e| store.err(e, "policy");
    Ok(PolicyRecord {
        version: u64::try_from(row.try_get::<i64, _>("version").map_err(get)?).unwrap_or(0),
        digest: row.try_get("digest").map_err(get)?,
        document: row.try_get("document").map_err(get)?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
    })
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
        let at = to_millis(document.created_at);
        let mut tx = self.store.pool.begin().await.map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO vex_documents (tenant_id, sha256, format, statements, statement_count, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, sha256) DO NOTHING",
        )
        .bind(tenant.map_or(GLOBAL, TenantId::as_str))
        .bind(&document.sha256)
        .bind(&document.format)
        .bind(json_text(&document.statements))
        .bind(i64::try_from(document.statement_count).unwrap_or(i64::MAX))
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        if inserted == 1 {
            bump_generation(&mut *tx, self.store, "vex").await?;
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
            insert_event(&mut *tx, self.store, tenant, &event, at).await?;
        }
        tx.commit().await.map_err(err)?;
        Ok(inserted == 1)
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
        .bind(owner.map_or(GLOBAL, TenantId::as_str))
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
            tenant: (!owner.is_empty()).then_some(owner),
            sha256: row.try_get("sha256").map_err(get)?,
            format: row.try_get("format").map_err(get)?,
            statements: parse_json(&statements, "vex statements")?,
            statement_count: u64::try_from(row.try_get::<i64, _>("statement_count").map_err(get)?)
                .unwrap_or(0),
            created_at: from_millis(row.try_get("created_at").map_err(get)?),
        })
    }
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
                    tenant: (!owner.is_empty()).then_some(owner),
                    kind: row.try_get("kind").map_err(get)?,
                    payload: parse_json(&payload, "event payload")?,
                    created_at: from_millis(row.try_get("created_at").map_err(get)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |e| e.seq.to_string()))
    }
}
