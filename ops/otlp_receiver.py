#!/usr/bin/env python3
"""A local OTLP/HTTP trace receiver for tests: decodes what Stella exports.

    otlp_receiver.py --port 4318 --out spans.jsonl

Accepts `POST /v1/traces` with an `ExportTraceServiceRequest` in protobuf (decoded by
the `opentelemetry-proto` package, an implementation independent of Stella's Rust
exporter) and appends one JSON line per span: trace and span ids (hex), parent span id,
name, the resource's attributes (service.name, service.instance.id, stella.command...)
and the span's attributes. Answers 200 with an empty `ExportTraceServiceResponse`; 400 to
a body that does not decode. Prints "listening" once bound. Loopback only.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    value = getattr(any_value, kind)
    if kind == "array_value":
        return [value_of(v) for v in value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.values}
    if kind == "bytes_value":
        return value.hex()
    return value


def attributes(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    out = None

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        try:
            request = ExportTraceServiceRequest.FromString(body)
        except Exception as err:  # a body that is not the message
            self.send_error(400, f"not an ExportTraceServiceRequest: {err}")
            return
        lines = []
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(json.dumps({
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "resource": resource,
                        "attributes": attributes(span.attributes),
                    }, sort_keys=True))
        with open(self.out, "a", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="JSON lines file, one span per line")
    args = parser.parse_args()
    Handler.out = args.out
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
