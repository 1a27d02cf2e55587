//! Packing a run's files into one reproducible `tar.zst`: the hook of the bundle formats
//! (`evidence`; the mirrors reuse it). `seal` asks [`super::formats::bundle`] whether the
//! run's format is one, and if so calls [`pack`] with every file the run wrote and the
//! seal files (`export.json`, `provenance.json` and their signatures), all already
//! stored content-addressed.
//!
//! The bundle streams: members are read from the object store one at a time, each
//! checked against its digest as it passes (the store's verifying reader), through the
//! domain's tar writer (sorted names, mtime = the export's `as_of`, uid/gid 0, mode
//! 0644) and zstd into a spool hashed as it is written, which is then stored
//! content-addressed (on the folder store, renamed into place). Nothing is held whole,
//! whatever the bundle's size. The work runs on the blocking pool
//! (compression is CPU work and the tar writer is synchronous), reading the objects
//! through the runtime's handle.

use std::io::{self, BufReader, Read};

use chrono::{DateTime, Utc};
use stella_domain::export::manifest::FileEntry;
use stella_domain::export::tar::{zstd_encoder, TarWriter};
use stella_domain::export::ExportError;
use stella_store::object::{ContentRef, ContentSpool, ObjectReader, Objects, Sha256Digest};
use stella_supervisor::StepError;
use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;

use super::ExportDeps;

/// Packs `files` (any order; each name once) into a `tar.zst` whose entries all have
/// modification time `as_of`, stores it content-addressed and returns where.
pub(super) async fn pack(
    deps: &ExportDeps,
    files: &[FileEntry],
    as_of: DateTime<Utc>,
) -> Result<ContentRef, StepError> {
    let mut files = files.to_vec();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let spool = deps.objects.spool()?;
    let objects = deps.objects.clone();
    let handle = Handle::current();
    // Before 1970 is 0: ustar cannot say earlier, and no export is as of then.
    let mtime = u64::try_from(as_of.timestamp()).unwrap_or(0);
    let spool =
        tokio::task::spawn_blocking(move || write_bundle(&objects, &handle, &files, mtime, spool))
            .await
            .map_err(|err| {
                StepError::retry(format!("packing the bundle did not finish: {err}"))
            })??;
    Ok(deps.objects.put_spool(spool).await?)
}

/// Bytes read from a member's object at a time: few trips through the runtime.
const MEMBER_BUFFER: usize = 1024 * 1024;

/// The blocking part of [`pack`]: every member, in name order, into `out`.
fn write_bundle(
    objects: &Objects,
    handle: &Handle,
    files: &[FileEntry],
    mtime: u64,
    out: ContentSpool,
) -> Result<ContentSpool, StepError> {
    let mut tar =
        TarWriter::new(zstd_encoder(out).map_err(spool_error)?, mtime).map_err(tar_error)?;
    for file in files {
        let digest = Sha256Digest::parse(&file.sha256)?;
        let reader = handle.block_on(objects.get_content(&digest))?;
        let mut reader = BufReader::with_capacity(
            MEMBER_BUFFER.min(usize::try_from(file.size).unwrap_or(MEMBER_BUFFER).max(1)),
            Blocking {
                reader,
                handle: handle.clone(),
            },
        );
        tar.append(&file.name, file.size, &mut reader)
            .map_err(tar_error)?;
    }
    tar.finish()
        .map_err(tar_error)?
        .finish()
        .map_err(spool_error)
}

/// An object's reader read synchronously, from a blocking-pool thread.
struct Blocking {
    reader: ObjectReader,
    handle: Handle,
}

impl Read for Blocking {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.handle.block_on(self.reader.read(buf))
    }
}

/// The temporary file failed: transient (the disk may have room again).
fn spool_error(err: io::Error) -> StepError {
    StepError::retry(format!("writing the bundle: {err}")).with_source(err)
}

/// Reading a member (the object store, or a digest that did not match) may pass; a name
/// or size the tar writer refuses will not.
fn tar_error(err: ExportError) -> StepError {
    match err {
        ExportError::Io(err) => {
            StepError::retry(format!("packing the bundle: {err}")).with_source(err)
        }
        other => StepError::abort(format!("packing the bundle: {other}")),
    }
}
