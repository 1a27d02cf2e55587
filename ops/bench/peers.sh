#!/usr/bin/env bash
# Stella's durable jobs side by side with the job queues users would pick instead, on
# this machine, the same services and in one invocation (issue 15, docs/BENCHMARKS.md
# "Side by side with the peers"):
#   stella-pg      `stella diag noop --run-worker` on PostgreSQL + Valkey
#   stella-sqlite  the same on the embedded default (SQLite + embedded mailbox)
#   bullmq         BullMQ on the same Valkey          (ops/bench/peers/bullmq.mjs)
#   graphile       graphile-worker on the same PostgreSQL (ops/bench/peers/graphile.mjs)
#   apalis         apalis-redis on the same Valkey    (tests/peer-apalis)
#   baseline       the raw XADD/XREADGROUP/XACK loop and raw single-row commits
# in interleaved rounds (the order rotates every round), N no-op jobs over T tenants
# (one queue per tenant where the peer has queues), jobs added in bulk. Prints every
# round and Stella's ratio to each peer; --json FILE keeps the raw results.
#
#   ops/bench/peers.sh [--rounds 3] [--jobs 20000] [--tenants 10] [--only a,b] [--json FILE]
#
# The peers install from npm (pinned versions) into $STELLA_SERVICES_DIR/bench-peers and
# apalis builds into target/peers; nothing of theirs is committed but the drivers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BULLMQ_VERSION=6.7.6
IOREDIS_VERSION=5.11.1
# 0.17.3: the newest graphile-worker that runs on the machine's Node.js 20 (0.18 needs 22).
GRAPHILE_VERSION=0.17.3

log() { printf '[peers] %s\n' "$*" >&2; }

eval "$(ops/services.sh up)"
peers_dir="${STELLA_SERVICES_DIR:-/var/tmp/stella-services}/bench-peers"
stamp="$peers_dir/.installed-$BULLMQ_VERSION-$IOREDIS_VERSION-$GRAPHILE_VERSION"
if ! [[ -f $stamp ]]; then
	command -v npm >/dev/null 2>&1 || { log "npm is missing (apt install nodejs npm)"; exit 1; }
	log "installing bullmq@$BULLMQ_VERSION ioredis@$IOREDIS_VERSION graphile-worker@$GRAPHILE_VERSION into $peers_dir"
	mkdir -p "$peers_dir"
	npm install --silent --no-audit --no-fund --prefix "$peers_dir" \
		"bullmq@$BULLMQ_VERSION" "ioredis@$IOREDIS_VERSION" "graphile-worker@$GRAPHILE_VERSION" >&2
	touch "$stamp"
fi
# The drivers import their packages from the folder they run in.
cp ops/bench/peers/bullmq.mjs ops/bench/peers/graphile.mjs "$peers_dir/"

log "building stella (release) and the apalis peer"
cargo build --release --locked --quiet
cargo build --release --quiet --manifest-path tests/peer-apalis/Cargo.toml --target-dir target/peers

exec python3 ops/bench/peers.py \
	--stella target/release/stella \
	--apalis target/peers/release/peer-apalis \
	--peers-dir "$peers_dir" "$@"
