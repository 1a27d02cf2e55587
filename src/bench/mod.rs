//! Benchmarks that measure a baseline in the same run and report the ratio.

pub mod jobs;
pub mod mailbox;
pub mod matching;
pub mod scan;
pub mod schedule;

/// A short random id that keeps one run's keys and tenants apart from another's.
fn run_id() -> String {
    use rand::Rng;
    format!("{:08x}", rand::rng().random::<u32>())
}

/// `x` to three decimals.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
