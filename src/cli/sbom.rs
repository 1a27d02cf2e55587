//! `stella sbom IMAGE.tar`: an SBOM of a container image archive (`docker save`, or an
//! OCI archive), made on this machine with no server: the archive is streamed once (its
//! layers applied in order with whiteouts, only package databases and manifests kept),
//! the OS and language packages found, and a CycloneDX 1.5 document written. What it
//! found goes to standard error as one summary line.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use stella_domain::image::{analyze, cyclonedx, read_archive, ImageFormat, Limits};

use crate::cli::output::{errln, outln};

/// The SBOM formats `stella sbom` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SbomFormat {
    /// CycloneDX 1.5 JSON.
    Cyclonedx,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Sbom {
    /// The image archive: `docker save -o app.tar IMAGE`, or an OCI archive
    /// (gzip, zstd or plain layers).
    image: PathBuf,
    /// Write the SBOM to this file (default: standard output).
    #[arg(long = "out", short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// The SBOM's format.
    #[arg(long, value_enum, default_value = "cyclonedx")]
    format: SbomFormat,
}

/// Whether the file at `path` is a tar archive (an image) rather than an SBOM: the
/// `ustar` magic at offset 257.
pub(crate) fn is_tar(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 262];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head[257..262] == b"ustar")
}

/// The CycloneDX SBOM of the image archive at `path` (streamed, never held whole), and
/// the summary line of what was found.
pub(crate) fn image_sbom(path: &Path) -> anyhow::Result<(serde_json::Value, String)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let image = read_archive(std::io::BufReader::new(file), &Limits::default())
        .with_context(|| format!("{} was refused", path.display()))?;
    let inventory = analyze(&image.rootfs);
    let document = cyclonedx::document(&image, &inventory);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for p in &inventory.packages {
        *kinds
            .entry(format!("{:?}", p.ty).to_lowercase())
            .or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let summary = format!(
        "# {} ({}), {} layers, {} packages ({}){}{}",
        image.digest,
        match image.format {
            ImageFormat::DockerArchive => "docker-archive",
            ImageFormat::OciArchive => "oci-archive",
        },
        image.layers.len(),
        inventory.packages.len(),
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        },
        inventory
            .distro
            .as_ref()
            .map(|d| format!(
                ", {} {}",
                d.id,
                d.version_id.as_deref().unwrap_or("(rolling)")
            ))
            .unwrap_or_default(),
        if inventory.skipped.is_empty() {
            String::new()
        } else {
            format!("; {} files unreadable", inventory.skipped.len())
        }
    );
    Ok((document, summary))
}

impl Sbom {
    pub(crate) fn run(&self) -> anyhow::Result<()> {
        let (document, summary) = match self.format {
            SbomFormat::Cyclonedx => image_sbom(&self.image)?,
        };
        let text = serde_json::to_string_pretty(&document)?;
        match &self.out {
            Some(path) => {
                let mut out = std::fs::File::create(path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                out.write_all(text.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            None => outln!("{text}"),
        }
        errln!("{summary}");
        Ok(())
    }
}
