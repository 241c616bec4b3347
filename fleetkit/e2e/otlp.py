"""A local OTLP/HTTP trace receiver: ``POST /v1/traces`` (protobuf), spans kept in memory.

Decodes ``ExportTraceServiceRequest`` with ``opentelemetry-proto`` (OTLP specification, "OTLP/HTTP"
with ``application/x-protobuf``) and records each span's trace id, name and service name, so a test
can show that the gateway's and the engine's spans of one request share a trace id.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="otlp", daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def by_trace(self) -> dict[str, list[Span]]:
        with self._lock:
            out: dict[str, list[Span]] = {}
            for s in self.spans:
                out.setdefault(s.trace_id, []).append(s)
            return out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("content-length", "0")))
                out = b""  # Envoy's HTTP exporter sends the body chunked (RFC 9112 section 7.1)
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()

            def do_POST(self) -> None:
                raw = self._body()
                req = ExportTraceServiceRequest()
                req.ParseFromString(raw)
                spans = []
                for rs in req.resource_spans:
                    service = next(
                        (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), ""
                    )
                    for ss in rs.scope_spans:
                        for sp in ss.spans:
                            spans.append(
                                Span(
                                    sp.trace_id.hex(),
                                    sp.span_id.hex(),
                                    sp.parent_span_id.hex(),
                                    sp.name,
                                    service,
                                )
                            )
                with receiver._lock:
                    receiver.spans.extend(spans)
                data = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
