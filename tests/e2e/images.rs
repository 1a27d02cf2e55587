//! Container images end to end: an image archive uploaded to the server and scanned by
//! its digest, and Stella's analyzer checked against the real thing — a Debian root made
//! by `mmdebstrap`, Python and npm trees installed by `pip` and `npm`, the package
//! managers' own listings, and Syft, the peer analyzer, on the same archive.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::binary::{docker_archive, stella, CliServer};

/// A reference `ops/services.sh up` provides, or `None` (skipping) without the services.
fn reference(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            assert!(
                std::env::var_os("STELLA_TEST_SERVICES").is_none(),
                "{var} must be set with the services (ops/services.sh up)"
            );
            println!("skipping: {var} is not set (ops/services.sh up sets it)");
            None
        }
    }
}

fn sha256_file(path: &Path) -> String {
    use sha2::{Digest as _, Sha256};
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// A `docker save` archive at `out` whose layers are the tar files `layers` (bottom
/// first), tagged `tag`; written with the tar crate, streamed from the layer files.
fn pack_docker_archive(out: &Path, layers: &[PathBuf], tag: &str) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_file(l)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    })
    .to_string();
    let config_name = format!(
        "{}.json",
        stella_domain::canonical::sha256_hex(config.as_bytes())
    );
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": [tag], "Layers": names
    }])
    .to_string();
    let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
    for (layer, name) in layers.iter().zip(&names) {
        builder.append_path_with_name(layer, name).unwrap();
    }
    for (name, bytes) in [
        (&config_name, config.as_bytes()),
        (&"manifest.json".to_owned(), manifest.as_bytes()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes).unwrap();
    }
    builder.finish().unwrap();
}

/// `tar -C dir -cf out paths…` without device files and the kernel's folders, as an
/// image layer holds them.
fn tar_layer(out: &Path, dir: &Path, paths: &[&str]) {
    let status = Command::new("tar")
        .args([
            "--exclude=./dev",
            "--exclude=./proc",
            "--exclude=./sys",
            "--numeric-owner",
            "-C",
        ])
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .args(paths)
        .status()
        .unwrap();
    assert!(status.success(), "tar of {}", dir.display());
}

/// `name version` per purl type of a CycloneDX document Stella made (Python names
/// PEP 503-normalized, as `pip list` and Syft spell them differently).
fn stella_inventory(sbom: &serde_json::Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in sbom["components"].as_array().unwrap() {
        let purl = c["purl"].as_str().unwrap();
        let ty = purl["pkg:".len()..].split('/').next().unwrap().to_owned();
        let name = match c["group"].as_str() {
            Some(g) => format!("{g}/{}", c["name"].as_str().unwrap()),
            None => c["name"].as_str().unwrap().to_owned(),
        };
        let name = if ty == "pypi" { normalize(&name) } else { name };
        out.entry(ty)
            .or_default()
            .insert(format!("{name} {}", c["version"].as_str().unwrap()));
    }
    out
}

/// PEP 503 for Python names (`Jinja2` → `jinja2`).
fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// The size of the largest regular file under `dir` (symbolic links not followed).
fn largest_file(dir: &Path) -> u64 {
    let mut largest = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                largest = largest.max(meta.len());
            }
        }
    }
    largest
}

fn lines(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The Debian root (mmdebstrap, minbase) with a Python and an npm tree on top, packed as a two-layer
/// docker archive: Stella's inventory equals `dpkg-query` run against that root, `pip
/// list` of the Python tree and `npm ls` of the npm tree, package for package; and Syft,
/// on the same archive, finds the same packages of those three types. The scan of
/// Stella's SBOM and of Syft's SBOM on one server with the PyPI advisories give the same
/// findings.
#[test]
fn the_analyzer_agrees_with_dpkg_pip_npm_and_syft_on_a_debian_image() {
    let (Some(root), Some(py_tree), Some(npm_tree), Some(syft)) = (
        reference("STELLA_TEST_IMAGE_ROOTFS"),
        reference("STELLA_TEST_PYTHON_TREE"),
        reference("STELLA_TEST_NPM_TREE"),
        reference("STELLA_TEST_SYFT"),
    ) else {
        return;
    };
    let python = std::env::var("STELLA_TEST_DOCUMENTS_PYTHON").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.tar");
    tar_layer(&base, &root, &["."]);
    let app = dir.path().join("app.tar");
    // The app layer: the Python tree under usr/lib/python3, the npm project under app/.
    tar_layer(&app, &py_tree, &["usr"]);
    let status = Command::new("tar")
        .arg("-C")
        .arg(&npm_tree)
        .arg("-rf")
        .arg(&app)
        .arg("app")
        .status()
        .unwrap();
    assert!(status.success());
    let image = dir.path().join("image.tar");
    pack_docker_archive(&image, &[base, app], "stella-debootstrap:1");

    let sbom_path = dir.path().join("image.cdx.json");
    let output = stella(dir.path())
        .args([
            "sbom",
            image.to_str().unwrap(),
            "-o",
            sbom_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sbom_path).unwrap()).unwrap();
    let got = stella_inventory(&sbom);

    // The same image as an OCI layout, made by skopeo (gzip layers): the same packages.
    let layout = dir.path().join("layout");
    let output = Command::new("skopeo")
        .args(["--insecure-policy", "copy"])
        .arg(format!("docker-archive:{}", image.display()))
        .arg(format!("oci:{}:stella-debian", layout.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let from_layout = dir.path().join("layout.cdx.json");
    let output = stella(dir.path())
        .args(["sbom", "-o"])
        .arg(&from_layout)
        .arg(&layout)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && err.contains("(oci-layout)"),
        "{err}"
    );
    let layout_sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&from_layout).unwrap()).unwrap();
    assert_eq!(stella_inventory(&layout_sbom), got);

    // Both formats pass their official validators: CycloneDX's strict 1.5 schema, and
    // pyspdxtools for the SPDX 2.3 document of the same image.
    let check = Command::new(&python)
        .args([
            "-c",
            "import sys\nfrom cyclonedx.schema import SchemaVersion\n\
             from cyclonedx.validation.json import JsonStrictValidator\n\
             e = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
             sys.exit(str(e) if e else 0)",
        ])
        .arg(&sbom_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let spdx_path = dir.path().join("image.spdx.json");
    let output = stella(dir.path())
        .args(["sbom", "--format", "spdx", "-o"])
        .arg(&spdx_path)
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let check = Command::new(Path::new(&python).with_file_name("pyspdxtools"))
        .arg("-i")
        .arg(&spdx_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "pyspdxtools: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let spdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spdx_path).unwrap()).unwrap();
    let spdx_purls: BTreeSet<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
        .filter(|r| r["referenceType"] == "purl")
        .filter_map(|r| r["referenceLocator"].as_str())
        .collect();
    for c in sbom["components"].as_array().unwrap() {
        assert!(spdx_purls.contains(c["purl"].as_str().unwrap()), "{c}");
    }

    // dpkg-query in that root: installed packages only.
    let admindir = root.join("var/lib/dpkg");
    let dpkg: BTreeSet<String> = lines(
        Command::new("dpkg-query")
            .arg(format!("--admindir={}", admindir.display()))
            .args([
                "-W",
                "-f",
                "${db:Status-Abbrev}|${Package} ${Version} ${Architecture}\n",
            ])
            .output()
            .unwrap(),
    )
    .lines()
    .filter_map(|l| l.strip_prefix("ii |"))
    .map(str::to_owned)
    .collect();
    assert!(dpkg.len() > 80, "{}", dpkg.len());
    let stella_deb: BTreeSet<String> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["purl"].as_str().unwrap().starts_with("pkg:deb/"))
        .map(|c| {
            let purl = c["purl"].as_str().unwrap();
            let arch = purl
                .split(['?', '&'])
                .find_map(|q| q.strip_prefix("arch="))
                .unwrap_or_default();
            format!(
                "{} {} {arch}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        stella_deb.symmetric_difference(&dpkg).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "Stella and dpkg-query differ"
    );

    // pip list of the Python tree.
    let site = py_tree.join("usr/lib/python3/dist-packages");
    let pip: serde_json::Value = serde_json::from_str(&lines(
        Command::new(&python)
            .args(["-m", "pip", "list", "--format", "json", "--path"])
            .arg(&site)
            .output()
            .unwrap(),
    ))
    .unwrap();
    let pip: BTreeSet<String> = pip
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                normalize(p["name"].as_str().unwrap()),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    assert!(pip.len() >= 8, "{pip:?}");
    assert_eq!(
        got.get("pypi").cloned().unwrap_or_default(),
        pip,
        "Stella and pip list differ"
    );

    // npm ls --all of the npm project: every installed package, nested ones included.
    let tree: serde_json::Value = serde_json::from_str(&lines(
        Command::new("npm")
            .args(["ls", "--all", "--json", "--prefix"])
            .arg(npm_tree.join("app"))
            .output()
            .unwrap(),
    ))
    .unwrap();
    fn walk(deps: &serde_json::Value, out: &mut BTreeSet<String>) {
        for (name, dep) in deps.as_object().into_iter().flatten() {
            if let Some(version) = dep["version"].as_str() {
                out.insert(format!("{name} {version}"));
            }
            walk(&dep["dependencies"], out);
        }
    }
    let mut npm = BTreeSet::new();
    walk(&tree["dependencies"], &mut npm);
    assert!(npm.len() > 40, "{}", npm.len());
    assert_eq!(
        got.get("npm").cloned().unwrap_or_default(),
        npm,
        "Stella and npm ls differ"
    );

    // Syft on the same archive: the same packages of those types.
    let syft_json: serde_json::Value = serde_json::from_str(&lines(
        Command::new(&syft)
            .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
            .args(["scan", "-q", "-o", "syft-json"])
            .arg(format!("docker-archive:{}", image.display()))
            .output()
            .unwrap(),
    ))
    .unwrap();
    let mut syft_found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in syft_json["artifacts"].as_array().unwrap() {
        let ty = match a["type"].as_str().unwrap() {
            "deb" => "deb",
            "python" => "pypi",
            "npm" => "npm",
            _ => continue,
        };
        let name = a["name"].as_str().unwrap();
        let name = if ty == "pypi" {
            normalize(name)
        } else {
            name.to_owned()
        };
        syft_found
            .entry(ty.to_owned())
            .or_default()
            .insert(format!("{name} {}", a["version"].as_str().unwrap()));
    }
    for ty in ["deb", "pypi", "npm"] {
        let ours = got.get(ty).cloned().unwrap_or_default();
        let theirs = syft_found.get(ty).cloned().unwrap_or_default();
        assert_eq!(
            ours.symmetric_difference(&theirs).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "Stella and Syft differ on {ty} packages"
        );
    }

    // The findings: Stella's SBOM and Syft's, scanned on one server with the PyPI
    // advisories, flag the same vulnerabilities in the same packages.
    let syft_sbom = dir.path().join("syft.cdx.json");
    let output = Command::new(&syft)
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .args(["scan", "-q", "-o"])
        .arg(format!("cyclonedx-json={}", syft_sbom.display()))
        .arg(format!("docker-archive:{}", image.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The same archive through the API: streamed, never held in the server's memory.
    // What the server holds at once is bounded by the largest file it reads whole (an ELF
    // binary is read whole to find its build info: here ICU's 31 MB data library), not by
    // the archive: its peak RSS grows by less than that file plus 64 MiB of buffers.
    let server = CliServer::start();
    server.ok(&["tenants", "create", "acme", "--name", "Acme"]);
    let size = std::fs::metadata(&image).unwrap().len();
    let largest = largest_file(&root)
        .max(largest_file(&py_tree))
        .max(largest_file(&npm_tree));
    let before = server.peak_rss();
    let uploaded: serde_json::Value = serde_json::from_str(&server.ok(&[
        "--output",
        "json",
        "--tenant",
        "acme",
        "images",
        "upload",
        image.to_str().unwrap(),
    ]))
    .unwrap();
    let peak = server.peak_rss();
    println!(
        "uploaded {size} bytes (largest file {largest}); the server's peak RSS {before} bytes \
         before, {peak} after"
    );
    assert!(size > 150 << 20, "{size}");
    assert!(
        peak - before < largest + (64 << 20),
        "{size} {largest} {before} {peak}"
    );
    assert_eq!(uploaded["digest"], sbom["metadata"]["component"]["bom-ref"]);
    assert_eq!(
        uploaded["summary"]["package_types"]["deb"].as_u64(),
        Some(dpkg.len() as u64),
        "{uploaded}"
    );
    let pypi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/advisories/PyPI-all.zip");
    server.ok(&["advisories", "import", pypi.to_str().unwrap()]);
    let findings = |sbom: &Path| -> BTreeSet<String> {
        // Old, vulnerable packages: the default policy blocks (exit code 1), and the
        // verdict is still printed.
        let (code, out, err) = server.run(&[
            "--output",
            "json",
            "--tenant",
            "acme",
            "scan",
            sbom.to_str().unwrap(),
            "--wait",
        ]);
        assert!(err.contains("blocked by the policy"), "{code:?} {err}");
        let scan: serde_json::Value = serde_json::from_str(&out).unwrap();
        let listed: serde_json::Value = serde_json::from_str(&server.ok(&[
            "--output",
            "json",
            "--tenant",
            "acme",
            "scans",
            "findings",
            scan["id"].as_str().unwrap(),
            "--all",
        ]))
        .unwrap();
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["purl"].as_str().unwrap().starts_with("pkg:pypi/"))
            .map(|f| {
                // Syft's purls may carry qualifiers; the package is what is compared.
                let purl = f["purl"]
                    .as_str()
                    .unwrap()
                    .split('?')
                    .next()
                    .unwrap()
                    .to_ascii_lowercase();
                format!("{} {purl}", f["vulnerability_id"].as_str().unwrap())
            })
            .collect()
    };
    let ours = findings(&sbom_path);
    let theirs = findings(&syft_sbom);
    println!(
        "equal to dpkg-query, pip list, npm ls and Syft: {} deb, {} pypi, {} npm packages; \
         {} PyPI findings from each SBOM",
        dpkg.len(),
        pip.len(),
        npm.len(),
        ours.len()
    );
    assert!(ours.len() > 10, "{ours:?}");
    assert_eq!(
        ours.symmetric_difference(&theirs).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "the scans of Stella's and Syft's SBOMs differ"
    );
}

/// `stella images upload` streams an image archive to the server, which makes its SBOM
/// (the same inventory as `dpkg-query`), keeps the archive content-addressed, and
/// answers with the image digest; `stella scan --image DIGEST` scans it, and the
/// attestation names the image by that digest as its second subject. A hostile archive
/// is refused by name and leaves nothing; another tenant cannot name the image; an
/// archive over `api.max_image_bytes` is refused with 413.
#[test]
fn images_uploaded_through_the_api_are_scanned_by_digest_and_attested() {
    use sha2::{Digest as _, Sha256};
    // Two installed packages and one removed (its config files left): two in the SBOM.
    let status = "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\n\
        Version: 3.0.11-1~deb12u2\n\nPackage: zlib1g\nStatus: install ok installed\n\
        Architecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n\n\
        Package: curl\nStatus: deinstall ok config-files\nArchitecture: amd64\n\
        Version: 7.88.1-10\n";
    let packages = 2;
    let server = CliServer::start_with_config("[api]\nmax_image_bytes = 100000000\n");
    let dir = &server.dir;
    let image = dir.path().join("image.tar");
    let archive = docker_archive(&[
        ("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n".to_vec()),
        ("var/lib/dpkg/status", status.as_bytes().to_vec()),
    ]);
    std::fs::write(&image, &archive).unwrap();
    for tenant in ["acme", "globex"] {
        server.ok(&["tenants", "create", tenant, "--name", tenant]);
    }
    let acme = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--output", "json", "--tenant", "acme"];
        all.extend_from_slice(args);
        serde_json::from_str(&server.ok(&all)).unwrap()
    };

    let uploaded = acme(&["images", "upload", image.to_str().unwrap()]);
    let digest = uploaded["digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"), "{uploaded}");
    assert_eq!(uploaded["name"], "stella-test:1", "{uploaded}");
    assert_eq!(uploaded["format"], "docker-archive");
    assert_eq!(
        uploaded["archive_sha256"].as_str().unwrap(),
        hex::encode(Sha256::digest(&archive)),
        "the archive is stored as uploaded, byte for byte"
    );
    assert_eq!(
        uploaded["summary"]["packages"].as_u64(),
        Some(packages as u64)
    );
    assert_eq!(
        uploaded["summary"]["package_types"]["deb"].as_u64(),
        Some(packages as u64)
    );
    assert_eq!(uploaded["summary"]["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        acme(&["images", "get", &digest])["sbom_sha256"],
        uploaded["sbom_sha256"]
    );

    // Scanned by digest: the scan shows the image, the attestation names it.
    let scan = acme(&["scan", "--image", &digest, "--wait"]);
    assert_eq!(scan["status"], "completed", "{scan}");
    assert_eq!(scan["name"], "stella-test:1");
    assert_eq!(scan["sbom_sha256"], uploaded["sbom_sha256"]);
    assert_eq!(scan["image"]["digest"], digest.as_str(), "{scan}");
    assert_eq!(
        scan["image"]["layers"][0],
        uploaded["summary"]["layers"][0]["digest"]
    );
    assert_eq!(scan["counts"]["components"].as_u64(), Some(packages as u64));
    let envelope = dir.path().join("attestation.json");
    server.ok(&[
        "--tenant",
        "acme",
        "scans",
        "attestation",
        scan["id"].as_str().unwrap(),
        "-o",
        envelope.to_str().unwrap(),
    ]);
    let dsse =
        stella_domain::dsse::Envelope::from_json(&std::fs::read(&envelope).unwrap()).unwrap();
    let statement: serde_json::Value =
        serde_json::from_slice(&dsse.payload_unverified().unwrap()).unwrap();
    let subjects = statement["subject"].as_array().unwrap();
    assert_eq!(subjects.len(), 2, "{statement}");
    assert_eq!(subjects[0]["digest"]["sha256"], uploaded["sbom_sha256"]);
    assert_eq!(subjects[1]["name"], "stella-test:1");
    assert_eq!(
        subjects[1]["digest"]["sha256"].as_str(),
        digest.strip_prefix("sha256:")
    );
    let verified = acme(&["verify", envelope.to_str().unwrap()]);
    assert!(verified.to_string().contains("stella-test:1"), "{verified}");

    // `stella scan IMAGE.tar --upload` goes the same way: the same image; the same bytes
    // give the same SBOM. A name given at upload is the image's name in the SBOM (and in
    // the attestation's subject).
    let again = acme(&["scan", image.to_str().unwrap(), "--upload", "--wait"]);
    assert_eq!(again["image"]["digest"], digest.as_str(), "{again}");
    assert_eq!(again["sbom_sha256"], uploaded["sbom_sha256"]);
    let named = acme(&[
        "scan",
        image.to_str().unwrap(),
        "--upload",
        "--name",
        "registry.example/app:2",
        "--wait",
    ]);
    assert_eq!(named["image"]["digest"], digest.as_str(), "{named}");
    assert_eq!(named["image"]["name"], "registry.example/app:2", "{named}");
    assert_eq!(named["name"], "registry.example/app:2", "{named}");

    // --upload takes an archive only: a folder is refused, saying what to do.
    let folder = dir.path().join("layout");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("oci-layout"),
        r#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
    let (code, _, err) = server.run(&[
        "--tenant",
        "acme",
        "scan",
        folder.to_str().unwrap(),
        "--upload",
    ]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("--upload sends an image archive"), "{err}");

    // Another tenant cannot see acme's image, nor name it in a scan; an SBOM it made
    // of the same archive (claiming the image's digest) is scanned, but its attestation
    // names only the SBOM: Stella attests an image only where it made the SBOM of it.
    let (code, _, err) = server.run(&["--tenant", "globex", "images", "get", &digest]);
    assert_eq!(code, Some(4), "{err}");
    let listed: serde_json::Value = serde_json::from_str(
        &server.ok(&["--output", "json", "--tenant", "globex", "images", "list"]),
    )
    .unwrap();
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");
    let forged: serde_json::Value = serde_json::from_str(&server.ok(&[
        "--output",
        "json",
        "--tenant",
        "globex",
        "scan",
        image.to_str().unwrap(),
        "--wait",
    ]))
    .unwrap();
    assert_eq!(forged["image"]["digest"], digest.as_str(), "{forged}");
    let forged_envelope = dir.path().join("forged.json");
    server.ok(&[
        "--tenant",
        "globex",
        "scans",
        "attestation",
        forged["id"].as_str().unwrap(),
        "-o",
        forged_envelope.to_str().unwrap(),
    ]);
    let forged_statement: serde_json::Value = serde_json::from_slice(
        &stella_domain::dsse::Envelope::from_json(&std::fs::read(&forged_envelope).unwrap())
            .unwrap()
            .payload_unverified()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        forged_statement["subject"].as_array().unwrap().len(),
        1,
        "{forged_statement}"
    );
    let (code, _, err) = server.run(&["--tenant", "globex", "scan", "--image", &digest]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("not found"), "{err}");

    // A hostile archive: refused by the entry's name, nothing stored.
    let hostile = dir.path().join("hostile.tar");
    std::fs::write(
        &hostile,
        docker_archive(&[("../../etc/cron.d/evil", b"* * * * * root id\n".to_vec())]),
    )
    .unwrap();
    let (code, _, err) = server.run(&[
        "--tenant",
        "acme",
        "images",
        "upload",
        hostile.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("422 not an image archive") && err.contains("etc/cron.d/evil"),
        "{err}"
    );
    let listed = acme(&["images", "list"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

    // Over api.max_image_bytes: 413, whatever the archive holds.
    let big = dir.path().join("big.tar");
    std::fs::write(&big, vec![0u8; 100_000_001]).unwrap();
    let (code, _, err) = server.run(&[
        "--tenant",
        "acme",
        "images",
        "upload",
        big.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("api.max_image_bytes"), "{err}");
}

/// Sends a raw HTTP/1.1 request (headers, then `body` chunks with a pause between them)
/// and returns the status line and body of the answer.
fn raw_upload(
    server: &CliServer,
    headers: &[(&str, String)],
    body: &[&[u8]],
    pause: Duration,
) -> String {
    use std::io::{Read as _, Write as _};
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "POST /api/v1/images HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         X-Stella-Tenant: acme\r\nContent-Type: application/x-tar\r\nConnection: close\r\n",
        server.admin()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    for part in body {
        // The server may answer and close before the whole body is sent.
        if stream.write_all(part).is_err() {
            break;
        }
        std::thread::sleep(pause);
    }
    // The answer: its head, then as many body bytes as its Content-Length says (the server
    // may keep the connection open after a refusal).
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return text;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return text,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// An upload that stalls before its declared end is answered 408 and stores nothing, even
/// when what arrived is a whole tar archive; a chunked body (no length to check up front)
/// over `api.max_image_bytes` is answered 413 and stores nothing.
#[test]
fn a_stalled_or_oversized_upload_stores_nothing() {
    let server = CliServer::start_with_config(
        "[api]\nbody_read_timeout_secs = 1\nmax_image_bytes = 200000\n",
    );
    server.ok(&["tenants", "create", "acme", "--name", "Acme"]);
    let archive = docker_archive(&[(
        "var/lib/dpkg/status",
        b"Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\n".to_vec(),
    )]);
    // The whole archive, but a Content-Length 1,000 bytes longer: the rest never comes.
    let answer = raw_upload(
        &server,
        &[("Content-Length", (archive.len() + 1000).to_string())],
        &[&archive],
        Duration::from_secs(3),
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("no part of the image arrived"), "{answer}");

    // Chunked, 300 kB in 10 kB chunks: refused once past the limit.
    let chunk = format!("{:x}\r\n{}\r\n", 10_000, "x".repeat(10_000));
    let chunks: Vec<&[u8]> = (0..30).map(|_| chunk.as_bytes()).collect();
    let answer = raw_upload(
        &server,
        &[("Transfer-Encoding", "chunked".into())],
        &chunks,
        Duration::ZERO,
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("api.max_image_bytes"), "{answer}");

    let listed: serde_json::Value = serde_json::from_str(
        &server.ok(&["--output", "json", "--tenant", "acme", "images", "list"]),
    )
    .unwrap();
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");
    // The same archive sent whole is taken: the refusals were about the uploads.
    let answer = raw_upload(
        &server,
        &[("Content-Length", archive.len().to_string())],
        &[&archive],
        Duration::ZERO,
    );
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}
