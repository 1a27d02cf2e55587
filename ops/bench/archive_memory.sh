#!/usr/bin/env bash
# Peak memory of `stella serve` on hostile advisory archives (issue 16, item 3).
#
# For each archive, a fresh server (embedded default, a temporary data dir) is started,
# the archive is posted to `POST /api/v1/advisories/imports` with the administrator
# token, and the server's resident memory is read from /proc: VmRSS before, VmHWM (the
# peak) and VmRSS after. Archives:
#   bomb-145x15MiB   145 entries of 15 MiB of spaces each (2.2 MB compressed)
#   padded-145x4MiB  145 valid records padded to just under 4 MiB each (565 MiB inflated)
#   tiny-1M          1,000,000 tiny entries
#   go-all           the real Go database (../shared/data/advisories/Go-all.zip)
#
# Usage: ops/bench/archive_memory.sh [path/to/stella]   (default: target/release/stella)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

STELLA="${1:-target/release/stella}"
[[ -x "$STELLA" ]] || { echo "no stella binary at $STELLA (cargo build --release)" >&2; exit 1; }
WORK="$(mktemp -d)"
PID=
trap 'if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT

python3 - "$WORK" <<'EOF'
import sys, zipfile
work = sys.argv[1]
with zipfile.ZipFile(f"{work}/bomb-145x15MiB.zip", "w", zipfile.ZIP_DEFLATED) as z:
    pad = b" " * (15 * 1024 * 1024)
    for i in range(145):
        z.writestr(f"GO-{i}.json", pad)
# Valid records padded to just under the 4 MiB entry limit: 565 MiB inflated in all,
# accepted, read one entry at a time.
with zipfile.ZipFile(f"{work}/padded-145x4MiB.zip", "w", zipfile.ZIP_DEFLATED) as z:
    pad = " " * (4 * 1024 * 1024 - 200)
    for i in range(145):
        z.writestr(f"GO-{i}.json", '{"id": "BENCH-%d", "modified": "2024-01-01T00:00:00Z"%s}' % (i, pad))
with zipfile.ZipFile(f"{work}/tiny-1M.zip", "w", zipfile.ZIP_STORED) as z:
    for i in range(1_000_000):
        z.writestr(f"{i}.json", b"{}")
EOF
cp ../shared/data/advisories/Go-all.zip "$WORK/go-all.zip" 2>/dev/null || true

mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
field() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$PID/status"; }

printf '%-16s %10s %8s %10s %10s %10s  %s\n' archive zip_bytes status rss_before peak_hwm rss_after answer
for archive in bomb-145x15MiB padded-145x4MiB tiny-1M go-all; do
	file="$WORK/$archive.zip"
	[[ -f "$file" ]] || continue
	data="$WORK/data-$archive"
	# The body limit is raised so the archive reaches the reader (the million-entry zip
	# is 100 MB; at the default 50 MiB it is a 413 before any byte is read).
	STELLA_DATA_DIR="$data" STELLA_LISTEN=127.0.0.1:0 STELLA_LOG=info \
		STELLA_API_MAX_BODY_BYTES=268435456 STELLA_SCHEDULER_ENABLED=false \
		"$STELLA" serve >"$WORK/out-$archive" 2>"$WORK/err-$archive" &
	PID=$!
	for _ in $(seq 1 200); do
		addr=$(grep -ohE 'stella is serving addr=[0-9.:]+' "$WORK/err-$archive" 2>/dev/null | grep -oE '[0-9.]+:[0-9]+$' | head -1 || true)
		[[ -n "$addr" && -f "$data/admin-token" ]] && break
		sleep 0.1
	done
	[[ -n "$addr" ]] || { echo "the server did not start: $(cat "$WORK/err-$archive")" >&2; exit 1; }
	sleep 1
	before=$(field VmRSS)
	answer=$(curl -s -o "$WORK/body-$archive" -w '%{http_code}' \
		-H "Authorization: Bearer $(cat "$data/admin-token")" \
		-H 'content-type: application/zip' --data-binary "@$file" \
		"http://$addr/api/v1/advisories/imports?source=bench:$archive")
	sleep 2
	peak=$(field VmHWM)
	after=$(field VmRSS)
	detail=$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print(b.get("detail") or "records=%s" % b.get("records"))' "$WORK/body-$archive" 2>/dev/null || head -c 120 "$WORK/body-$archive")
	printf '%-16s %10s %8s %8s M %8s M %8s M  %s\n' "$archive" "$(stat -c %s "$file")" "$answer" \
		"$(mib "$before")" "$(mib "$peak")" "$(mib "$after")" "$detail"
	{ kill "$PID" && wait "$PID"; } 2>/dev/null || true
	PID=
done
