//! Stella's typed settings.
//!
//! Settings come from three layers, later ones winning: the built-in defaults (the embedded
//! profile: SQLite, embedded mailbox and a local object folder under `./stella-data`), an
//! optional TOML file (`--config PATH` or `STELLA_CONFIG`), and `STELLA_`-prefixed
//! environment variables. Every key is declared once in [`KEYS`]; that table maps keys to
//! environment names, tells their type and whether they are secret, and drives
//! `stella config show`. Unknown keys (in the file or in the environment) are errors, and
//! every error names the key and the source it came from.
//!
//! This crate reads no process state itself: callers pass the environment as a map, so
//! tests build settings without touching the process environment.
//!
//! Layout:
//! - this file: [`Settings`], the typed result, and its top-level keys;
//! - `database`, `valkey`, `s3`: the backend sections, each with the backend it selects
//!   ([`DatabaseBackend`], [`MailboxBackend`], [`ObjectBackend`]);
//! - `api`, `runtime`, `scheduler`, `outbound`, `mirror`, `notify`, `export`: the other
//!   sections (`export` holds the operator's named destinations, a table per name);
//! - `keys`: [`KEYS`], the table of every setting;
//! - `load`: [`load`], the layering into [`Loaded`] (settings plus the [`Source`] of each
//!   value) and [`ConfigError`], which always names key and source;
//! - `validate`: the checks serde cannot make;
//! - `secret`: [`Secret`], a string that never prints itself, and [`redact_url`];
//! - `show`: [`Loaded::show`], the rows of `stella config show`.

mod api;
mod database;
mod export;
mod keys;
mod load;
mod mirror;
mod notify;
mod outbound;
mod runtime;
mod s3;
mod scheduler;
mod secret;
mod show;
mod validate;
mod valkey;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use api::ApiSettings;
pub use database::{DatabaseBackend, DatabaseSettings};
pub use export::{is_destination_name, Destination, DestinationSettings, ExportSettings};
pub use keys::{KeyDef, Kind, Show, KEYS};
pub use load::{load, ConfigError, Loaded, Source};
pub use mirror::MirrorSettings;
pub use notify::{NotifySettings, SmtpMode, SmtpSettings};
pub use outbound::OutboundSettings;
pub use runtime::RuntimeSettings;
pub use s3::{ObjectBackend, S3Settings, S3Target};
pub use scheduler::SchedulerSettings;
pub use secret::{redact_url, Secret};
pub use show::ShownValue;
pub use valkey::{MailboxBackend, ValkeySettings};

/// The effective settings of one Stella process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Folder for embedded state: the SQLite database, the object folder, the admin token.
    pub data_dir: PathBuf,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// If set and no admin token exists, an admin token with exactly this value is created.
    pub bootstrap_token: Option<Secret>,
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// Where `stella worker` and `stella scheduler` serve `GET /metrics` (Prometheus
    /// text) and `GET /healthz`; unset: nowhere. (`stella serve` serves `/metrics` on
    /// `listen`.)
    pub metrics_listen: Option<SocketAddr>,
    /// OTLP/HTTP endpoint that receives spans (`http://collector:4318`; the traces go
    /// to `/v1/traces` under it). Unset: no traces are exported.
    pub otlp_endpoint: Option<String>,
    /// Ed25519 private key (PKCS#8 PEM) that signs attestations. Unset: the key in
    /// `<data_dir>/signing-key.pem`, generated on first start.
    pub signing_key_file: Option<PathBuf>,
    pub database: DatabaseSettings,
    pub valkey: ValkeySettings,
    pub s3: S3Settings,
    pub api: ApiSettings,
    pub runtime: RuntimeSettings,
    pub scheduler: SchedulerSettings,
    pub outbound: OutboundSettings,
    pub mirror: MirrorSettings,
    pub notify: NotifySettings,
    pub export: ExportSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./stella-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            bootstrap_token: None,
            log: "info".to_owned(),
            log_format: "text".to_owned(),
            otlp_endpoint: None,
            metrics_listen: None,
            signing_key_file: None,
            database: DatabaseSettings::default(),
            valkey: ValkeySettings::default(),
            s3: S3Settings::default(),
            api: ApiSettings::default(),
            runtime: RuntimeSettings::default(),
            scheduler: SchedulerSettings::default(),
            outbound: OutboundSettings::default(),
            mirror: MirrorSettings::default(),
            notify: NotifySettings::default(),
            export: ExportSettings::default(),
        }
    }
}

/// Helpers shared by the tests of every module.
#[cfg(test)]
mod testing {
    use std::collections::BTreeMap;

    pub(crate) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::env;

    #[test]
    fn defaults_are_the_embedded_profile() {
        let loaded = load(None, &env(&[])).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.data_dir, PathBuf::from("./stella-data"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database_backend(),
            DatabaseBackend::Sqlite {
                url: "sqlite://./stella-data/stella.db?mode=rwc".into()
            }
        );
        assert_eq!(s.mailbox_backend(), MailboxBackend::Embedded);
        assert_eq!(
            s.object_backend(),
            ObjectBackend::Folder {
                root: PathBuf::from("./stella-data/objects")
            }
        );
        assert_eq!(loaded.source_of("listen"), Source::Default);
    }
}
