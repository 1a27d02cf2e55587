//! Rust crates recorded by `cargo auditable`: the ELF section `.dep-v0` holds the
//! zlib-compressed JSON `{"packages":[{"name","version","source","kind","dependencies",
//! "root"}]}`, one entry per crate in the build's dependency graph.
//!
//! Kept: crates whose `source` is `crates.io`, as `pkg:cargo/name@version`, the purl and
//! the name the RustSec and OSV crates.io advisories are filed under. Left out, as Syft
//! leaves them out or as they would be matched wrongly:
//! - `kind: build` crates (build scripts and proc macros run at build time and are not
//!   in the binary; Syft skips them too);
//! - the root crate and other `local` crates (the application itself, from a folder),
//!   and `git` or other-registry crates: a crates.io advisory about a crate of the same
//!   name is not about them.

use std::io::Read;

use serde::Deserialize;

/// The JSON text of a `.dep-v0` section, decompressed; at most `cap` bytes are
/// inflated (a decompression bomb is refused, not read whole).
pub(crate) fn decompress(section: &[u8], cap: u64) -> Result<String, String> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(section)
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("cargo-auditable data is not zlib: {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!(
            "cargo-auditable data inflates past max_file_bytes ({cap})"
        ));
    }
    String::from_utf8(out).map_err(|_| "cargo-auditable data is not UTF-8".to_owned())
}

#[derive(Deserialize)]
struct Doc {
    packages: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    version: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    kind: Option<String>,
}

/// The crates.io crates compiled into the binary, as (name, version).
pub(crate) fn crates(json: &str) -> Result<Vec<(String, String)>, String> {
    let doc: Doc = serde_json::from_str(json).map_err(|e| format!("cargo-auditable JSON: {e}"))?;
    Ok(doc
        .packages
        .into_iter()
        .filter(|p| p.source == "crates.io" && p.kind.as_deref().is_none_or(|k| k == "runtime"))
        .map(|p| (p.name, p.version))
        .collect())
}

#[cfg(test)]
pub(crate) fn compress(json: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(json.as_bytes()).expect("in memory");
    e.finish().expect("in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `cargo auditable build` 0.7.7 wrote for a crate depending on `itoa`
    /// and `hex` (read back from the real binary once, see the report of issue 19).
    pub(crate) const DEMO: &str = r#"{"packages":[{"name":"aud-demo","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},{"name":"hex","version":"0.4.3","source":"crates.io"},{"name":"itoa","version":"1.0.15","source":"crates.io"},{"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"},{"name":"forked","version":"0.1.0","source":"git"}]}"#;

    #[test]
    fn crates_io_runtime_crates_only() {
        let json = decompress(&compress(DEMO), 1 << 20).unwrap();
        assert_eq!(
            crates(&json).unwrap(),
            [
                ("hex".to_owned(), "0.4.3".to_owned()),
                ("itoa".to_owned(), "1.0.15".to_owned())
            ]
        );
    }

    #[test]
    fn bombs_and_garbage_are_refused_with_a_reason() {
        let zeros = compress(&" ".repeat(1 << 20));
        let err = decompress(&zeros, 1000).unwrap_err();
        assert!(err.contains("max_file_bytes"), "{err}");
        let err = decompress(b"not zlib at all", 1000).unwrap_err();
        assert!(err.contains("not zlib"), "{err}");
        assert!(crates("{\"packages\": 3}").is_err());
    }
}
