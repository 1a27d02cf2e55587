//! Just enough of ELF to find a named section's bytes: the file header, the section
//! header table and the section-name string table, 32 or 64 bits, either byte order.
//! Every offset and size is checked against the bytes; nothing is mapped or executed.

/// The first bytes of every ELF file.
pub(crate) const MAGIC: &[u8; 4] = b"\x7fELF";

/// Whether the file has a section header table at all (`sstrip` removes it).
pub(crate) fn has_section_headers(bytes: &[u8]) -> bool {
    let Ok(r) = Reader::new(bytes) else {
        return false;
    };
    let (shoff, shnum) = if r.wide {
        (r.u64(0x28), r.u16(0x3c))
    } else {
        (r.u32(0x20).map(u64::from), r.u16(0x30))
    };
    matches!((shoff, shnum), (Ok(o), Ok(n)) if o != 0 && n != 0)
}

/// The bytes of the section named `name`, `Ok(None)` when the file has no such section
/// (or no section headers at all, as after `sstrip`), an error when the headers point
/// outside the file.
pub(crate) fn section<'a>(bytes: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, String> {
    let r = Reader::new(bytes)?;
    let (shoff, shentsize, shnum, shstrndx) = if r.wide {
        (
            r.u64(0x28)?,
            r.u16(0x3a)? as u64,
            r.u16(0x3c)? as u64,
            r.u16(0x3e)? as u64,
        )
    } else {
        (
            r.u32(0x20)? as u64,
            r.u16(0x2e)? as u64,
            r.u16(0x30)? as u64,
            r.u16(0x32)? as u64,
        )
    };
    if shoff == 0 || shnum == 0 {
        return Ok(None);
    }
    let min_entsize = if r.wide { 0x40 } else { 0x28 };
    if shentsize < min_entsize {
        return Err(format!("ELF section header size {shentsize} is too small"));
    }
    // A header's (name offset, file offset, size); SHT_NOBITS sections have no bytes.
    let header = |i: u64| -> Result<(u64, u64, u64, u32), String> {
        let at = shentsize
            .checked_mul(i)
            .and_then(|o| o.checked_add(shoff))
            .ok_or("ELF section header offset overflows")?;
        let at = usize::try_from(at).map_err(|_| "ELF section header offset overflows")?;
        if r.wide {
            Ok((
                r.u32(at)? as u64,
                r.u64(at + 0x18)?,
                r.u64(at + 0x20)?,
                r.u32(at + 4)?,
            ))
        } else {
            Ok((
                r.u32(at)? as u64,
                r.u32(at + 0x10)? as u64,
                r.u32(at + 0x14)? as u64,
                r.u32(at + 4)?,
            ))
        }
    };
    if shstrndx >= shnum {
        return Err(format!(
            "ELF section-name table index {shstrndx} is not below the {shnum} sections"
        ));
    }
    let (_, str_off, str_size, _) = header(shstrndx)?;
    let names = r.slice(str_off, str_size)?;
    for i in 0..shnum {
        let (name_off, off, size, kind) = header(i)?;
        let Some(rest) = usize::try_from(name_off).ok().and_then(|o| names.get(o..)) else {
            continue;
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            const SHT_NOBITS: u32 = 8;
            if kind == SHT_NOBITS {
                return Ok(None);
            }
            return r.slice(off, size).map(Some);
        }
    }
    Ok(None)
}

struct Reader<'a> {
    bytes: &'a [u8],
    wide: bool,
    big: bool,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() < 0x34 || &bytes[..4] != MAGIC {
            return Err("not an ELF file (too short or no magic)".to_owned());
        }
        let wide = match bytes[4] {
            1 => false,
            2 => true,
            c => return Err(format!("unknown ELF class {c}")),
        };
        let big = match bytes[5] {
            1 => false,
            2 => true,
            d => return Err(format!("unknown ELF byte order {d}")),
        };
        Ok(Self { bytes, wide, big })
    }

    fn array<const N: usize>(&self, at: usize) -> Result<[u8; N], String> {
        at.checked_add(N)
            .and_then(|end| self.bytes.get(at..end))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("ELF header field at {at} is past the end of the file"))
    }

    fn u16(&self, at: usize) -> Result<u16, String> {
        let a = self.array(at)?;
        Ok(if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    fn u32(&self, at: usize) -> Result<u32, String> {
        let a = self.array(at)?;
        Ok(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn u64(&self, at: usize) -> Result<u64, String> {
        let a = self.array(at)?;
        Ok(if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }

    fn slice(&self, off: u64, size: u64) -> Result<&'a [u8], String> {
        let bytes = self.bytes;
        usize::try_from(off)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| Some((o, o.checked_add(s)?)))
            .and_then(|(o, e)| bytes.get(o..e))
            .ok_or_else(|| {
                format!(
                    "ELF section at {off} ({size} bytes) is past the end of the {}-byte file",
                    bytes.len()
                )
            })
    }
}

/// Builds a minimal 64-bit little-endian ELF file holding the given sections (no
/// program headers, no code): enough for [`section`] and for `readelf -S`.
#[cfg(test)]
pub(crate) fn build(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut name_offsets = Vec::new();
    for (n, _) in sections.iter().copied().chain([(".shstrtab", &[][..])]) {
        name_offsets.push(names.len() as u32);
        names.extend_from_slice(n.as_bytes());
        names.push(0);
    }
    let mut out = vec![0u8; 0x40];
    out[..4].copy_from_slice(MAGIC);
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1; // version
    out[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    out[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
    out[0x34..0x36].copy_from_slice(&0x40u16.to_le_bytes()); // ehsize
    let mut placed = Vec::new();
    for (_, data) in sections.iter().copied().chain([(".shstrtab", &names[..])]) {
        while !out.len().is_multiple_of(16) {
            out.push(0);
        }
        placed.push((out.len() as u64, data.len() as u64));
        out.extend_from_slice(data);
    }
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    out.extend_from_slice(&[0u8; 0x40]); // the null section
    for (i, (off, size)) in placed.iter().enumerate() {
        let mut h = [0u8; 0x40];
        h[..4].copy_from_slice(&name_offsets[i].to_le_bytes());
        let kind: u32 = if i == placed.len() - 1 { 3 } else { 1 }; // STRTAB, PROGBITS
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&off.to_le_bytes());
        h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
        h[0x30..0x38].copy_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&h);
    }
    let shnum = placed.len() as u16 + 1;
    out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    out[0x3a..0x3c].copy_from_slice(&0x40u16.to_le_bytes());
    out[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
    out[0x3e..0x40].copy_from_slice(&(shnum - 1).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_named_section_and_refuses_bad_offsets() {
        let elf = build(&[(".data", b"hello"), (".dep-v0", b"zz")]);
        assert_eq!(section(&elf, ".dep-v0").unwrap(), Some(&b"zz"[..]));
        assert_eq!(section(&elf, ".data").unwrap(), Some(&b"hello"[..]));
        assert_eq!(section(&elf, ".go.buildinfo").unwrap(), None);
        // Cut inside the section headers: an error naming the problem, not a panic.
        let err = section(&elf[..elf.len() - 0x30], ".data").unwrap_err();
        assert!(err.contains("past the end"), "{err}");
        assert!(section(b"\x7fELF", ".data").is_err());
        assert!(section(
            b"MZ not elf at all, long enough to pass the length check....",
            ".x"
        )
        .is_err());
    }

    /// Checked against binutils: `readelf` agrees on the sections of a file `build` made.
    #[test]
    fn readelf_reads_the_built_file() {
        let elf = build(&[(".go.buildinfo", b"0123456789abcdef")]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.out");
        std::fs::write(&path, &elf).unwrap();
        let Ok(out) = std::process::Command::new("readelf")
            .arg("-S")
            .arg(&path)
            .output()
        else {
            eprintln!("no readelf on this machine: skipped");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains(".go.buildinfo"), "{text}");
        assert!(text.contains(".shstrtab"), "{text}");
    }
}
