#![no_main]

// The scheduler's cron module by path: the crate itself depends on the store and the
// actors, which the fuzzer has no use for.
#[allow(dead_code, unreachable_pub)]
#[path = "../../scheduler/src/cron.rs"]
mod cron;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cron::fuzz_check(data));
