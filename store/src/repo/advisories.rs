//! Advisories, shared by every tenant: immutable observations of raw records, the current
//! normalized form per (source, id), and the packages each names.
//!
//! Importing is idempotent: a record whose digest is already current is unchanged and
//! costs one read; a new or changed record adds an observation, replaces the current form
//! and its package rows, and reports every package it names now or named before (the
//! `advisory.delta` the scheduler re-evaluates from). Conflicting sources stay side by
//! side: the key is (source, id), never id alone.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Any, Row, Transaction};

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::Store;

/// One record to import, already parsed and normalized by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisoryRecord {
    pub source: String,
    pub id: String,
    /// Hex SHA-256 of the raw record bytes.
    pub sha256: String,
    /// Where the raw bytes are: the collection object (`sha256/<hex>`) and the entry in it
    /// (an archive entry name, `[i]` in a JSON array, or empty for a single record).
    pub collection_sha256: String,
    pub entry: String,
    pub modified: DateTime<Utc>,
    pub withdrawn: Option<DateTime<Utc>>,
    /// The normalized advisory (JSON of the domain type).
    pub normalized: Value,
    /// `(ecosystem, normalized name)` of every package the record names.
    pub packages: Vec<(String, String)>,
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Ids (`source:id`) of new or changed records.
    pub delta_ids: Vec<String>,
    /// Packages named by new or changed records, before or after the change.
    pub delta_packages: BTreeSet<(String, String)>,
}

/// One observation of an advisory: a raw record as it was fetched, immutable. Its bytes
/// are the entry `entry` of the collection object `sha256/<collection_sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservationRecord {
    pub source: String,
    pub id: String,
    /// Hex SHA-256 of the raw record bytes.
    pub sha256: String,
    pub collection_sha256: String,
    pub entry: String,
    pub modified: DateTime<Utc>,
    pub fetched_at: DateTime<Utc>,
}

/// A stored advisory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAdvisory {
    pub source: String,
    pub id: String,
    pub sha256: String,
    pub modified: DateTime<Utc>,
    pub withdrawn: Option<DateTime<Utc>>,
    pub normalized: Value,
}

#[derive(Debug, Clone, Copy)]
pub struct Advisories<'a> {
    pub(crate) store: &'a Store,
}

impl Advisories<'_> {
    /// Imports records in one transaction: one read of the source's current digests, then
    /// multi-row statements for the new and changed records only.
    pub async fn import(
        &self,
        records: &[AdvisoryRecord],
        now: DateTime<Utc>,
    ) -> Result<ImportSummary> {
        let mut tx = self
            .store
            .pool
            .begin()
            .await
            .map_err(|e| self.store.err(e, "advisories"))?;
        let summary = import_in(self.store, &mut tx, records, now).await?;
        tx.commit()
            .await
            .map_err(|e| self.store.err(e, "advisories"))?;
        Ok(summary)
    }

    /// The current advisories naming any of `packages` (withdrawn ones included: the
    /// caller decides), ordered by (source, id).
    pub async fn for_packages(&self, packages: &[(String, String)]) -> Result<Vec<StoredAdvisory>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (ecosystem, name) in packages {
            let rows = sqlx::query(
                "SELECT a.source, a.advisory_id, a.sha256, a.modified_at, a.withdrawn, a.normalized \
                 FROM advisory_packages p JOIN advisories a \
                   ON a.source = p.source AND a.advisory_id = p.advisory_id \
                 WHERE p.ecosystem = $1 AND p.name = $2",
            )
            .bind(ecosystem)
            .bind(name)
            .fetch_all(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "advisories"))?;
            for row in &rows {
                let advisory = self.decode(row)?;
                if seen.insert((advisory.source.clone(), advisory.id.clone())) {
                    out.push(advisory);
                }
            }
        }
        out.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
        Ok(out)
    }

    /// Every current advisory, ordered by (source, id): what an index is built from.
    pub async fn all(&self) -> Result<Vec<StoredAdvisory>> {
        let rows = sqlx::query(
            "SELECT source, advisory_id, sha256, modified_at, withdrawn, normalized FROM advisories \
             ORDER BY source, advisory_id",
        )
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "advisories"))?;
        rows.iter().map(|row| self.decode(row)).collect()
    }

    /// The current digest of every advisory of `source`, by id.
    pub async fn current_digests(
        &self,
        source: &str,
    ) -> Result<std::collections::HashMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT advisory_id, sha256 FROM advisories WHERE source = $1")
                .bind(source)
                .fetch_all(&self.store.pool)
                .await
                .map_err(|e| self.store.err(e, "advisories"))?;
        Ok(rows.into_iter().collect())
    }

    /// Number of observations of one advisory (every distinct raw record seen).
    pub async fn observations(&self, source: &str, id: &str) -> Result<u64> {
        let row: (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM advisory_observations WHERE source = $1 AND advisory_id = $2",
        )
        .bind(source)
        .bind(id)
        .fetch_one(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "advisory observations"))?;
        Ok(u64::try_from(row.0).unwrap_or(0))
    }

    /// The observations of the advisories `ids` whose record digest is one of `sha256s`
    /// (hex): the exact records something was computed from (a scan's inputs name them by
    /// digest), whatever the current ones are now. Ordered by (source, id, sha256).
    pub async fn observations_of(
        &self,
        ids: &BTreeSet<String>,
        sha256s: &BTreeSet<String>,
    ) -> Result<Vec<ObservationRecord>> {
        const CHUNK: usize = 400;
        let err = |e| self.store.err(e, "advisory observations");
        // The primary key starts with the source: one indexed lookup per (source, ids),
        // and there are a handful of sources.
        let sources: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT source FROM advisory_observations ORDER BY source")
                .fetch_all(&self.store.pool)
                .await
                .map_err(err)?;
        let ids: Vec<&String> = ids.iter().collect();
        let mut out = Vec::new();
        for (source,) in &sources {
            for chunk in ids.chunks(CHUNK) {
                let list = (0..chunk.len())
                    .map(|i| format!("${}", i + 2))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT source, advisory_id, sha256, collection_sha256, entry, modified_at, fetched_at \
                     FROM advisory_observations WHERE source = $1 AND advisory_id IN ({list})"
                );
                let mut query = sqlx::query(&sql).bind(source);
                for id in chunk {
                    query = query.bind(id.as_str());
                }
                let rows = query.fetch_all(&self.store.pool).await.map_err(err)?;
                for row in &rows {
                    let get = |e| self.store.err(e, "advisory observation");
                    let sha256: String = row.try_get("sha256").map_err(get)?;
                    if !sha256s.contains(&sha256) {
                        continue;
                    }
                    out.push(ObservationRecord {
                        source: row.try_get("source").map_err(get)?,
                        id: row.try_get("advisory_id").map_err(get)?,
                        sha256,
                        collection_sha256: row.try_get("collection_sha256").map_err(get)?,
                        entry: row.try_get("entry").map_err(get)?,
                        modified: from_millis(row.try_get("modified_at").map_err(get)?),
                        fetched_at: from_millis(row.try_get("fetched_at").map_err(get)?),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.source, &a.id, &a.sha256).cmp(&(&b.source, &b.id, &b.sha256)));
        Ok(out)
    }

    fn decode(&self, row: &sqlx::any::AnyRow) -> Result<StoredAdvisory> {
        let get = |e| self.store.err(e, "advisory");
        let normalized: String = row.try_get("normalized").map_err(get)?;
        Ok(StoredAdvisory {
            source: row.try_get("source").map_err(get)?,
            id: row.try_get("advisory_id").map_err(get)?,
            sha256: row.try_get("sha256").map_err(get)?,
            modified: from_millis(row.try_get("modified_at").map_err(get)?),
            withdrawn: row
                .try_get::<Option<i64>, _>("withdrawn")
                .map_err(get)?
                .map(from_millis),
            normalized: serde_json::from_str(&normalized)
                .map_err(|e| StoreError::Corrupt(format!("advisory JSON: {e}")))?,
        })
    }
}

/// Imports records inside `tx` (see [`Advisories::import`]); a mirror import runs it in
/// the transaction that also writes the bundle's VEX documents and its import record.
/// Every row it writes carries the generation its commit brings the counter to.
pub(crate) async fn import_in(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    records: &[AdvisoryRecord],
    now: DateTime<Utc>,
) -> Result<ImportSummary> {
    const CHUNK: usize = 400;
    let at = to_millis(now);
    let err = |e| store.err(e, "advisories");
    for record in records {
        if record.source.is_empty() || record.id.is_empty() || record.sha256.len() != 64 {
            return Err(StoreError::Invalid(format!(
                "advisory {:?} from {:?} needs a source, an id and a sha256",
                record.id, record.source
            )));
        }
    }
    // Write first: on SQLite the transaction takes the write lock here (waiting for it
    // under `busy_timeout`) instead of failing a read-to-write upgrade when another
    // connection wrote since its first read; on PostgreSQL the row lock orders
    // concurrent imports, so each computes its delta against the other's result, and
    // generations are assigned in commit order.
    sqlx::query("UPDATE generations SET value = value WHERE name = 'advisories'")
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    let (current_generation,): (i64,) =
        sqlx::query_as("SELECT value FROM generations WHERE name = 'advisories'")
            .fetch_one(&mut **tx)
            .await
            .map_err(err)?;
    // The generation this import commits as, if it changes anything (then it bumps the
    // counter once, below).
    let generation = current_generation + 1;
    let sources: BTreeSet<&str> = records.iter().map(|r| r.source.as_str()).collect();
    let mut current = std::collections::HashMap::new();
    for source in sources {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT advisory_id, sha256 FROM advisories WHERE source = $1")
                .bind(source)
                .fetch_all(&mut **tx)
                .await
                .map_err(err)?;
        for (id, sha) in rows {
            current.insert((source.to_owned(), id), sha);
        }
    }
    let mut summary = ImportSummary::default();
    let mut changed: Vec<&AdvisoryRecord> = Vec::new();
    // Where each key sits in `changed`: a later record with the same key replaces it
    // there (a scan of `changed` per record made a large first import quadratic).
    let mut position: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    let mut seen = BTreeSet::new();
    for record in records {
        // The last of several records with one key in a batch wins, like sequential
        // imports would.
        let key = (record.source.clone(), record.id.clone());
        match current.get(&key) {
            Some(sha) if *sha == record.sha256 => summary.unchanged += 1,
            Some(_) => summary.changed += 1,
            None if seen.contains(&key) => summary.changed += 1,
            None => summary.new += 1,
        }
        if current.get(&key) != Some(&record.sha256) {
            summary
                .delta_ids
                .push(format!("{}:{}", record.source, record.id));
            match position.entry((record.source.as_str(), record.id.as_str())) {
                std::collections::hash_map::Entry::Occupied(at) => changed[*at.get()] = record,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(changed.len());
                    changed.push(record);
                }
            }
        }
        seen.insert(key);
    }
    for chunk in changed.chunks(CHUNK) {
        // Packages named before the change are part of the delta (new records named
        // none), and are replaced below.
        let existing: Vec<&&AdvisoryRecord> = chunk
            .iter()
            .filter(|r| current.contains_key(&(r.source.clone(), r.id.clone())))
            .collect();
        for record in &existing {
            let before: Vec<(String, String)> = sqlx::query_as(
                "SELECT ecosystem, name FROM advisory_packages WHERE source = $1 AND advisory_id = $2",
            )
            .bind(&record.source)
            .bind(&record.id)
            .fetch_all(&mut **tx)
            .await
            .map_err(err)?;
            summary.delta_packages.extend(before);
        }
        let sql = format!(
            "INSERT INTO advisory_observations \
             (source, advisory_id, sha256, collection_sha256, entry, modified_at, fetched_at) \
             VALUES {} ON CONFLICT (source, advisory_id, sha256) DO NOTHING",
            crate::repo::jobs::placeholders(chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for record in chunk {
            query = query
                .bind(&record.source)
                .bind(&record.id)
                .bind(&record.sha256)
                .bind(&record.collection_sha256)
                .bind(&record.entry)
                .bind(to_millis(record.modified))
                .bind(at);
        }
        query.execute(&mut **tx).await.map_err(err)?;
        for record in &existing {
            sqlx::query("DELETE FROM advisory_packages WHERE source = $1 AND advisory_id = $2")
                .bind(&record.source)
                .bind(&record.id)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
        }
        let packages: BTreeSet<(&str, &str, &str, &str)> = chunk
            .iter()
            .flat_map(|r| {
                r.packages
                    .iter()
                    .map(|(e, n)| (e.as_str(), n.as_str(), r.source.as_str(), r.id.as_str()))
            })
            .collect();
        let packages: Vec<_> = packages.into_iter().collect();
        for rows in packages.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO advisory_packages (ecosystem, name, source, advisory_id) VALUES {}",
                crate::repo::jobs::placeholders(rows.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for (ecosystem, name, source, id) in rows {
                query = query.bind(*ecosystem).bind(*name).bind(*source).bind(*id);
                summary
                    .delta_packages
                    .insert(((*ecosystem).to_owned(), (*name).to_owned()));
            }
            query.execute(&mut **tx).await.map_err(err)?;
        }
        let sql = format!(
            "INSERT INTO advisories \
             (source, advisory_id, sha256, modified_at, withdrawn, normalized, updated_at, \
              generation, first_generation) \
             VALUES {} ON CONFLICT (source, advisory_id) DO UPDATE SET \
             sha256 = excluded.sha256, modified_at = excluded.modified_at, \
             withdrawn = excluded.withdrawn, normalized = excluded.normalized, \
             updated_at = excluded.updated_at, generation = excluded.generation",
            crate::repo::jobs::placeholders(chunk.len(), 9)
        );
        let mut query = sqlx::query(&sql);
        for record in chunk {
            query = query
                .bind(&record.source)
                .bind(&record.id)
                .bind(&record.sha256)
                .bind(to_millis(record.modified))
                .bind(record.withdrawn.map(to_millis))
                .bind(record.normalized.to_string())
                .bind(at)
                .bind(generation)
                .bind(generation);
        }
        query.execute(&mut **tx).await.map_err(err)?;
    }
    if !changed.is_empty() {
        // The delta, once per import that changed anything, for the scheduler; the
        // generation tells every process its cached advisory index is stale.
        // Under the lock taken first, so the counter is now `generation`.
        crate::repo::bump_generation(&mut **tx, store, "advisories").await?;
        let event = crate::repo::NewEvent {
            kind: "advisory.delta".into(),
            dedupe_key: format!("advisory.delta:{generation}"),
            payload: serde_json::json!({
                "generation": generation,
                "advisories": summary.delta_ids,
                "packages": summary
                    .delta_packages
                    .iter()
                    .map(|(ecosystem, name)| format!("{ecosystem}/{name}"))
                    .collect::<Vec<_>>(),
            }),
        };
        crate::repo::insert_event(tx, store, None, &event, at).await?;
    }
    Ok(summary)
}
