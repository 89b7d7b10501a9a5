"""A real HTTP server on 127.0.0.1 that records requests and answers from a script.

Each vendor fake subclasses ``FakeServer`` and implements ``route()`` (the vendor's normal
behaviour). Tests can push ``Reply`` objects with ``script()`` to force any answer:
an error body, a 5xx, malformed JSON, a slow reply (for read timeouts) or a dropped
connection; ``hang = True`` makes every request wait for an answer that never comes.
Every request is kept in ``requests`` with its method, path, query, headers and raw
body, so tests assert exactly what went over the wire.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "Recorded", "Reply"]


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased: HTTP header names are case-insensitive
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode())

    @property
    def form(self) -> dict[str, str]:
        """The form-encoded body, one value per name (use ``form_lists`` for repeats)."""
        return {k: v[-1] for k, v in self.form_lists.items()}

    @property
    def form_lists(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)

    @property
    def data(self) -> dict[str, Any]:
        """JSON or form body, whichever the client sent."""
        if self.headers.get("content-type", "").startswith("application/json"):
            parsed = self.json
            return parsed if isinstance(parsed, dict) else {}
        return self.form


@dataclass
class Reply:
    """A scripted answer. ``body`` wins over ``json``; ``drop`` closes the connection
    without answering; ``delay`` waits before answering (cut short when the server stops).
    """

    status: int = 200
    json: Any = None
    body: str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    path: str | None = None  # only for requests whose path contains this

    def payload(self) -> bytes:
        if self.body is not None:
            return self.body.encode() if isinstance(self.body, str) else self.body
        if self.json is None:
            return b""
        return json.dumps(self.json).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Buffered writes: headers and body leave in one segment (no Nagle/delayed-ACK stall).
    wbufsize = -1

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        fake = self.server.fake
        reply = fake.dispatch(recorded)
        if reply.delay:
            fake.stopping.wait(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        payload = reply.payload()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.fake.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeServer


class FakeServer:
    """Start with ``start()`` (or as a context manager); ``url`` is its root."""

    def __init__(self, *, verbose: bool = False) -> None:
        self.requests: list[Recorded] = []
        self.verbose = verbose
        self.stopping = threading.Event()
        #: True: accept every request and never answer (until the server stops), like a
        #: vendor whose load balancer is up and whose back end is stuck.
        self.hang = False
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Life cycle ------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeServer:
        server = _Server(("127.0.0.1", port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # Scripting -------------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Answer the next matching requests with ``replies``, in order."""
        with self._lock:
            self._script.extend(replies)

    def dispatch(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self.hang:
                return Reply(delay=3600)
            for index, reply in enumerate(self._script):
                if reply.path is None or reply.path in recorded.path:
                    del self._script[index]
                    return reply
        return self.route(recorded)

    def route(self, request: Recorded) -> Reply:
        """The vendor's normal behaviour; subclasses implement it."""
        return Reply(404, {"message": "not found"})

    @property
    def last(self) -> Recorded:
        return self.requests[-1]
