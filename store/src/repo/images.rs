//! A tenant's uploaded container images: which archive and which SBOM an image digest
//! stands for, so a scan can name the image (`POST /scans?image=sha256:…`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::ids::{from_millis, to_millis};
use crate::repo::{check_limit, json_text, page, parse_json, Page};
use crate::{Store, TenantId};

/// An uploaded image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageRecord {
    /// `sha256:<hex>` of the image manifest.
    pub digest: String,
    pub name: String,
    /// `docker-archive`, `oci-archive`, ...
    pub format: String,
    /// The uploaded archive: the object `sha256/<archive_sha256>`.
    pub archive_sha256: String,
    pub archive_size: u64,
    /// The SBOM Stella made of it (a tenant SBOM like any other).
    pub sbom_sha256: String,
    /// Layers, packages per type, distribution, files the analyzers skipped (the
    /// analyzer's JSON, kept as is).
    pub summary: Value,
    pub created_at: DateTime<Utc>,
}

/// A tenant's images. Obtained from [`crate::TenantScope::images`].
#[derive(Debug, Clone, Copy)]
pub struct Images<'a> {
    pub(crate) store: &'a Store,
    pub(crate) tenant: &'a TenantId,
}

const COLUMNS: &str =
    "digest, name, format, archive_sha256, archive_size, sbom_sha256, summary, created_at";

impl Images<'_> {
    fn err(&self, what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |e| self.store.err(e, what)
    }

    /// Records an image; the same digest again replaces the record (a newer analyzer may
    /// make a different SBOM of the same image).
    pub async fn record(&self, image: &ImageRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO images (tenant_id, digest, name, format, archive_sha256, archive_size, \
             sbom_sha256, summary, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant_id, digest) DO UPDATE SET name = excluded.name, \
             format = excluded.format, archive_sha256 = excluded.archive_sha256, \
             archive_size = excluded.archive_size, sbom_sha256 = excluded.sbom_sha256, \
             summary = excluded.summary, created_at = excluded.created_at",
        )
        .bind(self.tenant.as_str())
        .bind(&image.digest)
        .bind(&image.name)
        .bind(&image.format)
        .bind(&image.archive_sha256)
        .bind(i64::try_from(image.archive_size).unwrap_or(i64::MAX))
        .bind(&image.sbom_sha256)
        .bind(json_text(&image.summary))
        .bind(to_millis(image.created_at))
        .execute(&self.store.pool)
        .await
        .map_err(self.err("image"))?;
        Ok(())
    }

    /// An image of this tenant by digest (`sha256:<hex>`); another tenant's is `NotFound`
    /// like a missing one.
    pub async fn get(&self, digest: &str) -> Result<ImageRecord> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE tenant_id = $1 AND digest = $2");
        let row = sqlx::query(&sql)
            .bind(self.tenant.as_str())
            .bind(digest)
            .fetch_optional(&self.store.pool)
            .await
            .map_err(self.err("image"))?
            .ok_or_else(|| StoreError::NotFound(format!("image {digest}")))?;
        self.decode(&row)
    }

    /// The tenant's images, newest first (then by digest), a page at a time: the cursor
    /// is the last item's `<created_at millis>:<digest>`.
    pub async fn list(&self, cursor: Option<&str>, limit: u32) -> Result<Page<ImageRecord>> {
        let limit = check_limit(limit)?;
        let (at, digest) = match cursor {
            None => (i64::MAX, String::new()),
            Some(text) => text
                .split_once(':')
                .and_then(|(at, digest)| Some((at.parse::<i64>().ok()?, digest.to_owned())))
                .ok_or_else(|| {
                    StoreError::Invalid(format!("cursor {text:?} is not a valid image cursor"))
                })?,
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM images WHERE tenant_id = $1 \
             AND (created_at < $2 OR (created_at = $2 AND digest > $3)) \
             ORDER BY created_at DESC, digest LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(self.tenant.as_str())
            .bind(at)
            .bind(&digest)
            .bind(limit + 1)
            .fetch_all(&self.store.pool)
            .await
            .map_err(self.err("images"))?;
        let items = rows
            .iter()
            .map(|row| self.decode(row))
            .collect::<Result<Vec<_>>>()?;
        Ok(page(items, limit, |i| {
            format!("{}:{}", to_millis(i.created_at), i.digest)
        }))
    }

    fn decode(&self, row: &sqlx::any::AnyRow) -> Result<ImageRecord> {
        let get = self.err("image");
        Ok(ImageRecord {
            digest: row.try_get("digest").map_err(&get)?,
            name: row.try_get("name").map_err(&get)?,
            format: row.try_get("format").map_err(&get)?,
            archive_sha256: row.try_get("archive_sha256").map_err(&get)?,
            archive_size: u64::try_from(row.try_get::<i64, _>("archive_size").map_err(&get)?)
                .unwrap_or(0),
            sbom_sha256: row.try_get("sbom_sha256").map_err(&get)?,
            summary: parse_json(
                &row.try_get::<String, _>("summary").map_err(&get)?,
                "image summary",
            )?,
            created_at: from_millis(row.try_get("created_at").map_err(&get)?),
        })
    }
}
