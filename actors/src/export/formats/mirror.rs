//! `mirror:full` and `mirror:delta`: every advisory (with its raw record, read from the
//! collection it was imported in, so the importing instance's exports can cite it) and
//! every VEX document the tenant reads (global ones and its own), or those written since
//! the base's generations, as JSON Lines members (`advisories.jsonl`, `vex.jsonl`; see
//! [`stella_domain::export::mirror`]), read a page at a time in key order and written a
//! line at a time. The seal packs them into `mirror.tar.zst`.
//!
//! The plan fixed the generations the mirror is as of. The records are current rows, so
//! the generations are read again before and after they are: if an import moved them,
//! what the plan promised is gone and the run fails, saying so, before it stores a file
//! (run it again). Otherwise equal plans give equal bytes, retried or not.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use stella_domain::canonical::sha256_hex;
use stella_domain::export::mirror::{advisory_line, vex_line, MirrorSection, ADVISORIES, VEX};
use stella_store::object::Sha256Digest;
use stella_store::repo::{MirrorAdvisory, MirrorSource};
use stella_supervisor::StepError;

use crate::export::cited::{read_spooled, spool_collection};
use crate::export::plan::store_generations;
use crate::export::write::{io_error, WriteRun};

/// Records read from the store at a time.
const PAGE: u32 = 500;

pub(super) async fn write(run: &mut WriteRun<'_, '_>) -> Result<(), StepError> {
    let plan = run.plan;
    let section = plan
        .mirror
        .as_ref()
        .ok_or_else(|| StepError::abort("the plan of a mirror export has no mirror section"))?;
    let source = run.ctx.store.tenant(&run.ctx.job.tenant).mirror();
    unmoved(&source, section).await?;
    // Every count is in the manifest, zeros too: "none changed" is said, not implied.
    let mut names = vec!["advisories", "vex_documents", "vex_statements"];
    if section.from.is_some() {
        names.extend([
            "advisories_added",
            "advisories_changed",
            "advisories_withdrawn",
        ]);
    }
    for name in names {
        run.count(name, 0);
    }

    let mut out = run.spool()?;
    let mut spools = BTreeMap::new();
    let since = section.from.map(|g| g.advisories);
    let mut after = None;
    loop {
        let page = source.advisories(since, after.as_ref(), PAGE).await?;
        let raw = raw_records(run, &mut spools, &page).await?;
        for (record, raw) in page.iter().zip(&raw) {
            let advisory: serde_json::Value = serde_json::from_str(&record.normalized)
                .map_err(|err| StepError::abort(format!("stored advisory {}: {err}", record.id)))?;
            let change = record.change.map(|c| c.as_str());
            out.write_all(&advisory_line(
                &record.source,
                &record.id,
                &record.sha256,
                raw,
                change,
                &advisory,
            ))
            .map_err(io_error)?;
            run.count("advisories", 1);
            if let Some(change) = change {
                run.count(&format!("advisories_{change}"), 1);
            }
        }
        run.advance(page.len() as u64).await?;
        match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                after = Some((last.source.clone(), last.id.clone()));
            }
            _ => break,
        }
    }
    out.flush().map_err(io_error)?;
    drop(spools);
    let advisories = out;

    let mut out = run.spool()?;
    let since = section.from.map(|g| g.vex);
    let mut after = None;
    loop {
        let page = source.vex(since, after.as_ref(), PAGE).await?;
        for document in &page {
            let statements: serde_json::Value = serde_json::from_str(&document.statements)
                .map_err(|err| {
                    StepError::abort(format!("stored VEX document {}: {err}", document.sha256))
                })?;
            let digest = Sha256Digest::parse(&document.sha256)?;
            let raw = run.deps.objects.read_content(&digest).await?;
            let raw = std::str::from_utf8(&raw).map_err(|err| {
                StepError::abort(format!(
                    "VEX document {} is not UTF-8: {err}",
                    document.sha256
                ))
            })?;
            out.write_all(&vex_line(
                document.tenant.is_none(),
                &document.sha256,
                &document.format,
                raw,
                &statements,
            ))
            .map_err(io_error)?;
            run.count("vex_documents", 1);
            run.count(
                "vex_statements",
                statements.as_array().map_or(0, |a| a.len() as u64),
            );
        }
        run.advance(page.len() as u64).await?;
        match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                let owner = last.tenant.clone().unwrap_or_default();
                after = Some((owner, last.sha256.clone()));
            }
            _ => break,
        }
    }
    out.flush().map_err(io_error)?;
    let vex = out;

    unmoved(&source, section).await?;
    run.store(advisories, ADVISORIES).await?;
    run.store(vex, VEX).await?;
    Ok(())
}

/// The raw record of each advisory of `page`, in order, read from the collections they
/// were imported in (each spooled once per run, kept in `spools`) and checked against
/// their digests.
async fn raw_records(
    run: &WriteRun<'_, '_>,
    spools: &mut BTreeMap<String, tempfile::NamedTempFile>,
    page: &[MirrorAdvisory],
) -> Result<Vec<String>, StepError> {
    let mut wanted: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for record in page {
        let (collection, entry) = record.raw.as_ref().ok_or_else(|| {
            StepError::abort(format!(
                "advisory {} of {} has no observation of its record {}",
                record.id, record.source, record.sha256
            ))
        })?;
        wanted
            .entry(collection.as_str())
            .or_default()
            .insert(entry.clone());
    }
    let mut bytes: BTreeMap<(&str, String), Vec<u8>> = BTreeMap::new();
    for (collection, names) in wanted {
        if !spools.contains_key(collection) {
            let spool = spool_collection(run.deps, collection).await?;
            spools.insert(collection.to_owned(), spool);
        }
        let path = spools[collection].path().to_owned();
        for entry in read_spooled(&path, collection, names).await? {
            bytes.insert((collection, entry.name), entry.bytes);
        }
    }
    page.iter()
        .map(|record| {
            let (collection, entry) = record.raw.as_ref().ok_or_else(|| {
                StepError::abort(format!("advisory {} has no observation", record.id))
            })?;
            let raw = bytes
                .get(&(collection.as_str(), entry.clone()))
                .ok_or_else(|| {
                    StepError::abort(format!(
                        "advisory {} is not in its collection sha256/{collection} at {entry:?}",
                        record.id
                    ))
                })?;
            if sha256_hex(raw) != record.sha256 {
                return Err(StepError::abort(format!(
                    "advisory {} at {entry:?} of sha256/{collection} does not hash to its record {}",
                    record.id, record.sha256
                )));
            }
            String::from_utf8(raw.clone()).map_err(|err| {
                StepError::abort(format!("advisory {} is not UTF-8: {err}", record.id))
            })
        })
        .collect()
}

/// Fails the run when the store's generations are not the plan's any more.
async fn unmoved(source: &MirrorSource<'_>, section: &MirrorSection) -> Result<(), StepError> {
    let now = source.generations().await?;
    let planned = store_generations(section.to);
    if now == planned {
        Ok(())
    } else {
        Err(StepError::abort(format!(
            "advisories or VEX were imported after the export was planned (generations {}/{} \
             planned, {}/{} now): the mirror it planned is gone; run the export again",
            planned.advisories, planned.vex, now.advisories, now.vex
        )))
    }
}
