//! RPM packages from the SQLite package database (`var/lib/rpm/rpmdb.sqlite`, or
//! `usr/lib/sysimage/rpm/rpmdb.sqlite` on newer Fedora and openSUSE): the `Packages` table
//! holds one RPM header blob per installed package, read here tag by tag.
//!
//! A header blob is: the number of index entries and the size of the data store (two
//! big-endian `u32`), the index entries (16 bytes each: tag, type, offset, count), then
//! the data store the offsets point into. Every entry is checked against the store before
//! it is read, and the counts against rpm's own caps, so a hostile blob costs one
//! [`Inventory::skipped`](super::Inventory::skipped) line naming its `hnum`, never a panic
//! or a large allocation.
//!
//! Not read: the Berkeley DB (`Packages`) and NDB (`Packages.db`) databases of older
//! releases, and rows still in the write-ahead log (see [`super::sqlite`]). The
//! `gpg-pubkey` entries rpm keeps for imported signing keys are not packages and are left
//! out, as `rpm -qa` users filter them out.

use super::analyzers::{purl, Distro, Found, PackageType};
use super::sqlite::{self, Database, Value};

/// Where an image keeps its SQLite rpmdb.
pub const RPMDB_PATHS: [&str; 2] = [
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// rpm's own caps on a header (`hdrchkTags`, `hdrchkData` in rpm's `header.c`).
const MAX_ENTRIES: u32 = 0xffff;
const MAX_DATA: u32 = 0x0fff_ffff;

/// Header tags read.
const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const ARCH: u32 = 1022;
const SOURCERPM: u32 = 1044;

/// Header data types read.
const INT32: u32 = 4;
const STRING: u32 = 6;
const STRING_ARRAY: u32 = 8;
const I18NSTRING: u32 = 9;

/// The packages of an `rpmdb.sqlite`, and a reason for each row that could not be read.
/// The whole file fails only when it is not an SQLite database with a `Packages` table.
pub(super) fn rpmdb(
    bytes: &[u8],
    distro: Option<&Distro>,
) -> Result<(Vec<Found>, Vec<String>), String> {
    let db = Database::open(bytes)?;
    let root = db
        .table_root("Packages")?
        .ok_or("SQLite database without a `Packages` table")?;
    let mut found = Vec::new();
    let mut bad = Vec::new();
    db.scan(root, &mut |hnum, payload| {
        let blob = match sqlite::record(payload) {
            Ok(cols) => match cols.get(1) {
                Some(Value::Blob(b)) => Ok(*b),
                _ => Err("no header blob in its second column".to_owned()),
            },
            Err(e) => Err(e),
        };
        match blob.and_then(|b| package(b, distro)) {
            Ok(Some(p)) => found.push(p),
            Ok(None) => {}
            Err(e) => bad.push(format!("rpm header hnum {hnum}: {e}")),
        }
        Ok(())
    })?;
    Ok((found, bad))
}

/// One package from its header, `None` for a `gpg-pubkey` entry.
fn package(blob: &[u8], distro: Option<&Distro>) -> Result<Option<Found>, String> {
    let h = Header::parse(blob)?;
    let name = h.string(NAME)?.ok_or("no NAME tag")?;
    if name == "gpg-pubkey" {
        return Ok(None);
    }
    let version = h.string(VERSION)?.ok_or("no VERSION tag")?;
    let release = h.string(RELEASE)?;
    let epoch = h.int32(EPOCH)?;
    let arch = h.string(ARCH)?;
    let source = h.string(SOURCERPM)?.map(source_name);
    let vr = match release {
        Some(r) => format!("{version}-{r}"),
        None => version.to_owned(),
    };
    let epoch = epoch.map(|e| e.to_string());
    let distro_q = distro.and_then(|d| d.version_id.as_ref().map(|v| format!("{}-{v}", d.id)));
    Ok(Some(Found {
        ty: PackageType::Rpm,
        name: name.to_owned(),
        version: match &epoch {
            Some(e) => format!("{e}:{vr}"),
            None => vr.clone(),
        },
        arch: arch.map(str::to_owned),
        source,
        purl: purl(
            "rpm",
            distro.map(|d| d.id.as_str()),
            name,
            &vr,
            &[
                ("arch", arch),
                ("epoch", epoch.as_deref()),
                ("distro", distro_q.as_deref()),
            ],
        )?,
    }))
}

/// The source package's name from its file name: `openssl-3.0.7-27.el9.src.rpm` is
/// `openssl` (a name may hold `-`; version and release may not).
fn source_name(file: &str) -> String {
    let stem = file
        .strip_suffix(".src.rpm")
        .or_else(|| file.strip_suffix(".nosrc.rpm"))
        .unwrap_or(file);
    match stem.rsplitn(3, '-').nth(2) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => stem.to_owned(),
    }
}

/// One index entry of a header.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    ty: u32,
    offset: usize,
    count: usize,
}

/// A header whose index entries have been checked to lie in its data store.
#[derive(Debug)]
struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Result<Self, String> {
        // A header taken from a package file starts with its magic; rpmdb rows do not.
        let blob = match blob {
            [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0, rest @ ..] => rest,
            b => b,
        };
        if blob.len() < 8 {
            return Err(format!("header of {} bytes is truncated", blob.len()));
        }
        let il = be32(blob, 0);
        let dl = be32(blob, 4);
        if il == 0 || il > MAX_ENTRIES {
            return Err(format!(
                "header has {il} index entries (1 to {MAX_ENTRIES})"
            ));
        }
        if dl > MAX_DATA {
            return Err(format!("header data of {dl} bytes exceeds {MAX_DATA}"));
        }
        let index_end = 8 + 16 * il as usize;
        let end = index_end + dl as usize;
        if blob.len() != end {
            return Err(format!(
                "header of {} bytes, not the {end} its {il} entries and {dl} data bytes make",
                blob.len()
            ));
        }
        let data = &blob[index_end..end];
        let mut entries = Vec::with_capacity(il as usize);
        for i in 0..il as usize {
            let at = 8 + 16 * i;
            let e = Entry {
                tag: be32(blob, at),
                ty: be32(blob, at + 4),
                offset: be32(blob, at + 8) as usize,
                count: be32(blob, at + 12) as usize,
            };
            if e.offset > data.len() {
                return Err(format!(
                    "tag {} at offset {} is outside the {}-byte data store",
                    e.tag,
                    e.offset,
                    data.len()
                ));
            }
            entries.push(e);
        }
        Ok(Self { entries, data })
    }

    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.iter().copied().find(|e| e.tag == tag)
    }

    /// The first string of a `STRING`, `I18NSTRING` or `STRING_ARRAY` tag.
    fn string(&self, tag: u32) -> Result<Option<&'a str>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !matches!(e.ty, STRING | I18NSTRING | STRING_ARRAY) || e.count == 0 {
            return Err(format!(
                "tag {tag} is type {} count {}, not a string",
                e.ty, e.count
            ));
        }
        let rest = &self.data[e.offset..];
        let len = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| format!("tag {tag} string has no terminating NUL"))?;
        std::str::from_utf8(&rest[..len])
            .map(Some)
            .map_err(|err| format!("tag {tag} is not UTF-8: {err}"))
    }

    /// The first value of an `INT32` tag.
    fn int32(&self, tag: u32) -> Result<Option<u32>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if e.ty != INT32 || e.count == 0 {
            return Err(format!(
                "tag {tag} is type {} count {}, not an INT32",
                e.ty, e.count
            ));
        }
        if e.offset % 4 != 0 || e.offset + 4 > self.data.len() {
            return Err(format!(
                "tag {tag} INT32 at offset {} is misplaced",
                e.offset
            ));
        }
        Ok(Some(be32(self.data, e.offset)))
    }
}

/// A big-endian read at an offset the caller has checked.
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
