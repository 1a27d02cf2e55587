//! A tenant's SBOMs and its scans with their findings.
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
use crate::repo::{
    check_limit, insert_event, json_text, numeric_cursor, page, parse_json, NewEvent, Page,
};
use crate::{JobId, Store, TenantId};

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

/// A scan's row without its analysis, and the two parts of the analysis a status read
/// shows: the SBOM's summary and the image it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanStatus {
    pub scan: ScanRecord,
    pub sbom_summary: Option<Value>,
    pub image: Option<Value>,
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

/// One finding of a scan as stored: its JSON text unparsed, as the scan recorded it (the
/// canonical JSON of the evaluator's finding, `FindingText` in the domain), for readers
/// that copy findings rather than read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    pub ordinal: u64,
    pub vulnerability_id: String,
    pub purl: String,
    pub disposition: String,
    pub text: String,
}

impl FindingRow {
    /// The finding parsed.
    pub fn parse(self) -> Result<FindingRecord> {
        Ok(FindingRecord {
            finding: parse_json(&self.text, "finding")?,
            ordinal: self.ordinal,
            vulnerability_id: self.vulnerability_id,
            purl: self.purl,
            disposition: self.disposition,
        })
    }
}

fn opt_json(text: Option<String>, what: &str) -> Result<Option<Value>> {
    text.map(|t| parse_json(&t, what)).transpose()
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

    /// How many scans completed with each disposition in each hour since `since` (the
    /// console's chart of dispositions over time), oldest hour first: counted by the
    /// database, so a tenant's busiest day is counted whole.
    pub async fn dispositions_by_hour(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, String, u64)>> {
        let rows = sqlx::query(
            "SELECT (completed_at / 3600000) * 3600000 AS hour, disposition, COUNT(*) AS n \
             FROM scans WHERE tenant_id = $1 AND completed_at >= $2 AND disposition IS NOT NULL \
             GROUP BY hour, disposition ORDER BY hour, disposition",
        )
        .bind(self.tenant.as_str())
        .bind(to_millis(since))
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.err("scans"))?;
        rows.iter()
            .map(|row| {
                let hour: i64 = row.try_get("hour").map_err(self.err("scans"))?;
                let disposition: String = row.try_get("disposition").map_err(self.err("scans"))?;
                let n: i64 = row.try_get("n").map_err(self.err("scans"))?;
                Ok((
                    from_millis(hour),
                    disposition,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
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

    /// The scan without its analysis, and the SBOM summary and image in the analysis
    /// (`None` while the analysis is not committed), in one read. The database extracts
    /// them: a status read, which clients repeat while a scan runs, then never moves a
    /// large SBOM's analysis (tens of megabytes) into this process.
    pub async fn status(&self, id: &JobId) -> Result<Option<ScanStatus>> {
        let (summary, image) = match self.store.backend() {
            crate::Backend::Postgres => (
                "(analysis::json -> 'summary')::text",
                "(analysis::json -> 'context' -> 'image')::text",
            ),
            _ => (
                "json_extract(analysis, '$.summary')",
                "json_extract(analysis, '$.context.image')",
            ),
        };
        let sql = format!(
            "SELECT {SCAN_COLUMNS_WITHOUT_ANALYSIS}, {summary} AS sbom_summary, \
             {image} AS image FROM scans WHERE tenant_id = $1 AND id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("scan"))?;
        let Some(row) = row else { return Ok(None) };
        let text = |column: &str| -> Result<Option<Value>> {
            let text: Option<String> = row.try_get(column).map_err(self.err("scan summary"))?;
            // JSON `null` reads back as the text "null" from PostgreSQL.
            Ok(text
                .and_then(|t| serde_json::from_str(&t).ok())
                .filter(|v: &Value| !v.is_null()))
        };
        Ok(Some(ScanStatus {
            sbom_summary: text("sbom_summary")?,
            image: text("image")?,
            scan: self.decode(&row)?,
        }))
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
                &mut tx,
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
        let rows = self.finding_rows(id, cursor, limit).await?;
        Ok(Page {
            items: rows
                .items
                .into_iter()
                .map(FindingRow::parse)
                .collect::<Result<_>>()?,
            next_cursor: rows.next_cursor,
        })
    }

    /// [`Self::findings`] with each finding's text as stored, unparsed.
    pub async fn finding_rows(
        &self,
        id: &JobId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<FindingRow>> {
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
            items.push(FindingRow {
                ordinal: u64::try_from(row.try_get::<i64, _>("ordinal").map_err(&get)?)
                    .unwrap_or(0),
                vulnerability_id: row.try_get("vulnerability_id").map_err(&get)?,
                purl: row.try_get("purl").map_err(&get)?,
                disposition: row.try_get("disposition").map_err(&get)?,
                text: row.try_get("finding").map_err(&get)?,
            });
        }
        Ok(page(items, limit, |f| f.ordinal.to_string()))
    }
}
