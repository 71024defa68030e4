"""What the scripted providers share: a real HTTP server on a loopback port, run on a thread,
with a queue of scripted answers and a record of the JSON bodies it received."""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

S = TypeVar("S")


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 drops connections under load
    fake: Any  # the ScriptedServer that owns it, for the handlers


class ProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like real providers
    server: LoopbackServer

    def setup(self) -> None:
        super().setup()
        # Send each streamed chunk at once, as real model servers do; with Nagle's algorithm a
        # reused connection waits ~40 ms for the client's delayed acknowledgement.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json")

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ScriptedServer(Generic[S]):
    """Starts serving on construction; ``close()`` (or leaving ``with``) stops it."""

    def __init__(self, handler: type[ProviderHandler], port: int = 0) -> None:
        self._queue: deque[S] = deque()
        self._requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()  # set on close: releases handlers that hang
        self._server = LoopbackServer(("127.0.0.1", port), handler)
        self._server.fake = self
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def script(self, *items: S) -> None:
        """Queue answers; each request takes the next one, then the default once they run out."""
        with self._lock:
            self._queue.extend(items)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _record(self, body: dict[str, Any]) -> S | None:
        """Keep the request; the next scripted answer, None when the queue is empty."""
        with self._lock:
            self._requests.append(body)
            return self._queue.popleft() if self._queue else None

    def _forget(self, *, requests: bool) -> None:
        with self._lock:
            self._queue.clear()
            if requests:
                self._requests.clear()
