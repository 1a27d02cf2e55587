#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stella_domain::fuzzing::vex(data));
