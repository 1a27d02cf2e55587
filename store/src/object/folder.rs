use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{ObjectInfo, ObjectKey, ObjectReader, ObjectStore};
use crate::error::{Backend, Result, StoreError};

/// The embedded object store: one file per object under a root folder. Writes go to a
/// temporary file in `<root>/.tmp` that is synced and then renamed into place, so a crash
/// never leaves a partial object under its key.
///
/// Folders are created 0700 and files 0600: objects are tenants' documents. The root is
/// remembered by identity (device, inode): a root that was deleted or replaced is
/// `Unavailable` (503), never "object not found", and is not silently re-created.
#[derive(Debug, Clone)]
pub struct FolderStore {
    root: PathBuf,
    identity: (u64, u64),
}

const TMP_DIR: &str = ".tmp";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

impl FolderStore {
    /// Opens (creating if needed) the folder.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let unavailable = |err: std::io::Error| StoreError::Unavailable {
            backend: Backend::Folder,
            reason: format!("cannot create {}: {err}", root.display()),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root.join(TMP_DIR))
            .map_err(unavailable)?;
        let meta = std::fs::metadata(&root).map_err(unavailable)?;
        Ok(Self {
            identity: (meta.dev(), meta.ino()),
            root,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The root is still the folder this store opened.
    fn check_root(&self) -> Result<()> {
        let gone = |what: &str| StoreError::Unavailable {
            backend: Backend::Folder,
            reason: format!("{} was {what}", self.root.display()),
        };
        match std::fs::metadata(&self.root) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.identity => Ok(()),
            Ok(_) => Err(gone("replaced")),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(gone("removed")),
            Err(err) => Err(gone(&format!("unreadable ({err})"))),
        }
    }

    /// Translates an I/O error: a missing file under an intact root is a missing object,
    /// anything else (the root gone included) is the store being unavailable.
    fn io_err(&self, op: &str, key: &ObjectKey, err: std::io::Error) -> StoreError {
        if err.kind() == std::io::ErrorKind::NotFound {
            match self.check_root() {
                Ok(()) => StoreError::NotFound(format!("object {key}")),
                Err(unavailable) => unavailable,
            }
        } else {
            StoreError::Unavailable {
                backend: Backend::Folder,
                reason: format!("{op} {key}: {err}"),
            }
        }
    }

    /// Creates the folders of `key` under the root (0700), never the root itself.
    async fn create_parents(&self, key: &ObjectKey) -> std::io::Result<()> {
        let Some(parent) = Path::new(key.as_str()).parent() else {
            return Ok(());
        };
        let mut dir = self.root.clone();
        for part in parent.components() {
            let Component::Normal(part) = part else {
                continue;
            };
            dir.push(part);
            let mut builder = tokio::fs::DirBuilder::new();
            builder.mode(DIR_MODE);
            match builder.create(&dir).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        // ObjectKey guarantees no '..', no absolute path: the join stays under root.
        self.root.join(key.as_str())
    }

    async fn write_atomically(&self, key: &ObjectKey, write: WriteFrom<'_>) -> Result<()> {
        self.check_root()?;
        let dest = self.path_of(key);
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().simple().to_string());
        let result = async {
            self.create_parents(key).await?;
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&tmp)
                .await?;
            match write {
                WriteFrom::Bytes(body) => file.write_all(&body).await?,
                WriteFrom::File(src) => {
                    // Not `fs::copy`: it would give the object the source file's mode.
                    let mut src = tokio::fs::File::open(src).await?;
                    tokio::io::copy(&mut src, &mut file).await?;
                }
            }
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &dest).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.map_err(|err| self.io_err("write", key, err))
    }
}

enum WriteFrom<'a> {
    Bytes(Bytes),
    File(&'a Path),
}

#[async_trait]
impl ObjectStore for FolderStore {
    fn backend(&self) -> Backend {
        Backend::Folder
    }

    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<()> {
        self.write_atomically(key, WriteFrom::Bytes(body)).await
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<()> {
        self.write_atomically(key, WriteFrom::File(path)).await
    }

    fn spool_dir(&self) -> Option<PathBuf> {
        Some(self.root.join(TMP_DIR))
    }

    /// Synced, then renamed into place: a spool made in the store's temporary folder is
    /// never copied (one made elsewhere is, as by `put_file`).
    async fn put_spooled(&self, key: &ObjectKey, spool: tempfile::NamedTempFile) -> Result<()> {
        self.check_root()?;
        if spool.path().parent() != Some(self.root.join(TMP_DIR).as_path()) {
            return self.put_file(key, spool.path()).await;
        }
        let dest = self.path_of(key);
        let result = async {
            self.create_parents(key).await?;
            let file = tokio::fs::File::from_std(spool.as_file().try_clone()?);
            file.sync_all().await?;
            tokio::task::spawn_blocking(move || spool.persist(dest).map(drop))
                .await
                .map_err(std::io::Error::other)?
                .map_err(|err| err.error)
        }
        .await;
        result.map_err(|err| self.io_err("write", key, err))
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader> {
        let file = tokio::fs::File::open(self.path_of(key))
            .await
            .map_err(|err| self.io_err("read", key, err))?;
        if file
            .metadata()
            .await
            .map_err(|err| self.io_err("read", key, err))?
            .is_dir()
        {
            return Err(StoreError::NotFound(format!("object {key}")));
        }
        Ok(Box::pin(tokio::io::BufReader::new(file)))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                self.check_root().map(|()| None)
            }
            Err(err) => Err(self.io_err("stat", key, err)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => self.check_root(),
            Err(err) => Err(self.io_err("delete", key, err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.check_root()?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            // Walk only the folder the prefix names, then filter by the full prefix.
            let dir_part = prefix.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
            if dir_part.split('/').any(|part| part == "..") {
                return Err(StoreError::Invalid(format!("list prefix {prefix:?}")));
            }
            let mut out = Vec::new();
            let start = root.join(dir_part);
            walk(&root, &start, &mut out).map_err(|err| StoreError::Unavailable {
                backend: Backend::Folder,
                reason: format!("list {prefix}: {err}"),
            })?;
            out.retain(|info| info.key.as_str().starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|err| StoreError::Unavailable {
            backend: Backend::Folder,
            reason: format!("list task: {err}"),
        })?
    }

    async fn ping(&self) -> Result<()> {
        // Writable, not merely present: a read-only mount must fail readiness, and so
        // must a root that was deleted (or replaced) since the store opened it.
        self.check_root()?;
        let probe = self
            .root
            .join(TMP_DIR)
            .join(format!("ping-{}", uuid::Uuid::new_v4().simple()));
        let result = async {
            tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&probe)
                .await?
                .write_all(b"ok")
                .await?;
            tokio::fs::remove_file(&probe).await
        }
        .await;
        result.map_err(|err| StoreError::Unavailable {
            backend: Backend::Folder,
            reason: format!("{} is not writable: {err}", self.root.display()),
        })
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if dir == root && entry.file_name() == TMP_DIR {
                continue;
            }
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let Some(text) = relative.to_str() else {
                continue;
            };
            if let Ok(key) = ObjectKey::parse(text) {
                out.push(ObjectInfo {
                    key,
                    size: entry.metadata()?.len(),
                });
            }
        }
    }
    Ok(())
}
