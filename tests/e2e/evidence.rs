//! The evidence bundle through the real binary, as an auditor meets it: a real SBOM
//! scanned against the Go advisory database with a VEX statement, exported as an
//! `evidence` bundle, downloaded, and checked by `stella export verify` (with the key
//! `stella keys --pem` prints, without it, offline, as a folder) and by the README's
//! commands without Stella (Python `tarfile` + `zstandard`, `sha256sum`,
//! securesystemslib). Every kind of tampering ends with its own exit code, naming the
//! file.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use stella_domain::dsse::{self, SigningKey};
use stella_domain::export::manifest::{MANIFEST_PAYLOAD_TYPE, MANIFEST_SIGNATURE};
use stella_domain::export::tar::{write_tar_zst, zstd_encoder};

use crate::binary::{stella, CliServer};

const ECHO: &str = "pkg:golang/github.com/labstack/echo/v4";
const BUNDLE: &str = "evidence-audit-r1.tar.zst";

/// The members of a `tar.zst` Stella wrote (plain ustar), in order (also the mirror
/// test's).
pub(crate) fn members(bundle: &[u8]) -> Vec<(String, Vec<u8>)> {
    let plain = zstd::stream::decode_all(bundle).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= plain.len() && plain[at..at + 512].iter().any(|&b| b != 0) {
        let header = &plain[at..at + 512];
        let field = |r: std::ops::Range<usize>| {
            let raw = &header[r];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8(raw[..end].to_vec()).unwrap()
        };
        let (prefix, name) = (field(345..500), field(0..100));
        let name = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size = usize::from_str_radix(field(124..135).trim(), 8).unwrap();
        out.push((name, plain[at + 512..at + 512 + size].to_vec()));
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

pub(crate) fn repack(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    write_tar_zst(Vec::new(), 0, &refs).unwrap()
}

/// A bundle holding one entry named `name`, which `TarWriter` would never write.
fn hostile(name: &str) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[124..135].copy_from_slice(b"00000000004");
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut plain = h.to_vec();
    plain.extend_from_slice(b"evil");
    plain.resize(1024 + 1024, 0);
    let mut z = zstd_encoder(Vec::new()).unwrap();
    std::io::Write::write_all(&mut z, &plain).unwrap();
    z.finish().unwrap()
}

/// The python with zstandard and securesystemslib (`ops/services.sh`): required with the
/// services, else that part is skipped.
fn python() -> Option<String> {
    match std::env::var("STELLA_TEST_SECURESYSTEMSLIB_PYTHON") {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var_os("STELLA_TEST_SERVICES").is_some() => panic!(
            "STELLA_TEST_SECURESYSTEMSLIB_PYTHON must be set when STELLA_TEST_SERVICES is set"
        ),
        _ => {
            eprintln!(
                "skipping the check without Stella: STELLA_TEST_SECURESYSTEMSLIB_PYTHON is not set"
            );
            None
        }
    }
}

/// The commands of the README's "Checking an evidence bundle without Stella", as written.
fn readme_commands() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("### Checking an evidence bundle without Stella")
        .nth(1)
        .expect("the README has the section");
    let block = section.split("```sh\n").nth(1).unwrap();
    block.split("\n```").next().unwrap().to_owned()
}

/// Runs the README's commands in `dir` (holding the bundle and `stella.pub.pem`) with
/// `python` as `python3`: exit code, stdout, stderr.
fn without_stella(python: &str, dir: &Path) -> (Option<i32>, String, String) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // A script, not a link: a venv's python finds its packages from the path it was
    // started by.
    let shim = bin.join("python3");
    std::fs::write(&shim, format!("#!/bin/sh\nexec '{python}' \"$@\"\n")).unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &readme_commands()])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn an_evidence_bundle_checks_out_with_stella_and_without_it() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.is_dir() {
        println!("skipping: {} not found", data.display());
        return;
    }
    let server = CliServer::start();
    let dir = server.dir.path().to_owned();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    server.ok(&["tenants", "create", "acme", "--name", "Acme"]);
    let go = data.join("advisories/Go-all.zip");
    server.ok(&["advisories", "import", go.to_str().unwrap()]);
    let vex = serde_json::json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/acme-1",
        "author": "acme security",
        "timestamp": "2025-06-01T00:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "GO-2022-1031"},
            "products": [{"@id": ECHO}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path"
        }]
    });
    std::fs::write(dir.join("vex.json"), vex.to_string()).unwrap();
    server.ok(&["--tenant", "acme", "vex", "import", &path("vex.json")]);
    let sbom = data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json");
    let out = server.ok(&[
        "--tenant",
        "acme",
        "scan",
        sbom.to_str().unwrap(),
        "--evaluated-at",
        "2026-01-01T00:00:00Z",
        "--wait",
    ]);
    let scan_id = out
        .lines()
        .find_map(|l| l.strip_prefix("scan "))
        .unwrap()
        .trim()
        .to_owned();
    // By scan id: a target's latest scan moves under the test (the scheduler
    // re-evaluates a target after advisory and VEX imports, as of now).
    server.ok(&[
        "--tenant", "acme", "export", "profiles", "create", "audit", "--kind", "evidence",
        "--scans", &scan_id,
    ]);
    let run = || -> Value {
        let out = server.ok(&[
            "--tenant",
            "acme",
            "--output",
            "json",
            "export",
            "run",
            "audit",
            "--as-of",
            "2026-02-01T00:00:00Z",
            "--wait",
        ]);
        serde_json::from_str(&out).unwrap()
    };
    let export = run();
    let listed = |export: &Value, name: &str| -> Value {
        export["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {export}"))
            .clone()
    };
    // A second run as of the same time: the same bundle, byte for byte.
    let again = run();
    assert_eq!(
        listed(&export, BUNDLE)["sha256"],
        listed(&again, BUNDLE)["sha256"],
        "{}\n{}",
        export["files"],
        again["files"]
    );
    let id = export["export_id"].as_str().unwrap();
    server.ok(&[
        "--tenant",
        "acme",
        "export",
        "download",
        id,
        BUNDLE,
        "-o",
        &path(BUNDLE),
    ]);
    let bundle = std::fs::read(dir.join(BUNDLE)).unwrap();
    let inside = members(&bundle);
    // A member is served on its own too, under its name with a folder in it.
    let sbom_member = inside
        .iter()
        .find(|(n, _)| n.starts_with("sboms/"))
        .unwrap()
        .0
        .clone();
    server.ok(&[
        "--tenant",
        "acme",
        "export",
        "download",
        id,
        &sbom_member,
        "-o",
        &path("sbom.json"),
    ]);
    assert_eq!(
        std::fs::read(dir.join("sbom.json")).unwrap(),
        std::fs::read(&sbom).unwrap(),
        "the SBOM as submitted"
    );
    // The VEX document the echo finding's assessment cites, and the Go advisories.
    assert!(
        inside.iter().any(|(n, _)| n.starts_with("vex/")),
        "{:?}",
        names(&inside)
    );
    assert!(
        inside.iter().any(|(n, b)| n.starts_with("advisories/")
            && String::from_utf8_lossy(b).contains("GO-2022-1031")),
        "{:?}",
        names(&inside)
    );
    std::fs::write(dir.join("stella.pub.pem"), server.ok(&["keys", "--pem"])).unwrap();
    let key = path("stella.pub.pem");

    // Offline: an address nothing listens on changes nothing.
    let verify = |args: &[&str]| {
        let output = stella(&dir)
            .env("STELLA_SERVER", "http://127.0.0.1:9")
            .args(["export", "verify"])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (code, out, err) = verify(&[&path(BUNDLE), "--key", &key]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("verified")
            && out.contains("signed by key")
            && out.contains("profile audit revision 1"),
        "{out}"
    );
    let key_id = server.ok(&["--output", "json", "keys"]);
    let key_id: Value = serde_json::from_str(&key_id).unwrap();
    let key_id = key_id["items"][0]["key_id"].as_str().unwrap().to_owned();
    assert!(out.contains(&key_id), "{out}");
    // Without a key: the files are checked, the signatures said not to be.
    let (code, out, err) = verify(&[&path(BUNDLE)]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("signatures not checked"), "{out}");
    assert!(
        err.contains("not checked") && err.contains(&key_id),
        "{err}"
    );

    // Tampered bundles: each kind of damage, its own exit code, naming the file.
    let check = |name: &str, bytes: &[u8], with_key: bool| {
        std::fs::write(dir.join(name), bytes).unwrap();
        let mut args = vec![path(name)];
        if with_key {
            args.extend(["--key".to_owned(), key.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        verify(&args)
    };
    let mut flipped = inside.clone();
    let target = flipped
        .iter_mut()
        .find(|(n, _)| n.starts_with("findings/"))
        .unwrap();
    target.1[10] ^= 1;
    let target = target.0.clone();
    let (code, _, err) = check("flipped.tar.zst", &repack(&flipped), true);
    assert_eq!(code, Some(8), "{err}");
    assert!(
        err.contains(&target) && err.contains("lists sha256"),
        "{err}"
    );

    let mut missing = inside.clone();
    missing.retain(|(n, _)| *n != sbom_member);
    let (code, _, err) = check("missing.tar.zst", &repack(&missing), true);
    assert_eq!(code, Some(8), "{err}");
    assert!(
        err.contains(&sbom_member) && err.contains("missing"),
        "{err}"
    );

    let mut extra = inside.clone();
    extra.push(("notes.txt".into(), b"trust me".to_vec()));
    let (code, _, err) = check("extra.tar.zst", &repack(&extra), true);
    assert_eq!(code, Some(8), "{err}");
    assert!(
        err.contains("notes.txt: not listed in export.json"),
        "{err}"
    );

    // The manifest signed by another key: fine without a key (it says which key it
    // claims), a signature failure with the real one.
    let other = SigningKey::generate([1; 32]);
    let mut resigned = inside.clone();
    let manifest = resigned
        .iter()
        .find(|(n, _)| n == "export.json")
        .unwrap()
        .1
        .clone();
    for (name, bytes) in resigned.iter_mut() {
        if name == MANIFEST_SIGNATURE {
            *bytes = dsse::sign(MANIFEST_PAYLOAD_TYPE, &manifest, &other).to_json();
        }
    }
    let (code, _, err) = check("resigned.tar.zst", &repack(&resigned), true);
    assert_eq!(code, Some(9), "{err}");
    assert!(
        err.contains("export.json.dsse") && err.contains("no signature is by a trusted key"),
        "{err}"
    );
    let (code, _, err) = check("resigned.tar.zst", &repack(&resigned), false);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(other.key_id()), "{err}");
    // The real bundle with another key given.
    std::fs::write(dir.join("other.pem"), other.public_key().to_pem()).unwrap();
    let (code, _, err) = verify(&[&path(BUNDLE), "--key", &path("other.pem")]);
    assert_eq!(code, Some(9), "{err}");

    let (code, _, err) = check("traversal.tar.zst", &hostile("../../etc/evil"), false);
    assert_eq!(code, Some(6), "{err}");
    assert!(
        err.contains("../../etc/evil") && err.contains("traversal"),
        "{err}"
    );
    let (code, _, err) = check("not-a-bundle.tar.zst", b"PK\x03\x04 not zstd", false);
    assert_eq!(code, Some(6), "{err}");
    // JSON output: the problems, each naming its file, and the exit code.
    std::fs::write(dir.join("flipped.tar.zst"), repack(&flipped)).unwrap();
    let output = stella(&dir)
        .args([
            "--output",
            "json",
            "export",
            "verify",
            &path("flipped.tar.zst"),
            "--key",
            &key,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(8));
    let error: Value = serde_json::from_slice(&output.stderr).unwrap();
    assert_eq!(error["error"]["exit_code"], 8);
    assert_eq!(error["error"]["problems"][0]["file"], target.as_str());
    assert_eq!(error["error"]["problems"][0]["kind"], "content");

    // Without Stella, exactly as the README shows it.
    let Some(python) = python() else { return };
    let clean = tempfile::tempdir().unwrap();
    std::fs::write(clean.path().join(BUNDLE), &bundle).unwrap();
    std::fs::copy(
        dir.join("stella.pub.pem"),
        clean.path().join("stella.pub.pem"),
    )
    .unwrap();
    let (code, out, err) = without_stella(&python, clean.path());
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!("export.json: signed by {key_id}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("provenance.json: signed by {key_id}")),
        "{out}"
    );
    assert!(out.contains(&format!("{target}: OK")), "{out}");
    // The folder it unpacked verifies with Stella too; a changed file in it does not.
    let folder = clean.path().join("bundle");
    let (code, out, err) = verify(&[folder.to_str().unwrap(), "--key", &key]);
    assert_eq!(code, Some(0), "{out}{err}");
    let changed = folder.join(&target);
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&changed, &bytes).unwrap();
    let (code, _, err) = verify(&[folder.to_str().unwrap(), "--key", &key]);
    assert_eq!(code, Some(8), "{err}");
    assert!(err.contains(&target), "{err}");
    std::fs::remove_file(&changed).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &changed).unwrap();
    let (code, _, err) = verify(&[folder.to_str().unwrap(), "--key", &key]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("symbolic link"), "{err}");

    // The same commands fail on a tampered bundle, naming the file.
    let tampered = tempfile::tempdir().unwrap();
    std::fs::write(tampered.path().join(BUNDLE), repack(&flipped)).unwrap();
    std::fs::copy(
        dir.join("stella.pub.pem"),
        tampered.path().join("stella.pub.pem"),
    )
    .unwrap();
    let (code, out, err) = without_stella(&python, tampered.path());
    assert_ne!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&format!("{target}: FAILED")), "{out}\n{err}");
    // And on a manifest signed by another key.
    let resigned_dir = tempfile::tempdir().unwrap();
    std::fs::write(resigned_dir.path().join(BUNDLE), repack(&resigned)).unwrap();
    std::fs::copy(
        dir.join("stella.pub.pem"),
        resigned_dir.path().join("stella.pub.pem"),
    )
    .unwrap();
    let (code, out, err) = without_stella(&python, resigned_dir.path());
    assert_ne!(code, Some(0), "{out}\n{err}");
    assert!(err.contains("VerificationError"), "{err}");
}

fn names(members: &[(String, Vec<u8>)]) -> Vec<&str> {
    members.iter().map(|(n, _)| n.as_str()).collect()
}
