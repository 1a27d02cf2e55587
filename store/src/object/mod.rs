//! The object store port: blobs by key, on S3 or in a local folder.
//!
//! Keys are either content-addressed (`sha256/<hex>`, verified on every read) or
//! tenant-scoped (`tenants/<tenant>/...`). [`Objects`] adds content addressing on top of
//! any [`ObjectStore`] adapter.

mod folder;
mod s3;

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

pub use folder::FolderStore;
pub use s3::S3Store;

use crate::error::{Backend, Result, StoreError};
use crate::TenantId;

/// A validated object key: relative, `/`-separated, no empty, `.` or `..` segments, no
/// control characters, at most 1024 bytes. Safe as a path under a folder root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(key: &str) -> Result<Self> {
        let valid = !key.is_empty()
            && key.len() <= 1024
            && !key.chars().any(|c| c.is_control() || c == '\\')
            && key
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if valid {
            Ok(Self(key.to_owned()))
        } else {
            Err(StoreError::Invalid(format!(
                "object key {key:?} must be a relative path without empty, '.' or '..' segments"
            )))
        }
    }

    /// `sha256/<hex>`: the key of content with this digest.
    pub fn content(digest: &Sha256Digest) -> Self {
        Self(format!("sha256/{digest}"))
    }

    /// `tenants/<tenant>/<path>`: a tenant's artifact.
    pub fn tenant(tenant: &TenantId, path: &str) -> Result<Self> {
        Self::parse(&format!("tenants/{tenant}/{path}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn parse(hex_digits: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut out)
            .map_err(|_| StoreError::Invalid(format!("{hex_digits:?} is not a sha256 digest")))?;
        if hex_digits.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(StoreError::Invalid(format!(
                "sha256 digest {hex_digits:?} must be lowercase"
            )));
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

/// A streaming read of an object's body.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: ObjectKey,
    pub size: u64,
}

/// What an object store adapter provides. Writes are atomic: a reader sees the whole old
/// object, the whole new one, or none, never a partial body.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    fn backend(&self) -> Backend;

    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<()>;

    /// Uploads a local file; large files go up in parts (S3 multipart).
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<()>;

    /// Streams the object; `NotFound` if absent.
    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader>;

    /// The object's size, or `None` if absent.
    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>>;

    /// Removes the object; removing an absent object succeeds.
    async fn delete(&self, key: &ObjectKey) -> Result<()>;

    /// Objects whose keys start with `prefix` (a whole-segment prefix such as
    /// `tenants/acme/`), sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Checks the store is reachable and usable: the readiness check.
    async fn ping(&self) -> Result<()>;

    /// The folder [`Objects::spool`] creates its files in: one from which
    /// [`Self::put_spooled`] takes a file without copying it. `None` (the default): the
    /// system's temporary folder.
    fn spool_dir(&self) -> Option<PathBuf> {
        None
    }

    /// Stores a finished spool file (see [`Objects::spool`]) under `key`, consuming it.
    /// The default uploads it as [`Self::put_file`] does.
    async fn put_spooled(&self, key: &ObjectKey, spool: tempfile::NamedTempFile) -> Result<()> {
        self.put_file(key, spool.path()).await
    }
}

/// How much a [`ContentSpool`] buffers between writes to its file (and its hash).
const SPOOL_BUFFER: usize = 256 * 1024;

/// Content written to a local file before it is stored ([`Objects::put_spool`]), hashed
/// and counted as it is written, so that storing it reads nothing back. Buffered: write
/// to it directly. Dropped unstored, its file is removed.
#[derive(Debug)]
pub struct ContentSpool {
    out: std::io::BufWriter<HashingFile>,
    spool: tempfile::NamedTempFile,
}

#[derive(Debug)]
struct HashingFile {
    file: std::fs::File,
    hasher: Sha256,
    size: u64,
}

impl std::io::Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl std::io::Write for ContentSpool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl ContentSpool {
    /// The bytes written so far (buffered ones included).
    pub fn len(&self) -> u64 {
        self.out.get_ref().size + self.out.buffer().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flushes the spool: its file and what it holds.
    fn finish(self) -> std::io::Result<(tempfile::NamedTempFile, ContentRef)> {
        let hashing = self.out.into_inner().map_err(|err| err.into_error())?;
        Ok((
            self.spool,
            ContentRef {
                digest: Sha256Digest(hashing.hasher.finalize().into()),
                size: hashing.size,
            },
        ))
    }
}

/// Content addressing and tenant keys over any adapter.
#[derive(Debug, Clone)]
pub struct Objects {
    inner: Arc<dyn ObjectStore>,
}

/// Where some content was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRef {
    pub digest: Sha256Digest,
    pub size: u64,
}

impl ContentRef {
    /// The digest and size of a local file, read in chunks, never held in memory.
    pub async fn of_file(path: &Path) -> Result<Self> {
        let unreadable = |err: std::io::Error| {
            StoreError::Invalid(format!("cannot read {}: {err}", path.display()))
        };
        let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).await.map_err(unreadable)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(Self {
            digest: Sha256Digest(hasher.finalize().into()),
            size,
        })
    }
}

impl Objects {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    pub fn store(&self) -> &dyn ObjectStore {
        self.inner.as_ref()
    }

    /// Stores bytes under their digest. Storing the same content twice is a no-op.
    pub async fn put_content(&self, body: Bytes) -> Result<ContentRef> {
        let digest = Sha256Digest::of(&body);
        let size = body.len() as u64;
        let key = ObjectKey::content(&digest);
        if self.inner.head(&key).await? != Some(size) {
            self.inner.put(&key, body).await?;
        }
        Ok(ContentRef { digest, size })
    }

    /// Stores a stream under its digest without holding it in memory: it is spooled to a
    /// temporary file while hashing, then uploaded (in parts if large).
    pub async fn put_content_stream(
        &self,
        mut reader: impl AsyncRead + Unpin + Send,
    ) -> Result<ContentRef> {
        // The spool is local disk whatever the adapter: failing to use it is the server's
        // trouble (503), while failing to read the upload is the caller's (400).
        let backend = self.inner.backend();
        let spool_err = |what: &str, err: std::io::Error| StoreError::Unavailable {
            backend,
            reason: format!("{what} spool file: {err}"),
        };
        // `tempfile` creates the spool 0600.
        let spool =
            tempfile::NamedTempFile::new().map_err(|err| spool_err("cannot create", err))?;
        let mut file = tokio::fs::File::create(spool.path())
            .await
            .map_err(|err| spool_err("cannot write", err))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|err| StoreError::Invalid(format!("reading upload: {err}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            file.write_all(&buf[..n])
                .await
                .map_err(|err| spool_err("writing", err))?;
        }
        file.flush()
            .await
            .map_err(|err| spool_err("writing", err))?;
        drop(file);
        let digest = Sha256Digest(hasher.finalize().into());
        let key = ObjectKey::content(&digest);
        if self.inner.head(&key).await? != Some(size) {
            self.inner.put_file(&key, spool.path()).await?;
        }
        Ok(ContentRef { digest, size })
    }

    /// A [`ContentSpool`] to write content into, for [`Self::put_spool`]: on the folder
    /// store in the store's own folder (storing it is then a rename), elsewhere in the
    /// system's temporary folder.
    pub fn spool(&self) -> Result<ContentSpool> {
        let spool_err = |err: std::io::Error| StoreError::Unavailable {
            backend: self.inner.backend(),
            reason: format!("cannot create spool file: {err}"),
        };
        let spool = match self.inner.spool_dir() {
            Some(dir) => tempfile::NamedTempFile::new_in(dir),
            None => tempfile::NamedTempFile::new(),
        }
        .map_err(spool_err)?;
        let file = spool.reopen().map_err(spool_err)?;
        Ok(ContentSpool {
            out: std::io::BufWriter::with_capacity(
                SPOOL_BUFFER,
                HashingFile {
                    file,
                    hasher: Sha256::new(),
                    size: 0,
                },
            ),
            spool,
        })
    }

    /// Stores what was written to `spool` under its digest, hashed as it was written:
    /// nothing is read back, and on the folder store nothing is copied. Storing the same
    /// content twice is a no-op.
    pub async fn put_spool(&self, spool: ContentSpool) -> Result<ContentRef> {
        let (spool, content) = spool.finish().map_err(|err| StoreError::Unavailable {
            backend: self.inner.backend(),
            reason: format!("writing spool file: {err}"),
        })?;
        let key = ObjectKey::content(&content.digest);
        if self.inner.head(&key).await? != Some(content.size) {
            self.inner.put_spooled(&key, spool).await?;
        }
        Ok(content)
    }

    /// Stores a local file under its digest, read twice (to hash, then to upload) and
    /// never held in memory. Storing the same content twice is a no-op.
    pub async fn put_content_file(&self, path: &Path) -> Result<ContentRef> {
        let content = ContentRef::of_file(path).await?;
        let key = ObjectKey::content(&content.digest);
        if self.inner.head(&key).await? != Some(content.size) {
            self.inner.put_file(&key, path).await?;
        }
        Ok(content)
    }

    /// Streams content by digest. The stream fails with `Corrupt` at its end if the bytes
    /// do not hash to `digest`, so a consumer never accepts tampered or truncated content.
    pub async fn get_content(&self, digest: &Sha256Digest) -> Result<ObjectReader> {
        let reader = self.inner.get(&ObjectKey::content(digest)).await?;
        Ok(Box::pin(VerifyingReader {
            inner: reader,
            hasher: Sha256::new(),
            expected: *digest,
            done: false,
        }))
    }

    /// Copies content (verified) to `key`, through a temporary file, never held in memory.
    /// A `key` that already holds an object of the content's size is left as it is, so a
    /// retried copy writes one object.
    pub async fn copy_content_to(
        &self,
        digest: &Sha256Digest,
        size: u64,
        key: &ObjectKey,
    ) -> Result<()> {
        self.copy_content_into(digest, size, self.inner.as_ref(), key)
            .await
    }

    /// Copies content (verified) to `key` of another store (an export destination), the
    /// same way as [`Objects::copy_content_to`]: a `key` there that already holds an
    /// object of the content's size is left as it is.
    pub async fn copy_content_into(
        &self,
        digest: &Sha256Digest,
        size: u64,
        target: &dyn ObjectStore,
        key: &ObjectKey,
    ) -> Result<()> {
        if target.head(key).await? == Some(size) {
            return Ok(());
        }
        let backend = self.inner.backend();
        let spool_err = |what: &str, err: std::io::Error| StoreError::Unavailable {
            backend,
            reason: format!("{what} spool file: {err}"),
        };
        let spool =
            tempfile::NamedTempFile::new().map_err(|err| spool_err("cannot create", err))?;
        let mut file = tokio::fs::File::create(spool.path())
            .await
            .map_err(|err| spool_err("cannot write", err))?;
        let mut reader = self.get_content(digest).await?;
        tokio::io::copy(&mut reader, &mut file)
            .await
            .map_err(|err| io_to_store(backend, err))?;
        file.flush()
            .await
            .map_err(|err| spool_err("writing", err))?;
        drop(file);
        target.put_file(key, spool.path()).await
    }

    /// Reads content by digest into memory, verified.
    pub async fn read_content(&self, digest: &Sha256Digest) -> Result<Bytes> {
        let mut reader = self.get_content(digest).await?;
        let mut out = Vec::new();
        reader
            .read_to_end(&mut out)
            .await
            .map_err(|err| io_to_store(self.inner.backend(), err))?;
        Ok(Bytes::from(out))
    }

    pub async fn put_tenant(
        &self,
        tenant: &TenantId,
        path: &str,
        body: Bytes,
    ) -> Result<ObjectKey> {
        let key = ObjectKey::tenant(tenant, path)?;
        self.inner.put(&key, body).await?;
        Ok(key)
    }

    pub async fn read_tenant(&self, tenant: &TenantId, path: &str) -> Result<Bytes> {
        let key = ObjectKey::tenant(tenant, path)?;
        let mut reader = self.inner.get(&key).await?;
        let mut out = Vec::new();
        reader
            .read_to_end(&mut out)
            .await
            .map_err(|err| io_to_store(self.inner.backend(), err))?;
        Ok(Bytes::from(out))
    }

    pub async fn list_tenant(&self, tenant: &TenantId) -> Result<Vec<ObjectInfo>> {
        self.inner.list(&format!("tenants/{tenant}/")).await
    }
}

/// Carries a store error through `std::io::Error` (whose API `AsyncRead` imposes) and back.
fn io_to_store(backend: Backend, err: std::io::Error) -> StoreError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<StoreError>())
    {
        Some(StoreError::Corrupt(msg)) => StoreError::Corrupt(msg.clone()),
        _ => StoreError::Unavailable {
            backend,
            reason: format!("reading object: {err}"),
        },
    }
}

struct VerifyingReader {
    inner: ObjectReader,
    hasher: Sha256,
    expected: Sha256Digest,
    done: bool,
}

impl AsyncRead for VerifyingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                if fresh.is_empty() && !this.done {
                    this.done = true;
                    let actual = Sha256Digest(this.hasher.clone().finalize().into());
                    if actual != this.expected {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            StoreError::Corrupt(format!(
                                "object sha256/{} hashes to {actual}",
                                this.expected
                            )),
                        )));
                    }
                } else {
                    this.hasher.update(fresh);
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reject_traversal_and_oddities() {
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/../b",
            "..",
            "./a",
            "a/.",
            "a\\b",
            "a\nb",
            "tenants/x/",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
        let tenant = TenantId::parse("acme").unwrap();
        assert!(ObjectKey::tenant(&tenant, "../other/secret").is_err());
        assert_eq!(
            ObjectKey::tenant(&tenant, "sboms/a.json").unwrap().as_str(),
            "tenants/acme/sboms/a.json"
        );
    }

    #[test]
    fn digests_are_lowercase_hex() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Digest::parse(&d.to_string()).unwrap(), d);
        assert!(Sha256Digest::parse(&d.to_string().to_uppercase()).is_err());
        assert!(Sha256Digest::parse("abc").is_err());
    }
}
