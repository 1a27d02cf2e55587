#!/usr/bin/env python3
"""Runs the systems of ops/bench/peers.sh in interleaved rounds and prints the results.

Each system is a command printing one JSON object with `jobs_per_sec` (or, for the
baseline, the raw rates) on its last line of standard output. The order of the systems
rotates every round so that no system always runs first (after a quiet spell) or last.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SYSTEMS = ["stella-pg", "stella-sqlite", "bullmq", "graphile", "apalis", "baseline"]
PEERS = ["bullmq", "graphile", "apalis"]


def command(system, args):
    jobs, tenants = str(args.jobs), str(args.tenants)
    env = dict(os.environ, STELLA_LOG="warn")
    if system == "stella-pg":
        return [args.stella, "diag", "noop", "--count", jobs, "--tenants", tenants,
                "--run-worker", "--no-execution-count"], env, None
    if system == "stella-sqlite":
        data = tempfile.mkdtemp(prefix="stella-peers-")
        for key in ("STELLA_DATABASE_URL", "STELLA_VALKEY_URL", "STELLA_S3_ENDPOINT"):
            env.pop(key, None)
        env["STELLA_DATA_DIR"] = data
        return [args.stella, "diag", "noop", "--count", jobs, "--tenants", tenants,
                "--run-worker", "--no-execution-count"], env, data
    if system == "bullmq":
        return ["node", os.path.join(args.peers_dir, "bullmq.mjs"), "--url",
                env["STELLA_VALKEY_URL"], "--jobs", jobs, "--queues", tenants,
                "--concurrency", str(max(1, 512 // args.tenants))], env, None
    if system == "graphile":
        return ["node", os.path.join(args.peers_dir, "graphile.mjs"), "--database-url",
                env["STELLA_DATABASE_URL"], "--jobs", jobs, "--tenants", tenants], env, None
    if system == "apalis":
        return [args.apalis, "--url", env["STELLA_VALKEY_URL"], "--jobs", jobs,
                "--queues", tenants, "--batch", "256", "--concurrency", "512"], env, None
    if system == "baseline":
        return [args.stella, "--output", "json", "bench", "baseline", "--messages", jobs], env, None
    raise ValueError(system)


def run(system, args):
    argv, env, scratch = command(system, args)
    started = time.monotonic()
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=args.timeout)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{system}: exit {out.returncode}: {' '.join(argv)}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if system.startswith("stella"):
        if report["completed"] != args.jobs or report["effects"] != args.jobs:
            raise SystemExit(f"{system}: {report}")
        report["jobs_per_sec"] = round(args.jobs / report["seconds"])
    report["wall_seconds"] = round(time.monotonic() - started, 3)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stella", required=True)
    parser.add_argument("--apalis", required=True)
    parser.add_argument("--peers-dir", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--only", default=",".join(SYSTEMS),
                        help="comma-separated subset of " + ", ".join(SYSTEMS))
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--json", help="write every round's raw results here")
    args = parser.parse_args()
    systems = [s for s in args.only.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s!r}; choose from {', '.join(SYSTEMS)}")

    rounds = []
    for r in range(args.rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        results = {}
        for system in order:
            print(f"[peers] round {r + 1}/{args.rounds}: {system}", file=sys.stderr, flush=True)
            results[system] = run(system, args)
        load = os.getloadavg()[0]
        rounds.append({"round": r + 1, "order": order, "load": round(load, 2), "results": results})
        print_round(rounds[-1])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"jobs": args.jobs, "tenants": args.tenants, "rounds": rounds}, f, indent=1)
    print_summary(rounds, systems)


def rate(results, system):
    return results.get(system, {}).get("jobs_per_sec")


def ratios(results):
    """Stella on PostgreSQL + Valkey over each peer and over the fastest peer."""
    stella = rate(results, "stella-pg")
    out = {}
    if stella is None:
        return out
    peers = {p: rate(results, p) for p in PEERS if rate(results, p)}
    for peer, value in peers.items():
        out[f"stella-pg/{peer}"] = round(stella / value, 3)
    if peers:
        out["stella-pg/fastest"] = round(stella / max(peers.values()), 3)
    return out


def print_round(entry):
    results = entry["results"]
    cells = []
    for system in SYSTEMS:
        if system == "baseline" and system in results:
            b = results[system]
            valkey = b.get("raw_valkey_msgs_per_sec")
            cells.append(f"raw valkey {valkey:.0f} msgs/s" if valkey else "raw valkey -")
            cells.append(f"raw commits {b['raw_commits_per_sec']:.0f}/s")
        elif system in results:
            cells.append(f"{system} {rate(results, system)} jobs/s")
    ratio = ", ".join(f"{k} {v}" for k, v in ratios(results).items())
    print(f"round {entry['round']} (load {entry['load']}): " + "; ".join(cells)
          + (f" | {ratio}" if ratio else ""), flush=True)


def print_summary(rounds, systems):
    print("\nmedian of the rounds:")
    for system in systems:
        if system == "baseline":
            continue
        values = [rate(r["results"], system) for r in rounds]
        print(f"  {system:14} {statistics.median(values):>8.0f} jobs/s  (rounds: {values})")
    keys = sorted({k for r in rounds for k in ratios(r["results"])})
    for key in keys:
        values = [ratios(r["results"]).get(key) for r in rounds]
        print(f"  {key:24} median {statistics.median(values):.3f}  (rounds: {values})")


if __name__ == "__main__":
    main()
