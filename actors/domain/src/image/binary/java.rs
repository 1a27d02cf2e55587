//! Java archives (JAR, WAR, EAR: zip files): what identifies the packages in them, and
//! those packages.
//!
//! Read from each archive: `META-INF/MANIFEST.MF` (its main section) and every
//! `META-INF/maven/<group>/<artifact>/pom.properties`; archives nested in it
//! (`BOOT-INF/lib/*.jar`, `WEB-INF/lib/*.jar`, an EAR's modules) are read the same way,
//! at most [`MAX_NESTING`] deep. Every byte inflated, over the archive and everything
//! nested in it, counts against one cap (`max_file_bytes`): a zip bomb is refused as a
//! whole, whatever sizes its headers claim.
//!
//! Packages (compared with Syft 1.18 on this machine's JARs, see the tests):
//! - each `pom.properties` with `groupId`, `artifactId` and `version` is one package,
//!   `pkg:maven/<groupId>/<artifactId>@<version>`; a shaded JAR holds one per shaded
//!   library, and all are reported;
//! - an archive with no usable `pom.properties` falls back to its manifest and file name:
//!   the name from the file name without its version (`guice-no-aop-4.2.3.jar` →
//!   `guice-no-aop`), the version from `Implementation-Version`, else `Bundle-Version`,
//!   else the file name's; the group from `Bundle-SymbolicName` when it is dotted, else
//!   the name itself (Syft's rule too: `pkg:maven/aopalliance/aopalliance@1.0`).
//!   An archive with no version anywhere gives no package (it is listed as skipped);
//! - unlike Syft, an archive that has `pom.properties` does not also get a package guessed
//!   from its file name and manifest: Syft's guess duplicates the real one under another
//!   name when a distribution renamed the file (`maven3-core.jar` holds
//!   `org.apache.maven:maven-core`, and Syft also reports `pkg:maven/maven3-core/maven3-core`),
//!   or is versionless (`UNKNOWN`) for a shaded JAR.

use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};

/// How many archives deep nested archives are read (an EAR holding a WAR holding JARs
/// is 2).
pub const MAX_NESTING: usize = 4;

/// What was read of one archive (the outer one or a nested one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JavaArchive {
    /// Where it sits inside the outer archive, `!`-separated (`WEB-INF/lib/a.jar`,
    /// `lib/x.war!WEB-INF/lib/y.jar`); empty for the outer archive.
    pub inner: String,
    /// The main section of `META-INF/MANIFEST.MF`, continuation lines joined.
    pub manifest: Vec<(String, String)>,
    /// Each `pom.properties`' keys and values.
    pub poms: Vec<Vec<(String, String)>>,
    /// Why this nested archive could not be read, when it could not.
    pub unreadable: Option<String>,
}

/// Reads an archive and the archives nested in it; an error (not a zip, a cap) refuses
/// the archive as a whole.
pub(crate) fn read(bytes: &[u8], cap: u64) -> Result<Vec<JavaArchive>, String> {
    let mut budget = cap;
    let mut out = Vec::new();
    walk(bytes, "", 0, &mut budget, cap, &mut out)?;
    Ok(out)
}

fn is_archive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jar", ".war", ".ear"].iter().any(|e| lower.ends_with(e))
}

/// Whether a file in an image is read as a Java archive, by its name.
pub(crate) fn is_java_archive(path: &str) -> bool {
    is_archive_name(path)
}

fn walk(
    bytes: &[u8],
    inner: &str,
    depth: usize,
    budget: &mut u64,
    cap: u64,
    out: &mut Vec<JavaArchive>,
) -> Result<(), String> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a zip: {e}"))?;
    let mut record = JavaArchive {
        inner: inner.to_owned(),
        manifest: Vec::new(),
        poms: Vec::new(),
        unreadable: None,
    };
    let mut nested = Vec::new();
    for i in 0..zip.len() {
        let mut entry = match zip.by_index(i) {
            Ok(e) => e,
            // An entry the zip reader refuses (an unsupported method, encryption) is not
            // one of the few files read here, or if it is, it is missing.
            Err(_) => continue,
        };
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_owned();
        let kind = if name.eq_ignore_ascii_case("META-INF/MANIFEST.MF") {
            Kind::Manifest
        } else if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
            Kind::Pom
        } else if is_archive_name(&name) {
            Kind::Nested
        } else {
            continue;
        };
        let mut data = Vec::new();
        (&mut entry)
            .take(budget.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| format!("cannot inflate {name}: {e}"))?;
        if data.len() as u64 > *budget {
            return Err(format!(
                "its contents inflate past max_file_bytes ({cap}) at {name}"
            ));
        }
        *budget -= data.len() as u64;
        match kind {
            Kind::Manifest => record.manifest = manifest(&String::from_utf8_lossy(&data)),
            Kind::Pom => record
                .poms
                .push(properties(&String::from_utf8_lossy(&data))),
            Kind::Nested => nested.push((name, data)),
        }
    }
    out.push(record);
    for (name, data) in nested {
        let path = if inner.is_empty() {
            name
        } else {
            format!("{inner}!{name}")
        };
        if depth + 1 > MAX_NESTING {
            out.push(JavaArchive {
                inner: path,
                manifest: Vec::new(),
                poms: Vec::new(),
                unreadable: Some(format!("nested more than {MAX_NESTING} archives deep")),
            });
            continue;
        }
        let before = out.len();
        if let Err(e) = walk(&data, &path, depth + 1, budget, cap, out) {
            if e.contains("max_file_bytes") {
                return Err(e);
            }
            out.truncate(before);
            out.push(JavaArchive {
                inner: path,
                manifest: Vec::new(),
                poms: Vec::new(),
                unreadable: Some(e),
            });
        }
    }
    Ok(())
}

enum Kind {
    Manifest,
    Pom,
    Nested,
}

/// The main section of a manifest: `Key: value` lines up to the first blank line, a
/// line starting with a space continuing the one before.
fn manifest(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(more) = line.strip_prefix(' ') {
            if let Some(last) = out.last_mut() {
                last.1.push_str(more);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// Java properties as Maven writes them: `key=value` lines, `#` comments.
fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once(['=', ':']))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// One Maven package: group, artifact, version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coordinates {
    pub(crate) group: String,
    pub(crate) artifact: String,
    pub(crate) version: String,
}

/// The packages of one archive read by [`read`]; `file_name` is the archive's own name
/// (the last component of its path, outer or nested). `Err` when nothing names a version.
pub(crate) fn packages(a: &JavaArchive, file_name: &str) -> Result<Vec<Coordinates>, String> {
    let poms: Vec<Coordinates> = a
        .poms
        .iter()
        .filter_map(|p| {
            Some(Coordinates {
                group: get(p, "groupId")?.to_owned(),
                artifact: get(p, "artifactId")?.to_owned(),
                version: get(p, "version")?.to_owned(),
            })
        })
        .collect();
    if !poms.is_empty() {
        return Ok(poms);
    }
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem);
    // `name-1.2.3`: the version starts at the first `-` followed by a digit.
    let (name, file_version) = match stem
        .char_indices()
        .find(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
    {
        Some((i, _)) => (&stem[..i], Some(&stem[i + 1..])),
        None => (stem, None),
    };
    let m = &a.manifest;
    let version = get(m, "Implementation-Version")
        .or_else(|| get(m, "Bundle-Version"))
        .or(file_version)
        .ok_or("no version in pom.properties, the manifest or the file name")?;
    let group = get(m, "Bundle-SymbolicName")
        .map(|s| s.split(';').next().unwrap_or_default().trim())
        .filter(|s| s.contains('.'))
        .unwrap_or(name);
    if name.is_empty() {
        return Err("no name in pom.properties or the file name".to_owned());
    }
    Ok(vec![Coordinates {
        group: group.to_owned(),
        artifact: name.to_owned(),
        version: version.to_owned(),
    }])
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// A zip with the given files, deflated.
    pub(crate) fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            for (name, data) in files {
                w.start_file(*name, o).unwrap();
                w.write_all(data).unwrap();
            }
            w.finish().unwrap();
        }
        buf.into_inner()
    }

    pub(crate) fn pom(g: &str, a: &str, v: &str) -> Vec<u8> {
        format!("#Generated by Maven\ngroupId={g}\nartifactId={a}\nversion={v}\n").into_bytes()
    }

    fn coords(c: &[Coordinates]) -> Vec<String> {
        c.iter()
            .map(|c| format!("{}:{}:{}", c.group, c.artifact, c.version))
            .collect()
    }

    #[test]
    fn fat_jar_with_nested_jars_and_fallbacks() {
        let lib = zip_of(&[(
            "META-INF/maven/org.slf4j/slf4j-api/pom.properties",
            &pom("org.slf4j", "slf4j-api", "2.0.9"),
        )]);
        let bare = zip_of(&[(
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\r\nBundle-SymbolicName: com.example.bare;singleton:=true\r\nImplementation-Version: 3.1\r\n\r\nName: x\r\nImplementation-Version: 9\r\n",
        )]);
        let app = zip_of(&[
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\nImplementation-Title: app\nImplementation-Ver\n sion: 1.0\n"),
            (
                "META-INF/maven/com.example/app/pom.properties",
                &pom("com.example", "app", "1.0.0"),
            ),
            ("BOOT-INF/lib/slf4j-api-2.0.9.jar", &lib),
            ("BOOT-INF/lib/bare-0.9.jar", &bare),
            ("BOOT-INF/lib/broken.jar", b"not a zip"),
            ("BOOT-INF/lib/noversion.jar", &zip_of(&[("a.class", b"")])),
        ]);
        let read = read(&app, 1 << 20).unwrap();
        let inner: Vec<&str> = read.iter().map(|a| a.inner.as_str()).collect();
        assert_eq!(
            inner,
            [
                "",
                "BOOT-INF/lib/slf4j-api-2.0.9.jar",
                "BOOT-INF/lib/bare-0.9.jar",
                "BOOT-INF/lib/broken.jar",
                "BOOT-INF/lib/noversion.jar"
            ]
        );
        assert_eq!(
            coords(&packages(&read[0], "app.jar").unwrap()),
            ["com.example:app:1.0.0"]
        );
        assert_eq!(
            coords(&packages(&read[1], "slf4j-api-2.0.9.jar").unwrap()),
            ["org.slf4j:slf4j-api:2.0.9"]
        );
        // The manifest's version wins over the file name's; its main section only.
        assert_eq!(
            coords(&packages(&read[2], "bare-0.9.jar").unwrap()),
            ["com.example.bare:bare:3.1"]
        );
        assert!(read[3].unreadable.as_deref().unwrap().contains("not a zip"));
        assert!(packages(&read[4], "noversion.jar").is_err());
        // No manifest version: the file name's, and the name as group.
        let plain = JavaArchive {
            inner: String::new(),
            manifest: vec![],
            poms: vec![],
            unreadable: None,
        };
        assert_eq!(
            coords(&packages(&plain, "aopalliance-1.0.jar").unwrap()),
            ["aopalliance:aopalliance:1.0"]
        );
    }

    #[test]
    fn a_zip_bomb_is_refused_by_the_cap_and_nesting_is_capped() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = zip_of(&[("BOOT-INF/lib/zeros.jar", &zeros)]);
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let err = read(&bomb, 1 << 20).unwrap_err();
        assert!(err.contains("max_file_bytes (1048576)"), "{err}");
        assert!(err.contains("BOOT-INF/lib/zeros.jar"), "{err}");
        // The same bytes nested twice: the cap counts over all levels.
        let half = zip_of(&[("a.jar", &vec![0u8; 600 << 10])]);
        let twice = zip_of(&[("x.jar", &half), ("y.jar", &half)]);
        assert!(read(&twice, 1 << 20).is_err());
        assert!(read(&twice, 4 << 20).is_ok());

        let mut deep = zip_of(&[("META-INF/maven/g/a/pom.properties", &pom("g", "a", "1"))]);
        for _ in 0..MAX_NESTING + 1 {
            deep = zip_of(&[("lib/in.jar", &deep)]);
        }
        let read = read(&deep, 1 << 20).unwrap();
        let last = read.last().unwrap();
        assert_eq!(last.inner.matches('!').count(), MAX_NESTING);
        assert!(last
            .unreadable
            .as_deref()
            .unwrap()
            .contains("nested more than"));
        assert!(read.iter().all(|a| a.poms.is_empty()));
    }
}
