//! Mirror bundles of advisories and VEX, for air-gapped installs: what an export reads
//! ([`MirrorSource`]: a tenant's view, in pages by key, all of it or what changed since a
//! generation) and what an import on another instance writes ([`MirrorImports`]: one
//! transaction per bundle, the forward-only rule checked inside it, and the quarantine of
//! bundles that failed their checks).
//!
//! A mirror is positioned by the exporting instance's generation counters
//! ([`Generations`]): every advisory row and VEX document carries the generation that
//! wrote it (migration 0011), so a delta reads exactly the rows written after its base.
//! Records are listed in byte order of their keys (`COLLATE "C"` on PostgreSQL, SQLite's
//! own order), so equal data gives byte-equal bundles on either engine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::{check_limit, AdvisoryRecord, ImportSummary, VexDocumentRecord, GLOBAL};
use crate::{Backend, Store, TenantId};

/// Where an instance's advisories and VEX documents are: the values of its `advisories`
/// and `vex` generation counters, which only move forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generations {
    pub advisories: i64,
    pub vex: i64,
}

impl Generations {
    /// Whether either counter of `self` is behind the same counter of `other`.
    pub fn is_behind(&self, other: &Generations) -> bool {
        self.advisories < other.advisories || self.vex < other.vex
    }
}

/// What happened to an advisory after a delta's base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// First written after the base.
    Added,
    /// Written before the base and changed after it.
    Changed,
    /// Changed after the base and now withdrawn.
    Withdrawn,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Changed => "changed",
            Change::Withdrawn => "withdrawn",
        }
    }
}

/// An advisory as a mirror carries it: the current record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorAdvisory {
    pub source: String,
    pub id: String,
    /// The raw record's SHA-256 (what scans name as their input).
    pub sha256: String,
    /// The normalized advisory, as stored (JSON text).
    pub normalized: String,
    /// Where its raw record is: the collection object and the entry in it (from its
    /// observation); `None` if the observation is missing.
    pub raw: Option<(String, String)>,
    /// What happened to it after the base, when reading a delta.
    pub change: Option<Change>,
}

/// A VEX document as a mirror carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorVex {
    /// `None`: global; else the tenant that owns it (the reading tenant).
    pub tenant: Option<String>,
    pub sha256: String,
    pub format: String,
    /// The normalized statements, as stored (a JSON array's text).
    pub statements: String,
}

/// The key a page of advisories starts after: (source, id).
pub type AdvisoryKey = (String, String);
/// The key a page of VEX documents starts after: (owner, sha256), the owner `""` for
/// global documents.
pub type VexKey = (String, String);

/// `COLLATE "C"` where the engine needs it for byte order (see the module's doc).
fn byte_order(store: &Store) -> &'static str {
    if store.backend() == Backend::Postgres {
        " COLLATE \"C\""
    } else {
        ""
    }
}

/// What a tenant's mirror exports read: every advisory (they are global) and the VEX
/// documents the tenant's scans consider (global ones and its own). Obtained from
/// [`crate::TenantScope::mirror`].
#[derive(Debug, Clone, Copy)]
pub struct MirrorSource<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl MirrorSource<'_> {
    /// The current generations.
    pub async fn generations(&self) -> Result<Generations> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, value FROM generations WHERE name = 'advisories' OR name = 'vex'",
        )
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "generations"))?;
        let mut generations = Generations::default();
        for (name, value) in rows {
            match name.as_str() {
                "advisories" => generations.advisories = value,
                _ => generations.vex = value,
            }
        }
        Ok(generations)
    }

    /// How many advisories and VEX documents a mirror since `since` (all, with `None`)
    /// holds.
    pub async fn counts(&self, since: Option<Generations>) -> Result<(u64, u64)> {
        let err = |e| self.store.err(e, "mirror counts");
        let (advisories,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM advisories WHERE generation > $1")
                .bind(since.map_or(-1, |g| g.advisories))
                .fetch_one(&self.store.pool)
                .await
                .map_err(err)?;
        let (vex,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM vex_documents \
             WHERE (tenant_id = $1 OR tenant_id = $2) AND generation > $3",
        )
        .bind(GLOBAL)
        .bind(self.tenant.as_str())
        .bind(since.map_or(-1, |g| g.vex))
        .fetch_one(&self.store.pool)
        .await
        .map_err(err)?;
        Ok((
            u64::try_from(advisories).unwrap_or(0),
            u64::try_from(vex).unwrap_or(0),
        ))
    }

    /// Up to `limit` (at most 500) advisories after `after`, in byte order of (source,
    /// id); with `since`, only those written after that `advisories` generation, each
    /// with its [`Change`].
    pub async fn advisories(
        &self,
        since: Option<i64>,
        after: Option<&AdvisoryKey>,
        limit: u32,
    ) -> Result<Vec<MirrorAdvisory>> {
        let limit = check_limit(limit)?;
        let c = byte_order(self.store);
        let sql = format!(
            "SELECT a.source, a.advisory_id, a.sha256, a.normalized, a.withdrawn, \
             a.first_generation, o.collection_sha256, o.entry \
             FROM advisories a LEFT JOIN advisory_observations o \
             ON o.source = a.source AND o.advisory_id = a.advisory_id AND o.sha256 = a.sha256 \
             WHERE a.generation > $1 \
             AND (a.source{c} > $2 OR (a.source = $2 AND a.advisory_id{c} > $3)) \
             ORDER BY a.source{c}, a.advisory_id{c} LIMIT $4"
        );
        let (after_source, after_id) = after.map_or(("", ""), |(s, i)| (s.as_str(), i.as_str()));
        let rows = sqlx::query(&sql)
            .bind(since.unwrap_or(-1))
            .bind(after_source)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "advisories"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| StoreError::Corrupt(format!("advisory row: {e}"));
                let withdrawn: Option<i64> = row.try_get("withdrawn").map_err(get)?;
                let first: i64 = row.try_get("first_generation").map_err(get)?;
                let change = since.map(|since| {
                    if withdrawn.is_some() {
                        Change::Withdrawn
                    } else if first > since {
                        Change::Added
                    } else {
                        Change::Changed
                    }
                });
                Ok(MirrorAdvisory {
                    source: row.try_get("source").map_err(get)?,
                    id: row.try_get("advisory_id").map_err(get)?,
                    sha256: row.try_get("sha256").map_err(get)?,
                    normalized: row.try_get("normalized").map_err(get)?,
                    raw: {
                        let collection: Option<String> =
                            row.try_get("collection_sha256").map_err(get)?;
                        let entry: Option<String> = row.try_get("entry").map_err(get)?;
                        collection.zip(entry)
                    },
                    change,
                })
            })
            .collect()
    }

    /// Up to `limit` (at most 500) VEX documents the tenant's scans consider, after
    /// `after`, in byte order of (owner, sha256): global ones first; with `since`, only
    /// those added after that `vex` generation (documents never change).
    pub async fn vex(
        &self,
        since: Option<i64>,
        after: Option<&VexKey>,
        limit: u32,
    ) -> Result<Vec<MirrorVex>> {
        let limit = check_limit(limit)?;
        let c = byte_order(self.store);
        let sql = format!(
            "SELECT tenant_id, sha256, format, statements FROM vex_documents \
             WHERE (tenant_id = $1 OR tenant_id = $2) AND generation > $3 \
             AND (tenant_id{c} > $4 OR (tenant_id = $4 AND sha256{c} > $5)) \
             ORDER BY tenant_id{c}, sha256{c} LIMIT $6"
        );
        // The first page starts after a key below every owner: global is `""`, so
        // `(owner > "" OR (owner = "" AND sha256 > ""))` holds for every row.
        let (after_owner, after_sha) = after.map_or(("", ""), |(o, s)| (o.as_str(), s.as_str()));
        let rows = sqlx::query(&sql)
            .bind(GLOBAL)
            .bind(self.tenant.as_str())
            .bind(since.unwrap_or(-1))
            .bind(after_owner)
            .bind(after_sha)
            .bind(limit)
            .fetch_all(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "vex documents"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| StoreError::Corrupt(format!("vex document row: {e}"));
                let owner: String = row.try_get("tenant_id").map_err(get)?;
                Ok(MirrorVex {
                    tenant: super::owner_of(owner),
                    sha256: row.try_get("sha256").map_err(get)?,
                    format: row.try_get("format").map_err(get)?,
                    statements: row.try_get("statements").map_err(get)?,
                })
            })
            .collect()
    }
}

/// A verified bundle to import: its identity, where it brings this instance, and its
/// records, each already checked by the caller.
#[derive(Debug, Clone)]
pub struct MirrorImport<'a> {
    /// Who signed the bundle: the exporting instance's key id.
    pub origin: &'a str,
    /// `mirror:full` or `mirror:delta`.
    pub kind: &'a str,
    /// SHA-256 of the bundle's `export.json`.
    pub manifest_sha256: &'a str,
    /// SHA-256 of the bundle file.
    pub bundle_sha256: &'a str,
    /// A delta's base: the `export.json` digest of the bundle it is a delta of, which
    /// must have been imported here from the same origin.
    pub base_manifest_sha256: Option<&'a str>,
    /// The exporting instance's generations the bundle is as of.
    pub generations: Generations,
    /// The manifest's counts, kept with the import record.
    pub counts: &'a Value,
    pub advisories: &'a [AdvisoryRecord],
    /// Each with the owner it gets here (`tenant`: `None` for global).
    pub vex: &'a [VexDocumentRecord],
    /// Set to import a bundle older than what was imported from its origin; audited.
    pub forced_reason: Option<&'a str>,
    /// Who imports it (for the record and the audit log).
    pub imported_by: &'a str,
}

/// One imported bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorImportRecord {
    pub seq: i64,
    pub origin: String,
    pub kind: String,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub base_manifest_sha256: Option<String>,
    pub generations: Generations,
    pub counts: Value,
    pub forced_reason: Option<String>,
    pub imported_by: String,
    pub imported_at: DateTime<Utc>,
}

/// What [`MirrorImports::import`] did. Every outcome but `Imported` wrote nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorImportOutcome {
    Imported {
        record: MirrorImportRecord,
        advisories: ImportSummary,
        /// VEX documents this instance did not have.
        vex_new: u64,
    },
    /// The latest import from the bundle's origin is this very bundle.
    AlreadyImported(MirrorImportRecord),
    /// The bundle is behind the latest import from its origin (and was not forced).
    Older(MirrorImportRecord),
    /// A delta whose base was never imported here from its origin.
    MissingBase,
}

/// A bundle set aside because it failed its checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineRecord {
    pub bundle_sha256: String,
    /// The object it was kept as.
    pub object_key: String,
    /// The member at fault, or `(the bundle's archive)` when the archive as a whole is
    /// not readable (`stella_domain::export::verify::ARCHIVE`).
    pub file: String,
    pub reason: String,
    pub quarantined_by: String,
    pub quarantined_at: DateTime<Utc>,
}

/// Mirror bundles imported into this instance, and those quarantined. Obtained from
/// [`Store::mirror_imports`]; an administrator's business (advisories are global).
#[derive(Debug, Clone, Copy)]
pub struct MirrorImports<'a> {
    pub(crate) store: &'a Store,
}

const IMPORT_COLUMNS: &str = "seq, origin, kind, manifest_sha256, bundle_sha256, \
    base_manifest_sha256, advisories_generation, vex_generation, counts, forced_reason, \
    imported_by, imported_at";

fn import_record(row: &AnyRow) -> Result<MirrorImportRecord> {
    let get = |e: sqlx::Error| StoreError::Corrupt(format!("mirror import row: {e}"));
    let counts: String = row.try_get("counts").map_err(get)?;
    Ok(MirrorImportRecord {
        seq: row.try_get("seq").map_err(get)?,
        origin: row.try_get("origin").map_err(get)?,
        kind: row.try_get("kind").map_err(get)?,
        manifest_sha256: row.try_get("manifest_sha256").map_err(get)?,
        bundle_sha256: row.try_get("bundle_sha256").map_err(get)?,
        base_manifest_sha256: row.try_get("base_manifest_sha256").map_err(get)?,
        generations: Generations {
            advisories: row.try_get("advisories_generation").map_err(get)?,
            vex: row.try_get("vex_generation").map_err(get)?,
        },
        counts: super::parse_json(&counts, "mirror import counts")?,
        forced_reason: row.try_get("forced_reason").map_err(get)?,
        imported_by: row.try_get("imported_by").map_err(get)?,
        imported_at: from_millis(row.try_get("imported_at").map_err(get)?),
    })
}

impl MirrorImports<'_> {
    /// Imports a verified bundle in one transaction: its advisories and VEX documents
    /// (as the usual imports do: unchanged records cost nothing, a change bumps the
    /// generation and appends `advisory.delta` / `vex.imported` for the scheduler), its
    /// import record and an audit entry, or nothing at all. The rules are checked inside
    /// the transaction, after it holds the advisories' lock, so two imports racing
    /// cannot both pass them: a bundle behind the latest import from its origin is
    /// refused unless forced, a delta needs its base imported from the same origin.
    pub async fn import(
        &self,
        import: &MirrorImport<'_>,
        now: DateTime<Utc>,
    ) -> Result<MirrorImportOutcome> {
        let store = self.store;
        let err = |e| store.err(e, "mirror import");
        let mut owners = Vec::with_capacity(import.vex.len());
        for document in import.vex {
            owners.push(
                document
                    .tenant
                    .as_deref()
                    .map(TenantId::parse)
                    .transpose()?,
            );
        }
        let mut tx = store.pool.begin().await.map_err(err)?;
        // Write first: the lock every advisory import takes, so imports are ordered.
        sqlx::query("UPDATE generations SET value = value WHERE name = 'advisories'")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let latest = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM mirror_imports WHERE origin = $1 \
             ORDER BY seq DESC LIMIT 1"
        ))
        .bind(import.origin)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?
        .map(|row| import_record(&row))
        .transpose()?;
        if let Some(latest) = &latest {
            if latest.manifest_sha256 == import.manifest_sha256 {
                return Ok(MirrorImportOutcome::AlreadyImported(latest.clone()));
            }
            if import.generations.is_behind(&latest.generations) && import.forced_reason.is_none() {
                return Ok(MirrorImportOutcome::Older(latest.clone()));
            }
        }
        if let Some(base) = import.base_manifest_sha256 {
            let found: Option<(i64,)> = sqlx::query_as(
                "SELECT seq FROM mirror_imports WHERE origin = $1 AND manifest_sha256 = $2 LIMIT 1",
            )
            .bind(import.origin)
            .bind(base)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            if found.is_none() {
                return Ok(MirrorImportOutcome::MissingBase);
            }
        }
        let advisories =
            super::advisories::import_in(store, &mut tx, import.advisories, now).await?;
        let mut vex_new = 0;
        for (document, owner) in import.vex.iter().zip(&owners) {
            if super::vex::import_in(store, &mut tx, owner.as_ref(), document).await? {
                vex_new += 1;
            }
        }
        let at = to_millis(now);
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO mirror_imports (origin, kind, manifest_sha256, bundle_sha256, \
             base_manifest_sha256, advisories_generation, vex_generation, counts, \
             forced_reason, imported_by, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq",
        )
        .bind(import.origin)
        .bind(import.kind)
        .bind(import.manifest_sha256)
        .bind(import.bundle_sha256)
        .bind(import.base_manifest_sha256)
        .bind(import.generations.advisories)
        .bind(import.generations.vex)
        .bind(import.counts.to_string())
        .bind(import.forced_reason)
        .bind(import.imported_by)
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        let record = MirrorImportRecord {
            seq,
            origin: import.origin.to_owned(),
            kind: import.kind.to_owned(),
            manifest_sha256: import.manifest_sha256.to_owned(),
            bundle_sha256: import.bundle_sha256.to_owned(),
            base_manifest_sha256: import.base_manifest_sha256.map(str::to_owned),
            generations: import.generations,
            counts: import.counts.clone(),
            forced_reason: import.forced_reason.map(str::to_owned),
            imported_by: import.imported_by.to_owned(),
            imported_at: from_millis(at),
        };
        audit(
            store,
            &mut tx,
            &record,
            &advisories,
            vex_new,
            latest.as_ref(),
        )
        .await?;
        tx.commit().await.map_err(err)?;
        Ok(MirrorImportOutcome::Imported {
            record,
            advisories,
            vex_new,
        })
    }

    /// Whether the bundle whose `export.json` digest is `manifest_sha256` was imported
    /// from `origin` (a delta's base; [`Self::import`] checks it again in its
    /// transaction).
    pub async fn imported(&self, origin: &str, manifest_sha256: &str) -> Result<bool> {
        let found: Option<(i64,)> = sqlx::query_as(
            "SELECT seq FROM mirror_imports WHERE origin = $1 AND manifest_sha256 = $2 LIMIT 1",
        )
        .bind(origin)
        .bind(manifest_sha256)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "mirror imports"))?;
        Ok(found.is_some())
    }

    /// Every import, oldest first.
    pub async fn list(&self) -> Result<Vec<MirrorImportRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {IMPORT_COLUMNS} FROM mirror_imports ORDER BY seq"
        ))
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "mirror imports"))?;
        rows.iter().map(import_record).collect()
    }

    /// Records a bundle set aside (kept as `object_key`) and why; a bundle quarantined
    /// before keeps its first record.
    pub async fn quarantine(&self, entry: &QuarantineRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO mirror_quarantine (bundle_sha256, object_key, file, reason, \
             quarantined_by, quarantined_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (bundle_sha256) DO NOTHING",
        )
        .bind(&entry.bundle_sha256)
        .bind(&entry.object_key)
        .bind(&entry.file)
        .bind(&entry.reason)
        .bind(&entry.quarantined_by)
        .bind(to_millis(entry.quarantined_at))
        .execute(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "mirror quarantine"))?;
        Ok(())
    }

    /// Every quarantined bundle, by digest.
    pub async fn quarantined(&self) -> Result<Vec<QuarantineRecord>> {
        let rows = sqlx::query(
            "SELECT bundle_sha256, object_key, file, reason, quarantined_by, quarantined_at \
             FROM mirror_quarantine ORDER BY bundle_sha256",
        )
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "mirror quarantine"))?;
        rows.iter()
            .map(|row| {
                let get = |e: sqlx::Error| StoreError::Corrupt(format!("quarantine row: {e}"));
                Ok(QuarantineRecord {
                    bundle_sha256: row.try_get("bundle_sha256").map_err(get)?,
                    object_key: row.try_get("object_key").map_err(get)?,
                    file: row.try_get("file").map_err(get)?,
                    reason: row.try_get("reason").map_err(get)?,
                    quarantined_by: row.try_get("quarantined_by").map_err(get)?,
                    quarantined_at: from_millis(row.try_get("quarantined_at").map_err(get)?),
                })
            })
            .collect()
    }
}

/// The audit entry of an import, in its transaction: every import changes what every
/// tenant's scans read, and a forced one says why and what it went back from.
async fn audit(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    record: &MirrorImportRecord,
    advisories: &ImportSummary,
    vex_new: u64,
    latest: Option<&MirrorImportRecord>,
) -> Result<()> {
    let mut details = serde_json::json!({
        "kind": record.kind,
        "origin": record.origin,
        "bundle_sha256": record.bundle_sha256,
        "generations": record.generations,
        "advisories": {
            "new": advisories.new,
            "changed": advisories.changed,
            "unchanged": advisories.unchanged,
        },
        "vex_new": vex_new,
    });
    if let Some(reason) = &record.forced_reason {
        details["forced"] = serde_json::json!({
            "reason": reason,
            "behind": latest
                .filter(|l| record.generations.is_behind(&l.generations))
                .map(|l| serde_json::json!({
                    "manifest_sha256": l.manifest_sha256,
                    "generations": l.generations,
                })),
        });
    }
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor, action, target, request_id, details, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(None::<String>)
    .bind(&record.imported_by)
    .bind(if record.forced_reason.is_some() {
        "import_mirror_bundle_forced"
    } else {
        "import_mirror_bundle"
    })
    .bind(&record.manifest_sha256)
    .bind(None::<String>)
    .bind(details.to_string())
    .bind(to_millis(record.imported_at))
    .execute(&mut **tx)
    .await
    .map_err(|e| store.err(e, "audit entry"))?;
    Ok(())
}
