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
use super::lockfiles::Listed;
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
pub(super) fn rpmdb(bytes: &[u8], distro: Option<&Distro>) -> Result<Listed, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{analyze, RootFs};

    /// A header blob as rpm stores it: tags with their type and data, strings
    /// NUL-terminated, INT32 values aligned to 4 bytes.
    fn header(tags: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        if let Some(e) = epoch {
            index.push((EPOCH, INT32, data.len(), 1));
            data.extend_from_slice(&e.to_be_bytes());
        }
        for (tag, s) in tags {
            index.push((*tag, STRING, data.len(), 1));
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        }
        let mut blob = Vec::new();
        blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (tag, ty, offset, count) in index {
            for v in [tag, ty, offset as u32, count] {
                blob.extend_from_slice(&v.to_be_bytes());
            }
        }
        blob.extend_from_slice(&data);
        blob
    }

    fn bash() -> Vec<u8> {
        header(
            &[
                (NAME, "bash"),
                (VERSION, "5.2.26"),
                (RELEASE, "3.fc40"),
                (ARCH, "x86_64"),
                (SOURCERPM, "bash-5.2.26-3.fc40.src.rpm"),
            ],
            Some(1),
        )
    }

    fn fedora() -> Distro {
        Distro {
            id: "fedora".into(),
            version_id: Some("40".into()),
        }
    }

    #[test]
    fn a_header_blob_gives_name_epoch_version_release_arch_and_source() {
        let p = package(&bash(), Some(&fedora()))
            .expect("valid header")
            .expect("a package");
        assert_eq!(p.ty, PackageType::Rpm);
        assert_eq!(p.name, "bash");
        assert_eq!(p.version, "1:5.2.26-3.fc40");
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.source.as_deref(), Some("bash"));
        assert_eq!(
            p.purl.as_str(),
            "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&distro=fedora-40&epoch=1"
        );

        let noarch = header(
            &[
                (NAME, "python3-dateutil"),
                (VERSION, "2.8.2"),
                (RELEASE, "13.el9"),
                (ARCH, "noarch"),
                (SOURCERPM, "python-dateutil-2.8.2-13.el9.src.rpm"),
            ],
            None,
        );
        let p = package(&noarch, None).expect("valid").expect("package");
        assert_eq!(p.version, "2.8.2-13.el9");
        assert_eq!(p.source.as_deref(), Some("python-dateutil"));
        assert_eq!(
            p.purl.as_str(),
            "pkg:rpm/python3-dateutil@2.8.2-13.el9?arch=noarch"
        );

        let key = header(&[(NAME, "gpg-pubkey"), (VERSION, "a15b79cc")], None);
        assert!(package(&key, None).expect("valid").is_none());
    }

    fn set(blob: &mut [u8], at: usize, v: u32) {
        blob[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn hostile_header_blobs_are_refused_with_a_reason() {
        let good = bash();
        let reason = |blob: &[u8]| package(blob, None).err().expect("refused");

        let mut count = good.clone();
        set(&mut count, 0, u32::MAX);
        assert_eq!(
            reason(&count),
            "header has 4294967295 index entries (1 to 65535)"
        );

        let mut data = good.clone();
        set(&mut data, 4, u32::MAX);
        assert_eq!(
            reason(&data),
            "header data of 4294967295 bytes exceeds 268435455"
        );

        // One entry more than the blob holds: the sizes no longer add up.
        let mut short = good.clone();
        set(&mut short, 0, 7);
        assert_eq!(
            reason(&short),
            "header of 161 bytes, not the 177 its 7 entries and 57 data bytes make"
        );

        // The NAME entry (second) points past the data store.
        let mut offset = good.clone();
        set(&mut offset, 8 + 16 + 8, 10_000);
        assert_eq!(
            reason(&offset),
            "tag 1000 at offset 10000 is outside the 57-byte data store"
        );

        // The last string (SOURCERPM) loses its NUL: the data store ends inside it.
        let mut unterminated = good.clone();
        let last = unterminated.len() - 1;
        unterminated[last] = b'x';
        assert_eq!(
            reason(&unterminated),
            "tag 1044 string has no terminating NUL"
        );

        // EPOCH claims to be a string.
        let mut ty = good.clone();
        set(&mut ty, 8 + 4, STRING);
        assert!(reason(&ty).contains("tag 1003"));

        assert_eq!(reason(&good[..5]), "header of 5 bytes is truncated");
        assert_eq!(reason(&[]), "header of 0 bytes is truncated");
    }

    /// An rpmdb laid out as rpm does (`Packages (hnum, blob)`), written by SQLite.
    fn rpmdb_with(blobs: &[Vec<u8>]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rpmdb.sqlite");
        let db = rusqlite::Connection::open(&path).expect("open");
        db.execute_batch(
            "CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
             CREATE TABLE 'Name' (key TEXT NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL);",
        )
        .expect("schema");
        for b in blobs {
            db.execute("INSERT INTO Packages (blob) VALUES (?1)", [b])
                .expect("insert");
        }
        drop(db);
        std::fs::read(&path).expect("read back")
    }

    #[test]
    fn a_bad_row_is_skipped_and_the_others_listed() {
        let mut hostile = bash();
        set(&mut hostile, 0, u32::MAX);
        let curl = header(
            &[
                (NAME, "curl"),
                (VERSION, "8.6.0"),
                (RELEASE, "8.fc40"),
                (ARCH, "x86_64"),
            ],
            None,
        );
        let mut fs = RootFs::default();
        fs.insert("etc/os-release", b"ID=fedora\nVERSION_ID=40\n".to_vec(), 0);
        fs.insert(
            "usr/lib/sysimage/rpm/rpmdb.sqlite",
            rpmdb_with(&[bash(), hostile, curl]),
            1,
        );
        fs.insert("var/lib/rpm/rpmdb.sqlite", b"not a database".to_vec(), 0);
        let inv = analyze(&fs);
        let purls: Vec<&str> = inv.packages.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(
            purls,
            [
                "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&distro=fedora-40&epoch=1",
                "pkg:rpm/fedora/curl@8.6.0-8.fc40?arch=x86_64&distro=fedora-40",
            ]
        );
        assert_eq!(
            inv.packages[1].evidence,
            "usr/lib/sysimage/rpm/rpmdb.sqlite"
        );
        assert_eq!(inv.packages[1].layer, 1);
        assert_eq!(
            inv.skipped,
            [
                (
                    "usr/lib/sysimage/rpm/rpmdb.sqlite".to_owned(),
                    "rpm header hnum 2: header has 4294967295 index entries (1 to 65535)"
                        .to_owned()
                ),
                (
                    "var/lib/rpm/rpmdb.sqlite".to_owned(),
                    "not an SQLite 3 database (no `SQLite format 3` header)".to_owned()
                ),
            ]
        );
    }

    /// Builds real packages with `rpmbuild`, installs them with `rpm` into a fresh SQLite
    /// rpmdb and compares what `rpm -qa` says with what the analyzer reads.
    #[test]
    fn reads_the_rpmdb_that_rpm_writes() {
        let on_path = |tool: &str| {
            std::process::Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !on_path("rpm") || !on_path("rpmbuild") {
            assert!(
                std::env::var_os("STELLA_TEST_SERVICES").is_none(),
                "rpm and rpmbuild must be on the PATH with the services (ops/services.sh up)"
            );
            eprintln!("skipping: no rpm");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path().join("top");
        let dbpath = dir.path().join("db");
        std::fs::create_dir(&dbpath).expect("db dir");
        let long = "A long description, so that this header spills to overflow pages. ".repeat(600);
        let specs = [
            ("epochal", "Name: epochal\nVersion: 1.2.3\nRelease: 4.fc40\nEpoch: 3\nBuildArch: noarch\n", "test"),
            ("zero", "Name: zero-epoch\nVersion: 5\nRelease: 2.el9_3\nEpoch: 0\n", "test"),
            // A release with no dot, and a subpackage (its source is the main package).
            ("plain", "Name: plain\nVersion: 2.0\nRelease: 1\n", "test\n%package -n plain-libs\nSummary: sub\n%description -n plain-libs\nsub\n%files -n plain-libs"),
            ("long", "Name: long-desc\nVersion: 0.9~rc1\nRelease: 0.1.git20240101\nBuildArch: noarch\n", long.as_str()),
        ];
        for (file, head, description) in specs {
            let spec = dir.path().join(format!("{file}.spec"));
            std::fs::write(
                &spec,
                format!("{head}Summary: test package\nLicense: MIT\nVendor: Stella Test\n%description\n{description}\n%files\n"),
            )
            .expect("spec");
            let built = std::process::Command::new("rpmbuild")
                .arg("--quiet")
                .arg("--define")
                .arg(format!("_topdir {}", top.display()))
                .arg("-bb")
                .arg(&spec)
                .output()
                .expect("rpmbuild runs");
            assert!(built.status.success(), "rpmbuild {file}: {built:?}");
        }
        let mut rpms = Vec::new();
        for arch in std::fs::read_dir(top.join("RPMS")).expect("RPMS") {
            for rpm in std::fs::read_dir(arch.expect("arch").path()).expect("arch dir") {
                rpms.push(rpm.expect("rpm").path());
            }
        }
        assert_eq!(rpms.len(), 5);
        let rpm = |args: &[&str], files: &[std::path::PathBuf]| {
            let out = std::process::Command::new("rpm")
                .arg("--dbpath")
                .arg(&dbpath)
                .args(["--define", "_db_backend sqlite"])
                .args(args)
                .args(files)
                .output()
                .expect("rpm runs");
            assert!(out.status.success(), "rpm {args:?}: {out:?}");
            String::from_utf8(out.stdout).expect("utf-8")
        };
        rpm(
            &["-i", "--justdb", "--nodeps", "--ignorearch", "--ignoreos"],
            &rpms,
        );
        let listed = rpm(
            &[
                "-qa",
                "--qf",
                "%{NAME} %{EPOCH} %{VERSION} %{RELEASE} %{ARCH} %{SOURCERPM}\n",
            ],
            &[],
        );
        // What rpm says, in the analyzer's terms: `[epoch:]version-release`, the source
        // package's name.
        let mut expected: Vec<String> = listed
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let epoch = if f[1] == "(none)" {
                    String::new()
                } else {
                    format!("{}:", f[1])
                };
                let source = if f[0] == "plain-libs" { "plain" } else { f[0] };
                assert!(f[5].starts_with(&format!("{source}-")), "{l}");
                format!("{} {epoch}{}-{} {} {source}", f[0], f[2], f[3], f[4])
            })
            .collect();
        expected.sort();
        assert_eq!(expected.len(), 5);

        let bytes = std::fs::read(dbpath.join("rpmdb.sqlite")).expect("rpmdb.sqlite");
        let (found, bad) = rpmdb(&bytes, Some(&fedora())).expect("an rpmdb");
        assert_eq!(bad, Vec::<String>::new());
        let mut got: Vec<String> = found
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {}",
                    p.name,
                    p.version,
                    p.arch.as_deref().unwrap_or("-"),
                    p.source.as_deref().unwrap_or("-")
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, expected);
        let epochal = found.iter().find(|p| p.name == "epochal").expect("epochal");
        assert_eq!(
            epochal.purl.as_str(),
            "pkg:rpm/fedora/epochal@1.2.3-4.fc40?arch=noarch&distro=fedora-40&epoch=3"
        );
    }
}
