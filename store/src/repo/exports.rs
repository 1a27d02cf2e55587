//! A tenant's export profiles (immutable per revision) and the files its export runs
//! wrote. A run is an `export` job; its files are recorded by the step that wrote them,
//! as staged effects ([`Effect::ExportFile`](super::Effect::ExportFile)), so they commit
//! with that step's outcome and once per name.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::{check_limit, page, text_cursor, Page};
use crate::{JobId, Store, TenantId};

/// One revision of an export profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportProfileRecord {
    pub name: String,
    pub revision: u64,
    /// `json:policy`, `csv`, `sarif`, ... (the exporter checks it).
    pub kind: String,
    /// Canonical JSON of the selectors, options, distribution and retention.
    pub definition: String,
    /// Hex SHA-256 of `definition` and `kind` (see [`ExportProfiles::put`]).
    pub digest: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A profile revision to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExportProfile<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub definition: &'a str,
    pub digest: &'a str,
    pub created_by: &'a str,
}

/// A file an export run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportFileRecord {
    pub name: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// A tenant's export profiles. Obtained from [`crate::TenantScope::export_profiles`].
#[derive(Debug, Clone, Copy)]
pub struct ExportProfiles<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

const PROFILE_COLUMNS: &str = "name, revision, kind, definition, digest, created_by, created_at";

fn profile(row: &AnyRow) -> Result<ExportProfileRecord> {
    let get = |e: sqlx::Error| StoreError::Corrupt(format!("export profile row: {e}"));
    Ok(ExportProfileRecord {
        name: row.try_get("name").map_err(get)?,
        revision: u64::try_from(row.try_get::<i64, _>("revision").map_err(get)?).unwrap_or(0),
        kind: row.try_get("kind").map_err(get)?,
        definition: row.try_get("definition").map_err(get)?,
        digest: row.try_get("digest").map_err(get)?,
        created_by: row.try_get("created_by").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
    })
}

/// Whether `name` is a valid profile name: 1-100 characters of a-z, 0-9, `-`, `_`, `.`,
/// starting with a letter or digit (it appears in URLs and file names). The exporter
/// refuses other names when a profile is created; a list cursor must be one.
pub fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Writers racing for one revision retry at most this often; each round lets at least one
/// through, so only a storm of concurrent edits of one profile can exhaust it.
const PUT_ROUNDS: usize = 64;

impl ExportProfiles<'_> {
    /// Stores `new` as the profile's next revision, unless its latest revision has the
    /// same digest: then that revision is returned with `false`.
    pub async fn put(
        &self,
        new: &NewExportProfile<'_>,
        now: DateTime<Utc>,
    ) -> Result<(ExportProfileRecord, bool)> {
        let err = |e| self.store.err(e, "export profile");
        for _ in 0..PUT_ROUNDS {
            if let Some(latest) = self.latest(new.name).await? {
                if latest.digest == new.digest {
                    return Ok((latest, false));
                }
            }
            // The next revision is computed in the insert; the primary key lets one of two
            // racing writers win, and the other tries again and sees the winner.
            let inserted = sqlx::query(&format!(
                "INSERT INTO export_profiles (tenant_id, name, revision, kind, definition, digest, \
                     created_by, created_at) \
                 SELECT $1, $2, CAST(COALESCE(MAX(revision), 0) + 1 AS BIGINT), $3, $4, $5, $6, $7 \
                 FROM export_profiles WHERE tenant_id = $1 AND name = $2 \
                 ON CONFLICT (tenant_id, name, revision) DO NOTHING RETURNING {PROFILE_COLUMNS}"
            ))
            .bind(self.tenant.as_str())
            .bind(new.name)
            .bind(new.kind)
            .bind(new.definition)
            .bind(new.digest)
            .bind(new.created_by)
            .bind(to_millis(now))
            .fetch_optional(&self.store.pool)
            .await
            .map_err(err)?;
            if let Some(row) = inserted {
                return Ok((profile(&row)?, true));
            }
        }
        Err(StoreError::Conflict(format!(
            "export profile {:?} is being changed by many writers at once; try again",
            new.name
        )))
    }

    /// The profile's newest revision.
    pub async fn latest(&self, name: &str) -> Result<Option<ExportProfileRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {PROFILE_COLUMNS} FROM export_profiles WHERE tenant_id = $1 AND name = $2 \
             ORDER BY revision DESC LIMIT 1"
        ))
        .bind(self.tenant.as_str())
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "export profile"))?;
        row.as_ref().map(profile).transpose()
    }

    /// One revision of the profile.
    pub async fn revision(&self, name: &str, revision: u64) -> Result<ExportProfileRecord> {
        let row = sqlx::query(&format!(
            "SELECT {PROFILE_COLUMNS} FROM export_profiles \
             WHERE tenant_id = $1 AND name = $2 AND revision = $3"
        ))
        .bind(self.tenant.as_str())
        .bind(name)
        .bind(i64::try_from(revision).unwrap_or(i64::MAX))
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "export profile"))?;
        match row {
            Some(row) => profile(&row),
            None => Err(StoreError::NotFound(format!(
                "export profile {name:?} revision {revision}"
            ))),
        }
    }

    /// Every revision of the profile, oldest first.
    pub async fn revisions(&self, name: &str) -> Result<Vec<ExportProfileRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROFILE_COLUMNS} FROM export_profiles WHERE tenant_id = $1 AND name = $2 \
             ORDER BY revision"
        ))
        .bind(self.tenant.as_str())
        .bind(name)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "export profiles"))?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(format!("export profile {name:?}")));
        }
        rows.iter().map(profile).collect()
    }

    /// The newest revision of each profile, by name.
    pub async fn list(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<ExportProfileRecord>> {
        let limit = check_limit(limit)?;
        let after = text_cursor(cursor, "export profile", is_profile_name)?;
        let rows = sqlx::query(&format!(
            "SELECT {PROFILE_COLUMNS} FROM export_profiles p WHERE tenant_id = $1 AND name > $2 \
             AND revision = (SELECT MAX(revision) FROM export_profiles q \
                             WHERE q.tenant_id = p.tenant_id AND q.name = p.name) \
             ORDER BY name LIMIT $3"
        ))
        .bind(self.tenant.as_str())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "export profiles"))?;
        let records = rows.iter().map(profile).collect::<Result<Vec<_>>>()?;
        Ok(page(records, limit, |r| r.name.clone()))
    }
}

/// The files of a tenant's export runs. Obtained from [`crate::TenantScope::export_files`].
#[derive(Debug, Clone, Copy)]
pub struct ExportFiles<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

fn file(row: &AnyRow) -> Result<ExportFileRecord> {
    let get = |e: sqlx::Error| StoreError::Corrupt(format!("export file row: {e}"));
    Ok(ExportFileRecord {
        name: row.try_get("name").map_err(get)?,
        size_bytes: u64::try_from(row.try_get::<i64, _>("size_bytes").map_err(get)?).unwrap_or(0),
        sha256: row.try_get("sha256").map_err(get)?,
        created_at: from_millis(row.try_get("created_at").map_err(get)?),
    })
}

impl ExportFiles<'_> {
    /// The run's files, by name.
    pub async fn list(&self, export: &JobId) -> Result<Vec<ExportFileRecord>> {
        let rows = sqlx::query(
            "SELECT name, size_bytes, sha256, created_at FROM export_files \
             WHERE tenant_id = $1 AND export_id = $2 ORDER BY name",
        )
        .bind(self.tenant.as_str())
        .bind(export.as_str())
        .fetch_all(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "export files"))?;
        rows.iter().map(file).collect()
    }

    /// One file of the run.
    pub async fn get(&self, export: &JobId, name: &str) -> Result<ExportFileRecord> {
        let row = sqlx::query(
            "SELECT name, size_bytes, sha256, created_at FROM export_files \
             WHERE tenant_id = $1 AND export_id = $2 AND name = $3",
        )
        .bind(self.tenant.as_str())
        .bind(export.as_str())
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "export file"))?;
        match row {
            Some(row) => file(&row),
            None => Err(StoreError::NotFound(format!(
                "file {name:?} of export {export}"
            ))),
        }
    }
}

/// What an export run's plan fixed, and how far its writers are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRunRecord {
    /// The plan, an object in the object store, by its hex SHA-256.
    pub plan_sha256: String,
    pub items_total: u64,
    pub items_done: u64,
    /// What the writers wrote, by count name (JSON object), once they are done.
    pub counts: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// A tenant's export runs beyond their job rows. Obtained from
/// [`crate::TenantScope::export_runs`]; rows are written by the run's plan step (a staged
/// [`Effect::ExportPlanned`](super::Effect::ExportPlanned)).
#[derive(Debug, Clone, Copy)]
pub struct ExportRuns<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

impl ExportRuns<'_> {
    /// The run's plan and progress; `None` before its plan step committed.
    pub async fn get(&self, export: &JobId) -> Result<Option<ExportRunRecord>> {
        let row = sqlx::query(
            "SELECT plan_sha256, items_total, items_done, counts, created_at FROM export_runs \
             WHERE tenant_id = $1 AND export_id = $2",
        )
        .bind(self.tenant.as_str())
        .bind(export.as_str())
        .fetch_optional(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "export run"))?;
        let Some(row) = row else { return Ok(None) };
        let get = |e: sqlx::Error| StoreError::Corrupt(format!("export run row: {e}"));
        let count = |column: &str| -> Result<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(column).map_err(get)?).unwrap_or(0))
        };
        Ok(Some(ExportRunRecord {
            plan_sha256: row.try_get("plan_sha256").map_err(get)?,
            items_total: count("items_total")?,
            items_done: count("items_done")?,
            counts: row
                .try_get::<Option<String>, _>("counts")
                .map_err(get)?
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("export run counts: {e}")))?,
            created_at: from_millis(row.try_get("created_at").map_err(get)?),
        }))
    }

    /// Records what the run's writers wrote (a JSON object of counts). Written by the
    /// write step before its outcome commits; a function of the plan, so a redelivered
    /// step writes the same again.
    pub async fn set_counts(&self, export: &JobId, counts: &serde_json::Value) -> Result<()> {
        sqlx::query("UPDATE export_runs SET counts = $3 WHERE tenant_id = $1 AND export_id = $2")
            .bind(self.tenant.as_str())
            .bind(export.as_str())
            .bind(counts.to_string())
            .execute(&self.store.pool)
            .await
            .map_err(|e| self.store.err(e, "export run"))?;
        Ok(())
    }

    /// Records that the run's writers have done `done` items. Progress only moves
    /// forward (a redelivered step that starts over does not move it back) and never
    /// past the plan's total; outside any step's transaction, it is advice for people.
    pub async fn progress(&self, export: &JobId, done: u64) -> Result<()> {
        let done = i64::try_from(done).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE export_runs SET items_done = CASE WHEN $3 > items_total THEN items_total \
             ELSE $3 END WHERE tenant_id = $1 AND export_id = $2 AND items_done < $3",
        )
        .bind(self.tenant.as_str())
        .bind(export.as_str())
        .bind(done)
        .execute(&self.store.pool)
        .await
        .map_err(|e| self.store.err(e, "export run"))?;
        Ok(())
    }
}
