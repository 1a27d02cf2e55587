//! A reproducible tar writer (POSIX ustar) and the zstd compression of export bundles.
//!
//! The same files give the same bytes, whoever writes them and whenever:
//! - entries in strictly increasing byte order of their names, each once (the writer
//!   refuses anything else rather than sorting, so a caller can stream each file);
//! - regular files only, mode `0644`, uid and gid 0, uname and gname empty, device
//!   numbers 0, one mtime for every entry given by the caller (the export's evaluation
//!   time, or 0); no directory entries (extractors create the parents);
//! - names up to 100 bytes in `name`, longer ones split at a `/` into ustar's `prefix`
//!   (155 bytes) and `name`; names that do not fit, absolute names, `.`/`..` or empty
//!   segments and NULs are refused: no PAX or GNU extension headers are ever written;
//! - the archive ends with two zero blocks and is padded to a whole 10,240-byte record,
//!   as GNU tar and Python's `tarfile` write it.
//!
//! Written by hand (a 512-byte header with a checksum) rather than with the `tar` crate,
//! so that every header byte is this module's choice and stays so across upgrades.
//!
//! zstd: [`zstd_encoder`] at level [`ZSTD_LEVEL`] (3, the `zstd` tool's default) with the
//! frame checksum on, single-threaded. Its output is a function of the input and the
//! library version, which `Cargo.lock` pins.

use std::io::{self, Read, Write};

use super::ExportError;

/// The tar block size.
const BLOCK: usize = 512;
/// A tar record: 20 blocks, what the archive is padded to.
const RECORD: u64 = 20 * BLOCK as u64;
/// The largest number 11 octal digits hold: the size and mtime limit of ustar.
const MAX_OCTAL_11: u64 = 0o77_777_777_777;

/// The zstd level of export bundles.
pub const ZSTD_LEVEL: i32 = 3;

/// Streams files into a ustar archive.
#[derive(Debug)]
pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
    last: Option<String>,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    /// An archive whose entries all have modification time `mtime` (seconds since the
    /// epoch).
    pub fn new(out: W, mtime: u64) -> Result<Self, ExportError> {
        if mtime > MAX_OCTAL_11 {
            return Err(ExportError::Mtime(mtime));
        }
        Ok(Self {
            out,
            mtime,
            last: None,
            written: 0,
        })
    }

    /// Appends a file held in memory.
    pub fn append_data(&mut self, name: &str, data: &[u8]) -> Result<(), ExportError> {
        let mut reader = data;
        self.append(name, data.len() as u64, &mut reader)
    }

    /// Appends a file of `size` bytes read from `data`, which must give exactly that many.
    pub fn append(
        &mut self,
        name: &str,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), ExportError> {
        if let Some(previous) = &self.last {
            if name <= previous.as_str() {
                return Err(ExportError::Unsorted {
                    previous: previous.clone(),
                    name: name.to_owned(),
                });
            }
        }
        if size > MAX_OCTAL_11 {
            return Err(ExportError::TooLarge {
                name: name.to_owned(),
                size,
            });
        }
        let header = header(name, size, self.mtime)?;
        self.out.write_all(&header)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size || data.read(&mut [0u8; 1])? != 0 {
            return Err(ExportError::SizeMismatch {
                name: name.to_owned(),
                declared: size,
                actual: if copied == size { size + 1 } else { copied },
            });
        }
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.out.write_all(&[0u8; BLOCK][..padding as usize])?;
        self.written += BLOCK as u64 + size + padding;
        self.last = Some(name.to_owned());
        Ok(())
    }

    /// Ends the archive (two zero blocks, padding to a whole record), flushes and hands
    /// the sink back.
    pub fn finish(mut self) -> Result<W, ExportError> {
        let end = self.written + 2 * BLOCK as u64;
        let total = end.div_ceil(RECORD) * RECORD;
        io::copy(&mut io::repeat(0).take(total - self.written), &mut self.out)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Checks a name and splits it into ustar's `prefix` and `name` fields.
fn split_name(name: &str) -> Result<(&str, &str), ExportError> {
    let bad = |reason| ExportError::BadName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.contains('\0') {
        return Err(bad("contains NUL"));
    }
    if name.starts_with('/') {
        return Err(bad("absolute"));
    }
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(bad("has an empty, `.` or `..` segment"));
    }
    if name.len() <= 100 {
        return Ok(("", name));
    }
    // The longest prefix that fits, so the name part is as short as it can be.
    name.char_indices()
        .filter(|&(i, c)| c == '/' && i <= 155 && name.len() - i - 1 <= 100)
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .next_back()
        .ok_or_else(|| bad("does not fit ustar's 155-byte prefix and 100-byte name"))
}

/// `value` as `width - 1` zero-padded octal digits and a NUL.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
}

/// The 512-byte ustar header of a regular file.
fn header(name: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK], ExportError> {
    let (prefix, name) = split_name(name)?;
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0); // uid
    octal(&mut h[116..124], 0); // gid
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = b'0'; // regular file
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // uname (265..297) and gname (297..329) stay empty.
    octal(&mut h[329..337], 0); // devmajor
    octal(&mut h[337..345], 0); // devminor
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // The checksum is summed with its own field as spaces, then written as six octal
    // digits, a NUL and a space.
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    Ok(h)
}

/// Why a bundle's archive could not be read: it is not an archive [`TarWriter`] would
/// write.
#[derive(Debug, thiserror::Error)]
pub enum TarReadError {
    #[error("cannot read the archive: {0}")]
    Io(#[from] io::Error),
    /// Something no [`TarWriter`] writes: a bad checksum, another entry type, an
    /// extension header, an unsorted or repeated name, a truncated entry.
    #[error("{0}")]
    Malformed(String),
}

/// Reads a ustar archive as [`TarWriter`] writes it, one entry at a time and never whole:
/// `each` gets every regular file's name, size and a reader of exactly its bytes, in the
/// order they come (strictly increasing names). Anything [`TarWriter`] would not write
/// (another entry type, a PAX or GNU header, a bad header checksum, an unsorted or
/// unsafe name, data after the end) is refused, so what the reader accepts is what a
/// writer of this module could have produced.
pub fn read_tar<R: Read>(
    mut input: R,
    mut each: impl FnMut(&str, u64, &mut dyn Read) -> Result<(), TarReadError>,
) -> Result<(), TarReadError> {
    let malformed = |message: String| TarReadError::Malformed(message);
    let mut last: Option<String> = None;
    let mut block = [0u8; BLOCK];
    loop {
        input
            .read_exact(&mut block)
            .map_err(|err| match err.kind() {
                io::ErrorKind::UnexpectedEof => {
                    malformed("the archive ends without its end blocks".into())
                }
                _ => TarReadError::Io(err),
            })?;
        if block.iter().all(|&b| b == 0) {
            // The end: a second zero block, then only zero padding.
            input.read_exact(&mut block)?;
            if block.iter().any(|&b| b != 0) {
                return Err(malformed(
                    "the archive's end has a single zero block".into(),
                ));
            }
            let mut rest = [0u8; BLOCK];
            loop {
                let n = input.read(&mut rest)?;
                if n == 0 {
                    return Ok(());
                }
                if rest[..n].iter().any(|&b| b != 0) {
                    return Err(malformed("data after the archive's end".into()));
                }
            }
        }
        let (name, size) = parse_header(&block).map_err(malformed)?;
        if let Some(previous) = &last {
            if name.as_str() <= previous.as_str() {
                return Err(malformed(format!(
                    "entry {name:?} does not come after {previous:?}"
                )));
            }
        }
        let mut data = (&mut input).take(size);
        each(&name, size, &mut data)?;
        // Whatever `each` left unread is skipped; a short entry is a truncated archive.
        io::copy(&mut data, &mut io::sink())?;
        if data.limit() != 0 {
            return Err(malformed(format!("entry {name:?} is truncated")));
        }
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        let mut pad = [0u8; BLOCK];
        input
            .read_exact(&mut pad[..padding as usize])
            .map_err(|_| malformed(format!("entry {name:?} is truncated")))?;
        last = Some(name);
    }
}

/// Reads a `tar.zst` as [`write_tar_zst`] and the exporter write it: zstd frames (the
/// frame checksum checked) around an archive [`read_tar`] accepts, and nothing after.
pub fn read_tar_zst<R: Read>(
    input: R,
    each: impl FnMut(&str, u64, &mut dyn Read) -> Result<(), TarReadError>,
) -> Result<(), TarReadError> {
    let decoder = zstd::stream::read::Decoder::new(input)
        .map_err(|err| TarReadError::Malformed(format!("not zstd: {err}")))?;
    // A zstd error (a bad frame, a checksum mismatch) surfaces as a read error.
    read_tar(decoder, each).map_err(|err| match err {
        TarReadError::Io(err) => TarReadError::Malformed(format!("not a whole zstd stream: {err}")),
        other => other,
    })
}

/// The name and size of a header [`header`] would write, or why it is not one.
fn parse_header(h: &[u8; BLOCK]) -> Result<(String, u64), String> {
    let text = |range: std::ops::Range<usize>| -> Result<&str, String> {
        let field = &h[range];
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        std::str::from_utf8(&field[..end]).map_err(|_| "a header field is not UTF-8".to_owned())
    };
    let number = |range: std::ops::Range<usize>, what: &str| -> Result<u64, String> {
        let digits = text(range)?.trim_matches(|c| c == ' ' || c == '\0');
        u64::from_str_radix(digits, 8)
            .map_err(|_| format!("the {what} field {digits:?} is not octal"))
    };
    if &h[257..263] != b"ustar\0" || &h[263..265] != b"00" {
        return Err("an entry header is not POSIX ustar".into());
    }
    let stored = number(148..156, "checksum")?;
    let mut blank = *h;
    blank[148..156].fill(b' ');
    let sum: u64 = blank.iter().map(|&b| u64::from(b)).sum();
    if sum != stored {
        return Err("an entry header's checksum does not match".into());
    }
    let name = text(0..100)?;
    let prefix = text(345..500)?;
    let full = if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    };
    if h[156] != b'0' {
        return Err(format!(
            "entry {full:?} is not a regular file (type {:?})",
            char::from(h[156])
        ));
    }
    split_name(&full).map_err(|err| err.to_string())?;
    let size = number(124..136, "size")?;
    Ok((full, size))
}

/// A zstd stream encoder at [`ZSTD_LEVEL`] with the frame checksum on. Call `finish()` on
/// it once the archive is finished to end the frame.
pub fn zstd_encoder<W: Write>(out: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    Ok(encoder)
}

/// A whole `tar.zst` from files in memory, in any order (they are sorted by name here).
pub fn write_tar_zst<W: Write>(
    out: W,
    mtime: u64,
    files: &[(&str, &[u8])],
) -> Result<W, ExportError> {
    let mut sorted: Vec<&(&str, &[u8])> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut tar = TarWriter::new(zstd_encoder(out)?, mtime)?;
    for (name, data) in sorted {
        tar.append_data(name, data)?;
    }
    Ok(tar.finish()?.finish()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn field(h: &[u8], range: std::ops::Range<usize>) -> &str {
        std::str::from_utf8(&h[range])
            .unwrap()
            .trim_end_matches('\0')
    }

    #[test]
    fn headers_hold_fixed_fields_and_a_valid_checksum() {
        let mut tar = TarWriter::new(Vec::new(), 1_700_000_000).unwrap();
        tar.append_data("b.json", b"{}").unwrap();
        let bytes = tar.finish().unwrap();
        assert_eq!(bytes.len(), RECORD as usize);
        let h = &bytes[..BLOCK];
        assert_eq!(field(h, 0..100), "b.json");
        assert_eq!(field(h, 100..108), "0000644");
        assert_eq!(field(h, 108..116), "0000000");
        assert_eq!(field(h, 124..136), "00000000002");
        assert_eq!(field(h, 136..148), format!("{:011o}", 1_700_000_000));
        assert_eq!(h[156], b'0');
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert_eq!(field(h, 265..297), "");
        let mut blank = h.to_vec();
        blank[148..156].fill(b' ');
        let sum: u32 = blank.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(&h[148..156], format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(&bytes[BLOCK..BLOCK + 2], b"{}");
        assert!(bytes[BLOCK + 2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn entries_must_come_sorted_and_once() {
        let mut tar = TarWriter::new(Vec::new(), 0).unwrap();
        tar.append_data("b", b"").unwrap();
        assert!(matches!(
            tar.append_data("a", b""),
            Err(ExportError::Unsorted { .. })
        ));
        assert!(matches!(
            tar.append_data("b", b""),
            Err(ExportError::Unsorted { .. })
        ));
        tar.append_data("b/c", b"").unwrap();
    }

    #[test]
    fn bad_names_and_sizes_are_refused() {
        for name in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a/",
            "a\0b",
            &"x".repeat(101),
        ] {
            let mut tar = TarWriter::new(Vec::new(), 0).unwrap();
            assert!(
                matches!(tar.append_data(name, b""), Err(ExportError::BadName { .. })),
                "{name:?}"
            );
        }
        let mut tar = TarWriter::new(Vec::new(), 0).unwrap();
        let err = tar.append("a", 5, &mut &b"abc"[..]).unwrap_err();
        assert!(
            matches!(err, ExportError::SizeMismatch { actual: 3, .. }),
            "{err}"
        );
        let mut tar = TarWriter::new(Vec::new(), 0).unwrap();
        let err = tar.append("a", 2, &mut &b"abc"[..]).unwrap_err();
        assert!(matches!(err, ExportError::SizeMismatch { .. }), "{err}");
        assert!(matches!(
            TarWriter::new(Vec::new(), MAX_OCTAL_11 + 1),
            Err(ExportError::Mtime(_))
        ));
    }

    #[test]
    fn long_names_split_into_prefix_and_name() {
        let dir = "d".repeat(120);
        let long = format!("{dir}/file.json");
        assert_eq!(split_name(&long).unwrap(), (dir.as_str(), "file.json"));
        let nested = format!("{}/{}/{}", "a".repeat(60), "b".repeat(60), "c".repeat(60));
        let (prefix, name) = split_name(&nested).unwrap();
        assert_eq!(format!("{prefix}/{name}"), nested);
        assert!(prefix.len() <= 155 && name.len() <= 100);
    }

    #[test]
    fn equal_inputs_give_identical_bytes_and_zstd_round_trips() {
        let files: [(&str, &[u8]); 3] = [
            ("z.csv", b"a,b\r\n"),
            ("export.json", b"{}"),
            ("a/sbom.json", &[7u8; 1500]),
        ];
        let one = write_tar_zst(Vec::new(), 0, &files).unwrap();
        let mut reversed = files;
        reversed.reverse();
        let two = write_tar_zst(Vec::new(), 0, &reversed).unwrap();
        assert_eq!(one, two);
        let plain = zstd::stream::decode_all(&one[..]).unwrap();
        let mut tar = TarWriter::new(Vec::new(), 0).unwrap();
        for (name, data) in [files[2], files[1], files[0]] {
            tar.append_data(name, data).unwrap();
        }
        assert_eq!(plain, tar.finish().unwrap());
        assert_ne!(write_tar_zst(Vec::new(), 1, &files).unwrap(), one);
        let mut names = Vec::new();
        read_tar_zst(&one[..], |name, _, _| {
            names.push(name.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(names, ["a/sbom.json", "export.json", "z.csv"]);
        let mut cut = one.clone();
        cut.truncate(one.len() - 3);
        assert!(matches!(
            read_tar_zst(&cut[..], |_, _, _| Ok(())),
            Err(TarReadError::Malformed(_))
        ));
    }
    #[test]
    fn the_reader_gives_back_what_the_writer_wrote_and_refuses_the_rest() {
        let long = format!("{}/deep.json", "d".repeat(120));
        let mut tar = TarWriter::new(Vec::new(), 42).unwrap();
        tar.append_data("a.jsonl", b"{}\n").unwrap();
        tar.append_data(&long, &[9u8; 700]).unwrap();
        tar.append_data("z", b"").unwrap();
        let bytes = tar.finish().unwrap();
        let mut seen = Vec::new();
        read_tar(&bytes[..], |name, size, data| {
            let mut body = Vec::new();
            data.read_to_end(&mut body)?;
            assert_eq!(body.len() as u64, size);
            seen.push((name.to_owned(), body));
            Ok(())
        })
        .unwrap();
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.jsonl", long.as_str(), "z"]);
        assert_eq!(seen[1].1, vec![9u8; 700]);
        // An entry left unread is skipped.
        read_tar(&bytes[..], |_, _, _| Ok(())).unwrap();

        // One flipped byte in a header, a truncated archive, trailing data: refused.
        let mut bad = bytes.clone();
        bad[3] ^= 1;
        let err = read_tar(&bad[..], |_, _, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        let err = read_tar(&bytes[..BLOCK + 100], |_, _, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"x");
        let err = read_tar(&trailing[..], |_, _, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("after the archive's end"), "{err}");
        // A directory entry, which the writer never writes.
        let mut dir = bytes.clone();
        dir[156] = b'5';
        dir[148..156].fill(b' ');
        let sum: u64 = dir[..BLOCK].iter().map(|&b| u64::from(b)).sum();
        octal(&mut dir[148..155], sum);
        let err = read_tar(&dir[..], |_, _, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
