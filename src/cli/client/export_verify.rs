//! `stella export verify PATH [--key PEM]`: an export checked offline, never connecting.
//!
//! `PATH` is a bundle (`evidence-….tar.zst`, read in one streaming pass as hostile input
//! by `stella_domain::export::verify::read_bundle`) or a folder holding a run's
//! downloaded files (`export.json` and the files it lists next to it; other files are
//! left alone). The domain's `check` compares them with the manifest, the provenance and
//! the signatures; this file reads the folder (refusing links and unsafe names before
//! opening anything), maps what was found to exit codes and prints the outcome.

use std::io::Read;
use std::path::{Component, Path};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stella_domain::dsse::PublicKey;
use stella_domain::export::manifest::{FileEntry, MANIFEST_NAME};
use stella_domain::export::verify::{
    check, manifest_files, read_bundle, Contents, ProblemKind, ReadLimits, Report, Signatures,
    VerifyError, SEAL_FILES,
};

use super::http::{Client, ClientError, ExitKind};
use crate::cli::output::{errln, outln, terminal_safe, Format};

/// The exit codes `--help` lists (they are [`ExitKind`]'s).
pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  every file matches export.json, the provenance names exactly them, and (with --key)
     both signatures verify; without --key the signatures are not checked (said on stderr)
  6  PATH cannot be read as an export: not a tar.zst, a damaged archive, no export.json,
     or an entry Stella never writes (a link, an absolute or `..` name, a name twice, a
     member over the size limits), named
  8  a file is missing, not listed, or differs from what export.json lists (named), or
     provenance.json does not name exactly the listed files
  9  a signature is missing, signs other bytes, or does not verify with the key (named)
  2  bad command line";

/// Checks the export at `path` and prints the outcome; the error carries the exit code.
pub(crate) fn verify(client: &Client, path: &Path, key: Option<&Path>) -> Result<(), ClientError> {
    let keys = key.map(read_key).transpose()?;
    let contents = if path.is_dir() {
        read_folder(path)?
    } else {
        let file = std::fs::File::open(path)
            .map_err(|err| invalid(format!("cannot read {}: {err}", path.display())))?;
        read_bundle(std::io::BufReader::new(file), &ReadLimits::default())
            .map_err(|err| not_an_export(path, &err))?
    };
    let report = check(&contents, keys.as_deref()).map_err(|err| not_an_export(path, &err))?;
    if let Some(worst) = report.worst() {
        let kind = match worst {
            ProblemKind::Content => ExitKind::Checksum,
            ProblemKind::Signature => ExitKind::Signature,
        };
        let problems: Vec<String> = report
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.file, p.message))
            .collect();
        let mut err = ClientError::new(
            kind,
            format!(
                "{} does not verify: {}",
                path.display(),
                problems.join("; ")
            ),
        );
        err.problem = Some(json!({ "problems": report.problems }));
        return Err(err);
    }
    print(client.format, path, &report);
    Ok(())
}

fn print(format: Format, path: &Path, report: &Report) {
    let claimed = match &report.signatures {
        Signatures::NotChecked { claimed_key_ids } => Some(claimed_key_ids.join(", ")),
        Signatures::Verified { .. } => None,
    };
    match format {
        Format::Json => {
            let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
            value["verified"] = json!(true);
            value["path"] = json!(path.display().to_string());
            format.print(&value, &[]);
        }
        Format::Table => {
            let signed = match &report.signatures {
                Signatures::Verified { key_ids } => format!("signed by key {}", key_ids.join(", ")),
                Signatures::NotChecked { .. } => "signatures not checked".to_owned(),
            };
            // The manifest is the bundle author's text until a signature says otherwise.
            outln!(
                "verified {}: profile {} revision {} ({}, as of {}): {} files ({} bytes) match export.json, provenance.json names them; {signed}",
                path.display(),
                terminal_safe(&report.profile.name),
                report.profile.revision,
                terminal_safe(&report.kind),
                terminal_safe(&report.as_of),
                report.files,
                report.bytes,
            );
        }
    }
    if let Some(claimed) = claimed {
        let claimed = if claimed.is_empty() {
            "no key id".to_owned()
        } else {
            format!("key {}", terminal_safe(&claimed))
        };
        errln!(
            "warning: the signatures were not checked (no --key); they claim {claimed}. Check \
             them with --key and the server's public key (`stella keys --pem`)"
        );
    }
}

/// A public key file (PEM, as `stella keys --pem` or `GET /api/v1/keys` gives it).
fn read_key(path: &Path) -> Result<Vec<PublicKey>, ClientError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|err| invalid(format!("cannot read {}: {err}", path.display())))?;
    let key =
        PublicKey::from_pem(&pem).map_err(|err| invalid(format!("{}: {err}", path.display())))?;
    Ok(vec![key])
}

/// A folder's seal files and the files its manifest lists. Each is opened only after its
/// name is found safe and no part of its path is a link, so a hostile manifest cannot
/// make the check read outside the folder.
fn read_folder(dir: &Path) -> Result<Contents, ClientError> {
    let limits = ReadLimits::default();
    let mut contents = Contents::folder();
    for name in SEAL_FILES {
        let Some(file) = open_inside(dir, name)? else {
            continue;
        };
        let mut bytes = Vec::new();
        file.take(limits.max_seal_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| invalid(format!("cannot read {name}: {err}")))?;
        if bytes.len() as u64 > limits.max_seal_bytes {
            return Err(not_an_export(
                dir,
                &VerifyError::Refused {
                    name: name.to_owned(),
                    reason: format!("over the limit of {} bytes", limits.max_seal_bytes),
                },
            ));
        }
        contents.seal.insert(name.to_owned(), bytes);
    }
    let manifest = contents.seal.get(MANIFEST_NAME).ok_or_else(|| {
        invalid(format!(
            "{} has no {MANIFEST_NAME}: not a downloaded export",
            dir.display()
        ))
    })?;
    for listed in manifest_files(manifest).map_err(|err| not_an_export(dir, &err))? {
        let Some(mut file) = open_inside(dir, &listed.name)? else {
            continue;
        };
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher)
            .map_err(|err| invalid(format!("cannot read {}: {err}", listed.name)))?;
        contents.files.insert(
            listed.name.clone(),
            FileEntry {
                name: listed.name,
                size,
                sha256: hex::encode(hasher.finalize()),
            },
        );
    }
    Ok(contents)
}

/// The regular file `name` (checked safe) inside `dir`; `None` if it is not there. A
/// link anywhere on the way, or anything but a regular file, is refused.
fn open_inside(dir: &Path, name: &str) -> Result<Option<std::fs::File>, ClientError> {
    let refused = |reason: &str| {
        not_an_export(
            dir,
            &VerifyError::Refused {
                name: name.to_owned(),
                reason: reason.to_owned(),
            },
        )
    };
    stella_domain::export::verify::check_name(name).map_err(|err| not_an_export(dir, &err))?;
    let mut path = dir.to_path_buf();
    for component in Path::new(name).components() {
        let Component::Normal(part) = component else {
            return Err(refused("not a plain relative name"));
        };
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(invalid(format!("cannot read {}: {err}", path.display()))),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(refused("a symbolic link on its path"))
            }
            Ok(_) => {}
        }
    }
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err(refused("not a regular file"));
    }
    std::fs::File::open(&path)
        .map(Some)
        .map_err(|err| invalid(format!("cannot read {}: {err}", path.display())))
}

fn invalid(message: String) -> ClientError {
    ClientError::new(ExitKind::Invalid, message)
}

/// `path` cannot be checked as an export: exit code 6, naming the reason.
fn not_an_export(path: &Path, err: &VerifyError) -> ClientError {
    invalid(format!("{}: {err}", path.display()))
}
