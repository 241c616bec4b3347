"""A small OpenAI-compatible backend standing in for one vLLM model service in CI.

It answers ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings`` for exactly one
served model name, like ``vllm serve --served-model-name NAME``: another ``model`` gets vLLM's 404
error object. Streaming requests get Server-Sent Events (``data: {chunk}`` … ``data: [DONE]``)
written one chunk at a time with a pause between them, so a client can tell incremental delivery
from a buffered response. Answers carry an OpenAI ``usage`` object like vLLM's (3 prompt tokens, one
completion token per chunk); a stream ends with a usage-only chunk (``choices: []``) when the client
sent ``stream_options: {"include_usage": true}``, as vLLM and OpenAI do. Every request (path,
headers, parsed body) is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fleetkit.e2e.envoy_config import Backend

CHUNK_PAUSE_SECONDS = 0.15
PROMPT_TOKENS = 3


class StubBackend:
    def __init__(self, served_name: str, *, chunks: int = 5) -> None:
        self.served_name = served_name
        self.chunks = chunks
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name=f"stub-{served_name}", daemon=True
        )

    def __enter__(self) -> StubBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": self.chunks,
            "total_tokens": PROMPT_TOKENS + self.chunks,
        }

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _handler(self) -> type[BaseHTTPRequestHandler]:  # noqa: C901 - one method per endpoint
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                return

            def _json(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": stub.served_name, "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found", "type": "NotFoundError", "code": 404}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._json(
                        400, {"error": {"message": "invalid JSON", "type": "BadRequestError", "code": 400}}
                    )
                    return
                stub.record(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                if body.get("model") != stub.served_name:
                    self._json(
                        404,
                        {
                            "error": {
                                "message": f"The model `{body.get('model')}` does not exist.",
                                "type": "NotFoundError",
                                "param": None,
                                "code": 404,
                            }
                        },
                    )
                    return
                path = self.path.split("?")[0]
                if path == "/v1/embeddings":
                    self._json(
                        200,
                        {
                            "object": "list",
                            "model": stub.served_name,
                            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}],
                            "usage": {"prompt_tokens": 2, "total_tokens": 2},
                        },
                    )
                elif body.get("stream"):
                    self._stream(path, bool((body.get("stream_options") or {}).get("include_usage")))
                else:
                    self._json(200, self._completion(path))

            def _completion(self, path: str) -> dict[str, Any]:
                text = " ".join(f"tok{i}" for i in range(stub.chunks))
                usage = stub.usage()
                if path == "/v1/chat/completions":
                    return {
                        "id": "chatcmpl-stub",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": stub.served_name,
                        "usage": usage,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text},
                            }
                        ],
                    }
                return {
                    "id": "cmpl-stub",
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": stub.served_name,
                    "usage": usage,
                    "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                }

            def _stream(self, path: str, include_usage: bool) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                chat = path == "/v1/chat/completions"
                for i in range(stub.chunks):
                    if chat:
                        chunk = {
                            "id": "chatcmpl-stub",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": stub.served_name,
                            "choices": [
                                {"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}
                            ],
                        }
                    else:
                        chunk = {
                            "id": "cmpl-stub",
                            "object": "text_completion",
                            "created": 0,
                            "model": stub.served_name,
                            "choices": [{"index": 0, "text": f"tok{i} ", "finish_reason": None}],
                        }
                    self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    time.sleep(CHUNK_PAUSE_SECONDS)
                if include_usage:
                    last: dict[str, Any] = {
                        "id": "chatcmpl-stub" if chat else "cmpl-stub",
                        "object": "chat.completion.chunk" if chat else "text_completion",
                        "created": 0,
                        "model": stub.served_name,
                        "choices": [],
                        "usage": stub.usage(),
                    }
                    self._chunk(f"data: {json.dumps(last)}\n\n".encode())
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler


@contextmanager
def stub_backends(
    services: Mapping[str, tuple[str, str]], *, chunks: int = 5
) -> Iterator[tuple[dict[str, StubBackend], dict[str, Backend]]]:
    """One running stub per model service (``{service: (host, served name)}``, as the rendered gateway
    lists them) and the loopback backends Envoy is pointed at; every stub stops on exit."""
    with ExitStack() as stack:
        stubs = {
            name: stack.enter_context(StubBackend(served, chunks=chunks))
            for name, (_, served) in services.items()
        }
        yield stubs, {name: Backend("127.0.0.1", s.port) for name, s in stubs.items()}
