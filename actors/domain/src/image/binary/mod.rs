//! Binaries and archives: Go build info, `cargo auditable` data and Java archives.
//!
//! These files can be anywhere and large, so unlike package databases they are not kept
//! whole. The layer reader (and the `--rootfs` walk) probes each regular file
//! ([`is_candidate`]: an ELF by its first bytes, a `.jar`/`.war`/`.ear` by its name),
//! reads one at a time within `max_file_bytes`, and keeps only a small [`Derived`]
//! record under the file's path, so whiteouts and later layers replace it as they
//! replace any file. [`analyze_into`] turns the records into packages.
//!
//! Layout:
//! - [`elf`]: a named section of an ELF file;
//! - [`golang`]: Go build info;
//! - [`rust`]: `cargo auditable`'s `.dep-v0` section;
//! - [`java`]: JAR, WAR and EAR, nested ones included.

pub mod elf;
pub mod golang;
pub mod java;
pub mod rust;

use serde::{Deserialize, Serialize};

use super::analyzers::{Inventory, Package, PackageType};
use super::rootfs::{Node, RootFs};
use crate::purl::Purl;

pub use golang::BuildInfo;
pub use java::JavaArchive;

/// What is kept of a binary or archive in place of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Derived {
    /// A Go binary's build info.
    Go(BuildInfo),
    /// A Rust binary's `cargo auditable` JSON, decompressed.
    CargoAuditable(String),
    /// A Java archive and those nested in it.
    Java(Vec<JavaArchive>),
    /// A file that looked like a binary or archive but could not be read, and why.
    Unreadable(String),
}

/// Whether the regular file at `path`, starting with `head` (its first bytes, at least
/// 4 when the file has them), is probed as a binary or archive.
pub fn is_candidate(path: &str, head: &[u8]) -> bool {
    head.starts_with(elf::MAGIC) || java::is_java_archive(path)
}

/// The record kept of a candidate file's bytes; `None` when it holds nothing an
/// analyzer reads (an ELF file that is neither a Go nor an auditable Rust binary).
/// `cap` bounds what is inflated from it (`max_file_bytes`).
pub fn derive(path: &str, bytes: &[u8], cap: u64) -> Option<Derived> {
    if bytes.starts_with(elf::MAGIC) {
        match golang::buildinfo(bytes) {
            Ok(Some(info)) => return Some(Derived::Go(info)),
            Ok(None) => {}
            Err(e) => return Some(Derived::Unreadable(e)),
        }
        return match elf::section(bytes, ".dep-v0") {
            Ok(Some(section)) => Some(match rust::decompress(section, cap) {
                Ok(json) => Derived::CargoAuditable(json),
                Err(e) => Derived::Unreadable(e),
            }),
            // An ELF file whose section headers cannot be read is no binary Stella reads;
            // not worth a line in the SBOM (core dumps, firmware blobs).
            Ok(None) | Err(_) => None,
        };
    }
    if java::is_java_archive(path) {
        return Some(match java::read(bytes, cap) {
            Ok(archives) => Derived::Java(archives),
            Err(e) => Derived::Unreadable(e),
        });
    }
    None
}

/// The packages of every derived record, added to `inv`; what
/// cannot be read goes to [`Inventory::skipped`].
pub(crate) fn analyze_into(fs: &RootFs, inv: &mut Inventory) {
    for (path, entry) in fs.entries() {
        let mut out = Out {
            inv: &mut *inv,
            layer: entry.layer,
        };
        let derived = match &entry.node {
            Node::Derived(d) => &**d,
            _ => continue,
        };
        match derived {
            Derived::Go(info) => {
                for m in golang::modules(info) {
                    out.add(PackageType::Golang, &m.path, &m.version, go_purl(&m), path);
                }
            }
            Derived::CargoAuditable(json) => match rust::crates(json) {
                Ok(crates) => {
                    for (name, version) in crates {
                        let purl = Purl::from_parts("cargo", None, &name, Some(&version), [], None)
                            .map_err(|e| e.to_string());
                        out.add(PackageType::Cargo, &name, &version, purl, path);
                    }
                }
                Err(e) => out.skip(path, e),
            },
            Derived::Java(archives) => {
                for a in archives {
                    let evidence = if a.inner.is_empty() {
                        path.to_owned()
                    } else {
                        format!("{path}!{}", a.inner)
                    };
                    if let Some(e) = &a.unreadable {
                        out.skip(&evidence, e.clone());
                        continue;
                    }
                    let file_name = evidence.rsplit(['/', '!']).next().unwrap_or_default();
                    match java::packages(a, file_name) {
                        Ok(found) => {
                            for c in found {
                                let purl = Purl::from_parts(
                                    "maven",
                                    Some(&c.group),
                                    &c.artifact,
                                    Some(&c.version),
                                    [],
                                    None,
                                )
                                .map_err(|e| e.to_string());
                                out.add(
                                    PackageType::Maven,
                                    &c.artifact,
                                    &c.version,
                                    purl,
                                    &evidence,
                                );
                            }
                        }
                        Err(e) => out.skip(&evidence, e),
                    }
                }
            }
            Derived::Unreadable(reason) => out.skip(path, reason.clone()),
        }
    }
}

/// Where one file's packages and problems go.
struct Out<'a> {
    inv: &'a mut Inventory,
    layer: usize,
}

impl Out<'_> {
    fn add(
        &mut self,
        ty: PackageType,
        name: &str,
        version: &str,
        purl: Result<Purl, String>,
        evidence: &str,
    ) {
        match purl {
            Ok(purl) => self.inv.packages.push(Package {
                ty,
                name: name.to_owned(),
                version: version.to_owned(),
                arch: None,
                source: None,
                purl,
                evidence: evidence.to_owned(),
                layer: self.layer,
            }),
            Err(e) => self.skip(evidence, e),
        }
    }

    fn skip(&mut self, evidence: &str, reason: String) {
        self.inv.skipped.push((evidence.to_owned(), reason));
    }
}

/// `pkg:golang/<namespace>/<name>@<version>`: the module path split at its last `/`.
fn go_purl(m: &golang::Module) -> Result<Purl, String> {
    let (ns, name) = match m.path.rsplit_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, m.path.as_str()),
    };
    Purl::from_parts("golang", ns, name, Some(&m.version), [], None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::java::tests::{pom, zip_of};
    use super::*;
    use crate::image::analyze;
    use crate::image::rootfs::tests::{tar_of, E};
    use crate::image::rootfs::{read_layer, Budget};
    use crate::image::Limits;

    fn layered(layers: &[Vec<u8>], limits: &Limits) -> RootFs {
        let mut fs = RootFs::default();
        let mut budget = Budget::default();
        for (i, l) in layers.iter().enumerate() {
            let (delta, _) = read_layer(&l[..], limits, &mut budget).unwrap();
            fs.apply(i, delta);
        }
        fs
    }

    fn rows(inv: &Inventory) -> Vec<(String, String, usize)> {
        inv.packages
            .iter()
            .map(|p| (p.purl.to_string(), p.evidence.clone(), p.layer))
            .collect()
    }

    const MODINFO: &str = "path\texample.com/app\nmod\texample.com/app\tv1.2.0\th1:x=\ndep\tgithub.com/BurntSushi/toml\tv1.4.0\th1:y=\n";

    #[test]
    fn layers_keep_derived_records_under_their_paths() {
        let go = elf::build(&[(".go.buildinfo", &golang::section("go1.22.5", MODINFO))]);
        let auditable = elf::build(&[(
            ".dep-v0",
            &rust::compress(
                r#"{"packages":[{"name":"app","version":"0.1.0","source":"local","root":true},{"name":"itoa","version":"1.0.19","source":"crates.io"}],"format":1}"#,
            ),
        )]);
        let libc = elf::build(&[(".text", b"\x90")]);
        let big = elf::build(&[(".text", &[0x90; 4096])]);
        let jar = zip_of(&[(
            "META-INF/maven/com.example/lib/pom.properties",
            &pom("com.example", "lib", "2.0"),
        )]);
        let l0 = tar_of(&[
            E::File("usr/local/bin/app", &go),
            E::Hardlink("usr/bin/app-again", "usr/local/bin/app"),
            E::File("usr/bin/rusty", &auditable),
            E::File("usr/lib/libc.so.6", &libc),
            E::File("usr/bin/huge", &big),
            E::File("opt/lib.jar", &jar),
            E::File("opt/old.jar", &jar),
            E::File(
                "src/go.mod",
                b"module m\n\nrequire golang.org/x/text v0.14.0\n",
            ),
            E::File(
                "root/go/pkg/mod/golang.org/x/text@v0.14.0/go.mod",
                b"module golang.org/x/text\n\nrequire golang.org/x/tools v0.1.0\n",
            ),
        ]);
        // The upper layer deletes one archive and replaces the binary with a new build.
        let go2 = elf::build(&[(
            ".go.buildinfo",
            &golang::section("go1.23.0", &MODINFO.replace("v1.4.0", "v1.4.1")),
        )]);
        let l1 = tar_of(&[
            E::File("opt/.wh.old.jar", b""),
            E::File("usr/local/bin/app", &go2),
        ]);
        let limits = Limits {
            max_file_bytes: 2048,
            ..Limits::default()
        };
        let fs = layered(&[l0, l1], &limits);
        // Records, never bytes: the ELF without build info is not kept at all, nor the
        // `go.mod` of a module in Go's download cache.
        let kept: Vec<(&str, bool)> = fs
            .entries()
            .map(|(p, e)| (p, matches!(e.node, Node::Derived(_))))
            .collect();
        assert_eq!(
            kept,
            [
                ("opt/lib.jar", true),
                ("src/go.mod", false),
                ("usr/bin/app-again", true),
                ("usr/bin/huge", true),
                ("usr/bin/rusty", true),
                ("usr/local/bin/app", true),
            ]
        );
        let inv = analyze(&fs);
        let s = |p: &str, e: &str, l| (p.to_owned(), e.to_owned(), l);
        assert_eq!(
            rows(&inv),
            [
                s("pkg:cargo/itoa@1.0.19", "usr/bin/rusty", 0),
                s("pkg:golang/example.com/app@v1.2.0", "usr/bin/app-again", 0),
                s("pkg:golang/example.com/app@v1.2.0", "usr/local/bin/app", 1),
                s(
                    "pkg:golang/github.com/BurntSushi/toml@v1.4.0",
                    "usr/bin/app-again",
                    0
                ),
                s(
                    "pkg:golang/github.com/BurntSushi/toml@v1.4.1",
                    "usr/local/bin/app",
                    1
                ),
                s("pkg:golang/golang.org/x/text@v0.14.0", "src/go.mod", 0),
                s("pkg:golang/stdlib@1.22.5", "usr/bin/app-again", 0),
                s("pkg:golang/stdlib@1.23.0", "usr/local/bin/app", 1),
                s("pkg:maven/com.example/lib@2.0", "opt/lib.jar", 0),
            ]
        );
        assert_eq!(inv.skipped.len(), 1, "{:?}", inv.skipped);
        assert_eq!(inv.skipped[0].0, "usr/bin/huge");
        assert!(
            inv.skipped[0].1.contains("max_file_bytes (2048)"),
            "{:?}",
            inv.skipped
        );
    }

    #[test]
    fn unreadable_binaries_and_archives_are_skipped_with_a_reason() {
        let mut garbled = golang::section("go1.22.5", MODINFO);
        garbled.truncate(40);
        let l = tar_of(&[
            E::File("usr/bin/cut", &elf::build(&[(".go.buildinfo", &garbled)])),
            E::File(
                "opt/bomb.war",
                &zip_of(&[("WEB-INF/lib/z.jar", &vec![0; 1 << 20])]),
            ),
            E::File("opt/not-a-zip.jar", b"PK but not really"),
        ]);
        let inv = analyze(&layered(
            &[l],
            &Limits {
                max_file_bytes: 64 << 10,
                ..Limits::default()
            },
        ));
        assert!(inv.packages.is_empty(), "{:?}", inv.packages);
        let skipped: Vec<(&str, bool)> = inv
            .skipped
            .iter()
            .map(|(p, why)| {
                let expected = match p.as_str() {
                    "usr/bin/cut" => "truncated",
                    "opt/bomb.war" => "max_file_bytes",
                    _ => "not a zip",
                };
                (p.as_str(), why.contains(expected))
            })
            .collect();
        assert_eq!(
            skipped,
            [
                ("opt/bomb.war", true),
                ("opt/not-a-zip.jar", true),
                ("usr/bin/cut", true)
            ],
            "{:?}",
            inv.skipped
        );
    }

    /// Checked against binutils: a `.dep-v0` section added by `objcopy` to a real,
    /// linker-made ELF binary (this machine's `true`) is found and read. The section's
    /// JSON is what `cargo auditable build` 0.7.7 wrote for a crate depending on `hex`
    /// and `itoa` (read once from that real binary, byte for byte).
    #[test]
    fn auditable_section_added_by_objcopy_to_a_real_binary() {
        const REAL: &str = r#"{"packages":[{"name":"aud-demo","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},{"name":"hex","version":"0.4.3","source":"crates.io"},{"name":"itoa","version":"1.0.19","source":"crates.io"}],"format":1}"#;
        let Some(host) = ["/usr/bin/true", "/bin/true"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            eprintln!("no /usr/bin/true: skipped");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let section = dir.path().join("dep.z");
        std::fs::write(&section, rust::compress(REAL)).unwrap();
        let out = dir.path().join("true-auditable");
        let status = std::process::Command::new("objcopy")
            .arg("--add-section")
            .arg(format!(".dep-v0={}", section.display()))
            .arg(host)
            .arg(&out)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("no objcopy on this machine: skipped");
            return;
        }
        let bytes = std::fs::read(&out).unwrap();
        let mut fs = RootFs::default();
        let node = crate::image::rootfs::keep_file(
            "usr/bin/true",
            bytes.len() as u64,
            &bytes[..],
            &Limits::default(),
        )
        .unwrap()
        .unwrap();
        fs.insert_node("usr/bin/true", node, 0);
        let inv = analyze(&fs);
        let purls: Vec<&str> = inv.packages.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(purls, ["pkg:cargo/hex@0.4.3", "pkg:cargo/itoa@1.0.19"]);
        // The unmodified binary has neither section: nothing is kept of it.
        let plain = std::fs::read(host).unwrap();
        assert_eq!(
            crate::image::rootfs::keep_file(
                "usr/bin/true",
                plain.len() as u64,
                &plain[..],
                &Limits::default()
            )
            .unwrap(),
            None
        );
    }

    /// The CycloneDX components of binary and archive packages: `library` components with
    /// the purl as `bom-ref`, the Maven group as `group`, the nested archive as evidence;
    /// the document reads back as the same purls.
    #[test]
    fn cyclonedx_components_of_binary_packages() {
        let lib = zip_of(&[(
            "META-INF/maven/org.slf4j/slf4j-api/pom.properties",
            &pom("org.slf4j", "slf4j-api", "2.0.9"),
        )]);
        let war = zip_of(&[("WEB-INF/lib/slf4j-api-2.0.9.jar", &lib)]);
        let go = elf::build(&[(".go.buildinfo", &golang::section("go1.22.5", MODINFO))]);
        let mut fs = RootFs::default();
        for (path, bytes) in [("srv/app.war", &war), ("usr/bin/app", &go)] {
            let node = crate::image::rootfs::keep_file(
                path,
                bytes.len() as u64,
                &bytes[..],
                &Limits::default(),
            )
            .unwrap()
            .unwrap();
            fs.insert_node(path, node, 0);
        }
        let image = crate::image::Image::of_rootfs(fs);
        let inv = analyze(&image.rootfs);
        let doc = crate::image::cyclonedx::document(&image, &inv);
        let slf4j = doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "slf4j-api")
            .unwrap();
        assert_eq!(slf4j["type"], "library");
        assert_eq!(slf4j["group"], "org.slf4j");
        assert_eq!(slf4j["version"], "2.0.9");
        assert_eq!(slf4j["purl"], "pkg:maven/org.slf4j/slf4j-api@2.0.9");
        assert_eq!(slf4j["bom-ref"], slf4j["purl"]);
        let props: Vec<(&str, &str)> = slf4j["properties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            props,
            [
                ("stella:package:type", "maven"),
                (
                    "stella:evidence",
                    "srv/app.war!WEB-INF/lib/slf4j-api-2.0.9.jar"
                )
            ]
        );
        let toml = doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "github.com/BurntSushi/toml")
            .unwrap();
        assert_eq!(toml["purl"], "pkg:golang/github.com/BurntSushi/toml@v1.4.0");
        assert!(toml.get("group").is_none());

        let bytes = serde_json::to_vec(&doc).unwrap();
        let back: BTreeSet<String> = crate::sbom::parse(&bytes)
            .unwrap()
            .components
            .iter()
            .filter_map(|c| c.purl.as_ref().map(|p| p.to_string()))
            .collect();
        let ours: BTreeSet<String> = inv.packages.iter().map(|p| p.purl.to_string()).collect();
        assert_eq!(back, ours);
        assert_eq!(ours.len(), 4, "{ours:?}");
    }

    /// The syft binary named by `STELLA_TEST_SYFT` (`ops/services.sh up` installs it), or
    /// `None` (the test prints that it was skipped; with the services it fails).
    fn syft() -> Option<PathBuf> {
        let p = std::env::var_os("STELLA_TEST_SYFT").map(PathBuf::from);
        if p.is_none() {
            assert!(
                std::env::var_os("STELLA_TEST_SERVICES").is_none(),
                "STELLA_TEST_SYFT must be set with the services"
            );
            eprintln!("STELLA_TEST_SYFT is not set: the comparison with Syft is skipped");
        }
        p
    }

    fn syft_json(syft: &Path, source: &str) -> serde_json::Value {
        let out = std::process::Command::new(syft)
            .args(["scan", source, "-o", "syft-json", "-q"])
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .output()
            .expect("syft runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("syft-json")
    }

    fn inventory_of_files(files: &[(String, PathBuf)]) -> Inventory {
        let mut fs = RootFs::default();
        for (path, file) in files {
            let bytes = std::fs::read(file).unwrap();
            let limits = Limits {
                max_file_bytes: 256 << 20,
                ..Limits::default()
            };
            if let Some(node) =
                crate::image::rootfs::keep_file(path, bytes.len() as u64, &bytes[..], &limits)
                    .unwrap()
            {
                fs.insert_node(path, node, 0);
            }
        }
        analyze(&fs)
    }

    /// Checked against Syft: the Go modules Stella reads from the syft binary's own build
    /// info are the go-module artifacts `syft scan file:SYFT` lists, (module path,
    /// version) for (module path, version). The main module's version included: both take
    /// it from `-X main.version=` in the `-ldflags` setting, as the toolchain wrote
    /// `(devel)`. Syft's `stdlib` version is `go1.23.4` and its purl's `1.23.4`; Stella's
    /// version is the purl's.
    ///
    /// The purls differ for every module path of more than three segments, and Stella is
    /// right: Syft writes `github.com/Masterminds/semver/v3` as
    /// `pkg:golang/github.com/Masterminds/semver@v3.3.0#v3`, making the module a subpath
    /// (a package inside) of another module, `github.com/Masterminds/semver`, which is
    /// also in the binary at v1.5.0: without version and subpath the two are one package.
    /// Stella's `pkg:golang/github.com/Masterminds/semver/v3@v3.3.0` is the module path
    /// the Go vulnerability database and OSV file advisories under. The test checks that
    /// each purl that differs is exactly this split.
    #[test]
    fn go_modules_of_the_syft_binary_equal_syfts() {
        let Some(syft) = syft() else { return };
        let doc = syft_json(&syft, &format!("file:{}", syft.display()));
        let artifacts: Vec<(String, String, String)> = doc["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "go-module")
            .map(|a| {
                let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                let version = match (s("name").as_str(), s("version")) {
                    ("stdlib", v) => v.trim_start_matches("go").to_owned(),
                    (_, v) => v,
                };
                (s("name"), version, s("purl"))
            })
            .collect();
        let want: BTreeSet<(String, String)> = artifacts
            .iter()
            .map(|(n, v, _)| (n.clone(), v.clone()))
            .collect();
        let inv = inventory_of_files(&[("usr/bin/syft".to_owned(), syft.clone())]);
        assert!(inv.skipped.is_empty(), "{:?}", inv.skipped);
        let got: BTreeSet<(String, String)> = inv
            .packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect();
        assert_eq!(got.len(), inv.packages.len(), "one package per module");
        assert!(want.len() > 100, "{want:?}");
        assert_eq!(
            got.difference(&want).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "only in Stella"
        );
        assert_eq!(
            want.difference(&got).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "only in Syft"
        );

        let mut split = 0;
        for (name, version, theirs) in &artifacts {
            let ours = inv
                .packages
                .iter()
                .find(|p| p.name == *name && p.version == *version)
                .map(|p| p.purl.to_string())
                .unwrap_or_default();
            if ours == *theirs {
                continue;
            }
            let segments: Vec<&str> = name.split('/').collect();
            let syft_style = format!(
                "pkg:golang/{}@{version}#{}",
                segments[..3.min(segments.len())].join("/"),
                segments.get(3..).unwrap_or_default().join("/")
            );
            assert!(
                segments.len() > 3 && *theirs == syft_style,
                "purls differ other than by Syft's subpath split: {theirs} vs {ours}"
            );
            split += 1;
        }
        eprintln!(
            "syft binary: {} modules from Syft, {} from Stella, {} equal; {split} purls differ by Syft's subpath split",
            want.len(),
            got.len(),
            want.intersection(&got).count()
        );
    }

    /// Checked against Syft: this machine's JARs (Debian's `/usr/share/java`, Maven's
    /// `lib`; plain, renamed, shaded and without `pom.properties`) and a WAR holding
    /// three of them, scanned by both. Every disagreement is listed and must be one of
    /// the two where Syft reports what Stella chose not to (see [`java`]'s doc):
    /// - a package guessed from the file name and manifest next to the ones the
    ///   archive's own `pom.properties` name (`pkg:maven/maven3-core/maven3-core@3.8.7`
    ///   beside `pkg:maven/org.apache.maven/maven-core@3.8.7`): Stella is right, the guess
    ///   is the same artifact under the name Debian gave the file;
    /// - a package without a version (Syft's `UNKNOWN`): nothing can match it, Stella
    ///   lists the archive as skipped instead.
    #[test]
    fn java_archives_on_this_machine_equal_syfts() {
        let Some(syft) = syft() else { return };
        let candidates = [
            "/usr/share/java/guava.jar",
            "/usr/share/java/commons-io.jar",
            "/usr/share/java/commons-lang3.jar",
            "/usr/share/java/maven3-core.jar",
            "/usr/share/java/maven3-slf4j-provider.jar",
            "/usr/share/java/aopalliance-1.0.jar",
            "/usr/share/java/guice-no-aop-4.2.3.jar",
            "/usr/share/java/jansi.jar",
            "/usr/share/maven/lib/wagon-http-shaded.jar",
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for c in candidates {
            let Ok(bytes) = std::fs::read(c) else {
                continue;
            };
            let name = Path::new(c)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            std::fs::write(dir.path().join(&name), &bytes).unwrap();
            files.push((name, bytes));
        }
        if files.len() < 3 {
            eprintln!("fewer than 3 of the JARs are on this machine: skipped");
            return;
        }
        let nested: Vec<(String, &[u8])> = files
            .iter()
            .take(3)
            .map(|(n, b)| (format!("WEB-INF/lib/{n}"), &b[..]))
            .collect();
        let nested: Vec<(&str, &[u8])> = nested.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        std::fs::write(dir.path().join("app.war"), zip_of(&nested)).unwrap();
        let mut paths: Vec<(String, PathBuf)> = files
            .iter()
            .map(|(n, _)| (n.clone(), dir.path().join(n)))
            .collect();
        paths.push(("app.war".to_owned(), dir.path().join("app.war")));

        let doc = syft_json(&syft, &format!("dir:{}", dir.path().display()));
        // Syft's `virtualPath` is `/outer.jar`, `/outer.war:WEB-INF/lib/inner.jar` for a
        // nested archive, or `/outer.jar:group:artifact` for a pom inside it.
        let want: BTreeSet<(String, String, String)> = doc["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "java-archive")
            .map(|a| {
                let vpath = a["metadata"]["virtualPath"].as_str().unwrap_or_default();
                let vpath = vpath.trim_start_matches('/');
                let evidence = match vpath.split_once(':') {
                    Some((outer, inner)) if java::is_java_archive(inner) => {
                        format!("{outer}!{inner}")
                    }
                    Some((outer, _)) => outer.to_owned(),
                    None => vpath.to_owned(),
                };
                (
                    a["purl"].as_str().unwrap_or_default().to_owned(),
                    evidence,
                    a["version"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let inv = inventory_of_files(&paths);
        let got: BTreeSet<(String, String, String)> = inv
            .packages
            .iter()
            .map(|p| (p.purl.to_string(), p.evidence.clone(), p.version.clone()))
            .collect();
        let with_pom: BTreeSet<&str> = got.iter().map(|(_, e, _)| e.as_str()).collect();
        let mut unexplained = Vec::new();
        for w in want.difference(&got) {
            let why = if w.2.is_empty() || w.2 == "UNKNOWN" {
                "Syft reports it without a version; Stella skips it"
            } else if with_pom.contains(w.1.as_str()) {
                "Syft's file-name guess beside the archive's pom.properties packages"
            } else {
                unexplained.push(format!("only in Syft: {w:?}"));
                continue;
            };
            eprintln!("only in Syft: {} in {} ({why})", w.0, w.1);
        }
        for g in got.difference(&want) {
            unexplained.push(format!("only in Stella: {g:?}"));
        }
        let equal = want.intersection(&got).count();
        eprintln!(
            "JARs: {} packages from Syft, {} from Stella, {equal} equal",
            want.len(),
            got.len()
        );
        assert!(equal >= files.len(), "{got:?}");
        assert_eq!(unexplained, Vec::<String>::new());
    }
}
