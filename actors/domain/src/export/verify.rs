//! Checking an export offline: what `stella export verify` does, as pure code over a
//! reader.
//!
//! Two steps:
//! 1. **Reading** gathers [`Contents`]: the size and SHA-256 of every file, and the bytes
//!    of the four seal files (`export.json`, `export.json.dsse`, `provenance.json`,
//!    `provenance.json.dsse`). A bundle is read by [`read_bundle`], one pass over the
//!    `tar.zst` stream: each member is hashed as it streams by, never held (only the seal
//!    files are, and they are bounded), so a bundle of any size is checked in constant
//!    memory. The bundle is hostile input until proven otherwise: a name that is absolute,
//!    climbs (`..`), has a backslash or a drive letter, a link, a device, an extension
//!    header, a name seen twice, or a member over [`ReadLimits`] is refused before its
//!    bytes are read, naming the member. A downloaded folder is read by the caller (it
//!    owns the file system) into [`Contents::folder`], after [`check_name`] on each name.
//! 2. **Checking** ([`check`]) compares the contents with the manifest: every file it
//!    lists is there with its size and SHA-256; in a bundle nothing else is; the
//!    provenance's subjects are exactly the listed files and `export.json`; each DSSE
//!    envelope carries the very bytes of the file beside it, and, given keys, is signed
//!    by one of them. Without keys the signatures are not checked and the report says so,
//!    with the key ids the envelopes claim.
//!
//! Every finding is a [`Problem`] naming its file; [`ProblemKind`] tells a file that
//! does not match what the export pinned (content) from a pin that is not authentic
//! (signature), so a caller can exit with distinct codes.
//!
//! A caller that acts on an export rather than reporting on it (`stella mirror import`)
//! reads the bundle with [`read_bundle_keeping`], which also hands each member's bytes
//! to it as they are hashed (so the bundle is read once), and asks [`accept`]: the
//! export checked with its trusted keys, as an [`Accepted`] manifest with the key that
//! signed it, or the first thing wrong as a [`Rejected`] naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::manifest::{
    ExportManifest, FileEntry, MANIFEST_NAME, MANIFEST_PAYLOAD_TYPE, MANIFEST_SIGNATURE,
    PROVENANCE_NAME, PROVENANCE_SIGNATURE,
};
use crate::canonical::sha256_hex;
use crate::dsse::{self, Envelope, PublicKey};
use crate::intoto::{self, Statement};

/// The files that seal an export: not listed in its manifest, which they are about.
pub const SEAL_FILES: [&str; 4] = [
    MANIFEST_NAME,
    MANIFEST_SIGNATURE,
    PROVENANCE_NAME,
    PROVENANCE_SIGNATURE,
];

/// The tar block size.
const BLOCK: usize = 512;

/// What a bundle may hold before it is refused. Stella's own bundles are far inside
/// these; they bound what a hostile one can make a verifier read or hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Members (files and folders).
    pub max_members: usize,
    /// Bytes of one member.
    pub max_member_bytes: u64,
    /// Bytes of every member together, after decompression.
    pub max_total_bytes: u64,
    /// Bytes of one seal file: these are held in memory to be parsed.
    pub max_seal_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_members: 1_000_000,
            max_member_bytes: 8 * 1024 * 1024 * 1024,
            max_total_bytes: 64 * 1024 * 1024 * 1024,
            max_seal_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why an export could not be checked at all: it is not readable as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a `tar.zst`: not zstd, truncated, a tar header that does not add up.
    #[error("the bundle is not a readable tar.zst: {0}")]
    Unreadable(String),
    /// A member Stella never writes and an extractor could be hurt by.
    #[error("member {name:?} is refused: {reason}")]
    Refused { name: String, reason: String },
    /// No `export.json`, or one that is not a manifest.
    #[error("{0}")]
    NotAnExport(String),
}

/// What was read of an export: every file's size and digest, and the seal files' bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// Every file but the seal files, by name.
    pub files: BTreeMap<String, FileEntry>,
    /// The seal files found, by name.
    pub seal: BTreeMap<String, Vec<u8>>,
    /// Whether `files` is every file there is (a bundle), so an unlisted one is a problem,
    /// or only the ones looked for (a folder, which may hold anything else).
    pub complete: bool,
}

impl Contents {
    /// The contents of a folder, to be filled by the caller: files not listed are not
    /// looked for.
    pub fn folder() -> Self {
        Self::default()
    }

    /// Whether `name` is one of the seal files.
    pub fn is_seal(name: &str) -> bool {
        SEAL_FILES.contains(&name)
    }
}

/// Checks a member or file name: relative, no `.`, `..` or empty segments, no backslash,
/// NUL or drive letter; what `TarWriter` writes and what is safe to join to a folder.
pub fn check_name(name: &str) -> Result<(), VerifyError> {
    let refuse = |reason: &str| {
        Err(VerifyError::Refused {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return refuse("empty name");
    }
    if name.starts_with('/') {
        return refuse("absolute path");
    }
    if name.contains('\\') || name.contains('\0') {
        return refuse("backslash or NUL in the name");
    }
    let first = name.split('/').next().unwrap_or_default();
    if first.len() >= 2 && first.as_bytes()[1] == b':' && first.as_bytes()[0].is_ascii_alphabetic()
    {
        return refuse("drive letter");
    }
    if name.split('/').any(|s| s == "..") {
        return refuse("path traversal (`..`)");
    }
    if name.split('/').any(|s| s.is_empty() || s == ".") {
        return refuse("empty or `.` path segment");
    }
    Ok(())
}

/// Reads a `tar.zst` bundle from `reader` (see the module documentation). The zstd frame
/// checksum is checked, and the archive must end as a tar archive does (zero blocks).
pub fn read_bundle(reader: impl Read, limits: &ReadLimits) -> Result<Contents, VerifyError> {
    let decoder = zstd::stream::read::Decoder::new(reader)
        .map_err(|err| VerifyError::Unreadable(format!("zstd: {err}")))?;
    read_tar(decoder, limits)
}

/// Reads an uncompressed tar archive: [`read_bundle`] without zstd.
pub fn read_tar(reader: impl Read, limits: &ReadLimits) -> Result<Contents, VerifyError> {
    read_tar_keeping(reader, limits, |_| Ok(None::<io::Sink>)).map_err(|err| match err {
        ReadError::Bundle(err) => err,
        // Nothing is kept, so nothing can fail to be.
        ReadError::Keep { name, source } => VerifyError::Unreadable(format!("{name}: {source}")),
    })
}

/// Why [`read_bundle_keeping`] stopped: the bundle, or the caller's copy of a member.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Bundle(#[from] VerifyError),
    /// Writing a member's bytes where `keep` said failed: the reader's side, not the
    /// bundle's.
    #[error("cannot keep member {name:?}: {source}")]
    Keep { name: String, source: io::Error },
}

/// [`read_bundle`] that also hands every member but the seal files to the caller as it
/// streams by: `keep(name)` says where a copy of its bytes goes (`None`: hashed only).
/// Members come in the bundle's order, each once, after the same checks as in
/// [`read_bundle`], and each writer is flushed after its member's last byte.
pub fn read_bundle_keeping<W: Write>(
    reader: impl Read,
    limits: &ReadLimits,
    keep: impl FnMut(&str) -> io::Result<Option<W>>,
) -> Result<Contents, ReadError> {
    let decoder = zstd::stream::read::Decoder::new(reader)
        .map_err(|err| VerifyError::Unreadable(format!("zstd: {err}")))?;
    read_tar_keeping(decoder, limits, keep)
}

fn read_tar_keeping<W: Write>(
    mut reader: impl Read,
    limits: &ReadLimits,
    mut keep: impl FnMut(&str) -> io::Result<Option<W>>,
) -> Result<Contents, ReadError> {
    let mut contents = Contents {
        complete: true,
        ..Contents::default()
    };
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    let mut block = [0u8; BLOCK];
    loop {
        if !read_block(&mut reader, &mut block)? {
            // Ends without the two zero blocks: readers accept it, and a missing member
            // is found by the check anyway.
            return Ok(contents);
        }
        if block.iter().all(|&b| b == 0) {
            drain_zeros(&mut reader)?;
            return Ok(contents);
        }
        let header = Header::parse(&block)?;
        if seen.len() >= limits.max_members {
            return Err(ReadError::from(VerifyError::Refused {
                name: header.name,
                reason: format!("the bundle has more than {} members", limits.max_members),
            }));
        }
        let refuse = |reason: String| VerifyError::Refused {
            name: header.name.clone(),
            reason,
        };
        let kind = match header.kind {
            b'0' | b'\0' | b'7' => Kind::File,
            b'5' => Kind::Folder,
            b'1' => return Err(ReadError::from(refuse("a hard link".into()))),
            b'2' => return Err(ReadError::from(refuse("a symbolic link".into()))),
            b'3' | b'4' | b'6' => return Err(ReadError::from(refuse("a device or FIFO".into()))),
            b'x' | b'g' => {
                return Err(ReadError::from(refuse(
                    "a PAX extended header (Stella bundles have none)".into(),
                )))
            }
            b'L' | b'K' => {
                return Err(ReadError::from(refuse(
                    "a GNU long name or link (Stella bundles have none)".into(),
                )))
            }
            other => {
                return Err(ReadError::from(refuse(format!(
                    "an entry of unknown type {:?}",
                    char::from(other)
                ))))
            }
        };
        let name = match kind {
            Kind::Folder => header.name.trim_end_matches('/').to_owned(),
            Kind::File => header.name.clone(),
        };
        check_name(&name)?;
        if !seen.insert(name.clone()) {
            return Err(ReadError::from(refuse("the name appears twice".into())));
        }
        if header.size > limits.max_member_bytes {
            return Err(ReadError::from(refuse(format!(
                "{} bytes, over the limit of {}",
                header.size, limits.max_member_bytes
            ))));
        }
        total += header.size;
        if total > limits.max_total_bytes {
            return Err(ReadError::from(refuse(format!(
                "the members exceed {} bytes together",
                limits.max_total_bytes
            ))));
        }
        if kind == Kind::Folder {
            skip(&mut reader, padded(header.size), &name)?;
            continue;
        }
        let mut body = (&mut reader).take(header.size);
        if Contents::is_seal(&name) {
            if header.size > limits.max_seal_bytes {
                return Err(ReadError::from(refuse(format!(
                    "{} bytes, over the limit of {} for a seal file",
                    header.size, limits.max_seal_bytes
                ))));
            }
            let mut bytes = Vec::with_capacity(usize::try_from(header.size).unwrap_or(0));
            body.read_to_end(&mut bytes).map_err(unreadable)?;
            if bytes.len() as u64 != header.size {
                return Err(ReadError::from(truncated(&name)));
            }
            contents.seal.insert(name.clone(), bytes);
        } else {
            let mut kept = keep(&name).map_err(|source| ReadError::Keep {
                name: name.clone(),
                source,
            })?;
            let (copied, sha256) = hash_member(&mut body, &name, kept.as_mut())?;
            if copied != header.size {
                return Err(truncated(&name).into());
            }
            contents.files.insert(
                name.clone(),
                FileEntry {
                    name,
                    size: copied,
                    sha256,
                },
            );
        }
        skip(&mut reader, padded(header.size) - header.size, "padding")?;
    }
}

/// Copies a member's bytes from `body` into `kept` (when given) while hashing them: its
/// size and SHA-256. A read is the bundle's failure, a write the keeper's.
fn hash_member<W: Write>(
    body: &mut impl Read,
    name: &str,
    mut kept: Option<&mut W>,
) -> Result<(u64, String), ReadError> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let keep_error = |source| ReadError::Keep {
        name: name.to_owned(),
        source,
    };
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(unreadable(err).into()),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        if let Some(out) = kept.as_mut() {
            out.write_all(&buf[..n]).map_err(keep_error)?;
        }
    }
    if let Some(out) = kept {
        out.flush().map_err(keep_error)?;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Folder,
}

/// The fields of a ustar (or old GNU) header this reader uses.
struct Header {
    name: String,
    size: u64,
    kind: u8,
}

impl Header {
    fn parse(block: &[u8; BLOCK]) -> Result<Self, VerifyError> {
        let stored = octal(&block[148..156])
            .ok_or_else(|| VerifyError::Unreadable("a tar header checksum is not octal".into()))?;
        let mut unsigned = 0u64;
        let mut signed = 0i64;
        for (i, &b) in block.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err(VerifyError::Unreadable(
                "a tar header's checksum does not match: not a tar archive, or a damaged one"
                    .into(),
            ));
        }
        let field = |range: std::ops::Range<usize>| {
            let raw = &block[range];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8(raw[..end].to_vec())
        };
        let not_utf8 = |_| VerifyError::Unreadable("a member name is not UTF-8".into());
        let mut name = field(0..100).map_err(not_utf8)?;
        // POSIX ustar keeps the start of a long name in `prefix`; old GNU headers
        // ("ustar  \0") use those bytes for other fields.
        if &block[257..263] == b"ustar\0" {
            let prefix = field(345..500).map_err(not_utf8)?;
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let size = octal(&block[124..136]).ok_or_else(|| VerifyError::Refused {
            name: name.clone(),
            reason: "its size is not an octal ustar number".into(),
        })?;
        Ok(Self {
            name,
            size,
            kind: block[156],
        })
    }
}

/// An octal number field: digits, surrounded by spaces or NULs.
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// `size` rounded up to whole blocks.
fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Reads one whole block: `false` at a clean end of input.
fn read_block(reader: &mut impl Read, block: &mut [u8; BLOCK]) -> Result<bool, VerifyError> {
    let mut filled = 0;
    while filled < BLOCK {
        match reader.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(VerifyError::Unreadable(
                    "the archive ends inside a header".into(),
                ))
            }
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(unreadable(err)),
        }
    }
    Ok(true)
}

/// Reads to the end, which must be zeros: the end-of-archive blocks and record padding.
/// Reading to the end also makes zstd check its frame checksum.
fn drain_zeros(reader: &mut impl Read) -> Result<(), VerifyError> {
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(VerifyError::Unreadable(
                "data after the end of the archive".into(),
            ));
        }
    }
}

fn skip(reader: &mut impl Read, n: u64, what: &str) -> Result<(), VerifyError> {
    let skipped = io::copy(&mut reader.take(n), &mut io::sink()).map_err(unreadable)?;
    if skipped != n {
        return Err(truncated(what));
    }
    Ok(())
}

fn unreadable(err: io::Error) -> VerifyError {
    VerifyError::Unreadable(err.to_string())
}

fn truncated(name: &str) -> VerifyError {
    VerifyError::Unreadable(format!("the archive ends inside {name:?}"))
}

/// Whether a problem is a file that does not match what the export pinned, or a pin that
/// is not authentic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A listed file missing, of another size or digest; an unlisted file; provenance
    /// subjects that are not the listed files.
    Content,
    /// A signature missing, malformed, over other bytes, or (with keys) not verifying.
    Signature,
}

/// One thing wrong with an export, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub file: String,
    pub message: String,
}

/// Whether the signatures were checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Signatures {
    /// Both envelopes verify with the given keys, signed by these.
    Verified { key_ids: Vec<String> },
    /// No key was given: the envelopes were only checked to carry the files' bytes. The
    /// key ids they claim (unauthenticated hints).
    NotChecked { claimed_key_ids: Vec<String> },
}

/// The manifest's fields a report names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSummary {
    pub profile: ProfileSummary,
    pub kind: String,
    pub as_of: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSummary {
    pub name: String,
    pub revision: u64,
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub profile: ProfileSummary,
    pub kind: String,
    pub as_of: String,
    /// Files the manifest lists, and their bytes together.
    pub files: usize,
    pub bytes: u64,
    pub signatures: Signatures,
    /// Empty when the export checks out.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether nothing is wrong (the signatures may still be unchecked).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The worst kind of problem found: content before signature.
    pub fn worst(&self) -> Option<ProblemKind> {
        self.problems.iter().map(|p| p.kind).min()
    }
}

/// The manifest's file list, checked for names that are safe to open: what a caller
/// reading a folder hashes.
pub fn manifest_files(manifest: &[u8]) -> Result<Vec<FileEntry>, VerifyError> {
    let summary = parse_manifest(manifest)?;
    for file in &summary.files {
        check_name(&file.name)?;
    }
    Ok(summary.files)
}

fn parse_manifest(bytes: &[u8]) -> Result<ManifestSummary, VerifyError> {
    serde_json::from_slice(bytes).map_err(|err| {
        VerifyError::NotAnExport(format!("{MANIFEST_NAME} is not an export manifest: {err}"))
    })
}

/// Checks `contents` against its manifest and, with `keys`, its signatures (see the
/// module documentation). An error means there is no manifest to check against.
pub fn check(contents: &Contents, keys: Option<&[PublicKey]>) -> Result<Report, VerifyError> {
    checked(contents, keys).map(|(report, _)| report)
}

/// [`check`], and the keys that verified `export.json.dsse` (none without keys).
fn checked(
    contents: &Contents,
    keys: Option<&[PublicKey]>,
) -> Result<(Report, Vec<String>), VerifyError> {
    let manifest_bytes = contents.seal.get(MANIFEST_NAME).ok_or_else(|| {
        VerifyError::NotAnExport(format!(
            "there is no {MANIFEST_NAME}: not a Stella export, or not all of one"
        ))
    })?;
    let manifest = parse_manifest(manifest_bytes)?;
    let mut problems = Vec::new();
    let content = |file: &str, message: String| Problem {
        kind: ProblemKind::Content,
        file: file.to_owned(),
        message,
    };

    let mut listed = BTreeSet::new();
    for file in &manifest.files {
        if let Err(err) = check_name(&file.name) {
            problems.push(content(MANIFEST_NAME, err.to_string()));
            continue;
        }
        if Contents::is_seal(&file.name) || !listed.insert(file.name.as_str()) {
            problems.push(content(
                MANIFEST_NAME,
                format!("lists {:?} twice or as a seal file", file.name),
            ));
            continue;
        }
        match contents.files.get(&file.name) {
            None => problems.push(content(
                &file.name,
                format!("listed in {MANIFEST_NAME} but missing"),
            )),
            Some(found) if found.size != file.size || found.sha256 != file.sha256 => {
                problems.push(content(
                    &file.name,
                    format!(
                        "sha256 {} ({} bytes), {MANIFEST_NAME} lists sha256 {} ({} bytes)",
                        found.sha256, found.size, file.sha256, file.size
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if contents.complete {
        for name in contents.files.keys() {
            if !listed.contains(name.as_str()) {
                problems.push(content(name, format!("not listed in {MANIFEST_NAME}")));
            }
        }
    }

    // The provenance must be about exactly the listed files and the manifest.
    match contents.seal.get(PROVENANCE_NAME) {
        None => problems.push(content(PROVENANCE_NAME, "missing".into())),
        Some(bytes) => match Statement::from_json(bytes) {
            Err(err) => problems.push(content(PROVENANCE_NAME, err.to_string())),
            Ok(statement) => {
                let subjects: BTreeMap<&str, Option<&String>> = statement
                    .subjects()
                    .iter()
                    .map(|s| (s.name.as_str(), s.digest.get("sha256")))
                    .collect();
                let manifest_sha256 = sha256_hex(manifest_bytes);
                let mut expected: BTreeMap<&str, Option<&String>> = manifest
                    .files
                    .iter()
                    .map(|f| (f.name.as_str(), Some(&f.sha256)))
                    .collect();
                expected.insert(MANIFEST_NAME, Some(&manifest_sha256));
                if subjects != expected {
                    let differs = expected
                        .iter()
                        .find(|(name, sha)| subjects.get(*name) != Some(sha))
                        .map(|(name, _)| *name)
                        .or_else(|| {
                            subjects
                                .keys()
                                .find(|name| !expected.contains_key(*name))
                                .copied()
                        })
                        .unwrap_or_default();
                    problems.push(content(
                        PROVENANCE_NAME,
                        format!(
                            "its subjects are not the files {MANIFEST_NAME} lists (first \
                             difference: {differs:?})"
                        ),
                    ));
                }
            }
        },
    }

    let mut verified_by = BTreeSet::new();
    let mut claimed = BTreeSet::new();
    let mut manifest_signers = Vec::new();
    for (file, envelope_name, payload_type) in [
        (MANIFEST_NAME, MANIFEST_SIGNATURE, MANIFEST_PAYLOAD_TYPE),
        (PROVENANCE_NAME, PROVENANCE_SIGNATURE, intoto::PAYLOAD_TYPE),
    ] {
        let Some(signed) = contents.seal.get(file) else {
            continue;
        };
        match signature(contents, signed, envelope_name, payload_type, keys) {
            Ok((ids, claims)) => {
                if file == MANIFEST_NAME {
                    manifest_signers.clone_from(&ids);
                }
                verified_by.extend(ids);
                claimed.extend(claims);
            }
            Err(message) => problems.push(Problem {
                kind: ProblemKind::Signature,
                file: envelope_name.to_owned(),
                message,
            }),
        }
    }
    let signatures = match keys {
        Some(_) => Signatures::Verified {
            key_ids: verified_by.into_iter().collect(),
        },
        None => Signatures::NotChecked {
            claimed_key_ids: claimed.into_iter().collect(),
        },
    };
    let report = Report {
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|f| f.size).sum(),
        profile: manifest.profile,
        kind: manifest.kind,
        as_of: manifest.as_of,
        signatures,
        problems,
    };
    Ok((report, manifest_signers))
}

/// An export [`accept`] found sound: its manifest, read from the verified bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub manifest: ExportManifest,
    /// SHA-256 of `export.json`.
    pub manifest_sha256: String,
    /// The trusted key that signed `export.json`: the exporting instance.
    pub key_id: String,
}

/// Why [`accept`] refused an export, naming the file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// A file that does not match what the signed manifest pins, or provenance that does
    /// not name exactly the listed files.
    #[error("checksum failure in {file}: {message}")]
    Checksum { file: String, message: String },
    /// A signature missing, over other bytes, or not by a trusted key.
    #[error("signature failure in {file}: {message}")]
    Signature { file: String, message: String },
    /// Not readable as an export: not a `tar.zst`, a refused entry, no manifest.
    #[error("{0}")]
    Unreadable(VerifyError),
}

impl Rejected {
    /// The file at fault: the refused member, `export.json` for a bundle without a
    /// readable one, or [`ARCHIVE`] when the archive itself is not readable.
    pub fn file(&self) -> &str {
        match self {
            Rejected::Checksum { file, .. } | Rejected::Signature { file, .. } => file,
            Rejected::Unreadable(VerifyError::Refused { name, .. }) => name,
            Rejected::Unreadable(VerifyError::NotAnExport(_)) => MANIFEST_NAME,
            Rejected::Unreadable(VerifyError::Unreadable(_)) => ARCHIVE,
        }
    }
}

impl From<VerifyError> for Rejected {
    fn from(err: VerifyError) -> Self {
        Rejected::Unreadable(err)
    }
}

/// What [`Rejected::file`] names when the bundle's archive as a whole is at fault.
pub const ARCHIVE: &str = "(the bundle's archive)";

/// [`check`] for a caller that acts on the export (a mirror import): with `trusted`
/// keys, nothing may be wrong. The manifest as signed, its digest and its signer; or the
/// first problem, content before signature (as `stella export verify` ranks them).
pub fn accept(contents: &Contents, trusted: &[PublicKey]) -> Result<Accepted, Rejected> {
    let (report, signers) = checked(contents, Some(trusted))?;
    let worst = report.worst();
    if let Some(problem) = report.problems.into_iter().find(|p| Some(p.kind) == worst) {
        return Err(match problem.kind {
            ProblemKind::Content => Rejected::Checksum {
                file: problem.file,
                message: problem.message,
            },
            ProblemKind::Signature => Rejected::Signature {
                file: problem.file,
                message: problem.message,
            },
        });
    }
    let bytes = contents
        .seal
        .get(MANIFEST_NAME)
        .ok_or_else(|| VerifyError::NotAnExport(format!("there is no {MANIFEST_NAME}")))?;
    let manifest = ExportManifest::from_json(bytes).map_err(|err| {
        VerifyError::NotAnExport(format!("{MANIFEST_NAME} is not an export manifest: {err}"))
    })?;
    let key_id = signers
        .into_iter()
        .next()
        .ok_or_else(|| Rejected::Signature {
            file: MANIFEST_SIGNATURE.to_owned(),
            message: "no trusted key signed it".to_owned(),
        })?;
    Ok(Accepted {
        manifest,
        manifest_sha256: sha256_hex(bytes),
        key_id,
    })
}

/// Checks the envelope `envelope_name` over `signed`: it must carry exactly those bytes,
/// as `payload_type`, and verify with `keys` when given. The verifying key ids and the
/// claimed ones; the problem otherwise.
fn signature(
    contents: &Contents,
    signed: &[u8],
    envelope_name: &str,
    payload_type: &str,
    keys: Option<&[PublicKey]>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let bytes = contents
        .seal
        .get(envelope_name)
        .ok_or_else(|| "missing: the file it signs is unsigned".to_owned())?;
    let envelope = Envelope::from_json(bytes).map_err(|err| err.to_string())?;
    let claimed: Vec<String> = envelope
        .signatures
        .iter()
        .map(|s| s.keyid.clone())
        .filter(|id| !id.is_empty())
        .collect();
    let payload = envelope
        .payload_unverified()
        .map_err(|err| err.to_string())?;
    if payload != signed {
        return Err(format!(
            "signs other bytes than {}",
            envelope_name.trim_end_matches(".dsse")
        ));
    }
    if envelope.payload_type != payload_type {
        return Err(format!(
            "payload type is {:?}, expected {payload_type:?}",
            envelope.payload_type
        ));
    }
    match keys {
        None => Ok((Vec::new(), claimed)),
        Some(keys) => dsse::verify_as(&envelope, payload_type, keys)
            .map(|verified| (verified.key_ids, claimed))
            .map_err(|err| err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::dsse::SigningKey;
    use crate::export::manifest::{provenance_statement, ExportManifest, ProfileRef};
    use crate::export::tar::{write_tar_zst, zstd_encoder, TarWriter};

    fn key() -> SigningKey {
        SigningKey::generate([9; 32])
    }

    /// A sealed export's files: two members, the manifest, the provenance, signatures.
    fn files(key: &SigningKey) -> Vec<(String, Vec<u8>)> {
        let members: Vec<(String, Vec<u8>)> = vec![
            (
                "sboms/a.json".into(),
                b"{\"bomFormat\":\"CycloneDX\"}".to_vec(),
            ),
            (
                "verdicts/a.json".into(),
                b"{\"disposition\":\"warn\"}".to_vec(),
            ),
        ];
        let mut manifest = ExportManifest::new(
            ProfileRef {
                name: "weekly".into(),
                revision: 2,
            },
            "evidence",
            json!({"targets": ["app"]}),
            chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        );
        for (name, bytes) in &members {
            manifest
                .add_file(FileEntry::of(name.clone(), bytes))
                .unwrap();
        }
        let manifest_bytes = manifest.to_canonical_bytes();
        let statement = provenance_statement(&manifest, &[]).unwrap();
        let mut out = members;
        out.push((
            MANIFEST_SIGNATURE.into(),
            dsse::sign(MANIFEST_PAYLOAD_TYPE, &manifest_bytes, key).to_json(),
        ));
        out.push((MANIFEST_NAME.into(), manifest_bytes));
        out.push((PROVENANCE_NAME.into(), statement.to_canonical_bytes()));
        out.push((PROVENANCE_SIGNATURE.into(), statement.sign(key).to_json()));
        out
    }

    fn bundle(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        write_tar_zst(Vec::new(), 1_767_225_600, &refs).unwrap()
    }

    /// A raw ustar header block, for entries `TarWriter` refuses to write.
    fn raw_header(name: &str, size: u64, kind: u8) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn tar_with(entries: &[([u8; BLOCK], &[u8])]) -> Vec<u8> {
        let mut plain = Vec::new();
        for (header, body) in entries {
            plain.extend_from_slice(header);
            plain.extend_from_slice(body);
            plain.resize(padded(plain.len() as u64) as usize, 0);
        }
        plain.extend_from_slice(&[0u8; 2 * BLOCK]);
        let mut z = zstd_encoder(Vec::new()).unwrap();
        z.write_all(&plain).unwrap();
        z.finish().unwrap()
    }

    fn verify(bytes: &[u8], keys: Option<&[PublicKey]>) -> Result<Report, VerifyError> {
        check(&read_bundle(bytes, &ReadLimits::default())?, keys)
    }

    #[test]
    fn a_sealed_bundle_checks_out_with_the_key_and_says_so_without_it() {
        let key = key();
        let bytes = bundle(&files(&key));
        let keys = [key.public_key().clone()];
        let report = verify(&bytes, Some(&keys[..])).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.files, 2);
        assert_eq!(report.profile.name, "weekly");
        assert_eq!(
            report.signatures,
            Signatures::Verified {
                key_ids: vec![key.key_id().to_owned()]
            }
        );
        let report = verify(&bytes, None).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(
            report.signatures,
            Signatures::NotChecked {
                claimed_key_ids: vec![key.key_id().to_owned()]
            }
        );
    }

    #[test]
    fn a_changed_member_is_a_content_problem_naming_it() {
        let key = key();
        let mut files = files(&key);
        files[1].1[3] ^= 1;
        let report = verify(&bundle(&files), Some(&[key.public_key().clone()][..])).unwrap();
        assert_eq!(report.worst(), Some(ProblemKind::Content));
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].file, "verdicts/a.json");
        assert!(report.problems[0].message.contains("lists sha256"));
    }

    #[test]
    fn missing_and_extra_members_are_named() {
        let key = key();
        let mut files = files(&key);
        files.remove(0);
        files.push(("notes.txt".into(), b"hello".to_vec()));
        let report = verify(&bundle(&files), None).unwrap();
        let named: Vec<(&str, &str)> = report
            .problems
            .iter()
            .map(|p| (p.file.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("sboms/a.json", "listed in export.json but missing"),
                ("notes.txt", "not listed in export.json")
            ]
        );
        // A folder may hold other files: only what is listed is looked for.
        let mut folder = read_bundle(&bundle(&files)[..], &ReadLimits::default()).unwrap();
        folder.complete = false;
        let report = check(&folder, None).unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
    }

    #[test]
    fn a_wrong_key_or_a_rewritten_manifest_is_a_signature_problem() {
        let key = key();
        let other = SigningKey::generate([1; 32]);
        let bytes = bundle(&files(&key));
        let report = verify(&bytes, Some(&[other.public_key().clone()][..])).unwrap();
        assert_eq!(report.worst(), Some(ProblemKind::Signature));
        let files_named: BTreeSet<&str> = report.problems.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            files_named,
            BTreeSet::from([MANIFEST_SIGNATURE, PROVENANCE_SIGNATURE])
        );
        assert!(
            report.problems[0]
                .message
                .contains("no signature is by a trusted key"),
            "{report:?}"
        );

        // A manifest re-signed by another key after a member changed: the files match
        // the new manifest, but the signature is not by the trusted key.
        let mut files = files(&key);
        files[0].1[0] = b' ';
        let forged = {
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&files.iter().find(|(n, _)| n == MANIFEST_NAME).unwrap().1)
                    .unwrap();
            manifest["files"][0]["sha256"] = sha256_hex(&files[0].1).into();
            crate::canonical::canonical_bytes(&manifest)
        };
        for (name, bytes) in files.iter_mut() {
            if name == MANIFEST_NAME {
                *bytes = forged.clone();
            }
            if name == MANIFEST_SIGNATURE {
                *bytes = dsse::sign(MANIFEST_PAYLOAD_TYPE, &forged, &other).to_json();
            }
        }
        let report = verify(&bundle(&files), Some(&[key.public_key().clone()][..])).unwrap();
        // The provenance still names the old digest: both kinds are found, content first.
        assert_eq!(report.worst(), Some(ProblemKind::Content));
        assert!(report
            .problems
            .iter()
            .any(|p| p.file == MANIFEST_SIGNATURE && p.kind == ProblemKind::Signature));
        // Without a key, an envelope over other bytes is still caught.
        let mut files = self::files(&key);
        for (name, bytes) in files.iter_mut() {
            if name == MANIFEST_SIGNATURE {
                *bytes = dsse::sign(MANIFEST_PAYLOAD_TYPE, b"{}", &key).to_json();
            }
        }
        let report = verify(&bundle(&files), None).unwrap();
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].kind, ProblemKind::Signature);
        assert!(report.problems[0].message.contains("signs other bytes"));
    }

    #[test]
    fn hostile_entries_are_refused_by_name() {
        for (name, kind, reason) in [
            ("../evil", b'0', "traversal"),
            ("a/../../evil", b'0', "traversal"),
            ("/etc/passwd", b'0', "absolute"),
            ("C:/evil", b'0', "drive letter"),
            ("a\\..\\evil", b'0', "backslash"),
            ("link", b'2', "symbolic link"),
            ("hard", b'1', "hard link"),
            ("dev", b'3', "device"),
            ("pax", b'x', "PAX"),
            ("gnu", b'L', "GNU long name"),
        ] {
            let bytes = tar_with(&[(raw_header(name, 0, kind), b"")]);
            let err = read_bundle(&bytes[..], &ReadLimits::default()).unwrap_err();
            match &err {
                VerifyError::Refused { reason: r, .. } => {
                    assert!(r.contains(reason), "{name}: {err}")
                }
                other => panic!("{name}: {other}"),
            }
        }
        let twice = tar_with(&[
            (raw_header("a.json", 2, b'0'), b"{}"),
            (raw_header("a.json", 2, b'0'), b"{}"),
        ]);
        let err = read_bundle(&twice[..], &ReadLimits::default()).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let limits = ReadLimits {
            max_member_bytes: 10,
            ..ReadLimits::default()
        };
        let big = tar_with(&[(raw_header("big.json", 11, b'0'), &[b' '; 11])]);
        let err = read_bundle(&big[..], &limits).unwrap_err();
        assert_eq!(
            err,
            VerifyError::Refused {
                name: "big.json".into(),
                reason: "11 bytes, over the limit of 10".into()
            }
        );
        // Folders are fine (a bundle repacked by tar has them); a damaged header is not.
        let folder = tar_with(&[(raw_header("sboms/", 0, b'5'), b"")]);
        assert!(read_bundle(&folder[..], &ReadLimits::default()).is_ok());
        let mut damaged = raw_header("a.json", 0, b'0');
        damaged[0] = b'b';
        let err =
            read_bundle(&tar_with(&[(damaged, b"")])[..], &ReadLimits::default()).unwrap_err();
        assert!(matches!(err, VerifyError::Unreadable(_)), "{err}");
        let err = read_bundle(&b"not zstd"[..], &ReadLimits::default()).unwrap_err();
        assert!(matches!(err, VerifyError::Unreadable(_)), "{err}");
    }

    #[test]
    fn a_truncated_bundle_or_no_manifest_is_unreadable() {
        let key = key();
        let plain = {
            let files = files(&key);
            let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut tar = TarWriter::new(Vec::new(), 0).unwrap();
            for (name, bytes) in sorted {
                tar.append_data(name, bytes).unwrap();
            }
            tar.finish().unwrap()
        };
        let cut = &plain[..BLOCK + 10];
        let err = read_tar(cut, &ReadLimits::default()).unwrap_err();
        assert!(err.to_string().contains("ends inside"), "{err}");
        let contents = read_tar(&plain[..], &ReadLimits::default()).unwrap();
        let mut without = contents.clone();
        without.seal.remove(MANIFEST_NAME);
        assert!(matches!(
            check(&without, None),
            Err(VerifyError::NotAnExport(_))
        ));
        assert_eq!(
            manifest_files(b"[]")
                .unwrap_err()
                .to_string()
                .split(':')
                .next(),
            Some("export.json is not an export manifest")
        );
    }

    #[test]
    fn an_accepted_bundle_is_read_once_keeping_its_members() {
        let key = key();
        let bytes = bundle(&files(&key));
        // Each member's copy, by name, as the keeper wrote it.
        #[derive(Default, Clone)]
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut kept: BTreeMap<String, Shared> = BTreeMap::new();
        let contents = read_bundle_keeping(&bytes[..], &ReadLimits::default(), |name| {
            Ok(Some(kept.entry(name.to_owned()).or_default().clone()))
        })
        .unwrap();
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            ["sboms/a.json", "verdicts/a.json"],
            "the seal files are not kept"
        );
        assert_eq!(
            *kept["verdicts/a.json"].0.borrow(),
            b"{\"disposition\":\"warn\"}"
        );
        assert_eq!(
            contents,
            read_bundle(&bytes[..], &ReadLimits::default()).unwrap()
        );

        let trusted = [key.public_key().clone()];
        let accepted = accept(&contents, &trusted).unwrap();
        assert_eq!(accepted.key_id, key.key_id());
        assert_eq!(accepted.manifest.kind, "evidence");
        assert_eq!(
            accepted.manifest_sha256,
            sha256_hex(&contents.seal[MANIFEST_NAME])
        );

        // Another key: a signature failure naming the envelope.
        let other = SigningKey::generate([4; 32]);
        let err = accept(&contents, &[other.public_key().clone()]).unwrap_err();
        assert!(matches!(err, Rejected::Signature { .. }), "{err}");
        assert_eq!(err.file(), MANIFEST_SIGNATURE);

        // A changed member: a checksum failure naming it, before any signature.
        let mut tampered = files(&key);
        tampered[0].1[1] ^= 1;
        let contents = read_bundle(&bundle(&tampered)[..], &ReadLimits::default()).unwrap();
        let err = accept(&contents, &[other.public_key().clone()]).unwrap_err();
        assert!(matches!(err, Rejected::Checksum { .. }), "{err}");
        assert_eq!(err.file(), "sboms/a.json");
        assert!(
            err.to_string()
                .starts_with("checksum failure in sboms/a.json"),
            "{err}"
        );

        // A keeper that cannot write is its own failure, not the bundle's.
        let err = read_bundle_keeping(&bytes[..], &ReadLimits::default(), |_| {
            Err::<Option<Vec<u8>>, _>(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(
            matches!(err, ReadError::Keep { ref name, .. } if name == "sboms/a.json"),
            "{err}"
        );
        // Not a bundle at all: unreadable, naming the archive.
        let err = read_bundle_keeping(&b"nope"[..], &ReadLimits::default(), |_| {
            Ok(None::<Vec<u8>>)
        })
        .unwrap_err();
        let ReadError::Bundle(err) = err else {
            panic!("{err}")
        };
        assert_eq!(Rejected::from(err).file(), ARCHIVE);
    }
}
