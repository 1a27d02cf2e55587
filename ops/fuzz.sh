#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer), one at a time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
  cat <<'HELP'
Usage: ops/fuzz.sh [--target NAME]... [--runs N] [--seconds S] [--seed] [--cmin] [--list]

Runs each fuzz target of fuzz/fuzz_targets/ (all of them by default) for N executions
(default 10000000), one after the other, single job, niced, on its corpus
fuzz/corpus/<target>/ (new inputs are added there), then prints per target the
executions, executions per second, coverage (cov, ft), corpus files and peak memory from
libFuzzer's final statistics. A crash, timeout (10 s) or memory blow-up (2 GiB) stops
that target's run with the input under fuzz/artifacts/<target>/ (the other targets
still run; the script then exits 1).

  --target NAME   fuzz only NAME (repeatable)
  --runs N        executions per target (default 10000000)
  --seconds S     stop each target after S seconds instead, whatever --runs says
  --seed          first (re)write the seed corpus from ../shared/data (fuzz/seed.py)
                  and the signed seeds (stella-domain's example fuzz_signed_seeds)
  --cmin          afterwards minimise each target's corpus (as cargo fuzz cmin does);
                  with --runs 0 it only minimises
  --list          list the targets and exit

Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz --locked). The
targets are built optimised with debug assertions and overflow checks, without a
sanitizer (the code under test forbids unsafe). Logs go to
$CARGO_TARGET_DIR/fuzz-logs/<target>.log (default target dir: fuzz/target).
CI does not fuzz: `cargo test` replays the committed corpus (actors/domain/tests/fuzz_corpus.rs).
HELP
}

targets=()
runs=10000000
seconds=""
seed=false
cmin=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --target) targets+=("$2"); shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --seed) seed=true; shift ;;
    --cmin) cmin=true; shift ;;
    --list) ls fuzz/fuzz_targets | sed 's/\.rs$//'; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
logs="$target_dir/fuzz-logs"
mkdir -p "$logs"
build=(-O -a -s none --target-dir "$target_dir/fuzz")

dict_of() {
  case "$1" in
    purl) echo fuzz/dicts/purl.dict ;;
    policy) echo fuzz/dicts/toml.dict ;;
    cron) echo fuzz/dicts/cron.dict ;;
    version|webhook) ;;
    *) echo fuzz/dicts/json.dict ;;
  esac
}

if $seed; then
  python3 fuzz/seed.py
  nice -n 15 cargo run -q -p stella-domain --features fuzzing --example fuzz_signed_seeds
fi

cd fuzz
# Built once, then each binary is run as `cargo fuzz run` would run it (which would
# rebuild before every target).
nice -n 15 cargo +nightly fuzz build "${build[@]}"
bin="$target_dir/fuzz/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
printf '%-16s %12s %9s %7s %8s %7s %8s\n' target executions exec/s cov ft files rss_mb
failed=()
[[ "$runs" == 0 ]] && targets_to_fuzz=() || targets_to_fuzz=("${targets[@]}")
for t in "${targets_to_fuzz[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  args=(-runs="$runs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
    -artifact_prefix="artifacts/$t/")
  [[ -n "$seconds" ]] && args+=(-max_total_time="$seconds")
  dict="$(dict_of "$t")"
  [[ -n "$dict" ]] && args+=(-dict="../$dict")
  if ! nice -n 15 "$bin/$t" "${args[@]}" "corpus/$t" > "$logs/$t.log" 2>&1; then
    echo "$t: FAILED, see $logs/$t.log and fuzz/artifacts/$t/" >&2
    grep -A3 -m1 'panicked at\|ERROR: libFuzzer' "$logs/$t.log" >&2 || tail -20 "$logs/$t.log" >&2
    failed+=("$t")
    continue
  fi
  last="$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -1)"
  stat() { grep -E "^stat::$1:" "$logs/$t.log" | awk '{print $2}'; }
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
  ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")"
  printf '%-16s %12s %9s %7s %8s %7s %8s\n' "$t" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "$cov" "$ft" "$(ls "corpus/$t" | wc -l)" "$(stat peak_rss_mb)"
done

if $cmin; then
  # What `cargo fuzz cmin` does: merge into an empty folder, which replaces the corpus.
  for t in "${targets[@]}"; do
    rm -rf "corpus/$t.min" && mkdir "corpus/$t.min"
    nice -n 15 "$bin/$t" -merge=1 -rss_limit_mb=2048 -timeout=10 "corpus/$t.min" "corpus/$t" \
      > "$logs/$t.cmin.log" 2>&1
    rm -rf "corpus/$t" && mv "corpus/$t.min" "corpus/$t"
    echo "$t: corpus minimised to $(ls "corpus/$t" | wc -l) files ($(du -sh "corpus/$t" | cut -f1))"
  done
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
