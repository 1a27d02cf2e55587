#!/usr/bin/env bash
# The chaos run (tests/chaos), long form: serve, a scheduler and two workers (each in a
# network namespace of its own) on a PostgreSQL, a Valkey and a Garage of the run's own,
# under SIGKILLs every few seconds, a Valkey restart, `pg_ctl restart -m immediate`, a
# 10 s S3 outage and a 20 s partition of one worker; then it counts every effect at the
# sinks (S3 objects, the SMTP sink, the webhook receiver). CI runs one short seed as part
# of `ops/test.sh`; this runs several seeds in a row with more load.
#
#   ops/chaos.sh                      # seeds 1 2 3, 8 rounds of load each
#   ops/chaos.sh --seeds "7 8" --rounds 12
#
# A round (30 s apart) scans one real SBOM in each of 20 tenants and exports each scan
# twice (evidence bundle, SARIF); faults are spread over the rounds. It builds with the
# test profile, so it shares the build of `ops/test.sh`.
#
# Needs root (ip netns). Installs and starts the services first (ops/services.sh up).
# Each seed's report (faults injected, operations, counts) is printed at the end of its
# output; a failed count stops the loop with the failing seed's message.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seeds="1 2 3"
rounds=8
while [[ $# -gt 0 ]]; do
	case $1 in
	--seeds) seeds=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	-h | --help)
		sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "unknown argument: $1 (see --help)" >&2
		exit 2
		;;
	esac
done

eval "$(ops/services.sh up)"
export STELLA_TEST_SERVICES=1
for seed in $seeds; do
	printf '\n==> chaos seed %s, %s rounds\n' "$seed" "$rounds" >&2
	STELLA_CHAOS_SEED=$seed STELLA_CHAOS_ROUNDS=$rounds \
		cargo test --workspace --locked --test chaos -- --nocapture
done
