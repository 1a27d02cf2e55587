//! `seal`: pins what `write` wrote. The manifest `export.json` lists every written file
//! with its size and SHA-256 (canonical JSON, signed as it is into `export.json.dsse`);
//! `provenance.json` is an in-toto Statement whose subjects are those files and the
//! manifest, naming the inputs (the scans' SBOMs and attestations), signed into
//! `provenance.json.dsse`. A bundle format (`evidence`, the mirrors) then packs every written file
//! and these four into one `tar.zst` ([`super::bundle`]), a file of the run beside them
//! (it cannot be in the manifest it holds). Nothing here reads a clock or an id: equal
//! plans give equal bytes.

use bytes::Bytes;
use stella_domain::canonical::Digest;
use stella_domain::dsse;
use stella_domain::export::manifest::{
    provenance_statement, Dependency, ExportManifest, FileEntry, ProfileRef, MANIFEST_PAYLOAD_TYPE,
    MANIFEST_SIGNATURE, PROVENANCE_NAME, PROVENANCE_SIGNATURE,
};
use stella_store::repo::Effect;
use stella_supervisor::{StepContext, StepError, StepOutcome};

use super::plan::ExportPlan;
use super::{bundle, formats, ExportDeps, ExportStep};

/// `seal` (exporter): the manifest, the provenance and their signatures, and for a
/// bundle format the bundle of them all.
pub(super) async fn seal(
    deps: &ExportDeps,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<ExportStep>, StepError> {
    let (plan, run) = ExportPlan::load(deps, ctx).await?;
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
    let mut entries = Vec::with_capacity(sealed.len() + 1);
    for (entry, bytes) in sealed {
        let stored = deps.objects.put_content(Bytes::from(bytes)).await?;
        debug_assert_eq!(stored.digest.to_string(), entry.sha256);
        entries.push(entry);
    }
    if let Some(name) = formats::bundle(plan.format()?, &plan) {
        let members: Vec<FileEntry> = files.into_iter().chain(entries.iter().cloned()).collect();
        let stored = bundle::pack(deps, &members, plan.as_of).await?;
        entries.push(FileEntry {
            name,
            size: stored.size,
            sha256: stored.digest.to_string(),
        });
    }
    for entry in entries {
        ctx.stage(Effect::ExportFile {
            name: entry.name,
            size_bytes: entry.size,
            sha256: entry.sha256,
        });
    }
    Ok(StepOutcome::Next(ExportStep::Distribute))
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
