#!/usr/bin/env bash
# Scale-out and fairness on one PostgreSQL + Valkey (issue 15, docs/BENCHMARKS.md
# "Scale-out"): for W in 1, 2, 4 `stella worker` processes, N no-op jobs over 10 tenants
# submitted in bulk (`stella diag noop` without a worker of its own), timed from the first
# submit to the last job finished; then, with W workers, the fairness bound: a noisy
# tenant's BACKLOG jobs are submitted, then one job of a quiet tenant, and the quiet job's
# wait is read from its own events (submitted `queued` → `running`).
#
#   ops/bench/scaleout.sh [--jobs 20000] [--workers "1 2 4"] [--backlog 100000]
#
# Needs a release build (target/release/stella) and the services (`ops/services.sh up`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

jobs=20000 workers="1 2 4" backlog=100000
while [[ $# -gt 0 ]]; do
	case $1 in
	--jobs) jobs=$2; shift 2 ;;
	--workers) workers=$2; shift 2 ;;
	--backlog) backlog=$2; shift 2 ;;
	*) echo "usage: $0 [--jobs N] [--workers \"1 2 4\"] [--backlog N]" >&2; exit 2 ;;
	esac
done
bin=target/release/stella
[[ -x $bin ]] || { echo "error: $bin not built (cargo build --release --locked)" >&2; exit 1; }
eval "$(ops/services.sh up)"
export STELLA_LOG=warn
sql() { psql "$STELLA_DATABASE_URL" -Atc "$1"; }

pids=()
start_workers() {
	local n=$1
	for _ in $(seq 1 "$n"); do
		"$bin" worker --roles diag >/dev/null 2>&1 &
		pids+=($!)
	done
	sleep 2
}
stop_workers() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
trap stop_workers EXIT

for w in $workers; do
	start_workers "$w"
	cpu0=$(awk '{print $2+$3+$4+$6+$7+$8}' /proc/stat | head -1)
	out=$("$bin" diag noop --count "$jobs" --tenants 10 --no-execution-count --timeout-secs 600 2>/dev/null)
	secs=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$out")
	printf 'workers=%s jobs=%s seconds=%s jobs_per_sec=%.0f load=%s\n' "$w" "$jobs" "$secs" \
		"$(python3 -c "print($jobs/$secs)")" "$(cut -d' ' -f1 /proc/loadavg)"
	stop_workers
done

# Fairness: the quiet tenant's one job behind the noisy tenant's backlog.
w=${workers##* }
since=$(sql "SELECT COALESCE(MAX(created_at), 0) FROM jobs")
start_workers "$w"
# `diag noop` names its own tenants: one tenant holds the backlog (submitted, not waited
# for), then one job of a new tenant is submitted and waited for.
"$bin" diag noop --count "$backlog" --tenants 1 --no-execution-count --timeout-secs 1 >/dev/null 2>&1 || true
"$bin" diag noop --count 1 --tenants 1 --no-execution-count --timeout-secs 120 >/dev/null 2>&1
# The newest single-job diag tenant is the quiet one: its job's queued → running wait.
sql "SELECT round(((r.at - q.at) / 1000.0)::numeric, 3) AS quiet_job_waited_seconds,
            (SELECT count(*) FROM jobs WHERE state IN ('queued','running')) AS backlog_left
     FROM job_events q JOIN job_events r ON r.tenant_id = q.tenant_id AND r.job_id = q.job_id
     WHERE q.to_state = 'queued' AND r.to_state = 'running'
       AND q.tenant_id = (SELECT tenant_id FROM jobs GROUP BY tenant_id HAVING count(*) = 1
                          ORDER BY max(created_at) DESC LIMIT 1)
     ORDER BY q.seq DESC LIMIT 1" | sed 's/^/fairness (quiet_job_waited_seconds|jobs_still_queued_or_running): /'
stop_workers
# The rest of the backlog is not needed: cancelled, so no later worker runs it.
sql "UPDATE jobs SET state = 'cancelled', finished_at = updated_at
     WHERE created_at > $since AND state IN ('queued', 'running', 'retrying')" >/dev/null
