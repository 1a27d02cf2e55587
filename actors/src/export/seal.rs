//! `seal`: pins what `write` wrote. The manifest `export.json` lists every written file
//! with its size and SHA-256 (canonical JSON, signed as it is into `export.json.dsse`);
//! `provenance.json` is an in-toto Statement whose subjects are those files and the
//! manifest, naming the inputs (the scans' SBOMs and attestations), signed into
//! `provenance.json.dsse`. A bundle format ([`formats::bundle`]) then packs the written
//! files and these four into one `tar.zst`, listed with the run's files (not in the
//! manifest, which it holds). Nothing here reads a clock or an id: equal plans give equal
//! bytes.

use bytes::Bytes;
use stella_domain::canonical::Digest;
use stella_domain::dsse;
use stella_domain::export::manifest::{
    provenance_statement, Dependency, ExportManifest, FileEntry, ProfileRef, MANIFEST_PAYLOAD_TYPE,
    MANIFEST_SIGNATURE_NAME, PROVENANCE_NAME, PROVENANCE_SIGNATURE_NAME,
};
use stella_domain::export::tar::{zstd_encoder, TarWriter};
use stella_store::object::Sha256Digest;
use stella_store::repo::Effect;
use stella_supervisor::{StepContext, StepError, StepOutcome};

use super::formats;
use super::plan::ExportPlan;
use super::{ExportDeps, ExportStep};

/// The manifest's signature, next to `export.json`.
pub(crate) const MANIFEST_SIGNATURE: &str = MANIFEST_SIGNATURE_NAME;
/// The provenance's signature, next to `provenance.json`.
pub(crate) const PROVENANCE_SIGNATURE: &str = PROVENANCE_SIGNATURE_NAME;

/// `seal` (exporter): the manifest, the provenance and their signatures.
pub(super) async fn seal(
    deps: &ExportDeps,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<ExportStep>, StepError> {
    let plan = ExportPlan::load(deps, ctx).await?;
    let run = ctx
        .store
        .tenant(&ctx.job.tenant)
        .export_runs()
        .get(&ctx.job.id)
        .await?
        .ok_or_else(|| StepError::abort(format!("export {} has no plan", ctx.job.id)))?;
    let written = ctx
        .store
        .tenant(&ctx.job.tenant)
        .export_files()
        .list(&ctx.job.id)
        .await?;
    let files: Vec<FileEntry> = written
        .into_iter()
        .map(|file| FileEntry {
            name: file.name,
            size: file.size_bytes,
            sha256: file.sha256,
        })
        .collect();
    let counts = run.counts.unwrap_or_default();
    let sealed = sealed(deps, &plan, &counts, files.clone())?;
    for (entry, bytes) in &sealed {
        let stored = deps.objects.put_content(Bytes::from(bytes.clone())).await?;
        debug_assert_eq!(stored.digest.to_string(), entry.sha256);
    }
    let bundle = match formats::bundle(plan.format()?) {
        Some(name) => Some(pack_bundle(deps, name, &files, &sealed, &plan).await?),
        None => None,
    };
    for entry in sealed.into_iter().map(|(entry, _)| entry).chain(bundle) {
        ctx.stage(Effect::ExportFile {
            name: entry.name,
            size_bytes: entry.size,
            sha256: entry.sha256,
        });
    }
    Ok(StepOutcome::Next(ExportStep::Distribute))
}

/// Packs the written files and the seal into one reproducible `tar.zst` named `name`
/// (sorted names, the plan's `as_of` as every entry's mtime, uid/gid 0, mode 0644; see
/// [`TarWriter`]) and stores it content-addressed: equal runs give one object. The
/// written files are copied from the object store to temporary files (checked against
/// their digests as they stream), then archived on the blocking pool, so nothing is held
/// in memory whole.
async fn pack_bundle(
    deps: &ExportDeps,
    name: &str,
    written: &[FileEntry],
    sealed: &[(FileEntry, Vec<u8>)],
    plan: &ExportPlan,
) -> Result<FileEntry, StepError> {
    let spool_err = |err: std::io::Error| {
        StepError::retry(format!("packing the bundle: {err}")).with_source(err)
    };
    let dir = tempfile::tempdir().map_err(spool_err)?;
    // (name, size, where its bytes are): a temporary file, or the seal in memory.
    let mut members: Vec<(String, u64, Member)> = Vec::new();
    for (i, file) in written.iter().enumerate() {
        let path = dir.path().join(i.to_string());
        let mut out = tokio::fs::File::create(&path).await.map_err(spool_err)?;
        let mut reader = deps
            .objects
            .get_content(&Sha256Digest::parse(&file.sha256)?)
            .await?;
        tokio::io::copy(&mut reader, &mut out)
            .await
            .map_err(|err| StepError::retry(format!("reading {}: {err}", file.name)))?;
        out.sync_all().await.map_err(spool_err)?;
        members.push((file.name.clone(), file.size, Member::File(path)));
    }
    for (entry, bytes) in sealed {
        members.push((entry.name.clone(), entry.size, Member::Bytes(bytes.clone())));
    }
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let bundle = dir.path().join("bundle");
    let target = bundle.clone();
    let mtime = u64::try_from(plan.as_of.timestamp()).unwrap_or(0);
    tokio::task::spawn_blocking(move || -> Result<(), StepError> {
        let out = std::fs::File::create(&target).map_err(spool_err)?;
        let encoder = zstd_encoder(std::io::BufWriter::new(out)).map_err(spool_err)?;
        let mut tar = TarWriter::new(encoder, mtime).map_err(bundle_error)?;
        for (name, size, member) in &members {
            match member {
                Member::File(path) => {
                    let mut file = std::fs::File::open(path).map_err(spool_err)?;
                    tar.append(name, *size, &mut file).map_err(bundle_error)?;
                }
                Member::Bytes(bytes) => tar.append_data(name, bytes).map_err(bundle_error)?,
            }
        }
        let mut out = tar
            .finish()
            .map_err(bundle_error)?
            .finish()
            .map_err(spool_err)?;
        std::io::Write::flush(&mut out).map_err(spool_err)?;
        out.into_inner()
            .map_err(|err| spool_err(err.into_error()))?
            .sync_all()
            .map_err(spool_err)
    })
    .await
    .map_err(|err| StepError::retry(format!("packing the bundle did not finish: {err}")))??;
    let stored = deps.objects.put_content_file(&bundle).await?;
    Ok(FileEntry {
        name: name.to_owned(),
        size: stored.size,
        sha256: stored.digest.to_string(),
    })
}

/// Where a bundle member's bytes are while it is packed.
enum Member {
    File(std::path::PathBuf),
    Bytes(Vec<u8>),
}

/// A member the tar writer refused: the written files break its rules, which no retry
/// changes.
fn bundle_error(err: stella_domain::export::ExportError) -> StepError {
    StepError::abort(format!("packing the bundle: {err}"))
}

/// The seal of `files` (the written files) under `plan`: `export.json`, its signature,
/// `provenance.json` and its signature.
fn sealed(
    deps: &ExportDeps,
    plan: &ExportPlan,
    counts: &serde_json::Value,
    files: Vec<FileEntry>,
) -> Result<Vec<(FileEntry, Vec<u8>)>, StepError> {
    let abort = |err: &dyn std::fmt::Display| StepError::abort(err.to_string());
    let mut manifest = ExportManifest::new(
        ProfileRef {
            name: plan.profile.clone(),
            revision: u32::try_from(plan.revision).unwrap_or(u32::MAX),
        },
        &plan.kind,
        serde_json::to_value(&plan.definition.selectors).map_err(|err| abort(&err))?,
        plan.as_of,
    );
    if let Some(counts) = counts.as_object() {
        for (name, value) in counts {
            manifest.count(name.clone(), value.as_u64().unwrap_or(0));
        }
    }
    manifest.mirror = plan.mirror.clone();
    for file in files {
        manifest.add_file(file).map_err(|err| abort(&err))?;
    }
    let manifest_bytes = manifest.to_canonical_bytes();
    let manifest_signature =
        dsse::sign(MANIFEST_PAYLOAD_TYPE, &manifest_bytes, &deps.signing_key).to_json();
    let dependencies = dependencies(plan)?;
    let statement = provenance_statement(&manifest, &dependencies).map_err(|err| abort(&err))?;
    let provenance = statement.to_canonical_bytes();
    let provenance_signature = statement.sign(&deps.signing_key).to_json();
    Ok(vec![
        (manifest.entry(), manifest_bytes),
        (
            FileEntry::of(MANIFEST_SIGNATURE, &manifest_signature),
            manifest_signature,
        ),
        (FileEntry::of(PROVENANCE_NAME, &provenance), provenance),
        (
            FileEntry::of(PROVENANCE_SIGNATURE, &provenance_signature),
            provenance_signature,
        ),
    ])
}

/// The inputs a plan's files were computed from: each scan's SBOM and attestation.
fn dependencies(plan: &ExportPlan) -> Result<Vec<Dependency>, StepError> {
    let mut out = Vec::with_capacity(plan.scans.len() * 2);
    for scan in &plan.scans {
        for (uri, sha256) in [
            (
                format!("stella:sbom/{}", scan.sbom_sha256),
                &scan.sbom_sha256,
            ),
            (
                format!("stella:attestation/{}", scan.attestation_sha256),
                &scan.attestation_sha256,
            ),
        ] {
            let digest = Digest::from_hex(sha256)
                .map_err(|err| StepError::abort(format!("scan {}: {err}", scan.id)))?;
            out.push(Dependency {
                uri,
                sha256: digest,
            });
        }
    }
    Ok(out)
}
