//! Named export destinations: the folders and buckets the operator declared
//! (`[export.destinations.<name>]`), each open to the tenants it lists. A profile names one
//! (`{"to": "destination", "name": …}`); the name is checked when the profile is stored and
//! again when a run distributes, so a tenant never writes where the operator did not let
//! it, even after the settings changed.
//!
//! A run's files land under `<destination prefix>/<tenant>/<sub-prefix>/<export id>/<file>`:
//! a destination is shared by the tenants it lists, and the tenant id in the key keeps
//! each tenant's files apart (no sub-prefix of one tenant reaches another's), and lets the
//! operator grant each tenant's readers its own key prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use stella_config::{Destination as DestinationSettings, ObjectBackend, Settings};
use stella_store::object::{FolderStore, ObjectKey, ObjectStore, S3Store};
use stella_store::{StoreError, TenantId};

/// One destination, opened.
#[derive(Clone)]
pub struct Destination {
    pub name: String,
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix (no leading or trailing `/`), empty for none.
    pub prefix: String,
    tenants: BTreeSet<String>,
    /// Where it is, for messages: the folder, or bucket and endpoint.
    place: String,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("name", &self.name)
            .field("place", &self.place)
            .field("prefix", &self.prefix)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl Destination {
    /// A destination on `store` (at `place`: its folder, or its bucket and server) open to
    /// `tenants`.
    pub fn new(
        name: &str,
        store: Arc<dyn ObjectStore>,
        place: &str,
        prefix: &str,
        tenants: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            place: place.to_owned(),
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            tenants: tenants.into_iter().collect(),
        }
    }

    /// The key of `file` of run `export_id` of `tenant`, under `sub_prefix` (the profile's).
    pub fn key(
        &self,
        tenant: &TenantId,
        sub_prefix: Option<&str>,
        export_id: &str,
        file: &str,
    ) -> Result<ObjectKey, StoreError> {
        let mut key = String::new();
        for part in [
            Some(self.prefix.as_str()),
            Some(tenant.as_str()),
            sub_prefix,
        ]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        {
            key.push_str(part);
            key.push('/');
        }
        key.push_str(export_id);
        key.push('/');
        key.push_str(file);
        ObjectKey::parse(&key)
    }

    /// Where it is, for messages: the folder or the bucket (never credentials).
    pub fn place(&self) -> &str {
        &self.place
    }
}

/// Every destination of the settings, by name.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    by_name: Arc<BTreeMap<String, Destination>>,
}

impl Destinations {
    pub fn new(destinations: impl IntoIterator<Item = Destination>) -> Self {
        Self {
            by_name: Arc::new(
                destinations
                    .into_iter()
                    .map(|d| (d.name.clone(), d))
                    .collect(),
            ),
        }
    }

    /// Opens the destinations of `settings`: a folder is created if missing; a bucket is
    /// not touched (no network at start: a bucket that is missing or refuses the
    /// credentials fails the runs that use it, saying so). `Err` names the setting.
    pub fn from_settings(settings: &Settings) -> Result<Self, (String, StoreError)> {
        let mut out = Vec::new();
        for DestinationSettings {
            name,
            backend,
            prefix,
            tenants,
        } in settings.export_destinations()
        {
            let (store, place): (Arc<dyn ObjectStore>, String) = match backend {
                ObjectBackend::Folder { root } => (
                    Arc::new(
                        FolderStore::open(&root)
                            .map_err(|err| (format!("export.destinations.{name}.path"), err))?,
                    ),
                    format!("folder {}", root.display()),
                ),
                ObjectBackend::S3(target) => (
                    Arc::new(S3Store::new(&target)),
                    format!("bucket {} at {}", target.bucket, target.endpoint),
                ),
            };
            out.push(Destination::new(&name, store, &place, &prefix, tenants));
        }
        Ok(Self::new(out))
    }

    /// The destination `name` if `tenant` may use it. Unknown and not allowed are the
    /// same `None`: a tenant learns nothing of the destinations of others.
    pub fn for_tenant(&self, name: &str, tenant: &TenantId) -> Option<&Destination> {
        self.by_name
            .get(name)
            .filter(|d| d.tenants.contains(tenant.as_str()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keys_keep_the_tenant_and_only_allowed_tenants_see_a_destination() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FolderStore::open(dir.path()).unwrap());
        let destinations = Destinations::new([Destination::new(
            "archive",
            store,
            "a folder",
            "/exports/",
            ["acme".to_owned()],
        )]);
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let archive = destinations.for_tenant("archive", &acme).unwrap();
        assert!(destinations.for_tenant("archive", &globex).is_none());
        assert!(destinations.for_tenant("other", &acme).is_none());
        assert_eq!(
            archive
                .key(&acme, Some("nightly/web"), "job_1", "export.json")
                .unwrap()
                .as_str(),
            "exports/acme/nightly/web/job_1/export.json"
        );
        assert_eq!(
            archive.key(&acme, None, "job_1", "a.csv").unwrap().as_str(),
            "exports/acme/job_1/a.csv"
        );
    }
}
