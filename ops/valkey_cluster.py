#!/usr/bin/env python3
"""Joins running Valkey nodes (started with `cluster-enabled yes`) into one cluster.

    valkey_cluster.py create --host 127.0.0.1 --ports 7101,7102,7103,7104,7105,7106 \
        [--replicas 1] [--timeout 60]
    valkey_cluster.py wait --host 127.0.0.1 --ports 7101,...   # until cluster_state:ok
    valkey_cluster.py primary-of --ports 7101,... --key '{scan}'  # prints the port

What `valkey-cli --cluster create` does, with nothing but the standard library (the
valkey-server binary the tests use comes without a valkey-cli): the first N/(1+replicas)
ports become primaries with equal slot ranges, every node meets the first, each of the
others replicates a primary, then it waits until every node reports `cluster_state:ok`
and knows every other node and every replica has synced. `create` on nodes that already form this cluster only waits.
Exit status 0 on success; a message on stderr and 1 otherwise.
"""

import argparse
import socket
import sys
import time

SLOTS = 16384


def resp(host, port, *args, timeout=5.0):
    """Sends one command, returns the decoded reply (errors raise RuntimeError)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = str(arg).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        sock.sendall(payload)
        reader = sock.makefile("rb")
        return _read(reader)


def _read(reader):
    line = reader.readline()
    if not line:
        raise RuntimeError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)[:-2]
        return data.decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(reader) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line!r}")


def info(host, port):
    text = resp(host, port, "CLUSTER", "INFO")
    return dict(
        line.split(":", 1) for line in text.splitlines() if ":" in line
    )


def healthy(host, ports):
    for port in ports:
        try:
            state = info(host, port)
        except (OSError, RuntimeError):
            return False
        if state.get("cluster_state") != "ok":
            return False
        if int(state.get("cluster_known_nodes", "0")) != len(ports):
            return False
        # A replica counts once its first sync is done: before it, it could not take over.
        replication = dict(
            line.split(":", 1)
            for line in resp(host, port, "INFO", "replication").splitlines()
            if ":" in line
        )
        if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
            return False
    return True


def wait_healthy(host, ports, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(host, ports):
            return True
        time.sleep(0.2)
    return False


def create(host, ports, replicas, timeout):
    if len(ports) % (1 + replicas) != 0:
        raise SystemExit(f"{len(ports)} ports do not split into primaries with {replicas} replica(s) each")
    if healthy(host, ports):
        return
    primaries = ports[: len(ports) // (1 + replicas)]
    others = ports[len(primaries):]
    if len(primaries) < 3:
        raise SystemExit("a Valkey Cluster needs at least 3 primaries")
    ids = {port: resp(host, port, "CLUSTER", "MYID") for port in ports}
    step = SLOTS // len(primaries)
    for i, port in enumerate(primaries):
        first = i * step
        last = SLOTS - 1 if i == len(primaries) - 1 else (i + 1) * step - 1
        try:
            resp(host, port, "CLUSTER", "ADDSLOTSRANGE", first, last)
        except RuntimeError as err:
            if "already busy" not in str(err):
                raise
    for port in ports[1:]:
        resp(host, port, "CLUSTER", "MEET", host, ports[0])
    # Every node must know every other before a replica can name its primary.
    deadline = time.monotonic() + timeout
    while True:
        known = [
            int(info(host, port).get("cluster_known_nodes", "0")) for port in ports
        ]
        if all(k == len(ports) for k in known):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"nodes did not meet within {timeout}s: known {known}")
        time.sleep(0.2)
    for i, port in enumerate(others):
        primary = primaries[i % len(primaries)]
        while True:
            try:
                resp(host, port, "CLUSTER", "REPLICATE", ids[primary])
                break
            except RuntimeError as err:
                # "Unknown node" until the gossip reached it.
                if time.monotonic() > deadline:
                    raise SystemExit(f"{port} cannot replicate {primary}: {err}")
                time.sleep(0.2)
    if not wait_healthy(host, ports, timeout):
        raise SystemExit(f"cluster on {host}:{ports} not ok within {timeout}s")


def primary_of(host, ports, key):
    """The port of the primary that serves `key`'s slot, asked of the first live node."""
    for port in ports:
        try:
            slot = resp(host, port, "CLUSTER", "KEYSLOT", key)
            nodes = resp(host, port, "CLUSTER", "NODES")
        except (OSError, RuntimeError):
            continue
        for line in nodes.splitlines():
            fields = line.split()
            flags = fields[2].split(",")
            if "master" not in flags or "fail" in flags or "fail?" in flags:
                continue
            for span in fields[8:]:
                if span.startswith("["):
                    continue  # a slot being migrated
                first, _, last = span.partition("-")
                if int(first) <= slot <= int(last or first):
                    return int(fields[1].split("@")[0].rsplit(":", 1)[1])
    raise RuntimeError(f"no live primary serves {key!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["create", "wait", "primary-of"])
    parser.add_argument("--key", help="primary-of: the key whose primary to print")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", required=True, help="comma-separated node ports, primaries first")
    parser.add_argument("--replicas", type=int, default=1, help="replicas per primary (default 1)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",") if p]
    try:
        if args.action == "create":
            create(args.host, ports, args.replicas, args.timeout)
        elif args.action == "primary-of":
            print(primary_of(args.host, ports, args.key or ""))
        elif not wait_healthy(args.host, ports, args.timeout):
            raise SystemExit(f"cluster on {args.host}:{ports} not ok within {args.timeout}s")
    except (OSError, RuntimeError) as err:
        print(f"valkey_cluster: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
