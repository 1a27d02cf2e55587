//! The `[database]` section and the relational backend it selects.

use serde::{Deserialize, Serialize};

use crate::{Secret, Settings};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://...` selects PostgreSQL; `sqlite://...` or unset selects SQLite under the
    /// data dir.
    pub url: Option<Secret>,
    pub max_connections: u32,
    /// Seconds to wait for a connection before reporting the database unreachable.
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            connect_timeout_secs: 5,
        }
    }
}

/// Which relational backend the settings select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseBackend {
    Postgres { url: String },
    Sqlite { url: String },
}

impl Settings {
    pub fn database_backend(&self) -> DatabaseBackend {
        match &self.database.url {
            Some(url) if is_postgres_url(url.expose()) => DatabaseBackend::Postgres {
                url: url.expose().to_owned(),
            },
            Some(url) => DatabaseBackend::Sqlite {
                url: url.expose().to_owned(),
            },
            None => DatabaseBackend::Sqlite {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    self.data_dir.join("stella.db").display()
                ),
            },
        }
    }
}

pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
