//! `import_bundle`: a mirror bundle file into this instance's store, whole or not at all
//! (see the module above for the order of checks).

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use stella_domain::canonical::sha256_hex;
use stella_domain::dsse::PublicKey;
use stella_domain::export::manifest::{DigestReader, ExportManifest};
use stella_domain::export::mirror::{
    read_lines, AdvisoryLine, MirrorBase, MirrorKind, MirrorSection, VexLine, ADVISORIES, VEX,
};
use stella_domain::export::verify::{
    accept, read_bundle_keeping, Contents, ReadError, ReadLimits, Rejected,
};
use stella_domain::osv::{parse_record, Advisory};
use stella_domain::vex::VexStatement;
use stella_store::object::{ObjectKey, Objects};
use stella_store::repo::{
    AdvisoryRecord, Generations, MirrorImport, MirrorImportOutcome, QuarantineRecord,
    VexDocumentRecord,
};
use stella_store::{Store, StoreError, TenantId};

/// The largest seal file (`export.json`, the provenance, their signatures) read into
/// memory: a mirror's manifest lists two members and is a few hundred bytes.
const MAX_SEAL_FILE: u64 = 16 * 1024 * 1024;

/// What a mirror bundle may hold: its two members and the seal files.
fn limits() -> ReadLimits {
    ReadLimits {
        max_members: 16,
        max_seal_bytes: MAX_SEAL_FILE,
        ..ReadLimits::default()
    }
}

/// How an import is made.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions<'a> {
    /// Import a bundle older than what was imported from its origin, for this reason
    /// (kept with the import and in the audit log).
    pub force_reason: Option<&'a str>,
    /// The tenant that receives the bundle's tenant-scoped VEX documents (the exporting
    /// tenant's own); a bundle that holds some is refused without one.
    pub vex_tenant: Option<&'a TenantId>,
    /// Who imports: recorded with the import and in the audit log.
    pub imported_by: &'a str,
    pub now: DateTime<Utc>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    /// `imported`, or `already-imported` (this very bundle is the latest from its
    /// origin: nothing changed).
    pub status: &'static str,
    /// `mirror:full` or `mirror:delta`.
    pub kind: String,
    /// The key id that signed the bundle: the exporting instance.
    pub origin: String,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    /// The exporting instance's generations this instance is now as of.
    pub generations: Generations,
    pub advisories_new: u64,
    pub advisories_changed: u64,
    pub advisories_unchanged: u64,
    pub vex_documents_new: u64,
    pub forced: bool,
}

/// Why a bundle was not imported. Nothing of it was, whatever the reason.
#[derive(Debug, thiserror::Error)]
pub enum MirrorImportError {
    #[error("no trusted keys: set mirror.trusted_keys to the PEM public key of the instance that exported the bundle")]
    NoTrustedKeys,
    #[error("cannot read the bundle {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// The bundle failed its checks and was set aside.
    #[error("bundle quarantined as {object_key}: {failure}")]
    Quarantined {
        failure: Rejected,
        object_key: String,
        bundle_sha256: String,
    },
    #[error("bundle refused: it is older than what was imported from key {origin} (its generations are advisories {bundle_advisories}, vex {bundle_vex}; the latest import, export.json sha256 {latest_manifest}, is at advisories {latest_advisories}, vex {latest_vex}); versions only move forward unless forced with a reason")]
    Older {
        origin: String,
        latest_manifest: String,
        latest_advisories: i64,
        latest_vex: i64,
        bundle_advisories: i64,
        bundle_vex: i64,
    },
    #[error("bundle refused: it is a delta of export {export_id} (export.json sha256 {manifest_sha256}), which was never imported here; import that bundle first")]
    MissingBase {
        export_id: String,
        manifest_sha256: String,
    },
    #[error("bundle refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The object a quarantined bundle is kept as.
pub fn quarantine_key(bundle_sha256: &str) -> String {
    format!("mirror/quarantine/{bundle_sha256}.tar.zst")
}

/// Imports the bundle at `path`, verified with `trusted` (the exporting instances' public
/// keys). See the module's documentation for the checks and their order.
pub async fn import_bundle(
    store: &Store,
    objects: &Objects,
    trusted: &[PublicKey],
    path: &Path,
    options: ImportOptions<'_>,
) -> Result<ImportReport, MirrorImportError> {
    if trusted.is_empty() {
        return Err(MirrorImportError::NoTrustedKeys);
    }
    if options.force_reason.is_some_and(|r| r.trim().is_empty()) {
        return Err(MirrorImportError::Refused(
            "a forced import needs a reason".into(),
        ));
    }
    let reading = path.to_owned();
    let unpacked = tokio::task::spawn_blocking(move || unpack(&reading))
        .await
        .map_err(|err| MirrorImportError::Refused(format!("reading the bundle: {err}")))??;
    let checked = match &unpacked.contents {
        Ok(contents) => accept(contents, trusted),
        Err(failure) => Err(failure.clone()),
    };
    let verified = match checked {
        Ok(verified) => verified,
        Err(failure) => {
            return Err(quarantine(store, objects, path, &unpacked, failure, &options).await?)
        }
    };
    let section = mirror_section(&verified.manifest)?;
    // Said before the records are read: without its base a delta is of no use here.
    if let Some(base) = &section.base {
        if !store
            .mirror_imports()
            .imported(&verified.key_id, &base.manifest_sha256)
            .await?
        {
            return Err(missing_base(base));
        }
    }
    let vex_tenant = options.vex_tenant.map(|t| t.as_str().to_owned());
    let now = options.now;
    let spools = unpacked.spools.clone();
    let (advisories, raw, vex) =
        tokio::task::spawn_blocking(move || read_records(&spools, vex_tenant.as_deref(), now))
            .await
            .map_err(|err| MirrorImportError::Refused(format!("reading the records: {err}")))??;
    if let Some(tenant) = options.vex_tenant {
        if vex.iter().any(|d| d.tenant.is_some()) {
            store.tenants().get(tenant).await.map_err(|err| match err {
                StoreError::NotFound(_) => MirrorImportError::Refused(format!(
                    "tenant {tenant} (for the bundle's tenant VEX documents) does not exist here"
                )),
                other => other.into(),
            })?;
        }
    }
    // Each raw record is stored content-addressed, as a collection of one record (entry
    // `""`), which its observation names: read back like any imported record by the
    // exports that cite it. VEX documents as imported are stored the same way, as the
    // API's imports store them (evidence bundles carry them). Before the transaction: an
    // object nothing names is harmless, a row naming an object that is not there is not.
    for record in &raw {
        objects
            .put_content(bytes::Bytes::from(record.clone()))
            .await?;
    }
    // The bundle is kept too, content-addressed (checked to be what was read): the import
    // row names it as what the records came from.
    let stored = objects.put_content_file(path).await?;
    if stored.digest.to_string() != unpacked.bundle_sha256 {
        return Err(MirrorImportError::Refused(
            "the bundle file changed while it was imported".into(),
        ));
    }
    let counts = serde_json::to_value(&verified.manifest.counts).unwrap_or_default();
    let generations = Generations {
        advisories: section.to.advisories,
        vex: section.to.vex,
    };
    let import = MirrorImport {
        origin: &verified.key_id,
        kind: &verified.manifest.kind,
        manifest_sha256: &verified.manifest_sha256,
        bundle_sha256: &unpacked.bundle_sha256,
        base_manifest_sha256: section.base.as_ref().map(|b| b.manifest_sha256.as_str()),
        generations,
        counts: &counts,
        advisories: &advisories,
        vex: &vex,
        forced_reason: options.force_reason,
        imported_by: options.imported_by,
    };
    let report = |status, new, changed, unchanged, vex_new| ImportReport {
        status,
        kind: verified.manifest.kind.clone(),
        origin: verified.key_id.clone(),
        manifest_sha256: verified.manifest_sha256.clone(),
        bundle_sha256: unpacked.bundle_sha256.clone(),
        generations,
        advisories_new: new,
        advisories_changed: changed,
        advisories_unchanged: unchanged,
        vex_documents_new: vex_new,
        forced: options.force_reason.is_some(),
    };
    match store.mirror_imports().import(&import, now).await? {
        MirrorImportOutcome::Imported {
            advisories,
            vex_new,
            ..
        } => Ok(report(
            "imported",
            advisories.new,
            advisories.changed,
            advisories.unchanged,
            vex_new,
        )),
        MirrorImportOutcome::AlreadyImported(_) => Ok(report("already-imported", 0, 0, 0, 0)),
        MirrorImportOutcome::Older(latest) => Err(MirrorImportError::Older {
            origin: latest.origin,
            latest_manifest: latest.manifest_sha256,
            latest_advisories: latest.generations.advisories,
            latest_vex: latest.generations.vex,
            bundle_advisories: generations.advisories,
            bundle_vex: generations.vex,
        }),
        // Only a delta, which has a base, can miss it.
        MirrorImportOutcome::MissingBase => Err(section.base.as_ref().map_or_else(
            || MirrorImportError::Refused("a full bundle has no base".into()),
            missing_base,
        )),
    }
}

fn missing_base(base: &MirrorBase) -> MirrorImportError {
    MirrorImportError::MissingBase {
        export_id: base.export_id.clone(),
        manifest_sha256: base.manifest_sha256.clone(),
    }
}

/// A bundle read once: its digest, what the verifier needs of it (every member's size and
/// SHA-256, the seal files' bytes) or why it is not a readable export, and the members
/// spooled to files.
struct Unpacked {
    bundle_sha256: String,
    contents: Result<Contents, Rejected>,
    spools: BTreeMap<String, PathBuf>,
    // Holds the spools: removed when the import is done.
    _dir: tempfile::TempDir,
}

/// Reads the bundle once through the export verifier's reader, which refuses what no
/// Stella bundle holds before its bytes are read, keeping each member in a temporary
/// file as it is hashed.
fn unpack(path: &Path) -> Result<Unpacked, MirrorImportError> {
    let unreadable = |reason: String| MirrorImportError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|err| unreadable(err.to_string()))?;
    let dir = tempfile::tempdir().map_err(|err| unreadable(err.to_string()))?;
    let mut input = DigestReader::new(BufReader::new(file));
    let mut spools = BTreeMap::new();
    let read = read_bundle_keeping(&mut input, &limits(), |name| {
        let spool = dir.path().join(spools.len().to_string());
        let out = std::fs::File::create(&spool)?;
        spools.insert(name.to_owned(), spool);
        Ok(Some(BufWriter::new(out)))
    });
    let contents = match read {
        Ok(contents) => Ok(contents),
        Err(ReadError::Bundle(err)) => Err(Rejected::from(err)),
        // This host's disk, not the bundle: nothing to quarantine.
        Err(err @ ReadError::Keep { .. }) => return Err(unreadable(err.to_string())),
    };
    // The digest covers the whole file, wherever the reader stopped.
    std::io::copy(&mut input, &mut std::io::sink()).map_err(|err| unreadable(err.to_string()))?;
    let (_, bundle_sha256) = input.finish();
    Ok(Unpacked {
        bundle_sha256,
        contents,
        spools,
        _dir: dir,
    })
}

/// Keeps a bundle that failed its checks as an object, records why, and says so.
async fn quarantine(
    store: &Store,
    objects: &Objects,
    path: &Path,
    unpacked: &Unpacked,
    failure: Rejected,
    options: &ImportOptions<'_>,
) -> Result<MirrorImportError, MirrorImportError> {
    let object_key = quarantine_key(&unpacked.bundle_sha256);
    let key = ObjectKey::parse(&object_key)?;
    objects.store().put_file(&key, path).await?;
    store
        .mirror_imports()
        .quarantine(&QuarantineRecord {
            bundle_sha256: unpacked.bundle_sha256.clone(),
            object_key: object_key.clone(),
            file: failure.file().to_owned(),
            reason: failure.to_string(),
            quarantined_by: options.imported_by.to_owned(),
            quarantined_at: options.now,
        })
        .await?;
    tracing::warn!(
        bundle_sha256 = %unpacked.bundle_sha256,
        file = failure.file(),
        object = %object_key,
        "mirror bundle quarantined"
    );
    Ok(MirrorImportError::Quarantined {
        failure,
        object_key,
        bundle_sha256: unpacked.bundle_sha256.clone(),
    })
}

/// The manifest's mirror section, checked to be a mirror of the kind it says.
fn mirror_section(manifest: &ExportManifest) -> Result<MirrorSection, MirrorImportError> {
    let refused =
        |why: &str| MirrorImportError::Refused(format!("{why} (kind {:?})", manifest.kind));
    let section = manifest
        .mirror
        .clone()
        .ok_or_else(|| refused("not a mirror bundle: export.json has no mirror section"))?;
    match (manifest.kind.as_str(), section.kind, &section.base) {
        ("mirror:full", MirrorKind::Full, None) | ("mirror:delta", MirrorKind::Delta, Some(_)) => {
            Ok(section)
        }
        _ => Err(refused("the mirror section does not fit the bundle's kind")),
    }
}

/// The advisories of a bundle (as the store's records), the raw advisory records and VEX
/// documents (each once), and its VEX documents as the store's records.
type Records = (Vec<AdvisoryRecord>, Vec<String>, Vec<VexDocumentRecord>);

/// Every record of the members, checked: advisories readable by this version with
/// the id their line names and a raw record that hashes to their digest, VEX statements
/// readable, tenant documents given a tenant.
fn read_records(
    spools: &BTreeMap<String, PathBuf>,
    vex_tenant: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Records, MirrorImportError> {
    let open = |member: &str| -> Result<BufReader<std::fs::File>, MirrorImportError> {
        let path = spools
            .get(member)
            .ok_or_else(|| MirrorImportError::Refused(format!("the bundle has no {member}")))?;
        std::fs::File::open(path)
            .map(BufReader::new)
            .map_err(|err| MirrorImportError::Refused(format!("{member}: {err}")))
    };
    let refused = |err: stella_domain::export::mirror::MirrorError| {
        MirrorImportError::Refused(err.to_string())
    };
    let mut advisories = Vec::new();
    let mut raw = BTreeMap::new();
    read_lines(
        open(ADVISORIES)?,
        ADVISORIES,
        |line: &AdvisoryLine| (line.source.clone(), line.id.clone()),
        |line, _| {
            let (advisory, record) = advisory_record(line)?;
            raw.insert(advisory.sha256.clone(), record);
            advisories.push(advisory);
            Ok(())
        },
    )
    .map_err(refused)?;
    let mut vex = Vec::new();
    let mut tenant_documents = 0u64;
    read_lines(
        open(VEX)?,
        VEX,
        |line: &VexLine| (line.scope.clone(), line.sha256.clone()),
        |line, _| {
            let tenant = match line.scope.as_str() {
                "global" => None,
                "tenant" => {
                    tenant_documents += 1;
                    vex_tenant.map(str::to_owned)
                }
                other => return Err(format!("scope {other:?} is neither global nor tenant")),
            };
            check_sha256(&line.sha256)?;
            if sha256_hex(line.document.as_bytes()) != line.sha256 {
                return Err(format!(
                    "VEX document {} does not hash to its digest",
                    line.sha256
                ));
            }
            raw.insert(line.sha256.clone(), line.document);
            let statements: Vec<VexStatement> = serde_json::from_value(line.statements.clone())
                .map_err(|err| format!("VEX document {}: {err}", line.sha256))?;
            vex.push(VexDocumentRecord {
                tenant,
                sha256: line.sha256,
                format: line.format,
                statement_count: statements.len() as u64,
                statements: line.statements,
                created_at: now,
            });
            Ok(())
        },
    )
    .map_err(refused)?;
    if tenant_documents > 0 && vex_tenant.is_none() {
        return Err(MirrorImportError::Refused(format!(
            "it holds {tenant_documents} VEX documents of the exporting tenant; name the tenant to import them into (--vex-tenant)"
        )));
    }
    Ok((advisories, raw.into_values().collect(), vex))
}

/// An advisory line as the store's record (the normalized form as the exporter stored
/// it, its raw digest, and the packages it names, read with this version's types), and
/// its raw record, which must hash to the digest and be a record of the same advisory.
/// The raw record is its own collection (stored under its digest, entry `""`).
fn advisory_record(line: AdvisoryLine) -> Result<(AdvisoryRecord, String), String> {
    check_sha256(&line.sha256)?;
    if sha256_hex(line.record.as_bytes()) != line.sha256 {
        return Err(format!(
            "the raw record of advisory {} does not hash to {}",
            line.id, line.sha256
        ));
    }
    let raw = parse_record(line.record.as_bytes())
        .map_err(|err| format!("the raw record of advisory {}: {err}", line.id))?;
    if raw.id != line.id {
        return Err(format!(
            "the raw record of advisory {:?} is a record of {:?}",
            line.id, raw.id
        ));
    }
    let advisory: Advisory = serde_json::from_value(line.advisory.clone())
        .map_err(|err| format!("advisory {}: {err}", line.id))?;
    if advisory.id != line.id || line.source.is_empty() {
        return Err(format!(
            "the line names advisory {:?} of source {:?} but holds {:?}",
            line.id, line.source, advisory.id
        ));
    }
    let packages = advisory
        .packages()
        .map(|key| (key.ecosystem.osv_name().to_owned(), key.name.clone()))
        .collect();
    Ok((
        AdvisoryRecord {
            source: line.source,
            id: line.id,
            collection_sha256: line.sha256.clone(),
            sha256: line.sha256,
            entry: String::new(),
            modified: advisory.modified,
            withdrawn: advisory.withdrawn,
            normalized: line.advisory,
            packages,
        },
        line.record,
    ))
}

fn check_sha256(text: &str) -> Result<(), String> {
    if text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(format!("{text:?} is not a lowercase hex SHA-256"))
    }
}
