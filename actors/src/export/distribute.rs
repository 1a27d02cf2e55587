//! `distribute`: copies a sealed run's files where its profile sends them. Download-only
//! runs have nothing to copy; `objects` runs copy every file to
//! `tenants/<tenant>/<prefix>/<export id>/<file>`; `destination` runs to
//! `<destination prefix>/<tenant>/<prefix>/<export id>/<file>` in the operator's folder or
//! bucket, if it is still open to the tenant. A copy already there (same key, same size)
//! is left alone, so a retried step leaves one object per file.

use serde_json::json;
use stella_store::object::{ObjectKey, Sha256Digest};
use stella_store::repo::{Effect, NewEvent};
use stella_supervisor::{StepContext, StepError, StepOutcome};

use super::plan::ExportPlan;
use super::profile::unknown_destination;
use super::{Distribution, ExportDeps, ExportStep};

/// `distribute` (exporter): the copies, then the run's result.
pub(super) async fn distribute(
    deps: &ExportDeps,
    ctx: &mut StepContext<'_>,
) -> Result<StepOutcome<ExportStep>, StepError> {
    let (plan, run) = ExportPlan::load(deps, ctx).await?;
    let files = ctx
        .store
        .tenant(&ctx.job.tenant)
        .export_files()
        .list(&ctx.job.id)
        .await?;
    let mut copies = Vec::new();
    match &plan.definition.distribution {
        Distribution::Download => {}
        Distribution::Objects { prefix } => {
            for file in &files {
                let key = ObjectKey::tenant(
                    &ctx.job.tenant,
                    &format!("{prefix}/{}/{}", ctx.job.id, file.name),
                )?;
                let digest = Sha256Digest::parse(&file.sha256)?;
                deps.objects
                    .copy_content_to(&digest, file.size_bytes, &key)
                    .await?;
                copies.push(key.to_string());
            }
        }
        Distribution::Destination { name, prefix } => {
            // Checked again: the settings may have changed since the profile was stored.
            let destination = deps
                .destinations
                .for_tenant(name, &ctx.job.tenant)
                .ok_or_else(|| StepError::abort(unknown_destination(name)))?;
            for file in &files {
                let key = destination.key(
                    &ctx.job.tenant,
                    prefix.as_deref(),
                    ctx.job.id.as_str(),
                    &file.name,
                )?;
                let digest = Sha256Digest::parse(&file.sha256)?;
                deps.objects
                    .copy_content_into(&digest, file.size_bytes, destination.store.as_ref(), &key)
                    .await
                    .map_err(|err| {
                        StepError::store(
                            format_args!(
                                "copying to export destination {name} ({})",
                                destination.place()
                            ),
                            err,
                        )
                    })?;
                copies.push(format!("{name}:{key}"));
            }
        }
    }
    let manifest = files
        .iter()
        .find(|file| file.name == stella_domain::export::manifest::MANIFEST_NAME)
        .map(|file| file.sha256.clone());
    let result = json!({
        "profile": plan.profile,
        "revision": plan.revision,
        "kind": plan.kind,
        "counts": run.counts,
        "files": files.iter().map(|f| json!({
            "name": f.name, "size": f.size_bytes, "sha256": f.sha256,
        })).collect::<Vec<_>>(),
        "manifest_sha256": manifest,
        "distributed_to": copies,
    });
    let mut event = result.clone();
    event["export_id"] = json!(ctx.job.id.as_str());
    ctx.stage(Effect::Event(NewEvent {
        kind: "export.completed".to_owned(),
        dedupe_key: format!("export.completed:{}:{}", ctx.job.tenant, ctx.job.id),
        payload: event,
    }));
    let seconds = (ctx.now - ctx.job.created_at).num_milliseconds().max(0) as f64 / 1000.0;
    deps.metrics.run_duration.observe(seconds);
    deps.metrics
        .bytes
        .with_label_values(&[plan.kind.as_str()])
        .inc_by(files.iter().map(|f| f.size_bytes).sum());
    Ok(StepOutcome::Done(result))
}
