//! End-to-end tests: the `Application` on port 0 and the real `stella` binary, on the
//! embedded default and against the real services `ops/services.sh up` starts.

#[path = "../../store/tests/common/mod.rs"]
mod common;

mod binary;
mod serve;
