"""A local OTLP/HTTP receiver: ``POST /v1/traces`` and ``POST /v1/logs`` (protobuf), kept in memory.

Decodes ``ExportTraceServiceRequest`` / ``ExportLogsServiceRequest`` with ``opentelemetry-proto``
(OTLP specification, "OTLP/HTTP" with ``application/x-protobuf``). It records each span's trace id,
name and service name, so a test can show that the gateway's and the engine's spans of one request
share a trace id; and each log record's attributes, so a test can read the gateway's usage records.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str


@dataclass(frozen=True)
class LogRecord:
    log_name: str
    body: str
    attributes: dict[str, str]


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.logs: list[LogRecord] = []
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

    def records(self, log_name: str) -> list[LogRecord]:
        with self._lock:
            return [r for r in self.logs if r.log_name == log_name]

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

            def _logs(self, raw: bytes) -> bytes:
                req = ExportLogsServiceRequest()
                req.ParseFromString(raw)
                records = [
                    LogRecord(
                        _text(next((a.value for a in sl.scope.attributes if a.key == "log_name"), AnyValue()))
                        or _text(
                            next((a.value for a in rl.resource.attributes if a.key == "log_name"), AnyValue())
                        ),
                        _text(lr.body),
                        {a.key: _text(a.value) for a in lr.attributes},
                    )
                    for rl in req.resource_logs
                    for sl in rl.scope_logs
                    for lr in sl.log_records
                ]
                with receiver._lock:
                    receiver.logs.extend(records)
                return ExportLogsServiceResponse().SerializeToString()

            def do_POST(self) -> None:
                raw = self._body()
                if self.path.split("?")[0] == "/v1/logs":
                    self._reply(self._logs(raw))
                    return
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
                self._reply(ExportTraceServiceResponse().SerializeToString())

            def _reply(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
