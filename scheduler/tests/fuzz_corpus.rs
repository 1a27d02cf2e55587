//! Replays the cron fuzz target's corpus (`fuzz/corpus/cron/`) and kept crash inputs
//! (`fuzz/artifacts/cron/`) through its check; the other targets are replayed by
//! `stella-domain`'s `tests/fuzz_corpus.rs`. An empty or missing corpus fails.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use stella_scheduler::cron::fuzz_check;

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

#[test]
fn the_cron_corpus_and_the_kept_crashes_pass_the_check() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = files(&fuzz.join("corpus/cron"));
    assert!(!corpus.is_empty(), "fuzz/corpus/cron is missing or empty");
    for path in corpus.iter().chain(&files(&fuzz.join("artifacts/cron"))) {
        let bytes = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| fuzz_check(&bytes)).is_err() {
            panic!("cron: {} fails its check", path.display());
        }
    }
}
