//! `stella`: the process edge. The command line itself is [`stella::cli`]; this file
//! holds what only a binary can: the allocator and the exit code.

use std::process::ExitCode;

// glibc's malloc keeps what a large scan freed in its per-thread arenas: after the
// largest SBOM the limits admit, `stella serve` stayed 40-210 MB above its baseline with
// glibc and within a few MB of it with mimalloc (docs/BENCHMARKS.md, "Memory", "The
// largest SBOM"). `malloc_trim` would need unsafe code, which the workspace forbids.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    stella::cli::main()
}
