//! Writes the signed fuzz seeds (`stella_domain::fuzzing::signed_seeds`: envelopes, a
//! sealed mirror bundle, signed webhooks) into `fuzz/corpus/<target>/`, named by their
//! sha256. Run by `ops/fuzz.sh --seed`:
//!
//!     cargo run -p stella-domain --features fuzzing --example fuzz_signed_seeds

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, bytes) in stella_domain::fuzzing::signed_seeds() {
        let dir = corpus.join(target);
        let name = stella_domain::canonical::sha256_hex(&bytes);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(&name[..40]), bytes));
        if let Err(err) = written {
            eprintln!(
                "fuzz_signed_seeds: cannot write into {}: {err}",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
