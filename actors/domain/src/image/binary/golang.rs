//! Go modules: the build info the Go toolchain (1.18 and later) embeds in every module-
//! aware binary (a `go.mod` is read by `lockfiles`).
//!
//! Build info sits in the `.go.buildinfo` section: a 32-byte header (`\xff Go buildinf:`,
//! the pointer size, a flags byte) and, when flag `0x2` is set, two strings each prefixed
//! by its uvarint length: the toolchain version (`go1.23.4`) and the module info text
//! (`path`, `mod`, `dep`, `=>` and `build` lines, tab-separated, framed by 16 sentinel
//! bytes on each side). Binaries from Go before 1.18 store pointers instead; they are
//! reported unreadable rather than guessed at.
//!
//! The packages, as Syft 1.18 reports them (checked against it, see the tests):
//! - each `dep`, under its replacement when a `=>` line follows it (the replacement is
//!   the code that was compiled in). A replacement by a local folder has no version: it
//!   is reported under the original path with version `(devel)`;
//! - the main module (`mod`). Before Go 1.24 the toolchain writes `(devel)` for it; then,
//!   like Syft, the version is taken from `-ldflags` (`-X main.version=1.2.3`, `.gitVersion=`,
//!   `.buildVersion=`, `.tag=`; a `v` prefixed as Go versions have one), else from the VCS
//!   stamp as a pseudo-version (`v0.0.0-20241213184110-5e16e5031a13`), else it stays
//!   `(devel)`, which no advisory matches;
//! - the standard library as `pkg:golang/stdlib@1.23.4` (the toolchain version without
//!   `go`): the Go vulnerability database files standard-library advisories under
//!   `stdlib`, so a binary built with an old toolchain is matched against them.

use std::sync::OnceLock;

use regex::Regex;

use super::elf;

const MAGIC: &[u8] = b"\xff Go buildinf:";

/// What the build info of one binary says, before it is turned into packages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildInfo {
    /// The toolchain's version, as `runtime.Version()` gives it (`go1.23.4`).
    pub go_version: String,
    /// The module info text, sentinels removed.
    pub modinfo: String,
}

/// The build info of an ELF binary: `Ok(None)` when it has none (not a Go binary), an
/// error when it has a header that cannot be read.
pub(crate) fn buildinfo(bytes: &[u8]) -> Result<Option<BuildInfo>, String> {
    let data = match elf::section(bytes, ".go.buildinfo") {
        Ok(Some(section)) => section,
        // The Go linker always writes the section: a binary with section headers but
        // without it is no Go binary (it may still hold the magic as a constant, as any
        // tool that reads Go binaries does).
        Ok(None) if elf::has_section_headers(bytes) => return Ok(None),
        // No section headers (stripped with `sstrip`) or unreadable ones: the header is
        // 16-byte aligned in the data segment, as Go's own `debug/buildinfo` assumes.
        Ok(None) | Err(_) => match find_aligned(bytes) {
            Some(at) => &bytes[at..],
            None => return Ok(None),
        },
    };
    if !data.starts_with(MAGIC) {
        return Err("the .go.buildinfo section does not start with the Go build info magic".into());
    }
    let Some(&flags) = data.get(15) else {
        return Err("Go build info header is truncated".into());
    };
    if flags & 0x2 == 0 {
        return Err("Go build info in the pointer format of Go before 1.18 is not read".to_owned());
    }
    let rest = data.get(32..).ok_or("Go build info header is truncated")?;
    let (version, rest) = read_string(rest).ok_or("Go build info version string is truncated")?;
    let (modinfo, _) = read_string(rest).ok_or("Go build info module string is truncated")?;
    // The module text is framed by 16 sentinel bytes on each side.
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    };
    let go_version = String::from_utf8(version.to_vec())
        .map_err(|_| "Go build info version is not UTF-8".to_owned())?;
    let modinfo = String::from_utf8(modinfo.to_vec())
        .map_err(|_| "Go build info module text is not UTF-8".to_owned())?;
    if !go_version.starts_with("go") && !go_version.starts_with("devel") {
        return Err(format!(
            "Go build info version {go_version:?} is not a Go version"
        ));
    }
    Ok(Some(BuildInfo {
        go_version,
        modinfo,
    }))
}

fn find_aligned(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = bytes
        .get(from..)?
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
    {
        let at = from + i;
        if at.is_multiple_of(16) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// A uvarint length and that many bytes.
fn read_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut n: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let start = i + 1;
            let end = start.checked_add(usize::try_from(n).ok()?)?;
            return Some((b.get(start..end)?, &b[end..]));
        }
    }
    None
}

/// One Go module a binary names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Module {
    pub(crate) path: String,
    pub(crate) version: String,
}

/// The modules of a binary's build info: the main module, then each dependency as it
/// was compiled in, then `stdlib`.
pub(crate) fn modules(info: &BuildInfo) -> Vec<Module> {
    let mut main = None;
    let mut deps: Vec<Module> = Vec::new();
    let mut settings: Vec<(&str, &str)> = Vec::new();
    for line in info.modinfo.lines() {
        let mut f = line.split('\t');
        match (f.next(), f.next(), f.next()) {
            (Some("mod"), Some(path), version) => {
                main = Some(Module {
                    path: path.to_owned(),
                    version: version
                        .filter(|v| !v.is_empty())
                        .unwrap_or("(devel)")
                        .to_owned(),
                })
            }
            (Some("dep"), Some(path), Some(version)) => deps.push(Module {
                path: path.to_owned(),
                version: version.to_owned(),
            }),
            (Some("=>"), Some(path), version) => {
                if let Some(last) = deps.last_mut() {
                    match version.filter(|v| !v.is_empty()) {
                        Some(v) => {
                            last.path = path.to_owned();
                            last.version = v.to_owned();
                        }
                        None => last.version = "(devel)".to_owned(),
                    }
                }
            }
            (Some("build"), Some(kv), _) => {
                if let Some(kv) = kv.split_once('=') {
                    settings.push(kv);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(mut m) = main {
        if m.version == "(devel)" {
            if let Some(v) = main_version(&settings) {
                m.version = v;
            }
        }
        out.push(m);
    }
    out.extend(deps);
    if let Some(v) = stdlib_version(&info.go_version) {
        out.push(Module {
            path: "stdlib".to_owned(),
            version: v,
        });
    }
    out
}

/// `go1.23.4` (or `go1.22.0 X:boringcrypto`) to `1.23.4`; `None` for a development
/// toolchain, which names no release.
fn stdlib_version(go: &str) -> Option<String> {
    let v = go.split_whitespace().next()?.strip_prefix("go")?;
    v.chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| v.to_owned())
}

/// The main module's version when the toolchain wrote `(devel)`: from `-ldflags`, else
/// a pseudo-version from the VCS stamp (Syft's order).
fn main_version(settings: &[(&str, &str)]) -> Option<String> {
    static FLAGS: OnceLock<[Regex; 2]> = OnceLock::new();
    let flags = FLAGS.get_or_init(|| {
        [
            Regex::new(r"\.([gG]it)?([bB]uild)?[vV]ersion=(?P<version>v?\d+\.\d+\.\d+[-\w]*)")
                .expect("a valid pattern"),
            Regex::new(r"\.[tT]ag=(?P<version>v?\d+\.\d+\.\d+[-\w]*)").expect("a valid pattern"),
        ]
    });
    let get = |k: &str| settings.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    if let Some(ld) = get("-ldflags") {
        for re in flags {
            if let Some(v) = re.captures(ld).and_then(|c| c.name("version")) {
                let v = v.as_str();
                return Some(if v.starts_with('v') {
                    v.to_owned()
                } else {
                    format!("v{v}")
                });
            }
        }
    }
    let (rev, time) = (get("vcs.revision")?, get("vcs.time")?);
    // `2024-12-13T18:41:10Z` to `20241213184110`.
    let stamp: String = time.chars().filter(char::is_ascii_digit).take(14).collect();
    // The revision is the binary's to say: only a hex one names a commit (and slicing a
    // byte index inside a multi-byte character would panic).
    let short = rev.get(..12).filter(|r| {
        r.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })?;
    if stamp.len() != 14 {
        return None;
    }
    Some(format!("v0.0.0-{stamp}-{short}"))
}

/// The Go build info section as the linker writes it (inline format), for tests.
#[cfg(test)]
pub(crate) fn section(go_version: &str, modinfo: &str) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, s: &[u8]) {
        let mut n = s.len() as u64;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(s);
    }
    let mut out = MAGIC.to_vec();
    out.push(8); // pointer size
    out.push(0x2); // inline strings
    out.resize(32, 0);
    put(&mut out, go_version.as_bytes());
    let mut framed = hex::decode("3077af0c9274080241e1c107e6d618e6").expect("hex");
    framed.extend_from_slice(modinfo.as_bytes());
    framed.extend(hex::decode("f932433186182072008242104116d8f2").expect("hex"));
    put(&mut out, &framed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODINFO: &str = "path\texample.com/app/cmd/app\n\
        mod\texample.com/app\t(devel)\t\n\
        dep\tgithub.com/BurntSushi/toml\tv1.4.0\th1:abc=\n\
        dep\tgolang.org/x/net\tv0.1.0\th1:def=\n\
        =>\tgithub.com/fork/net\tv0.2.0\th1:ghi=\n\
        dep\texample.com/local\tv1.0.0\n\
        =>\t../local\t\n\
        build\t-ldflags=\"-s -w -X main.version=2.3.4\"\n\
        build\tvcs.revision=5e16e5031a13f8a11057feb8544decebfc43b4ed\n\
        build\tvcs.time=2024-12-13T18:41:10Z\n";

    fn pairs(ms: &[Module]) -> Vec<(&str, &str)> {
        ms.iter()
            .map(|m| (m.path.as_str(), m.version.as_str()))
            .collect()
    }

    #[test]
    fn inline_build_info_in_an_elf_section() {
        let elf = elf::build(&[
            (".text", b"\x90\x90"),
            (".go.buildinfo", &section("go1.23.4", MODINFO)),
        ]);
        let info = buildinfo(&elf).unwrap().unwrap();
        assert_eq!(info.go_version, "go1.23.4");
        assert!(info.modinfo.starts_with("path\texample.com/app/cmd/app\n"));
        assert_eq!(
            pairs(&modules(&info)),
            [
                ("example.com/app", "v2.3.4"),
                ("github.com/BurntSushi/toml", "v1.4.0"),
                ("github.com/fork/net", "v0.2.0"),
                ("example.com/local", "(devel)"),
                ("stdlib", "1.23.4"),
            ]
        );
        // Without section headers (`sstrip`) the header is found by its magic.
        let mut stripped = elf::build(&[
            (".data", &[0; 16]),
            (".go.buildinfo", &section("go1.22.1", MODINFO)),
        ]);
        stripped[0x28..0x30].fill(0);
        assert!(!elf::has_section_headers(&stripped));
        assert_eq!(
            buildinfo(&stripped).unwrap().unwrap().go_version,
            "go1.22.1"
        );
        // An ELF file with no build info is no Go binary, even when it holds the magic as
        // a constant (as a tool that reads Go binaries does).
        assert_eq!(buildinfo(&elf::build(&[(".text", b"\x90")])).unwrap(), None);
        let mut reader = vec![0u8; 16];
        reader.extend(MAGIC);
        assert_eq!(
            buildinfo(&elf::build(&[(".rodata", &reader)])).unwrap(),
            None
        );
    }

    #[test]
    fn main_module_version_from_vcs_or_devel() {
        let vcs = MODINFO.replace("-X main.version=2.3.4", "");
        let info = BuildInfo {
            go_version: "go1.21.0".into(),
            modinfo: vcs.clone(),
        };
        assert_eq!(
            modules(&info)[0].version,
            "v0.0.0-20241213184110-5e16e5031a13"
        );
        let bare = BuildInfo {
            go_version: "devel go1.24-abcdef".into(),
            modinfo: "mod\texample.com/app\t(devel)\t\n".into(),
        };
        // A development toolchain names no standard-library release.
        assert_eq!(pairs(&modules(&bare)), [("example.com/app", "(devel)")]);
        // A revision that is not a commit hash gives no pseudo-version, and no panic on
        // a multi-byte character at byte 12 or a short one.
        for rev in [
            "a€€€€€€€€",
            "5e16e5031a1€",
            "5E16E5031A13F8A1",
            "5e16e5031a1",
            "zzzzzzzzzzzzzz",
        ] {
            let info = BuildInfo {
                go_version: "go1.21.0".into(),
                modinfo: vcs.replace("5e16e5031a13f8a11057feb8544decebfc43b4ed", rev),
            };
            assert_eq!(modules(&info)[0].version, "(devel)", "{rev}");
        }
    }

    #[test]
    fn garbled_build_info_is_an_error_not_a_panic() {
        let good = section("go1.23.4", MODINFO);
        for cut in [16, 31, 33, 40, good.len() - 1] {
            let elf = elf::build(&[(".go.buildinfo", &good[..cut])]);
            let err = buildinfo(&elf).unwrap_err();
            assert!(err.contains("truncated"), "cut at {cut}: {err}");
        }
        let mut old = good.clone();
        old[15] = 0; // pointer format
        let err = buildinfo(&elf::build(&[(".go.buildinfo", &old)])).unwrap_err();
        assert!(err.contains("before 1.18"), "{err}");
        let err = buildinfo(&elf::build(&[(
            ".go.buildinfo",
            b"garbage garbage garbage garbage garbage",
        )]))
        .unwrap_err();
        assert!(err.contains("magic"), "{err}");
        // A length prefix claiming more than the section holds.
        let mut long = good[..32].to_vec();
        long.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(buildinfo(&elf::build(&[(".go.buildinfo", &long)])).is_err());
    }
}
