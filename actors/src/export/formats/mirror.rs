//! `mirror:full` and `mirror:delta`: every advisory and every VEX document the tenant
//! reads (global ones and its own), or those written since the base's generations, as
//! JSON Lines members (`advisories.jsonl`, `vex.jsonl`; see
//! [`stella_domain::export::mirror`]), read a page at a time in key order and written a
//! line at a time. The seal packs them into `mirror.tar.zst`.
//!
//! The plan fixed the generations the mirror is as of. The records are current rows, so
//! the generations are read again before and after they are: if an import moved them,
//! what the plan promised is gone and the run fails, saying so, before it stores a file
//! (run it again). Otherwise equal plans give equal bytes, retried or not.

use std::io::Write;

use stella_domain::export::mirror::{advisory_line, vex_line, MirrorSection, ADVISORIES, VEX};
use stella_store::repo::MirrorSource;
use stella_supervisor::StepError;

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
    let since = section.from.map(|g| g.advisories);
    let mut after = None;
    loop {
        let page = source.advisories(since, after.as_ref(), PAGE).await?;
        for record in &page {
            let advisory: serde_json::Value = serde_json::from_str(&record.normalized)
                .map_err(|err| StepError::abort(format!("stored advisory {}: {err}", record.id)))?;
            let change = record.change.map(|c| c.as_str());
            out.write_all(&advisory_line(
                &record.source,
                &record.id,
                &record.sha256,
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
            out.write_all(&vex_line(
                document.tenant.is_none(),
                &document.sha256,
                &document.format,
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
