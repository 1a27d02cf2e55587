#!/usr/bin/env python3
"""Local webhook receiver for the Stella test-suite.

Listens on a loopback address (port 0: the kernel picks one), verifies every
request's Standard Webhooks signature with the PyPI `standardwebhooks` package
(an implementation independent of Stella's), records each attempt as one JSON
line, and answers as the test scripted it.

    webhook_receiver.py --log FILE [--secret whsec_...]... [--script JSON]
                        [--host 127.0.0.1] [--port 0]

The first line on stdout is `listening <host> <port>`, once the socket is bound;
nothing else goes to stdout. Run by the services venv's python
($STELLA_TEST_WEBHOOK_PYTHON from ops/services.sh up).

Log lines (appended and flushed before the answer is sent, so a test sees an
attempt whose answer never arrives):

    {"n": 1, "at": "2026-...Z", "method": "POST", "path": "/hook",
     "webhook_id": "...", "webhook_timestamp": "...", "verified": true,
     "secret": 0, "error": null, "answer": 200, "headers": {...}, "body": "..."}

`verified` is true when the signature verifies with one of the --secret values
(`secret` is its index; with several, rotation can be checked), false with the
reason in `error` otherwise, and null when no secret was given.

The script is a JSON list of steps, applied to attempts in order; each step is
used `times` times (default 1); after the last step every attempt gets 200.
A step:

    {"status": 500}                          answer 500
    {"status": 429, "retry_after": "3"}      answer 429 with Retry-After: 3
    {"sleep": 5}                             sleep 5 s, then answer (default 200)
    {"status": 307, "location": "http://169.254.169.254/"}
    {"status": 400, "body": "bad payload"}   any status, with this body
    {"times": 2, "status": 500}              the first two attempts get 500

`PUT /__script` with a JSON list replaces the remaining script (not logged).
Unsigned or badly signed requests are answered as scripted too: the receiver
records, the test decides.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

MAX_BODY = 8 * 1024 * 1024


class State:
    def __init__(self, log_path: str, secrets: list[str], script: list[dict]) -> None:
        self.log_path = log_path
        self.webhooks = [Webhook(s) for s in secrets]
        self.lock = threading.Lock()
        self.count = 0
        self.steps: list[dict] = []
        self.set_script(script)

    def set_script(self, script: list[dict]) -> None:
        steps = []
        for step in script:
            if not isinstance(step, dict):
                raise ValueError(f"a step is an object, got {step!r}")
            steps.extend([step] * int(step.get("times", 1)))
        with self.lock:
            self.steps = steps

    def next(self) -> tuple[int, dict]:
        with self.lock:
            self.count += 1
            step = self.steps.pop(0) if self.steps else {}
            return self.count, step

    def verify(self, body: bytes, headers: dict[str, str]):
        """(verified, secret index, error)"""
        if not self.webhooks:
            return None, None, None
        errors = []
        for i, wh in enumerate(self.webhooks):
            try:
                wh.verify(body, headers)
                return True, i, None
            except Exception as exc:  # WebhookVerificationError and header errors
                errors.append(f"{type(exc).__name__}: {exc}")
        return False, None, "; ".join(errors)

    def record(self, entry: dict) -> None:
        line = json.dumps(entry, sort_keys=True)
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "stella-webhook-receiver"

        def log_message(self, fmt, *args):  # keep stderr quiet
            pass

        def _body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(length) if length else b""

        def _answer(self, status: int, body: bytes = b"", headers=()) -> None:
            try:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-type", "text/plain; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a time-out test)

        def do_PUT(self):  # noqa: N802 (http.server API)
            if self.path != "/__script":
                self._answer(404)
                return
            try:
                state.set_script(json.loads(self._body() or b"[]"))
            except (ValueError, TypeError) as exc:
                self._answer(400, str(exc).encode())
                return
            self._answer(204)

        def do_POST(self):  # noqa: N802
            body = self._body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified, secret, error = state.verify(body, headers)
            n, step = state.next()
            status = int(step.get("status", 200))
            state.record({
                "n": n,
                "at": _dt.datetime.now(_dt.timezone.utc).isoformat().replace("+00:00", "Z"),
                "method": "POST",
                "path": self.path,
                "webhook_id": headers.get("webhook-id"),
                "webhook_timestamp": headers.get("webhook-timestamp"),
                "verified": verified,
                "secret": secret,
                "error": error,
                "answer": status,
                "sleep": step.get("sleep"),
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
            })
            if step.get("sleep"):
                time.sleep(float(step["sleep"]))
            extra = []
            if "retry_after" in step:
                extra.append(("Retry-After", str(step["retry_after"])))
            if "location" in step:
                extra.append(("Location", step["location"]))
            default_body = "ok" if 200 <= status < 300 else f"scripted {status}"
            self._answer(status, str(step.get("body", default_body)).encode(), extra)

        def do_GET(self):  # noqa: N802 (a liveness probe; not an attempt)
            self._answer(200, b"stella webhook receiver")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True, help="JSON lines, one per attempt")
    parser.add_argument("--secret", action="append", default=[],
                        help="whsec_... signing secret (repeat for rotation)")
    parser.add_argument("--script", default="[]", help="JSON list of steps")
    args = parser.parse_args(argv)

    state = State(args.log, args.secret, json.loads(args.script))
    open(args.log, "a", encoding="utf-8").close()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    server.daemon_threads = True

    def _stop(signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    host, port = server.server_address[:2]
    print(f"listening {host} {port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
