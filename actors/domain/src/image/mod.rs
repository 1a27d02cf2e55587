//! Container images as pure code: a `docker save` archive or an OCI archive read from a
//! stream, or an OCI layout directory, its layers applied in order with whiteouts into a
//! filtered root filesystem, the OS and language packages found in it, and a CycloneDX
//! 1.5 or SPDX 2.3 SBOM of them.
//!
//! Nothing is unpacked to disk and no layer is held in memory: each layer is streamed
//! once (gzip, zstd or plain tar, told apart by their magic bytes), and only the files an
//! analyzer reads ([`rootfs::wanted`]) are kept. Hostile archives are refused with an
//! [`ImageError`] naming the entry and, for a cap, the cap ([`Limits`]).
//!
//! Layout:
//! - [`archive`]: the outer archive (docker-archive, OCI layout as a tar), its manifests,
//!   config and per-layer digests, every digest checked against the bytes;
//! - [`layout`]: an OCI image layout directory, read blob by blob with the same checks;
//! - [`rootfs`]: one layer's kept files and whiteouts, and the layers applied in order;
//! - [`analyzers`]: `etc/os-release`, dpkg, apk, npm and Python packages with purls;
//! - [`rpm`]: RPM packages from `rpmdb.sqlite`, read by [`sqlite`] (a read-only reader of
//!   the SQLite file format);
//! - [`lockfiles`]: `poetry.lock`, `requirements*.txt`, npm lockfile v1, `Cargo.lock`,
//!   `go.mod`;
//! - [`binary`]: Go and Rust binaries and Java archives, probed as the layers stream and
//!   kept as small derived records, never whole;
//! - [`cyclonedx`]: the inventory as a CycloneDX 1.5 JSON document;
//! - [`spdx`]: the inventory as an SPDX 2.3 JSON document;
//! - [`summary`]: what an image holds, in brief.

pub mod analyzers;
pub mod archive;
pub mod binary;
pub mod cyclonedx;
pub mod layout;
pub mod lockfiles;
pub mod rootfs;
pub mod rpm;
pub mod spdx;
pub mod sqlite;
pub mod summary;

pub use analyzers::{analyze, Distro, Inventory, Package, PackageType};
pub use archive::{read_archive, Image, ImageFormat, Layer};
pub use layout::{read_layout, read_path};
pub use rootfs::RootFs;
pub use summary::Summary;

/// Caps on what one image may make Stella read; each refusal names the cap it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes over all layers (and the archive's own files): a layer bomb.
    pub max_total_bytes: u64,
    /// Tar entries over the archive and all its layers: a million files.
    pub max_entries: u64,
    /// Path components of one entry.
    pub max_depth: usize,
    /// Size of one file Stella keeps in memory (a package database, a manifest, a JSON
    /// blob of the archive), of one binary or archive read to derive its packages (a
    /// larger one is skipped, with the reason), and of what is inflated from it.
    pub max_file_bytes: u64,
    /// Layers of one image.
    pub max_layers: usize,
    /// Bytes one image holds in memory while it is read: every kept file's content,
    /// every derived record (as JSON), every JSON file of the outer archive. A hard link
    /// shares its target's bytes and adds none. Counted as they are kept, not refunded
    /// when a later layer deletes them (the layers of an archive are all held until its
    /// manifest, written last, is read).
    pub max_kept_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total_bytes: 16 << 30,
            max_entries: 2_000_000,
            max_depth: 64,
            max_file_bytes: 64 << 20,
            max_layers: 256,
            max_kept_bytes: 512 << 20,
        }
    }
}

/// Which cap an archive exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    TotalBytes,
    Entries,
    Depth,
    FileBytes,
    Layers,
    KeptBytes,
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cap::TotalBytes => "max_total_bytes",
            Cap::Entries => "max_entries",
            Cap::Depth => "max_depth",
            Cap::FileBytes => "max_file_bytes",
            Cap::Layers => "max_layers",
            Cap::KeptBytes => "max_kept_bytes",
        })
    }
}

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("entry {entry:?} exceeds {cap} ({limit})")]
    CapExceeded { entry: String, cap: Cap, limit: u64 },
    #[error("entry {entry:?} has an absolute path")]
    AbsolutePath { entry: String },
    #[error("entry {entry:?} has a `..` component")]
    PathTraversal { entry: String },
    #[error("entry {entry:?} links to {target:?}, outside the root")]
    LinkEscapes { entry: String, target: String },
    #[error("entry {entry:?} is a device file or fifo")]
    DeviceFile { entry: String },
    #[error("blob {entry:?} has digest {actual}, not the one it is named by")]
    DigestMismatch { entry: String, actual: String },
    #[error("{entry:?} is missing from the archive")]
    Missing { entry: String },
    #[error("{entry:?} is not a valid manifest: {reason}")]
    Manifest { entry: String, reason: String },
    #[error("not an image archive: no index.json or manifest.json")]
    NotAnImage,
    #[error("cannot read {entry:?}: {reason}")]
    Read { entry: String, reason: String },
}

impl ImageError {
    /// A read error of `entry`, or the cap an inner reader hit.
    pub fn read(entry: &str, e: std::io::Error) -> Self {
        // A cap hit deep inside a decompressor comes back as an I/O error carrying it.
        if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ImageError>()) {
            return inner.clone();
        }
        ImageError::Read {
            entry: entry.to_owned(),
            reason: e.to_string(),
        }
    }
}
