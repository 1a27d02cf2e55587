use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use chrono::Utc;
use stella_config::Settings;
use stella_store::repo::NewToken;
use stella_store::{Store, StoreError};

use crate::StartupError;

/// How this start obtained its administrator token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// An admin token already existed; nothing was created.
    Existing,
    /// Created from `STELLA_BOOTSTRAP_TOKEN`.
    FromBootstrap,
    /// Generated, written to this file (mode 0600) and printed once if stdout is a
    /// terminal.
    Generated { file: PathBuf },
}

const ADMIN_SCOPES: &[&str] = &["admin"];

/// Makes sure an administrator can use the API at once on a fresh install.
pub(crate) async fn ensure_admin_token(
    store: &Store,
    settings: &Settings,
) -> Result<AdminToken, StartupError> {
    let tokens = store.tokens();
    let db_err = |err: StoreError| StartupError::new("database.url", err);
    if tokens.admin_exists().await.map_err(db_err)? {
        return Ok(AdminToken::Existing);
    }
    let new = NewToken {
        tenant: None,
        name: "bootstrap-admin".into(),
        scopes: ADMIN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        expires_at: None,
    };
    if let Some(secret) = &settings.bootstrap_token {
        return match tokens
            .create_with_secret(&new, secret.expose(), Utc::now())
            .await
        {
            Ok(_) => {
                tracing::info!("created the admin token from bootstrap_token");
                Ok(AdminToken::FromBootstrap)
            }
            Err(StoreError::Conflict(_)) => Err(StartupError::new(
                "bootstrap_token",
                "bootstrap_token matches a revoked token; choose a new value",
            )),
            Err(err @ StoreError::Invalid(_)) => Err(StartupError::new("bootstrap_token", err)),
            Err(err) => Err(db_err(err)),
        };
    }
    let (_, secret) = tokens.create(&new, Utc::now()).await.map_err(db_err)?;
    let file = settings.data_dir.join("admin-token");
    write_private(&file, &secret).map_err(|err| {
        StartupError::new(
            "data_dir",
            format!("cannot write {}: {err}", file.display()),
        )
    })?;
    // Shown once to a person at a terminal, so a newcomer can use the API right away;
    // never into a pipe or a file, where stdout is a log that others read and keep.
    if std::io::stdout().is_terminal() {
        println!(
            "admin token (shown once; also saved in {}):",
            file.display()
        );
        println!("{secret}");
    } else {
        println!(
            "admin token created and saved in {} (mode 0600); it is printed only to a terminal",
            file.display()
        );
    }
    Ok(AdminToken::Generated { file })
}

pub(crate) fn write_private(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only on creation; an existing file keeps its mode unless reset.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}

/// Creates `path` holding `secret` (mode 0600) only if it does not exist yet, atomically:
/// the bytes go to a private temporary file first, which is then hard-linked into place,
/// so a concurrent reader sees either no file or the whole of it, never a half-written
/// one. Returns false when another process created `path` first (its content wins).
pub(crate) fn create_private(path: &std::path::Path, secret: &str) -> std::io::Result<bool> {
    let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    write_private(&tmp, secret)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            std::fs::File::open(dir)?.sync_all()?;
            Ok(true)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err),
    }
}
