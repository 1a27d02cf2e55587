#!/usr/bin/env bash
# Memory of one worker holding N jobs in flight (issue 15, docs/BENCHMARKS.md "Memory:
# 100,000 jobs in flight"): for each binary given, in interleaved rounds, one
# `stella worker --roles diag` on a fresh PostgreSQL database and Valkey database, N
# sleeping no-op jobs over T tenants submitted by `stella diag noop` (no worker of its
# own), every one of them allowed to run at once; once PostgreSQL counts N `running` and
# the worker's RSS has held still for 10 s, its `VmRSS` and `VmHWM` are read. Also prints
# the idle worker's RSS and the bytes per job in flight above it.
#
#   ops/bench/inflight_memory.sh [--jobs 100000] [--tenants 100] [--rounds 1] [BIN ...]
#
# BIN defaults to target/release/stella; give two binaries to compare a change. Needs the
# services (`ops/services.sh up`). Uses the database `stella_inflight` (dropped after
# each run) and Valkey database 9 (flushed before and after each run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

jobs=100000 tenants=100 rounds=1 bins=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--jobs) jobs=$2; shift 2 ;;
	--tenants) tenants=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "usage: $0 [--jobs N] [--tenants T] [--rounds R] [BIN ...]" >&2; exit 2 ;;
	*) bins+=("$1"); shift ;;
	esac
done
[[ ${#bins[@]} -gt 0 ]] || bins=(target/release/stella)
for bin in "${bins[@]}"; do
	[[ -x $bin ]] || { echo "error: $bin is not an executable (cargo build --release --locked)" >&2; exit 1; }
done
eval "$(ops/services.sh up 2>/dev/null)"
admin_url=$STELLA_DATABASE_URL
db_url=${admin_url%/*}/stella_inflight
valkey_url=${STELLA_VALKEY_URL%/}/9
valkey_port=${STELLA_VALKEY_URL##*:}
valkey_port=${valkey_port%%/*}
export STELLA_LOG=warn
sql() { psql "$1" -Atqc "$2"; }
flush() { redis-cli -p "$valkey_port" -n 9 FLUSHDB >/dev/null; }
rss_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

worker= submitter=
cleanup() {
	[[ -n $submitter ]] && kill "$submitter" 2>/dev/null || true
	[[ -n $worker ]] && kill "$worker" 2>/dev/null || true
	wait 2>/dev/null || true
	worker= submitter=
}
trap cleanup EXIT

printf '%-5s %-40s %10s %12s %12s %14s\n' round binary idle_kB VmRSS_kB VmHWM_kB bytes_per_job
for round in $(seq 1 "$rounds"); do
	for bin in "${bins[@]}"; do
		sql "$admin_url" "DROP DATABASE IF EXISTS stella_inflight WITH (FORCE)"
		sql "$admin_url" "CREATE DATABASE stella_inflight"
		flush
		export STELLA_DATABASE_URL=$db_url STELLA_VALKEY_URL=$valkey_url
		"$bin" migrate >/dev/null
		STELLA_RUNTIME_CONCURRENCY=$jobs STELLA_RUNTIME_TENANT_CONCURRENCY=$(((jobs + tenants - 1) / tenants)) \
			STELLA_RUNTIME_BATCH_SIZE=1000 "$bin" worker --roles diag >/dev/null 2>&1 &
		worker=$!
		sleep 3
		idle=$(rss_of "$worker" VmRSS)
		"$bin" diag noop --count "$jobs" --tenants "$tenants" --sleep-ms 3600000 --timeout-secs 3600 >/dev/null 2>&1 &
		submitter=$!
		deadline=$((SECONDS + 600))
		until [[ $(sql "$db_url" "SELECT count(*) FROM jobs WHERE state = 'running'" 2>/dev/null || echo 0) -ge $jobs ]]; do
			((SECONDS < deadline)) || { echo "error: $bin: not all $jobs jobs running after 600 s" >&2; exit 1; }
			sleep 2
		done
		# Settled: RSS within 1 % over 10 s (heartbeats and cancel checks included).
		prev=$(rss_of "$worker" VmRSS)
		while sleep 10; do
			now=$(rss_of "$worker" VmRSS)
			((now * 100 <= prev * 101)) && break
			prev=$now
		done
		rss=$(rss_of "$worker" VmRSS) hwm=$(rss_of "$worker" VmHWM)
		printf '%-5s %-40s %10s %12s %12s %14s\n' "$round" "$bin" "$idle" "$rss" "$hwm" $(((rss - idle) * 1024 / jobs))
		cleanup
		flush
		export STELLA_DATABASE_URL=$admin_url
		sql "$admin_url" "DROP DATABASE IF EXISTS stella_inflight WITH (FORCE)"
	done
done
