use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{ObjectInfo, ObjectKey, ObjectReader, ObjectStore};
use crate::error::{Backend, Result, StoreError};

/// The embedded object store: one file per object under a root folder. Writes go to a
/// temporary file in `<root>/.tmp` that is synced and then renamed into place, so a crash
/// never leaves a partial object under its key.
#[derive(Debug, Clone)]
pub struct FolderStore {
    root: PathBuf,
}

const TMP_DIR: &str = ".tmp";

impl FolderStore {
    /// Opens (creating if needed) the folder.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join(TMP_DIR)).map_err(|err| StoreError::Unavailable {
            backend: Backend::Folder,
            reason: format!("cannot create {}: {err}", root.display()),
        })?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        // ObjectKey guarantees no '..', no absolute path: the join stays under root.
        self.root.join(key.as_str())
    }

    async fn write_atomically(&self, key: &ObjectKey, write: WriteFrom<'_>) -> Result<()> {
        let dest = self.path_of(key);
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().simple().to_string());
        let result = async {
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            match write {
                WriteFrom::Bytes(body) => {
                    let mut file = tokio::fs::File::create(&tmp).await?;
                    file.write_all(&body).await?;
                    file.sync_all().await?;
                }
                WriteFrom::File(src) => {
                    tokio::fs::copy(src, &tmp).await?;
                    tokio::fs::File::open(&tmp).await?.sync_all().await?;
                }
            }
            tokio::fs::rename(&tmp, &dest).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.map_err(|err| io_err("write", key, err))
    }
}

enum WriteFrom<'a> {
    Bytes(Bytes),
    File(&'a Path),
}

fn io_err(op: &str, key: &ObjectKey, err: std::io::Error) -> StoreError {
    if err.kind() == std::io::ErrorKind::NotFound {
        StoreError::NotFound(format!("object {key}"))
    } else {
        StoreError::Unavailable {
            backend: Backend::Folder,
            reason: format!("{op} {key}: {err}"),
        }
    }
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

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader> {
        let file = tokio::fs::File::open(self.path_of(key))
            .await
            .map_err(|err| io_err("read", key, err))?;
        if file
            .metadata()
            .await
            .map_err(|err| io_err("read", key, err))?
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
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_err("stat", key, err)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_err("delete", key, err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
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
        // Writable, not merely present: a read-only mount must fail readiness.
        let probe = self
            .root
            .join(TMP_DIR)
            .join(format!("ping-{}", uuid::Uuid::new_v4().simple()));
        let result = async {
            tokio::fs::write(&probe, b"ok").await?;
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
