//! `stella mirror import BUNDLE`: a mirror bundle exported by another instance, into the
//! configured store, with no server and no network.
//!
//! It opens the store, object store and mailbox the settings name (like `stella
//! migrate`), not the HTTP API: an air-gapped instance is administered on its host, where
//! the bundle was carried, and the import must work whether a server runs or not. Having
//! the settings (the database's credentials) is what makes its user an administrator;
//! the import is in the audit log under `local:<user>`. The API's upload limits, scopes
//! and streaming would add nothing an operator on that host needs.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use stella_actors::mirror::{import_bundle, ImportOptions};
use stella_config::Loaded;
use stella_domain::dsse::PublicKey;
use stella_store::TenantId;

use crate::cli::connect::{block_on, connect};
use crate::cli::output::Format;

const REPORT_COLUMNS: &[&str] = &[
    "status",
    "kind",
    "advisories_new",
    "advisories_changed",
    "vex_documents_new",
    "manifest_sha256",
];

#[derive(Debug, Subcommand)]
pub(crate) enum MirrorCommand {
    /// Import a mirror bundle (`mirror.tar.zst` of a `mirror:full` or `mirror:delta`
    /// export) into this instance's store: verified with `mirror.trusted_keys`, in one
    /// transaction; a bundle that fails its checks is quarantined.
    Import {
        /// The bundle file.
        bundle: PathBuf,
        /// Import a bundle older than what was imported from its origin (needs
        /// `--reason`; audited).
        #[arg(long, requires = "reason")]
        force: bool,
        /// Why an older bundle is forced in (kept with the import and in the audit log).
        #[arg(long, value_name = "TEXT", requires = "force")]
        reason: Option<String>,
        /// The tenant that receives the bundle's tenant-scoped VEX documents (the
        /// exporting tenant's own statements).
        #[arg(long, value_name = "TENANT")]
        vex_tenant: Option<String>,
    },
}

impl MirrorCommand {
    pub(crate) fn run(self, loaded: &Loaded, format: Format) -> anyhow::Result<()> {
        let Self::Import {
            bundle,
            force: _,
            reason,
            vex_tenant,
        } = self;
        let keys = trusted_keys(loaded)?;
        let vex_tenant = vex_tenant
            .as_deref()
            .map(TenantId::parse)
            .transpose()
            .context("--vex-tenant")?;
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
        let imported_by = format!("local:{user}");
        let report = block_on(async {
            let services = connect(loaded).await?;
            let options = ImportOptions {
                force_reason: reason.as_deref(),
                vex_tenant: vex_tenant.as_ref(),
                imported_by: &imported_by,
                now: chrono::Utc::now(),
            };
            let result =
                import_bundle(&services.store, &services.objects, &keys, &bundle, options).await;
            services.store.close().await;
            anyhow::Ok(result?)
        })?;
        let value = serde_json::to_value(&report).unwrap_or_default();
        format.print(&value, REPORT_COLUMNS);
        Ok(())
    }
}

/// The public keys `mirror.trusted_keys` names; a file that is not one names the setting.
fn trusted_keys(loaded: &Loaded) -> anyhow::Result<Vec<PublicKey>> {
    let paths = loaded.settings.mirror.trusted_key_paths();
    let mut keys = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (check `mirror.trusted_keys`, set by {})",
                path.display(),
                loaded.source_of("mirror.trusted_keys")
            )
        })?;
        keys.push(PublicKey::from_pem(&text).with_context(|| {
            format!(
                "{} is not an Ed25519 public key in PEM (check `mirror.trusted_keys`, set by {})",
                path.display(),
                loaded.source_of("mirror.trusted_keys")
            )
        })?);
    }
    Ok(keys)
}
