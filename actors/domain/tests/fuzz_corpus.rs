//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and the kept crash inputs
//! (`fuzz/artifacts/<target>/`) through the fuzz targets' checks, on the stable
//! toolchain: what the fuzzers found stays fixed, in seconds, with every `cargo test`.
//!
//! A target without corpus files fails the test, so a lost folder cannot make it pass by
//! checking nothing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use stella_domain::fuzzing::TARGETS;

/// The targets checked elsewhere: `cron` by `stella-scheduler`'s own replay test.
const ELSEWHERE: [&str; 1] = ["cron"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The names in `dir` (file stems or folder names).
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            path.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn every_fuzz_target_has_a_corpus_and_a_check() {
    let checked: BTreeSet<String> = TARGETS
        .iter()
        .map(|(name, _)| *name)
        .chain(ELSEWHERE)
        .map(str::to_owned)
        .collect();
    assert_eq!(names(&fuzz_dir().join("fuzz_targets")), checked);
    assert_eq!(names(&fuzz_dir().join("corpus")), checked);
}

#[test]
fn the_corpus_and_the_kept_crashes_pass_every_check() {
    for (target, check) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(target));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{target} is missing or empty"
        );
        let kept = files(&fuzz_dir().join("artifacts").join(target));
        for path in corpus.iter().chain(&kept) {
            let bytes = std::fs::read(path).unwrap();
            if std::panic::catch_unwind(|| check(&bytes)).is_err() {
                panic!("{target}: {} fails its check", path.display());
            }
        }
    }
}
