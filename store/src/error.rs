use std::fmt;

/// Errors of the store's ports. Driver errors are translated where they enter, so callers
/// decide on meaning (retry, 404, 409) without knowing which backend answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist, or belongs to another tenant (indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique key or an expected state did not hold.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input cannot be stored as given.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The caller may not do this to this record (for example approve what it submitted).
    #[error("refused: {0}")]
    Forbidden(String),
    /// The backend could not be reached or timed out; retrying later may succeed.
    #[error("{backend} unavailable: {reason}")]
    Unavailable { backend: Backend, reason: String },
    /// Stored data failed verification (digest mismatch, undecodable row).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The backend refused the request (permissions, credentials, server error).
    #[error("{backend} error: {reason}")]
    Backend { backend: Backend, reason: String },
}

/// Which backend produced an error, for messages operators can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
    Valkey,
    S3,
    Folder,
}

impl Backend {
    /// A stable lowercase name for machine-readable output (`postgres`, `sqlite`, ...).
    pub fn id(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
            Backend::Valkey => "valkey",
            Backend::S3 => "s3",
            Backend::Folder => "folder",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
            Backend::Valkey => "Valkey",
            Backend::S3 => "S3",
            Backend::Folder => "object folder",
        })
    }
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    pub(crate) fn from_sqlx(backend: Backend, err: sqlx::Error, what: &str) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound(what.to_owned()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(format!("{what} already exists"))
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound(format!("{what}: referenced record"))
            }
            sqlx::Error::Database(db) if db.is_check_violation() => {
                StoreError::Invalid(format!("{what}: {}", db.message()))
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => StoreError::Unavailable {
                backend,
                reason: err.to_string(),
            },
            // Lock contention, a server going away and storage that cannot take writes
            // now are worth retrying and are the operator's to fix, not the caller's:
            // SQLite busy or locked (5, 6), read-only (8), I/O error (10), disk full (13)
            // and cannot open (14), with their extended codes; PostgreSQL serialization
            // failures, deadlocks, shutdowns, connection failures (classes 40, 57P, 08),
            // insufficient resources such as a full disk (53), system I/O errors (58)
            // and a read-only transaction on a standby (25006).
            sqlx::Error::Database(db) if is_transient_code(backend, db.code().as_deref()) => {
                StoreError::Unavailable {
                    backend,
                    reason: db.to_string(),
                }
            }
            sqlx::Error::Database(db) => StoreError::Backend {
                backend,
                reason: db.to_string(),
            },
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(format!("{what}: {err}"))
            }
            other => StoreError::Backend {
                backend,
                reason: other.to_string(),
            },
        }
    }
}

fn is_transient_code(backend: Backend, code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    match backend {
        Backend::Sqlite => code
            .parse::<u32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14)),
        Backend::Postgres => {
            code == "40001"
                || code == "40P01"
                || code == "25006"
                || ["57P", "08", "53", "58"]
                    .iter()
                    .any(|class| code.starts_with(class))
        }
        _ => false,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contention_and_lost_servers_are_transient_other_errors_are_not() {
        // Busy, locked, read-only (8, 1032 readonly-dbmoved), I/O (778 write), full, cannot open.
        for code in [
            "5", "6", "517", "261", "773", "8", "1032", "778", "13", "14",
        ] {
            assert!(is_transient_code(Backend::Sqlite, Some(code)), "{code}");
        }
        for code in ["19", "2067", "1"] {
            assert!(!is_transient_code(Backend::Sqlite, Some(code)), "{code}");
        }
        for code in [
            "40001", "40P01", "57P01", "08006", "53100", "58030", "25006",
        ] {
            assert!(is_transient_code(Backend::Postgres, Some(code)), "{code}");
        }
        for code in ["23505", "42P01", "22P02"] {
            assert!(!is_transient_code(Backend::Postgres, Some(code)), "{code}");
        }
        assert!(!is_transient_code(Backend::Postgres, None));
    }
}
