#!/usr/bin/env python3
"""Local SMTP sink for the Stella test-suite.

Accepts every message on a loopback port and stores it, one file per message,
in a Maildir-like folder:

    <maildir>/tmp/   partially written messages (never read these)
    <maildir>/new/   delivered messages (atomic rename from tmp/)
    <maildir>/cur/   unused, created for Maildir compatibility

Each stored file is the raw message as received (CRLF line endings preserved)
prefixed with three trace headers describing the SMTP envelope:

    Return-Path: <mail-from>
    X-Stella-Envelope-To: rcpt1, rcpt2
    X-Stella-Received-At: 2025-01-01T00:00:00.000000+00:00
    X-Stella-Received-TLS: TLSv1.3   (the connection's TLS version, or "none")

AUTH (PLAIN/LOGIN) is offered and any credentials are accepted, also without
TLS, so clients configured with credentials work; it is never required.

One process serves any of three kinds of port, all into the same Maildir:

    --port N           plain SMTP, no STARTTLS offered (0: none)
    --starttls-port N  STARTTLS offered and required before MAIL (530 otherwise)
    --tls-port N       implicit TLS ("SMTPS"): TLS from the first byte

The TLS ports need --cert and --key (PEM; ops/services.sh makes them with its own
test CA).

Started and stopped by ops/services.sh (which runs it from a venv that has
aiosmtpd installed).  Usage:

    smtp_sink.py --host 127.0.0.1 --port 2525 --maildir /var/tmp/stella-services/mail
    smtp_sink.py --host 127.0.0.1 --port 0 --starttls-port 2587 --tls-port 2465 \
        --cert server.pem --key server.key --maildir /var/tmp/stella-services/mail
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

LOG = logging.getLogger("smtp_sink")


class MaildirHandler:
    """aiosmtpd handler writing each message atomically into <maildir>/new."""

    def __init__(self, maildir: str) -> None:
        self.maildir = os.path.abspath(maildir)
        self.tmp_dir = os.path.join(self.maildir, "tmp")
        self.new_dir = os.path.join(self.maildir, "new")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.maildir, sub), exist_ok=True)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")

    def _unique_name(self) -> str:
        with self._lock:
            n = next(self._counter)
        now = time.time()
        secs = int(now)
        usecs = int((now - secs) * 1_000_000)
        return f"{secs}.M{usecs}P{os.getpid()}Q{n}.{self._host}"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        mail_from = envelope.mail_from or ""
        rcpts = ", ".join(envelope.rcpt_tos)
        received = _dt.datetime.now(_dt.timezone.utc).isoformat()
        # After STARTTLS aiosmtpd swaps in the TLS transport, so this holds for both
        # STARTTLS and implicit TLS.
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        tls = (ssl_object.version() or "unknown") if ssl_object else "none"
        trace = (
            f"Return-Path: <{mail_from}>\r\n"
            f"X-Stella-Envelope-To: {rcpts}\r\n"
            f"X-Stella-Received-At: {received}\r\n"
            f"X-Stella-Received-TLS: {tls}\r\n"
        ).encode("utf-8", "surrogateescape")

        name = self._unique_name()
        tmp_path = os.path.join(self.tmp_dir, name)
        new_path = os.path.join(self.new_dir, name)
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(trace)
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp_path, new_path)
        except OSError as exc:
            LOG.error("failed to store message: %s", exc)
            try:
                os.unlink(tmp_path)
            except OSError:
                pass
            return "451 Requested action aborted: local error in processing"

        LOG.info("stored message from=<%s> to=[%s] bytes=%d file=%s",
                 mail_from, rcpts, len(content), new_path)
        return "250 Message accepted for delivery"


def _accept_any_auth(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525,
                        help="plain SMTP port (0: no plain port)")
    parser.add_argument("--starttls-port", type=int, default=0,
                        help="port that offers and requires STARTTLS (0: none)")
    parser.add_argument("--tls-port", type=int, default=0,
                        help="implicit TLS port (0: none)")
    parser.add_argument("--cert", help="server certificate chain (PEM), for the TLS ports")
    parser.add_argument("--key", help="server private key (PEM), for the TLS ports")
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--pidfile", help="write our pid here (removed on exit)")
    parser.add_argument("--max-size", type=int, default=32 * 1024 * 1024,
                        help="maximum message size in bytes (default 32 MiB)")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiosmtpd logs every connection at INFO; keep only our delivery lines.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    if (args.starttls_port or args.tls_port) and not (args.cert and args.key):
        parser.error("--starttls-port and --tls-port need --cert and --key")
    if not (args.port or args.starttls_port or args.tls_port):
        parser.error("no port to serve")

    handler = MaildirHandler(args.maildir)
    common = dict(
        hostname=args.host,
        ready_timeout=10.0,
        data_size_limit=args.max_size,
        enable_SMTPUTF8=True,
        authenticator=_accept_any_auth,
        auth_required=False,
        auth_require_tls=False,
    )
    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(args.cert, args.key)
    controllers = []
    if args.port:
        controllers.append(("plain", args.port, Controller(handler, port=args.port, **common)))
    if args.starttls_port:
        controllers.append(("starttls", args.starttls_port, Controller(
            handler, port=args.starttls_port, tls_context=tls, require_starttls=True,
            **common)))
    if args.tls_port:
        controllers.append(("tls", args.tls_port, Controller(
            handler, port=args.tls_port, ssl_context=tls, **common)))

    stop = threading.Event()

    def _on_signal(signum, _frame):
        LOG.info("received signal %d, shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    for _, _, controller in controllers:
        controller.start()
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")
        os.replace(args.pidfile + ".tmp", args.pidfile)
    for mode, port, _ in controllers:
        LOG.info("listening on %s:%d (%s), storing mail in %s/new",
                 args.host, port, mode, handler.maildir)
    try:
        while not stop.wait(3600):
            pass
    finally:
        for _, _, controller in controllers:
            controller.stop()
        if args.pidfile:
            try:
                with open(args.pidfile, encoding="ascii") as fh:
                    if fh.read().strip() == str(os.getpid()):
                        os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
