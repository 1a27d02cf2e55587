//! The `[export]` section: the named destinations export profiles may send their files to.
//!
//! A destination is declared by the operator, never by a tenant: it names a folder or an
//! S3 bucket (with an optional key prefix, and its own endpoint and credentials or those
//! of `[s3]`) and the tenants allowed to use it. A profile can only name one its tenant is
//! allowed, so no tenant can make Stella write into a bucket of its choosing.
//!
//! ```toml
//! [export.destinations.archive]
//! bucket = "stella-archive"          # or: path = "/srv/stella-exports"
//! prefix = "exports"                 # optional
//! # endpoint, region, access_key_id, secret_access_key: optional, default [s3]'s
//! tenants = ["acme", "globex"]
//! ```
//!
//! Destinations are set in the config file only (their names are the operator's, so they
//! have no fixed environment variable).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ObjectBackend, S3Target, Secret, Settings};

/// Exports.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExportSettings {
    /// Where profiles may send their files besides the tenant's objects, by name.
    pub destinations: BTreeMap<String, DestinationSettings>,
}

/// One named destination: a folder (`path`) or an S3 bucket (`bucket`), and who may use
/// it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationSettings {
    /// A folder on the workers' host (shared by every worker that runs the exporter).
    pub path: Option<PathBuf>,
    /// An S3 bucket, on `endpoint` or else `[s3]`'s server.
    pub bucket: Option<String>,
    /// Prefix of every key written there (`<prefix>/<tenant>/...`); empty for none.
    pub prefix: String,
    /// The S3 server; unset: the same as `s3.endpoint`.
    pub endpoint: Option<String>,
    /// Unset: the same as `s3.region`.
    pub region: Option<String>,
    /// Unset (with `secret_access_key`): the same credentials as `[s3]`.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// The tenants whose profiles may name this destination.
    pub tenants: Vec<String>,
}

/// A destination as the exporter opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub name: String,
    /// The folder or the bucket (the target's own `prefix` is empty: see `prefix`).
    pub backend: ObjectBackend,
    /// Key prefix without leading or trailing `/`; empty for none.
    pub prefix: String,
    pub tenants: Vec<String>,
}

/// Whether `name` can name a destination: 1-64 characters of a-z, 0-9, `-` and `_`,
/// starting with a letter or digit.
pub fn is_destination_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
}

impl Settings {
    /// The declared destinations, resolved against `[s3]` (validation made sure they can
    /// be: a bucket has an endpoint and credentials, its own or `[s3]`'s).
    pub fn export_destinations(&self) -> Vec<Destination> {
        self.export
            .destinations
            .iter()
            .filter_map(|(name, d)| {
                let backend = match (&d.path, &d.bucket) {
                    (Some(path), _) => ObjectBackend::Folder { root: path.clone() },
                    (None, Some(bucket)) => {
                        let (id, secret) = match (&d.access_key_id, &d.secret_access_key) {
                            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
                            _ => (
                                self.s3.access_key_id.clone()?,
                                self.s3.secret_access_key.clone()?,
                            ),
                        };
                        ObjectBackend::S3(S3Target {
                            endpoint: d.endpoint.clone().or_else(|| self.s3.endpoint.clone())?,
                            bucket: bucket.clone(),
                            region: d.region.clone().unwrap_or_else(|| self.s3.region.clone()),
                            access_key_id: id,
                            secret_access_key: secret,
                            prefix: String::new(),
                            part_size_bytes: self.s3.part_size_bytes,
                        })
                    }
                    (None, None) => return None,
                };
                Some(Destination {
                    name: name.clone(),
                    backend,
                    prefix: d.prefix.trim_matches('/').to_owned(),
                    tenants: d.tenants.clone(),
                })
            })
            .collect()
    }
}

/// Checks the destinations; `Err((key, reason))` names the offending key.
pub(crate) fn validate(settings: &Settings) -> Result<(), (String, String)> {
    for (name, d) in &settings.export.destinations {
        let key = |field: &str| format!("export.destinations.{name}.{field}");
        if !is_destination_name(name) {
            return Err((
                format!("export.destinations.{name}"),
                "a destination name is 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit".into(),
            ));
        }
        match (&d.path, &d.bucket) {
            (Some(_), Some(_)) => {
                return Err((key("bucket"), "set either path or bucket, not both".into()))
            }
            (None, None) => {
                return Err((
                    key("bucket"),
                    "set bucket (an S3 bucket) or path (a folder)".into(),
                ))
            }
            (Some(path), None) => {
                if path.as_os_str().is_empty() {
                    return Err((key("path"), "must not be empty".into()));
                }
                for (field, set) in [
                    ("endpoint", d.endpoint.is_some()),
                    ("region", d.region.is_some()),
                    ("access_key_id", d.access_key_id.is_some()),
                    ("secret_access_key", d.secret_access_key.is_some()),
                ] {
                    if set {
                        return Err((
                            key(field),
                            "is for a bucket; a folder destination (path) takes none".into(),
                        ));
                    }
                }
            }
            (None, Some(bucket)) => {
                if bucket.is_empty() {
                    return Err((key("bucket"), "must not be empty".into()));
                }
                match &d.endpoint {
                    Some(endpoint)
                        if !(endpoint.starts_with("http://")
                            || endpoint.starts_with("https://")) =>
                    {
                        return Err((
                            key("endpoint"),
                            format!("expected an http:// or https:// URL, got {endpoint:?}"),
                        ))
                    }
                    None if settings.s3.endpoint.is_none() => {
                        return Err((
                            key("endpoint"),
                            "must be set when s3.endpoint is not (a bucket is on an S3 server)"
                                .into(),
                        ))
                    }
                    _ => {}
                }
                let secret = d
                    .secret_access_key
                    .as_ref()
                    .is_some_and(|s| !s.expose().is_empty());
                match (d.access_key_id.as_deref().unwrap_or(""), secret) {
                    ("", false) if d.endpoint.is_some() => {
                        // Another server with [s3]'s credentials: only if [s3] has some.
                        if settings.s3.access_key_id.is_none() {
                            return Err((
                                key("access_key_id"),
                                "must be set (with secret_access_key) when s3.access_key_id is not"
                                    .into(),
                            ));
                        }
                    }
                    ("", false) => {}
                    ("", true) => {
                        return Err((
                            key("access_key_id"),
                            "must be set when secret_access_key is".into(),
                        ))
                    }
                    (_, false) => {
                        return Err((
                            key("secret_access_key"),
                            "must be set when access_key_id is".into(),
                        ))
                    }
                    (_, true) => {}
                }
            }
        }
        let prefix = d.prefix.trim_matches('/');
        if !prefix.is_empty()
            && (d.prefix.starts_with('/')
                || prefix
                    .split('/')
                    .any(|part| part.is_empty() || part == "." || part == "..")
                || prefix.chars().any(|c| c.is_control() || c == '\\'))
        {
            return Err((
                key("prefix"),
                "must be a relative key prefix without empty, '.' or '..' segments".into(),
            ));
        }
        if d.tenants.is_empty() {
            return Err((
                key("tenants"),
                "must name at least one tenant allowed to use the destination".into(),
            ));
        }
        for tenant in &d.tenants {
            if !is_tenant_id(tenant) {
                return Err((
                    key("tenants"),
                    format!(
                        "{tenant:?} is not a tenant id (a-z, 0-9 and '-', starting with a letter)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The tenant id syntax (`stella_store::TenantId`): 1-63 characters of a-z, 0-9 and `-`,
/// starting with a letter and not ending with `-`.
fn is_tenant_id(value: &str) -> bool {
    (1..=63).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::testing::{env, file};
    use crate::{load, ObjectBackend};

    #[test]
    fn destinations_resolve_against_s3_and_keep_their_secrets() {
        let f = file(
            r#"
[export.destinations.archive]
bucket = "stella-archive"
prefix = "exports/"
tenants = ["acme", "globex"]

[export.destinations.elsewhere]
bucket = "b"
endpoint = "https://s3.example.com"
region = "eu-west-1"
access_key_id = "AKIA-OTHER"
secret_access_key = "other-secret"
tenants = ["acme"]

[export.destinations.local]
path = "/srv/exports"
tenants = ["acme"]
"#,
        );
        let loaded = load(
            Some(f.path()),
            &env(&[
                ("STELLA_S3_ENDPOINT", "http://127.0.0.1:3900"),
                ("STELLA_S3_ACCESS_KEY_ID", "GK1"),
                ("STELLA_S3_SECRET_ACCESS_KEY", "main-secret"),
            ]),
        )
        .unwrap();
        let destinations = loaded.settings.export_destinations();
        assert_eq!(destinations.len(), 3);
        let archive = &destinations[0];
        assert_eq!(archive.name, "archive");
        assert_eq!(archive.prefix, "exports");
        assert_eq!(archive.tenants, ["acme", "globex"]);
        let ObjectBackend::S3(target) = &archive.backend else {
            panic!("a bucket destination is S3")
        };
        assert_eq!(target.endpoint, "http://127.0.0.1:3900");
        assert_eq!(target.bucket, "stella-archive");
        assert_eq!(target.access_key_id, "GK1");
        assert_eq!(target.secret_access_key.expose(), "main-secret");
        let ObjectBackend::S3(other) = &destinations[1].backend else {
            panic!("a bucket destination is S3")
        };
        assert_eq!(other.endpoint, "https://s3.example.com");
        assert_eq!(other.region, "eu-west-1");
        assert_eq!(other.secret_access_key.expose(), "other-secret");
        assert_eq!(
            destinations[2].backend,
            ObjectBackend::Folder {
                root: PathBuf::from("/srv/exports")
            }
        );

        // `config show` lists each destination's keys, the secrets redacted, from the file.
        let shown = loaded.show();
        let text = format!("{shown:?}");
        assert!(!text.contains("other-secret"), "{text}");
        let secret = shown
            .iter()
            .find(|v| v.key == "export.destinations.elsewhere.secret_access_key")
            .unwrap();
        assert_eq!(secret.value.as_deref(), Some("\"[redacted]\""));
        assert!(secret.source.starts_with("file "), "{secret:?}");
        let bucket = shown
            .iter()
            .find(|v| v.key == "export.destinations.archive.bucket")
            .unwrap();
        assert_eq!(bucket.value.as_deref(), Some("\"stella-archive\""));
        let tenants = shown
            .iter()
            .find(|v| v.key == "export.destinations.archive.tenants")
            .unwrap();
        assert_eq!(tenants.value.as_deref(), Some("[\"acme\", \"globex\"]"));
    }

    #[test]
    fn bad_destinations_are_refused_naming_the_key() {
        for (text, key, reason) in [
            (
                "[export.destinations.x]\ntenants = [\"acme\"]\n",
                "export.destinations.x.bucket",
                "set bucket",
            ),
            (
                "[export.destinations.x]\nbucket = \"b\"\ntenants = [\"acme\"]\n",
                "export.destinations.x.endpoint",
                "must be set when s3.endpoint is not",
            ),
            (
                "[export.destinations.x]\npath = \"/tmp/x\"\ntenants = []\n",
                "export.destinations.x.tenants",
                "at least one tenant",
            ),
            (
                "[export.destinations.x]\npath = \"/tmp/x\"\ntenants = [\"Acme Corp\"]\n",
                "export.destinations.x.tenants",
                "is not a tenant id",
            ),
            (
                "[export.destinations.x]\npath = \"/tmp/x\"\nprefix = \"a/../b\"\ntenants = [\"acme\"]\n",
                "export.destinations.x.prefix",
                "relative key prefix",
            ),
            (
                "[export.destinations.x]\npath = \"/tmp/x\"\nregion = \"r\"\ntenants = [\"acme\"]\n",
                "export.destinations.x.region",
                "takes none",
            ),
            (
                "[export.destinations.x]\nbucket = \"b\"\nendpoint = \"http://h\"\naccess_key_id = \"k\"\ntenants = [\"acme\"]\n",
                "export.destinations.x.secret_access_key",
                "must be set when access_key_id is",
            ),
            (
                "[export.destinations.Big]\npath = \"/tmp/x\"\ntenants = [\"acme\"]\n",
                "export.destinations.Big",
                "destination name",
            ),
            (
                "[export.destinations.x]\npath = \"/tmp/x\"\ntenants = [\"acme\"]\nbukket = \"b\"\n",
                "export.destinations.x.bukket",
                "",
            ),
        ] {
            let f = file(text);
            let err = load(Some(f.path()), &env(&[])).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
