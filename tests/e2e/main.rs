//! End-to-end tests: the `Application` on port 0 and the real `stella` binary, on the
//! embedded default and against the real services `ops/services.sh up` starts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

mod api;
mod binary;
mod console;
mod crash;
mod deploy;
mod evidence;
mod exports;
mod hardening;
mod hostile;
mod images;
#[path = "../../actors/tests/support/maildir.rs"]
mod maildir;
mod monitoring;
mod notify;
mod policy;
mod restore;
mod scans;
mod schedules;
mod serve;
mod streams;
mod traces;
#[path = "../../actors/tests/support/webhook.rs"]
mod webhook;
