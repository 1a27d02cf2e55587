//! Image intake: a container image archive in (streamed, never held in memory), an SBOM
//! out, stored like any other, and the image recorded for the tenant under its digest
//! so scans can name it. The use case behind `POST /images`.
//!
//! The upload is read once: as its chunks arrive they are written to a spool file (hashed
//! as they go) and, on the blocking pool, read by the image reader, which applies the
//! layers and keeps only what the analyzers need. A hostile, malformed or truncated
//! archive is refused before anything is stored; an accepted one's SBOM is stored first
//! (it may still be refused: too many components), then the archive content-addressed
//! (its spool becomes the object), then the image's record.

use std::io::Read;

use bytes::{Buf, Bytes};
use chrono::Utc;
use stella_domain::image::{self, ImageError, Limits, Summary};
use stella_store::repo::ImageRecord;
use stella_store::TenantId;
use tokio::sync::mpsc;

use super::{Intake, IntakeError};

/// Chunks in flight between the upload and the image reader.
const CHANNEL_CHUNKS: usize = 16;

/// What the upload sends the image reader.
#[derive(Debug)]
pub enum Chunk {
    /// The next bytes of the archive.
    Data(Bytes),
    /// The body arrived whole: the only way an upload is complete. A channel closed
    /// without it (a timeout, a dropped connection) fails the intake, so a truncated
    /// archive that happens to end at a tar block is never taken for a whole one.
    End,
    /// The body could not be read (why).
    Failed(std::io::Error),
}

/// An upload on its way to [`ImageIntake::run`]: send its chunks, then [`Chunk::End`].
pub type ImageChunks = mpsc::Sender<Chunk>;

/// A stored image: its record (digest, archive, SBOM) and what was found in it.
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub record: ImageRecord,
    pub summary: Summary,
}

/// The upload's chunks as a blocking [`Read`], each byte also written to the spool.
struct Upload {
    rx: mpsc::Receiver<Chunk>,
    chunk: Bytes,
    ended: bool,
    spool: stella_store::object::ContentSpool,
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while !self.chunk.has_remaining() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(chunk)) => {
                    std::io::Write::write_all(&mut self.spool, &chunk)?;
                    self.chunk = chunk;
                }
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Failed(err)) => return Err(err),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the upload ended before the whole body arrived",
                    ))
                }
            }
        }
        let n = buf.len().min(self.chunk.remaining());
        self.chunk.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

/// Whether an archive's own tag can name the image (the API's rule for `?name=`).
fn usable_name(name: &str) -> bool {
    !name.trim().is_empty() && name.len() <= 500
}

impl Intake {
    /// An image upload for `tenant` (named `name`, else by the archive's own tag, else
    /// its digest): send the archive's chunks into the channel, dropping it at the end,
    /// while [`ImageIntake::run`] reads them (the channel holds [`CHANNEL_CHUNKS`]). A read
    /// error sent into the channel fails the intake with it.
    pub fn image_upload(
        &self,
        tenant: TenantId,
        name: Option<String>,
    ) -> (ImageChunks, ImageIntake) {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let intake = ImageIntake {
            intake: self.clone(),
            rx,
            tenant,
            name,
        };
        (tx, intake)
    }
}

/// One image upload being read (see [`Intake::image_upload`]).
#[derive(Debug)]
pub struct ImageIntake {
    intake: Intake,
    rx: mpsc::Receiver<Chunk>,
    tenant: TenantId,
    name: Option<String>,
}

impl ImageIntake {
    /// Reads the archive as it arrives, analyzes it, and stores the archive, its SBOM and
    /// the image's record.
    pub async fn run(self) -> Result<StoredImage, IntakeError> {
        let objects = self.intake.deps().objects.clone();
        let spool = objects.spool()?;
        let rx = self.rx;
        let given = self.name.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut upload = Upload {
                rx,
                chunk: Bytes::new(),
                ended: false,
                spool,
            };
            let mut image = image::read_archive(&mut upload, &Limits::default())?;
            // The name the uploader gave comes first: the SBOM's subject (and so the
            // attestation's image subject) carries it.
            if let Some(name) = given {
                image.names.retain(|n| *n != name);
                image.names.insert(0, name);
            }
            // The reader stops at the archive's end marker: what follows is stored too,
            // so the object is the upload, byte for byte.
            std::io::copy(&mut upload, &mut std::io::sink())
                .map_err(|err| ImageError::read("upload", err))?;
            let inventory = image::analyze(&image.rootfs);
            let summary = Summary::of(&image, &inventory);
            let sbom = serde_json::to_vec_pretty(&image::cyclonedx::document(&image, &inventory))
                .map_err(|err| ImageError::Read {
                entry: "sbom".into(),
                reason: err.to_string(),
            })?;
            Ok::<_, ImageError>((upload.spool, summary, sbom))
        });
        let (spool, summary, sbom) = read
            .await
            .map_err(|err| IntakeError::Failed(format!("reading the image: {err}")))??;
        // The archive (up to gigabytes) is stored last: a name or an SBOM this server
        // refuses leaves nothing but, at most, the small SBOM behind.
        let name = self
            .name
            .or_else(|| summary.names.iter().find(|n| usable_name(n)).cloned())
            .unwrap_or_else(|| summary.digest.clone());
        let stored = self
            .intake
            .store_sbom(&self.tenant, Bytes::from(sbom), Some(&name))
            .await?;
        let archive = objects.put_spool(spool).await?;
        let record = ImageRecord {
            digest: summary.digest.clone(),
            name,
            format: summary.format.to_owned(),
            archive_sha256: archive.digest.to_string(),
            archive_size: archive.size,
            sbom_sha256: stored.record.sha256,
            summary: serde_json::to_value(&summary)
                .map_err(|err| IntakeError::Failed(format!("image summary: {err}")))?,
            created_at: Utc::now(),
        };
        self.intake
            .store
            .tenant(&self.tenant)
            .images()
            .record(&record)
            .await?;
        Ok(StoredImage { record, summary })
    }
}
