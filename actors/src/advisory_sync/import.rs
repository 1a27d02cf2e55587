//! The fetcher's work: import an advisory collection (an OSV zip such as `all.zip`, a
//! JSON array, or one record) into the store. Every record is parsed first (one bad record
//! rejects the import, naming the archive entry and the JSON pointer); the collection's
//! raw bytes are stored whole, content-addressed (`sha256/<hex>`, one object however many
//! records), before the observations (record digest, collection digest, entry) and the
//! normalized forms are committed in one transaction: a crash leaves at most an unused
//! object, never an observation without its bytes.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;

use stella_domain::osv::{
    parse_record, visit_collection, Advisory, CollectionError, Limits, RawEntry,
};
use stella_domain::InputError;
use stella_store::object::{ContentRef, Objects, Sha256Digest};
use stella_store::repo::AdvisoryRecord;
use stella_store::{Store, StoreError};

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Collection(#[from] CollectionError),
    #[error("record {entry}: {error}")]
    Record { entry: String, error: InputError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub source: String,
    pub records: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Packages named by new or changed records (the `advisory.delta`), as
    /// `ecosystem/name`.
    pub delta_packages: Vec<String>,
}

/// Where a collection's bytes are: in memory (an HTTP upload, bounded by the body limit)
/// or in a file (a download, bounded only by `outbound.max_bytes`).
#[derive(Debug, Clone)]
pub enum Collection {
    Bytes(Bytes),
    File(PathBuf),
}

/// Every record of a collection, parsed, with its digest; the first bad one refuses all.
/// The collection is read one record at a time ([`visit_collection`]): what stays in
/// memory is the parsed records, never the inflated archive.
fn parse_collection(
    collection: &Collection,
    limits: Limits,
) -> Result<Vec<(String, Advisory, String)>, ImportError> {
    let mut parsed = Vec::new();
    let mut visit = |entry: RawEntry| {
        let advisory = parse_record(&entry.bytes).map_err(|error| ImportError::Record {
            entry: entry.name.clone(),
            error,
        })?;
        let sha256 = stella_domain::canonical::sha256_hex(&entry.bytes);
        parsed.push((entry.name, advisory, sha256));
        Ok::<(), ImportError>(())
    };
    match collection {
        Collection::Bytes(bytes) => {
            visit_collection(std::io::Cursor::new(bytes.as_ref()), limits, &mut visit)?;
        }
        Collection::File(path) => {
            let file = std::fs::File::open(path).map_err(|err| {
                ImportError::Collection(CollectionError::BadEntry {
                    name: String::new(),
                    reason: format!("cannot read the downloaded collection: {err}"),
                })
            })?;
            visit_collection(std::io::BufReader::new(file), limits, &mut visit)?;
        }
    }
    Ok(parsed)
}

/// Imports `bytes` (a collection) from `source`.
pub async fn import_advisories(
    store: &Store,
    objects: &Objects,
    source: &str,
    bytes: &[u8],
    limits: Limits,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let collection = Collection::Bytes(Bytes::copy_from_slice(bytes));
    import_collection(store, objects, source, collection, limits, now).await
}

/// Imports a collection from `source`.
pub async fn import_collection(
    store: &Store,
    objects: &Objects,
    source: &str,
    collection: Collection,
    limits: Limits,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    if source.trim().is_empty() || source.len() > 200 {
        return Err(ImportError::Record {
            entry: String::new(),
            error: InputError::new("", "the source name must be 1-200 characters"),
        });
    }
    // Unpacking and parsing a collection (an `all.zip` is hundreds of MB) is CPU work:
    // it runs on the blocking pool, not on the caller's (actor or HTTP) thread.
    let reading = collection.clone();
    let parsed = tokio::task::spawn_blocking(move || parse_collection(&reading, limits))
        .await
        .map_err(|err| ImportError::Record {
            entry: String::new(),
            error: InputError::new("", format!("parsing the collection did not finish: {err}")),
        })??;
    let current = store.advisories().current_digests(source).await?;
    let any_change = parsed
        .iter()
        .any(|(_, advisory, sha256)| current.get(&advisory.id) != Some(sha256));
    let collection_sha256 = match (&collection, any_change) {
        (Collection::Bytes(bytes), true) => objects.put_content(bytes.clone()).await?.digest,
        (Collection::File(path), true) => objects.put_content_file(path).await?.digest,
        (Collection::Bytes(bytes), false) => Sha256Digest::of(bytes),
        (Collection::File(path), false) => ContentRef::of_file(path).await?.digest,
    }
    .to_string();
    let mut records = Vec::with_capacity(parsed.len());
    for (entry, advisory, sha256) in parsed {
        let packages = advisory
            .packages()
            .map(|key| (key.ecosystem.osv_name().to_owned(), key.name.clone()))
            .collect();
        records.push(AdvisoryRecord {
            source: source.to_owned(),
            id: advisory.id.clone(),
            sha256,
            collection_sha256: collection_sha256.clone(),
            entry,
            modified: advisory.modified,
            withdrawn: advisory.withdrawn,
            normalized: serde_json::to_value(&advisory).unwrap_or_default(),
            packages,
        });
    }
    let summary = store.advisories().import(&records, now).await?;
    Ok(ImportReport {
        source: source.to_owned(),
        records: records.len() as u64,
        new: summary.new,
        changed: summary.changed,
        unchanged: summary.unchanged,
        delta_packages: summary
            .delta_packages
            .into_iter()
            .map(|(ecosystem, name)| format!("{ecosystem}/{name}"))
            .collect(),
    })
}
