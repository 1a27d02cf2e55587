#!/usr/bin/env bash
# The SBOM memory benchmark (docs/BENCHMARKS.md, "Memory: the largest SBOM"): starts
# `stella serve` on the embedded default in a fresh data folder, imports Go-all.zip with
# the administrator token, then scans the largest SBOM the body limit admits and reads
# the server's resident set from /proc/PID/status: VmRSS before the scan (the baseline,
# after the advisory import and a small warm-up scan), VmHWM during it (the peak: the
# high-water mark is reset to the baseline first through /proc/PID/clear_refs), VmRSS a
# few seconds after, and the attestation's size. Prints one JSON object.
#
# Usage: ops/bench/memory.sh [SBOM] (default: a fresh ops/bench/big_sbom.py document)
# Environment: BIN (default target/release/stella), ADVISORIES (default
# ../shared/data/advisories/Go-all.zip), SETTLE_SECS (default 5), PORT (default 18089),
# KEEP=1 keeps the data folder.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${BIN:-target/release/stella}
advisories=${ADVISORIES:-../shared/data/advisories/Go-all.zip}
settle=${SETTLE_SECS:-5}
port=${PORT:-18089}
work=$(mktemp -d /tmp/stella-memory.XXXXXX)
sbom=${1:-}
if [[ -z "$sbom" ]]; then
    sbom=$work/big.json
    python3 ops/bench/big_sbom.py "$sbom" --advisories "$advisories" >"$work/sbom.json"
fi
[[ -x "$bin" ]] || { echo "error: $bin not built (cargo build --release)" >&2; exit 1; }

server_pid=
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    [[ "${KEEP:-}" == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT

STELLA_DATA_DIR=$work/data STELLA_LISTEN=127.0.0.1:$port STELLA_LOG=warn \
    "$bin" serve >"$work/serve.log" 2>&1 &
server_pid=$!
base=http://127.0.0.1:$port
for _ in $(seq 1 600); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && [[ -s $work/data/admin-token ]] && break
    sleep 0.2
done
[[ -s $work/data/admin-token ]] || { echo "error: the server did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
token=$(cat "$work/data/admin-token")
auth=(-H "Authorization: Bearer $token")
kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$server_pid/status"; }

curl -fsS "${auth[@]}" -H 'content-type: application/json' \
    -d '{"id": "bench", "name": "Memory bench"}' "$base/api/v1/tenants" >/dev/null
curl -fsS "${auth[@]}" -H 'content-type: application/zip' --data-binary "@$advisories" \
    "$base/api/v1/advisories/imports?source=osv:Go" >/dev/null

# Submits a scan of $1, waits until it is completed; prints its id.
scan() {
    local id status
    id=$(curl -fsS "${auth[@]}" -H 'X-Stella-Tenant: bench' -H 'content-type: application/json' \
        --data-binary "@$1" "$base/api/v1/scans?evaluated_at=2026-01-01T00:00:00Z" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["job_id"])')
    for _ in $(seq 1 6000); do
        # A poll that fails (a 503 while the store is busy on a loaded machine) is retried.
        status=$(curl -sS "${auth[@]}" -H 'X-Stella-Tenant: bench' "$base/api/v1/scans/$id" |
            python3 -c 'import json, sys; print(json.load(sys.stdin).get("status", "unknown"))' \
                2>/dev/null || echo unknown)
        case $status in
            completed) echo "$id"; return 0 ;;
            failed | cancelled)
                echo "error: scan $id $status" >&2
                curl -sS "${auth[@]}" -H 'X-Stella-Tenant: bench' "$base/api/v1/scans/$id" >&2
                return 1
                ;;
        esac
        sleep 0.2
    done
    echo "error: scan $id did not complete" >&2
    return 1
}

# A small scan first, so the baseline includes the advisory index and warm caches.
scan ../shared/data/sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json >/dev/null
sleep "$settle"
rss_before=$(kb VmRSS)
hwm_before=$(kb VmHWM)
# Writing 5 resets the peak to the current RSS (Linux 4.0+), so VmHWM is this scan's.
echo 5 >"/proc/$server_pid/clear_refs" 2>/dev/null || true
start=$(date +%s.%N)
id=$(scan "$sbom")
seconds=$(echo "$(date +%s.%N) - $start" | bc)
peak=$(kb VmHWM)
sleep "$settle"
rss_after=$(kb VmRSS)
attestation_bytes=$(curl -fsS "${auth[@]}" -H 'X-Stella-Tenant: bench' \
    "$base/api/v1/scans/$id/attestation" | wc -c)
counts=$(curl -fsS "${auth[@]}" -H 'X-Stella-Tenant: bench' "$base/api/v1/scans/$id" |
    python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["counts"]))')

cat <<EOF
{"sbom_bytes": $(stat -c %s "$sbom"), "counts": $counts, "seconds": $seconds,
 "rss_before_kb": $rss_before, "hwm_before_kb": $hwm_before, "peak_kb": $peak,
 "rss_after_kb": $rss_after, "after_minus_before_kb": $((rss_after - rss_before)),
 "attestation_bytes": $attestation_bytes}
EOF
