#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this):
#   1. installs and starts the local services (PostgreSQL, Valkey, Garage S3, SMTP sink)
#      with ops/services.sh and points the tests at them;
#   2. checks formatting and lints (clippy warnings are errors);
#   3. runs every test of the workspace: each conformance suite runs against the
#      embedded backends (SQLite, folder) and the real services in the same run.
# With STELLA_TEST_SERVICES=1 (exported by `services.sh up`) a test whose service is
# missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
started=$SECONDS

step "starting local services (ops/services.sh up)"
services_env="$(ops/services.sh up)"
eval "$services_env"
export STELLA_TEST_SERVICES=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (embedded default and real services)"
cargo test --workspace --locked

step "all checks passed in $((SECONDS - started)) s"
